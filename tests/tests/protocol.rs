//! Protocol violations over raw sockets get the right close code, and
//! clients that vanish at any point do not hurt the server.

use std::io::Write;
use std::thread;
use std::time::Duration;

use integration_tests::*;
use websocket_proto::Opcode;

fn server(name: &str, mpm: Mpm) -> RunningServer {
    let config = [
        echo_location("/echo", ""),
        echo_location("/small", "    MaxMessageSize 1000"),
    ]
    .concat();
    start_server(name, mpm, &config)
}

/// Opens `path` with protocol `version`, sends `bytes` and expects a close
/// frame with `code`, then the end of the connection.
fn expect_failure(server: &RunningServer, path: &str, version: &str, bytes: &[u8], code: u16, what: &str) {
    let mut c = Handshake::new(path)
        .header("Sec-WebSocket-Version", version)
        .open(server);
    c.send_raw(bytes);
    let got = c.expect_close();
    assert_eq!(got, Some(code), "{what}: wrong close code");
    c.expect_eof(Duration::from_secs(5));
}

fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    client_frame(opcode, fin, 0, payload)
}

fn frames(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn violations_get_their_close_codes() {
    let server = server("proto-codes", Mpm::Event);
    let v13 = |bytes: &[u8], code: u16, what: &str| expect_failure(&server, "/echo", "13", bytes, code, what);

    // 1002: protocol errors.
    v13(
        &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o'],
        1002,
        "unmasked frame",
    );
    v13(&frame(0x3, true, b"x"), 1002, "reserved data opcode 3");
    v13(&frame(0xB, true, b""), 1002, "reserved control opcode 0xB");
    v13(
        &client_frame(0x1, true, 0x40, b"x"),
        1002,
        "RSV1 without an extension",
    );
    v13(&client_frame(0x2, true, 0x20, b"x"), 1002, "RSV2");
    v13(&client_frame(0x1, true, 0x10, b"x"), 1002, "RSV3");
    v13(&frame(0x9, false, b"p"), 1002, "fragmented ping");
    v13(&frame(0x9, true, &[b'p'; 126]), 1002, "ping with 126 bytes");
    v13(
        &frame(0x0, true, b"orphan"),
        1002,
        "continuation without a message",
    );
    v13(
        &frames(&[frame(0x1, false, b"one"), frame(0x1, true, b"two")]),
        1002,
        "new message inside a fragmented one",
    );
    v13(&frame(0x8, true, &[0x03]), 1002, "close payload of one byte");
    v13(&frame(0x8, true, &close_payload(999, "")), 1002, "close code 999");
    v13(
        &frame(0x8, true, &close_payload(1005, "")),
        1002,
        "close code 1005 on the wire",
    );

    // 1007: invalid UTF-8 in text.
    v13(&frame(0x1, true, b"\xff\xfe"), 1007, "bytes that are never UTF-8");
    v13(&frame(0x1, true, b"ab\xc0\xaf"), 1007, "overlong encoding");
    v13(&frame(0x1, true, b"\xed\xa0\x80"), 1007, "UTF-16 surrogate");
    v13(
        &frames(&[frame(0x1, false, b"ok \xe6\x97"), frame(0x0, true, b"\x41")]),
        1007,
        "broken sequence across fragments",
    );
    v13(
        &frames(&[
            frame(0x1, false, b"ends in the middle \xe6\x97"),
            frame(0x0, true, b""),
        ]),
        1007,
        "message ending inside a character",
    );
    v13(
        &frame(0x8, true, &[&close_payload(1000, "")[..], b"\xff"].concat()),
        1007,
        "close reason not UTF-8",
    );

    // 1009 (1004 for the hybi drafts): too big.
    let big = frame(0x2, true, &[7u8; 2000]);
    expect_failure(
        &server,
        "/small",
        "13",
        &big,
        1009,
        "2000 bytes over a 1000 limit",
    );
    expect_failure(&server, "/small", "8", &big, 1004, "too big, version 8");
    expect_failure(&server, "/small", "7", &big, 1004, "too big, version 7");
    expect_failure(
        &server,
        "/small",
        "13",
        &frames(&[frame(0x1, false, &[b'a'; 600]), frame(0x0, true, &[b'b'; 600])]),
        1009,
        "fragments adding up to more than the limit",
    );
    // A header claiming 2^62 bytes: refused at once, before any payload
    // (the default limit is 32 MiB).
    let mut huge = vec![0x82, 0xFF];
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    huge.extend_from_slice(&MASK_KEY);
    expect_failure(&server, "/echo", "13", &huge, 1009, "2^62-byte header");

    // Exactly at the limit is fine.
    let mut c = RawClient::open(&server, "/small");
    c.send_frame(Opcode::Binary, true, &[9u8; 1000]);
    let echoed = c.frame();
    assert_eq!(echoed.payload, vec![9u8; 1000]);
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));

    finish(server);
}

/// Every way of dropping a connection early, then the server must still
/// echo and have nothing bad in its log.
fn vanishing_clients(mpm: Mpm) {
    let mut server = server("proto-vanish", mpm);

    // Mid-frame: a header promising 1000 bytes, 10 of them, gone.
    let mut c = RawClient::open(&server, "/echo");
    let f = frame(0x2, true, &[1u8; 1000]);
    c.send_raw(&f[..16]);
    drop(c);
    // Mid-header of a 64-bit length.
    let mut c = RawClient::open(&server, "/echo");
    c.send_raw(&[0x82, 0xFF, 0, 0]);
    drop(c);
    check_echo(&server, "after a client vanished mid-frame");

    // 200 connections dropped at various points, 4 at a time.
    let request = Handshake::new("/echo").text(server.port());
    thread::scope(|s| {
        for t in 0..4 {
            let server = &server;
            let request = &request;
            s.spawn(move || {
                for i in 0..50 {
                    match (t + i) % 4 {
                        0 => {
                            // Mid-handshake.
                            let mut s = connect(server);
                            let cut = 10 + (i * 7) % (request.len() - 20);
                            let _ = s.write_all(&request.as_bytes()[..cut]);
                        }
                        1 => {
                            // Connected, nothing sent.
                            drop(connect(server));
                        }
                        2 => {
                            // Open, mid-frame.
                            let mut c = RawClient::open(server, "/echo");
                            let f = frame(0x1, false, b"partial message");
                            c.send_raw(&f[..(i % f.len()).max(1)]);
                        }
                        _ => {
                            // Open, a message sent, its echo never read.
                            let mut c = RawClient::open(server, "/echo");
                            c.send_frame(Opcode::Binary, true, &vec![3u8; 70_000]);
                        }
                    }
                }
            });
        }
    });

    check_echo(&server, "after 200 dropped connections");
    assert!(server.is_running(), "httpd died:\n{}", server.logs());
    // Give the workers a moment to notice the last drops, then look.
    thread::sleep(Duration::from_millis(300));
    check_echo(&server, "after the drops settled");
    finish(server);
}

fn check_echo(server: &RunningServer, when: &str) {
    let mut c = ws_connect(server, "/echo");
    c.send(tungstenite::Message::text(when)).unwrap();
    assert_eq!(next_text(&mut c), when);
    close_client(c);
}

#[test]
fn vanishing_clients_event() {
    vanishing_clients(Mpm::Event);
}

#[test]
fn vanishing_clients_worker() {
    vanishing_clients(Mpm::Worker);
}

#[test]
fn vanishing_clients_prefork() {
    vanishing_clients(Mpm::Prefork);
}
