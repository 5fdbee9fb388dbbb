//! The `websocket-handler` content handler: validates the opening handshake,
//! asks the plugin, answers 101 and runs the session.

use std::os::raw::c_int;
use std::panic::AssertUnwindSafe;

use httpd::log::{APLOG_DEBUG, APLOG_ERR, APLOG_INFO};
use httpd::request::{err_headers_out, headers_in, headers_out};
use httpd::sys;
use httpd::table::Table;
use websocket_proto::handshake::{classify, Handshake, HandshakeRequest, HeaderSource, RequestKind};
use websocket_proto::origin::same_origin;

use crate::config::{self, OriginCheck};
use crate::rlog;
use crate::server::{protocol_list, Connection};
use crate::session::{self, SessionParams};

struct Headers<'a>(Table<'a>);

impl HeaderSource for Headers<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }
}

pub(crate) unsafe extern "C" fn handler(r: *mut sys::request_rec) -> c_int {
    // A panic must not unwind into Apache; the request fails with a 500.
    // SAFETY: Apache calls the handler with a live request.
    match std::panic::catch_unwind(AssertUnwindSafe(|| unsafe { handle(r) })) {
        Ok(status) => status,
        Err(_) => {
            rlog!(
                r,
                APLOG_ERR,
                "internal error (panic) while handling a WebSocket request"
            );
            sys::HTTP_INTERNAL_SERVER_ERROR as c_int
        }
    }
}

unsafe fn handle(r: *mut sys::request_rec) -> c_int {
    // SAFETY: live request for the whole call.
    let req = unsafe { &mut *r };
    // SAFETY: the handler name is a pool string or NULL.
    if unsafe { httpd::cstr(req.handler) } != Some("websocket-handler") {
        return sys::DECLINED as c_int;
    }
    // SAFETY: live request.
    let headers = Headers(unsafe { headers_in(r) });
    match classify(&headers) {
        RequestKind::Rfc6455 => {}
        // draft-75/76 requests belong to mod_websocket_draft76 when it is loaded.
        RequestKind::Legacy | RequestKind::NotWebSocket => return sys::DECLINED as c_int,
    }
    // SAFETY: the method is a pool string.
    let method = unsafe { httpd::cstr(req.method) }.unwrap_or("");
    let hreq = HandshakeRequest {
        method,
        http_version: HandshakeRequest::version_from_proto_num(req.proto_num),
        headers: &headers,
    };
    let handshake = match Handshake::from_request(&hreq) {
        Ok(h) => h,
        Err(e) => {
            rlog!(
                r,
                APLOG_INFO,
                "refusing WebSocket handshake ({}): {e}",
                e.http_status()
            );
            if let Some((name, value)) = e.response_header() {
                // SAFETY: live request.
                unsafe { err_headers_out(r) }.set(name, value);
            }
            if e.http_status() == 405 {
                // SAFETY: live request.
                unsafe { err_headers_out(r) }.set("Allow", "GET");
            }
            return c_int::from(e.http_status());
        }
    };
    // SAFETY: live request.
    let Some(conf) = (unsafe { config::for_request(r) }) else {
        return sys::DECLINED as c_int;
    };
    let Some(plugin) = conf.plugin.clone() else {
        // SAFETY: the URI is a pool string.
        let uri = unsafe { httpd::cstr(req.uri) }.unwrap_or("?");
        rlog!(
            r,
            APLOG_ERR,
            "SetHandler websocket-handler for {uri} but no WebSocketHandler is configured there"
        );
        return sys::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    if let Some(origin) = handshake.origin.as_deref() {
        let allowed = match conf.origin_check() {
            OriginCheck::Off => true,
            OriginCheck::Trusted => conf
                .trusted_origins
                .as_ref()
                .is_some_and(|l| l.matches_header(origin)),
            OriginCheck::Same => {
                // SAFETY: live request.
                let (scheme, port) = unsafe { (httpd::request::scheme(r), httpd::request::default_port(r)) };
                headers
                    .get("Host")
                    .is_some_and(|host| same_origin(origin, scheme, host, port))
            }
        };
        if !allowed {
            rlog!(
                r,
                APLOG_INFO,
                "refusing WebSocket handshake: origin {origin:?} not allowed ({:?})",
                conf.origin_check()
            );
            return sys::HTTP_FORBIDDEN as c_int;
        }
    }

    // SAFETY: live request.
    let out = unsafe { headers_out(r) };
    for (name, value) in handshake.response_headers(None, None) {
        out.set(name, &value);
    }
    // As the C module did: offer the client's first choice unless the plugin
    // picks another in on_connect.
    if let Some(first) = handshake.protocols.first() {
        out.set("Sec-WebSocket-Protocol", first);
    }
    let conn = Connection::new(r, protocol_list(&handshake.protocols));
    // SAFETY: the server struct is live until after on_disconnect.
    let plugin_private = match unsafe { plugin.plugin.on_connect(conn.server_ptr()) } {
        Ok(p) => p,
        Err(_) => {
            conn.state.outbox.close();
            rlog!(r, APLOG_INFO, "plugin {} refused the connection", plugin.library);
            out.unset("Sec-WebSocket-Protocol");
            return sys::HTTP_FORBIDDEN as c_int;
        }
    };
    conn.state
        .handshake_open
        .store(false, std::sync::atomic::Ordering::Release);

    // SAFETY: we own the request and its connection on this thread.
    unsafe {
        let c = req.connection;
        // mod_reqtimeout would cut idle connections after its body timeout.
        httpd::request::remove_connection_input_filter(c, c"reqtimeout");
        (*c).keepalive = sys::AP_CONN_CLOSE;
        req.status = sys::HTTP_SWITCHING_PROTOCOLS as c_int;
        req.status_line = std::ptr::null();
        sys::ap_send_interim_response(r, 1);
        // From here on the connection speaks WebSocket: bypass the HTTP
        // filters so nothing HTTP-shaped is written after the 101 (the
        // request's end-of-stream goes straight to the connection).
        req.output_filters = (*c).output_filters;
        req.proto_output_filters = (*c).output_filters;
        req.input_filters = (*c).input_filters;
        req.proto_input_filters = (*c).input_filters;
    }
    rlog!(
        r,
        APLOG_DEBUG,
        "WebSocket version {} open (plugin {})",
        handshake.version,
        plugin.library
    );

    // SAFETY: the 101 has been sent on this thread, which owns the request.
    unsafe {
        session::run(SessionParams {
            r,
            conn: &conn,
            plugin: &plugin.plugin,
            plugin_private,
            version: handshake.version,
            max_message_size: conf.max_message_size(),
        });
        plugin.plugin.on_disconnect(plugin_private, conn.server_ptr());
    }
    rlog!(r, APLOG_DEBUG, "WebSocket closed");
    sys::OK as c_int
}
