//! The `websocket-handler` content handler for draft-75/76 handshakes.

use std::os::raw::c_int;

use httpd::brigade::{Brigade, ReadOutcome};
use httpd::log::APLOG_INFO;
use httpd::sys;
use websocket_engine::connection::Framing;
use websocket_engine::rlog;
use websocket_engine::serve::{guarded_handler, serve, Endpoint, RequestHeaders};
use websocket_proto::handshake::{classify, HandshakeRequest, RequestKind};
use websocket_proto::legacy::{Draft, LegacyRequest};

use crate::legacy::Legacy;
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
    if classify(headers) != RequestKind::Legacy {
        return sys::DECLINED as c_int;
    }
    // SAFETY: live request; our records are DirConfigs.
    let Some(conf) = (unsafe { websocket_engine::config::for_request(r, module_ptr()) }) else {
        return sys::DECLINED as c_int;
    };
    // SAFETY: the method is a pool string.
    let method = unsafe { httpd::cstr(req.method) }.unwrap_or("");
    let hreq = HandshakeRequest {
        method,
        http_version: HandshakeRequest::version_from_proto_num(req.proto_num),
        headers,
    };
    let legacy = match LegacyRequest::from_request(&hreq) {
        Ok(l) => l,
        Err(e) => {
            rlog!(
                r,
                module_index(),
                APLOG_INFO,
                "refusing legacy WebSocket handshake ({}): {e}",
                e.http_status()
            );
            return c_int::from(e.http_status());
        }
    };
    if legacy.draft == Draft::Draft75 && conf.support_draft75 != Some(true) {
        rlog!(
            r,
            module_index(),
            APLOG_INFO,
            "refusing draft-75 WebSocket handshake: SupportDraft75 is Off here"
        );
        return sys::HTTP_BAD_REQUEST as c_int;
    }
    let answer_body = match legacy.draft {
        Draft::Draft75 => Vec::new(),
        Draft::Draft76 => {
            // The 8 bytes after the headers are part of the handshake, not a
            // body: the client sends no Content-Length for them.
            // SAFETY: live request on its own thread.
            let Some(key3) = (unsafe { read_key3(r) }) else {
                rlog!(
                    r,
                    module_index(),
                    APLOG_INFO,
                    "draft-76 handshake without its 8-byte key"
                );
                return sys::HTTP_BAD_REQUEST as c_int;
            };
            match legacy.answer(&key3) {
                Some(digest) => digest.to_vec(),
                None => return sys::HTTP_BAD_REQUEST as c_int,
            }
        }
    };
    // SAFETY: live request.
    let secure = unsafe { httpd::request::scheme(r) } == "https";
    // SAFETY: the unparsed URI is a pool string.
    let resource = unsafe { httpd::cstr(req.unparsed_uri) }.unwrap_or("/");
    let protocols: Vec<String> = legacy.protocol.iter().cloned().collect();
    let status_line = legacy.draft.status_line();
    let protocol_header = match legacy.draft {
        Draft::Draft75 => "WebSocket-Protocol",
        Draft::Draft76 => "Sec-WebSocket-Protocol",
    };
    let mut protocol = Legacy::new(conf.max_message_size());
    let endpoint = Endpoint {
        r,
        module_index: module_index(),
        conf,
        origin: Some(legacy.origin.as_str()),
        protocols: &protocols,
        response_headers: legacy.response_headers(secure, resource, None),
        protocol_header,
        // The drafts' servers confirm the one protocol asked for.
        default_protocol: legacy.protocol.as_deref(),
        status_line: Some(status_line),
        answer_body,
        framing: Framing::Legacy,
        compression: None,
        description: match legacy.draft {
            Draft::Draft75 => "WebSocket draft-75".to_owned(),
            Draft::Draft76 => "WebSocket draft-76".to_owned(),
        },
    };
    // SAFETY: live request handled on this thread.
    unsafe { serve(endpoint, &mut protocol) }
}

/// Reads draft-76's key3 from the connection (waiting up to its timeout).
///
/// # Safety
/// `r` is the live request, handled on this thread.
unsafe fn read_key3(r: *mut sys::request_rec) -> Option<[u8; 8]> {
    // SAFETY: live request and connection owned by this thread.
    unsafe {
        let c = (*r).connection;
        let bb = Brigade::new((*r).pool, (*c).bucket_alloc);
        let mut key = Vec::with_capacity(8);
        // Each blocking read waits up to the connection's timeout; a filter
        // that keeps answering with nothing must not keep us here forever.
        for _ in 0..64 {
            if key.len() == 8 {
                break;
            }
            match bb.read_blocking((*c).input_filters, 8 - key.len(), &mut key) {
                ReadOutcome::Data(_) | ReadOutcome::WouldBlock => {}
                ReadOutcome::Closed(_) => return None,
            }
        }
        key.try_into().ok()
    }
}
