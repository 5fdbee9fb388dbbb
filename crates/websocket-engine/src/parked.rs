//! The parked driver: between bursts of traffic a WebSocket gives its
//! worker back to the event MPM (`WebSocketAsync On`, see
//! [`httpd::park`]), and one thread per child process, the parked
//! service, does what must happen while no worker has it: output that
//! plugin threads queue, pings, the idle and close timeouts, and the 1001
//! when the child stops.
//!
//! A worker runs the session when the MPM sees its socket readable (or
//! writable, when output waits for a slow client), until it would wait,
//! and parks it again. The service steps a parked session only under the
//! connection's lock and only while the MPM has it, so never two threads
//! are in one connection's filters. When a parked session is over (its
//! closing handshake timed out, or a write failed), the service shuts the
//! socket for writing: the client's answer (its end of the connection)
//! makes the MPM hand it to a worker, which lets it close; a client that
//! has not answered within [`LINGER`] has the socket shut for reading too,
//! which wakes the MPM at once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use httpd::clock::Moment;
use httpd::conn::Request;
use httpd::io::ConnIo;
use httpd::park::{Handle, Next, Work};
use httpd::poll::{InputWait, Waker};
use websocket_proto::close::CloseCode;

use crate::connection::PluginApp;
use crate::driver::{ApacheTransport, Reporter};
use crate::log::RequestLog;
use crate::serve::Finish;
use crate::session::{Application, Session, Wait};

/// How soon the service tries again to write output a client does not take.
const WRITE_RETRY: Duration = Duration::from_millis(20);

/// How long a finished parked session waits for the client to end the
/// connection after we ended our side, as Apache's lingering close does.
const LINGER: Duration = Duration::from_secs(2);

/// A connection the MPM gives back within this long after it was parked is
/// busy: its worker waits a little for more input before it parks it
/// again, as the thread driver would, rather than pay the MPM's round trip
/// (its poller thread and a worker handoff) for every message.
const BUSY_GAP: Duration = Duration::from_millis(10);

/// How long a worker waits for more input on a busy connection.
const GRACE: Duration = Duration::from_millis(10);

/// The wait is in slices this long, after each of which the worker writes
/// what plugin threads sent meanwhile (their sends cannot wake it).
const GRACE_SLICE: Duration = Duration::from_millis(5);

/// The longest a worker keeps a busy connection in one go, so that a few
/// busy WebSockets cannot hold the workers other connections need.
const HOLD_MAX: Duration = Duration::from_millis(100);

/// How often the service asks the MPM whether the child is stopping (for
/// MPMs that do not run the child_stopping hook at once).
const STOP_CHECK: Duration = Duration::from_secs(1);

type ParkedSession = Session<ApacheTransport<'static>, PluginApp, RequestLog<'static>>;

/// A session that parks between bursts.
pub(crate) struct ParkedWork {
    id: u64,
    session: ParkedSession,
    reporter: Reporter,
    finish: Option<Finish>,
    request: Request<'static>,
    module_index: c_int,
    /// What the last step waited for.
    last: Wait,
    /// When the service ended our side of the connection.
    output_ended: Option<Moment>,
    /// Whether the MPM has the connection: only then does a plugin
    /// thread's send wake the service (a worker that has it sees the send
    /// itself, or looks once it has parked the connection).
    parked: Arc<AtomicBool>,
    /// When the connection was last parked.
    parked_at: Option<Moment>,
    /// The connection's descriptor, for the wait on a busy connection.
    input: Option<InputWait>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Runs a new session on this worker and parks it when it would wait (or
/// lets the connection close when it is already over).
pub(crate) fn start(
    r: Request<'_>,
    module_index: c_int,
    protocol: websocket_proto::connection::Connection,
    app: PluginApp,
    reporter: Reporter,
    finish: Finish,
) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (_handle, next) = httpd::park::adopt(r, module_index, |conn, request| {
        let transport = ApacheTransport {
            io: ConnIo::new(conn, conn.pool()),
        };
        let log = RequestLog {
            request,
            module_index,
        };
        let mut session = Session::new(protocol, app, transport, log);
        session.set_write_timeout(request.server_timeout());
        let parked = Arc::new(AtomicBool::new(false));
        let waker_sees = parked.clone();
        session.set_waker(Some(Waker::from_fn(move || {
            if waker_sees.load(Ordering::SeqCst) {
                service().notify(id);
            }
        })));
        ParkedWork {
            id,
            session,
            reporter,
            finish: Some(finish),
            request,
            module_index,
            last: Wait::Again,
            output_ended: None,
            parked,
            parked_at: None,
            input: InputWait::for_connection(conn),
        }
    });
    if next != Next::Close {
        httpd::park::park_after_handler(r.connection());
    }
}

impl ParkedWork {
    /// Steps until the session would wait; reading only on a worker the
    /// MPM gave the connection to (see [`Session::step_without_reading`]).
    fn run(&mut self, reading: bool) -> Wait {
        loop {
            let now = Moment::now().time();
            if crate::driver::stop_signalled() {
                self.session.server_stopping(now);
            }
            let wait = if reading {
                self.session.step(now)
            } else {
                self.session.step_without_reading(now)
            };
            if wait != Wait::Again {
                self.reporter.report(self.session.tally());
                self.last = wait;
                return wait;
            }
        }
    }

    /// The service's turn while the connection is parked.
    fn service(&mut self) -> Serviced {
        match self.run(false) {
            Wait::Done => match self.output_ended {
                None => {
                    // Over for the plugin and the log now; only the TCP
                    // connection lingers.
                    self.conclude();
                    let now = Moment::now();
                    self.output_ended = Some(now);
                    Serviced::EndOutput(now + LINGER)
                }
                Some(since) if Moment::now() >= since + LINGER => Serviced::Close,
                Some(since) => Serviced::Wait(Some(since + LINGER)),
            },
            Wait::Io {
                write: true,
                deadline,
                ..
            } => {
                let retry = Moment::now() + WRITE_RETRY;
                Serviced::Wait(Some(deadline.map_or(retry, |d| Moment::from_time(d).min(retry))))
            }
            Wait::Io { deadline, .. } => Serviced::Wait(deadline.map(Moment::from_time)),
            Wait::Again => Serviced::Wait(None),
        }
    }

    fn deadline(&self) -> Option<Moment> {
        match self.last {
            Wait::Io { write: true, .. } => Some(Moment::now() + WRITE_RETRY),
            Wait::Io { deadline, .. } => deadline.map(Moment::from_time),
            _ => None,
        }
    }
}

impl Work for ParkedWork {
    fn resume(&mut self) -> Next {
        self.parked.store(false, Ordering::SeqCst);
        let now = Moment::now();
        let busy = self.parked_at.is_some_and(|at| now < at + BUSY_GAP);
        let hold_until = now + HOLD_MAX;
        let mut input_at = now;
        self.session.readable();
        loop {
            match self.run(true) {
                Wait::Done => return Next::Close,
                Wait::Io { write: true, .. } => return Next::Write,
                _ => {}
            }
            let Some(input) = self.input.as_mut().filter(|_| busy) else {
                return Next::Read;
            };
            let now = Moment::now();
            if now >= hold_until || now >= input_at + GRACE || crate::driver::stop_signalled() {
                return Next::Read;
            }
            if input.readable_within(GRACE_SLICE) {
                self.session.readable();
                input_at = Moment::now();
            }
        }
    }

    fn parked(&mut self, handle: &Handle<Self>) {
        self.parked_at = Some(Moment::now());
        self.session.release_buffers();
        let outbox = &self.session.application().state().outbox;
        service().park(self.id, handle, self.deadline(), || {
            // Before the outbox is looked at: a send either comes before
            // that look or sees the flag and wakes the service.
            self.parked.store(true, Ordering::SeqCst);
            outbox.has_output()
        });
    }

    fn closing(&mut self) {
        // The MPM closes a connection we did not end: its Timeout passed
        // while the connection was parked, or the child is going away.
        if self.session.is_open() {
            let now = Moment::now().time();
            crate::rlog!(
                self.request,
                self.module_index,
                httpd::log::APLOG_INFO,
                "closing with 1001: Apache closes the connection (no input for Timeout, or the server stops)"
            );
            self.session.fail(
                CloseCode::GOING_AWAY,
                "the connection was idle for the server's Timeout",
                now,
            );
            self.session.step(now);
        }
    }
}

impl ParkedWork {
    /// Ends the session (`on_disconnect`), counts and logs it; once.
    fn conclude(&mut self) {
        if let Some(finish) = self.finish.take() {
            let summary = self.session.end();
            self.reporter.report(self.session.tally());
            finish.done(self.request, self.module_index, &summary);
        }
    }
}

impl Drop for ParkedWork {
    fn drop(&mut self) {
        service().forget(self.id);
        self.conclude();
    }
}

/// What a service turn leaves to do.
enum Serviced {
    /// Nothing until this time (or a send), if any.
    Wait(Option<Moment>),
    /// The session is over: end our side, and look again then.
    EndOutput(Moment),
    /// The client did not end the connection: have the MPM close it now.
    Close,
}

/// The parked service of this child process.
struct Service {
    state: Mutex<State>,
    wake: Condvar,
}

/// A connection the service knows.
struct Entry {
    handle: Handle<ParkedWork>,
    /// The earliest time it is due in `State::timers` (entries there for
    /// other times are stale and skipped).
    timer: Option<Moment>,
}

#[derive(Default)]
struct State {
    parked: HashMap<u64, Entry>,
    /// Parked connections to look at now.
    ready: Vec<u64>,
    timers: BinaryHeap<Reverse<(Moment, u64)>>,
    /// The child was told to stop: every parked session closes with 1001.
    stop_pending: bool,
    /// `stop_pending` was set once: the stop is being handled.
    stop_seen: bool,
    quit: bool,
    /// The service thread waits on `wake` and nobody has woken it yet: a
    /// connection made ready while it runs is seen when it next takes the
    /// lock, so only the first of a burst of sends pays for a wake.
    sleeping: bool,
    thread: Option<JoinHandle<()>>,
}

static SERVICE: OnceLock<Arc<Service>> = OnceLock::new();

fn service() -> &'static Arc<Service> {
    SERVICE.get_or_init(|| {
        Arc::new(Service {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        })
    })
}

impl State {
    /// Has the service look at `id` at `at`, unless it will already by then.
    fn schedule(&mut self, id: u64, at: Moment) {
        if let Some(entry) = self.parked.get_mut(&id) {
            if entry.timer.is_none_or(|t| at < t) {
                entry.timer = Some(at);
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// Takes `id`'s timer entry due at `at`; false if it is stale.
    fn timer_due(&mut self, id: u64, at: Moment) -> bool {
        match self.parked.get_mut(&id) {
            Some(entry) if entry.timer == Some(at) => {
                entry.timer = None;
                true
            }
            _ => false,
        }
    }
}

impl Service {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The MPM has connection `id` now; look at it at `deadline`, and at
    /// once if `has_output` (sends that came while a worker was leaving
    /// it; called under our lock, which a send's notify takes too).
    fn park(
        self: &Arc<Self>,
        id: u64,
        handle: &Handle<ParkedWork>,
        deadline: Option<Moment>,
        has_output: impl FnOnce() -> bool,
    ) {
        let mut st = self.lock();
        if st.quit {
            return;
        }
        if st.thread.is_none() {
            let service = self.clone();
            st.thread = std::thread::Builder::new()
                .name("websocket-parked".into())
                .spawn(move || service.run())
                .ok();
        }
        st.parked.entry(id).or_insert_with(|| Entry {
            handle: handle.clone(),
            timer: None,
        });
        if let Some(at) = deadline {
            st.schedule(id, at);
        }
        // Only a connection with output waiting needs the service now: a
        // busy connection parks after every burst, and waking the service
        // each time would cost a thread switch per message.
        if has_output() {
            st.ready.push(id);
            self.wake_if_sleeping(st);
        }
    }

    /// Wakes the service thread if it waits; takes our lock's guard so that
    /// the wake follows the change it is for.
    fn wake_if_sleeping(&self, mut st: MutexGuard<'_, State>) {
        if std::mem::take(&mut st.sleeping) {
            drop(st);
            self.wake.notify_one();
        }
    }

    /// A send for connection `id`, which was parked when it was queued.
    fn notify(&self, id: u64) {
        let mut st = self.lock();
        if !st.parked.contains_key(&id) {
            return;
        }
        st.ready.push(id);
        self.wake_if_sleeping(st);
    }

    fn forget(&self, id: u64) {
        self.lock().parked.remove(&id);
    }

    fn stopping(&self) {
        self.lock().stop_pending = true;
        self.wake.notify_one();
    }

    fn quit(&self) {
        let thread = {
            let mut st = self.lock();
            st.quit = true;
            st.thread.take()
        };
        self.wake.notify_one();
        if let Some(t) = thread {
            let _ = t.join();
        }
        // An immediate stop leaves the connections to the exit, without
        // their cleanups: end the sessions still parked here, so that their
        // plugins' on_disconnect runs (and stops the threads a plugin runs
        // for a connection) before Apache unloads the plugins' code.
        let handles: Vec<Handle<ParkedWork>> =
            self.lock().parked.values().map(|e| e.handle.clone()).collect();
        for handle in handles {
            handle.while_parked(ParkedWork::conclude);
        }
    }

    fn run(&self) {
        let mut stop_checked = Moment::now();
        let mut st = self.lock();
        loop {
            if st.quit {
                return;
            }
            let now = Moment::now();
            if now >= stop_checked + STOP_CHECK {
                stop_checked = now;
                // A stop the thread drivers' checks found first counts too.
                if !st.stop_seen && crate::driver::server_stop_check() {
                    st.stop_pending = true;
                }
            }
            let mut todo = std::mem::take(&mut st.ready);
            while let Some(&Reverse((at, id))) = st.timers.peek() {
                if at > now {
                    break;
                }
                st.timers.pop();
                if st.timer_due(id, at) {
                    todo.push(id);
                }
            }
            if std::mem::take(&mut st.stop_pending) {
                st.stop_seen = true;
                todo.extend(st.parked.keys().copied());
            }
            if todo.is_empty() {
                let next_timer = st.timers.peek().map(|Reverse((at, _))| *at);
                let until =
                    next_timer.map_or(stop_checked + STOP_CHECK, |t| t.min(stop_checked + STOP_CHECK));
                st.sleeping = true;
                st = self
                    .wake
                    .wait_timeout(st, now.until(until) + Duration::from_millis(1))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                st.sleeping = false;
                continue;
            }
            todo.sort_unstable();
            todo.dedup();
            let handles: Vec<(u64, Handle<ParkedWork>)> = todo
                .iter()
                .filter_map(|id| st.parked.get(id).map(|e| (*id, e.handle.clone())))
                .collect();
            drop(st);
            let mut timers = Vec::new();
            for (id, handle) in handles {
                match handle.while_parked(ParkedWork::service) {
                    None | Some(Serviced::Wait(None)) => {}
                    Some(Serviced::Wait(Some(at))) => timers.push(Reverse((at, id))),
                    Some(Serviced::EndOutput(at)) => {
                        handle.end_output();
                        timers.push(Reverse((at, id)));
                    }
                    Some(Serviced::Close) => handle.wake_to_close(),
                }
            }
            st = self.lock();
            for Reverse((at, id)) in timers {
                st.schedule(id, at);
            }
        }
    }
}

/// The child is stopping: every parked session closes with 1001.
pub fn child_stopping() {
    if let Some(service) = SERVICE.get() {
        service.stopping();
    }
}

/// The child exits: the service thread ends (before Apache unloads us).
pub fn stop() {
    if let Some(service) = SERVICE.get() {
        service.quit();
    }
}
