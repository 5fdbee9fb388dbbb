//! The connection after the 101: one owner thread reads, decodes, calls the
//! plugin and writes, as DESIGN.md §3 lays out.
//!
//! Reads are nonblocking and large; everything decodable in a read is
//! handled before the replies are written with a single flush. When there is
//! nothing to read and nothing to write, the thread sleeps in a pollset on
//! the connection plus a wakeup that other threads' sends trigger.

use std::os::raw::c_void;
use std::time::{Duration, Instant};

use httpd::brigade::{Brigade, ReadOutcome};
use httpd::log::{APLOG_DEBUG, APLOG_INFO};
use httpd::sys;
use websocket_plugin::ffi::{MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};
use websocket_plugin::LoadedPlugin;
use websocket_proto::close::{CloseCode, ClosePayload};
use websocket_proto::decoder::{Decoder, DecoderConfig, Event, MessageKind};
use websocket_proto::{Opcode, ProtocolVersion};

use crate::rlog;
use crate::server::Connection;

/// How much one nonblocking read may bring in.
const READ_SIZE: usize = 64 * 1024;

/// How long to wait for the peer's close frame after we sent ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing {
        deadline: Instant,
    },
    /// We sent a close frame after a protocol error: stop reading.
    Failed,
    /// The closing handshake is complete (or the peer vanished).
    Done,
}

pub(crate) struct SessionParams<'a> {
    pub r: *mut sys::request_rec,
    pub conn: &'a Connection,
    pub plugin: &'a LoadedPlugin,
    pub plugin_private: *mut c_void,
    pub version: ProtocolVersion,
    pub max_message_size: u64,
}

/// Runs the connection until it closes.
///
/// # Safety
/// `params.r` is the live request whose 101 was just sent, on the thread
/// that handles it.
pub(crate) unsafe fn run(params: SessionParams<'_>) {
    let r = params.r;
    // SAFETY: live request and connection (contract).
    let c = unsafe { (*r).connection };
    let mut pool: *mut sys::apr_pool_t = std::ptr::null_mut();
    // SAFETY: a subpool of the request pool, destroyed below, so that the
    // pollset and brigades do not outlive the session.
    unsafe { sys::apr_pool_create_ex(&mut pool, (*r).pool, None, std::ptr::null_mut()) };
    // SAFETY: live pool and connection allocator, used only on this thread.
    let (bb_in, bb_out) = unsafe {
        (
            Brigade::new(pool, (*c).bucket_alloc),
            Brigade::new(pool, (*c).bucket_alloc),
        )
    };
    // SAFETY: live connection and pool.
    let pollset = unsafe { create_pollset(c, pool) };
    if pollset.is_null() {
        rlog!(r, sys::APLOG_ERR, "cannot poll this connection; closing it");
    }
    params.conn.state.outbox.set_waker(pollset);

    let mut session = Session {
        r,
        c,
        conn: params.conn,
        plugin: params.plugin,
        plugin_private: params.plugin_private,
        version: params.version,
        phase: Phase::Open,
    };
    let mut decoder = Decoder::new(DecoderConfig {
        max_message_size: params.max_message_size,
        version: params.version,
        ..DecoderConfig::default()
    });
    let mut input: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut output: Vec<u8> = Vec::new();

    if pollset.is_null() {
        session.fail(CloseCode::INTERNAL_ERROR, "no pollset");
    }
    loop {
        let mut progressed = false;
        if session.phase != Phase::Failed {
            input.clear();
            // SAFETY: this thread owns the connection's filters.
            match unsafe { bb_in.read_nonblocking((*c).input_filters, READ_SIZE, &mut input) } {
                ReadOutcome::Data(_) => {
                    progressed = true;
                    session.consume(&mut decoder, &mut input);
                }
                ReadOutcome::WouldBlock => {}
                ReadOutcome::Closed(rv) => {
                    rlog!(r, APLOG_DEBUG, "peer closed the connection (status {rv})");
                    session.phase = Phase::Done;
                }
            }
        }
        output.clear();
        let close_queued = params.conn.state.outbox.take(&mut output);
        if !output.is_empty() {
            // SAFETY: this thread owns the connection's output filters.
            if let Err(rv) = unsafe { bb_out.write_and_flush((*c).output_filters, &output) } {
                rlog!(
                    r,
                    APLOG_DEBUG,
                    "write failed (status {rv}); dropping the connection"
                );
                break;
            }
            progressed = true;
        }
        if close_queued && session.phase == Phase::Open {
            session.phase = Phase::Closing {
                deadline: Instant::now() + CLOSE_TIMEOUT,
            };
        }
        let timeout = match session.phase {
            Phase::Done | Phase::Failed => break,
            Phase::Closing { deadline } => {
                let now = Instant::now();
                if now >= deadline {
                    rlog!(r, APLOG_DEBUG, "no close frame from the peer in time");
                    break;
                }
                (deadline - now).as_micros() as sys::apr_interval_time_t
            }
            Phase::Open => -1,
        };
        if progressed {
            continue;
        }
        let mut n: sys::apr_int32_t = 0;
        let mut descs: *const sys::apr_pollfd_t = std::ptr::null();
        // SAFETY: live pollset owned by this thread; EINTR (wakeup) and
        // TIMEUP just lead to another round.
        unsafe { sys::apr_pollset_poll(pollset, timeout, &mut n, &mut descs) };
    }

    params.conn.state.outbox.close();
    drop(bb_in);
    drop(bb_out);
    // SAFETY: the pollset was unregistered from the outbox (close) and the
    // brigades are gone; destroying the subpool frees the rest.
    unsafe {
        if !pollset.is_null() {
            sys::apr_pollset_destroy(pollset);
        }
        sys::apr_pool_destroy(pool);
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

struct Session<'a> {
    r: *mut sys::request_rec,
    #[allow(dead_code)]
    c: *mut sys::conn_rec,
    conn: &'a Connection,
    plugin: &'a LoadedPlugin,
    plugin_private: *mut c_void,
    version: ProtocolVersion,
    phase: Phase,
}

impl Session<'_> {
    /// Decodes and handles everything in `input`.
    fn consume(&mut self, decoder: &mut Decoder, input: &mut [u8]) {
        let mut pos = 0;
        while pos < input.len() && !matches!(self.phase, Phase::Done | Phase::Failed) {
            match decoder.decode(&mut input[pos..]) {
                Ok((used, event)) => {
                    pos += used;
                    match event {
                        Some(event) => self.handle(event),
                        None => break,
                    }
                }
                Err(e) => {
                    let code = e.close_code(self.version);
                    rlog!(self.r, APLOG_INFO, "closing with {code}: {e}");
                    self.fail(code, "");
                }
            }
        }
    }

    fn handle(&mut self, event: Event<'_>) {
        let outbox = &self.conn.state.outbox;
        match event {
            Event::Message { kind, data, .. } => {
                if self.phase != Phase::Open {
                    return;
                }
                let t = match kind {
                    MessageKind::Text => MESSAGE_TYPE_TEXT,
                    MessageKind::Binary => MESSAGE_TYPE_BINARY,
                };
                // SAFETY: the plugin's private pointer and our server struct
                // are live for the whole session.
                unsafe {
                    self.plugin
                        .on_message(self.plugin_private, self.conn.server_ptr(), t, data)
                };
            }
            Event::Ping(payload) => {
                if self.phase == Phase::Open {
                    outbox.push(true, Opcode::Pong, payload);
                }
            }
            Event::Pong(_) => {}
            Event::Close(frame) => {
                if self.phase == Phase::Open {
                    outbox.push(true, Opcode::Close, ClosePayload::reply_to(&frame).as_bytes());
                }
                rlog!(
                    self.r,
                    APLOG_DEBUG,
                    "close from peer: code {:?} reason {:?}",
                    frame.code.map(|c| c.0),
                    frame.reason
                );
                self.phase = Phase::Done;
            }
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): our close frame, then no more reading.
    fn fail(&mut self, code: CloseCode, reason: &str) {
        self.conn
            .state
            .outbox
            .push(true, Opcode::Close, ClosePayload::new(code, reason).as_bytes());
        self.phase = Phase::Failed;
    }
}
