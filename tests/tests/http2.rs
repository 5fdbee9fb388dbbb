//! WebSockets over HTTP/2 (RFC 8441): mod_http2 with `H2WebSockets on`
//! turns an extended CONNECT into a request that our handler serves on a
//! secondary connection. Cleartext HTTP/2 with prior knowledge (h2c).

use integration_tests::rfc8441::{h2_websocket, H2Client, H2Connection};
use integration_tests::tungstenite::Message;
use integration_tests::*;

fn h2_server(name: &str, mpm: Mpm, locations: &str) -> RunningServer {
    let config = format!("Protocols h2c http/1.1\nH2WebSockets on\n{locations}");
    start(with_system_modules(server_config(name, mpm, &config), &["http2"]))
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

fn echo(mpm: Mpm) {
    let server = h2_server(&format!("h2-echo-{mpm}"), mpm, &echo_location("/echo", ""));
    let mut conn = H2Connection::open(server.addr()).unwrap();
    assert!(conn.offers_websockets(), "no SETTINGS_ENABLE_CONNECT_PROTOCOL");
    let mut ws = h2_websocket(&mut conn, "/echo", &[]);
    for m in [
        Message::text("hello over HTTP/2"),
        Message::binary(vec![7u8; 100_000]),
    ] {
        ws.send(m.clone()).unwrap();
        assert_eq!(next(&mut ws), m);
    }
    ws.close(None).unwrap();
    assert!(matches!(next(&mut ws), Message::Close(_)));
    finish(server);
}

#[test]
fn echo_under_event() {
    echo(Mpm::Event);
}
