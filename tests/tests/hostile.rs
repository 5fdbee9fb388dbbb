//! Hostile clients, bounded in time: random bytes as the handshake and after
//! it, truncated frames, slow drips, ping floods, maximum-size control
//! frames, a thousand connections dropped without a close, and a flood of
//! frames claiming nearly MaxMessageSize bytes that never come. The server
//! must never crash, keep serving, hold no more memory than the limit allows
//! and run every dropped connection's on_disconnect.
//!
//! Each test runs its own server with a single child process (event MPM),
//! so the C test plugin's process-wide `live` counter covers every
//! connection, and the child's memory is the server's memory.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use integration_tests::*;
use websocket_proto::Opcode;

/// The limit the hostile locations use: small enough that N connections ×
/// the limit is a meaningful memory bound.
const MAX_MESSAGE: usize = 1 << 20;

/// One child process with enough threads for every connection at once.
const SINGLE_CHILD: &str = "<IfModule mpm_event_module>\n    ServerLimit 1\n    StartServers 1\n    \
    ThreadLimit 100\n    ThreadsPerChild 100\n    MinSpareThreads 1\n    MaxSpareThreads 200\n    \
    MaxRequestWorkers 100\n</IfModule>\n";

fn server(name: &str) -> RunningServer {
    let size = format!("    MaxMessageSize {MAX_MESSAGE}");
    let config = [
        SINGLE_CHILD.to_owned(),
        plugin_location("/c", c_plugin(), "test_plugin_init", &size),
        echo_location("/echo", &size),
    ]
    .concat();
    let server = start_server(name, Mpm::Event, &config);
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker_pids(&server).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "expected one child process, have {:?}\n{}",
            worker_pids(&server),
            server.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A connection that asks the C plugin how many connections are live in
/// its process (itself included).
struct Probe(RawClient);

impl Probe {
    fn new(server: &RunningServer) -> Probe {
        Probe(RawClient::open(server, "/c"))
    }

    fn live(&mut self) -> u64 {
        self.0.send_text("live");
        let t = self.0.read_text();
        t.parse().unwrap_or_else(|_| panic!("live answered {t:?}"))
    }

    /// Waits until `expected` connections are live (this one included).
    fn wait_for(&mut self, expected: u64, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            let n = self.live();
            if n == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {n} connections still live after {within:?}, expected {expected} \
                 (on_disconnect did not run for every dropped connection)"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads until the server ends the connection; fails if it does not within
/// `within`. Returns what came.
fn drain_to_eof(stream: &mut TcpStream, within: Duration, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{what}: the server kept the connection open for {within:?}"
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) =>
            {
                return out
            }
            Err(e) => panic!("{what}: the server did not end the connection within {within:?}: {e}"),
        }
    }
}

/// Closes with a TCP reset instead of a FIN.
fn reset(stream: TcpStream) {
    use std::os::unix::io::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rv = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rv, 0, "setsockopt(SO_LINGER)");
    drop(stream);
}

/// Sends a text and expects it back within `within`.
fn quick_echo(c: &mut RawClient, text: &str, within: Duration) {
    let started = Instant::now();
    c.send_text(text);
    assert_eq!(c.read_text(), text);
    assert!(
        started.elapsed() < within,
        "an echo took {:?} (server unresponsive)",
        started.elapsed()
    );
}

/// A random-looking but well-formed masked frame: any opcode (valid or
/// not), any FIN/RSV, a short payload of random or UTF-8 bytes.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    const OPCODES: [u8; 9] = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB, 0x1];
    let opcode = OPCODES[rng.below(OPCODES.len() as u64) as usize];
    let fin = rng.below(4) != 0;
    let rsv = if rng.below(10) == 0 { 0x40 } else { 0 };
    let payload = match rng.below(3) {
        0 => "ü€ hello 🎉".as_bytes().to_vec(),
        1 => rng.sized(0, 200),
        _ => {
            let mut p = rng.sized(2, 20);
            // Close codes, valid and not.
            p[..2].copy_from_slice(
                &[1000u16, 1001, 1005, 999, 3000, 5000][rng.below(6) as usize].to_be_bytes(),
            );
            p
        }
    };
    client_frame(opcode, fin, rsv, &payload)
}

#[test]
fn hostile_input() {
    let server = server("hostile-input");
    let mut probe = Probe::new(&server);
    assert_eq!(probe.live(), 1, "only the probe is connected");
    let port = server.port();

    // Random bytes as the handshake, some behind a plausible request line;
    // the write side is shut so Apache sees the end either way.
    thread::scope(|s| {
        for t in 0..4u64 {
            let server = &server;
            s.spawn(move || {
                let mut rng = Rng(0x5EED_0000 + t);
                for i in 0..50u32 {
                    let mut bytes = match i % 3 {
                        0 => Vec::new(),
                        1 => b"GET /c HTTP/1.1\r\n".to_vec(),
                        _ => format!(
                            "GET /c HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                        )
                        .into_bytes(),
                    };
                    bytes.extend(rng.sized(1, 2048));
                    if i.is_multiple_of(5) {
                        bytes.extend_from_slice(b"\r\n\r\n");
                    }
                    let mut s = connect(server);
                    // The server may answer and close before all is written.
                    let _ = s.write_all(&bytes);
                    let _ = s.shutdown(Shutdown::Write);
                    let answer = drain_to_eof(&mut s, Duration::from_secs(10), "random handshake");
                    assert!(
                        !answer.starts_with(b"HTTP/1.1 101"),
                        "random bytes got a 101: {:?}",
                        String::from_utf8_lossy(&answer)
                    );
                }
            });
        }
    });

    // Random bytes, and random well-formed frames, after a valid handshake.
    thread::scope(|s| {
        for t in 0..4u64 {
            let server = &server;
            s.spawn(move || {
                let mut rng = Rng(0xF00D_0000 + t);
                for i in 0..50 {
                    let mut c = RawClient::open(server, "/c");
                    let bytes: Vec<u8> = if i % 2 == 0 {
                        rng.sized(1, 4096)
                    } else {
                        (0..1 + rng.below(10))
                            .flat_map(|_| random_frame(&mut rng))
                            .collect()
                    };
                    let _ = c.stream.write_all(&bytes);
                    let _ = c.stream.shutdown(Shutdown::Write);
                    drain_to_eof(&mut c.stream, Duration::from_secs(10), "random frames");
                }
            });
        }
    });

    truncated_frames(&server);
    slow_drip(&server);
    ping_flood(&server);
    max_size_control_frames(&server);

    // Every one of those connections has ended, on_disconnect included.
    probe.wait_for(1, Duration::from_secs(10), "after the hostile input");
    let mut c = RawClient::open(&server, "/echo");
    quick_echo(&mut c, "still here ✓", Duration::from_secs(2));
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
    assert_eq!(worker_pids(&server).len(), 1, "the child was replaced");
    assert_log_clean(&server);
    finish(server);
}

/// Frames cut at every interesting point. Dropped there, the session ends;
/// completed after a pause, the message goes through.
fn truncated_frames(server: &RunningServer) {
    let full = client_frame(0x1, true, 0, "truncated ✓".as_bytes());
    let long_payload = "x".repeat(70_000);
    let long = client_frame(0x1, true, 0, long_payload.as_bytes());
    let medium_payload = "m".repeat(300);
    let medium = client_frame(0x1, true, 0, medium_payload.as_bytes());
    let cases: Vec<(&str, &[u8], usize, &str)> = vec![
        ("one header byte", &full, 1, "truncated ✓"),
        ("header without mask", &full, 2, "truncated ✓"),
        ("half a mask", &full, 4, "truncated ✓"),
        ("half a payload", &full, 9, "truncated ✓"),
        ("16-bit length cut", &medium, 3, &medium_payload),
        ("64-bit length cut", &long, 6, &long_payload),
        ("64-bit payload cut", &long, 40_000, &long_payload),
    ];
    for (what, frame, cut, text) in cases {
        // Dropped mid-frame.
        let mut c = RawClient::open(server, "/c");
        c.send_raw(&frame[..cut]);
        thread::sleep(Duration::from_millis(20));
        drop(c);
        // Paused mid-frame, then completed.
        let mut c = RawClient::open(server, "/c");
        c.send_raw(&frame[..cut]);
        thread::sleep(Duration::from_millis(300));
        c.send_raw(&frame[cut..]);
        assert_eq!(c.read_text(), text, "{what}");
        c.send_close(1000, "");
        assert_eq!(c.expect_close(), Some(1000), "{what}");
    }
    // A fragmented message whose end never comes.
    let mut c = RawClient::open(server, "/c");
    c.send_frame(Opcode::Text, false, b"first fragment ");
    c.send_frame(Opcode::Continuation, false, b"second ");
    drop(c);
    // A close frame cut inside its payload.
    let mut c = RawClient::open(server, "/c");
    let close = client_frame(0x8, true, 0, &close_payload(1000, "bye bye"));
    c.send_raw(&close[..8]);
    drop(c);
}

/// One byte every 200 ms, for the handshake and for a frame, while other
/// clients are served without delay.
fn slow_drip(server: &RunningServer) {
    const DRIP: Duration = Duration::from_millis(200);
    thread::scope(|s| {
        s.spawn(|| {
            let request = Handshake::new("/c").text(server.port()).into_bytes();
            let mut stream = connect(server);
            for b in &request[..15] {
                stream.write_all(&[*b]).unwrap();
                thread::sleep(DRIP);
            }
            stream.write_all(&request[15..]).unwrap();
            let response = read_response(&mut stream).expect("a response to the dripped handshake");
            assert_eq!(response.status, 101, "{response:?}");
        });
        s.spawn(|| {
            let mut c = RawClient::open(server, "/c");
            for b in client_frame(0x1, true, 0, b"drip") {
                c.send_raw(&[b]);
                thread::sleep(DRIP);
            }
            assert_eq!(c.read_text(), "drip");
            c.send_close(1000, "");
            assert_eq!(c.expect_close(), Some(1000));
        });
        // Meanwhile everyone else is served at once.
        let mut c = RawClient::open(server, "/echo");
        let until = Instant::now() + Duration::from_secs(2);
        let mut i = 0;
        while Instant::now() < until {
            quick_echo(&mut c, &format!("during the drip {i}"), Duration::from_secs(1));
            thread::sleep(Duration::from_millis(50));
            i += 1;
        }
        c.send_close(1000, "");
        assert_eq!(c.expect_close(), Some(1000));
    });
}

/// Thousands of pings in one burst, a fifth of them with the largest
/// payload a control frame may have; every pong comes back in order, and
/// other clients are served meanwhile.
fn ping_flood(server: &RunningServer) {
    const PINGS: usize = 5000;
    let payload = |i: usize| -> Vec<u8> {
        let mut p = format!("ping {i} ").into_bytes();
        if i.is_multiple_of(5) {
            p.resize(125, b'.');
        }
        p
    };
    let mut c = RawClient::open(server, "/c");
    let mut flood = Vec::new();
    for i in 0..PINGS {
        flood.extend_from_slice(&client_frame(0x9, true, 0, &payload(i)));
    }
    flood.extend_from_slice(&client_frame(0x1, true, 0, b"after the flood"));
    let mut writer = c.stream.try_clone().unwrap();
    thread::scope(|s| {
        s.spawn(move || writer.write_all(&flood).expect("write the flood"));
        s.spawn(|| {
            let mut other = RawClient::open(server, "/echo");
            for i in 0..10 {
                quick_echo(
                    &mut other,
                    &format!("beside the flood {i}"),
                    Duration::from_secs(2),
                );
            }
            other.send_close(1000, "");
            assert_eq!(other.expect_close(), Some(1000));
        });
        for i in 0..PINGS {
            let f = c.frame();
            assert_eq!(f.opcode, 0xA, "pong {i}: {f:?}");
            assert_eq!(f.payload, payload(i), "pong {i}");
        }
        assert_eq!(c.read_text(), "after the flood");
    });
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
}

fn max_size_control_frames(server: &RunningServer) {
    let mut c = RawClient::open(server, "/c");
    let ping: Vec<u8> = (0..125u8).collect();
    c.send_frame(Opcode::Ping, true, &ping);
    let pong = c.frame();
    assert_eq!((pong.opcode, &pong.payload), (0xA, &ping));
    // A 125-byte pong is ignored; a 125-byte close is answered.
    c.send_frame(Opcode::Pong, true, &ping);
    c.send_text("between");
    assert_eq!(c.read_text(), "between");
    let reason = "r".repeat(123);
    c.send_close(1000, &reason);
    let f = c.frame();
    assert_eq!(f.close_code(), Some(1000), "{f:?}");
    assert!(f.payload.len() <= 125, "{f:?}");
    c.expect_eof(Duration::from_secs(5));
    // One byte over is a protocol error.
    let mut c = RawClient::open(server, "/c");
    c.send_frame(Opcode::Ping, true, &[0u8; 126]);
    assert_eq!(c.expect_close(), Some(1002));
}

/// 1000 connections opened and dropped without a close frame, in batches:
/// after the handshake (FIN or reset), mid-frame, mid-message, and before the
/// handshake is complete. Every accepted one gets its on_disconnect.
#[test]
fn thousand_dropped_connections() {
    let server = server("hostile-drops");
    let mut probe = Probe::new(&server);
    let held: Vec<RawClient> = (0..3).map(|_| RawClient::open(&server, "/c")).collect();
    probe.wait_for(4, Duration::from_secs(5), "before the drops");
    let started = Instant::now();
    let request = Handshake::new("/c").text(server.port()).into_bytes();
    let mut accepted = 0;
    for batch in 0..20 {
        let mut open = Vec::new();
        for i in 0..50 {
            let n = batch * 50 + i;
            if n % 5 == 4 {
                // Half a handshake.
                let mut s = connect(&server);
                s.write_all(&request[..request.len() / 2]).unwrap();
                open.push((n, s));
                continue;
            }
            let mut c = RawClient::open(&server, "/c");
            accepted += 1;
            match n % 5 {
                2 => c.send_raw(&client_frame(0x2, true, 0, &[7u8; 1000])[..500]),
                3 => c.send_frame(Opcode::Text, false, b"a message that never ends"),
                _ => {}
            }
            open.push((n, c.stream));
        }
        for (n, stream) in open {
            if n % 5 == 1 {
                reset(stream);
            } else {
                drop(stream);
            }
        }
    }
    eprintln!(
        "opened and dropped 1000 connections ({accepted} upgraded) in {:?}",
        started.elapsed()
    );
    probe.wait_for(4, Duration::from_secs(15), "after 1000 dropped connections");
    for (i, mut c) in held.into_iter().enumerate() {
        quick_echo(&mut c, &format!("held connection {i}"), Duration::from_secs(2));
        c.send_close(1000, "");
        assert_eq!(c.expect_close(), Some(1000));
    }
    probe.wait_for(1, Duration::from_secs(5), "after closing the held connections");
    assert_eq!(worker_pids(&server).len(), 1, "the child was replaced");
    assert_log_clean(&server);
    finish(server);
}

/// The child's memory (resident and allocated).
fn memory(server: &RunningServer) -> (u64, u64) {
    let pids = worker_pids(server);
    assert_eq!(pids.len(), 1, "one child expected: {pids:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0])).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("VmRSS:") * 1024, field("VmData:") * 1024)
}

/// 50 connections each send a frame header claiming MaxMessageSize - 1
/// bytes and a little of the payload, then stall: the server must not
/// allocate what the headers claim. Then 50 connections send nearly all of
/// such a message: the server holds at most about the limit per connection.
#[test]
fn memory_stays_bounded() {
    const CONNECTIONS: usize = 50;
    let server = server("hostile-memory");
    let claim = MAX_MESSAGE - 1;
    // Warm up the worker threads (allocator arenas, stacks) with small
    // messages, so that what follows measures the sessions. (Big messages
    // would leave freed memory in the allocator for the claims to reuse
    // unseen.)
    let mut warm: Vec<RawClient> = (0..CONNECTIONS + 10)
        .map(|_| RawClient::open(&server, "/echo"))
        .collect();
    for (i, c) in warm.iter_mut().enumerate() {
        quick_echo(c, &format!("warm-up {i}"), Duration::from_secs(2));
    }
    for mut c in warm {
        c.send_close(1000, "");
        assert_eq!(c.expect_close(), Some(1000));
    }
    thread::sleep(Duration::from_millis(500));
    let (rss0, data0) = memory(&server);

    // Claims, with 4 KiB of the payload each.
    let header = |len: usize| {
        let mut h = client_frame(0x2, true, 0, &[]);
        // Rewrite the length as a 64-bit one (client_frame wrote 0).
        h.truncate(1);
        h.push(0x80 | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
        h.extend_from_slice(&MASK_KEY);
        h
    };
    let mut stalled: Vec<RawClient> = (0..CONNECTIONS)
        .map(|_| {
            let mut c = RawClient::open(&server, "/echo");
            let mut bytes = header(claim);
            bytes.extend(std::iter::repeat_n(0x55u8, 4096));
            c.send_raw(&bytes);
            c
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let (rss1, data1) = memory(&server);
    let bound = (CONNECTIONS * MAX_MESSAGE) as u64;
    eprintln!(
        "claims: RSS {} KiB -> {} KiB, data {} KiB -> {} KiB (bound {} KiB)",
        rss0 >> 10,
        rss1 >> 10,
        data0 >> 10,
        data1 >> 10,
        bound >> 10
    );
    assert!(
        rss1.saturating_sub(rss0) < bound / 8,
        "{CONNECTIONS} claims of {claim} bytes grew the child's RSS by {} KiB",
        (rss1 - rss0) >> 10
    );
    assert!(
        data1.saturating_sub(data0) < bound / 4,
        "{CONNECTIONS} claims of {claim} bytes grew the child's heap by {} KiB: \
         memory is reserved for what frame headers claim",
        (data1 - data0) >> 10
    );

    // Nearly whole messages: held, but about once each.
    for c in stalled.iter_mut() {
        c.send_raw(&vec![0x55u8; claim - 4096 - 1]);
    }
    thread::sleep(Duration::from_secs(1));
    let (rss2, _) = memory(&server);
    eprintln!("nearly complete messages: RSS {} KiB", rss2 >> 10);
    assert!(
        rss2.saturating_sub(rss0) < bound * 3 / 2,
        "{CONNECTIONS} messages of nearly {claim} bytes grew the child's RSS by {} KiB (limit {} KiB per connection)",
        (rss2 - rss0) >> 10,
        MAX_MESSAGE >> 10
    );
    // The last byte completes each message, which is echoed whole.
    for c in stalled.iter_mut() {
        c.send_raw(&[0x55]);
    }
    for (i, c) in stalled.iter_mut().enumerate() {
        let f = c.frame();
        assert_eq!(f.payload.len(), claim, "connection {i}");
        // The raw bytes were 0x55 on the wire, so unmasked they cycle.
        assert!(
            f.payload
                .iter()
                .enumerate()
                .all(|(k, &b)| b == 0x55 ^ MASK_KEY[k % 4]),
            "connection {i}: the echo differs"
        );
    }
    // One byte over the limit is refused before it is buffered.
    let mut c = RawClient::open(&server, "/echo");
    c.send_raw(&header(MAX_MESSAGE + 1));
    assert_eq!(c.expect_close(), Some(1009));
    for mut c in stalled {
        c.send_close(1000, "");
        assert_eq!(c.expect_close(), Some(1000));
    }
    let mut c = RawClient::open(&server, "/echo");
    quick_echo(&mut c, "after the memory flood", Duration::from_secs(2));
    drop(c);
    assert_log_clean(&server);
    finish(server);
}
