//! Streaming RFC 6455 frame decoder.
//!
//! Bytes arrive in chunks of any size (one byte at a time works). The decoder
//! unmasks them in place, validates text as it streams, and yields complete
//! messages and control frames. When a whole single-frame message sits in the
//! caller's buffer the event points into that buffer: no copy at all. Only
//! fragmented messages, or frames split across reads, are gathered into the
//! decoder's own buffer, which grows as bytes arrive and never beyond the
//! configured limit, whatever a header claims.

use std::fmt;

use crate::close::{parse_close, CloseCode, CloseError, CloseFrame};
use crate::frame::{
    FrameHeader, FramePrefix, HeaderError, Opcode, ProtocolVersion, MAX_CONTROL_PAYLOAD, RSV1,
};
use crate::mask::apply_mask;
use crate::utf8::Utf8Validator;

/// How the decoder polices the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest message (sum of its frames' payloads) accepted, in bytes.
    pub max_message_size: u64,
    /// A server requires masked frames; a client requires unmasked ones.
    pub expect_masked: bool,
    /// RSV1 was negotiated by permessage-deflate (RFC 7692): allowed on the
    /// first frame of a data message, where it marks the message compressed.
    pub allow_rsv1: bool,
    /// Accept close codes reserved for future use (1016-2999).
    pub allow_reserved_close_codes: bool,
    /// Decides the "too big" close code.
    pub version: ProtocolVersion,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_message_size: 32 * 1024 * 1024,
            expect_masked: true,
            allow_rsv1: false,
            allow_reserved_close_codes: false,
            version: ProtocolVersion::V13,
        }
    }
}

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// What the decoder produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete message, unmasked. Text is valid UTF-8 unless `compressed`
    /// (then it is validated after inflating, by whoever inflates it).
    Message {
        kind: MessageKind,
        data: &'a mut [u8],
        compressed: bool,
    },
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Close(CloseFrame<'a>),
}

/// A protocol violation. Each one fails the connection with a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A client frame without a mask (or a server frame with one).
    MaskMismatch {
        masked: bool,
    },
    /// RSV bits set that no extension negotiated.
    ReservedBits(u8),
    UnknownOpcode(u8),
    /// A control frame without FIN.
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong(u64),
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished.
    ExpectedContinuation,
    /// A 64-bit length with its most significant bit set.
    LengthOverflow,
    /// The message would exceed the configured maximum.
    MessageTooBig {
        limit: u64,
    },
    InvalidUtf8,
    BadClose(CloseError),
}

impl DecodeError {
    /// The status code to close the connection with (RFC 6455 §7.4.1).
    pub fn close_code(&self, version: ProtocolVersion) -> CloseCode {
        match self {
            DecodeError::MessageTooBig { .. } => CloseCode(version.too_big_code()),
            DecodeError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            DecodeError::BadClose(e) => e.close_code(),
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::MaskMismatch { masked: false } => f.write_str("unmasked frame from a client"),
            DecodeError::MaskMismatch { masked: true } => f.write_str("masked frame from a server"),
            DecodeError::ReservedBits(bits) => {
                write!(f, "reserved bits {bits:#04x} set without a negotiated extension")
            }
            DecodeError::UnknownOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            DecodeError::FragmentedControl => f.write_str("fragmented control frame"),
            DecodeError::ControlTooLong(n) => {
                write!(f, "control frame with {n} bytes of payload (max 125)")
            }
            DecodeError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message to continue")
            }
            DecodeError::ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            DecodeError::LengthOverflow => f.write_str("64-bit payload length with the top bit set"),
            DecodeError::MessageTooBig { limit } => {
                write!(f, "message larger than the limit of {limit} bytes")
            }
            DecodeError::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message"),
            DecodeError::BadClose(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<HeaderError> for DecodeError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::LengthOverflow => DecodeError::LengthOverflow,
        }
    }
}

/// Capacity the message buffer may keep between messages; a larger buffer
/// left by a big message is released so idle connections stay small.
const RETAINED_CAPACITY: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Payload,
}

/// Where the event the decoder is about to return lives.
enum Ready {
    InPlace {
        start: usize,
        end: usize,
        kind: MessageKind,
        compressed: bool,
    },
    Gathered {
        kind: MessageKind,
        compressed: bool,
    },
    Control(Opcode),
}

/// The frame currently being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: Opcode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Payload bytes of this frame already consumed (the mask phase).
    offset: usize,
}

/// The streaming decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    config: DecoderConfig,
    state: State,
    header: [u8; FrameHeader::MAX_LEN],
    header_len: usize,
    frame: Frame,
    /// The data message in progress: its type and whether it is compressed.
    message: Option<(MessageKind, bool)>,
    message_len: u64,
    gathered: Vec<u8>,
    release_gathered: bool,
    utf8: Utf8Validator,
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: usize,
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Decoder {
            config,
            state: State::Header,
            header: [0; FrameHeader::MAX_LEN],
            header_len: 0,
            frame: Frame {
                opcode: Opcode::Continuation,
                fin: true,
                mask: None,
                remaining: 0,
                offset: 0,
            },
            message: None,
            message_len: 0,
            gathered: Vec::new(),
            release_gathered: false,
            utf8: Utf8Validator::new(),
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// True between frames with no fragmented message pending: a clean place
    /// for the stream to end.
    pub fn is_idle(&self) -> bool {
        self.state == State::Header && self.header_len == 0 && self.message.is_none()
    }

    /// Bytes held for an unfinished message (what this connection costs).
    pub fn buffered(&self) -> usize {
        self.gathered.capacity()
    }

    /// Consumes bytes from `input` (unmasking them in place) until an event is
    /// complete or the input is used up. Returns how many bytes were consumed
    /// and the event, if one is ready; call again with the rest of the input.
    /// Any error is fatal for the connection.
    pub fn decode<'a>(&'a mut self, input: &'a mut [u8]) -> Result<(usize, Option<Event<'a>>), DecodeError> {
        if self.release_gathered {
            self.release_gathered = false;
            self.gathered.clear();
            if self.gathered.capacity() > RETAINED_CAPACITY {
                self.gathered = Vec::new();
            }
        }
        let mut pos = 0;
        let ready = loop {
            if self.state == State::Header {
                match self.read_header(input, &mut pos)? {
                    Some(()) => {}
                    None => break None,
                }
                let frame = self.frame;
                let rest = input.len() - pos;
                if frame.remaining == 0 {
                    match self.finish_frame()? {
                        Some(r) => break Some(r),
                        None => continue,
                    }
                }
                if frame.fin
                    && !frame.opcode.is_control()
                    && frame.opcode != Opcode::Continuation
                    && rest as u64 >= frame.remaining
                {
                    // The whole message is in the caller's buffer: hand it over in place.
                    let (kind, compressed) = self.message.take().expect("data frame starts a message");
                    let end = pos + frame.remaining as usize;
                    let data = &mut input[pos..end];
                    if let Some(key) = frame.mask {
                        apply_mask(data, key, 0);
                    }
                    if kind == MessageKind::Text && !compressed && crate::utf8::validate(data).is_err() {
                        return Err(DecodeError::InvalidUtf8);
                    }
                    self.message_len = 0;
                    self.state = State::Header;
                    let start = pos;
                    pos = end;
                    break Some(Ready::InPlace {
                        start,
                        end,
                        kind,
                        compressed,
                    });
                }
                self.state = State::Payload;
            }
            let take = (input.len() - pos).min(usize::try_from(self.frame.remaining).unwrap_or(usize::MAX));
            if take == 0 {
                break None;
            }
            let chunk = &mut input[pos..pos + take];
            pos += take;
            if let Some(key) = self.frame.mask {
                apply_mask(chunk, key, self.frame.offset);
            }
            self.frame.offset += take;
            self.frame.remaining -= take as u64;
            if self.frame.opcode.is_control() {
                self.control[self.control_len..self.control_len + take].copy_from_slice(chunk);
                self.control_len += take;
            } else {
                let (kind, compressed) = self.message.expect("data frame belongs to a message");
                if kind == MessageKind::Text && !compressed {
                    self.utf8.feed(chunk).map_err(|_| DecodeError::InvalidUtf8)?;
                }
                self.gather(chunk);
            }
            if self.frame.remaining == 0 {
                self.state = State::Header;
                if let Some(r) = self.finish_frame()? {
                    break Some(r);
                }
            }
        };
        let event = match ready {
            None => None,
            Some(Ready::InPlace {
                start,
                end,
                kind,
                compressed,
            }) => Some(Event::Message {
                kind,
                data: &mut input[start..end],
                compressed,
            }),
            Some(Ready::Gathered { kind, compressed }) => {
                self.release_gathered = true;
                Some(Event::Message {
                    kind,
                    data: &mut self.gathered[..],
                    compressed,
                })
            }
            Some(Ready::Control(op)) => {
                let payload = &self.control[..self.control_len];
                Some(match op {
                    Opcode::Ping => Event::Ping(payload),
                    Opcode::Pong => Event::Pong(payload),
                    _ => Event::Close(
                        parse_close(payload, self.config.allow_reserved_close_codes)
                            .map_err(DecodeError::BadClose)?,
                    ),
                })
            }
        };
        Ok((pos, event))
    }

    /// Reads (or finishes reading) a frame header and checks it against the
    /// stream state. `Ok(None)` means the input ran out first.
    fn read_header(&mut self, input: &[u8], pos: &mut usize) -> Result<Option<()>, DecodeError> {
        let (header, used) = if self.header_len == 0 {
            match FrameHeader::parse(&input[*pos..])? {
                Some(parsed) => parsed,
                None => {
                    let rest = &input[*pos..];
                    self.header[..rest.len()].copy_from_slice(rest);
                    self.header_len = rest.len();
                    *pos = input.len();
                    self.check_partial_header()?;
                    return Ok(None);
                }
            }
        } else {
            let had = self.header_len;
            let take = (FrameHeader::MAX_LEN - had).min(input.len() - *pos);
            self.header[had..had + take].copy_from_slice(&input[*pos..*pos + take]);
            match FrameHeader::parse(&self.header[..had + take])? {
                Some((header, len)) => {
                    self.header_len = 0;
                    (header, len - had)
                }
                None => {
                    self.header_len = had + take;
                    *pos += take;
                    self.check_partial_header()?;
                    return Ok(None);
                }
            }
        };
        *pos += used;
        self.start_frame(header)?;
        Ok(Some(()))
    }

    /// Checks the buffered start of a header once its length is known.
    fn check_partial_header(&self) -> Result<(), DecodeError> {
        if let Some(prefix) = FrameHeader::parse_prefix(&self.header[..self.header_len])? {
            self.check_frame(&prefix)?;
        }
        Ok(())
    }

    /// Everything that can be wrong with a frame given the stream so far,
    /// decided from the header's first bytes alone: a frame is refused as
    /// soon as its length field has arrived, before its masking key or any
    /// payload byte. Returns the opcode.
    fn check_frame(&self, h: &FramePrefix) -> Result<Opcode, DecodeError> {
        let opcode = Opcode::from_u8(h.opcode).ok_or(DecodeError::UnknownOpcode(h.opcode))?;
        let starts_message = matches!(opcode, Opcode::Text | Opcode::Binary);
        let allowed_rsv = if self.config.allow_rsv1 && starts_message {
            RSV1
        } else {
            0
        };
        if h.rsv & !allowed_rsv != 0 {
            return Err(DecodeError::ReservedBits(h.rsv));
        }
        if h.masked != self.config.expect_masked {
            return Err(DecodeError::MaskMismatch { masked: h.masked });
        }
        if opcode.is_control() {
            if !h.fin {
                return Err(DecodeError::FragmentedControl);
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(DecodeError::ControlTooLong(h.payload_len));
            }
            // A limit below 125 bytes bounds control frames too.
            if h.payload_len > self.config.max_message_size {
                return Err(DecodeError::MessageTooBig {
                    limit: self.config.max_message_size,
                });
            }
            return Ok(opcode);
        }
        let compressed = match (opcode, self.message) {
            (Opcode::Continuation, None) => return Err(DecodeError::UnexpectedContinuation),
            (Opcode::Text | Opcode::Binary, Some(_)) => return Err(DecodeError::ExpectedContinuation),
            (Opcode::Continuation, Some((_, compressed))) => compressed,
            _ => h.rsv & RSV1 != 0,
        };
        // The limit is on the message the plugin sees; a compressed one may
        // be slightly larger on the wire than inflated, and the inflater
        // enforces the limit on the inflated bytes.
        let limit = if compressed {
            crate::deflate::max_deflated_len(self.config.max_message_size)
        } else {
            self.config.max_message_size
        };
        if self.message_len.saturating_add(h.payload_len) > limit {
            return Err(DecodeError::MessageTooBig {
                limit: self.config.max_message_size,
            });
        }
        Ok(opcode)
    }

    fn start_frame(&mut self, h: FrameHeader) -> Result<(), DecodeError> {
        let opcode = self.check_frame(&h.prefix())?;
        if opcode.is_control() {
            self.control_len = 0;
        } else {
            self.message_len += h.payload_len;
            if matches!(opcode, Opcode::Text | Opcode::Binary) {
                let kind = if opcode == Opcode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                self.message = Some((kind, h.rsv & RSV1 != 0));
                self.utf8.reset();
            }
        }
        self.frame = Frame {
            opcode,
            fin: h.fin,
            mask: h.mask,
            remaining: h.payload_len,
            offset: 0,
        };
        Ok(())
    }

    /// Called when a frame's payload is complete (possibly empty).
    fn finish_frame(&mut self) -> Result<Option<Ready>, DecodeError> {
        self.state = State::Header;
        let frame = self.frame;
        if frame.opcode.is_control() {
            return Ok(Some(Ready::Control(frame.opcode)));
        }
        if !frame.fin {
            return Ok(None);
        }
        let (kind, compressed) = self.message.take().expect("data frame belongs to a message");
        if kind == MessageKind::Text && !compressed {
            self.utf8.finish().map_err(|_| DecodeError::InvalidUtf8)?;
        }
        self.message_len = 0;
        Ok(Some(Ready::Gathered { kind, compressed }))
    }

    /// Appends payload to the message buffer, growing it geometrically but
    /// never past the message limit.
    fn gather(&mut self, chunk: &[u8]) {
        let need = self.gathered.len() + chunk.len();
        if need > self.gathered.capacity() {
            let limit = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
            let target = (self.gathered.capacity() * 2).max(4096).min(limit).max(need);
            self.gathered.reserve_exact(target - self.gathered.len());
        }
        self.gathered.extend_from_slice(chunk);
    }
}

/// An [`Event`] that owns its data (for tests, fuzzing and simple callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEvent {
    Message {
        kind: MessageKind,
        data: Vec<u8>,
        compressed: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: Option<u16>,
        reason: String,
    },
}

impl From<Event<'_>> for OwnedEvent {
    fn from(e: Event<'_>) -> Self {
        match e {
            Event::Message {
                kind,
                data,
                compressed,
            } => OwnedEvent::Message {
                kind,
                data: data.to_vec(),
                compressed,
            },
            Event::Ping(p) => OwnedEvent::Ping(p.to_vec()),
            Event::Pong(p) => OwnedEvent::Pong(p.to_vec()),
            Event::Close(c) => OwnedEvent::Close {
                code: c.code.map(|c| c.0),
                reason: c.reason.to_owned(),
            },
        }
    }
}

impl Decoder {
    /// Decodes everything in `input`, collecting owned events. Stops at the
    /// first error, returning the events decoded before it.
    pub fn decode_all(&mut self, input: &mut [u8]) -> (Vec<OwnedEvent>, Result<(), DecodeError>) {
        let mut events = Vec::new();
        let mut pos = 0;
        let len = input.len();
        loop {
            match self.decode(&mut input[pos..]) {
                Ok((used, event)) => {
                    pos += used;
                    match event {
                        Some(e) => events.push(e.into()),
                        None if pos == len => return (events, Ok(())),
                        None => {}
                    }
                }
                Err(e) => return (events, Err(e)),
            }
        }
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
