//! What steps a [`Session`] inside Apache: the transport over the
//! connection's filters or socket, and the thread driver.
//!
//! The thread driver steps the session on the handler's worker thread and,
//! between steps, sleeps in a pollset on the connection's descriptor that
//! other threads' sends wake. A stopping child wakes every pollset of this
//! process through the MPM's `child_stopping` hook (event and worker call
//! it at once), so that the 1001 goes out while the connection is still
//! served (mod_http2, for one, may close the client's connection a
//! `Timeout` after it saw the stop); the driver also asks the MPM once a
//! second, for the MPMs that call the hook only as the child exits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use httpd::brigade::ReadOutcome;
use httpd::io::ConnIo;
use httpd::log::apr_error;
use httpd::poll::{Interest, Pollset, Waker};
use httpd::sys;

use crate::metrics::{Counter, Location};
use crate::session::{Application, Log, Read, Session, Tally, Transport, Wait};
use httpd::clock::Moment;

/// How often an idle session asks the MPM whether the server is stopping.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// Polls wake a little after a deadline, so that it has passed when the
/// session looks (the clock is coarse).
const DEADLINE_SLACK: Duration = Duration::from_millis(1);

/// Set once this child has been told to stop.
static STOP_SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Set once the MPM stops this child, whether or not the server stops too.
static CHILD_STOPPING: AtomicBool = AtomicBool::new(false);

/// The pollsets of this process's running thread drivers.
static DRIVERS: Mutex<Option<HashMap<u64, Waker>>> = Mutex::new(None);
static NEXT_DRIVER: AtomicU64 = AtomicU64::new(0);

/// A driver's entry in [`DRIVERS`], removed when dropped.
struct Registered(u64);

impl Registered {
    fn new(waker: Waker) -> Registered {
        let id = NEXT_DRIVER.fetch_add(1, Ordering::Relaxed);
        let mut drivers = DRIVERS.lock().unwrap_or_else(PoisonError::into_inner);
        drivers.get_or_insert_with(HashMap::new).insert(id, waker);
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut drivers = DRIVERS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = drivers.as_mut() {
            d.remove(&self.0);
        }
    }
}

/// How long a stopping child that sees no other child of its generation
/// serving waits for one before it takes the stop for the server's: when
/// every child retires at once, the MPM starts replacements within its
/// one-second maintenance.
const NO_SIBLING_GRACE: Duration = Duration::from_secs(2);

/// When this child first saw itself stopping with no sibling serving.
static NO_SIBLING_SINCE: Mutex<Option<Moment>> = Mutex::new(None);

/// The `child_stopping` hook: when the server stops or restarts (not when
/// the MPM only retires this child), every running session of this process
/// learns it at once.
pub fn child_stopping(graceful: bool) {
    CHILD_STOPPING.store(true, Ordering::Release);
    if !graceful {
        signal_stop();
        crate::parked::child_stopping();
    } else if server_stop_check() {
        crate::parked::child_stopping();
    } else {
        // HTTP/2 streams close even so (see `run_on_thread`).
        wake_drivers();
    }
}

/// Whether this child's sessions should close because the server stops or
/// restarts; says so to every thread driver the first time. A child the
/// MPM retires alone (`MaxSpareThreads`, `MaxConnectionsPerChild`) keeps
/// its WebSockets until they end, as Apache lets it finish any connection:
/// closing them would only have their clients reconnect elsewhere.
pub(crate) fn server_stop_check() -> bool {
    if stop_signalled() {
        return true;
    }
    let stops = match httpd::mpm::stopping() {
        httpd::mpm::Stopping::No => false,
        httpd::mpm::Stopping::Server => true,
        httpd::mpm::Stopping::ThisChild => {
            let mut since = NO_SIBLING_SINCE.lock().unwrap_or_else(PoisonError::into_inner);
            *since = None;
            RETIRED_NOTED.call_once(|| {
                // For no module in particular (the parked service knows no
                // module index), hence the name in the text.
                httpd::log::startup(
                    -1,
                    httpd::log::APLOG_NOTICE,
                    httpd::here!(),
                    &format!(
                        "mod_websocket: child {} is retired by the MPM while other children serve: its WebSockets \
                         stay open until they end (a restart or stop still closes them with 1001)",
                        std::process::id()
                    ),
                );
            });
            false
        }
        httpd::mpm::Stopping::NoSibling => {
            let now = Moment::now();
            let mut since = NO_SIBLING_SINCE.lock().unwrap_or_else(PoisonError::into_inner);
            now >= *since.get_or_insert(now) + NO_SIBLING_GRACE
        }
    };
    if stops {
        signal_stop();
    }
    stops
}

static RETIRED_NOTED: std::sync::Once = std::sync::Once::new();

/// Whether this child was told to stop.
pub(crate) fn stop_signalled() -> bool {
    STOP_SIGNALLED.load(Ordering::Acquire)
}

/// Tells every thread driver of this process that the child stops.
pub(crate) fn signal_stop() {
    STOP_SIGNALLED.store(true, Ordering::Release);
    wake_drivers();
}

fn wake_drivers() {
    let drivers = DRIVERS.lock().unwrap_or_else(PoisonError::into_inner);
    drivers.iter().flat_map(HashMap::values).for_each(Waker::wake);
}

/// A session's transport inside Apache.
pub struct ApacheTransport<'c> {
    pub io: ConnIo<'c>,
}

impl Transport for ApacheTransport<'_> {
    fn read(&self, max: usize, out: &mut Vec<u8>) -> Read {
        match self.io.read(max, out) {
            (ReadOutcome::Data(n), full) if n < full && self.io.short_read_drains() => {
                self.io.input_drained();
                Read::Data { n, drained: true }
            }
            (ReadOutcome::Data(n), _) => Read::Data { n, drained: false },
            (ReadOutcome::WouldBlock, _) => {
                self.io.input_drained();
                Read::WouldBlock
            }
            (ReadOutcome::Closed(rv), _) => Read::Closed {
                eof: rv == sys::APR_EOF,
                why: apr_error(rv),
            },
        }
    }

    fn write(&self, parts: &[&[u8]]) -> Result<usize, String> {
        self.io.write(parts).map_err(apr_error)
    }

    fn holds_output(&self) -> bool {
        self.io.holds_output()
    }

    fn flush(&self) -> Result<bool, String> {
        self.io.flush().map_err(apr_error)
    }

    fn reads_socket(&self) -> bool {
        self.io.reads_socket()
    }

    fn bytes_out(&self) -> u64 {
        self.io.bytes_out.get()
    }
}

/// Adds what a session did since the last call to its location's counters.
pub struct Reporter {
    location: Location,
    /// The connection negotiated permessage-deflate.
    compressed: bool,
    last: Tally,
}

impl Reporter {
    pub fn new(location: Location, compressed: bool) -> Reporter {
        Reporter {
            location,
            compressed,
            last: Tally::default(),
        }
    }

    pub fn report(&mut self, now: Tally) {
        if now == self.last {
            return;
        }
        let l = &self.location;
        let last = self.last;
        l.add(Counter::MessagesIn, now.messages_in - last.messages_in);
        l.add(Counter::BytesIn, now.payload_in - last.payload_in);
        l.add(Counter::WireBytesIn, now.wire_in - last.wire_in);
        l.add(Counter::MessagesOut, now.messages_out - last.messages_out);
        l.add(Counter::BytesOut, now.payload_out - last.payload_out);
        l.add(Counter::WireBytesOut, now.wire_out - last.wire_out);
        l.add(Counter::BackPressure, now.queue_waits - last.queue_waits);
        if self.compressed {
            l.add(Counter::CompressedWireBytesIn, now.wire_in - last.wire_in);
            l.add(Counter::CompressedWireBytesOut, now.wire_out - last.wire_out);
        }
        self.last = now;
    }
}

/// Steps `session` on this thread until it is done, sleeping in `pollset`
/// between steps; reports its counts as it goes. With `with_the_child`
/// (HTTP/2 streams), any stop of this child closes the session, even one
/// that retires the child alone: mod_http2 winds the client's connection
/// down then, and would drop the stream without our 1001.
pub fn run_on_thread<T, A, L>(
    session: &mut Session<T, A, L>,
    pollset: &mut Pollset<'_>,
    reporter: &mut Reporter,
    with_the_child: bool,
) where
    T: Transport,
    A: Application,
    L: Log,
{
    let _registered = Registered::new(pollset.waker());
    let mut stop_checked = Moment::now();
    loop {
        let now = Moment::now();
        if STOP_SIGNALLED.load(Ordering::Acquire)
            || (with_the_child && CHILD_STOPPING.load(Ordering::Acquire))
        {
            session.server_stopping(now.time());
        } else if now >= stop_checked + STOP_CHECK {
            stop_checked = now;
            if server_stop_check() || (with_the_child && httpd::mpm::is_stopping()) {
                session.server_stopping(now.time());
            }
        }
        let wait = session.step(now.time());
        match wait {
            // Counted before the session sleeps (or ends), not at every step
            // of a busy one: a few atomics per wait, not per batch.
            Wait::Done => {
                reporter.report(session.tally());
                return;
            }
            Wait::Again => {}
            Wait::Io {
                read,
                write,
                deadline,
            } => {
                reporter.report(session.tally());
                let next_stop_check = stop_checked + STOP_CHECK;
                let wake = deadline.map_or(next_stop_check, |d| Moment::from_time(d).min(next_stop_check));
                let ready = pollset.poll(now.until(wake) + DEADLINE_SLACK, Interest { read, write });
                if ready.readable {
                    session.readable();
                }
            }
        }
    }
}
