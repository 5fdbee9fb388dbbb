//! The `websocket-handler` content handler for RFC 6455 handshakes.

use std::os::raw::c_int;

use httpd::log::{APLOG_DEBUG, APLOG_INFO};
use httpd::request::err_headers_out;
use httpd::sys;
use websocket_engine::connection::{Compression, Framing};
use websocket_engine::rlog;
use websocket_engine::serve::{guarded_handler, serve, Endpoint, RequestHeaders};
use websocket_proto::deflate::negotiate;
use websocket_proto::handshake::{classify, Handshake, HandshakeRequest, RequestKind};

use crate::rfc6455::Rfc6455;
use crate::{module_index, module_ptr};

pub(crate) unsafe extern "C" fn handler(r: *mut sys::request_rec) -> c_int {
    // SAFETY: Apache calls the handler with a live request.
    unsafe { guarded_handler(r, module_index(), |headers| handle(r, headers)) }
}

/// # Safety
/// `r` is the live request being handled on this thread.
unsafe fn handle(r: *mut sys::request_rec, headers: &RequestHeaders<'_>) -> c_int {
    // SAFETY: live request for the whole call.
    let req = unsafe { &*r };
    // SAFETY: the method and URI are pool strings.
    let (method, uri) = unsafe {
        (
            httpd::cstr(req.method).unwrap_or(""),
            httpd::cstr(req.uri).unwrap_or("?"),
        )
    };
    match classify(headers) {
        RequestKind::Rfc6455 => {}
        RequestKind::Legacy => {
            // draft-75/76 requests belong to mod_websocket_draft76.
            if !httpd::server::module_loaded(c"mod_websocket_draft76.c") {
                rlog!(
                    r,
                    module_index(),
                    APLOG_DEBUG,
                    "declining a draft-75/76 handshake for {uri}: mod_websocket_draft76 is not loaded"
                );
            }
            return sys::DECLINED as c_int;
        }
        RequestKind::NotWebSocket => {
            // SAFETY: live request.
            return unsafe { not_a_handshake(r, method, uri) };
        }
    }
    let hreq = HandshakeRequest {
        method,
        http_version: HandshakeRequest::version_from_proto_num(req.proto_num),
        headers,
    };
    let handshake = match Handshake::from_request(&hreq) {
        Ok(h) => h,
        Err(e) => {
            rlog!(
                r,
                module_index(),
                APLOG_INFO,
                "refusing WebSocket handshake ({}): {e}",
                e.http_status()
            );
            // SAFETY: live request.
            let err_out = unsafe { err_headers_out(r) };
            if let Some((name, value)) = e.response_header() {
                err_out.set(name, value);
            }
            if e.http_status() == 405 {
                // SAFETY: live request owned by this thread.
                unsafe { httpd::request::answer_allows_only_get(r) };
            }
            return c_int::from(e.http_status());
        }
    };
    // SAFETY: live request; our records are DirConfigs.
    let Some(conf) = (unsafe { websocket_engine::config::for_request(r, module_ptr()) }) else {
        return sys::DECLINED as c_int;
    };
    let deflate = match negotiate(&handshake.extensions, &conf.deflate()) {
        Ok(n) => n,
        Err(e) => {
            // Declining a bad offer is the RFC 7692 answer; the handshake goes on uncompressed.
            rlog!(
                r,
                module_index(),
                APLOG_DEBUG,
                "declining permessage-deflate offer: {e}"
            );
            None
        }
    };
    let extensions_header = deflate.as_ref().map(|n| n.response_header());
    let mut protocol = Rfc6455::new(handshake.version, conf, deflate.as_ref());
    let endpoint = Endpoint {
        r,
        module_index: module_index(),
        conf,
        origin: handshake.origin.as_deref(),
        protocols: &handshake.protocols,
        response_headers: handshake.response_headers(None, extensions_header.as_deref()),
        protocol_header: "Sec-WebSocket-Protocol",
        // Only the plugin chooses (RFC 6455 §4.2.2: one of those offered, or none).
        default_protocol: None,
        status_line: None,
        answer_body: Vec::new(),
        framing: Framing::Rfc6455,
        compression: deflate.map(|negotiated| Compression {
            negotiated,
            level: conf.deflate().level,
            min_size: conf.compression_min_size(),
        }),
        description: format!("WebSocket version {}", handshake.version),
    };
    // SAFETY: live request handled on this thread.
    unsafe { serve(endpoint, &mut protocol) }
}

/// A request to a WebSocket location that asks for no WebSocket (a browser
/// opening the endpoint's URL, a health check): 426 with `Upgrade:
/// websocket` says what the endpoint wants, unless a file there answers
/// such requests as usual.
///
/// # Safety
/// `r` is the live request being handled on this thread.
unsafe fn not_a_handshake(r: *mut sys::request_rec, method: &str, uri: &str) -> c_int {
    // SAFETY: live request.
    let (upgrade, no_file) = unsafe {
        (
            httpd::request::headers_in(r).get("Upgrade").map(str::to_owned),
            (*r).finfo.filetype == sys::APR_NOFILE,
        )
    };
    let why = match &upgrade {
        None => "it has no Upgrade: websocket header".to_owned(),
        Some(other) => format!("it asks to upgrade to \"{}\"", other.escape_debug()),
    };
    if matches!(method, "GET" | "HEAD") && no_file {
        rlog!(
            r,
            module_index(),
            APLOG_DEBUG,
            "answering {method} {uri} with 426: not a WebSocket handshake ({why})"
        );
        // SAFETY: live request.
        let out = unsafe { err_headers_out(r) };
        out.set("Upgrade", "websocket");
        out.set("Connection", "Upgrade");
        return sys::HTTP_UPGRADE_REQUIRED;
    }
    rlog!(
        r,
        module_index(),
        APLOG_DEBUG,
        "declining {method} {uri}: not a WebSocket handshake ({why}); Apache answers it as usual"
    );
    sys::DECLINED as c_int
}
