//! The echo plugin under each MPM: message kinds and sizes, fragmentation,
//! ping, concurrency and the closing handshake. One server per MPM.

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use integration_tests::tungstenite::protocol::frame::coding::CloseCode;
use integration_tests::tungstenite::protocol::CloseFrame;
use integration_tests::tungstenite::Message;
use integration_tests::*;
use websocket_proto::Opcode;

fn echo_suite(mpm: Mpm) {
    let server = start_server("echo", mpm, &echo_location("/echo", ""));

    messages(&server);
    fragmented(&server);
    ping(&server);
    slow_reader(&server);
    concurrent(&server, 20, 50);
    close_handshake(&server);

    finish(server);
}

/// A client that sends many echoes before reading any: the server's socket
/// fills up, its writes wait for room (queued small messages and directly
/// written large ones alike), and every echo still arrives whole and in
/// order once the client reads.
fn slow_reader(server: &RunningServer) {
    let mut c = RawClient::open(server, "/echo");
    // 16 MiB: more than the server's socket send buffer (4 MiB at most by
    // default) and the client's unread receive window together.
    let messages: Vec<Vec<u8>> = (0..48u32)
        .map(|i| {
            let len = if i % 3 == 0 {
                300 + i as usize
            } else {
                512 * 1024 + i as usize
            };
            (0..len as u32).map(|j| (j * 31 + i * 7) as u8).collect()
        })
        .collect();
    let mut writer = c.stream.try_clone().expect("a second handle on the socket");
    let frames: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| client_frame(Opcode::Binary as u8, true, 0, m))
        .collect();
    let sending = thread::spawn(move || {
        for frame in frames {
            writer.write_all(&frame).expect("write to the server");
        }
    });
    // Far more than the socket buffers hold is on its way back by now.
    thread::sleep(Duration::from_millis(800));
    for (i, expected) in messages.iter().enumerate() {
        let frame = c.frame();
        assert_eq!(frame.opcode, Opcode::Binary as u8, "echo {i}");
        assert!(
            frame.payload == *expected,
            "echo {i} differs ({} bytes)",
            frame.payload.len()
        );
    }
    sending.join().expect("the writer finished");
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
    c.expect_eof(Duration::from_secs(5));
}

/// Text (ASCII and multi-byte UTF-8), binary, empty, 64 KiB text, 1 MiB binary.
fn messages(server: &RunningServer) {
    let mut c = ws_connect(server, "/echo");
    assert_echo(&mut c, Message::text("hello"));
    assert_echo(&mut c, Message::text("héllo wörld — 日本語 🎉 ∑"));
    assert_echo(&mut c, Message::binary(vec![0u8, 1, 2, 0xff, 0xfe, 0x80]));
    assert_echo(&mut c, Message::text(""));
    assert_echo(&mut c, Message::binary(Vec::new()));
    // 64 KiB of text whose multi-byte characters straddle any read boundary.
    let mut text = String::new();
    for ch in "aé日🎉".chars().cycle() {
        if text.len() >= 64 * 1024 {
            break;
        }
        text.push(ch);
    }
    assert_echo(&mut c, Message::text(text));
    let big: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 + i / 251) as u8).collect();
    assert_echo(&mut c, Message::binary(big));
    // Still fine after the big one.
    assert_echo(&mut c, Message::text("after"));
    close_client(c);
}

/// A message in three fragments with a ping between them, and a UTF-8
/// character split across fragments.
fn fragmented(server: &RunningServer) {
    let mut c = RawClient::open(server, "/echo");
    c.send_frame(Opcode::Text, false, b"Hel");
    c.send_frame(Opcode::Continuation, false, b"lo, w\xc3");
    c.send_frame(Opcode::Ping, true, b"between");
    c.send_frame(Opcode::Continuation, true, b"\xa9rld");
    let pong = c.frame();
    assert_eq!(pong.opcode, Opcode::Pong as u8, "{pong:?}");
    assert_eq!(pong.payload, b"between");
    let echoed = c.frame();
    assert_eq!(echoed.opcode, Opcode::Text as u8, "{echoed:?}");
    assert!(echoed.fin);
    assert_eq!(echoed.text(), "Hello, wérld");

    // A fragmented binary message.
    c.send_frame(Opcode::Binary, false, &[1, 2, 3]);
    c.send_frame(Opcode::Continuation, false, &[]);
    c.send_frame(Opcode::Continuation, true, &[4, 5]);
    let echoed = c.frame();
    assert_eq!(echoed.opcode, Opcode::Binary as u8, "{echoed:?}");
    assert_eq!(echoed.payload, [1, 2, 3, 4, 5]);

    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
    c.expect_eof(Duration::from_secs(5));
}

fn ping(server: &RunningServer) {
    let mut c = ws_connect(server, "/echo");
    let payload = b"ping \x00\x01\xff payload".to_vec();
    c.send(Message::Ping(payload.clone().into())).unwrap();
    match c.read().expect("read the pong") {
        Message::Pong(p) => assert_eq!(p.as_ref(), &payload[..]),
        other => panic!("expected a pong, got {other:?}"),
    }
    // An empty ping too.
    c.send(Message::Ping(Vec::new().into())).unwrap();
    match c.read().expect("read the pong") {
        Message::Pong(p) => assert!(p.is_empty()),
        other => panic!("expected a pong, got {other:?}"),
    }
    close_client(c);
}

/// `clients` connections at once, each echoing `messages` messages of varied
/// size and type, in order.
fn concurrent(server: &RunningServer, clients: usize, messages: usize) {
    let url_server = server;
    thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                s.spawn(move || {
                    let mut c = ws_connect(url_server, "/echo");
                    for k in 0..messages {
                        let size = (i * 131 + k * 977) % 20_000;
                        let message = if k % 2 == 0 {
                            let mut t = format!("client {i} message {k} ");
                            t.extend(std::iter::repeat_n('ü', size / 2));
                            Message::text(t)
                        } else {
                            let mut b = format!("client {i} message {k}").into_bytes();
                            b.extend((0..size).map(|x| (x ^ i ^ k) as u8));
                            Message::binary(b)
                        };
                        assert_echo(&mut c, message);
                    }
                    close_client(c);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a client thread failed");
        }
    });
}

/// The client closes with 1000 (and 4321): the server answers with the same
/// code and closes the TCP connection.
fn close_handshake(server: &RunningServer) {
    let mut c = ws_connect(server, "/echo");
    assert_echo(&mut c, Message::text("before close"));
    c.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    match c.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Normal),
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    match c.read() {
        Err(integration_tests::tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
    let mut rest = [0u8; 16];
    assert_eq!(
        c.get_mut().read(&mut rest).expect("read after close"),
        0,
        "the TCP connection is still open"
    );

    let mut raw = RawClient::open(server, "/echo");
    raw.send_close(4321, "custom");
    assert_eq!(raw.expect_close(), Some(4321), "the server echoes the code");
    raw.expect_eof(Duration::from_secs(5));
}

#[test]
fn echo_event() {
    echo_suite(Mpm::Event);
}

#[test]
fn echo_worker() {
    echo_suite(Mpm::Worker);
}

#[test]
fn echo_prefork() {
    echo_suite(Mpm::Prefork);
}

/// Bytes a session reads past Apache's input filters (plain connections are
/// read from the socket directly) still count for mod_logio's `%I`, and
/// what it writes (straight to the socket too) for `%O`, each byte once.
#[test]
fn session_traffic_is_counted_for_the_access_log() {
    let log = "logs/io.log";
    let config = format!(
        "{}\nLogFormat \"%r|%I|%O\" io\nCustomLog \"{log}\" io\n",
        echo_location("/echo", "")
    );
    let server = start_server("echo-logio", Mpm::Event, &config);
    let mut client = RawClient::open(&server, "/echo");
    let payload = vec![b'x'; 100_000];
    for _ in 0..5 {
        client.send_frame(Opcode::Binary, true, &payload);
        let frame = client.read_frame().expect("an echo");
        assert_eq!(frame.payload.len(), payload.len());
    }
    client.send_close(1000, "");
    assert_eq!(client.expect_close(), Some(1000));
    drop(client);
    let path = server.root().join(log);
    let line = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with("GET /echo")).map(str::to_owned))
    })
    .unwrap_or_else(|| panic!("no access log line for the session:\n{}", server.logs()));
    let fields: Vec<&str> = line.split('|').collect();
    let (bytes_in, bytes_out): (u64, u64) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    // Five masked 100 000-byte frames and a close in, five echoes and a
    // close out, plus the handshake's request and answer (well under 1000
    // bytes each).
    let frames_in = 5 * (8 + 4 + 100_000) + 6 + 2;
    let frames_out = 5 * (4 + 100_000) + 2 + 2;
    assert!(
        (frames_in..frames_in + 1000).contains(&bytes_in),
        "%I = {bytes_in}: {line}"
    );
    assert!(
        (frames_out..frames_out + 1000).contains(&bytes_out),
        "%O = {bytes_out}: {line}"
    );
    finish(server);
}

/// Polls `f` until it returns something or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
