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

use websocket_plugin::{Connection, Message, Plugin, Sender};

pub struct Echo;

impl Plugin for Echo {
    type Session = ();

    fn on_connect(&self, _conn: &Connection<'_>) -> Option<()> {
        Some(())
    }

    fn on_message(&self, _session: &mut (), msg: Message<'_>, sender: &Sender) {
        // A failure means the connection is closing; there is nobody left to tell.
        let _ = sender.send(msg);
    }
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
