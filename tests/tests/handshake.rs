//! The opening handshake, request by request over raw sockets (event MPM).

use std::time::Duration;

use integration_tests::*;

fn server(name: &str) -> RunningServer {
    let config = [
        echo_location("/echo", ""),
        echo_location(
            "/trusted",
            "    WebSocketOriginCheck Trusted\n    \
             WebSocketTrustedOrigin http://good.example https://other.example:8443",
        ),
        echo_location("/off", "    WebSocketOriginCheck Off"),
        "<Location /nohandler>\n    SetHandler websocket-handler\n</Location>\n".to_string(),
    ]
    .concat();
    start_server(name, Mpm::Event, &config)
}

/// Sends `h` and checks the status; returns the response.
fn expect_status(server: &RunningServer, h: Handshake, status: u16, what: &str) -> RawResponse {
    let response = h.response(server);
    assert_eq!(
        response.status, status,
        "{what}: expected {status}, got {response:?}"
    );
    response
}

/// After a 101 the connection must speak WebSocket.
fn assert_echoes(mut client: RawClient) {
    client.send_text("still there?");
    assert_eq!(client.read_text(), "still there?");
    client.send_close(1000, "");
    assert_eq!(client.expect_close(), Some(1000));
}

#[test]
fn accept_key_and_response_headers() {
    let server = server("hs-accept");
    let client = Handshake::new("/echo").open(&server);
    let r = &client.response;
    assert!(r.status_line.starts_with("HTTP/1.1 101"), "{r:?}");
    r.assert_header("Sec-WebSocket-Accept", Some(RFC_ACCEPT), "the RFC's sample key");
    r.assert_upgrade_headers();
    r.assert_header("Sec-WebSocket-Protocol", None, "no subprotocol was offered");
    assert_echoes(client);

    // Another key gets its own answer (base64(SHA-1(key + GUID))).
    let client = Handshake::new("/echo")
        .header("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA==")
        .open(&server);
    client.response.assert_header(
        "Sec-WebSocket-Accept",
        Some("C/0nmHhBztSRGR1CwL6Tf4ZjwpY="),
        "another key",
    );
    assert_echoes(client);
    finish(server);
}

#[test]
fn accepted_variants() {
    let server = server("hs-variants");
    // Firefox sends `Connection: keep-alive, Upgrade`.
    assert_echoes(
        Handshake::new("/echo")
            .header("Connection", "keep-alive, Upgrade")
            .open(&server),
    );
    // Header names and the Upgrade token are case-insensitive.
    assert_echoes(
        Handshake::new("/echo")
            .without("Upgrade")
            .header("upgrade", "WebSocket")
            .open(&server),
    );
    // The hybi drafts 7 and 8.
    for version in ["7", "8"] {
        let client = Handshake::new("/echo")
            .header("Sec-WebSocket-Version", version)
            .open(&server);
        assert_eq!(client.response.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
        assert_echoes(client);
    }
    // No Origin at all (a non-browser client) is allowed under Same.
    assert_echoes(Handshake::new("/echo").without("Origin").open(&server));
    finish(server);
}

#[test]
fn malformed_requests_are_refused() {
    let server = server("hs-refusals");
    expect_status(&server, Handshake::new("/echo").method("POST"), 405, "POST");
    expect_status(&server, Handshake::new("/echo").method("PUT"), 405, "PUT");
    expect_status(
        &server,
        Handshake::new("/echo").http_version("HTTP/1.0"),
        400,
        "HTTP/1.0",
    );
    expect_status(
        &server,
        Handshake::new("/echo").without("Sec-WebSocket-Key"),
        400,
        "missing key",
    );
    expect_status(
        &server,
        Handshake::new("/echo").header("Sec-WebSocket-Key", "not base64 at all!"),
        400,
        "key not base64",
    );
    // 20 base64 characters decode to 15 bytes, not 16.
    expect_status(
        &server,
        Handshake::new("/echo").header("Sec-WebSocket-Key", "AAECAwQFBgcICQoLDA0O"),
        400,
        "15-byte key",
    );
    expect_status(
        &server,
        Handshake::new("/echo").without("Sec-WebSocket-Version"),
        400,
        "missing version",
    );
    expect_status(
        &server,
        Handshake::new("/echo").header("Sec-WebSocket-Version", "abc"),
        400,
        "version abc",
    );
    let v9 = expect_status(
        &server,
        Handshake::new("/echo").header("Sec-WebSocket-Version", "9"),
        400,
        "version 9",
    );
    assert_eq!(v9.header("Sec-WebSocket-Version"), Some("13, 8, 7"), "{v9:?}");
    expect_status(
        &server,
        Handshake::new("/echo").header("Sec-WebSocket-Protocol", "a b"),
        400,
        "space inside a subprotocol token",
    );
    expect_status(
        &server,
        Handshake::new("/echo").header("Sec-WebSocket-Protocol", "chat, ch@t"),
        400,
        "separator inside a subprotocol token",
    );
    // A refused request gets no 101 headers.
    let bad = Handshake::new("/echo")
        .header("Sec-WebSocket-Version", "abc")
        .response(&server);
    assert_eq!(bad.header("Sec-WebSocket-Accept"), None, "{bad:?}");

    // Still serving afterwards.
    assert_echoes(Handshake::new("/echo").open(&server));
    finish(server);
}

/// RFC 9110 §15.5.6: a 405 lists the allowed methods in `Allow`; only a
/// GET can open a WebSocket.
#[test]
fn method_not_allowed_lists_get() {
    let server = server("hs-allow");
    let post = expect_status(&server, Handshake::new("/echo").method("POST"), 405, "POST");
    assert_eq!(post.header("Allow"), Some("GET"), "{post:?}");
}

#[test]
fn non_websocket_requests_are_declined() {
    let server = server("hs-declined");
    // A plain GET where no file answers: 426 says what the endpoint wants.
    let plain = Handshake::new("/echo")
        .without("Upgrade")
        .without("Connection")
        .without("Sec-WebSocket-Key")
        .without("Sec-WebSocket-Version")
        .response(&server);
    assert_eq!(plain.status, 426, "{plain:?}");
    assert_eq!(plain.header("Upgrade"), Some("websocket"), "{plain:?}");
    // Upgrade to something else.
    let other = Handshake::new("/echo").header("Upgrade", "h2c").response(&server);
    assert_ne!(other.status, 101, "{other:?}");
    assert_eq!(other.header("Sec-WebSocket-Accept"), None, "{other:?}");
    // A draft-76 handshake belongs to the legacy module, which is not loaded.
    let draft76 = Handshake::new("/echo")
        .without("Sec-WebSocket-Key")
        .without("Sec-WebSocket-Version")
        .header("Sec-WebSocket-Key1", "4 @1  46546xW%0l 1 5")
        .header("Sec-WebSocket-Key2", "12998 5 Y3 1  .P00")
        .header("Origin", &format!("http://127.0.0.1:{}", server.port()))
        .response(&server);
    assert_ne!(draft76.status, 101, "{draft76:?}");
    assert_eq!(draft76.status, 404, "{draft76:?}");
    finish(server);
}

#[test]
fn origin_policies() {
    let server = server("hs-origin");
    let same = format!("http://127.0.0.1:{}", server.port());
    let evil = "http://evil.example";

    // Same (the default).
    expect_status(
        &server,
        Handshake::new("/echo").header("Origin", evil),
        403,
        "cross-origin under Same",
    );
    assert_echoes(Handshake::new("/echo").header("Origin", &same).open(&server));
    // Same host, another port is another origin.
    expect_status(
        &server,
        Handshake::new("/echo").header("Origin", "http://127.0.0.1:1"),
        403,
        "other port under Same",
    );
    // Versions 7 and 8 send the origin as Sec-WebSocket-Origin.
    expect_status(
        &server,
        Handshake::new("/echo")
            .header("Sec-WebSocket-Version", "8")
            .header("Sec-WebSocket-Origin", evil),
        403,
        "cross-origin Sec-WebSocket-Origin, version 8",
    );
    assert_echoes(
        Handshake::new("/echo")
            .header("Sec-WebSocket-Version", "8")
            .header("Sec-WebSocket-Origin", &same)
            .open(&server),
    );

    // Trusted: only the listed origins.
    assert_echoes(
        Handshake::new("/trusted")
            .header("Origin", "http://good.example")
            .open(&server),
    );
    assert_echoes(
        Handshake::new("/trusted")
            .header("Origin", "https://other.example:8443")
            .open(&server),
    );
    expect_status(
        &server,
        Handshake::new("/trusted").header("Origin", evil),
        403,
        "untrusted origin under Trusted",
    );
    expect_status(
        &server,
        Handshake::new("/trusted").header("Origin", "https://good.example"),
        403,
        "trusted host with another scheme",
    );

    // Off: anything goes.
    assert_echoes(Handshake::new("/off").header("Origin", evil).open(&server));
    assert_echoes(Handshake::new("/off").header("Origin", "null").open(&server));
    finish(server);
}

#[test]
fn handler_without_plugin_is_a_500() {
    let server = server("hs-nohandler");
    expect_status(
        &server,
        Handshake::new("/nohandler"),
        500,
        "SetHandler without WebSocketHandler",
    );
    // The request's own line (startup also warned about the location).
    let log = wait_for_log(
        &server,
        "no WebSocketHandler is configured there",
        Duration::from_secs(5),
    );
    assert!(
        log.lines()
            .any(|l| l.contains("no WebSocketHandler is configured there") && l.contains("/nohandler")),
        "the reason names the location:\n{log}"
    );
    finish(server);
}
