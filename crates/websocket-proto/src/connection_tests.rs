//! Tests of the sans-I/O connection: the closing handshake in both
//! directions, the timers, ping replies, the close code of every failure,
//! permessage-deflate both ways, size limits and counters, and property
//! tests that feed arbitrary streams in arbitrary chunks.

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress};
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::decoder::DecodeError;
use crate::deflate::{negotiate, DeflateConfig};
use crate::encoder::{write_frame, write_masked_frame};
use crate::handshake::parse_extensions;
use crate::legacy::LegacyDecodeError;

// ---- Helpers: the client's side ----

const KEY: [u8; 4] = [0x9c, 0x21, 0x5e, 0xf3];
const T0: Time = Duration::from_secs(1000);
const VERSIONS: [ProtocolVersion; 3] = [ProtocolVersion::V13, ProtocolVersion::V8, ProtocolVersion::V7];
/// What RFC 7692 §7.2.1 strips from every compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const NS: Duration = Duration::from_nanos(1);

fn rfc(version: ProtocolVersion) -> Family {
    Family::Rfc6455 {
        version,
        deflate: None,
    }
}

fn negotiated(offer: &str) -> Negotiated {
    let offers = parse_extensions(offer).expect("offer parses");
    negotiate(&offers, &DeflateConfig::default())
        .expect("valid offer")
        .expect("offer accepted")
}

fn with_deflate(version: ProtocolVersion, offer: &str) -> Family {
    Family::Rfc6455 {
        version,
        deflate: Some(negotiated(offer)),
    }
}

fn limits(max_message_size: u64) -> Limits {
    Limits {
        max_message_size,
        ..Limits::default()
    }
}

/// A masked client frame.
fn client(op: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, op, fin, payload, KEY);
    out
}

/// A whole masked client message in one frame.
fn msg(op: Opcode, payload: &[u8]) -> Vec<u8> {
    client(op, true, payload)
}

/// A masked client frame with RSV1 as given (a compressed message's first frame).
fn client_rsv1(op: Opcode, fin: bool, rsv1: bool, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = FrameHeaderBuf::masked(op, fin, rsv1, payload.len() as u64, key)
        .as_bytes()
        .to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    crate::mask::apply_mask(&mut out[start..], key, 0);
    out
}

/// A masked client frame with an arbitrary first byte (bad opcodes, RSV bits, FIN).
fn raw(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = client(Opcode::Binary, true, payload);
    out[0] = first;
    out
}

fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    body
}

fn client_close(code: u16, reason: &[u8]) -> Vec<u8> {
    msg(Opcode::Close, &close_body(code, reason))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn legacy_text(text: &[u8]) -> Vec<u8> {
    cat(&[&[0x00], text, &[0xff]])
}

/// A client's raw-deflate compressor (RFC 7692 §7.2.1): sync flush, tail stripped.
struct ClientDeflate {
    z: Compress,
    no_context_takeover: bool,
}

impl ClientDeflate {
    fn new(no_context_takeover: bool) -> Self {
        ClientDeflate {
            z: Compress::new(flate2::Compression::new(6), false),
            no_context_takeover,
        }
    }

    fn compress(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut consumed = 0;
        loop {
            out.reserve(payload.len() - consumed + 64);
            let before = self.z.total_in();
            self.z
                .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .expect("compressing");
            consumed += (self.z.total_in() - before) as usize;
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.no_context_takeover {
            self.z.reset();
        }
        out
    }
}

/// The client's decompressor for our compressed frames (RFC 7692 §7.2.2).
struct ClientInflate(Decompress);

impl ClientInflate {
    fn new() -> Self {
        ClientInflate(Decompress::new(false))
    }

    fn inflate(&mut self, body: &[u8]) -> Vec<u8> {
        let input = cat(&[body, &TAIL]);
        let mut out = Vec::with_capacity(4 * input.len() + 64);
        let mut pos = 0;
        loop {
            let (before, had) = (self.0.total_in(), out.len());
            self.0
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
                .expect("the server's deflate data inflates");
            let used = (self.0.total_in() - before) as usize;
            pos += used;
            if pos == input.len() && out.len() < out.capacity() {
                return out;
            }
            let full = out.len() == out.capacity();
            assert!(full || used > 0 || out.len() > had, "inflating makes no progress");
            out.reserve(out.capacity().max(64));
        }
    }
}

// ---- Helpers: reading what we sent ----

/// One frame of ours as the client reads it (payload inflated if RSV1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
}

/// An uncompressed frame we expect.
fn sf(op: Opcode, payload: &[u8]) -> Frame {
    Frame {
        fin: true,
        rsv: 0,
        opcode: op as u8,
        payload: payload.to_vec(),
    }
}

/// A compressed frame we expect (its inflated payload).
fn sfz(op: Opcode, payload: &[u8]) -> Frame {
    Frame {
        rsv: 0x40,
        ..sf(op, payload)
    }
}

fn close_of(code: u16) -> Frame {
    sf(Opcode::Close, &code.to_be_bytes())
}

/// Splits our output into frames, checking each is unmasked, whole and
/// uses the shortest length encoding. Nothing may be left over.
fn parse_frames(bytes: &[u8], inflate: &mut ClientInflate) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        assert!(bytes.len() - pos >= 2, "truncated header at {pos}");
        let (b0, b1) = (bytes[pos], bytes[pos + 1]);
        assert_eq!(b1 & 0x80, 0, "server frames are unmasked");
        let (len, header) = match b1 & 0x7f {
            126 => {
                let len = u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]) as usize;
                assert!(len >= 126, "16-bit length {len} could be shorter");
                (len, 4)
            }
            127 => {
                let len = u64::from_be_bytes(bytes[pos + 2..pos + 10].try_into().unwrap()) as usize;
                assert!(len > 0xffff, "64-bit length {len} could be shorter");
                (len, 10)
            }
            n => (n as usize, 2),
        };
        let start = pos + header;
        assert!(start + len <= bytes.len(), "truncated payload at {pos}");
        let payload = &bytes[start..start + len];
        let rsv = b0 & 0x70;
        let opcode = b0 & 0x0f;
        let payload = if rsv & 0x40 != 0 {
            assert!(opcode == 1 || opcode == 2, "RSV1 on opcode {opcode}");
            inflate.inflate(payload)
        } else {
            payload.to_vec()
        };
        frames.push(Frame {
            fin: b0 & 0x80 != 0,
            rsv,
            opcode,
            payload,
        });
        pos = start + len;
    }
    frames
}

/// A draft-76 frame of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LegacyFrame {
    Text(Vec<u8>),
    Close,
}

fn parse_legacy(mut bytes: &[u8]) -> Vec<LegacyFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        match bytes {
            [0xff, 0x00, rest @ ..] => {
                frames.push(LegacyFrame::Close);
                bytes = rest;
            }
            [0x00, rest @ ..] => {
                let end = rest.iter().position(|&b| b == 0xff).expect("terminated text");
                frames.push(LegacyFrame::Text(rest[..end].to_vec()));
                bytes = &rest[end + 1..];
            }
            _ => panic!("not a draft-76 frame: {bytes:02x?}"),
        }
    }
    frames
}

type Received = Vec<(MessageKind, Vec<u8>)>;

/// Feeds one read the way a server does: `receive` on the rest until it is
/// used up or the connection stops reading. Returns the bytes consumed and
/// the messages.
fn feed_chunk(conn: &mut Connection, chunk: &mut [u8], now: Time, out: &mut Outgoing) -> (usize, Received) {
    let mut pos = 0;
    let mut messages = Vec::new();
    while pos < chunk.len() {
        let (used, message) = conn.receive(&mut chunk[pos..], now, out);
        pos += used;
        let message = message.map(|m| (m.kind, m.data.to_vec()));
        let none = message.is_none();
        messages.extend(message);
        if used == 0 && none {
            break;
        }
    }
    (pos, messages)
}

/// A connection with its sending side and a clock.
struct Peer {
    conn: Connection,
    out: Outgoing,
    now: Time,
    inflate: ClientInflate,
}

impl Peer {
    fn new(family: Family, limits: Limits) -> Peer {
        Peer::with(family, limits, None)
    }

    fn with(family: Family, limits: Limits, compression: Option<Compression>) -> Peer {
        Peer {
            conn: Connection::new(&family, limits, T0),
            out: Outgoing::new(&family, compression),
            now: T0,
            inflate: ClientInflate::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> (usize, Received) {
        let mut buf = bytes.to_vec();
        feed_chunk(&mut self.conn, &mut buf, self.now, &mut self.out)
    }

    /// Feeds `bytes` and expects all of them consumed; returns the messages.
    fn feed_all(&mut self, bytes: &[u8]) -> Received {
        let (used, messages) = self.feed(bytes);
        assert_eq!(used, bytes.len(), "all input consumed");
        messages
    }

    fn feed_at(&mut self, now: Time, bytes: &[u8]) -> Received {
        self.now = now;
        self.feed_all(bytes)
    }

    fn poll(&mut self, now: Time) {
        self.now = now;
        self.conn.poll(now, &mut self.out);
    }

    fn close(&mut self, code: u16, why: &str, timeout: Duration) {
        self.conn
            .close(CloseCode(code), why, timeout, self.now, &mut self.out);
    }

    fn wants(&mut self) -> Wants {
        self.conn.wants(self.now, &self.out)
    }

    fn deadline(&mut self) -> Option<Time> {
        self.wants().deadline
    }

    fn take(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.out.take(&mut bytes);
        bytes
    }

    fn frames(&mut self) -> Vec<Frame> {
        let bytes = self.take();
        parse_frames(&bytes, &mut self.inflate)
    }

    fn legacy_frames(&mut self) -> Vec<LegacyFrame> {
        parse_legacy(&self.take())
    }

    fn notes(&mut self) -> Vec<Note> {
        let had = self.conn.has_notes();
        let notes = self.conn.take_notes();
        assert_eq!(had, !notes.is_empty());
        notes
    }

    fn ending(&self) -> Option<Ending> {
        self.conn.ending().cloned()
    }

    /// Closed for good: nothing read, nothing sent, no timers.
    fn assert_finished(&mut self) {
        self.notes();
        let w = self.wants();
        assert!(w.done && !w.read, "{w:?}");
        assert_eq!(w.deadline, None);
        assert!(!self.conn.is_open());
        let more = cat(&[&msg(Opcode::Text, b"more"), &msg(Opcode::Ping, b"p")]);
        assert_eq!(self.feed(&more), (0, vec![]));
        let bytes_in = self.conn.bytes_in();
        assert_eq!(self.out.send(Opcode::Text, b"late"), Err(SendError::Closed));
        assert_eq!(
            self.out.send(Opcode::Close, &[0x03, 0xe8]),
            Err(SendError::Closed)
        );
        assert!(self.out.direct_header(Opcode::Binary, 1000).is_none());
        self.poll(self.now + secs(3600));
        assert_eq!(self.out.pending(), 0, "nothing sent after the end");
        assert!(self.notes().is_empty());
        assert_eq!(self.conn.bytes_in(), bytes_in);
    }
}

fn server_closed(code: Option<u16>, why: &str) -> Option<Ending> {
    Some(Ending::ServerClosed {
        code,
        why: why.to_owned(),
    })
}

fn text(s: &str) -> (MessageKind, Vec<u8>) {
    (MessageKind::Text, s.as_bytes().to_vec())
}

fn binary(b: &[u8]) -> (MessageKind, Vec<u8>) {
    (MessageKind::Binary, b.to_vec())
}

// ---- The peer closes ----

#[test]
fn peer_close_with_code_is_echoed() {
    for version in VERSIONS {
        let mut p = Peer::new(rfc(version), Limits::default());
        assert!(p.feed_all(&client_close(1000, b"")).is_empty());
        assert_eq!(p.frames(), [close_of(1000)]);
        assert_eq!(p.ending(), Some(Ending::ClientClosed(Some(1000))));
        assert_eq!(p.notes(), [Note::PeerClosed("code 1000".to_owned())]);
        assert_eq!(p.out.sent().close, Some(Some(1000)));
        assert_eq!(p.out.sent().messages, 0);
        p.assert_finished();
    }
}

#[test]
fn peer_close_with_reason_is_echoed_without_it() {
    for version in VERSIONS {
        let mut p = Peer::new(rfc(version), Limits::default());
        p.feed_all(&client_close(4000, "bye ✓".as_bytes()));
        assert_eq!(p.frames(), [close_of(4000)]);
        assert_eq!(p.ending(), Some(Ending::ClientClosed(Some(4000))));
        assert_eq!(
            p.notes(),
            [Note::PeerClosed("code 4000, reason \"bye ✓\"".to_owned())]
        );
        assert_eq!(p.out.sent().close, Some(Some(4000)));
        p.assert_finished();
    }
}

#[test]
fn peer_empty_close_gets_an_empty_close() {
    for version in VERSIONS {
        let mut p = Peer::new(rfc(version), Limits::default());
        p.feed_all(&msg(Opcode::Close, b""));
        assert_eq!(p.frames(), [sf(Opcode::Close, b"")]);
        assert_eq!(p.ending(), Some(Ending::ClientClosed(None)));
        assert_eq!(p.notes(), [Note::PeerClosed("no status code".to_owned())]);
        assert_eq!(p.out.sent().close, Some(None));
        p.assert_finished();
    }
}

#[test]
fn nothing_after_the_peer_close_is_consumed() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    let head = cat(&[&msg(Opcode::Text, b"before"), &client_close(1001, b"")]);
    let input = cat(&[&head, &msg(Opcode::Text, b"after"), &msg(Opcode::Ping, b"p")]);
    let (used, messages) = p.feed(&input);
    assert_eq!(used, head.len());
    assert_eq!(messages, [text("before")]);
    assert_eq!(
        p.frames(),
        [close_of(1001)],
        "the ping after the close is not answered"
    );
    assert_eq!(p.conn.bytes_in(), head.len() as u64);
    assert_eq!(p.conn.messages_in(), 1);
    assert_eq!(p.notes(), [Note::PeerClosed("code 1001".to_owned())]);
    p.assert_finished();
}

#[test]
fn peer_close_split_byte_by_byte() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    let close = client_close(3000, b"x");
    for (i, b) in close.iter().enumerate() {
        assert_eq!(p.feed(&[*b]), (1, vec![]));
        let done = i + 1 == close.len();
        assert_eq!(p.wants().done, done);
    }
    assert_eq!(p.frames(), [close_of(3000)]);
    assert_eq!(
        p.notes(),
        [Note::PeerClosed("code 3000, reason \"x\"".to_owned())]
    );
    p.assert_finished();
}

#[test]
fn legacy_peer_close() {
    let mut p = Peer::new(Family::Legacy, Limits::default());
    let head = cat(&[&legacy_text(b"hi"), &crate::legacy::CLOSE_FRAME]);
    let (used, messages) = p.feed(&cat(&[&head, &legacy_text(b"after")]));
    assert_eq!((used, messages), (head.len(), vec![text("hi")]));
    assert_eq!(p.legacy_frames(), [LegacyFrame::Close]);
    assert_eq!(p.ending(), Some(Ending::ClientClosed(None)));
    assert_eq!(p.notes(), [Note::PeerClosed("closing frame".to_owned())]);
    assert_eq!(p.out.sent().close, Some(None));
    p.assert_finished();
}

// ---- We close ----

#[test]
fn our_close_is_answered() {
    for version in VERSIONS {
        let mut p = Peer::new(rfc(version), Limits::default());
        p.close(1001, "server stopping", secs(3));
        assert_eq!(p.frames(), [close_of(1001)]);
        assert!(!p.conn.is_open());
        assert_eq!(
            p.wants(),
            Wants {
                read: true,
                deadline: Some(T0 + secs(3)),
                done: false
            }
        );
        assert_eq!(p.out.send(Opcode::Text, b"x"), Err(SendError::Closed));
        assert_eq!(p.out.sent().close, Some(Some(1001)));

        // What the peer sent before it saw our close is read and dropped,
        // pings included.
        let in_flight = cat(&[
            &msg(Opcode::Text, b"dropped"),
            &client(Opcode::Binary, false, b"frag"),
            &msg(Opcode::Ping, b"unanswered"),
            &client(Opcode::Continuation, true, b"ment"),
            &msg(Opcode::Pong, b""),
        ]);
        assert!(p.feed_at(T0 + secs(1), &in_flight).is_empty());
        assert!(p.frames().is_empty());
        assert_eq!(p.conn.messages_in(), 0);
        assert_eq!(p.conn.bytes_in(), in_flight.len() as u64);
        assert!(p.notes().is_empty());

        // A second close changes nothing.
        p.close(1000, "again", secs(60));
        assert!(p.frames().is_empty());
        assert_eq!(p.deadline(), Some(T0 + secs(3)));

        p.feed_all(&client_close(1001, b""));
        assert!(p.frames().is_empty(), "the peer's close answers ours");
        assert_eq!(p.ending(), server_closed(Some(1001), "server stopping"));
        assert_eq!(p.notes(), [Note::PeerClosed("code 1001".to_owned())]);
        p.assert_finished();
    }
}

#[test]
fn our_close_times_out() {
    for version in VERSIONS {
        let mut p = Peer::new(rfc(version), Limits::default());
        p.now = T0 + secs(7);
        p.close(1000, "bye", secs(2));
        let deadline = T0 + secs(9);
        p.poll(deadline - NS);
        assert!(p.notes().is_empty());
        assert_eq!(p.deadline(), Some(deadline));
        assert!(!p.wants().done);
        p.poll(deadline);
        assert_eq!(p.notes(), [Note::CloseUnanswered]);
        assert_eq!(p.frames(), [close_of(1000)]);
        assert_eq!(p.ending(), server_closed(Some(1000), "bye"));
        p.assert_finished();
    }
}

#[test]
fn application_close_starts_the_handshake() {
    for version in VERSIONS {
        let limits = Limits {
            close_timeout: secs(4),
            ..Limits::default()
        };
        let mut p = Peer::new(rfc(version), limits);
        p.out.send(Opcode::Close, &close_body(1000, b"ok")).unwrap();
        assert_eq!(p.out.sent().close, Some(Some(1000)));
        assert!(p.out.close_sent());
        // The connection notices at its next call, and times from then.
        p.now = T0 + secs(1);
        assert_eq!(
            p.wants(),
            Wants {
                read: true,
                deadline: Some(T0 + secs(5)),
                done: false
            }
        );
        assert!(!p.conn.is_open());
        assert_eq!(p.ending(), server_closed(Some(1000), "the plugin closed it"));
        assert_eq!(p.frames(), [sf(Opcode::Close, &close_body(1000, b"ok"))]);

        let in_flight = cat(&[&msg(Opcode::Text, b"dropped"), &msg(Opcode::Ping, b"p")]);
        assert!(p.feed_all(&in_flight).is_empty());
        assert!(p.frames().is_empty());
        p.feed_all(&client_close(1000, b""));
        assert!(p.frames().is_empty());
        assert_eq!(p.notes(), [Note::PeerClosed("code 1000".to_owned())]);
        assert_eq!(p.ending(), server_closed(Some(1000), "the plugin closed it"));
        p.assert_finished();
    }
}

#[test]
fn application_close_noticed_by_receive() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.out.send(Opcode::Close, &close_body(4001, b"")).unwrap();
    // A message arriving right after the plugin's close is already dropped.
    assert!(p.feed_all(&msg(Opcode::Text, b"x")).is_empty());
    assert_eq!(p.conn.messages_in(), 0);
    assert_eq!(p.deadline(), Some(T0 + Limits::default().close_timeout));
    assert_eq!(p.ending(), server_closed(Some(4001), "the plugin closed it"));
}

#[test]
fn application_close_times_out() {
    let limits = Limits {
        close_timeout: secs(4),
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    p.out.send(Opcode::Close, &close_body(1000, b"")).unwrap();
    p.poll(T0);
    assert_eq!(p.deadline(), Some(T0 + secs(4)));
    p.poll(T0 + secs(4) - NS);
    assert!(p.notes().is_empty());
    p.poll(T0 + secs(4));
    assert_eq!(p.notes(), [Note::CloseUnanswered]);
    assert_eq!(p.frames(), [close_of(1000)]);
    p.assert_finished();
}

#[test]
fn application_empty_close() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.out.send(Opcode::Close, b"").unwrap();
    assert_eq!(p.out.sent().close, Some(None));
    p.poll(T0);
    assert_eq!(p.ending(), server_closed(None, "the plugin closed it"));
    assert_eq!(p.frames(), [sf(Opcode::Close, b"")]);
    p.feed_all(&msg(Opcode::Close, b""));
    assert!(p.frames().is_empty());
    p.assert_finished();
}

#[test]
fn close_after_the_peer_closed_does_nothing() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.feed_all(&client_close(1000, b""));
    p.take();
    p.close(1001, "too late", secs(5));
    assert_eq!(p.out.pending(), 0);
    assert_eq!(p.ending(), Some(Ending::ClientClosed(Some(1000))));
    p.assert_finished();
}

#[test]
fn legacy_our_close() {
    let mut p = Peer::new(Family::Legacy, Limits::default());
    p.close(1001, "server stopping", secs(3));
    assert_eq!(p.legacy_frames(), [LegacyFrame::Close]);
    assert_eq!(p.out.sent().close, Some(None), "draft-76 closes carry no code");
    // The ending keeps the code we meant, for the log.
    assert_eq!(p.ending(), server_closed(Some(1001), "server stopping"));
    assert_eq!(p.deadline(), Some(T0 + secs(3)));
    assert!(p.feed_all(&legacy_text(b"dropped")).is_empty());
    assert_eq!(p.conn.messages_in(), 0);
    p.feed_all(&crate::legacy::CLOSE_FRAME);
    assert!(p.take().is_empty());
    assert_eq!(p.notes(), [Note::PeerClosed("closing frame".to_owned())]);
    p.assert_finished();
}

#[test]
fn legacy_close_times_out() {
    let mut p = Peer::new(Family::Legacy, Limits::default());
    p.close(1000, "bye", secs(3));
    p.poll(T0 + secs(3) - NS);
    assert!(p.notes().is_empty());
    p.poll(T0 + secs(3));
    assert_eq!(p.notes(), [Note::CloseUnanswered]);
    assert_eq!(p.legacy_frames(), [LegacyFrame::Close]);
    p.assert_finished();
}

#[test]
fn legacy_application_close() {
    let mut p = Peer::new(Family::Legacy, Limits::default());
    p.out.send(Opcode::Close, &close_body(1000, b"")).unwrap();
    assert_eq!(p.out.sent().close, Some(None));
    p.poll(T0);
    assert_eq!(p.ending(), server_closed(None, "the plugin closed it"));
    assert_eq!(p.legacy_frames(), [LegacyFrame::Close]);
    p.feed_all(&crate::legacy::CLOSE_FRAME);
    p.assert_finished();
}

// ---- Timers ----

#[test]
fn idle_timeout_at_exactly_last_heard_plus_idle() {
    for version in VERSIONS {
        let limits = Limits {
            idle_timeout: Some(secs(10)),
            close_timeout: secs(5),
            ..Limits::default()
        };
        let mut p = Peer::new(rfc(version), limits);
        assert_eq!(p.deadline(), Some(T0 + secs(10)));
        p.poll(T0 + secs(10) - NS);
        assert!(p.take().is_empty() && p.notes().is_empty() && p.conn.is_open());
        p.poll(T0 + secs(10));
        assert_eq!(p.frames(), [close_of(1001)]);
        assert_eq!(p.notes(), [Note::TimedOut("idle for WebSocketIdleTimeout")]);
        assert_eq!(
            p.ending(),
            server_closed(Some(1001), "idle for WebSocketIdleTimeout")
        );
        assert_eq!(
            p.wants(),
            Wants {
                read: true,
                deadline: Some(T0 + secs(15)),
                done: false
            }
        );
        p.poll(T0 + secs(15));
        assert_eq!(p.notes(), [Note::CloseUnanswered]);
        p.assert_finished();
    }
}

#[test]
fn any_received_byte_resets_the_idle_timer() {
    let limits = Limits {
        idle_timeout: Some(secs(10)),
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    // An empty read is not hearing from the peer.
    assert_eq!(p.conn.receive(&mut [], T0 + secs(5), &mut p.out).0, 0);
    assert_eq!(p.deadline(), Some(T0 + secs(10)));
    // One byte of a header is.
    let frame = msg(Opcode::Text, b"hello");
    assert!(p.feed_at(T0 + secs(6), &frame[..1]).is_empty());
    assert_eq!(p.deadline(), Some(T0 + secs(16)));
    p.poll(T0 + secs(10));
    assert!(p.take().is_empty() && p.conn.is_open());
    assert_eq!(p.feed_at(T0 + secs(12), &frame[1..]), [text("hello")]);
    assert_eq!(p.deadline(), Some(T0 + secs(22)));
    p.poll(T0 + secs(22) - NS);
    assert!(p.take().is_empty());
    p.poll(T0 + secs(22));
    assert_eq!(p.frames(), [close_of(1001)]);
}

#[test]
fn ping_interval_pings_then_gives_up() {
    for version in VERSIONS {
        let limits = Limits {
            ping_interval: Some(secs(10)),
            close_timeout: secs(5),
            ..Limits::default()
        };
        let mut p = Peer::new(rfc(version), limits);
        assert_eq!(p.deadline(), Some(T0 + secs(10)));
        p.poll(T0 + secs(10) - NS);
        assert!(p.take().is_empty());
        p.poll(T0 + secs(10));
        assert_eq!(p.frames(), [sf(Opcode::Ping, b"")]);
        assert!(p.notes().is_empty());
        assert_eq!(p.deadline(), Some(T0 + secs(20)));
        // One ping at a time.
        p.poll(T0 + secs(15));
        p.poll(T0 + secs(20) - NS);
        assert!(p.take().is_empty() && p.conn.is_open());
        p.poll(T0 + secs(20));
        assert_eq!(p.frames(), [close_of(1001)]);
        let why = "no pong within WebSocketPingInterval";
        assert_eq!(p.notes(), [Note::TimedOut(why)]);
        assert_eq!(p.ending(), server_closed(Some(1001), why));
        assert_eq!(p.deadline(), Some(T0 + secs(25)));
        assert!(p.wants().read);
        // Closing: no more pings.
        p.poll(T0 + secs(25) - NS);
        assert!(p.take().is_empty());
        p.feed_all(&client_close(1001, b""));
        assert!(p.take().is_empty());
        p.assert_finished();
    }
}

#[test]
fn a_pong_cancels_the_pending_ping() {
    let limits = Limits {
        ping_interval: Some(secs(10)),
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    p.poll(T0 + secs(10));
    assert_eq!(p.frames(), [sf(Opcode::Ping, b"")]);
    p.feed_at(T0 + secs(12), &msg(Opcode::Pong, b""));
    assert_eq!(p.deadline(), Some(T0 + secs(22)));
    p.poll(T0 + secs(20));
    assert!(p.take().is_empty() && p.conn.is_open());
    p.poll(T0 + secs(22));
    assert_eq!(p.frames(), [sf(Opcode::Ping, b"")], "the next ping");
    assert_eq!(p.deadline(), Some(T0 + secs(32)));
}

#[test]
fn any_byte_cancels_the_pending_ping() {
    let limits = Limits {
        ping_interval: Some(secs(10)),
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    p.poll(T0 + secs(10));
    p.take();
    // Half a header of a data frame is as good as a pong.
    p.feed_at(T0 + secs(19), &msg(Opcode::Binary, b"x")[..1]);
    assert_eq!(p.deadline(), Some(T0 + secs(29)));
    p.poll(T0 + secs(20));
    assert!(p.take().is_empty() && p.conn.is_open());
    assert!(p.notes().is_empty());
}

#[test]
fn idle_timeout_and_ping_interval_together() {
    // The ping comes first; the idle timeout still closes on time.
    let limits = Limits {
        idle_timeout: Some(secs(15)),
        ping_interval: Some(secs(10)),
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    assert_eq!(p.deadline(), Some(T0 + secs(10)));
    p.poll(T0 + secs(10));
    assert_eq!(p.frames(), [sf(Opcode::Ping, b"")]);
    assert_eq!(p.deadline(), Some(T0 + secs(15)));
    p.poll(T0 + secs(15));
    assert_eq!(p.frames(), [close_of(1001)]);
    assert_eq!(p.notes(), [Note::TimedOut("idle for WebSocketIdleTimeout")]);

    // An idle timeout shorter than the interval: no ping at all.
    let limits = Limits {
        idle_timeout: Some(secs(5)),
        ping_interval: Some(secs(10)),
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    assert_eq!(p.deadline(), Some(T0 + secs(5)));
    p.poll(T0 + secs(5));
    assert_eq!(p.frames(), [close_of(1001)]);
}

#[test]
fn a_late_poll_does_everything_due() {
    // A poll long after the ping was due sends it and times from then.
    let limits = Limits {
        ping_interval: Some(secs(10)),
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    p.poll(T0 + secs(17));
    assert_eq!(p.frames(), [sf(Opcode::Ping, b"")]);
    assert_eq!(p.deadline(), Some(T0 + secs(27)));
}

#[test]
fn deadline_in_each_state() {
    let limits = Limits {
        idle_timeout: Some(secs(30)),
        ping_interval: Some(secs(10)),
        close_timeout: secs(5),
        ..Limits::default()
    };
    // No timers at all.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    assert_eq!(
        p.wants(),
        Wants {
            read: true,
            deadline: None,
            done: false
        }
    );
    // Open: the earlier of the ping and the idle timeout.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    assert_eq!(p.deadline(), Some(T0 + secs(10)));
    // Closing: only the close timeout counts, whatever the other timers say.
    p.close(1000, "x", secs(100));
    assert_eq!(p.deadline(), Some(T0 + secs(100)));
    p.poll(T0 + secs(50));
    assert_eq!(p.frames(), [close_of(1000)], "neither ping nor idle close");
    assert!(p.notes().is_empty());
    // Done.
    p.feed_all(&client_close(1000, b""));
    assert_eq!(p.deadline(), None);
    // Failed.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    p.feed_all(&raw(0x83, b""));
    assert_eq!(
        p.wants(),
        Wants {
            read: false,
            deadline: None,
            done: true
        }
    );
    // Dropped.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    p.conn.peer_gone("EOF".to_owned());
    assert_eq!(p.ending(), Some(Ending::Dropped("EOF".to_owned())));
    assert_eq!(
        p.wants(),
        Wants {
            read: false,
            deadline: None,
            done: true
        }
    );
    assert_eq!(p.feed(&msg(Opcode::Text, b"x")), (0, vec![]));
    p.poll(T0 + secs(3600));
    assert!(p.take().is_empty() && p.notes().is_empty());
}

#[test]
fn legacy_never_pings() {
    let limits = Limits {
        ping_interval: Some(secs(10)),
        ..Limits::default()
    };
    let mut p = Peer::new(Family::Legacy, limits);
    assert_eq!(p.deadline(), None);
    p.poll(T0 + secs(1000));
    assert!(p.take().is_empty() && p.conn.is_open());

    let limits = Limits {
        idle_timeout: Some(secs(30)),
        ..limits
    };
    let mut p = Peer::new(Family::Legacy, limits);
    assert_eq!(p.deadline(), Some(T0 + secs(30)));
    p.poll(T0 + secs(29));
    assert!(p.take().is_empty());
    p.poll(T0 + secs(30));
    assert_eq!(p.legacy_frames(), [LegacyFrame::Close]);
    assert_eq!(p.notes(), [Note::TimedOut("idle for WebSocketIdleTimeout")]);
    assert_eq!(
        p.ending(),
        server_closed(Some(1001), "idle for WebSocketIdleTimeout")
    );
}

// ---- Pings ----

#[test]
fn a_thousand_pings_get_a_thousand_pongs_in_order() {
    let payloads: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| (0..i % 126).map(|j| (i * 7 + j) as u8).collect())
        .collect();
    let input: Vec<u8> = payloads.iter().flat_map(|p| msg(Opcode::Ping, p)).collect();
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    assert!(p.feed_all(&input).is_empty());
    let expected: Vec<Frame> = payloads.iter().map(|x| sf(Opcode::Pong, x)).collect();
    assert_eq!(p.frames(), expected);
    assert_eq!(p.conn.messages_in(), 0);
    assert_eq!(p.out.sent().messages, 0, "pongs are not messages");
    assert!(p.conn.is_open());
}

#[test]
fn pings_inside_a_fragmented_message_are_answered_at_once() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    let part1 = cat(&[&client(Opcode::Text, false, b"hel"), &msg(Opcode::Ping, b"1")]);
    assert!(p.feed_all(&part1).is_empty());
    assert_eq!(p.frames(), [sf(Opcode::Pong, b"1")]);
    let part2 = cat(&[
        &msg(Opcode::Ping, b"2"),
        &client(Opcode::Continuation, true, b"lo"),
    ]);
    assert_eq!(p.feed_all(&part2), [text("hello")]);
    assert_eq!(p.frames(), [sf(Opcode::Pong, b"2")]);
}

#[test]
fn pings_after_a_close_are_not_answered() {
    // Behind the peer's close: not even read.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    let head = cat(&[&msg(Opcode::Ping, b"a"), &client_close(1000, b"")]);
    let (used, _) = p.feed(&cat(&[&head, &msg(Opcode::Ping, b"b")]));
    assert_eq!(used, head.len());
    assert_eq!(p.frames(), [sf(Opcode::Pong, b"a"), close_of(1000)]);
    // After ours: read, not answered.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.close(1000, "bye", secs(5));
    let pings: Vec<u8> = (0..100u8).flat_map(|i| msg(Opcode::Ping, &[i])).collect();
    p.feed_all(&pings);
    assert_eq!(p.frames(), [close_of(1000)]);
    assert!(p.wants().read);
}

// ---- Failures ----

/// Feeds `input` and checks that the connection failed with `code` for `reason`.
fn assert_fails(p: &mut Peer, input: &[u8], code: u16, reason: &str) {
    let (_, messages) = p.feed(input);
    assert!(messages.is_empty(), "{reason}");
    let frames = p.frames();
    assert_eq!(frames.last(), Some(&close_of(code)), "{reason}");
    assert_eq!(frames.iter().filter(|f| f.opcode == 8).count(), 1);
    assert_eq!(
        p.notes(),
        [Note::Failed {
            code: CloseCode(code),
            reason: reason.to_owned()
        }]
    );
    assert_eq!(p.ending(), server_closed(Some(code), reason));
    assert_eq!(p.out.sent().close, Some(Some(code)));
    p.assert_finished();
}

/// The framing violations, each with what the decoder reports. `None` as
/// the code: "too big", which depends on the version.
fn framing_violations() -> Vec<(&'static str, Vec<u8>, DecodeError, Option<u16>)> {
    let mut unmasked = Vec::new();
    write_frame(&mut unmasked, Opcode::Text, b"hi");
    let mut overflow = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
    overflow.extend_from_slice(&KEY);
    let too_big = msg(Opcode::Binary, &[7; 1001]);
    let too_big_fragmented = cat(&[
        &client(Opcode::Binary, false, &[7; 600]),
        &client(Opcode::Continuation, true, &[7; 401]),
    ]);
    vec![
        (
            "unmasked",
            unmasked,
            DecodeError::MaskMismatch { masked: false },
            Some(1002),
        ),
        (
            "rsv1",
            raw(0xc1, b"hi"),
            DecodeError::ReservedBits(0x40),
            Some(1002),
        ),
        (
            "rsv2",
            raw(0xa1, b"hi"),
            DecodeError::ReservedBits(0x20),
            Some(1002),
        ),
        (
            "rsv3",
            raw(0x92, b"hi"),
            DecodeError::ReservedBits(0x10),
            Some(1002),
        ),
        (
            "rsv1 on ping",
            raw(0xc9, b""),
            DecodeError::ReservedBits(0x40),
            Some(1002),
        ),
        (
            "opcode 3",
            raw(0x83, b""),
            DecodeError::UnknownOpcode(3),
            Some(1002),
        ),
        (
            "opcode 0xb",
            raw(0x8b, b""),
            DecodeError::UnknownOpcode(0xb),
            Some(1002),
        ),
        (
            "fragmented ping",
            raw(0x09, b"p"),
            DecodeError::FragmentedControl,
            Some(1002),
        ),
        (
            "fragmented close",
            raw(0x08, &[0x03, 0xe8]),
            DecodeError::FragmentedControl,
            Some(1002),
        ),
        (
            "ping > 125",
            msg(Opcode::Ping, &[1; 126]),
            DecodeError::ControlTooLong(126),
            Some(1002),
        ),
        (
            "close > 125",
            client_close(1000, &[b'a'; 124]),
            DecodeError::ControlTooLong(126),
            Some(1002),
        ),
        (
            "lone continuation",
            raw(0x80, b"x"),
            DecodeError::UnexpectedContinuation,
            Some(1002),
        ),
        (
            "new message inside a fragmented one",
            cat(&[&client(Opcode::Text, false, b"a"), &msg(Opcode::Binary, b"b")]),
            DecodeError::ExpectedContinuation,
            Some(1002),
        ),
        (
            "64-bit length overflow",
            overflow,
            DecodeError::LengthOverflow,
            Some(1002),
        ),
        (
            "bad UTF-8",
            msg(Opcode::Text, b"ok \xff"),
            DecodeError::InvalidUtf8,
            Some(1007),
        ),
        (
            "truncated UTF-8",
            msg(Opcode::Text, b"\xce"),
            DecodeError::InvalidUtf8,
            Some(1007),
        ),
        (
            "bad UTF-8 across fragments",
            cat(&[
                &client(Opcode::Text, false, b"\xce"),
                &client(Opcode::Continuation, true, b"A"),
            ]),
            DecodeError::InvalidUtf8,
            Some(1007),
        ),
        (
            "UTF-8 truncated by the last fragment",
            cat(&[
                &client(Opcode::Text, false, "é".as_bytes()),
                &client(Opcode::Continuation, false, b"\xe2\x9c"),
                &client(Opcode::Continuation, true, b""),
            ]),
            DecodeError::InvalidUtf8,
            Some(1007),
        ),
        (
            "one-byte close",
            msg(Opcode::Close, &[0x03]),
            DecodeError::BadClose(crate::close::CloseError::Truncated),
            Some(1002),
        ),
        (
            "close code 1005",
            client_close(1005, b""),
            DecodeError::BadClose(crate::close::CloseError::InvalidCode(1005)),
            Some(1002),
        ),
        (
            "close code 999",
            client_close(999, b""),
            DecodeError::BadClose(crate::close::CloseError::InvalidCode(999)),
            Some(1002),
        ),
        (
            "reserved close code",
            client_close(2000, b""),
            DecodeError::BadClose(crate::close::CloseError::InvalidCode(2000)),
            Some(1002),
        ),
        (
            "bad UTF-8 close reason",
            client_close(1000, b"\xce\xba\xe1\xbd"),
            DecodeError::BadClose(crate::close::CloseError::InvalidReason),
            Some(1007),
        ),
        (
            "too big",
            too_big,
            DecodeError::MessageTooBig { limit: 1000 },
            None,
        ),
        (
            "too big in fragments",
            too_big_fragmented,
            DecodeError::MessageTooBig { limit: 1000 },
            None,
        ),
    ]
}

#[test]
fn every_framing_violation_fails_with_its_code() {
    for version in VERSIONS {
        for (name, input, error, code) in framing_violations() {
            let code = code.unwrap_or(version.too_big_code());
            assert_eq!(error.close_code(version).0, code, "{name}");
            let mut p = Peer::new(rfc(version), limits(1000));
            assert_fails(&mut p, &input, code, &error.to_string());
        }
    }
    assert_eq!(ProtocolVersion::V13.too_big_code(), 1009);
    assert_eq!(ProtocolVersion::V8.too_big_code(), 1004);
    assert_eq!(ProtocolVersion::V7.too_big_code(), 1004);
}

#[test]
fn every_framing_violation_fails_byte_by_byte() {
    // The same failures when the input trickles in: the connection stops
    // at the first byte that gives the violation away.
    for (name, input, error, code) in framing_violations() {
        let mut p = Peer::new(rfc(ProtocolVersion::V13), limits(1000));
        let mut failed_at = None;
        for (i, b) in input.iter().enumerate() {
            let (used, messages) = p.feed(&[*b]);
            assert!(messages.is_empty(), "{name}");
            if p.wants().done {
                assert_eq!(used, 1, "{name}");
                failed_at = Some(i);
                break;
            }
        }
        assert!(failed_at.is_some(), "{name} did not fail");
        let code = code.unwrap_or(1009);
        assert_eq!(p.frames(), [close_of(code)], "{name}");
        let reason = error.to_string();
        assert_eq!(p.ending(), server_closed(Some(code), &reason), "{name}");
        p.assert_finished();
    }
}

#[test]
fn failure_after_messages_keeps_them_and_their_pongs() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    let input = cat(&[
        &msg(Opcode::Text, b"fine"),
        &msg(Opcode::Ping, b"p"),
        &raw(0x83, b""),
        &msg(Opcode::Text, b"never read"),
    ]);
    let (used, messages) = p.feed(&input);
    assert_eq!(used, input.len(), "a failure consumes the rest of the read");
    assert_eq!(messages, [text("fine")]);
    assert_eq!(p.frames(), [sf(Opcode::Pong, b"p"), close_of(1002)]);
    assert_eq!(p.conn.messages_in(), 1);
}

#[test]
fn failure_while_closing_keeps_our_close() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.close(1001, "stopping", secs(5));
    p.feed(&raw(0x83, b""));
    assert_eq!(p.frames(), [close_of(1001)], "no second close");
    let reason = DecodeError::UnknownOpcode(3).to_string();
    assert_eq!(
        p.notes(),
        [Note::Failed {
            code: CloseCode::PROTOCOL_ERROR,
            reason
        }]
    );
    assert_eq!(p.ending(), server_closed(Some(1001), "stopping"));
    p.assert_finished();
}

#[test]
fn reserved_close_codes_when_allowed() {
    let limits = Limits {
        allow_reserved_close_codes: true,
        ..Limits::default()
    };
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits);
    p.feed_all(&client_close(2000, b""));
    assert_eq!(p.frames(), [close_of(2000)]);
    assert_eq!(p.ending(), Some(Ending::ClientClosed(Some(2000))));
}

#[test]
fn control_frames_obey_a_limit_below_125() {
    // What the decoder says: a tiny message limit bounds control frames too.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), limits(10));
    p.feed_all(&msg(Opcode::Ping, &[1; 10]));
    assert_eq!(p.frames(), [sf(Opcode::Pong, &[1; 10])]);
    let reason = DecodeError::MessageTooBig { limit: 10 }.to_string();
    assert_fails(&mut p, &msg(Opcode::Ping, &[1; 11]), 1009, &reason);
}

#[test]
fn deflate_failures() {
    let bomb = ClientDeflate::new(false).compress(&[0; 5000]);
    assert!(bomb.len() < 100);
    let bad_text = ClientDeflate::new(false).compress(b"ok \xff\xfe");
    let cases: Vec<(&str, Vec<u8>, Option<u16>, &str)> = vec![
        (
            "inflates over the limit",
            client_rsv1(Opcode::Binary, true, true, &bomb, KEY),
            None,
            "inflated message larger than the limit of 1000 bytes",
        ),
        (
            "corrupt deflate data",
            client_rsv1(Opcode::Binary, true, true, &[0xff, 0xff, 0xff], KEY),
            Some(1007),
            "invalid deflate data",
        ),
        (
            "compressed bad UTF-8",
            client_rsv1(Opcode::Text, true, true, &bad_text, KEY),
            Some(1007),
            "invalid UTF-8 in a compressed text message",
        ),
    ];
    for version in [ProtocolVersion::V13, ProtocolVersion::V8] {
        for (_name, input, code, reason) in &cases {
            let code = code.unwrap_or(version.too_big_code());
            let mut p = Peer::new(with_deflate(version, "permessage-deflate"), limits(1000));
            assert_fails(&mut p, input, code, reason);
        }
    }
}

#[test]
fn rsv1_where_deflate_does_not_allow_it() {
    let family = || with_deflate(ProtocolVersion::V13, "permessage-deflate");
    let body = ClientDeflate::new(false).compress(b"hello");
    // On a continuation frame.
    let input = cat(&[
        &client_rsv1(Opcode::Text, false, true, &body[..2], KEY),
        &client_rsv1(Opcode::Continuation, true, true, &body[2..], KEY),
    ]);
    let mut p = Peer::new(family(), Limits::default());
    assert_fails(&mut p, &input, 1002, &DecodeError::ReservedBits(0x40).to_string());
    // On a control frame.
    let mut p = Peer::new(family(), Limits::default());
    assert_fails(
        &mut p,
        &raw(0xc9, b""),
        1002,
        &DecodeError::ReservedBits(0x40).to_string(),
    );
    // RSV2 stays reserved.
    let mut p = Peer::new(family(), Limits::default());
    assert_fails(
        &mut p,
        &raw(0xe1, &body),
        1002,
        &DecodeError::ReservedBits(0x60).to_string(),
    );
    // Without deflate negotiated, RSV1 on a message is refused by the decoder.
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    let input = client_rsv1(Opcode::Text, true, true, &body, KEY);
    assert_fails(&mut p, &input, 1002, &DecodeError::ReservedBits(0x40).to_string());
}

#[test]
fn legacy_failures() {
    let too_big = LegacyDecodeError::TooBig.to_string();
    let bad_utf8 = LegacyDecodeError::InvalidUtf8.to_string();
    let overflow = LegacyDecodeError::LengthOverflow.to_string();
    let (too_big, bad_utf8, overflow) = (too_big.as_str(), bad_utf8.as_str(), overflow.as_str());
    let cases: Vec<(&str, Vec<Vec<u8>>, u16, &str)> = vec![
        ("too big", vec![legacy_text(&[b'a'; 11])], 1009, too_big),
        (
            "too big, unterminated",
            vec![cat(&[&[0x00], &[b'a'; 11]])],
            1009,
            too_big,
        ),
        (
            "too big in pieces",
            vec![vec![0x00, b'a'], vec![b'a'; 10]],
            1009,
            too_big,
        ),
        ("invalid UTF-8", vec![legacy_text(b"\xc3\x28")], 1007, bad_utf8),
        (
            "invalid UTF-8 in pieces",
            vec![b"\x00ok\xc3".to_vec(), b"\x28\xff".to_vec()],
            1007,
            bad_utf8,
        ),
        (
            "truncated UTF-8",
            vec![b"\x00ok\xce".to_vec(), vec![0xff]],
            1007,
            bad_utf8,
        ),
        (
            "length overflow",
            vec![cat(&[&[0x80], &[0xff; 12]])],
            1002,
            overflow,
        ),
    ];
    for (name, reads, code, reason) in cases {
        let mut p = Peer::new(Family::Legacy, limits(10));
        for read in &reads {
            assert!(p.feed(read).1.is_empty(), "{name}");
        }
        assert_eq!(p.legacy_frames(), [LegacyFrame::Close], "{name}");
        assert_eq!(
            p.notes(),
            [Note::Failed {
                code: CloseCode(code),
                reason: reason.to_owned()
            }],
            "{name}"
        );
        assert_eq!(p.ending(), server_closed(Some(code), reason), "{name}");
        assert_eq!(p.out.sent().close, Some(None));
        p.assert_finished();
    }
}

// ---- permessage-deflate ----

#[test]
fn compressed_client_messages_are_inflated() {
    let mut p = Peer::new(
        with_deflate(ProtocolVersion::V13, "permessage-deflate"),
        Limits::default(),
    );
    let mut z = ClientDeflate::new(false);
    let hello = "Hello, Hello, Hello, world";
    let first = z.compress(hello.as_bytes());
    let second = z.compress(hello.as_bytes());
    assert!(second.len() < first.len(), "the second refers to the first");
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let third = z.compress(&big);
    let empty = z.compress(b"");
    let input = cat(&[
        &client_rsv1(Opcode::Text, true, true, &first, KEY),
        &client_rsv1(Opcode::Text, true, true, &second, [1, 2, 3, 4]),
        &msg(Opcode::Binary, b"not compressed"),
        &client_rsv1(Opcode::Binary, false, true, &third[..10], KEY),
        &msg(Opcode::Ping, b"mid"),
        &client_rsv1(Opcode::Continuation, false, false, &third[10..20], KEY),
        &client_rsv1(Opcode::Continuation, true, false, &third[20..], KEY),
        &client_rsv1(Opcode::Text, true, true, &empty, KEY),
    ]);
    let messages = p.feed_all(&input);
    assert_eq!(
        messages,
        [
            text(hello),
            text(hello),
            binary(b"not compressed"),
            binary(&big),
            text("")
        ]
    );
    assert_eq!(p.frames(), [sf(Opcode::Pong, b"mid")]);
    assert_eq!(p.conn.messages_in(), 5);
    assert_eq!(p.conn.bytes_in(), input.len() as u64);
}

#[test]
fn rfc7692_examples_inflate() {
    // §7.2.3.1 and §7.2.3.2: "Hello", then "Hello" referring to it.
    let mut p = Peer::new(
        with_deflate(ProtocolVersion::V13, "permessage-deflate"),
        Limits::default(),
    );
    let input = cat(&[
        &client_rsv1(
            Opcode::Text,
            true,
            true,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            KEY,
        ),
        &client_rsv1(Opcode::Text, true, true, &[0xf2, 0x00, 0x11, 0x00, 0x00], KEY),
    ]);
    assert_eq!(p.feed_all(&input), [text("Hello"), text("Hello")]);
}

#[test]
fn client_no_context_takeover() {
    let offer = "permessage-deflate; client_no_context_takeover";
    let mut p = Peer::new(with_deflate(ProtocolVersion::V13, offer), Limits::default());
    let mut z = ClientDeflate::new(true);
    for i in 0..5 {
        let body = format!("message {i} message {i} message {i}");
        let input = client_rsv1(Opcode::Text, true, true, &z.compress(body.as_bytes()), KEY);
        assert_eq!(p.feed_all(&input), [text(&body)]);
    }
}

fn compression(offer: &str, min_size: usize) -> Compression {
    Compression {
        negotiated: negotiated(offer),
        level: 6,
        min_size,
    }
}

fn deflate_peer(min_size: usize) -> Peer {
    let offer = "permessage-deflate";
    Peer::with(
        with_deflate(ProtocolVersion::V13, offer),
        Limits::default(),
        Some(compression(offer, min_size)),
    )
}

#[test]
fn outgoing_compresses_messages_of_at_least_min_size() {
    let mut p = deflate_peer(16);
    let long: Vec<u8> = b"abcdefgh".repeat(200);
    p.out.send(Opcode::Text, &[b'a'; 15]).unwrap();
    p.out.send(Opcode::Text, &[b'b'; 16]).unwrap();
    p.out.send(Opcode::Binary, &long).unwrap();
    p.out.send(Opcode::Binary, b"").unwrap();
    let wire = p.out.pending();
    assert!(wire < long.len(), "{wire} bytes on the wire");
    p.out.send(Opcode::Ping, &[b'p'; 100]).unwrap();
    p.out.send(Opcode::Pong, &[b'q'; 100]).unwrap();
    p.feed_all(&msg(Opcode::Ping, &[b'r'; 50]));
    p.out.send(Opcode::Binary, &long).unwrap();
    p.out
        .send(Opcode::Close, &close_body(1000, &[b'x'; 100]))
        .unwrap();
    assert_eq!(
        p.frames(),
        [
            sf(Opcode::Text, &[b'a'; 15]),
            sfz(Opcode::Text, &[b'b'; 16]),
            sfz(Opcode::Binary, &long),
            sf(Opcode::Binary, b""),
            sf(Opcode::Ping, &[b'p'; 100]),
            sf(Opcode::Pong, &[b'q'; 100]),
            sf(Opcode::Pong, &[b'r'; 50]),
            sfz(Opcode::Binary, &long),
            sf(Opcode::Close, &close_body(1000, &[b'x'; 100])),
        ]
    );
    assert_eq!(p.out.sent().messages, 5);
}

#[test]
fn outgoing_min_size_zero_compresses_empty_messages() {
    let mut p = deflate_peer(0);
    p.out.send(Opcode::Text, b"").unwrap();
    p.out.send(Opcode::Text, b"x").unwrap();
    p.out.send(Opcode::Text, b"").unwrap();
    assert_eq!(
        p.frames(),
        [
            sfz(Opcode::Text, b""),
            sfz(Opcode::Text, b"x"),
            sfz(Opcode::Text, b"")
        ]
    );
}

#[test]
fn outgoing_without_context_takeover() {
    let offer = "permessage-deflate; server_no_context_takeover";
    let mut p = Peer::with(
        with_deflate(ProtocolVersion::V13, offer),
        Limits::default(),
        Some(compression(offer, 1)),
    );
    let payload = b"the same text, again and again".repeat(3);
    p.out.send(Opcode::Text, &payload).unwrap();
    let first = p.take();
    p.out.send(Opcode::Text, &payload).unwrap();
    let second = p.take();
    assert_eq!(first, second, "each message compressed on its own");
    // A fresh inflater reads either.
    for bytes in [first, second] {
        assert_eq!(
            parse_frames(&bytes, &mut ClientInflate::new()),
            [sfz(Opcode::Text, &payload)]
        );
    }
}

#[test]
fn compression_is_ignored_for_legacy() {
    let mut p = Peer::with(
        Family::Legacy,
        Limits::default(),
        Some(compression("permessage-deflate", 0)),
    );
    p.out.send(Opcode::Text, b"plain text").unwrap();
    assert_eq!(p.legacy_frames(), [LegacyFrame::Text(b"plain text".to_vec())]);
}

#[test]
fn direct_header_only_for_plain_data_messages() {
    let mut p = deflate_peer(16);
    let h = p
        .out
        .direct_header(Opcode::Binary, 15)
        .expect("small enough to go uncompressed");
    assert_eq!(h.as_bytes(), [0x82, 15]);
    assert_eq!(p.out.sent().messages, 1);
    assert!(
        p.out.direct_header(Opcode::Text, 16).is_none(),
        "would be compressed"
    );
    assert!(p.out.direct_header(Opcode::Binary, 1 << 20).is_none());
    for op in [Opcode::Ping, Opcode::Pong, Opcode::Close] {
        assert!(p.out.direct_header(op, 0).is_none(), "{op:?}");
    }
    assert_eq!(p.out.sent().messages, 1, "refusals count nothing");

    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.out.send(Opcode::Text, b"queued").unwrap();
    let h = p
        .out
        .direct_header(Opcode::Binary, 70000)
        .expect("no compression");
    assert_eq!(
        h.as_bytes(),
        FrameHeaderBuf::new(Opcode::Binary, true, false, 70000).as_bytes()
    );
    let h2 = p.out.direct_header(Opcode::Text, 3).unwrap();
    assert_eq!(p.out.sent().messages, 3);
    // The caller writes the queue, then each header and its payload.
    let mut wire = p.take();
    wire.extend_from_slice(h.as_bytes());
    wire.extend_from_slice(&[9; 70000]);
    wire.extend_from_slice(h2.as_bytes());
    wire.extend_from_slice(b"abc");
    assert_eq!(
        parse_frames(&wire, &mut ClientInflate::new()),
        [
            sf(Opcode::Text, b"queued"),
            sf(Opcode::Binary, &[9; 70000]),
            sf(Opcode::Text, b"abc")
        ]
    );
    assert!(p.out.direct_header(Opcode::Ping, 1).is_none());
    // After a close.
    p.close(1000, "bye", secs(1));
    assert!(p.out.direct_header(Opcode::Binary, 10).is_none());
    assert_eq!(p.out.sent().messages, 3);

    let mut p = Peer::new(Family::Legacy, Limits::default());
    assert!(p.out.direct_header(Opcode::Text, 5).is_none());
    assert!(p.out.direct_header(Opcode::Binary, 5).is_none());
    assert_eq!(p.out.sent().messages, 0);
}

// ---- Size limits ----

#[test]
fn exactly_the_limit_is_accepted_one_more_refused() {
    for version in VERSIONS {
        let mut p = Peer::new(rfc(version), limits(100));
        let input = cat(&[
            &msg(Opcode::Binary, &[1; 100]),
            &msg(Opcode::Text, &[b'a'; 100]),
            &client(Opcode::Text, false, &[b'b'; 50]),
            &msg(Opcode::Ping, b""),
            &client(Opcode::Continuation, false, &[b'b'; 49]),
            &client(Opcode::Continuation, true, &[b'b'; 1]),
        ]);
        assert_eq!(
            p.feed_all(&input),
            [binary(&[1; 100]), text(&"a".repeat(100)), text(&"b".repeat(100))]
        );
        assert_eq!(p.frames(), [sf(Opcode::Pong, b"")]);
        let code = version.too_big_code();
        let reason = DecodeError::MessageTooBig { limit: 100 }.to_string();
        assert_fails(&mut p, &msg(Opcode::Binary, &[1; 101]), code, &reason);
    }
}

#[test]
fn over_the_limit_is_refused_from_the_header_alone() {
    let reason = DecodeError::MessageTooBig { limit: 100 }.to_string();
    for version in VERSIONS {
        let code = version.too_big_code();
        // The whole header, no payload.
        let mut p = Peer::new(rfc(version), limits(100));
        let header = FrameHeaderBuf::masked(Opcode::Binary, true, false, 101, KEY);
        assert_fails(&mut p, header.as_bytes(), code, &reason);
        // Only the length field, before the masking key.
        let mut p = Peer::new(rfc(version), limits(100));
        assert_fails(&mut p, &header.as_bytes()[..2], code, &reason);
        // A 64-bit length claiming terabytes.
        let mut p = Peer::new(rfc(version), limits(100));
        let header = FrameHeaderBuf::masked(Opcode::Text, true, false, 1 << 40, KEY);
        assert_fails(&mut p, &header.as_bytes()[..10], code, &reason);
        // A continuation header pushing a message over.
        let mut p = Peer::new(rfc(version), limits(100));
        assert!(p.feed_all(&client(Opcode::Binary, false, &[0; 60])).is_empty());
        let header = FrameHeaderBuf::masked(Opcode::Continuation, true, false, 41, KEY);
        assert_fails(&mut p, &header.as_bytes()[..2], code, &reason);
    }
}

#[test]
fn compressed_limit_is_on_the_inflated_size() {
    let family = || with_deflate(ProtocolVersion::V13, "permessage-deflate");
    let exact = ClientDeflate::new(false).compress(&[b'z'; 1000]);
    let mut p = Peer::new(family(), limits(1000));
    let input = client_rsv1(Opcode::Text, true, true, &exact, KEY);
    assert_eq!(p.feed_all(&input), [text(&"z".repeat(1000))]);

    let over = ClientDeflate::new(false).compress(&[b'z'; 1001]);
    let mut p = Peer::new(family(), limits(1000));
    let input = client_rsv1(Opcode::Text, true, true, &over, KEY);
    assert_fails(
        &mut p,
        &input,
        1009,
        "inflated message larger than the limit of 1000 bytes",
    );

    // On the wire, a compressed message may exceed the limit a little
    // (incompressible data grows), but not beyond the decoder's bound.
    let bound = crate::deflate::max_deflated_len(1000);
    let mut p = Peer::new(family(), limits(1000));
    let header = FrameHeaderBuf::masked(Opcode::Binary, true, true, bound + 1, KEY);
    let reason = DecodeError::MessageTooBig { limit: 1000 }.to_string();
    assert_fails(&mut p, header.as_bytes(), 1009, &reason);
    let mut x = 0x2545_f491u32;
    let random: Vec<u8> = (0..1000)
        .map(|_| {
            // xorshift32: incompressible enough for deflate to store it.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let body = ClientDeflate::new(false).compress(&random);
    assert!(body.len() > 1000 && body.len() as u64 <= bound);
    let mut p = Peer::new(family(), limits(1000));
    let input = client_rsv1(Opcode::Binary, true, true, &body, KEY);
    assert_eq!(p.feed_all(&input), [binary(&random)]);
}

#[test]
fn legacy_exactly_the_limit() {
    let mut p = Peer::new(Family::Legacy, limits(10));
    let input = cat(&[&legacy_text(&[b'a'; 10]), &[0x00, b'b', b'b']]);
    assert_eq!(p.feed_all(&input), [text(&"a".repeat(10))]);
    assert!(p.feed_all(&[b'b'; 8]).is_empty());
    assert_eq!(p.feed_all(&[0xff]), [text(&"b".repeat(10))]);
    let too_big = LegacyDecodeError::TooBig.to_string();
    p.feed(&legacy_text(&[b'c'; 11]));
    assert_eq!(p.ending(), server_closed(Some(1009), &too_big));
}

// ---- Counters and plain traffic ----

#[test]
fn counters() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    let input = cat(&[
        &msg(Opcode::Text, b"abc"),
        &msg(Opcode::Ping, b"x"),
        &client(Opcode::Binary, false, &[5; 150]),
        &msg(Opcode::Pong, b""),
        &client(Opcode::Continuation, true, &[5; 150]),
    ]);
    assert_eq!(p.feed_all(&input), [text("abc"), binary(&[5; 300])]);
    assert_eq!(p.conn.messages_in(), 2);
    assert_eq!(p.conn.bytes_in(), input.len() as u64);
    // Partial frames count as consumed bytes.
    let next = msg(Opcode::Text, b"partial");
    p.feed_all(&next[..5]);
    assert_eq!(p.conn.bytes_in(), (input.len() + 5) as u64);
    assert_eq!(p.conn.messages_in(), 2);
    assert_eq!(p.feed_all(&next[5..]), [text("partial")]);
    assert_eq!(p.conn.messages_in(), 3);
    assert_eq!(p.conn.payload_in(), 3 + 300 + 7);

    assert_eq!(p.out.sent(), Sent::default());
    p.out.send(Opcode::Text, b"one").unwrap();
    p.out.send(Opcode::Binary, b"two").unwrap();
    p.out.send(Opcode::Ping, b"not counted").unwrap();
    p.out.direct_header(Opcode::Binary, 3).unwrap();
    assert_eq!(
        p.out.sent(),
        Sent {
            messages: 3,
            payload: 9,
            close: None
        }
    );
    p.close(1000, "bye", secs(1));
    assert_eq!(
        p.out.sent(),
        Sent {
            messages: 3,
            payload: 9,
            close: Some(Some(1000))
        }
    );
    assert!(p.out.close_sent());
    p.out.discard();
    assert_eq!(p.out.pending(), 0);
}

#[test]
fn take_appends_to_what_the_caller_has() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.out.send(Opcode::Text, b"a").unwrap();
    let mut buf = b"xy".to_vec();
    p.out.take(&mut buf);
    assert_eq!(buf, [b'x', b'y', 0x81, 1, b'a']);
    assert_eq!(p.out.pending(), 0);
    p.out.send_raw(b"raw");
    assert_eq!(p.take(), b"raw");
}

#[test]
fn legacy_traffic() {
    let mut p = Peer::new(Family::Legacy, Limits::default());
    let input = cat(&[&legacy_text("héllo".as_bytes()), &legacy_text(b""), &[0x00, b'p']]);
    assert_eq!(p.feed_all(&input), [text("héllo"), text("")]);
    assert_eq!(p.feed_all(b"art\xff"), [text("part")]);
    assert_eq!(p.conn.messages_in(), 3);
    assert_eq!(p.conn.bytes_in(), (input.len() + 4) as u64);
    p.out.send(Opcode::Text, b"reply").unwrap();
    for op in [Opcode::Binary, Opcode::Ping, Opcode::Pong] {
        assert_eq!(p.out.send(op, b"x"), Err(SendError::Unsupported), "{op:?}");
    }
    assert_eq!(p.out.sent().messages, 1);
    assert_eq!(p.legacy_frames(), [LegacyFrame::Text(b"reply".to_vec())]);
    p.out.send(Opcode::Close, b"").unwrap();
    assert_eq!(p.out.send(Opcode::Text, b"x"), Err(SendError::Closed));
    assert_eq!(p.legacy_frames(), [LegacyFrame::Close]);
}

#[test]
fn legacy_reserved_frames_are_skipped() {
    // draft-76 §5.3: length-prefixed frames (0xFF with a non-zero length
    // too) and sentinel frames of other types are discarded.
    let mut p = Peer::new(Family::Legacy, Limits::default());
    let input = cat(&[
        &[0x80, 0x81, 0x00],
        &[0u8; 128],
        &[0xff, 0x02, b'x', b'y'],
        &[0x01, b'z', 0xfe, 0xff],
        &legacy_text(b"kept"),
    ]);
    assert_eq!(p.feed_all(&input), [text("kept")]);
    assert!(p.conn.is_open() && p.take().is_empty());
    assert_eq!(p.conn.messages_in(), 1);
}

#[test]
fn large_messages_in_one_read_and_in_pieces() {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let input = msg(Opcode::Binary, &big);
    assert_eq!(input.len(), 14 + big.len(), "a 64-bit length");
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    assert_eq!(p.feed_all(&input), [binary(&big)]);
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    assert!(p.feed_all(&input[..7]).is_empty());
    assert!(p.feed_all(&input[7..30_000]).is_empty());
    assert_eq!(p.feed_all(&input[30_000..]), [binary(&big)]);
    assert_eq!(p.conn.bytes_in(), input.len() as u64);
}

#[test]
fn peer_gone_and_write_failed_end_it() {
    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.close(1000, "bye", secs(5));
    p.conn.write_failed("broken pipe".to_owned());
    // The first ending wins.
    assert_eq!(p.ending(), server_closed(Some(1000), "bye"));
    assert!(p.wants().done);

    let mut p = Peer::new(rfc(ProtocolVersion::V13), Limits::default());
    p.conn.write_failed("broken pipe".to_owned());
    assert_eq!(p.ending(), Some(Ending::Dropped("broken pipe".to_owned())));
    assert!(!p.wants().read);
}

#[test]
fn endings_display() {
    assert_eq!(
        Ending::ClientClosed(Some(1000)).to_string(),
        "the client closed it with 1000"
    );
    assert_eq!(
        Ending::ClientClosed(None).to_string(),
        "the client closed it with no status code"
    );
    assert_eq!(
        server_closed(Some(1001), "idle").unwrap().to_string(),
        "the server closed it with 1001 (idle)"
    );
    assert_eq!(
        Ending::Dropped("EOF".to_owned()).to_string(),
        "EOF, without a closing handshake"
    );
}

// ---- Property tests: any stream, any chunking ----

/// A generated client message and how it goes on the wire.
#[derive(Debug, Clone)]
struct GenMessage {
    kind: MessageKind,
    data: Vec<u8>,
    /// Compressed (only when deflate was negotiated).
    compress: bool,
    /// Where the payload on the wire is cut into frames (repeats make empty frames).
    cuts: Vec<Index>,
    /// Pings and where among the frames they go (before frame i; the last
    /// place is after the message).
    pings: Vec<(Index, Vec<u8>)>,
}

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (any::<u8>(), 0..400usize).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..80).prop_map(|c| c.into_iter().collect()),
        "[a-c ]{0,300}",
    ]
}

fn data_strategy() -> impl Strategy<Value = (MessageKind, Vec<u8>)> {
    prop_oneof![
        text_strategy().prop_map(|s| (MessageKind::Text, s.into_bytes())),
        bytes_strategy().prop_map(|b| (MessageKind::Binary, b)),
    ]
}

fn message_strategy() -> impl Strategy<Value = GenMessage> {
    (
        data_strategy(),
        any::<bool>(),
        prop::collection::vec(any::<Index>(), 0..4),
        prop::collection::vec(
            (any::<Index>(), prop::collection::vec(any::<u8>(), 0..=125)),
            0..3,
        ),
    )
        .prop_map(|((kind, data), compress, cuts, pings)| GenMessage {
            kind,
            data,
            compress,
            cuts,
            pings,
        })
}

/// An application send between two reads: before read `Index`.
fn sends_strategy() -> impl Strategy<Value = Vec<(Index, Opcode, Vec<u8>)>> {
    let send = prop_oneof![
        text_strategy().prop_map(|s| (Opcode::Text, s.into_bytes())),
        bytes_strategy().prop_map(|b| (Opcode::Binary, b)),
    ];
    prop::collection::vec((any::<Index>(), send), 0..8)
        .prop_map(|v| v.into_iter().map(|(i, (o, d))| (i, o, d)).collect())
}

/// The client's byte stream, and where in it each message and each ping
/// ends (with the ping's payload).
struct Encoded {
    stream: Vec<u8>,
    message_ends: Vec<usize>,
    ping_ends: Vec<(usize, Vec<u8>)>,
}

fn encode_messages(messages: &[GenMessage], mut deflate: Option<&mut ClientDeflate>) -> Encoded {
    let mut e = Encoded {
        stream: Vec::new(),
        message_ends: Vec::new(),
        ping_ends: Vec::new(),
    };
    let mut frames = 0u32;
    let mut key = || {
        frames += 1;
        (frames.wrapping_mul(0x9e37_79b9) ^ 0x5bd1_e995).to_be_bytes()
    };
    for m in messages {
        let compressed = match deflate.as_deref_mut() {
            Some(z) if m.compress => Some(z.compress(&m.data)),
            _ => None,
        };
        let body = compressed.as_deref().unwrap_or(&m.data);
        let mut cuts: Vec<usize> = m.cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(body.len());
        let count = bounds.len() - 1;
        let mut pings: Vec<(usize, &[u8])> = m
            .pings
            .iter()
            .map(|(i, p)| (i.index(count + 1), &p[..]))
            .collect();
        pings.sort_by_key(|(at, _)| *at);
        let mut pings = pings.into_iter().peekable();
        for i in 0..=count {
            while let Some((_, payload)) = pings.next_if(|(at, _)| *at == i) {
                e.stream
                    .extend(client_rsv1(Opcode::Ping, true, false, payload, key()));
                e.ping_ends.push((e.stream.len(), payload.to_vec()));
            }
            if i == count {
                break;
            }
            let op = match (i, m.kind) {
                (0, MessageKind::Text) => Opcode::Text,
                (0, MessageKind::Binary) => Opcode::Binary,
                _ => Opcode::Continuation,
            };
            let piece = &body[bounds[i]..bounds[i + 1]];
            let rsv1 = i == 0 && compressed.is_some();
            e.stream
                .extend(client_rsv1(op, i + 1 == count, rsv1, piece, key()));
            if i + 1 == count {
                e.message_ends.push(e.stream.len());
            }
        }
    }
    e
}

/// Feeds the stream in chunks cut at `splits`, with the application's
/// sends between them, and checks the messages (and the read that completed
/// each) and our output frame by frame.
fn run_stream(
    family: Family,
    compression: Option<Compression>,
    messages: &[GenMessage],
    splits: &[Index],
    sends: &[(Index, Opcode, Vec<u8>)],
    client_deflate: Option<&mut ClientDeflate>,
) -> Result<(), TestCaseError> {
    let min_size = compression.as_ref().map(|c| c.min_size);
    let Encoded {
        mut stream,
        message_ends,
        ping_ends,
    } = encode_messages(messages, client_deflate);
    let mut bounds: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
    bounds.push(0);
    bounds.push(stream.len());
    bounds.sort_unstable();
    bounds.dedup();
    let chunks = bounds.len() - 1;
    let mut sends: Vec<(usize, Opcode, &[u8])> = sends
        .iter()
        .map(|(i, op, data)| (i.index(chunks + 1), *op, &data[..]))
        .collect();
    sends.sort_by_key(|s| s.0);

    let expected_frame = |op: Opcode, data: &[u8]| match min_size {
        Some(min) if data.len() >= min => sfz(op, data),
        _ => sf(op, data),
    };
    let mut expected_out = Vec::new();
    let mut expected_in = Vec::new();
    let mut received = Vec::new();
    let mut conn = Connection::new(&family, Limits::default(), T0);
    let mut out = Outgoing::new(&family, compression);
    let mut sends = sends.into_iter().peekable();
    for c in 0..=chunks {
        let now = T0 + Duration::from_millis(c as u64);
        while let Some((_, op, data)) = sends.next_if(|s| s.0 == c) {
            out.send(op, data).expect("open");
            expected_out.push(expected_frame(op, data));
        }
        if c == chunks {
            break;
        }
        let (start, end) = (bounds[c], bounds[c + 1]);
        for (ping_end, payload) in &ping_ends {
            if (start + 1..=end).contains(ping_end) {
                expected_out.push(sf(Opcode::Pong, payload));
            }
        }
        for (m, message_end) in messages.iter().zip(&message_ends) {
            if (start + 1..=end).contains(message_end) {
                expected_in.push((c, m.kind, m.data.clone()));
            }
        }
        let (used, got) = feed_chunk(&mut conn, &mut stream[start..end], now, &mut out);
        prop_assert_eq!(used, end - start);
        received.extend(got.into_iter().map(|(kind, data)| (c, kind, data)));
    }
    prop_assert_eq!(&received, &expected_in);
    let mut bytes = Vec::new();
    out.take(&mut bytes);
    let frames = parse_frames(&bytes, &mut ClientInflate::new());
    prop_assert_eq!(&frames, &expected_out);
    prop_assert_eq!(conn.messages_in(), messages.len() as u64);
    prop_assert_eq!(conn.bytes_in(), stream.len() as u64);
    prop_assert_eq!(
        out.sent().messages,
        expected_out.iter().filter(|f| f.opcode < 8).count() as u64
    );
    let wants = conn.wants(T0, &out);
    prop_assert!(wants.read && !wants.done);
    prop_assert!(conn.is_open());
    prop_assert!(conn.take_notes().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_stream_in_any_chunks(
        messages in prop::collection::vec(message_strategy(), 0..8),
        splits in prop::collection::vec(any::<Index>(), 0..24),
        sends in sends_strategy(),
    ) {
        run_stream(rfc(ProtocolVersion::V13), None, &messages, &splits, &sends, None)?;
    }

    #[test]
    fn any_compressed_stream_in_any_chunks(
        messages in prop::collection::vec(message_strategy(), 0..8),
        splits in prop::collection::vec(any::<Index>(), 0..24),
        sends in sends_strategy(),
        no_context_takeover in any::<bool>(),
        min_size in 0..64usize,
    ) {
        let offer = if no_context_takeover {
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
        } else {
            "permessage-deflate"
        };
        let family = with_deflate(ProtocolVersion::V13, offer);
        let mut client_deflate = ClientDeflate::new(no_context_takeover);
        run_stream(
            family,
            Some(compression(offer, min_size)),
            &messages,
            &splits,
            &sends,
            Some(&mut client_deflate),
        )?;
    }

    #[test]
    fn any_legacy_stream_in_any_chunks(
        texts in prop::collection::vec(text_strategy(), 0..10),
        splits in prop::collection::vec(any::<Index>(), 0..24),
        replies in prop::collection::vec((any::<Index>(), text_strategy()), 0..6),
    ) {
        let mut stream: Vec<u8> = Vec::new();
        let mut ends = Vec::new();
        for t in &texts {
            stream.extend(legacy_text(t.as_bytes()));
            ends.push(stream.len());
        }
        let mut bounds: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
        bounds.extend([0, stream.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let chunks = bounds.len() - 1;
        let mut replies: Vec<(usize, &str)> =
            replies.iter().map(|(i, t)| (i.index(chunks + 1), &t[..])).collect();
        replies.sort_by_key(|r| r.0);
        let mut replies = replies.into_iter().peekable();
        let mut conn = Connection::new(&Family::Legacy, Limits::default(), T0);
        let mut out = Outgoing::new(&Family::Legacy, None);
        let (mut expected_in, mut received, mut expected_out) = (Vec::new(), Vec::new(), Vec::new());
        for c in 0..=chunks {
            while let Some((_, t)) = replies.next_if(|r| r.0 == c) {
                out.send(Opcode::Text, t.as_bytes()).expect("open");
                expected_out.push(LegacyFrame::Text(t.as_bytes().to_vec()));
            }
            if c == chunks {
                break;
            }
            let (start, end) = (bounds[c], bounds[c + 1]);
            for (t, e) in texts.iter().zip(&ends) {
                if (start + 1..=end).contains(e) {
                    expected_in.push((c, t.as_bytes().to_vec()));
                }
            }
            let (used, got) = feed_chunk(&mut conn, &mut stream[start..end], T0, &mut out);
            prop_assert_eq!(used, end - start);
            for (kind, data) in got {
                prop_assert_eq!(kind, MessageKind::Text);
                received.push((c, data));
            }
        }
        prop_assert_eq!(received, expected_in);
        let mut bytes = Vec::new();
        out.take(&mut bytes);
        prop_assert_eq!(parse_legacy(&bytes), expected_out);
        prop_assert_eq!(conn.messages_in(), texts.len() as u64);
        prop_assert_eq!(conn.bytes_in(), stream.len() as u64);
    }
}
