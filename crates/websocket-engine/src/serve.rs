//! The part of a handshake every protocol shares: the plugin and origin
//! checks, `on_connect`, the switch to the WebSocket connection, the session
//! and `on_disconnect`.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use httpd::log::{APLOG_DEBUG, APLOG_ERR, APLOG_INFO, APLOG_WARNING};
use httpd::request::headers_out;
use httpd::sys;
use websocket_proto::origin::same_origin;

use crate::config::{DirConfig, OriginCheck};
use crate::connection::{protocol_list, Compression, Connection, Framing};
use crate::rlog;
use crate::session::{self, SessionParams, WireProtocol};

/// WebSocket connections this module is serving in this process.
static OPEN_CONNECTIONS: AtomicU32 = AtomicU32::new(0);

/// One counted connection; the count drops when it does.
struct ConnectionSlot;

impl ConnectionSlot {
    /// A slot, unless `limit` connections are already open.
    fn take(limit: Option<u32>) -> Option<ConnectionSlot> {
        let previous = OPEN_CONNECTIONS.fetch_add(1, Ordering::AcqRel);
        if limit.is_some_and(|max| previous >= max) {
            OPEN_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// At most one refused-origin warning per this long in a child process;
/// the others are logged at `info`, so a hostile page cannot flood the log.
const ORIGIN_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// When the last refused-origin warning was logged in this process.
static LAST_ORIGIN_WARNING: Mutex<Option<Instant>> = Mutex::new(None);
/// Refusals logged at `info` since then.
static ORIGIN_REFUSALS_SINCE_WARNING: AtomicU64 = AtomicU64::new(0);

/// Whether this refusal gets the warning; if so, how many were only logged
/// at `info` since the last one.
fn origin_warning_due(now: Instant) -> Option<u64> {
    let mut last = LAST_ORIGIN_WARNING.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_some_and(|t| now.duration_since(t) < ORIGIN_WARNING_INTERVAL) {
        ORIGIN_REFUSALS_SINCE_WARNING.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    *last = Some(now);
    Some(ORIGIN_REFUSALS_SINCE_WARNING.swap(0, Ordering::Relaxed))
}

/// The origins a location accepts, for the refusal's log line.
///
/// # Safety
/// `r` is a live request.
unsafe fn expected_origins(r: *const sys::request_rec, conf: &DirConfig) -> String {
    match conf.origin_check() {
        OriginCheck::Off => "any".to_owned(),
        OriginCheck::Trusted => match &conf.trusted_origins {
            Some(list) if !list.is_empty() => {
                let all: Vec<String> = list.iter().map(|o| o.to_string()).collect();
                format!("one of {} (WebSocketTrustedOrigin)", all.join(", "))
            }
            _ => "none: no WebSocketTrustedOrigin is configured here".to_owned(),
        },
        OriginCheck::Same => {
            // SAFETY: live request.
            let (scheme, host) = unsafe {
                (
                    httpd::request::scheme(r),
                    httpd::request::headers_in(r).get("Host").unwrap_or("?"),
                )
            };
            format!("{scheme}://{host}, this request's own (WebSocketOriginCheck Same)")
        }
    }
}

/// "1.234 s" for the log.
fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A validated handshake, ready to be answered.
pub struct Endpoint<'a> {
    pub r: *mut sys::request_rec,
    pub module_index: c_int,
    pub conf: &'a DirConfig,
    /// The handshake's origin (`Origin`, or `Sec-WebSocket-Origin` for
    /// versions 7 and 8), if any.
    pub origin: Option<&'a str>,
    /// Subprotocols the client offered, in order.
    pub protocols: &'a [String],
    /// The protocol's own response headers (accept key, location, ...).
    pub response_headers: Vec<(&'static str, String)>,
    /// The name of the subprotocol header the plugin's choice goes into.
    pub protocol_header: &'static str,
    /// The subprotocol the response names unless the plugin picks one. RFC
    /// 6455 leaves the choice to the application (`None`); draft-75/76
    /// servers confirm the one protocol the client asked for.
    pub default_protocol: Option<&'a str>,
    /// Status line to answer with; `None` for the standard one.
    pub status_line: Option<&'static CStr>,
    /// Bytes to send right after the response headers (draft-76's digest).
    pub answer_body: Vec<u8>,
    pub framing: Framing,
    /// permessage-deflate for outgoing messages, if negotiated.
    pub compression: Option<Compression>,
    /// For the log: which protocol this is.
    pub description: String,
}

/// Is the handshake's origin acceptable under the location's policy?
///
/// # Safety
/// `r` is a live request.
pub unsafe fn origin_allowed(r: *const sys::request_rec, conf: &DirConfig, origin: Option<&str>) -> bool {
    let Some(origin) = origin else {
        // Non-browser clients send no Origin; the policy is about browsers.
        return true;
    };
    match conf.origin_check() {
        OriginCheck::Off => true,
        OriginCheck::Trusted => conf
            .trusted_origins
            .as_ref()
            .is_some_and(|l| l.matches_header(origin)),
        OriginCheck::Same => {
            // SAFETY: live request.
            let (scheme, port, host) = unsafe {
                (
                    httpd::request::scheme(r),
                    httpd::request::default_port(r),
                    httpd::request::headers_in(r).get("Host"),
                )
            };
            host.is_some_and(|host| same_origin(origin, scheme, host, port))
        }
    }
}

/// Answers the handshake and runs the connection; returns the handler's status.
///
/// # Safety
/// `ep.r` is the live request being handled on this thread.
pub unsafe fn serve(ep: Endpoint<'_>, protocol: &mut dyn WireProtocol) -> c_int {
    let r = ep.r;
    let mi = ep.module_index;
    // SAFETY: live request.
    let req = unsafe { &mut *r };
    // SAFETY: the URI is a pool string.
    let uri = unsafe { httpd::cstr(req.uri) }.unwrap_or("?");
    let Some(plugin) = ep.conf.plugin.clone() else {
        rlog!(
            r,
            mi,
            APLOG_ERR,
            "SetHandler websocket-handler for {uri} but no WebSocketHandler is configured there"
        );
        return sys::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    // SAFETY: live request.
    if !unsafe { origin_allowed(r, ep.conf, ep.origin) } {
        let (level, more) = match origin_warning_due(Instant::now()) {
            Some(0) => (APLOG_WARNING, String::new()),
            Some(n) => (
                APLOG_WARNING,
                format!(" ({n} more refused since the last warning)"),
            ),
            None => (APLOG_INFO, String::new()),
        };
        // SAFETY: live request.
        let expected = unsafe { expected_origins(r, ep.conf) };
        rlog!(
            r,
            mi,
            level,
            "refusing WebSocket handshake for {uri} with 403: origin \"{}\" is not allowed; \
             expected {expected}{more}",
            ep.origin.unwrap_or("").escape_debug(),
        );
        return sys::HTTP_FORBIDDEN as c_int;
    }

    let Some(_slot) = ConnectionSlot::take(ep.conf.max_connections()) else {
        rlog!(
            r,
            mi,
            APLOG_WARNING,
            "refusing WebSocket connection: WebSocketMaxConnections ({}) reached in this process",
            ep.conf.max_connections().unwrap_or(0)
        );
        return sys::HTTP_SERVICE_UNAVAILABLE as c_int;
    };

    // SAFETY: live request.
    let out = unsafe { headers_out(r) };
    for (name, value) in &ep.response_headers {
        out.set(name, value);
    }
    if let Some(default) = ep.default_protocol {
        out.set(ep.protocol_header, default);
    }
    // SAFETY: the live request, handled on this thread.
    let conn = unsafe { Connection::new(r, protocol_list(ep.protocols), ep.framing, ep.compression) };
    // Before anything the plugin sends from on_connect on.
    conn.state.outbox.push_raw(&ep.answer_body);
    // SAFETY: the server struct is live until after on_disconnect.
    let plugin_private = match unsafe { plugin.plugin.on_connect(conn.server_ptr()) } {
        Ok(p) => p,
        Err(_) => {
            conn.state.outbox.close();
            rlog!(
                r,
                mi,
                APLOG_INFO,
                "plugin {} refused the connection",
                plugin.library
            );
            out.unset(ep.protocol_header);
            return sys::HTTP_FORBIDDEN as c_int;
        }
    };
    conn.state.handshake_open.store(false, Ordering::Release);
    if ep.protocol_header != "Sec-WebSocket-Protocol" {
        // The ABI's protocol_set writes the RFC header; legacy clients read their own.
        if let Some(chosen) = out.get("Sec-WebSocket-Protocol") {
            let chosen = chosen.to_owned();
            out.unset("Sec-WebSocket-Protocol");
            out.set(ep.protocol_header, &chosen);
        }
    }

    // SAFETY: we own the request and its connection on this thread.
    unsafe {
        let c = req.connection;
        // mod_reqtimeout would cut idle connections after its body timeout.
        httpd::request::remove_connection_input_filter(c, c"reqtimeout");
        (*c).keepalive = sys::AP_CONN_CLOSE;
        req.status = sys::HTTP_SWITCHING_PROTOCOLS as c_int;
        req.status_line = ep.status_line.map_or(std::ptr::null(), CStr::as_ptr);
        sys::ap_send_interim_response(r, 1);
        // From here on the connection speaks WebSocket: bypass the HTTP
        // filters so nothing HTTP-shaped is written after the answer (the
        // request's end-of-stream goes straight to the connection).
        req.output_filters = (*c).output_filters;
        req.proto_output_filters = (*c).output_filters;
        req.input_filters = (*c).input_filters;
        req.proto_input_filters = (*c).input_filters;
    }
    rlog!(
        r,
        mi,
        APLOG_DEBUG,
        "{} open for {uri} (plugin {} {})",
        ep.description,
        plugin.library,
        plugin.init
    );

    let preamble = ep.answer_body.len();
    // SAFETY: the answer has been sent on this thread, which owns the request.
    let summary = unsafe {
        let summary = session::run(
            SessionParams {
                r,
                module_index: mi,
                conn: &conn,
                plugin: &plugin.plugin,
                plugin_private,
                idle_timeout: ep.conf.idle_timeout(),
                ping_interval: ep.conf.ping_interval(),
                can_ping: ep.framing == Framing::Rfc6455,
            },
            protocol,
        );
        plugin.plugin.on_disconnect(plugin_private, conn.server_ptr());
        summary
    };
    rlog!(
        r,
        mi,
        APLOG_DEBUG,
        "{} for {uri} closed after {}: {}; received {} messages ({} bytes), sent {} messages ({} bytes)",
        ep.description,
        seconds(summary.duration),
        summary.ending,
        summary.messages_in,
        summary.bytes_in,
        summary.messages_out,
        summary.bytes_out.saturating_sub(preamble as u64),
    );
    sys::OK as c_int
}

/// A request's headers as the handshake validators read them.
pub struct RequestHeaders<'a>(pub httpd::table::Table<'a>);

impl websocket_proto::handshake::HeaderSource for RequestHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }
}

/// The start every WebSocket handler shares: only `websocket-handler`
/// requests, and a panic answers 500 instead of unwinding into Apache.
/// `handle` gets the request and its headers.
///
/// # Safety
/// `r` is the live request Apache passed to the handler hook.
pub unsafe fn guarded_handler(
    r: *mut sys::request_rec,
    module_index: c_int,
    handle: impl FnOnce(&RequestHeaders<'_>) -> c_int,
) -> c_int {
    let run = std::panic::AssertUnwindSafe(|| {
        // SAFETY: live request; the handler name is a pool string or NULL.
        if unsafe { httpd::cstr((*r).handler) } != Some("websocket-handler") {
            return sys::DECLINED as c_int;
        }
        // SAFETY: live request.
        handle(&RequestHeaders(unsafe { httpd::request::headers_in(r) }))
    });
    match std::panic::catch_unwind(run) {
        Ok(status) => status,
        Err(_) => {
            rlog!(
                r,
                module_index,
                APLOG_ERR,
                "internal error (panic) while handling a WebSocket request"
            );
            sys::HTTP_INTERNAL_SERVER_ERROR as c_int
        }
    }
}
