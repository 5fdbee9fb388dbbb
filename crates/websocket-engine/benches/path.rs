//! The whole per-message path of mod_websocket without Apache: the real
//! session ([`websocket_engine::session::Session`]) stepped over an
//! in-memory transport. Each step reads a batch of client frames (64 KiB at
//! most), decodes and inflates them in the sans-I/O connection, hands each
//! message to an echo plugin through the `WebSocketServer` ABI (`send`
//! validates text and encodes into the connection's outbox, compressing if
//! negotiated), and writes the encoded replies, as inside Apache.
//!
//! What it leaves out is Apache's part: the brigade reads and writes, the
//! pollset, and the kernel. `cargo xtask bench` measures those on a real
//! server; comparing both shows what the engine itself costs.

use std::os::raw::c_int;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use websocket_engine::connection::{ConnState, Connection};
use websocket_engine::log::Level;
use websocket_engine::session::memory::{MemoryLog, MemoryTransport};
use websocket_engine::session::{Application, Session, Wait};
use websocket_plugin::ffi::{WebSocketServer, MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};
use websocket_proto::connection::{Compression, Connection as Protocol, Family, Limits};
use websocket_proto::decoder::MessageKind;
use websocket_proto::deflate::{negotiate, DeflateConfig, Deflater, Negotiated};
use websocket_proto::encoder::FrameHeaderBuf;
use websocket_proto::handshake::parse_extensions;
use websocket_proto::mask::apply_mask;
use websocket_proto::{Opcode, ProtocolVersion};

// The words of the load client's compressible payloads, shared so that both
// measure the same text.
#[path = "../../../bench/load-client/src/words.rs"]
mod words;
use words::WORDS;

// The engine references APR functions (apr_pollset_wakeup) that Apache
// provides at run time; outside Apache they come from the system's libapr.
#[link(name = "apr-1")]
#[link(name = "aprutil-1")]
extern "C" {}

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// The echo plugin's `on_message`, as a C plugin writes it.
///
/// # Safety
/// `server` is a live server made by `Connection::new`.
unsafe extern "system" fn echo(
    server: *const WebSocketServer,
    t: c_int,
    data: *const u8,
    len: usize,
) -> usize {
    // SAFETY: per the contract; `send` is always set.
    unsafe { ((*server).send.expect("send is set"))(server, t, data, len) }
}

fn negotiated(offer: &str) -> Negotiated {
    let offers = parse_extensions(offer).expect("valid offer");
    negotiate(&offers, &DeflateConfig::default())
        .expect("acceptable offer")
        .expect("deflate enabled")
}

/// A message of `size` bytes: binary bytes, mixed multi-byte UTF-8, or
/// compressible English-like text.
fn payload(kind: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    if kind == "compressible" {
        // Words in a pseudo-random order, like the load client's: repetitive
        // enough to compress about 5:1, not one repeated sentence.
        let mut x: u32 = 0x2545_f491;
        loop {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let w = WORDS[x as usize % WORDS.len()].as_bytes();
            if out.len() + w.len() > size {
                break;
            }
            out.extend_from_slice(w);
        }
    } else {
        let piece: &[u8] = match kind {
            "text" => "Grüße, κόσμε, こんにちは, 𝄞 music, 😀 ascii words here. ".as_bytes(),
            _ => &[0x00, 0x9f, 0x37, 0xff, 0x10, 0x80, 0x42, 0xc3, 0xa9, 0x01, 0xfe],
        };
        while out.len() + piece.len() <= size {
            out.extend_from_slice(piece);
        }
    }
    out.resize(size, b'.');
    out
}

/// The bytes a client sends: `count` masked frames, compressed when `deflate`.
fn client_stream(opcode: Opcode, message: &[u8], count: usize, deflate: bool) -> Vec<u8> {
    let mut compressor =
        deflate.then(|| Deflater::new(&negotiated("permessage-deflate; server_no_context_takeover"), 6));
    let mut stream = Vec::new();
    let mut body = Vec::new();
    for _ in 0..count {
        body.clear();
        match &mut compressor {
            Some(c) => c.compress(message, &mut body),
            None => body.extend_from_slice(message),
        }
        let header = FrameHeaderBuf::masked(opcode, true, deflate, body.len() as u64, KEY);
        stream.extend_from_slice(header.as_bytes());
        let start = stream.len();
        stream.extend_from_slice(&body);
        apply_mask(&mut stream[start..], KEY, 0);
    }
    stream
}

/// An echo plugin behind the ABI, as a C plugin writes it.
struct Echo {
    conn: Box<Connection>,
}

impl Application for Echo {
    fn state(&self) -> &ConnState {
        &self.conn.state
    }

    fn on_message(&self, kind: MessageKind, data: &mut [u8]) {
        let t = if kind == MessageKind::Text {
            MESSAGE_TYPE_TEXT
        } else {
            MESSAGE_TYPE_BINARY
        };
        // SAFETY: the connection is alive for the whole call.
        let sent = unsafe { echo(self.conn.server_ptr(), t, data.as_ptr(), data.len()) };
        assert_eq!(sent, data.len(), "the outbox took the echo");
    }

    fn on_disconnect(&mut self) {}
}

/// The server side of one connection.
struct Server {
    session: Session<MemoryTransport, Echo, MemoryLog>,
}

impl Server {
    fn new(deflate: bool) -> Server {
        let n = deflate.then(|| negotiated("permessage-deflate; client_no_context_takeover"));
        // The module's defaults (WebSocketCompressionLevel, ...MinSize).
        let compression = n.clone().map(|negotiated| Compression {
            negotiated,
            level: 1,
            min_size: 64,
        });
        let family = Family::Rfc6455 {
            version: ProtocolVersion::V13,
            deflate: n,
        };
        let conn = Connection::new(None, Vec::new(), &family, compression);
        let protocol = Protocol::new(
            &family,
            Limits {
                max_message_size: u64::MAX,
                ..Limits::default()
            },
            Duration::ZERO,
        );
        let transport = MemoryTransport::new();
        Server {
            session: Session::new(protocol, Echo { conn }, transport, MemoryLog::new(Level::Warning)),
        }
    }

    /// Runs `stream` through the path; returns the bytes written back
    /// (kept in the transport when `keep`).
    fn echo_stream(&mut self, stream: &[u8], keep: bool) -> u64 {
        let transport = self.session.transport();
        transport.keep_output.set(keep);
        let before = transport.write_count.get();
        transport.feed(stream);
        self.session.readable();
        while self.session.transport().unread() > 0 {
            match self.session.step(Duration::ZERO) {
                Wait::Done => panic!("the session ended"),
                Wait::Again => {}
                Wait::Io { .. } => self.session.readable(),
            }
        }
        // The last batch's replies.
        while self.session.step(Duration::ZERO) == Wait::Again {}
        self.session.transport().write_count.get() - before
    }
}

fn path(c: &mut Criterion) {
    let mut g = c.benchmark_group("path");
    let cases: &[(&str, &str, usize, usize, bool)] = &[
        ("16B_binary", "binary", 16, 4096, false),
        ("4KiB_binary", "binary", 4096, 256, false),
        ("1MiB_binary", "binary", 1 << 20, 1, false),
        ("1MiB_text", "text", 1 << 20, 1, false),
        ("16KiB_text_deflate", "compressible", 16 * 1024, 16, true),
    ];
    for &(name, kind, size, count, deflate) in cases {
        let opcode = if kind == "binary" {
            Opcode::Binary
        } else {
            Opcode::Text
        };
        let message = payload(kind, size);
        let stream = client_stream(opcode, &message, count, deflate);
        let mut server = Server::new(deflate);
        // Check once that the echo is right.
        server.echo_stream(&stream, true);
        let echoed = server.session.transport().take_written();
        if deflate {
            assert!(echoed.len() < count * size / 2, "compressed echoes");
        } else {
            let mut expected = Vec::new();
            for _ in 0..count {
                websocket_proto::encoder::write_frame(&mut expected, opcode, &message);
            }
            assert!(echoed == expected, "{name}: the echo differs");
        }
        g.throughput(Throughput::Elements(count as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &stream, |b, stream| {
            b.iter(|| server.echo_stream(stream, false))
        });
    }
    g.finish();
}

criterion_group!(benches, path);
criterion_main!(benches);
