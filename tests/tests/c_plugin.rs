//! A plugin written in C against the shipped websocket_plugin.h
//! (tests/c-plugin/test_plugin.c), compiled with `cc` and loaded by the
//! module: the C ABI end to end.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::tungstenite::Message;
use integration_tests::*;

fn server(name: &str, mpm: Mpm) -> RunningServer {
    let plugin = c_plugin();
    let config = [
        plugin_location("/c", plugin, "test_plugin_init", ""),
        // The 32-bit Windows __stdcall spelling of the same function.
        plugin_location("/stdcall", plugin, "_test_plugin_init@0", ""),
    ]
    .concat();
    start_server(name, mpm, &config)
}

fn with_protocols(server: &RunningServer, path: &str, offered: &str) -> (Client, Option<String>) {
    let request = with_header(client_request(server, path), "Sec-WebSocket-Protocol", offered);
    let (client, response) = ws_connect_request(server, request);
    (client, chosen_protocol(&response))
}

fn ask(client: &mut Client, command: &str) -> String {
    client.send(Message::text(command)).unwrap();
    next_text(client)
}

#[test]
fn connect_callbacks() {
    let server = server("c-connect", Mpm::Event);

    // on_connect copies a request header into the 101 response.
    let client = Handshake::new("/c")
        .header("X-Echo-Header", "hello from the client")
        .open(&server);
    client
        .response
        .assert_header("X-Echo-Header-Reply", Some("hello from the client"), "on_connect");
    client
        .response
        .assert_header("Sec-WebSocket-Accept", Some(RFC_ACCEPT), "on_connect");
    let mut client = client;
    client.send_close(1000, "");
    assert_eq!(client.expect_close(), Some(1000));

    // on_connect returning NULL refuses with 403.
    let refused = Handshake::new("/c").header("X-Refuse", "1").response(&server);
    assert_eq!(refused.status, 403, "{refused:?}");
    refused.assert_header("Sec-WebSocket-Accept", None, "refused");
    refused.assert_header("Sec-WebSocket-Protocol", None, "refused");

    // The plugin picks chat.v2 wherever it is in the list.
    let (mut c, chosen) = with_protocols(&server, "/c", "chat.v1, chat.v2, chat.v3");
    assert_eq!(chosen.as_deref(), Some("chat.v2"));
    assert_eq!(ask(&mut c, "protocols"), "chat.v1,chat.v2,chat.v3");
    close_client(c);
    // Otherwise none: the server does not choose on the plugin's behalf.
    // (Raw: tungstenite refuses a 101 without one of the subprotocols it offered.)
    let mut c = Handshake::new("/c")
        .header("Sec-WebSocket-Protocol", "superchat,chat")
        .open(&server);
    c.response
        .assert_header("Sec-WebSocket-Protocol", None, "chat.v2 not offered");
    c.send_text("protocols");
    assert_eq!(c.read_text(), "superchat,chat");
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
    // None offered: none chosen, an empty list.
    let mut c = ws_connect(&server, "/c");
    assert_eq!(ask(&mut c, "protocols"), "");
    close_client(c);
    finish(server);
}

#[test]
fn message_callbacks() {
    let server = server("c-message", Mpm::Event);
    let request = with_header(
        with_header(client_request(&server, "/c"), "User-Agent", "c-plugin-test/1.0"),
        "X-Custom",
        "custom value",
    );
    let (mut c, _) = ws_connect_request(&server, request);
    assert_eq!(ask(&mut c, "request"), "yes");
    assert_eq!(ask(&mut c, "header:User-Agent"), "c-plugin-test/1.0");
    assert_eq!(ask(&mut c, "header:x-custom"), "custom value");
    assert_eq!(ask(&mut c, "header:X-Not-Sent"), "(null)");
    // Anything else is echoed with its type.
    assert_echo(&mut c, Message::text("plain text ✓"));
    assert_echo(&mut c, Message::binary(vec![0u8, 255, 1, 254]));
    assert_echo(&mut c, Message::binary(vec![0x5a; 200_000]));
    close_client(c);
    finish(server);
}

#[test]
fn plugin_close() {
    let server = server("c-close", Mpm::Event);
    let mut c = RawClient::open(&server, "/c");
    c.send_text("before");
    assert_eq!(c.read_text(), "before");
    c.send_text("close");
    let f = c.frame();
    assert_eq!(f.opcode, 0x8, "expected a close frame, got {f:?}");
    // As the original module: no status code (the client reports 1005).
    assert!(f.payload.is_empty(), "{f:?}");
    // Answer it; the server then ends the connection.
    c.send_close(1000, "");
    c.expect_eof(Duration::from_secs(5));

    // The same through tungstenite, which answers the close itself.
    let mut c = ws_connect(&server, "/c");
    c.send(Message::text("close")).unwrap();
    match c.read() {
        Ok(Message::Close(None)) => {}
        other => panic!("expected a close frame without a code, got {other:?}"),
    }
    match c.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the end of the connection, got {other:?}"),
    }
    finish(server);
}

/// `threads:<n>:<m>`: n plugin threads send m messages each at once; every
/// message arrives whole, each thread's in order, then `threads-done`.
fn threads(mpm: Mpm) {
    let server = server("c-threads", mpm);
    let mut c = ws_connect(&server, "/c");
    for round in 0..2 {
        c.send(Message::text("threads:4:200")).unwrap();
        let mut next: HashMap<u64, u64> = HashMap::new();
        let mut total = 0;
        loop {
            let text = next_text(&mut c);
            if text == "threads-done" {
                break;
            }
            let (thread, k) = text
                .strip_prefix('t')
                .and_then(|t| t.split_once(':'))
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                .unwrap_or_else(|| panic!("round {round}: mangled message {text:?}"));
            assert!(thread < 4, "round {round}: no such thread: {text:?}");
            let expected = next.entry(thread).or_insert(0);
            assert_eq!(k, *expected, "round {round}: thread {thread} out of order");
            *expected += 1;
            total += 1;
        }
        assert_eq!(total, 800, "round {round}: messages before threads-done");
        assert!(next.values().all(|&n| n == 200), "{next:?}");
    }
    // The connection still echoes.
    assert_echo(&mut c, Message::text("after the threads"));
    close_client(c);

    // Closing while the threads are still sending: on_disconnect joins them.
    let mut c = RawClient::open(&server, "/c");
    c.send_text("threads:4:5000");
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
    c.expect_eof(Duration::from_secs(10));
    let mut c = ws_connect(&server, "/c");
    assert_echo(&mut c, Message::text("still alive"));
    close_client(c);
    finish(server);
}

#[test]
fn threads_event() {
    threads(Mpm::Event);
}

#[test]
fn threads_prefork() {
    threads(Mpm::Prefork);
}

#[test]
fn stdcall_init_name_loads() {
    let server = server("c-stdcall", Mpm::Event);
    let mut c = ws_connect(&server, "/stdcall");
    assert_eq!(ask(&mut c, "request"), "yes");
    assert_echo(&mut c, Message::text("via _test_plugin_init@0"));
    close_client(c);
    finish(server);
}
