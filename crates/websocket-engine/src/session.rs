//! The connection after the handshake: one owner thread reads, decodes,
//! calls the plugin and writes, as DESIGN.md §3 lays out.
//!
//! Reads are nonblocking and large; everything decodable in a read is
//! handled before the replies are written with a single flush. When there is
//! nothing to read and nothing to write, the thread sleeps in a pollset on
//! the connection plus a wakeup that other threads' sends trigger.
//!
//! The wire format is behind [`WireProtocol`], so RFC 6455 and the legacy
//! drafts share this loop.

use std::os::raw::{c_int, c_void};
use std::time::{Duration, Instant};

use httpd::brigade::ReadOutcome;
use httpd::log::{apr_error, APLOG_DEBUG, APLOG_ERR, APLOG_INFO, APLOG_TRACE1};
use httpd::sys;
use websocket_plugin::ffi::{MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};
use websocket_plugin::LoadedPlugin;
use websocket_proto::close::{CloseCode, ClosePayload};
use websocket_proto::decoder::MessageKind;
use websocket_proto::Opcode;

use crate::clock::Moment;
use crate::conn_io::ConnIo;
use crate::connection::Connection;
use crate::rlog;

/// How much one nonblocking read may bring in.
const READ_SIZE: usize = 64 * 1024;

/// A write that takes at least this long was most likely interrupted by
/// another task on our core (a small write to a socket takes about 1 µs).
const PEER_MAY_HAVE_RUN: Duration = Duration::from_micros(2);

/// How long to wait for the peer's close frame after we sent ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an idle session asks the MPM whether the server is stopping
/// (nothing wakes a thread blocked in our pollset when it does).
const STOP_CHECK: Duration = Duration::from_secs(1);

/// How long to wait for the peer's close frame when the server is stopping:
/// the MPM kills children that take much longer.
const STOPPING_CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Is this child process shutting down (stop, restart or graceful)?
fn server_stopping() -> bool {
    let mut state: c_int = 0;
    // SAFETY: a plain query into the MPM, safe from any thread.
    let rv = unsafe { sys::ap_mpm_query(sys::AP_MPMQ_MPM_STATE, &mut state) };
    rv == sys::APR_SUCCESS as sys::apr_status_t && state == sys::AP_MPMQ_STOPPING
}

/// What a wire protocol decoded.
pub enum Incoming<'a> {
    Message {
        kind: MessageKind,
        data: &'a mut [u8],
    },
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer's close; `reply` is the close frame body to answer with.
    Close {
        reply: ClosePayload,
        description: String,
    },
}

/// A protocol violation: the connection is failed with this close code.
pub struct Failure {
    pub code: CloseCode,
    pub reason: String,
}

/// Turns the bytes of a connection into [`Incoming`] events.
pub trait WireProtocol {
    /// Decodes all of `input` (unmasking in place where the protocol masks),
    /// calling `sink` for each event, until the input is used up, `sink`
    /// returns false (stop reading), or the peer violated the protocol.
    fn consume(
        &mut self,
        input: &mut [u8],
        sink: &mut dyn FnMut(Incoming<'_>) -> bool,
    ) -> Result<(), Failure>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing {
        deadline: Moment,
    },
    /// We sent a close frame after a protocol error: stop reading.
    Failed,
    /// The closing handshake is complete (or the peer vanished).
    Done,
}

pub struct SessionParams<'a> {
    pub r: *mut sys::request_rec,
    pub module_index: c_int,
    pub conn: &'a Connection,
    pub plugin: &'a LoadedPlugin,
    pub plugin_private: *mut c_void,
    /// Close with 1001 after this long without a byte from the peer.
    pub idle_timeout: Option<Duration>,
    /// Ping after this long without a byte from the peer; close with 1001
    /// if nothing comes back within as long again.
    pub ping_interval: Option<Duration>,
    /// Whether the wire protocol has ping frames.
    pub can_ping: bool,
}

/// How a session ended, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The client started the closing handshake, with this code.
    ClientClosed(Option<u16>),
    /// We did (the plugin, a timer, a protocol error, a stopping server).
    ServerClosed { code: Option<u16>, why: String },
    /// The connection ended without a closing handshake.
    Dropped(String),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = |c: &Option<u16>| c.map_or_else(|| "no status code".to_owned(), |c| c.to_string());
        match self {
            Ending::ClientClosed(c) => write!(f, "the client closed it with {}", code(c)),
            Ending::ServerClosed { code: c, why } => {
                write!(f, "the server closed it with {} ({why})", code(c))
            }
            Ending::Dropped(why) => write!(f, "{why}, without a closing handshake"),
        }
    }
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

/// What the session loop learns as it goes.
struct Tally {
    ending: Option<Ending>,
    messages_in: u64,
    bytes_in: u64,
}

impl Tally {
    /// Records how the session ends, unless an earlier event already did.
    fn ends(&mut self, ending: Ending) {
        if self.ending.is_none() {
            self.ending = Some(ending);
        }
    }
}

/// The keep-alive clocks of a connection.
struct Timers {
    idle_timeout: Option<Duration>,
    ping_interval: Option<Duration>,
    last_heard: Moment,
    /// When the ping we sent must have been answered.
    ping_deadline: Option<Moment>,
}

enum TimerAction {
    None,
    Ping,
    Close(&'static str),
}

impl Timers {
    fn heard(&mut self, now: Moment) {
        self.last_heard = now;
        self.ping_deadline = None;
    }

    /// What is due at `now`.
    fn due(&mut self, now: Moment) -> TimerAction {
        if let Some(deadline) = self.ping_deadline {
            if now >= deadline {
                return TimerAction::Close("no pong within WebSocketPingInterval");
            }
        }
        if let Some(idle) = self.idle_timeout {
            if now >= self.last_heard + idle {
                return TimerAction::Close("idle for WebSocketIdleTimeout");
            }
        }
        if let (Some(interval), None) = (self.ping_interval, self.ping_deadline) {
            if now >= self.last_heard + interval {
                self.ping_deadline = Some(now + interval);
                return TimerAction::Ping;
            }
        }
        TimerAction::None
    }

    /// The next moment something may be due.
    fn next(&self) -> Option<Moment> {
        let idle = self.idle_timeout.map(|t| self.last_heard + t);
        let ping = match (self.ping_deadline, self.ping_interval) {
            (Some(d), _) => Some(d),
            (None, Some(i)) => Some(self.last_heard + i),
            (None, None) => None,
        };
        [idle, ping].into_iter().flatten().min()
    }
}

/// Runs the connection until it closes; returns what happened.
///
/// # Safety
/// `params.r` is the live request whose handshake answer was just sent, on
/// the thread that handles it.
pub unsafe fn run(params: SessionParams<'_>, protocol: &mut dyn WireProtocol) -> Summary {
    let started = Instant::now();
    let r = params.r;
    let mi = params.module_index;
    // SAFETY: live request and connection (contract).
    let c = unsafe { (*r).connection };
    let mut pool: *mut sys::apr_pool_t = std::ptr::null_mut();
    // SAFETY: a subpool of the request pool, destroyed below, so that the
    // pollset and brigades do not outlive the session.
    unsafe { sys::apr_pool_create_ex(&mut pool, (*r).pool, None, std::ptr::null_mut()) };
    // SAFETY: live connection and pool.
    let pollset = unsafe { create_pollset(c, pool) };
    let outbox = &params.conn.state.outbox;
    outbox.set_waker(pollset);
    // SAFETY: a subpool of the request pool, outliving `io`; this thread
    // owns the connection, and the handshake answer was flushed.
    let io = unsafe { ConnIo::new(c, pool) };
    rlog!(r, mi, APLOG_TRACE1, "session starts; {}", io.describe());
    let mut tally = Tally {
        ending: None,
        messages_in: 0,
        bytes_in: 0,
    };
    // Large messages the plugin sends from our callbacks go straight out.
    params.conn.state.direct.set(Some(&io as *const ConnIo));

    let mut phase = Phase::Open;
    if pollset.is_null() {
        rlog!(r, mi, APLOG_ERR, "cannot poll this connection; closing it");
        tally.ends(Ending::ServerClosed {
            code: Some(CloseCode::INTERNAL_ERROR.0),
            why: "the connection cannot be polled".to_owned(),
        });
        outbox.push(
            true,
            Opcode::Close,
            ClosePayload::new(CloseCode::INTERNAL_ERROR, "").as_bytes(),
        );
        phase = Phase::Failed;
    }
    let mut input: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut output: Vec<u8> = Vec::new();
    let mut stop_checked = Moment::now();
    let mut close_timeout = CLOSE_TIMEOUT;
    let mut timers = Timers {
        idle_timeout: params.idle_timeout,
        ping_interval: params.ping_interval.filter(|_| params.can_ping),
        last_heard: Moment::now(),
        ping_deadline: None,
    };

    // Whether the input filters may have bytes for us: at the start (they
    // may have come with the handshake), after a poll saw the socket
    // readable, when a batch stopped at READ_SIZE, and after we wrote (see
    // there). Otherwise the last read drained them, and a poll, not another
    // read, says when more come.
    let mut input_pending = true;
    loop {
        let mut progressed = false;
        if matches!(phase, Phase::Open | Phase::Closing { .. }) && input_pending {
            input.clear();
            input_pending = false;
            // The core input filter hands out one socket read (8 KB) per
            // call: gather what is there, up to READ_SIZE, into one batch.
            let mut peer_gone = None;
            while input.len() < READ_SIZE {
                match io.read(READ_SIZE - input.len(), &mut input) {
                    (ReadOutcome::Data(n), full) if n < full && io.short_read_drains() => {
                        io.input_drained();
                        break;
                    }
                    (ReadOutcome::Data(_), _) => {}
                    (ReadOutcome::WouldBlock, _) => {
                        io.input_drained();
                        break;
                    }
                    (ReadOutcome::Closed(rv), _) => {
                        peer_gone = Some(rv);
                        break;
                    }
                }
            }
            if input.len() >= READ_SIZE {
                input_pending = true;
            }
            if !input.is_empty() {
                progressed = true;
                tally.bytes_in += input.len() as u64;
                let result = protocol.consume(&mut input, &mut |event| {
                    handle(&params, &mut phase, &mut tally, event);
                    !matches!(phase, Phase::Done)
                });
                if let Err(failure) = result {
                    rlog!(
                        r,
                        mi,
                        APLOG_INFO,
                        "closing with {}: {}",
                        failure.code,
                        failure.reason
                    );
                    tally.ends(Ending::ServerClosed {
                        code: Some(failure.code.0),
                        why: failure.reason.clone(),
                    });
                    outbox.push(
                        true,
                        Opcode::Close,
                        ClosePayload::new(failure.code, "").as_bytes(),
                    );
                    phase = Phase::Failed;
                }
            }
            if let Some(rv) = peer_gone {
                rlog!(
                    r,
                    mi,
                    APLOG_TRACE1,
                    "reading from the client ended: {}",
                    apr_error(rv)
                );
                tally.ends(Ending::Dropped(if rv == sys::APR_EOF {
                    "the client closed the TCP connection".to_owned()
                } else {
                    format!("reading from the client failed ({})", apr_error(rv))
                }));
                phase = Phase::Done;
            }
            if outbox.is_closed() {
                rlog!(
                    r,
                    mi,
                    APLOG_DEBUG,
                    "writing to the client failed; dropping the connection"
                );
                tally.ends(Ending::Dropped("writing to the client failed".to_owned()));
                break;
            }
        }
        // One clock read per pass (and one after writing, which may wait).
        let mut now = Moment::now();
        if progressed {
            timers.heard(now);
        }
        if phase == Phase::Open && now >= stop_checked + STOP_CHECK {
            stop_checked = now;
            if server_stopping() {
                rlog!(r, mi, APLOG_INFO, "closing with 1001: the server is stopping");
                tally.ends(Ending::ServerClosed {
                    code: Some(CloseCode::GOING_AWAY.0),
                    why: "the server is stopping".to_owned(),
                });
                outbox.push(
                    true,
                    Opcode::Close,
                    ClosePayload::new(CloseCode::GOING_AWAY, "").as_bytes(),
                );
                close_timeout = STOPPING_CLOSE_TIMEOUT;
            }
        }
        if phase == Phase::Open {
            match timers.due(now) {
                TimerAction::None => {}
                TimerAction::Ping => {
                    outbox.push(true, Opcode::Ping, b"");
                }
                TimerAction::Close(why) => {
                    rlog!(r, mi, APLOG_INFO, "closing with 1001: {why}");
                    tally.ends(Ending::ServerClosed {
                        code: Some(CloseCode::GOING_AWAY.0),
                        why: why.to_owned(),
                    });
                    outbox.push(
                        true,
                        Opcode::Close,
                        ClosePayload::new(CloseCode::GOING_AWAY, "").as_bytes(),
                    );
                }
            }
        }
        output.clear();
        let close_queued = outbox.take(&mut output);
        if !output.is_empty() {
            let write_started = Instant::now();
            if let Err(rv) = io.write(&[&output]) {
                rlog!(
                    r,
                    mi,
                    APLOG_DEBUG,
                    "writing to the client failed ({}); dropping the connection",
                    apr_error(rv)
                );
                tally.ends(Ending::Dropped(format!(
                    "writing to the client failed ({})",
                    apr_error(rv)
                )));
                break;
            }
            progressed = true;
            now = Moment::now();
            // A write that took long was most likely interrupted, and a peer
            // in a request/response exchange that ran meanwhile (on our core,
            // woken by this very write) has often sent its next message
            // already: read before polling, one recv instead of a poll and a
            // recv. After a quick write that read would mostly say EAGAIN.
            if io.reads_socket() && write_started.elapsed() >= PEER_MAY_HAVE_RUN {
                input_pending = true;
            }
        }
        if close_queued && phase == Phase::Open {
            // Nothing of ours queued it: the plugin closed.
            let code = outbox.sent().close.flatten();
            tally.ends(Ending::ServerClosed {
                code,
                why: "the plugin closed it".to_owned(),
            });
            phase = Phase::Closing {
                deadline: now + close_timeout,
            };
        }
        let timeout = match phase {
            Phase::Done | Phase::Failed => break,
            Phase::Closing { deadline } => {
                if now >= deadline {
                    rlog!(r, mi, APLOG_DEBUG, "no close frame from the client in time");
                    break;
                }
                now.until(deadline).as_micros() as sys::apr_interval_time_t
            }
            Phase::Open => {
                let next_stop_check = stop_checked + STOP_CHECK;
                let at = timers.next().map_or(next_stop_check, |t| t.min(next_stop_check));
                now.until(at).as_micros() as sys::apr_interval_time_t + 1000
            }
        };
        if progressed && input_pending {
            continue;
        }
        let mut n: sys::apr_int32_t = 0;
        let mut descs: *const sys::apr_pollfd_t = std::ptr::null();
        // SAFETY: live pollset owned by this thread. It holds the connection
        // alone (the wakeup pipe is APR's and never reported): any returned
        // descriptor is ours. EINTR (a wakeup) and TIMEUP leave the input
        // as it was.
        let rv = unsafe { sys::apr_pollset_poll(pollset, timeout, &mut n, &mut descs) };
        if rv == sys::APR_SUCCESS as sys::apr_status_t && n > 0 {
            input_pending = true;
        }
    }

    params.conn.state.direct.set(None);
    outbox.close();
    let sent = outbox.sent();
    let summary = Summary {
        ending: tally
            .ending
            .take()
            .unwrap_or_else(|| Ending::Dropped("the session ended".to_owned())),
        duration: started.elapsed(),
        messages_in: tally.messages_in,
        bytes_in: tally.bytes_in,
        messages_out: sent.messages,
        bytes_out: io.bytes_out.get(),
    };
    drop(io);
    // SAFETY: the pollset was unregistered from the outbox (close) and the
    // brigades are gone; destroying the subpool frees the rest.
    unsafe {
        if !pollset.is_null() {
            sys::apr_pollset_destroy(pollset);
        }
        sys::apr_pool_destroy(pool);
    }
    summary
}

fn handle(params: &SessionParams<'_>, phase: &mut Phase, tally: &mut Tally, event: Incoming<'_>) {
    let outbox = &params.conn.state.outbox;
    match event {
        Incoming::Message { kind, data } => {
            if *phase != Phase::Open {
                return;
            }
            tally.messages_in += 1;
            let t = match kind {
                MessageKind::Text => MESSAGE_TYPE_TEXT,
                MessageKind::Binary => MESSAGE_TYPE_BINARY,
            };
            // SAFETY: the plugin's private pointer and our server struct are
            // live for the whole session.
            unsafe {
                params
                    .plugin
                    .on_message(params.plugin_private, params.conn.server_ptr(), t, data)
            };
        }
        Incoming::Ping(payload) => {
            if *phase == Phase::Open {
                outbox.push(true, Opcode::Pong, payload);
            }
        }
        Incoming::Pong(_) => {}
        Incoming::Close { reply, description } => {
            if *phase == Phase::Open {
                outbox.push(true, Opcode::Close, reply.as_bytes());
                // The reply echoes the client's code.
                let code = reply
                    .as_bytes()
                    .get(..2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
                tally.ends(Ending::ClientClosed(code));
            }
            rlog!(
                params.r,
                params.module_index,
                APLOG_DEBUG,
                "close frame from the client: {description}"
            );
            *phase = Phase::Done;
        }
    }
}

/// A pollset on the connection's descriptor (a socket, or a pipe for an
/// HTTP/2 stream) that other threads can wake. NULL if that fails.
///
/// # Safety
/// `c` and `pool` are live.
unsafe fn create_pollset(c: *mut sys::conn_rec, pool: *mut sys::apr_pool_t) -> *mut sys::apr_pollset_t {
    // SAFETY: plain C calls on live objects; the pollfd is copied by the pollset.
    unsafe {
        let mut pfd: sys::apr_pollfd_t = std::mem::zeroed();
        let mut timeout: sys::apr_interval_time_t = 0;
        if sys::ap_get_pollfd_from_conn(c, &mut pfd, &mut timeout) != sys::APR_SUCCESS as sys::apr_status_t {
            return std::ptr::null_mut();
        }
        pfd.reqevents = (sys::APR_POLLIN | sys::APR_POLLHUP | sys::APR_POLLERR) as sys::apr_int16_t;
        pfd.p = pool;
        let mut ps: *mut sys::apr_pollset_t = std::ptr::null_mut();
        if sys::apr_pollset_create(&mut ps, 2, pool, sys::APR_POLLSET_WAKEABLE as sys::apr_uint32_t)
            != sys::APR_SUCCESS as sys::apr_status_t
        {
            return std::ptr::null_mut();
        }
        if sys::apr_pollset_add(ps, &pfd) != sys::APR_SUCCESS as sys::apr_status_t {
            sys::apr_pollset_destroy(ps);
            return std::ptr::null_mut();
        }
        ps
    }
}
