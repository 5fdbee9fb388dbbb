//! Handshake and framing details where we behave as the maintained C fork
//! of apache-websocket does (and RFC 6455 asks): subprotocol choice, empty
//! and repeated lists, reserved close codes, the ABI's close functions,
//! `MaxMessageSize` with compression and for control frames, and refusing
//! an oversized frame as soon as its length is known. Each MPM runs the
//! same checks against one server, with the Rust example plugins and the C
//! test plugin (built against the current header and the original one).

use std::time::Duration;

use integration_tests::*;
use websocket_proto::deflate::{negotiate, DeflateConfig, Deflater, Inflater, Negotiated};
use websocket_proto::handshake::parse_extensions;
use websocket_proto::Opcode;

const DEFLATE_OFFER: &str = "permessage-deflate; client_no_context_takeover; server_no_context_takeover";

fn server(name: &str, mpm: Mpm) -> RunningServer {
    let config = [
        echo_location("/echo", ""),
        echo_location("/reserved", "    WebSocketAllowReservedStatusCodes On"),
        echo_location("/tiny", "    MaxMessageSize 4"),
        echo_location("/small", "    MaxMessageSize 100"),
        plugin_location("/c", c_plugin(), "test_plugin_init", ""),
        plugin_location("/c-old", c_plugin_original_header(), "test_plugin_init", ""),
        dumb_increment_location("/inc"),
    ]
    .concat();
    start_server(name, mpm, &config)
}

fn protocols(path: &str, lines: &[&str]) -> Handshake {
    lines.iter().fold(Handshake::new(path), |h, line| {
        h.also("Sec-WebSocket-Protocol", line)
    })
}

/// Reads up to the server's close frame and returns it whole.
fn close_frame(c: &mut RawClient, what: &str) -> Frame {
    loop {
        let f = c
            .read_frame()
            .unwrap_or_else(|e| panic!("{what}: expected a close frame: {e}"));
        if f.opcode == Opcode::Close as u8 {
            return f;
        }
    }
}

/// The server fails the connection with `code` (and then closes it).
fn expect_failure(mut c: RawClient, code: u16, what: &str) {
    let f = close_frame(&mut c, what);
    assert_eq!(f.close_code(), Some(code), "{what}: {f:?}");
    c.expect_eof(Duration::from_secs(5));
}

fn subprotocols(server: &RunningServer) {
    // A Rust plugin that picks nothing: no Sec-WebSocket-Protocol.
    let c = protocols("/echo", &["chat, superchat"]).open(server);
    c.response
        .assert_header("Sec-WebSocket-Protocol", None, "/echo picks none");
    c.close_normally();
    // A Rust plugin that picks one: that one.
    let c = protocols("/inc", &["chat, dumb-increment-protocol"]).open(server);
    c.response
        .assert_header("Sec-WebSocket-Protocol", Some("dumb-increment-protocol"), "/inc");
    c.close_normally();
    // C plugins, new and old header: chat.v2 when offered, else nothing;
    // the offered list is reported either way.
    for path in ["/c", "/c-old"] {
        let mut c = protocols(path, &["superchat,chat"]).open(server);
        c.response.assert_header("Sec-WebSocket-Protocol", None, path);
        assert_eq!(c.ask("protocols"), "superchat,chat", "{path}");
        c.close_normally();
        let mut c = protocols(path, &["chat.v1, chat.v2, chat.v3"]).open(server);
        c.response
            .assert_header("Sec-WebSocket-Protocol", Some("chat.v2"), path);
        assert_eq!(c.ask("protocols"), "chat.v1,chat.v2,chat.v3", "{path}");
        c.close_normally();
    }
    // A refused connection names no subprotocol either.
    let refused = protocols("/inc", &["chat"]).response(server);
    assert_eq!(refused.status, 403, "{refused:?}");
    refused.assert_header("Sec-WebSocket-Protocol", None, "refused");
}

fn empty_lists(server: &RunningServer) {
    for value in ["", " ", "\t", ",", ",,", ", ,", " , \t, "] {
        let r = protocols("/echo", &[value]).response(server);
        assert_eq!(r.status, 400, "Sec-WebSocket-Protocol: {value:?}: {r:?}");
    }
    // As any other malformed list.
    let r = protocols("/echo", &["chat, super chat"]).response(server);
    assert_eq!(r.status, 400, "{r:?}");
}

fn repeated_lines(server: &RunningServer) {
    // Several lines are one list; repeats are offered once.
    let mut c = protocols("/c", &["chat", "chat.v2, chat", "chat.v2"]).open(server);
    c.response
        .assert_header("Sec-WebSocket-Protocol", Some("chat.v2"), "three lines");
    assert_eq!(c.ask("protocols"), "chat,chat.v2");
    c.close_normally();
    let mut c = protocols("/c", &["a, b, a"]).open(server);
    assert_eq!(c.ask("protocols"), "a,b");
    c.close_normally();
    // An empty line beside a real one is an empty list element, skipped.
    let mut c = protocols("/c", &["chat", ""]).open(server);
    assert_eq!(c.ask("protocols"), "chat");
    c.close_normally();
    // The same extension offer on two lines: accepted once.
    let c = Handshake::new("/echo")
        .also("Sec-WebSocket-Extensions", "permessage-deflate")
        .also("Sec-WebSocket-Extensions", "permessage-deflate")
        .open(server);
    let accepted = c.response.header("Sec-WebSocket-Extensions").unwrap_or("");
    assert!(accepted.starts_with("permessage-deflate"), "{:?}", c.response);
    assert!(
        !accepted.contains(','),
        "one extension answered: {:?}",
        c.response
    );
    c.close_normally();
}

fn reserved_close_codes(server: &RunningServer) {
    let close_with = |path: &str, code: u16| {
        let mut c = RawClient::open(server, path);
        c.send_close(code, "");
        let reply = c.expect_close();
        c.expect_eof(Duration::from_secs(5));
        reply
    };
    // 1004 is "Reserved" like 1016-2999: accepted (and echoed) with the option.
    for code in [1004, 1016, 2999] {
        assert_eq!(close_with("/reserved", code), Some(code), "{code} allowed");
        assert_eq!(close_with("/echo", code), Some(1002), "{code} by default");
    }
    // Never on the wire, option or not.
    for code in [999, 1005, 1006, 1015, 5000] {
        assert_eq!(close_with("/reserved", code), Some(1002), "{code} allowed");
        assert_eq!(close_with("/echo", code), Some(1002), "{code} by default");
    }
    // The IANA-registered 1012-1014 need no option.
    for code in [1012, 1013, 1014] {
        assert_eq!(close_with("/echo", code), Some(code), "{code}");
    }
}

fn plugin_closes(server: &RunningServer) {
    // The ABI's close(): a Close frame without a status code, new header or old.
    for path in ["/c", "/c-old"] {
        let mut c = RawClient::open(server, path);
        c.send_text("close");
        let f = close_frame(&mut c, path);
        assert!(f.payload.is_empty(), "{path}: {f:?}");
        c.send_frame(Opcode::Close, true, b"");
        c.expect_eof(Duration::from_secs(5));
    }
    // Only a plugin built against the new header sees close_with.
    let mut c = RawClient::open(server, "/c");
    assert_eq!(c.ask("has-close-with"), "yes");
    // Codes and reasons that cannot go on the wire are refused, and nothing is sent.
    assert_eq!(c.ask("close-with:1005:"), "close_with refused");
    assert_eq!(c.ask("close-with:2000:"), "close_with refused");
    let long = format!("close-with:4000:{}", "r".repeat(124));
    assert_eq!(c.ask(&long), "close_with refused");
    assert_eq!(c.ask("protocols"), "", "the connection still works");
    c.send_text("close-with:4001:room closed ✓");
    let f = close_frame(&mut c, "close_with");
    assert_eq!(f.close_code(), Some(4001), "{f:?}");
    assert_eq!(&f.payload[2..], "room closed ✓".as_bytes());
    end_after_server_close(c);
    let mut c = RawClient::open(server, "/c-old");
    assert_eq!(c.ask("has-close-with"), "no");
    assert_eq!(c.ask("close-with:4001:x"), "no close_with");
    c.close_normally();
    // A Rust plugin through Sender::close_with.
    let mut c = protocols("/inc", &["dumb-increment-protocol"]).open(server);
    c.send_text("closeme\n");
    let f = close_frame(&mut c, "closeme");
    assert_eq!(f.close_code(), Some(1001), "{f:?}");
    assert_eq!(&f.payload[2..], b"seeya");
    end_after_server_close(c);
}

/// The server sent its close: answer it and wait for the end.
fn end_after_server_close(mut c: RawClient) {
    c.send_close(1000, "");
    c.expect_eof(Duration::from_secs(5));
}

fn client_deflate() -> Negotiated {
    let offers = parse_extensions(DEFLATE_OFFER).unwrap();
    negotiate(&offers, &DeflateConfig::default())
        .unwrap()
        .expect("our own offer negotiates")
}

fn compressed_message(text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    Deflater::new(&client_deflate(), 6).compress(text.as_bytes(), &mut body);
    client_frame(Opcode::Text as u8, true, 0x40, &body)
}

/// Reads a text message, inflating it if the server compressed it.
fn read_maybe_compressed(c: &mut RawClient) -> String {
    let f = c.frame();
    assert_eq!(f.opcode, Opcode::Text as u8, "{f:?}");
    if f.rsv & 0x40 == 0 {
        return f.text();
    }
    let mut out = Vec::new();
    Inflater::new(&client_deflate())
        .inflate(&f.payload, 1 << 20, &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn limit_on_the_inflated_message(server: &RunningServer) {
    let open = || {
        let c = Handshake::new("/tiny")
            .header("Sec-WebSocket-Extensions", DEFLATE_OFFER)
            .open(server);
        assert!(
            c.response
                .header("Sec-WebSocket-Extensions")
                .is_some_and(|e| e.starts_with("permessage-deflate")),
            "{:?}",
            c.response
        );
        c
    };
    // "1234" grows under deflate, but the plugin sees 4 bytes: within MaxMessageSize 4.
    let frame = compressed_message("1234");
    assert!(
        frame.len() - 6 > 4,
        "the compressed form must be larger than the limit"
    );
    let mut c = open();
    c.send_raw(&frame);
    assert_eq!(read_maybe_compressed(&mut c), "1234");
    c.close_normally();
    // Five bytes inflated are too many, compressed or not.
    let mut c = open();
    c.send_raw(&compressed_message("12345"));
    expect_failure(c, 1009, "compressed 12345");
    let mut c = open();
    c.send_text("12345");
    expect_failure(c, 1009, "plain 12345");
}

fn limit_on_control_frames(server: &RunningServer) {
    for opcode in [Opcode::Ping, Opcode::Pong] {
        let mut c = RawClient::open(server, "/tiny");
        c.send_frame(opcode, true, b"five!");
        expect_failure(c, 1009, &format!("{opcode:?} of 5 bytes, MaxMessageSize 4"));
    }
    let mut c = RawClient::open(server, "/tiny");
    c.send_frame(Opcode::Ping, true, b"four");
    let pong = c.frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (0xA, &b"four"[..]),
        "{pong:?}"
    );
    c.close_normally();
    // A close whose reason takes it past the limit.
    let mut c = RawClient::open(server, "/small");
    c.send_close(1000, &"r".repeat(99));
    expect_failure(c, 1009, "close of 101 bytes, MaxMessageSize 100");
    // Within the limit, the closing handshake is the normal one.
    let mut c = RawClient::open(server, "/small");
    c.send_close(1000, &"r".repeat(98));
    assert_eq!(c.expect_close(), Some(1000));
    c.expect_eof(Duration::from_secs(5));
}

fn early_length_check(server: &RunningServer) {
    // A 64-bit length of 2^63-1, and no masking key: refused at once.
    let header = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    for (version, code) in [("13", 1009), ("8", 1004), ("7", 1004)] {
        let mut c = Handshake::new("/echo")
            .header("Sec-WebSocket-Version", version)
            .open(server);
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_raw(&header);
        expect_failure(c, code, &format!("2^63-1 bytes announced, version {version}"));
    }
    // A 16-bit length over a small limit, the key still missing.
    let mut c = RawClient::open(server, "/small");
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_raw(&[0x81, 0xFE, 0x00, 101]);
    expect_failure(c, 1009, "101 bytes announced, MaxMessageSize 100");
}

fn parity(mpm: Mpm) {
    let server = server("parity", mpm);
    subprotocols(&server);
    empty_lists(&server);
    repeated_lines(&server);
    reserved_close_codes(&server);
    plugin_closes(&server);
    limit_on_the_inflated_message(&server);
    limit_on_control_frames(&server);
    early_length_check(&server);
    finish(server);
}

#[test]
fn parity_event() {
    parity(Mpm::Event);
}

#[test]
fn parity_worker() {
    parity(Mpm::Worker);
}

#[test]
fn parity_prefork() {
    parity(Mpm::Prefork);
}
