//! A live WebSocket as a value that advances in steps. A [`Session`] holds
//! the sans-I/O protocol connection, the plugin's side of it and the
//! transport; [`Session::step`] does what can be done now without waiting
//! (read what is there, decode it, call the plugin, run the timers, write
//! what the transport takes) and says what it waits for next. Drivers own
//! the waiting: [`crate::driver`] steps a session on the handler's thread
//! and sleeps in a pollset between steps.
//!
//! Nothing here touches Apache: the transport, the plugin and the log are
//! traits, so the step logic is tested with fakes (see the tests below),
//! and Apache's implementations live in [`crate::driver`].

use std::cell::RefCell;
use std::time::{Duration, Instant};

use websocket_proto::close::CloseCode;
use websocket_proto::connection::{Connection as Protocol, Ending, Limits, Note, Time};
use websocket_proto::decoder::MessageKind;

use crate::connection::{ConnState, DirectWrite, StepToken};
use crate::log::Level;
use crate::outbox::OutboxOutput;

/// How much one step may read.
const READ_SIZE: usize = 64 * 1024;

/// A write that takes at least this long was most likely interrupted by
/// another task on our core (a small write to a socket takes about 1 µs).
const PEER_MAY_HAVE_RUN: Duration = Duration::from_micros(2);

/// How long output may wait for a client that reads nothing, unless the
/// driver says otherwise (Apache's default `Timeout`).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for the peer's close frame when the server is stopping:
/// the MPM kills children that take much longer.
pub const STOPPING_CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// What a read from the transport gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were appended; `drained` when the transport knows
    /// nothing more is waiting (a short read on a pass-through chain).
    Data { n: usize, drained: bool },
    /// Nothing is waiting now.
    WouldBlock,
    /// The input ended: `eof` for an orderly end, else `why` it failed.
    Closed { eof: bool, why: String },
}

/// How a session moves bytes. Reads and writes never wait.
pub trait Transport {
    /// Appends up to `max` bytes to `out`.
    fn read(&self, max: usize, out: &mut Vec<u8>) -> Read;
    /// Writes `parts` in order; returns how many bytes were taken (some of
    /// which the transport may hold for later, see `holds_output`).
    fn write(&self, parts: &[&[u8]]) -> Result<usize, String>;
    /// Whether the transport holds output it took but did not write yet.
    fn holds_output(&self) -> bool;
    /// Writes what the transport holds; true when nothing is left.
    fn flush(&self) -> Result<bool, String>;
    /// Whether reads go straight to the socket (where a read right after a
    /// slow write often finds the peer's next message).
    fn reads_socket(&self) -> bool;
    /// Bytes written so far.
    fn bytes_out(&self) -> u64;
}

/// The plugin's side of a session.
pub trait Application {
    /// The connection state the plugin ABI works on.
    fn state(&self) -> &ConnState;
    /// `&self`: the plugin gets its connection state through the ABI, and
    /// during the call the session lends it the wire (see `DirectSlot`).
    fn on_message(&self, kind: MessageKind, data: &mut [u8]);
    /// Called exactly once, when the session ends.
    fn on_disconnect(&mut self);
}

/// Where a session's log lines go.
pub trait Log {
    fn enabled(&self, level: Level) -> bool;
    fn write(&self, level: Level, source: httpd::log::Source, msg: &str);
}

/// Logs through a [`Log`], formatting only when the level is enabled.
macro_rules! slog {
    ($log:expr, $level:expr, $($arg:tt)*) => {{
        let log = &$log;
        if log.enabled($level) {
            log.write($level, httpd::here!(), &format!($($arg)*));
        }
    }};
}

/// What a session waits for after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// More may be done at once: step again without waiting.
    Again,
    /// Input (when `read`), writability (when `write`), or the deadline.
    Io {
        read: bool,
        write: bool,
        deadline: Option<Time>,
    },
    /// The session is over.
    Done,
}

/// A session's running totals, for metrics (cheap to read at every step).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub messages_in: u64,
    pub payload_in: u64,
    pub wire_in: u64,
    pub messages_out: u64,
    pub payload_out: u64,
    pub wire_out: u64,
    /// Sends from plugin threads that waited for a full queue.
    pub queue_waits: u64,
}

/// What a session did, for the line that logs its end.
#[derive(Debug, Clone)]
pub struct Summary {
    pub ending: Ending,
    pub duration: Duration,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
}

/// The transport plus the output it has not taken yet; callbacks may write
/// large messages through it directly ([`DirectWrite`]).
struct Wire<T> {
    transport: T,
    /// Output the transport did not take, to go first when it is writable.
    unwritten: RefCell<Vec<u8>>,
}

impl<T: Transport> Wire<T> {
    /// Writes `parts` after what is unwritten; keeps what the transport
    /// does not take.
    fn write(&self, parts: &[&[u8]]) -> Result<(), String> {
        let mut unwritten = self.unwritten.borrow_mut();
        if !unwritten.is_empty() || self.transport.holds_output() {
            parts.iter().for_each(|p| unwritten.extend_from_slice(p));
            return Ok(());
        }
        let mut skip = self.transport.write(parts)?;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
            } else {
                unwritten.extend_from_slice(&part[skip..]);
                skip = 0;
            }
        }
        Ok(())
    }

    /// Writes what the transport holds, then what is unwritten, as far
    /// as the transport takes it; true once nothing is left.
    fn flush(&self) -> Result<bool, String> {
        if self.transport.holds_output() && !self.transport.flush()? {
            return Ok(false);
        }
        let mut unwritten = self.unwritten.borrow_mut();
        while !unwritten.is_empty() {
            let n = self.transport.write(&[&unwritten])?;
            unwritten.drain(..n);
            if n == 0 || self.transport.holds_output() {
                break;
            }
        }
        if unwritten.is_empty() && unwritten.capacity() > READ_SIZE {
            *unwritten = Vec::new();
        }
        Ok(unwritten.is_empty() && !self.transport.holds_output())
    }

    fn has_unwritten(&self) -> bool {
        !self.unwritten.borrow().is_empty() || self.transport.holds_output()
    }

    /// How much is waiting, to tell progress: the bytes of our own, plus
    /// one for output the transport holds (whose size it does not say).
    fn backlog(&self) -> usize {
        self.unwritten.borrow().len() + usize::from(self.transport.holds_output())
    }
}

impl<T: Transport> DirectWrite for Wire<T> {
    fn write_now(&self, parts: &[&[u8]]) -> bool {
        self.write(parts).is_ok()
    }
}

/// One live WebSocket connection; see the module docs.
pub struct Session<T: Transport, A: Application, L: Log> {
    app: A,
    core: Core<T, L>,
    ended: bool,
}

/// Everything of a session but the plugin, so that a step can lend the
/// plugin's state (for the step token) while it changes the rest.
struct Core<T: Transport, L: Log> {
    protocol: Protocol,
    wire: Wire<T>,
    log: L,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Whether the transport may have input for us: at the start (it may
    /// have come with the handshake), after a poll saw it readable, when a
    /// read stopped at READ_SIZE, and after a slow write (see there).
    /// Otherwise the last read drained it, and a poll says when more comes.
    input_pending: bool,
    /// Why the session ended outside the protocol (a failed write).
    dropped: Option<String>,
    started: Instant,
    /// Since when output has waited without any of it being written.
    stalled_since: Option<Time>,
    /// How long output may wait so while the connection is open (Apache's
    /// `Timeout`, as a blocking write would have waited).
    write_timeout: Duration,
    /// How long it may wait so once the closing handshake is over: the
    /// close timeout (shorter when the server is stopping).
    drain_timeout: Duration,
}

impl<T: Transport, A: Application, L: Log> Session<T, A, L> {
    /// A session on a connection whose handshake answer is written or
    /// queued (`app.state().outbox`); `protocol` opened at the current time.
    pub fn new(protocol: Protocol, app: A, transport: T, log: L) -> Self {
        Session {
            app,
            core: Core {
                protocol,
                wire: Wire {
                    transport,
                    unwritten: RefCell::new(Vec::new()),
                },
                log,
                input: Vec::with_capacity(READ_SIZE),
                output: Vec::new(),
                input_pending: true,
                dropped: None,
                started: Instant::now(),
                stalled_since: None,
                write_timeout: DEFAULT_WRITE_TIMEOUT,
                drain_timeout: Limits::default().close_timeout,
            },
            ended: false,
        }
    }

    pub fn log(&self) -> &L {
        &self.core.log
    }

    /// How long output may wait for a client that does not read while the
    /// connection is open (Apache's `Timeout` inside Apache); once the
    /// closing handshake is over, at most the close timeout.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.core.write_timeout = timeout;
    }

    /// Lets plugin threads' sends wake the driver (or stop doing so).
    pub fn set_waker(&self, waker: Option<httpd::poll::Waker>) {
        self.app.state().outbox.set_waker(waker);
    }

    /// The transport said it is readable.
    pub fn readable(&mut self) {
        self.core.input_pending = true;
    }

    /// Starts the closing handshake with 1001 because the server is
    /// stopping (once; later calls do nothing).
    pub fn server_stopping(&mut self, now: Time) {
        let core = &mut self.core;
        core.drain_timeout = core.drain_timeout.min(STOPPING_CLOSE_TIMEOUT);
        if core.protocol.is_open() {
            slog!(core.log, Level::Info, "closing with 1001: the server is stopping");
            core.protocol.close(
                CloseCode::GOING_AWAY,
                "the server is stopping",
                STOPPING_CLOSE_TIMEOUT,
                now,
                &mut OutboxOutput(&self.app.state().outbox),
            );
        }
    }

    /// Gives back the read and write buffers while they are empty (a
    /// parked connection should cost little memory); they grow again on
    /// the next step that needs them.
    pub fn release_buffers(&mut self) {
        if self.core.input.is_empty() {
            self.core.input = Vec::new();
        }
        if self.core.output.is_empty() {
            self.core.output = Vec::new();
        }
    }

    /// Whether the WebSocket is open (no close frame sent or received).
    pub fn is_open(&self) -> bool {
        self.core.protocol.is_open()
    }

    /// Closes with `code` at once for an internal reason and stops reading
    /// (the session then only writes its close frame).
    pub fn fail(&mut self, code: CloseCode, why: &str, now: Time) {
        let out = &mut OutboxOutput(&self.app.state().outbox);
        self.core.protocol.close(code, why, Duration::ZERO, now, out);
        self.core.input_pending = false;
    }

    /// Does everything possible now; see [`Wait`].
    pub fn step(&mut self, now: Time) -> Wait {
        if self.ended {
            return Wait::Done;
        }
        let _token = StepToken::acquire(self.app.state());
        self.core.step(now, &self.app, true)
    }

    /// Like [`Session::step`] but reads nothing: input stays in the
    /// transport for whoever watches it to see (the event MPM renews its
    /// `Timeout` for a parked connection only when it sees it readable).
    pub fn step_without_reading(&mut self, now: Time) -> Wait {
        if self.ended {
            return Wait::Done;
        }
        let _token = StepToken::acquire(self.app.state());
        self.core.step(now, &self.app, false)
    }

    /// Ends the session: senders get "closed" from now on and the plugin's
    /// `on_disconnect` runs. Exactly once; also run by drop, so a session
    /// that unwinds still ends.
    pub fn end(&mut self) -> Summary {
        if !self.ended {
            self.ended = true;
            self.app.state().outbox.close();
            self.app.on_disconnect();
        }
        self.summary()
    }

    /// The running totals (no lock taken).
    pub fn tally(&self) -> Tally {
        let out = self.app.state().outbox.counts();
        Tally {
            messages_in: self.core.protocol.messages_in(),
            payload_in: self.core.protocol.payload_in(),
            wire_in: self.core.protocol.bytes_in(),
            messages_out: out.messages,
            payload_out: out.payload,
            wire_out: self.core.wire.transport.bytes_out(),
            queue_waits: out.waits,
        }
    }

    pub fn summary(&self) -> Summary {
        let core = &self.core;
        Summary {
            ending: core
                .protocol
                .ending()
                .cloned()
                .unwrap_or_else(|| Ending::Dropped("the session ended".to_owned())),
            duration: core.started.elapsed(),
            messages_in: core.protocol.messages_in(),
            bytes_in: core.protocol.bytes_in(),
            messages_out: self.app.state().outbox.sent().messages,
            bytes_out: core.wire.transport.bytes_out(),
        }
    }

    /// The transport, for the driver (to describe it, say).
    pub fn transport(&self) -> &T {
        &self.core.wire.transport
    }

    /// The plugin's side (for tests and drivers).
    pub fn application(&self) -> &A {
        &self.app
    }
}

impl<T: Transport, L: Log> Core<T, L> {
    fn step<A: Application>(&mut self, now: Time, app: &A, reading: bool) -> Wait {
        let mut progressed = false;
        let backlog = self.wire.backlog();
        if let Err(e) = self.wire.flush() {
            return self.write_failed(&e);
        }
        if self.wire.backlog() < backlog {
            self.stalled_since = None;
        }
        // Read only when caught up on writing: a peer that does not read
        // what we send must not make us buffer without bound.
        let caught_up = !self.wire.has_unwritten();
        if reading && caught_up && self.input_pending && self.protocol.is_reading() {
            progressed |= self.read_and_dispatch(now, app);
        }
        if app.state().outbox.is_closed() && self.dropped.is_none() {
            // A direct write from a callback failed.
            slog!(
                self.log,
                Level::Debug,
                "writing to the client failed; dropping the connection"
            );
            self.dropped = Some("writing to the client failed".to_owned());
            self.protocol
                .write_failed("writing to the client failed".to_owned());
            return Wait::Done;
        }
        self.protocol.poll(now, &mut OutboxOutput(&app.state().outbox));
        self.log_notes();
        if !self.wire.has_unwritten() {
            self.output.clear();
            app.state().outbox.take(&mut self.output);
            if !self.output.is_empty() {
                let write_started = Instant::now();
                if let Err(e) = self.wire.write(&[&self.output]) {
                    return self.write_failed(&e);
                }
                progressed = true;
                // A write that took long was most likely interrupted, and a
                // peer in a request/response exchange that ran meanwhile (on
                // our core, woken by this very write) has often sent its next
                // message already: read before polling, one recv instead of
                // a poll and a recv. After a quick write that read would
                // mostly say EAGAIN.
                if self.wire.transport.reads_socket() && write_started.elapsed() >= PEER_MAY_HAVE_RUN {
                    self.input_pending = true;
                }
            }
        }
        let unwritten = self.wire.has_unwritten();
        let wants = self.protocol.wants(now, &OutboxOutput(&app.state().outbox));
        if wants.done && !unwritten {
            return Wait::Done;
        }
        let mut deadline = wants.deadline;
        if unwritten {
            // A client that does not read gets as long as a blocking write
            // would have given it, and no longer.
            let since = *self.stalled_since.get_or_insert(now);
            let limit = if wants.done {
                self.write_timeout.min(self.drain_timeout)
            } else {
                self.write_timeout
            };
            if now >= since + limit {
                let why = format!("no progress for {} s", limit.as_secs_f64());
                return self.write_failed(&why);
            }
            deadline = Some(deadline.map_or(since + limit, |d| d.min(since + limit)));
        } else {
            self.stalled_since = None;
        }
        if reading && progressed && self.input_pending && wants.read && !unwritten {
            return Wait::Again;
        }
        Wait::Io {
            // Not while output waits: readable input would end every poll.
            read: wants.read && !unwritten,
            write: unwritten,
            deadline,
        }
    }

    /// Reads a batch and hands its messages to the plugin; true if any
    /// bytes came.
    fn read_and_dispatch<A: Application>(&mut self, now: Time, app: &A) -> bool {
        self.input.clear();
        self.input_pending = false;
        let mut gone = None;
        // A filter chain hands out one socket read (8 KB) per call: gather
        // what is there, up to READ_SIZE, into one batch.
        while self.input.len() < READ_SIZE {
            match self
                .wire
                .transport
                .read(READ_SIZE - self.input.len(), &mut self.input)
            {
                Read::Data { drained: true, .. } | Read::WouldBlock => break,
                Read::Data { .. } => {}
                Read::Closed { eof, why } => {
                    gone = Some((eof, why));
                    break;
                }
            }
        }
        if self.input.len() >= READ_SIZE {
            self.input_pending = true;
        }
        let got = !self.input.is_empty();
        if got {
            let state = app.state();
            let protocol = &mut self.protocol;
            let input = &mut self.input;
            // Large messages the plugin sends from its callbacks go straight out.
            state.direct.lend(&self.wire, || {
                let mut pos = 0;
                while pos < input.len() {
                    let rest = &mut input[pos..];
                    let (used, message) = protocol.receive(rest, now, &mut OutboxOutput(&state.outbox));
                    pos += used;
                    match message {
                        Some(message) => app.on_message(message.kind, message.data),
                        None if used == 0 => break,
                        None => {}
                    }
                }
            });
        }
        if let Some((eof, why)) = gone {
            slog!(self.log, Level::Trace1, "reading from the client ended: {why}");
            self.protocol.peer_gone(if eof {
                "the client closed the TCP connection".to_owned()
            } else {
                format!("reading from the client failed ({why})")
            });
        }
        self.log_notes();
        got
    }

    fn log_notes(&mut self) {
        if !self.protocol.has_notes() {
            return;
        }
        for note in self.protocol.take_notes() {
            match note {
                Note::Failed { code, reason } => {
                    slog!(self.log, Level::Info, "closing with {code}: {reason}")
                }
                Note::TimedOut(why) => slog!(self.log, Level::Info, "closing with 1001: {why}"),
                Note::PeerClosed(description) => {
                    slog!(
                        self.log,
                        Level::Debug,
                        "close frame from the client: {description}"
                    )
                }
                Note::CloseUnanswered => {
                    slog!(self.log, Level::Debug, "no close frame from the client in time")
                }
            }
        }
    }

    fn write_failed(&mut self, e: &str) -> Wait {
        slog!(
            self.log,
            Level::Debug,
            "writing to the client failed ({e}); dropping the connection"
        );
        self.protocol
            .write_failed(format!("writing to the client failed ({e})"));
        self.dropped = Some(e.to_owned());
        Wait::Done
    }
}

impl<T: Transport, A: Application, L: Log> Drop for Session<T, A, L> {
    fn drop(&mut self) {
        self.end();
    }
}

pub mod memory {
    //! A session without Apache, for tests and benchmarks: a transport
    //! over byte buffers, and a log that keeps its lines.

    use std::cell::{Cell, RefCell};

    use super::{Level, Log, Read, Transport};

    /// Input is what [`MemoryTransport::feed`] gave; output piles up in
    /// [`MemoryTransport::written`], at most `write_room` bytes per write
    /// (`usize::MAX` by default) to play a full socket.
    #[derive(Default)]
    pub struct MemoryTransport {
        input: RefCell<Vec<u8>>,
        read_at: Cell<usize>,
        /// End the input after what was fed.
        pub eof: Cell<bool>,
        pub written: RefCell<Vec<u8>>,
        /// Bytes counted as written but not kept (`keep_output` false).
        pub write_count: Cell<u64>,
        pub keep_output: Cell<bool>,
        pub write_room: Cell<usize>,
        /// Bytes all writes together may still take (`usize::MAX` by default).
        pub write_budget: Cell<usize>,
        pub fail_writes: Cell<bool>,
    }

    impl MemoryTransport {
        pub fn new() -> MemoryTransport {
            MemoryTransport {
                keep_output: Cell::new(true),
                write_room: Cell::new(usize::MAX),
                write_budget: Cell::new(usize::MAX),
                ..MemoryTransport::default()
            }
        }

        /// Makes `bytes` the input still to be read (after what is unread).
        pub fn feed(&self, bytes: &[u8]) {
            let mut input = self.input.borrow_mut();
            let at = self.read_at.replace(0);
            input.drain(..at);
            input.extend_from_slice(bytes);
        }

        /// Bytes fed and not read yet.
        pub fn unread(&self) -> usize {
            self.input.borrow().len() - self.read_at.get()
        }

        pub fn take_written(&self) -> Vec<u8> {
            std::mem::take(&mut *self.written.borrow_mut())
        }
    }

    impl Transport for MemoryTransport {
        fn read(&self, max: usize, out: &mut Vec<u8>) -> Read {
            let input = self.input.borrow();
            let at = self.read_at.get();
            let n = max.min(input.len() - at);
            if n == 0 {
                return if self.eof.get() {
                    Read::Closed {
                        eof: true,
                        why: "end of file".to_owned(),
                    }
                } else {
                    Read::WouldBlock
                };
            }
            out.extend_from_slice(&input[at..at + n]);
            self.read_at.set(at + n);
            Read::Data {
                n,
                drained: at + n == input.len(),
            }
        }

        fn write(&self, parts: &[&[u8]]) -> Result<usize, String> {
            if self.fail_writes.get() {
                return Err("broken pipe".to_owned());
            }
            let mut room = self.write_room.get().min(self.write_budget.get());
            let mut taken = 0;
            let mut written = self.written.borrow_mut();
            for part in parts {
                let n = part.len().min(room);
                if self.keep_output.get() {
                    written.extend_from_slice(&part[..n]);
                }
                taken += n;
                room -= n;
            }
            self.write_count.set(self.write_count.get() + taken as u64);
            self.write_budget.set(self.write_budget.get() - taken);
            Ok(taken)
        }

        fn holds_output(&self) -> bool {
            false
        }

        fn flush(&self) -> Result<bool, String> {
            Ok(true)
        }

        fn reads_socket(&self) -> bool {
            false
        }

        fn bytes_out(&self) -> u64 {
            self.write_count.get()
        }
    }

    /// Keeps every line at or above `level`.
    pub struct MemoryLog {
        pub level: Level,
        pub lines: RefCell<Vec<(Level, String)>>,
    }

    impl MemoryLog {
        pub fn new(level: Level) -> MemoryLog {
            MemoryLog {
                level,
                lines: RefCell::new(Vec::new()),
            }
        }

        pub fn contains(&self, needle: &str) -> bool {
            self.lines.borrow().iter().any(|(_, l)| l.contains(needle))
        }
    }

    impl Log for MemoryLog {
        fn enabled(&self, level: Level) -> bool {
            level <= self.level
        }

        fn write(&self, level: Level, _source: httpd::log::Source, msg: &str) {
            self.lines.borrow_mut().push((level, msg.to_owned()));
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
