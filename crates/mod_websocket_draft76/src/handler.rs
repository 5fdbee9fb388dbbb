//! The `websocket-handler` content handler for draft-75/76 handshakes.

use std::os::raw::c_int;

use httpd::conn::Request;
use httpd::log::APLOG_INFO;
use httpd::sys;
use websocket_engine::metrics::Refusal;
use websocket_engine::rlog;
use websocket_engine::serve::{count_refusal, serve, Endpoint, RequestHeaders};
use websocket_proto::connection::Family;
use websocket_proto::handshake::{classify, HandshakeRequest, RequestKind};
use websocket_proto::legacy::{Draft, LegacyRequest};

use crate::{dir_config, module_index};

/// Answers a `websocket-handler` request that may be a draft-75/76 handshake.
pub(crate) fn handle(r: Request<'_>, headers: &RequestHeaders<'_>) -> c_int {
    if classify(headers) != RequestKind::Legacy {
        return sys::DECLINED as c_int;
    }
    let Some(conf) = dir_config(r) else {
        return sys::DECLINED as c_int;
    };
    let method = r.method();
    let hreq = HandshakeRequest {
        method,
        http_version: HandshakeRequest::version_from_proto_num(r.proto_num()),
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
            count_refusal(Some(conf), Refusal::BadRequest);
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
        count_refusal(Some(conf), Refusal::BadRequest);
        return sys::HTTP_BAD_REQUEST as c_int;
    }
    let answer_body = match legacy.draft {
        Draft::Draft75 => Vec::new(),
        Draft::Draft76 => {
            // The 8 bytes after the headers are part of the handshake, not a
            // body: the client sends no Content-Length for them.
            // Each blocking read waits up to the connection's timeout; a
            // filter that keeps answering with nothing must not keep us here
            // forever.
            let key3 = r
                .connection()
                .read_exact(8, 64)
                .and_then(|k| <[u8; 8]>::try_from(k).ok());
            let Some(key3) = key3 else {
                rlog!(
                    r,
                    module_index(),
                    APLOG_INFO,
                    "draft-76 handshake without its 8-byte key"
                );
                count_refusal(Some(conf), Refusal::BadRequest);
                return sys::HTTP_BAD_REQUEST as c_int;
            };
            match legacy.answer(&key3) {
                Some(digest) => digest.to_vec(),
                None => {
                    count_refusal(Some(conf), Refusal::BadRequest);
                    return sys::HTTP_BAD_REQUEST as c_int;
                }
            }
        }
    };
    let secure = r.scheme() == "https";
    let resource = r.unparsed_uri();
    let protocols: Vec<String> = legacy.protocol.iter().cloned().collect();
    let status_line = legacy.draft.status_line();
    let protocol_header = match legacy.draft {
        Draft::Draft75 => "WebSocket-Protocol",
        Draft::Draft76 => "Sec-WebSocket-Protocol",
    };
    let endpoint = Endpoint {
        request: r,
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
        family: Family::Legacy,
        compression: None,
        description: match legacy.draft {
            Draft::Draft75 => "WebSocket draft-75".to_owned(),
            Draft::Draft76 => "WebSocket draft-76".to_owned(),
        },
    };
    serve(endpoint)
}
