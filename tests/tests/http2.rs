//! WebSockets over HTTP/2 (RFC 8441): mod_http2 with `H2WebSockets on`
//! turns an extended CONNECT into a request that our handler serves on a
//! secondary connection, whose input comes through mod_http2's filters and
//! whose poll descriptor is a pipe. Cleartext HTTP/2 with prior knowledge
//! (h2c), under the event and worker MPMs: echo, sends from plugin threads,
//! the handshake's refusals, limits, the closing handshake, and streams
//! that end without one (reset, or the whole TCP connection dropped).

use std::io::Write;
use std::time::{Duration, Instant};

use integration_tests::rfc8441::{h2_websocket, H2Client, H2Connection};
use integration_tests::tungstenite::protocol::frame::coding::CloseCode;
use integration_tests::tungstenite::Message;
use integration_tests::*;
use websocket_proto::deflate::{negotiate, DeflateConfig, Deflater, Inflater, Negotiated};
use websocket_proto::handshake::parse_extensions;
use websocket_proto::Opcode;

/// One child, so that the test plugin's count of live connections covers
/// every stream.
const ONE_CHILD: &str =
    "StartServers 1\nServerLimit 2\nThreadsPerChild 25\nMaxRequestWorkers 25\nMinSpareThreads 1\nMaxSpareThreads 25\n";

/// How the tests reach mod_http2.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    /// Cleartext with prior knowledge.
    H2c,
    /// TLS, "h2" by ALPN.
    H2,
}

/// A server with mod_http2 and `H2WebSockets on`, over `wire`.
struct H2Server {
    server: RunningServer,
    wire: Wire,
}

fn h2_server(name: &str, mpm: Mpm, wire: Wire, locations: &str) -> H2Server {
    let (protocols, modules, tls) = match wire {
        Wire::H2c => ("h2c", &["http2"][..], String::new()),
        Wire::H2 => {
            let certs = test_certs();
            let root = httpd_runner::scratch_dir(&format!("it-{name}-{mpm}"));
            (
                "h2",
                &["http2", "ssl", "socache_shmcb"][..],
                format!(
                    "SSLEngine on\nSSLCertificateFile \"{}\"\nSSLCertificateKeyFile \"{}\"\n\
                     SSLSessionCache \"shmcb:{}(512000)\"\n",
                    certs.cert.display(),
                    certs.key.display(),
                    root.join("run/ssl_scache").display()
                ),
            )
        }
    };
    let config = format!("Protocols {protocols} http/1.1\nH2WebSockets on\n{tls}{ONE_CHILD}{locations}");
    let server = start(with_system_modules(server_config(name, mpm, &config), modules));
    H2Server { server, wire }
}

impl H2Server {
    fn origin(&self) -> String {
        let scheme = if self.wire == Wire::H2 { "https" } else { "http" };
        format!("{scheme}://{}", self.server.addr())
    }

    fn finish(self) {
        finish(self.server);
    }
}

fn next(client: &mut H2Client) -> Message {
    loop {
        match client.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(m) => return m,
            Err(e) => panic!("reading a message failed: {e}"),
        }
    }
}

fn next_text(client: &mut H2Client) -> String {
    match next(client) {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

fn ask(client: &mut H2Client, command: &str) -> String {
    client.send(Message::text(command)).unwrap();
    next_text(client)
}

/// The close code of the server's close frame.
fn close_code(client: &mut H2Client) -> Option<CloseCode> {
    match next(client) {
        Message::Close(frame) => frame.map(|f| f.code),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

fn open(server: &H2Server) -> H2Connection {
    let addr = server.server.addr();
    let conn = match server.wire {
        Wire::H2c => H2Connection::open(addr),
        Wire::H2 => H2Connection::open_tls(addr, &test_certs().ca),
    }
    .unwrap();
    assert!(
        conn.offers_websockets(),
        "the server's SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL"
    );
    conn
}

fn echo_and_more(mpm: Mpm, wire: Wire) {
    let locations = format!(
        "{}{}{}",
        echo_location("/echo", ""),
        echo_location("/small", "    MaxMessageSize 1K"),
        dumb_increment_location("/inc"),
    );
    let server = h2_server(&format!("h2-{wire:?}-{mpm}"), mpm, wire, &locations);
    let mut conn = open(&server);

    // Echo, small and large, on two streams of one connection at once.
    let mut a = h2_websocket(&mut conn, "/echo", &[]);
    let mut b = h2_websocket(&mut conn, "/echo", &[]);
    for m in [
        Message::text("hello over HTTP/2"),
        Message::binary(vec![7u8; 300_000]),
        Message::text("é".repeat(50_000)),
    ] {
        a.send(m.clone()).unwrap();
        b.send(m.clone()).unwrap();
        assert_eq!(next(&mut a), m);
        assert_eq!(next(&mut b), m);
    }

    // A plugin thread's sends reach an h2 stream (dumb-increment ticks
    // every 50 ms), and the subprotocol is negotiated.
    let answer = conn
        .websocket("/inc", &[("sec-websocket-protocol", "dumb-increment-protocol")])
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer
            .headers
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("dumb-increment-protocol")
    );
    let mut inc = integration_tests::tungstenite::WebSocket::from_raw_socket(
        answer.stream.unwrap(),
        integration_tests::tungstenite::protocol::Role::Client,
        None,
    );
    let mut previous: u64 = next_text(&mut inc).trim().parse().unwrap();
    for _ in 0..5 {
        let n: u64 = next_text(&mut inc).trim().parse().unwrap();
        assert_eq!(n, previous + 1);
        previous = n;
    }

    // MaxMessageSize: 1009.
    let mut small = h2_websocket(&mut conn, "/small", &[]);
    small.send(Message::binary(vec![1u8; 2048])).unwrap();
    assert_eq!(close_code(&mut small), Some(CloseCode::Size));

    // Refusals: a foreign Origin (403), an unknown version (400 naming 13),
    // and the subprotocol dumb-increment requires (403).
    let foreign = conn
        .websocket("/echo", &[("origin", "http://evil.example")])
        .unwrap();
    assert_eq!(foreign.status, 403, "{:?}", foreign.headers);
    let same = conn.websocket("/echo", &[("origin", &server.origin())]).unwrap();
    assert_eq!(same.status, 200, "{:?}", same.headers);
    same.stream.unwrap().reset();
    let version = conn
        .websocket("/echo", &[("sec-websocket-version", "12")])
        .unwrap();
    assert!(
        version.status == 400 || version.status == 426,
        "version 12: {}",
        version.status
    );
    let no_protocol = conn.websocket("/inc", &[]).unwrap();
    assert_eq!(no_protocol.status, 403);

    // The closing handshake, both ways.
    a.close(None).unwrap();
    assert!(matches!(next(&mut a), Message::Close(_)));
    inc.close(None).unwrap();
    // Ticks the server sent before it read our close may come first.
    loop {
        match next(&mut inc) {
            Message::Text(_) => {}
            m => {
                assert!(matches!(m, Message::Close(_)), "{m:?}");
                break;
            }
        }
    }
    b.send(Message::text("still here")).unwrap();
    assert_eq!(next_text(&mut b), "still here");
    b.close(None).unwrap();
    assert!(matches!(next(&mut b), Message::Close(_)));
    drop(conn);
    server.finish();
}

/// Waits until the child has `expected` live connections (the one asking
/// included): each ended stream ran its on_disconnect, and none twice.
fn wait_for_live(client: &mut H2Client, expected: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live: u64 = ask(client, "live").parse().unwrap();
        if live == expected {
            return;
        }
        assert!(
            live > expected,
            "{what}: {live} live, fewer than {expected}: an on_disconnect ran twice"
        );
        assert!(
            Instant::now() < deadline,
            "{what}: still {live} live connections, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn streams_that_end_without_a_close(mpm: Mpm, wire: Wire) {
    let locations = plugin_location("/ch", c_plugin(), "test_plugin_init", "");
    let server = h2_server(&format!("h2-ends-{wire:?}-{mpm}"), mpm, wire, &locations);
    let mut watcher_conn = open(&server);
    let mut watcher = h2_websocket(&mut watcher_conn, "/ch", &[]);
    wait_for_live(&mut watcher, 1, "at the start");

    // Streams reset by the client.
    let mut conn = open(&server);
    let mut streams: Vec<H2Client> = (0..3).map(|_| h2_websocket(&mut conn, "/ch", &[])).collect();
    for s in &mut streams {
        assert_eq!(ask(s, "hello"), "hello");
    }
    wait_for_live(&mut watcher, 4, "three more streams");
    for s in &mut streams {
        s.get_mut().reset();
    }
    wait_for_live(&mut watcher, 1, "after three stream resets");
    drop(streams);

    // A whole HTTP/2 connection dropped, with streams open.
    let mut conn2 = open(&server);
    let streams: Vec<H2Client> = (0..3)
        .map(|_| {
            let mut s = h2_websocket(&mut conn2, "/ch", &[]);
            assert_eq!(ask(&mut s, "hi"), "hi");
            s
        })
        .collect();
    wait_for_live(&mut watcher, 4, "three streams on another connection");
    drop(streams);
    drop(conn2);
    drop(conn);
    wait_for_live(&mut watcher, 1, "after their TCP connection was dropped");

    watcher.close(None).unwrap();
    assert!(matches!(next(&mut watcher), Message::Close(_)));
    server.finish();
}

const DEFLATE_OFFER: &str = "permessage-deflate; client_no_context_takeover; server_no_context_takeover";

fn client_deflate() -> Negotiated {
    let offers = parse_extensions(DEFLATE_OFFER).unwrap();
    negotiate(&offers, &DeflateConfig::default())
        .unwrap()
        .expect("our own offer negotiates")
}

/// permessage-deflate over an h2 stream: negotiated in the CONNECT's
/// headers, compressed messages both ways.
fn compression(mpm: Mpm, wire: Wire) {
    let server = h2_server(
        &format!("h2-deflate-{wire:?}-{mpm}"),
        mpm,
        wire,
        &echo_location("/echo", ""),
    );
    let mut conn = open(&server);
    let answer = conn
        .websocket("/echo", &[("sec-websocket-extensions", DEFLATE_OFFER)])
        .unwrap();
    assert_eq!(answer.status, 200);
    let accepted = answer
        .headers
        .get("sec-websocket-extensions")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(accepted.starts_with("permessage-deflate"), "{accepted:?}");
    let mut stream = answer.stream.unwrap();
    let mut buf = Vec::new();
    for round in 0..3 {
        let text = format!("round {round}: ").repeat(2000);
        let mut body = Vec::new();
        Deflater::new(&client_deflate(), 6).compress(text.as_bytes(), &mut body);
        std::io::Write::write_all(&mut stream, &client_frame(Opcode::Text as u8, true, 0x40, &body)).unwrap();
        let frame = read_server_frame(&mut stream, &mut buf).unwrap();
        assert_eq!(frame.opcode, Opcode::Text as u8, "{frame:?}");
        assert_eq!(frame.rsv, 0x40, "the echo of a 20 KB text is compressed");
        assert!(
            frame.payload.len() < text.len() / 10,
            "{} bytes",
            frame.payload.len()
        );
        let mut inflated = Vec::new();
        Inflater::new(&client_deflate())
            .inflate(&frame.payload, 1 << 20, &mut inflated)
            .unwrap();
        assert_eq!(String::from_utf8(inflated).unwrap(), text);
    }
    std::io::Write::write_all(
        &mut stream,
        &client_frame(Opcode::Close as u8, true, 0, &close_payload(1000, "")),
    )
    .unwrap();
    let frame = read_server_frame(&mut stream, &mut buf).unwrap();
    assert_eq!(frame.close_code(), Some(1000));
    server.finish();
}

/// Apache's `Timeout` does not cut an idle h2 WebSocket; the idle timeout
/// and server pings work; `WebSocketMaxConnections` counts h2 streams; a
/// graceful restart leaves the server serving h2 WebSockets, and a stop
/// closes an open one with 1001.
fn timers_limits_and_restarts(mpm: Mpm, wire: Wire) {
    let locations = format!(
        "Timeout 1\n{}{}{}{}",
        echo_location("/echo", ""),
        echo_location("/idle", "    WebSocketIdleTimeout 1"),
        echo_location("/ping", "    WebSocketPingInterval 1"),
        echo_location("/limited", "    WebSocketMaxConnections 2"),
    );
    let mut server = h2_server(&format!("h2-timers-{wire:?}-{mpm}"), mpm, wire, &locations);
    let mut conn = open(&server);

    let mut quiet = h2_websocket(&mut conn, "/echo", &[]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        ask(&mut quiet, "after 2.5 s of silence"),
        "after 2.5 s of silence"
    );

    let mut idle = h2_websocket(&mut conn, "/idle", &[]);
    let started = Instant::now();
    assert_eq!(close_code(&mut idle), Some(CloseCode::Away));
    // tungstenite answers the close with the next flush.
    idle.flush().ok();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let mut pinged = h2_websocket(&mut conn, "/ping", &[]);
    match pinged.read() {
        Ok(Message::Ping(_)) => {}
        Ok(other) => panic!("expected a ping, got {other:?}"),
        Err(e) => panic!("no ping: {e}"),
    }
    // tungstenite queued the pong: send it now, then stay quiet past
    // another interval, answering the next pings as they come.
    pinged.flush().unwrap();
    let quiet_until = Instant::now() + Duration::from_millis(2500);
    pinged.get_mut().timeout = Duration::from_millis(100);
    while Instant::now() < quiet_until {
        match pinged.read() {
            Ok(Message::Ping(_)) => pinged.flush().unwrap(),
            Ok(other) => panic!("expected only pings, got {other:?}"),
            Err(integration_tests::tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("while answering pings: {e}"),
        }
    }
    pinged.get_mut().timeout = IO_TIMEOUT;
    assert_eq!(ask(&mut pinged, "still here"), "still here");

    // Only `quiet` and `pinged` are open: the limit of 2 is reached.
    let refused = conn.websocket("/limited", &[]).unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.headers);
    pinged.close(None).unwrap();
    assert!(matches!(next(&mut pinged), Message::Close(_)));
    std::thread::sleep(Duration::from_millis(200));
    let mut limited = h2_websocket(&mut conn, "/limited", &[]);
    assert_eq!(ask(&mut limited, "one of two"), "one of two");
    limited.close(None).unwrap();
    assert!(matches!(next(&mut limited), Message::Close(_)));

    // Graceful restart with `quiet` open: the new generation serves h2
    // WebSockets; the old stream either goes on or is closed with 1001.
    server
        .server
        .graceful()
        .unwrap_or_else(|e| panic!("graceful restart failed: {e}"));
    let mut fresh_conn = open(&server);
    let mut fresh = h2_websocket(&mut fresh_conn, "/echo", &[]);
    assert_eq!(ask(&mut fresh, "after the restart"), "after the restart");
    quiet.send(Message::text("old stream")).ok();
    match quiet.read() {
        Ok(Message::Text(t)) => assert_eq!(t.as_str(), "old stream"),
        Ok(Message::Close(f)) => assert_eq!(f.map(|f| f.code), Some(CloseCode::Away)),
        other => panic!("old stream after a graceful restart: {other:?}"),
    }

    // A stop closes the open stream with 1001.
    let stopping = std::thread::spawn(move || server.finish());
    assert_eq!(close_code(&mut fresh), Some(CloseCode::Away));
    stopping.join().unwrap();
}

/// A child the MPM retires alone (here after `MaxConnectionsPerChild`)
/// keeps its HTTP/1.1 WebSockets, but mod_http2 winds its client
/// connections down: the h2 stream is closed with 1001 rather than dropped.
fn a_retired_child_closes_its_streams(mpm: Mpm, wire: Wire) {
    // Slack for the connections that saw the server up.
    let locations = format!("MaxConnectionsPerChild 8\n{}", echo_location("/echo", ""));
    let server = h2_server(&format!("h2-retired-{wire:?}-{mpm}"), mpm, wire, &locations);
    let mut conn = open(&server);
    let mut stream = h2_websocket(&mut conn, "/echo", &[]);
    assert_eq!(ask(&mut stream, "before"), "before");
    // More connections retire it: the worker MPM counts a connection
    // when it is done and looks at the count when it accepts the next.
    stream.get_mut().timeout = Duration::from_millis(100);
    let started = Instant::now();
    let mut connections = 0;
    let code = loop {
        match stream.read() {
            Ok(Message::Close(frame)) => break frame.map(|f| f.code),
            Ok(other) => panic!("expected a close frame, got {other:?}"),
            Err(integration_tests::tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("the stream ended without a close frame: {e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no close after {connections} more connections"
        );
        if connections < 20 {
            let mut other = connect(&server.server);
            other
                .write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let _ = read_response(&mut other);
            connections += 1;
        }
    };
    assert_eq!(code, Some(CloseCode::Away));
    server.finish();
}

/// mod_websocket_draft76 beside mod_websocket: an RFC 6455 stream still
/// goes to mod_websocket, and a draft-76 handshake (its two keys in the
/// CONNECT's headers) is refused with 400, since the drafts cannot work
/// over HTTP/2.
#[test]
fn draft76_refuses_h2_and_leaves_rfc6455_alone() {
    let legacy = stage().dir.join("modules/mod_websocket_draft76.so");
    assert!(
        legacy.is_file(),
        "{} is missing; run `cargo xtask build`",
        legacy.display()
    );
    let config = format!(
        "Protocols h2c http/1.1\nH2WebSockets on\n{ONE_CHILD}{}",
        echo_location("/echo", "")
    );
    let config = with_system_modules(server_config("h2-draft76", Mpm::Event, &config), &["http2"])
        .load_module("websocket_draft76_module", legacy)
        .log_level("warn websocket:debug websocket_draft76:debug");
    let server = H2Server {
        server: start(config),
        wire: Wire::H2c,
    };
    let mut conn = open(&server);
    let mut ws = h2_websocket(&mut conn, "/echo", &[]);
    assert_eq!(ask(&mut ws, "RFC 6455 over h2"), "RFC 6455 over h2");
    let draft = conn
        .websocket(
            "/echo",
            &[
                ("sec-websocket-key1", "4 @1  46546xW%0l 1 5"),
                ("sec-websocket-key2", "12998 5 Y3 1  .P00"),
                ("origin", &server.origin()),
            ],
        )
        .unwrap();
    assert_eq!(draft.status, 400, "{:?}", draft.headers);
    wait_for_log(&server.server, "not over HTTP/1.1", Duration::from_secs(5));
    ws.close(None).unwrap();
    assert!(matches!(next(&mut ws), Message::Close(_)));
    server.finish();
}

#[test]
fn echo_increment_and_refusals_h2c_event() {
    echo_and_more(Mpm::Event, Wire::H2c);
}

#[test]
fn echo_increment_and_refusals_h2_event() {
    echo_and_more(Mpm::Event, Wire::H2);
}

#[test]
fn echo_increment_and_refusals_h2c_worker() {
    echo_and_more(Mpm::Worker, Wire::H2c);
}

#[test]
fn echo_increment_and_refusals_h2_worker() {
    echo_and_more(Mpm::Worker, Wire::H2);
}

#[test]
fn resets_and_drops_h2c_event() {
    streams_that_end_without_a_close(Mpm::Event, Wire::H2c);
}

#[test]
fn resets_and_drops_h2_event() {
    streams_that_end_without_a_close(Mpm::Event, Wire::H2);
}

#[test]
fn resets_and_drops_h2c_worker() {
    streams_that_end_without_a_close(Mpm::Worker, Wire::H2c);
}

#[test]
fn resets_and_drops_h2_worker() {
    streams_that_end_without_a_close(Mpm::Worker, Wire::H2);
}

#[test]
fn compression_h2c_event() {
    compression(Mpm::Event, Wire::H2c);
}

#[test]
fn compression_h2_event() {
    compression(Mpm::Event, Wire::H2);
}

#[test]
fn compression_h2c_worker() {
    compression(Mpm::Worker, Wire::H2c);
}

#[test]
fn compression_h2_worker() {
    compression(Mpm::Worker, Wire::H2);
}

#[test]
fn timers_limits_and_restarts_h2c_event() {
    timers_limits_and_restarts(Mpm::Event, Wire::H2c);
}

#[test]
fn timers_limits_and_restarts_h2_event() {
    timers_limits_and_restarts(Mpm::Event, Wire::H2);
}

#[test]
fn timers_limits_and_restarts_h2c_worker() {
    timers_limits_and_restarts(Mpm::Worker, Wire::H2c);
}

#[test]
fn timers_limits_and_restarts_h2_worker() {
    timers_limits_and_restarts(Mpm::Worker, Wire::H2);
}

#[test]
fn a_retired_child_closes_its_streams_h2c_event() {
    a_retired_child_closes_its_streams(Mpm::Event, Wire::H2c);
}

#[test]
fn a_retired_child_closes_its_streams_h2_worker() {
    a_retired_child_closes_its_streams(Mpm::Worker, Wire::H2);
}
