//! The part of a handshake every protocol shares: the plugin and origin
//! checks, `on_connect`, the switch to the WebSocket connection, the session
//! and `on_disconnect`.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use httpd::conn::Request;
use httpd::log::{APLOG_DEBUG, APLOG_ERR, APLOG_INFO, APLOG_TRACE1, APLOG_WARNING};
use httpd::poll::Pollset;
use httpd::sys;
use websocket_proto::close::CloseCode;
use websocket_proto::connection::{Compression, Ending, Family, Limits};
use websocket_proto::origin::same_origin;

use crate::config::{DirConfig, OriginCheck};
use crate::connection::{protocol_list, Connection, PluginApp};
use crate::driver::{run_on_thread, ApacheTransport, Reporter};
use crate::log::RequestLog;
use crate::metrics::{ClosedBy, Counter, Location, Refusal};
use crate::rlog;
use crate::session::Session;
use httpd::clock::Moment;

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
fn expected_origins(r: Request<'_>, conf: &DirConfig) -> String {
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
            let (scheme, host) = (r.scheme(), r.headers_in().get("Host").unwrap_or("?"));
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
    pub request: Request<'a>,
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
    /// The wire format (and permessage-deflate for incoming messages).
    pub family: Family,
    /// permessage-deflate for outgoing messages, if negotiated.
    pub compression: Option<Compression>,
    /// For the log: which protocol this is.
    pub description: String,
}

/// Whether this module answers `websocket-metrics` and mod_status: the RFC
/// 6455 module, or the draft76 one when it is loaded alone (both count into
/// the same shared table).
pub fn serves_metrics(source_name: &CStr) -> bool {
    source_name == c"mod_websocket.c" || !httpd::server::module_loaded(c"mod_websocket.c")
}

/// mod_status's page: our section (registered by the module that
/// [`serves_metrics`]).
pub fn register_hooks(hooks: &httpd::module::Hooks<'_>, source_name: &CStr) {
    httpd::request::register_allow_get(hooks);
    httpd::child::at_exit(hooks, || {
        crate::parked::stop();
        crate::channels::stop();
    });
    let filter = if source_name == c"mod_websocket.c" {
        c"WEBSOCKET_PARK"
    } else {
        c"WEBSOCKET_DRAFT76_PARK"
    };
    httpd::park::register(hooks, filter);
    httpd::child::on_stopping(hooks, crate::driver::child_stopping);
    if source_name == c"mod_websocket.c" {
        httpd::status::register(crate::metrics::status_page);
    }
}

/// Counts a refused handshake for the location's plugin (nothing without one).
pub fn count_refusal(conf: Option<&DirConfig>, why: Refusal) {
    if let Some(plugin) = conf.and_then(|c| c.plugin.as_ref()) {
        Location::at(&plugin.location).refused(why);
    }
}

/// Is the handshake's origin acceptable under the location's policy?
pub fn origin_allowed(r: Request<'_>, conf: &DirConfig, origin: Option<&str>) -> bool {
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
            let (scheme, port, host) = (r.scheme(), r.default_port(), r.headers_in().get("Host"));
            host.is_some_and(|host| same_origin(origin, scheme, host, port))
        }
    }
}

/// Answers the handshake and runs the connection; returns the handler's status.
pub fn serve(ep: Endpoint<'_>) -> c_int {
    let r = ep.request;
    let mi = ep.module_index;
    let uri = r.uri();
    let Some(plugin) = ep.conf.plugin.clone() else {
        rlog!(
            r,
            mi,
            APLOG_ERR,
            "SetHandler websocket-handler for {uri} but no WebSocketHandler is configured there"
        );
        return sys::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    let counters = Location::at(&plugin.location);
    if !origin_allowed(r, ep.conf, ep.origin) {
        counters.refused(Refusal::Origin);
        let (level, more) = match origin_warning_due(Instant::now()) {
            Some(0) => (APLOG_WARNING, String::new()),
            Some(n) => (
                APLOG_WARNING,
                format!(" ({n} more refused since the last warning)"),
            ),
            None => (APLOG_INFO, String::new()),
        };
        let expected = expected_origins(r, ep.conf);
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

    let Some(place) = ConnectionSlot::take(ep.conf.max_connections()) else {
        counters.refused(Refusal::ConnectionLimit);
        rlog!(
            r,
            mi,
            APLOG_WARNING,
            "refusing WebSocket connection: WebSocketMaxConnections ({}) reached in this process",
            ep.conf.max_connections().unwrap_or(0)
        );
        return sys::HTTP_SERVICE_UNAVAILABLE as c_int;
    };

    let out = r.headers_out();
    for (name, value) in &ep.response_headers {
        out.set(name, value);
    }
    if let Some(default) = ep.default_protocol {
        out.set(ep.protocol_header, default);
    }
    let compressed = ep.compression.is_some();
    let c = r.connection();
    let parking = ep.conf.park_idle() && !c.is_secondary() && httpd::park::supported();
    let conn = Connection::new(Some(r), protocol_list(ep.protocols), &ep.family, ep.compression);
    // Before anything the plugin sends from on_connect on.
    conn.state.outbox.push_raw(&ep.answer_body);
    let app = match PluginApp::connect(plugin.clone(), conn) {
        Ok(app) => app,
        Err(_refused) => {
            counters.refused(Refusal::PluginRefused);
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
    crate::session::Application::state(&app)
        .handshake_open
        .store(false, Ordering::Release);
    if ep.protocol_header != "Sec-WebSocket-Protocol" {
        // The ABI's protocol_set writes the RFC header; legacy clients read their own.
        if let Some(chosen) = out.get("Sec-WebSocket-Protocol") {
            let chosen = chosen.to_owned();
            out.unset("Sec-WebSocket-Protocol");
            out.set(ep.protocol_header, &chosen);
        }
    }

    r.switch_protocols(ep.status_line);
    let client = r.client();
    let open_as = [
        Some(Counter::Open),
        client.is_tls.then_some(Counter::OpenTls),
        (client.proto_num >= 2000).then_some(Counter::OpenHttp2),
    ];
    counters.add(Counter::Accepted, 1);
    open_as.iter().flatten().for_each(|&c| counters.add(c, 1));
    let transport = match (client.proto_num >= 2000, client.is_tls) {
        (true, true) => "an HTTP/2 stream (h2, TLS)",
        (true, false) => "an HTTP/2 stream (h2c)",
        (false, true) => "HTTP/1.1 with TLS",
        (false, false) => "HTTP/1.1",
    };
    rlog!(
        r,
        mi,
        APLOG_DEBUG,
        "{} open for {uri} over {transport}, {} driver (plugin {} {})",
        ep.description,
        if parking { "parked" } else { "thread" },
        plugin.library,
        plugin.init
    );

    let limits = Limits {
        max_message_size: ep.conf.max_message_size(),
        allow_reserved_close_codes: ep.conf.allow_reserved_close_codes(),
        idle_timeout: ep.conf.idle_timeout(),
        // The event MPM closes a parked connection that stays silent for
        // the server's Timeout: unless the location says otherwise, a
        // ping at half of it has the client's pong wake it first.
        ping_interval: ep
            .conf
            .ping_interval()
            .or_else(|| parking.then(|| (r.server_timeout() / 2).max(Duration::from_secs(1)))),
        ..Limits::default()
    };
    let protocol = websocket_proto::connection::Connection::new(&ep.family, limits, Moment::now().time());
    let finish = Finish {
        counters,
        open_as,
        description: ep.description.clone(),
        uri: uri.to_owned(),
        preamble: ep.answer_body.len() as u64,
        _slot: place,
    };
    if parking {
        crate::parked::start(r, mi, protocol, app, Reporter::new(counters, compressed), finish);
        return sys::OK as c_int;
    }
    let transport = ApacheTransport {
        io: httpd::io::ConnIo::new(c, c.pool()),
    };
    let log = RequestLog {
        request: r,
        module_index: mi,
    };
    // The session lives in the connection's pool. It is taken out and
    // dropped when the handler leaves, also by unwinding: `end` runs
    // on_disconnect while the request is alive, exactly once.
    let slot = c.pool().attach(None);
    let session = slot.insert(Session::new(protocol, app, transport, log));
    session.set_write_timeout(r.server_timeout());
    rlog!(
        r,
        mi,
        APLOG_TRACE1,
        "session starts; {}",
        session.transport().io.describe()
    );
    let held = Held { slot };
    let session = held.slot.as_mut().expect("just inserted");
    // The thread driver's pollset lives in a pool of its own, freed when it
    // stops; the session's own memory stays with the connection.
    let driver_pool = c.pool().child();
    let mut reporter = Reporter::new(counters, compressed);
    match Pollset::for_connection(c, driver_pool.get()) {
        Ok(mut pollset) => {
            session.set_waker(Some(pollset.waker()));
            run_on_thread(session, &mut pollset, &mut reporter, c.is_secondary());
        }
        Err(_) => {
            rlog!(r, mi, APLOG_ERR, "cannot poll this connection; closing it");
            let now = Moment::now().time();
            session.fail(CloseCode::INTERNAL_ERROR, "the connection cannot be polled", now);
            session.step(now);
        }
    }
    let summary = session.end();
    reporter.report(session.tally());
    drop(held);
    finish.done(r, mi, &summary);
    sys::OK as c_int
}

/// What is left to do when a connection ends: its counters and the line
/// that logs it; holds its place under `WebSocketMaxConnections`.
pub(crate) struct Finish {
    counters: Location,
    open_as: [Option<Counter>; 3],
    description: String,
    uri: String,
    /// Bytes of the handshake answer written with the messages.
    preamble: u64,
    _slot: ConnectionSlot,
}

impl Finish {
    /// Counts the end of the session and logs it for request `r` (the
    /// handshake, or the connection's copy of it).
    pub(crate) fn done(self, r: Request<'_>, mi: c_int, summary: &crate::session::Summary) {
        let counters = self.counters;
        self.open_as.iter().flatten().for_each(|&c| counters.sub(c, 1));
        let (by, code) = match &summary.ending {
            Ending::ClientClosed(code) => (ClosedBy::Client, *code),
            Ending::ServerClosed { code, .. } => (ClosedBy::Server, *code),
            Ending::Dropped(_) => (ClosedBy::Dropped, None),
        };
        counters.closed(by, code);
        log_notes(r, summary, by, code, self.preamble);
        rlog!(
            r,
            mi,
            APLOG_DEBUG,
            "{} for {} closed after {}: {}; received {} messages ({} bytes), sent {} messages ({} bytes)",
            self.description,
            self.uri,
            seconds(summary.duration),
            summary.ending,
            summary.messages_in,
            summary.bytes_in,
            summary.messages_out,
            summary.bytes_out.saturating_sub(self.preamble),
        );
    }
}

/// The request notes a `LogFormat` can log for a WebSocket, once it ended.
fn log_notes(
    r: Request<'_>,
    summary: &crate::session::Summary,
    by: ClosedBy,
    code: Option<u16>,
    preamble: u64,
) {
    let notes = r.notes();
    notes.set(
        "websocket-duration",
        &format!("{:.3}", summary.duration.as_secs_f64()),
    );
    notes.set("websocket-messages-in", &summary.messages_in.to_string());
    notes.set("websocket-messages-out", &summary.messages_out.to_string());
    notes.set("websocket-bytes-in", &summary.bytes_in.to_string());
    notes.set(
        "websocket-bytes-out",
        &summary.bytes_out.saturating_sub(preamble).to_string(),
    );
    // As the client's API would report it: 1005 for a close without a
    // code, 1006 for no closing handshake at all.
    let code = match (by, code) {
        (ClosedBy::Dropped, _) => 1006,
        (_, None) => 1005,
        (_, Some(c)) => c,
    };
    notes.set("websocket-close-code", &code.to_string());
    notes.set(
        "websocket-closed-by",
        match by {
            ClosedBy::Client => "client",
            ClosedBy::Server => "server",
            ClosedBy::Dropped => "dropped",
        },
    );
}

type ApacheSession<'r> = Session<ApacheTransport<'r>, PluginApp, RequestLog<'r>>;

/// A session held in the connection's pool; dropping this ends and drops
/// it (also when the handler unwinds).
struct Held<'r> {
    slot: &'r mut Option<ApacheSession<'r>>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Session's drop ends it if nobody did.
        self.slot.take();
    }
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
pub fn guarded_handler(
    r: Request<'_>,
    module_index: c_int,
    source_name: &CStr,
    conf: Option<&DirConfig>,
    handle: impl FnOnce(Request<'_>, &RequestHeaders<'_>) -> c_int,
) -> c_int {
    let run = std::panic::AssertUnwindSafe(|| {
        if r.handler() == Some("websocket-metrics") && serves_metrics(source_name) {
            return crate::metrics::handler(r);
        }
        if r.handler() == Some("websocket-publish") && serves_metrics(source_name) {
            return crate::publish::handler(r, module_index, conf);
        }
        if r.handler() != Some("websocket-handler") {
            return sys::DECLINED as c_int;
        }
        handle(r, &RequestHeaders(r.headers_in()))
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
