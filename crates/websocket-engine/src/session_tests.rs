//! The session's step logic over the in-memory transport: no Apache.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use websocket_plugin::ffi::{MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};
use websocket_proto::close::CloseCode;
use websocket_proto::connection::{Connection as Protocol, Ending, Family, Limits};
use websocket_proto::decoder::MessageKind;
use websocket_proto::encoder::write_masked_frame;
use websocket_proto::{Opcode, ProtocolVersion};

use super::memory::{MemoryLog, MemoryTransport};
use super::*;
use crate::connection::{ConnState, Connection};

const KEY: [u8; 4] = [1, 2, 3, 4];
const RFC6455: Family = Family::Rfc6455 {
    version: ProtocolVersion::V13,
    deflate: None,
};

/// A plugin that records what it gets and echoes it through the ABI.
struct TestApp {
    conn: Box<Connection>,
    got: RefCell<Vec<Vec<u8>>>,
    stepper_during_message: Cell<bool>,
    disconnects: Rc<Cell<u32>>,
    panic_on: Option<&'static [u8]>,
}

impl Application for TestApp {
    fn state(&self) -> &ConnState {
        &self.conn.state
    }

    fn on_message(&self, kind: MessageKind, data: &mut [u8]) {
        if self.panic_on == Some(&*data) {
            panic!("the plugin failed");
        }
        self.got.borrow_mut().push(data.to_vec());
        self.stepper_during_message.set(self.conn.state.is_stepper());
        let t = match kind {
            MessageKind::Text => MESSAGE_TYPE_TEXT,
            MessageKind::Binary => MESSAGE_TYPE_BINARY,
        };
        let server = self.conn.server_ptr();
        // SAFETY: our live server struct; `send` is always set.
        let sent = unsafe { ((*server).send.unwrap())(server, t, data.as_ptr(), data.len()) };
        assert_eq!(sent, data.len());
    }

    fn on_disconnect(&mut self) {
        self.disconnects.set(self.disconnects.get() + 1);
    }
}

type TestSession = Session<MemoryTransport, TestApp, MemoryLog>;

fn session_with(limits: Limits) -> (TestSession, Rc<Cell<u32>>) {
    let disconnects = Rc::new(Cell::new(0));
    let app = TestApp {
        conn: Connection::new(None, Vec::new(), &RFC6455, None),
        got: RefCell::new(Vec::new()),
        stepper_during_message: Cell::new(false),
        disconnects: disconnects.clone(),
        panic_on: None,
    };
    let protocol = Protocol::new(&RFC6455, limits, Duration::ZERO);
    let session = Session::new(
        protocol,
        app,
        MemoryTransport::new(),
        MemoryLog::new(Level::Trace1),
    );
    (session, disconnects)
}

fn session() -> (TestSession, Rc<Cell<u32>>) {
    session_with(Limits::default())
}

fn client(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, opcode, true, payload, KEY);
    out
}

fn server(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    websocket_proto::encoder::write_frame(&mut out, opcode, payload);
    out
}

/// Steps until the session waits or ends.
fn settle(s: &mut TestSession, now: Duration) -> Wait {
    loop {
        match s.step(now) {
            Wait::Again => continue,
            other => return other,
        }
    }
}

#[test]
fn echoes_each_message_of_a_batch_in_one_write() {
    let (mut s, _) = session();
    let mut input = client(Opcode::Text, b"one");
    input.extend(client(Opcode::Binary, b"two"));
    s.transport().feed(&input);
    let wait = settle(&mut s, Duration::ZERO);
    assert_eq!(
        wait,
        Wait::Io {
            read: true,
            write: false,
            deadline: None
        }
    );
    let mut expected = server(Opcode::Text, b"one");
    expected.extend(server(Opcode::Binary, b"two"));
    assert_eq!(s.transport().take_written(), expected);
    assert_eq!(*s.application().got.borrow(), [b"one".to_vec(), b"two".to_vec()]);
    assert!(
        s.application().stepper_during_message.get(),
        "the callback holds the token"
    );
    assert!(
        !s.application().conn.state.is_stepper(),
        "the token ends with the step"
    );
}

#[test]
fn output_the_transport_does_not_take_waits_for_writability_and_holds_reading() {
    let (mut s, _) = session();
    s.transport().write_room.set(3);
    s.transport().feed(&client(Opcode::Binary, b"hello"));
    let wait = settle(&mut s, Duration::ZERO);
    assert_eq!(
        wait,
        Wait::Io {
            read: false,
            write: true,
            deadline: Some(DEFAULT_WRITE_TIMEOUT)
        },
        "a full socket: wait for POLLOUT, not for input"
    );
    assert_eq!(
        s.transport().take_written(),
        server(Opcode::Binary, b"hello")[..3]
    );
    // More input meanwhile is not read while output waits.
    s.transport().feed(&client(Opcode::Binary, b"next"));
    s.readable();
    s.transport().write_room.set(0);
    assert_eq!(
        settle(&mut s, Duration::ZERO),
        Wait::Io {
            read: false,
            write: true,
            deadline: Some(DEFAULT_WRITE_TIMEOUT)
        }
    );
    assert_eq!(
        s.application().got.borrow().len(),
        1,
        "no read while the output waits"
    );
    // Writable again: the rest goes out first, then the next message.
    s.transport().write_room.set(usize::MAX);
    s.readable();
    settle(&mut s, Duration::ZERO);
    let mut expected = server(Opcode::Binary, b"hello")[3..].to_vec();
    expected.extend(server(Opcode::Binary, b"next"));
    assert_eq!(s.transport().take_written(), expected);
}

#[test]
fn a_large_message_sent_from_a_callback_keeps_its_order_when_the_socket_fills() {
    let (mut s, _) = session();
    let big = vec![7u8; crate::connection::DIRECT_MIN + 10];
    let mut input = client(Opcode::Text, b"ping me");
    input.extend(client(Opcode::Binary, &big));
    input.extend(client(Opcode::Text, b"after"));
    s.transport().write_room.set(1000);
    s.transport().feed(&input);
    let mut written = Vec::new();
    for _ in 0..1000 {
        let wait = s.step(Duration::ZERO);
        written.extend(s.transport().take_written());
        if let Wait::Io { write: false, .. } = wait {
            break;
        }
        s.readable();
    }
    let mut expected = server(Opcode::Text, b"ping me");
    expected.extend(server(Opcode::Binary, &big));
    expected.extend(server(Opcode::Text, b"after"));
    assert!(written == expected, "every byte once, in order");
}

#[test]
fn the_peer_closing_is_answered_and_ends_the_session() {
    let (mut s, disconnects) = session();
    s.transport()
        .feed(&client(Opcode::Close, &[0x03, 0xE8, b'b', b'y', b'e']));
    assert_eq!(settle(&mut s, Duration::ZERO), Wait::Done);
    assert_eq!(s.transport().take_written(), server(Opcode::Close, &[0x03, 0xE8]));
    assert!(s
        .log()
        .contains("close frame from the client: code 1000, reason \"bye\""));
    let summary = s.end();
    assert_eq!(summary.ending, Ending::ClientClosed(Some(1000)));
    assert_eq!(disconnects.get(), 1);
}

#[test]
fn end_of_input_and_failed_writes_drop_the_connection() {
    let (mut s, _) = session();
    s.transport().eof.set(true);
    assert_eq!(settle(&mut s, Duration::ZERO), Wait::Done);
    assert_eq!(
        s.summary().ending,
        Ending::Dropped("the client closed the TCP connection".to_owned())
    );

    let (mut s, _) = session();
    s.transport().fail_writes.set(true);
    s.transport().feed(&client(Opcode::Text, b"x"));
    assert_eq!(settle(&mut s, Duration::ZERO), Wait::Done);
    assert_eq!(
        s.summary().ending,
        Ending::Dropped("writing to the client failed (broken pipe)".to_owned())
    );
    assert!(s
        .log()
        .contains("writing to the client failed (broken pipe); dropping the connection"));
}

#[test]
fn protocol_errors_close_with_their_code_and_stop_reading() {
    let (mut s, _) = session();
    let mut input = client(Opcode::Text, &[0xFF]);
    input.extend(client(Opcode::Text, b"never read"));
    s.transport().feed(&input);
    assert_eq!(settle(&mut s, Duration::ZERO), Wait::Done);
    assert_eq!(s.transport().take_written(), server(Opcode::Close, &[0x03, 0xEF]));
    assert!(s.application().got.borrow().is_empty());
    assert!(s.log().contains("closing with 1007"));
}

#[test]
fn a_stopping_server_closes_with_1001_and_waits_briefly_for_the_answer() {
    let (mut s, _) = session();
    let t0 = Duration::from_secs(10);
    settle(&mut s, t0);
    s.server_stopping(t0);
    s.server_stopping(t0);
    let wait = settle(&mut s, t0);
    assert_eq!(
        wait,
        Wait::Io {
            read: true,
            write: false,
            deadline: Some(t0 + STOPPING_CLOSE_TIMEOUT)
        }
    );
    assert_eq!(
        s.transport().take_written(),
        server(Opcode::Close, &[0x03, 0xE9]),
        "one close frame"
    );
    assert_eq!(settle(&mut s, t0 + STOPPING_CLOSE_TIMEOUT), Wait::Done);
    assert!(s.log().contains("the server is stopping"));
    assert!(s.log().contains("no close frame from the client in time"));
}

#[test]
fn timers_run_when_stepped_at_their_deadline() {
    let (mut s, _) = session_with(Limits {
        ping_interval: Some(Duration::from_secs(30)),
        ..Limits::default()
    });
    let wait = settle(&mut s, Duration::ZERO);
    assert_eq!(
        wait,
        Wait::Io {
            read: true,
            write: false,
            deadline: Some(Duration::from_secs(30))
        }
    );
    settle(&mut s, Duration::from_secs(30));
    assert_eq!(s.transport().take_written(), server(Opcode::Ping, b""));
    settle(&mut s, Duration::from_secs(60));
    assert_eq!(s.transport().take_written(), server(Opcode::Close, &[0x03, 0xE9]));
    assert!(s.log().contains("no pong within WebSocketPingInterval"));
}

#[test]
fn sends_from_other_threads_go_out_at_the_next_step() {
    let (mut s, _) = session();
    settle(&mut s, Duration::ZERO);
    let outbox = &s.application().conn.state.outbox;
    std::thread::scope(|scope| {
        scope.spawn(|| assert!(outbox.push(false, Opcode::Text, b"tick")));
    });
    settle(&mut s, Duration::ZERO);
    assert_eq!(s.transport().take_written(), server(Opcode::Text, b"tick"));
}

#[test]
fn on_disconnect_runs_once_even_when_the_session_unwinds() {
    let (mut s, disconnects) = session();
    s.end();
    s.end();
    drop(s);
    assert_eq!(disconnects.get(), 1);

    let (mut s, disconnects) = session();
    s.app.panic_on = Some(b"boom");
    s.transport().feed(&client(Opcode::Text, b"boom"));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        settle(&mut s, Duration::ZERO);
    }));
    assert!(unwound.is_err());
    assert_eq!(disconnects.get(), 1, "the drop guard ran on_disconnect");
}

#[test]
fn after_the_end_every_sender_gets_closed() {
    let (mut s, _) = session();
    s.end();
    let state = &s.application().conn.state;
    assert!(!state.outbox.push(false, Opcode::Text, b"late"));
    assert_eq!(s.step(Duration::ZERO), Wait::Done);
}

#[test]
fn an_internal_failure_closes_without_reading() {
    let (mut s, _) = session();
    s.transport().feed(&client(Opcode::Text, b"unread"));
    s.fail(
        CloseCode::INTERNAL_ERROR,
        "the connection cannot be polled",
        Duration::ZERO,
    );
    settle(&mut s, Duration::ZERO);
    assert_eq!(s.transport().take_written(), server(Opcode::Close, &[0x03, 0xF3]));
    assert!(s.application().got.borrow().is_empty());
}

#[test]
fn a_client_that_reads_nothing_is_dropped_after_the_write_timeout() {
    let (mut s, _) = session();
    s.set_write_timeout(Duration::from_secs(30));
    s.transport().write_room.set(0);
    s.transport().feed(&client(Opcode::Text, b"unread reply"));
    assert_eq!(
        settle(&mut s, Duration::ZERO),
        Wait::Io {
            read: false,
            write: true,
            deadline: Some(Duration::from_secs(30))
        }
    );
    // Progress restarts the clock.
    s.transport().write_room.set(usize::MAX);
    s.transport().write_budget.set(2);
    assert!(matches!(
        settle(&mut s, Duration::from_secs(20)),
        Wait::Io { write: true, .. }
    ));
    assert!(matches!(
        settle(&mut s, Duration::from_secs(49)),
        Wait::Io { write: true, .. }
    ));
    assert_eq!(settle(&mut s, Duration::from_secs(50)), Wait::Done);
    assert_eq!(
        s.summary().ending,
        Ending::Dropped("writing to the client failed (no progress for 30 s)".to_owned())
    );
}

#[test]
fn a_stopping_server_does_not_wait_on_a_client_that_reads_nothing() {
    let (mut s, _) = session();
    s.transport().write_room.set(0);
    s.transport().feed(&client(Opcode::Text, b"unread reply"));
    settle(&mut s, Duration::ZERO);
    let t = Duration::from_secs(10);
    s.server_stopping(t);
    // The close cannot be written; the closing handshake times out, and the
    // output then gets the stopping server's short drain time.
    assert!(matches!(settle(&mut s, t), Wait::Io { write: true, .. }));
    assert_eq!(settle(&mut s, t + STOPPING_CLOSE_TIMEOUT), Wait::Done);
}

#[test]
fn a_step_without_reading_writes_queued_output_and_leaves_input_alone() {
    let (mut s, _) = session();
    settle(&mut s, Duration::ZERO);
    s.transport().feed(&client(Opcode::Text, b"waits for the worker"));
    s.readable();
    assert!(s
        .application()
        .conn
        .state
        .outbox
        .push(false, Opcode::Text, b"tick"));
    let wait = s.step_without_reading(Duration::ZERO);
    assert!(matches!(wait, Wait::Io { write: false, .. }), "{wait:?}");
    assert_eq!(s.transport().take_written(), server(Opcode::Text, b"tick"));
    assert!(s.application().got.borrow().is_empty(), "nothing was read");
    // The worker's step, after the MPM saw the socket readable, reads it.
    settle(&mut s, Duration::ZERO);
    assert_eq!(*s.application().got.borrow(), [b"waits for the worker".to_vec()]);
}
