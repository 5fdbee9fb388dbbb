//! The chat example: rooms as channels.
//!
//! ```apache
//! <Location /chat>
//!     SetHandler websocket-handler
//!     WebSocketHandler modules/mod_websocket_chat.so chat_init
//! </Location>
//! ```
//!
//! A client at `/chat/<room>` is subscribed to channel `<room>`; every text
//! message it sends is published there, so every client in the room, on any
//! child process (and, with `WebSocketBroker`, any server), gets it, the
//! sender included. A text longer than [`MAX_TEXT`] closes the connection
//! with 1009, a binary message with 1003 (the server itself closes with 1007
//! on text that is not UTF-8). The messages are passed on as sent; the
//! example page sends `{"nick": ..., "text": ...}`.

use websocket_plugin::{CloseCode, Connection, Message, Plugin, Sender};

/// The longest chat message.
pub const MAX_TEXT: usize = 4096;

pub struct Chat;

/// The room a connection is in.
pub struct Room(String);

/// The room of `/chat/<room>` (the last segment after `/chat/`, whatever
/// the location is called: the segment after the location's own path).
fn room_of(path: &str) -> Option<&str> {
    let (_, room) = path.trim_end_matches('/').rsplit_once('/')?;
    (!room.is_empty()).then_some(room)
}

impl Plugin for Chat {
    type Session = Room;

    fn on_connect(&self, conn: &Connection<'_>) -> Option<Room> {
        let path = conn.path()?;
        // Only one segment below the location: /chat/<room>.
        let room = room_of(path)?;
        if path.trim_end_matches('/').matches('/').count() < 2 {
            return None;
        }
        // An invalid channel name is refused here (403).
        conn.subscribe(room).ok()?;
        Some(Room(room.to_owned()))
    }

    fn on_message(&self, room: &mut Room, msg: Message<'_>, sender: &Sender) {
        match msg {
            Message::Text(text) if text.len() > MAX_TEXT => {
                let _ = sender.close_with(CloseCode::MESSAGE_TOO_BIG, "chat messages are at most 4096 bytes");
            }
            Message::Text(_) => {
                // Fails only when the connection is closing.
                let _ = sender.publish(&room.0, msg);
            }
            Message::Binary(_) => {
                let _ = sender.close_with(CloseCode::UNSUPPORTED_DATA, "chat messages are text");
            }
        }
    }
}

websocket_plugin::export_plugin!(chat_init, Chat);

#[cfg(test)]
mod tests {
    use super::*;
    use websocket_plugin::ffi::MESSAGE_TYPE_TEXT;
    use websocket_plugin::testing::{FakeServer, PluginUnderTest};

    #[test]
    fn a_client_joins_its_room_and_publishes_there() {
        let plugin = PluginUnderTest::init(chat_init);
        let server = FakeServer::new().request_uri("/chat/lobby", None);
        let mut session = plugin.connect(&server).expect("a valid room");
        assert_eq!(server.subscriptions(), ["lobby"]);
        session.text(r#"{"nick":"ann","text":"hi"}"#);
        assert_eq!(
            server.published(),
            [(
                "lobby".to_owned(),
                MESSAGE_TYPE_TEXT,
                br#"{"nick":"ann","text":"hi"}"#.to_vec()
            )]
        );
        // Nothing is sent directly: the room's copy comes back through the channel.
        assert!(server.sent().is_empty());
        session.disconnect();
        assert_eq!(server.late_calls(), 0);
    }

    #[test]
    fn bad_rooms_are_refused() {
        let plugin = PluginUnderTest::init(chat_init);
        for path in ["/chat", "/chat/", "/chat/a b", "/chat/a:b", "/chat/caf\u{e9}"] {
            let server = FakeServer::new().request_uri(path, None);
            assert!(plugin.connect(&server).is_none(), "{path}");
            assert!(server.subscriptions().is_empty(), "{path}");
        }
        let long = format!("/chat/{}", "r".repeat(129));
        assert!(plugin
            .connect(&FakeServer::new().request_uri(&long, None))
            .is_none());
    }

    #[test]
    fn too_long_and_binary_messages_close_the_connection() {
        let plugin = PluginUnderTest::init(chat_init);
        let server = FakeServer::new().request_uri("/chat/room", None);
        let mut session = plugin.connect(&server).unwrap();
        session.text(&"x".repeat(MAX_TEXT));
        session.text(&"x".repeat(MAX_TEXT + 1));
        assert_eq!(server.closes()[0].as_ref().map(|(code, _)| *code), Some(1009));
        let server2 = FakeServer::new().request_uri("/chat/room", None);
        let mut other = plugin.connect(&server2).unwrap();
        other.binary(b"\x00");
        assert_eq!(server2.closes()[0].as_ref().map(|(code, _)| *code), Some(1003));
        assert!(server2.published().is_empty());
        assert_eq!(server.published().len(), 1);
        session.disconnect();
        other.disconnect();
    }
}
