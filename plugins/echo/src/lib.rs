//! The echo plugin: every text or binary message comes back unchanged, with its type.
//!
//! ```apache
//! <Location /echo>
//!     SetHandler websocket-handler
//!     WebSocketHandler modules/mod_websocket_echo.so echo_init
//! </Location>
//! ```
//!
//! It speaks no subprotocol of its own and chooses none, so its 101 names none
//! whatever the client offers (RFC 6455 lets the server choose none).
//!
//! With `SetEnv ECHO_LOG_CONNECTIONS on` in the location, it writes one line per
//! connection to Apache's error log (through the children's stderr): who connected
//! (the user Apache authenticated, or `-`), from where, to which path.

use websocket_plugin::{Connection, Message, Plugin, Sender};

pub struct Echo;

impl Plugin for Echo {
    type Session = ();

    fn on_connect(&self, conn: &Connection<'_>) -> Option<()> {
        if conn
            .env("ECHO_LOG_CONNECTIONS")
            .is_some_and(|v| v.eq_ignore_ascii_case("on"))
        {
            eprintln!("{}", connection_line(conn));
        }
        Some(())
    }

    fn on_message(&self, _session: &mut (), msg: Message<'_>, sender: &Sender) {
        // A failure means the connection is closing; there is nobody left to tell.
        let _ = sender.send(msg);
    }
}

fn connection_line(conn: &Connection<'_>) -> String {
    let from = conn
        .remote_addr()
        .map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
    format!(
        "echo: {} connected from {from} to {}{}",
        conn.user().unwrap_or("-"),
        conn.path().unwrap_or("?"),
        if conn.is_tls() { " (TLS)" } else { "" }
    )
}

websocket_plugin::export_plugin!(echo_init, Echo);

#[cfg(test)]
mod tests {
    use super::*;
    use websocket_plugin::ffi::{MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};
    use websocket_plugin::testing::{FakeServer, PluginUnderTest};

    #[test]
    fn echoes_text_and_binary_with_their_type() {
        let plugin = PluginUnderTest::init(echo_init);
        let server = FakeServer::new().protocols(&["a", "b"]);
        let mut session = plugin.connect(&server).expect("accepts everyone");
        session.text("héllo");
        session.binary(&[0, 1, 255]);
        session.text("");
        session.disconnect();
        assert_eq!(
            server.sent(),
            [
                (MESSAGE_TYPE_TEXT, "héllo".as_bytes().to_vec()),
                (MESSAGE_TYPE_BINARY, vec![0, 1, 255]),
                (MESSAGE_TYPE_TEXT, vec![]),
            ]
        );
        // No subprotocol chosen: the 101 will name none.
        assert_eq!(server.chosen_protocol(), None);
        assert_eq!(server.late_calls(), 0);
    }
}
