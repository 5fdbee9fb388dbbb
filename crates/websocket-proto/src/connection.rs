//! A server's WebSocket connection after the handshake, without I/O: bytes
//! go in, messages come out, and the frames to send pile up in an
//! [`Outgoing`] queue for the caller to write. Ping replies, the closing
//! handshake in both directions, the close timeout, the idle timeout and
//! server pings are decided here; the caller passes the time in.
//!
//! The connection is two values because its two directions live on
//! different threads in a server: [`Connection`] (decoding, inflating,
//! UTF-8, closing state, timers) belongs to whoever reads the socket, while
//! [`Outgoing`] (framing, deflating, the queue of encoded bytes) is what
//! any thread may send through, so the server keeps it behind its own lock
//! and lends it to the connection for each call.
//!
//! Each protocol family reads and writes its own framing: RFC 6455 frames
//! (versions 7, 8 and 13, with permessage-deflate when negotiated) and the
//! draft-75/76 text frames, selected by [`Family`].

use std::fmt;
use std::time::Duration;

use crate::close::{CloseCode, ClosePayload};
use crate::decoder::{Decoder, DecoderConfig, Event, MessageKind};
use crate::deflate::{Deflater, InflateError, Inflater, Negotiated};
use crate::encoder::FrameHeaderBuf;
use crate::frame::{Opcode, ProtocolVersion};
use crate::legacy::{LegacyDecodeError, LegacyDecoder, LegacyEvent};

/// A point in time as the caller's clock reads it: a duration since any
/// origin it likes, the same for every call on one connection.
pub type Time = Duration;

/// Which wire format a connection speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    /// RFC 6455 frames; permessage-deflate for incoming messages if negotiated.
    Rfc6455 {
        version: ProtocolVersion,
        deflate: Option<Negotiated>,
    },
    /// draft-75/76: text only, `0x00 text 0xFF`, closed by `0xFF 0x00`.
    Legacy,
}

/// How a connection polices its peer and keeps itself alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted (after inflating), in bytes.
    pub max_message_size: u64,
    /// Accept the close codes reserved for future use.
    pub allow_reserved_close_codes: bool,
    /// Close with 1001 after this long without a byte from the peer.
    pub idle_timeout: Option<Duration>,
    /// Ping after this long without a byte from the peer; close with 1001
    /// if nothing comes back within as long again. RFC 6455 only.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the peer's close frame after we sent ours.
    pub close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 32 * 1024 * 1024,
            allow_reserved_close_codes: false,
            idle_timeout: None,
            ping_interval: None,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The client started the closing handshake, with this code.
    ClientClosed(Option<u16>),
    /// We did (the application, a timer, a protocol error, a stopping server).
    ServerClosed { code: Option<u16>, why: String },
    /// The connection ended without a closing handshake.
    Dropped(String),
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = |c: &Option<u16>| c.map_or_else(|| "no status code".to_owned(), |c| c.to_string());
        match self {
            Ending::ClientClosed(c) => write!(f, "the client closed it with {}", code(c)),
            Ending::ServerClosed { code: c, why } => {
                write!(f, "the server closed it with {} ({why})", code(c))
            }
            Ending::Dropped(why) => write!(f, "{why}, without a closing handshake"),
        }
    }
}

/// Something worth a log line that happened inside the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The peer broke the protocol: we sent this close code.
    Failed { code: CloseCode, reason: String },
    /// A timer closed the connection with 1001.
    TimedOut(&'static str),
    /// The peer's close frame arrived.
    PeerClosed(String),
    /// Our close frame went unanswered for the close timeout.
    CloseUnanswered,
}

/// What the connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wants {
    /// More input is useful (false once the peer's close came or we failed).
    pub read: bool,
    /// When [`Connection::poll`] has something to do, if ever.
    pub deadline: Option<Time>,
    /// Nothing more will happen: write what is queued, then end.
    pub done: bool,
}

/// A complete data message from the peer.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: MessageKind,
    /// The payload (inflated, and valid UTF-8 for text). Mutable because the
    /// plugin ABI hands it out so.
    pub data: &'a mut [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// We sent a close frame and wait for the peer's until the deadline.
    Closing {
        deadline: Time,
    },
    /// We sent a close frame after a protocol error: read nothing more.
    Failed,
    /// The closing handshake is complete, or the peer went away.
    Done,
}

/// A violation found while reading: fail the connection with this code.
struct Failure {
    code: CloseCode,
    reason: String,
}

/// What a family's reader found in the input.
enum Incoming<'a> {
    Message(Message<'a>),
    Ping(&'a [u8]),
    Pong,
    /// The peer's close: the reply body, and a description for the log.
    Close {
        reply: ClosePayload,
        description: String,
    },
}

/// Capacity the inflate buffer may keep between messages.
const RETAINED_INFLATE_CAPACITY: usize = 256 * 1024;

/// Reads RFC 6455 frames, inflating permessage-deflate messages.
struct Rfc6455Reader {
    decoder: Decoder,
    version: ProtocolVersion,
    max_message_size: u64,
    inflater: Option<Inflater>,
    inflated: Vec<u8>,
}

impl Rfc6455Reader {
    fn read<'a>(&'a mut self, input: &'a mut [u8]) -> (usize, Result<Option<Incoming<'a>>, Failure>) {
        let Rfc6455Reader {
            decoder,
            version,
            max_message_size,
            inflater,
            inflated,
        } = self;
        let len = input.len();
        let (used, event) = match decoder.decode(input) {
            Ok(decoded) => decoded,
            Err(e) => {
                let failure = Failure {
                    code: e.close_code(*version),
                    reason: e.to_string(),
                };
                return (len, Err(failure));
            }
        };
        let incoming = match event {
            None => return (used, Ok(None)),
            Some(Event::Message {
                kind,
                data,
                compressed: true,
            }) => {
                // The decoder only lets RSV1 through when deflate was negotiated.
                let Some(inflater) = inflater.as_mut() else {
                    let failure = Failure {
                        code: CloseCode::PROTOCOL_ERROR,
                        reason: "compressed message without permessage-deflate".to_owned(),
                    };
                    return (used, Err(failure));
                };
                if inflated.capacity() > RETAINED_INFLATE_CAPACITY {
                    *inflated = Vec::new();
                }
                inflated.clear();
                if let Err(e) = inflater.inflate(data, *max_message_size, inflated) {
                    let failure = match e {
                        InflateError::TooBig => Failure {
                            code: CloseCode(version.too_big_code()),
                            reason: format!(
                                "inflated message larger than the limit of {max_message_size} bytes"
                            ),
                        },
                        InflateError::Corrupt => Failure {
                            code: CloseCode::INVALID_PAYLOAD,
                            reason: "invalid deflate data".to_owned(),
                        },
                    };
                    return (used, Err(failure));
                }
                if kind == MessageKind::Text && crate::utf8::validate(inflated).is_err() {
                    let failure = Failure {
                        code: CloseCode::INVALID_PAYLOAD,
                        reason: "invalid UTF-8 in a compressed text message".to_owned(),
                    };
                    return (used, Err(failure));
                }
                Incoming::Message(Message {
                    kind,
                    data: &mut inflated[..],
                })
            }
            Some(Event::Message { kind, data, .. }) => Incoming::Message(Message { kind, data }),
            Some(Event::Ping(p)) => Incoming::Ping(p),
            Some(Event::Pong(_)) => Incoming::Pong,
            Some(Event::Close(frame)) => Incoming::Close {
                reply: ClosePayload::reply_to(&frame),
                description: match (frame.code, frame.reason.is_empty()) {
                    (None, _) => "no status code".to_owned(),
                    (Some(code), true) => format!("code {code}"),
                    (Some(code), false) => {
                        format!("code {code}, reason \"{}\"", frame.reason.escape_debug())
                    }
                },
            },
        };
        (used, Ok(Some(incoming)))
    }
}

/// Reads draft-75/76 frames.
struct LegacyReader {
    decoder: LegacyDecoder,
    /// Messages are handed out mutable; the decoder lends its text
    /// immutably, so it is copied here first.
    scratch: Vec<u8>,
}

impl LegacyReader {
    fn read<'a>(&'a mut self, input: &'a [u8]) -> (usize, Result<Option<Incoming<'a>>, Failure>) {
        if self.scratch.capacity() > 64 * 1024 {
            self.scratch = Vec::new();
        }
        let (used, result) = self.decoder.decode(input);
        let incoming = match result {
            Err(e) => {
                let code = match e {
                    LegacyDecodeError::TooBig => CloseCode::MESSAGE_TOO_BIG,
                    LegacyDecodeError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
                    LegacyDecodeError::LengthOverflow => CloseCode::PROTOCOL_ERROR,
                };
                let failure = Failure {
                    code,
                    reason: e.to_string(),
                };
                return (used, Err(failure));
            }
            Ok(None) => return (used, Ok(None)),
            Ok(Some(LegacyEvent::Text(text))) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(text.as_bytes());
                Incoming::Message(Message {
                    kind: MessageKind::Text,
                    data: &mut self.scratch,
                })
            }
            Ok(Some(LegacyEvent::Close)) => Incoming::Close {
                reply: ClosePayload::empty(),
                description: "closing frame".to_owned(),
            },
        };
        (used, Ok(Some(incoming)))
    }
}

enum Reader {
    Rfc6455(Box<Rfc6455Reader>),
    Legacy(LegacyReader),
}

/// The reading side of a connection and its state: see the module docs.
pub struct Connection {
    reader: Reader,
    limits: Limits,
    state: State,
    ending: Option<Ending>,
    notes: Vec<Note>,
    last_heard: Time,
    /// When the ping we sent must have been answered.
    ping_deadline: Option<Time>,
    messages_in: u64,
    payload_in: u64,
    bytes_in: u64,
}

impl Connection {
    /// A connection that opened at `now`.
    pub fn new(family: &Family, limits: Limits, now: Time) -> Connection {
        let (reader, can_ping) = match family {
            Family::Rfc6455 { version, deflate } => {
                let reader = Rfc6455Reader {
                    decoder: Decoder::new(DecoderConfig {
                        max_message_size: limits.max_message_size,
                        version: *version,
                        allow_reserved_close_codes: limits.allow_reserved_close_codes,
                        allow_rsv1: deflate.is_some(),
                        ..DecoderConfig::default()
                    }),
                    version: *version,
                    max_message_size: limits.max_message_size,
                    inflater: deflate.as_ref().map(Inflater::new),
                    inflated: Vec::new(),
                };
                (Reader::Rfc6455(Box::new(reader)), true)
            }
            Family::Legacy => {
                let reader = LegacyReader {
                    decoder: LegacyDecoder::new(limits.max_message_size),
                    scratch: Vec::new(),
                };
                (Reader::Legacy(reader), false)
            }
        };
        Connection {
            reader,
            limits: Limits {
                // The drafts have no ping frame.
                ping_interval: limits.ping_interval.filter(|_| can_ping),
                ..limits
            },
            state: State::Open,
            ending: None,
            notes: Vec::new(),
            last_heard: now,
            ping_deadline: None,
            messages_in: 0,
            payload_in: 0,
            bytes_in: 0,
        }
    }

    /// Decodes one step from the start of `input` (unmasking it in place):
    /// up to the end of the next frame, or all of it when that frame is
    /// incomplete. Returns how many bytes it consumed and the data message
    /// that step completed, if any; call again with the rest of the input
    /// while there is some and [`Wants::read`] holds. Control frames are
    /// answered into `out`. Once the connection stops reading it consumes
    /// nothing (0, `None`).
    pub fn receive<'a>(
        &'a mut self,
        input: &'a mut [u8],
        now: Time,
        out: &mut impl Output,
    ) -> (usize, Option<Message<'a>>) {
        self.notice_sent_close(now, out);
        if !self.reading() || input.is_empty() {
            return (0, None);
        }
        self.last_heard = now;
        self.ping_deadline = None;
        let (used, result) = match &mut self.reader {
            Reader::Rfc6455(r) => r.read(input),
            Reader::Legacy(r) => r.read(input),
        };
        self.bytes_in += used as u64;
        match result {
            Ok(None) | Ok(Some(Incoming::Pong)) => {}
            Ok(Some(Incoming::Message(message))) => {
                // After our close, messages are read and dropped.
                if self.state == State::Open {
                    self.messages_in += 1;
                    self.payload_in += message.data.len() as u64;
                    return (used, Some(message));
                }
            }
            Ok(Some(Incoming::Ping(payload))) => {
                if self.state == State::Open {
                    out.control(Opcode::Pong, payload);
                }
            }
            Ok(Some(Incoming::Close { reply, description })) => {
                if self.state == State::Open {
                    out.control(Opcode::Close, reply.as_bytes());
                    let code = reply
                        .as_bytes()
                        .get(..2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]));
                    first_ending(&mut self.ending, Ending::ClientClosed(code));
                }
                self.notes.push(Note::PeerClosed(description));
                self.state = State::Done;
            }
            Err(failure) => {
                // (Fields, not methods: the message borrow above holds `self.reader`.)
                first_ending(
                    &mut self.ending,
                    Ending::ServerClosed {
                        code: Some(failure.code.0),
                        why: failure.reason.clone(),
                    },
                );
                out.control(Opcode::Close, ClosePayload::new(failure.code, "").as_bytes());
                self.notes.push(Note::Failed {
                    code: failure.code,
                    reason: failure.reason,
                });
                self.state = State::Failed;
            }
        }
        (used, None)
    }

    /// Runs the timers due at `now`: a server ping, the idle timeout, the
    /// unanswered ping, the close timeout.
    pub fn poll(&mut self, now: Time, out: &mut impl Output) {
        self.notice_sent_close(now, out);
        match self.state {
            State::Open => {}
            State::Closing { deadline } => {
                if now >= deadline {
                    self.notes.push(Note::CloseUnanswered);
                    self.state = State::Done;
                }
                return;
            }
            State::Failed | State::Done => return,
        }
        if let Some(deadline) = self.ping_deadline {
            if now >= deadline {
                self.time_out("no pong within WebSocketPingInterval", now, out);
                return;
            }
        }
        if let Some(idle) = self.limits.idle_timeout {
            if now >= self.last_heard + idle {
                self.time_out("idle for WebSocketIdleTimeout", now, out);
                return;
            }
        }
        if let (Some(interval), None) = (self.limits.ping_interval, self.ping_deadline) {
            if now >= self.last_heard + interval {
                self.ping_deadline = Some(now + interval);
                out.control(Opcode::Ping, b"");
            }
        }
    }

    /// Starts the closing handshake from our side (a stopping server, say)
    /// with `code`, waiting at most `timeout` for the peer's answer. Nothing
    /// happens if a close is already under way.
    pub fn close(&mut self, code: CloseCode, why: &str, timeout: Duration, now: Time, out: &mut impl Output) {
        self.notice_sent_close(now, out);
        if self.state != State::Open {
            return;
        }
        self.ends(Ending::ServerClosed {
            code: Some(code.0),
            why: why.to_owned(),
        });
        out.control(Opcode::Close, ClosePayload::new(code, "").as_bytes());
        self.state = State::Closing {
            deadline: now + timeout,
        };
    }

    /// The peer's side of the transport ended (EOF or a read error).
    pub fn peer_gone(&mut self, why: String) {
        self.ends(Ending::Dropped(why));
        self.state = State::Done;
    }

    /// Writing to the peer failed: nothing more can be said to it.
    pub fn write_failed(&mut self, why: String) {
        self.ends(Ending::Dropped(why));
        self.state = State::Done;
    }

    /// What the connection waits for now (after `out`'s latest sends).
    pub fn wants(&mut self, now: Time, out: &impl Output) -> Wants {
        self.notice_sent_close(now, out);
        let deadline = match self.state {
            State::Open => {
                let idle = self.limits.idle_timeout.map(|t| self.last_heard + t);
                let ping = match (self.ping_deadline, self.limits.ping_interval) {
                    (Some(d), _) => Some(d),
                    (None, Some(i)) => Some(self.last_heard + i),
                    (None, None) => None,
                };
                [idle, ping].into_iter().flatten().min()
            }
            State::Closing { deadline } => Some(deadline),
            State::Failed | State::Done => None,
        };
        Wants {
            read: self.reading(),
            deadline,
            done: matches!(self.state, State::Failed | State::Done),
        }
    }

    /// Log-worthy events since the last call, oldest first.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// Whether there are notes to take (cheaper than taking none).
    pub fn has_notes(&self) -> bool {
        !self.notes.is_empty()
    }

    /// How the connection ended, once it has (or is ending).
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Data messages received.
    pub fn messages_in(&self) -> u64 {
        self.messages_in
    }

    /// Payload bytes of the data messages received (after inflating).
    pub fn payload_in(&self) -> u64 {
        self.payload_in
    }

    /// Bytes consumed from the peer.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Whether the connection is still open (no close sent or received).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether more input is useful (see [`Wants::read`]).
    pub fn is_reading(&self) -> bool {
        self.reading()
    }

    fn reading(&self) -> bool {
        matches!(self.state, State::Open | State::Closing { .. })
    }

    fn ends(&mut self, ending: Ending) {
        first_ending(&mut self.ending, ending);
    }

    fn time_out(&mut self, why: &'static str, now: Time, out: &mut impl Output) {
        self.notes.push(Note::TimedOut(why));
        self.close(CloseCode::GOING_AWAY, why, self.limits.close_timeout, now, out);
    }

    /// A close the application queued while we were open starts our side
    /// of the closing handshake.
    fn notice_sent_close(&mut self, now: Time, out: &impl Output) {
        if self.state == State::Open {
            if let Some(code) = out.close_queued() {
                self.ends(Ending::ServerClosed {
                    code,
                    why: "the plugin closed it".to_owned(),
                });
                self.state = State::Closing {
                    deadline: now + self.limits.close_timeout,
                };
            }
        }
    }
}

/// Records how the connection ends, unless an earlier event already did.
fn first_ending(slot: &mut Option<Ending>, ending: Ending) {
    if slot.is_none() {
        *slot = Some(ending);
    }
}

/// Where a [`Connection`] puts its own frames (pongs, pings, closes) and
/// learns whether the application queued a close. [`Outgoing`] is one; a
/// server that keeps its `Outgoing` behind a lock can implement this to
/// take the lock only when there is something to send.
pub trait Output {
    /// Queues a control frame of the connection's own; the drafts' framing
    /// drops what it cannot carry, and nothing follows a close.
    fn control(&mut self, opcode: Opcode, payload: &[u8]);
    /// The close frame queued so far, if any (as [`Sent::close`]).
    fn close_queued(&self) -> Option<Option<u16>>;
}

impl Output for Outgoing {
    fn control(&mut self, opcode: Opcode, payload: &[u8]) {
        let _ = self.send(opcode, payload);
    }

    fn close_queued(&self) -> Option<Option<u16>> {
        self.sent.close
    }
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A close frame has been queued: nothing may follow it.
    Closed,
    /// This framing cannot carry the message (binary or control frames on
    /// the drafts).
    Unsupported,
}

/// What was sent, for the connection's last log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Data messages, counted as they are encoded.
    pub messages: u64,
    /// Their payload bytes (before compressing).
    pub payload: u64,
    /// The close frame, once one is queued: `Some(None)` when it carries no
    /// code (an empty close, or draft-76 framing, which has none).
    pub close: Option<Option<u16>>,
}

/// permessage-deflate for what we send, as negotiated in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    pub negotiated: Negotiated,
    pub level: u32,
    /// Messages shorter than this go out uncompressed.
    pub min_size: usize,
}

/// The sending half of a connection's compression. The compressor is made
/// on the first message worth compressing: it costs a few hundred KiB.
struct Compressor {
    settings: Compression,
    deflater: Option<Deflater>,
    scratch: Vec<u8>,
}

impl Compressor {
    /// Whether a message is compressed: data messages of at least the
    /// configured size (control frames never are, RFC 7692 §6.1).
    fn wants(&self, opcode: Opcode, len: usize) -> bool {
        len >= self.settings.min_size && matches!(opcode, Opcode::Text | Opcode::Binary)
    }

    fn encode(&mut self, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
        let settings = &self.settings;
        let deflater = self
            .deflater
            .get_or_insert_with(|| Deflater::new(&settings.negotiated, settings.level));
        self.scratch.clear();
        deflater.compress(payload, &mut self.scratch);
        let header = FrameHeaderBuf::new(opcode, true, true, self.scratch.len() as u64);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.scratch);
        if self.scratch.capacity() > 256 * 1024 {
            self.scratch = Vec::new();
        }
    }
}

/// The sending side of a connection: encodes messages and control frames
/// in the connection's framing into a queue of bytes to write, in order,
/// and refuses everything after a close frame.
pub struct Outgoing {
    legacy: bool,
    compressor: Option<Compressor>,
    bytes: Vec<u8>,
    sent: Sent,
}

impl Outgoing {
    /// `compression` applies to RFC 6455 only.
    pub fn new(family: &Family, compression: Option<Compression>) -> Outgoing {
        let legacy = matches!(family, Family::Legacy);
        Outgoing {
            legacy,
            compressor: compression.filter(|_| !legacy).map(|settings| Compressor {
                settings,
                deflater: None,
                scratch: Vec::new(),
            }),
            bytes: Vec::new(),
            sent: Sent::default(),
        }
    }

    /// Queues one frame: a data message (text must be valid UTF-8; the
    /// caller checks) or a control frame (at most 125 bytes).
    pub fn send(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), SendError> {
        if self.sent.close.is_some() {
            return Err(SendError::Closed);
        }
        if self.legacy {
            match opcode {
                Opcode::Text => {
                    crate::legacy::encode_text(&mut self.bytes, payload);
                }
                Opcode::Close => {
                    self.bytes.extend_from_slice(&crate::legacy::CLOSE_FRAME);
                }
                _ => return Err(SendError::Unsupported),
            }
        } else {
            match &mut self.compressor {
                Some(c) if c.wants(opcode, payload.len()) => c.encode(opcode, payload, &mut self.bytes),
                _ => {
                    let header = FrameHeaderBuf::new(opcode, true, false, payload.len() as u64);
                    self.bytes.extend_from_slice(header.as_bytes());
                    self.bytes.extend_from_slice(payload);
                }
            }
        }
        match opcode {
            Opcode::Text | Opcode::Binary => {
                self.sent.messages += 1;
                self.sent.payload += payload.len() as u64;
            }
            Opcode::Close => {
                self.sent.close = Some(match (self.legacy, payload) {
                    (false, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
                    _ => None,
                })
            }
            _ => {}
        }
        Ok(())
    }

    /// For sending a large data message without copying it: the header to
    /// write right after [`Outgoing::take`]'s bytes and before the payload.
    /// Counts the message as sent. `None` when the message must be queued
    /// with [`Outgoing::send`] instead (compressed, a control frame, the
    /// drafts' framing), or after a close.
    pub fn direct_header(&mut self, opcode: Opcode, len: usize) -> Option<FrameHeaderBuf> {
        let compressed = self.compressor.as_ref().is_some_and(|c| c.wants(opcode, len));
        if self.legacy || compressed || opcode.is_control() || self.sent.close.is_some() {
            return None;
        }
        self.sent.messages += 1;
        self.sent.payload += len as u64;
        Some(FrameHeaderBuf::new(opcode, true, false, len as u64))
    }

    /// Queues bytes that are not a frame (the draft-76 handshake answer).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Moves everything queued to the end of `out`.
    pub fn take(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.bytes);
        } else {
            out.extend_from_slice(&self.bytes);
            self.bytes.clear();
        }
    }

    /// Bytes queued and not yet taken.
    pub fn pending(&self) -> usize {
        self.bytes.len()
    }

    /// Drops what is queued and its memory (the connection is gone).
    pub fn discard(&mut self) {
        self.bytes = Vec::new();
    }

    pub fn sent(&self) -> Sent {
        self.sent
    }

    /// Whether a close frame has been queued.
    pub fn close_sent(&self) -> bool {
        self.sent.close.is_some()
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
