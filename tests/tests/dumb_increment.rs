//! The dumb-increment example plugin: its subprotocol, its counter, reset.

use integration_tests::tungstenite::Message;
use integration_tests::*;

const PROTOCOL: &str = "dumb-increment-protocol";

fn next_number(client: &mut Client) -> u64 {
    let text = next_text(client);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

#[test]
fn subprotocol_is_required() {
    let server = start_server("dumb-required", Mpm::Event, &dumb_increment_location("/inc"));
    let none = Handshake::new("/inc").response(&server);
    assert_eq!(none.status, 403, "{none:?}");
    let other = Handshake::new("/inc")
        .header("Sec-WebSocket-Protocol", "chat, superchat")
        .response(&server);
    assert_eq!(other.status, 403, "{other:?}");

    // Offered among others: chosen.
    let mut c = Handshake::new("/inc")
        .header("Sec-WebSocket-Protocol", &format!("chat, {PROTOCOL}"))
        .open(&server);
    c.response
        .assert_header("Sec-WebSocket-Protocol", Some(PROTOCOL), "offered among others");
    let first = c.read_text();
    assert!(first.parse::<u64>().is_ok(), "{first:?}");
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
    finish(server);
}

#[test]
fn counts_and_resets() {
    let server = start_server("dumb-count", Mpm::Event, &dumb_increment_location("/inc"));
    let request = with_header(
        client_request(&server, "/inc"),
        "Sec-WebSocket-Protocol",
        PROTOCOL,
    );
    let (mut c, response) = ws_connect_request(&server, request);
    assert_eq!(chosen_protocol(&response).as_deref(), Some(PROTOCOL));

    let mut previous = next_number(&mut c);
    assert!(previous < 5, "a new connection starts near 0, got {previous}");
    for _ in 0..10 {
        let n = next_number(&mut c);
        assert_eq!(n, previous + 1, "the counter goes up by one");
        previous = n;
    }

    c.send(Message::text("reset\n")).unwrap();
    // Numbers already on their way may still arrive; then it starts over.
    let mut after = None;
    for _ in 0..20 {
        let n = next_number(&mut c);
        if n < previous {
            after = Some(n);
            break;
        }
        assert_eq!(n, previous + 1, "the counter goes up by one before the reset");
        previous = n;
    }
    let after = after.unwrap_or_else(|| panic!("no reset after 20 messages (last {previous})"));
    assert!(after <= 2, "after reset the counter is back near 0, got {after}");
    let mut previous = after;
    for _ in 0..3 {
        let n = next_number(&mut c);
        assert_eq!(n, previous + 1);
        previous = n;
    }
    close_client(c);
    finish(server);
}
