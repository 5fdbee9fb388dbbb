//! The `websocket-handler` content handler for RFC 6455 handshakes.

use std::os::raw::c_int;

use httpd::conn::Request;
use httpd::log::{APLOG_DEBUG, APLOG_INFO};
use httpd::sys;
use websocket_engine::metrics::Refusal;
use websocket_engine::rlog;
use websocket_engine::serve::{count_refusal, serve, Endpoint, RequestHeaders};
use websocket_proto::connection::{Compression, Family};
use websocket_proto::deflate::negotiate;
use websocket_proto::handshake::{classify, Handshake, HandshakeRequest, RequestKind};

use crate::{dir_config, module_index};

/// Answers a `websocket-handler` request that may be an RFC 6455 handshake.
pub(crate) fn handle(r: Request<'_>, headers: &RequestHeaders<'_>) -> c_int {
    let (method, uri) = (r.method(), r.uri());
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
            return not_a_handshake(r, method, uri);
        }
    }
    let hreq = HandshakeRequest {
        method,
        http_version: HandshakeRequest::version_from_proto_num(r.proto_num()),
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
            let err_out = r.err_headers_out();
            if let Some((name, value)) = e.response_header() {
                err_out.set(name, value);
            }
            if e.http_status() == 405 {
                r.answer_allows_only_get();
            }
            // Only a version we do not speak comes with its header.
            let why = if e
                .response_header()
                .is_some_and(|(name, _)| name == "Sec-WebSocket-Version")
            {
                Refusal::UnsupportedVersion
            } else {
                Refusal::BadRequest
            };
            count_refusal(dir_config(r), why);
            return c_int::from(e.http_status());
        }
    };
    let Some(conf) = dir_config(r) else {
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
    let family = Family::Rfc6455 {
        version: handshake.version,
        deflate: deflate.clone(),
    };
    let endpoint = Endpoint {
        request: r,
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
        family,
        compression: deflate.map(|negotiated| Compression {
            negotiated,
            level: conf.deflate().level,
            min_size: conf.compression_min_size(),
        }),
        description: format!("WebSocket version {}", handshake.version),
    };
    serve(endpoint)
}

/// A request to a WebSocket location that asks for no WebSocket (a browser
/// opening the endpoint's URL, a health check): 426 with `Upgrade:
/// websocket` says what the endpoint wants, unless a file there answers
/// such requests as usual.
fn not_a_handshake(r: Request<'_>, method: &str, uri: &str) -> c_int {
    let (upgrade, no_file) = (r.headers_in().get("Upgrade"), r.maps_to_no_file());
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
        let out = r.err_headers_out();
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
