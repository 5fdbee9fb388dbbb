//! The dumb-increment-protocol plugin: each connection receives a counter, as text, every
//! 50 ms; the text message `reset\n` (or `reset`) sets it back to 0, and `closeme\n` (or
//! `closeme`) makes the server close the connection with 1001 and the reason "seeya",
//! as libwebsockets' test server of the same protocol does.
//!
//! ```apache
//! <Location /dumb-increment>
//!     SetHandler websocket-handler
//!     WebSocketHandler modules/mod_websocket_dumb_increment.so dumb_increment_init
//! </Location>
//! ```
//!
//! Clients must offer the `dumb-increment-protocol` subprotocol; others get 403.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use websocket_plugin::{CloseCode, Connection, Message, Plugin, SendError, Sender};

pub const PROTOCOL: &str = "dumb-increment-protocol";
const INTERVAL: Duration = Duration::from_millis(50);

pub struct DumbIncrement;

struct Counter {
    next: u64,
    stopped: bool,
}

/// What a connection's ticker thread shares with its callbacks.
struct Shared {
    counter: Mutex<Counter>,
    /// Signalled on stop, so that the ticker does not sleep out its interval first.
    stop: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Counter> {
        self.counter.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection; dropping it (in on_disconnect) stops and joins its ticker.
pub struct Session {
    shared: Arc<Shared>,
    ticker: Option<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.stop.notify_all();
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

fn tick(shared: &Shared, sender: &Sender) {
    let mut counter = shared.lock();
    while !counter.stopped {
        let n = counter.next;
        // The send may block on a full queue, so the lock is not held across it.
        drop(counter);
        let sent = sender.send_text(&n.to_string());
        counter = shared.lock();
        match sent {
            // Unless a reset came in meanwhile.
            Ok(_) if counter.next == n => counter.next = n + 1,
            Ok(_) => {}
            Err(SendError::Closed) => return,
            // The server is not open yet or already closing: try the same value again
            // next time, until on_disconnect stops the thread.
            Err(SendError::Rejected) => {}
        }
        counter = shared
            .stop
            .wait_timeout_while(counter, INTERVAL, |c| !c.stopped)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

impl Plugin for DumbIncrement {
    type Session = Session;

    fn on_connect(&self, conn: &Connection<'_>) -> Option<Session> {
        if !conn.protocols().any(|p| p == PROTOCOL) {
            return None;
        }
        conn.set_protocol(PROTOCOL).ok()?;
        let shared = Arc::new(Shared {
            counter: Mutex::new(Counter {
                next: 0,
                stopped: false,
            }),
            stop: Condvar::new(),
        });
        let sender = conn.sender();
        let ticker = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("dumb-increment".into())
                .spawn(move || tick(&shared, &sender))
                // No thread, no counter: refuse rather than accept a silent connection.
                .ok()?
        };
        Some(Session {
            shared,
            ticker: Some(ticker),
        })
    }

    fn on_message(&self, session: &mut Session, msg: Message<'_>, sender: &Sender) {
        match msg {
            Message::Text("reset\n" | "reset") => session.shared.lock().next = 0,
            Message::Text("closeme\n" | "closeme") => {
                // Fails only when the connection is closing already.
                let _ = sender.close_with(CloseCode::GOING_AWAY, "seeya");
            }
            _ => {}
        }
    }
}

websocket_plugin::export_plugin!(dumb_increment_init, DumbIncrement);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use websocket_plugin::testing::{FakeServer, PluginUnderTest};

    fn numbers(server: &FakeServer) -> Vec<u64> {
        server
            .sent_texts()
            .iter()
            .map(|t| t.parse().expect("a number"))
            .collect()
    }

    #[test]
    fn requires_the_subprotocol() {
        let plugin = PluginUnderTest::init(dumb_increment_init);
        let none = FakeServer::new();
        assert!(plugin.connect(&none).is_none());
        let other = FakeServer::new().protocols(&["chat"]);
        assert!(plugin.connect(&other).is_none());
        assert_eq!(none.send_calls() + other.send_calls(), 0);
    }

    #[test]
    fn counts_every_50ms_and_resets() {
        let plugin = PluginUnderTest::init(dumb_increment_init);
        let server = FakeServer::new().protocols(&["chat", PROTOCOL]);
        let start = Instant::now();
        let mut session = plugin.connect(&server).expect("accepted");
        assert_eq!(server.chosen_protocol().as_deref(), Some(PROTOCOL));

        assert!(server.wait_for_sent(Duration::from_secs(5), |s| s.len() >= 4));
        // Four ticks need at least three intervals.
        assert!(start.elapsed() >= INTERVAL * 3);
        assert_eq!(numbers(&server)[..4], [0, 1, 2, 3]);

        session.text("hello");
        session.text("reset\n");
        let before = server.sent().len();
        assert!(server.wait_for_sent(Duration::from_secs(5), |s| s.len() >= before + 2));
        session.text("reset");
        let after_second = server.sent().len();
        assert!(server.wait_for_sent(Duration::from_secs(5), |s| s.len() >= after_second + 2));

        let stop = Instant::now();
        session.disconnect();
        assert!(
            stop.elapsed() < INTERVAL,
            "on_disconnect took {:?}",
            stop.elapsed()
        );
        assert_eq!(server.late_calls(), 0);

        // Each reset starts the count again from 0.
        let n = numbers(&server);
        let restarts = n.windows(2).filter(|w| w[1] == 0).count();
        assert_eq!(restarts, 2, "{n:?}");
        for w in n.windows(2) {
            assert!(w[1] == w[0] + 1 || w[1] == 0, "{n:?}");
        }
    }

    #[test]
    fn closeme_closes_with_going_away() {
        let plugin = PluginUnderTest::init(dumb_increment_init);
        let server = FakeServer::new().protocols(&[PROTOCOL]);
        let mut session = plugin.connect(&server).expect("accepted");
        session.text("closeme\n");
        assert_eq!(server.closes(), [Some((1001, "seeya".to_owned()))]);
        session.disconnect();
    }
}
