//! Feeds an arbitrary request head to every handshake validator.
//!
//! Input layout: a request line (`METHOD anything HTTP/x.y`), then header
//! lines `Name: value`, separated by LF or CRLF. The last eight bytes also
//! serve as the draft-76 key3.

#![no_main]

use libfuzzer_sys::fuzz_target;
use websocket_proto::handshake::{
    classify, parse_extensions, parse_protocols, Handshake, HandshakeRequest, HeaderSource,
};
use websocket_proto::legacy::{draft76_answer, LegacyRequest};
use websocket_proto::origin::{same_origin, Origin};

fn no_line_breaks(headers: &[(&'static str, String)]) -> bool {
    headers.iter().all(|(_, v)| !v.contains(['\r', '\n', '\0']))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("");
    let http_version = parts
        .next_back()
        .and_then(|p| p.strip_prefix("HTTP/"))
        .and_then(|v| v.split_once('.'))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((1, 1));
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n, v.trim_matches([' ', '\t'])))
        .collect();
    let req = HandshakeRequest {
        method,
        http_version,
        headers: &headers,
    };

    let _ = classify(&headers);

    match Handshake::from_request(&req) {
        Ok(hs) => {
            assert_eq!(hs.accept.len(), 28);
            for p in &hs.protocols {
                assert!(!p.is_empty() && !p.contains([',', ' ', '"']));
            }
            let chosen = hs.protocols.first().map(String::as_str);
            assert!(no_line_breaks(&hs.response_headers(chosen, None)));
        }
        Err(e) => {
            assert!(matches!(e.http_status(), 400 | 405 | 426));
            assert!(e.to_string().is_ascii());
        }
    }

    let key3: [u8; 8] = match data.len().checked_sub(8) {
        Some(start) => data[start..].try_into().unwrap(),
        None => *b"12345678",
    };
    match LegacyRequest::from_request(&req) {
        Ok(legacy) => {
            let _ = legacy.answer(&key3);
            let protocol = legacy.protocol.clone();
            for secure in [false, true] {
                let out = legacy.response_headers(secure, "/x?y", protocol.as_deref());
                assert!(no_line_breaks(&out));
            }
        }
        Err(e) => assert!(matches!(e.http_status(), 400 | 405 | 426)),
    }
    if let (Some(k1), Some(k2)) = (
        HeaderSource::get(&headers, "Sec-WebSocket-Key1"),
        HeaderSource::get(&headers, "Sec-WebSocket-Key2"),
    ) {
        let _ = draft76_answer(k1, k2, &key3);
    }

    if let Some(p) = HeaderSource::get(&headers, "Sec-WebSocket-Protocol") {
        let _ = parse_protocols(p);
    }
    if let Some(e) = HeaderSource::get(&headers, "Sec-WebSocket-Extensions") {
        if let Ok(offers) = parse_extensions(e) {
            assert!(offers.iter().all(|o| !o.name.is_empty()));
        }
    }
    if let Some(origin) = HeaderSource::get(&headers, "Origin") {
        if let Ok(parsed) = Origin::parse(origin) {
            // The normalized form must read back as the same origin.
            assert_eq!(Origin::parse(&parsed.to_string()), Ok(parsed));
        }
        let host = HeaderSource::get(&headers, "Host").unwrap_or("");
        let _ = same_origin(origin, "http", host, 80);
        let _ = same_origin(origin, "https", host, 443);
    }
});
