//! The pre-RFC WebSocket dialects: draft-76 (draft-hixie-thewebsocketprotocol-76,
//! identical to draft-ietf-hybi-thewebsocketprotocol-00) and draft-75.
//!
//! Both frame messages as `0x00 <UTF-8 text> 0xFF` and have no binary
//! messages, fragmentation or masking. draft-76 added a challenge to the
//! handshake (two keys in headers, eight bytes after them, an MD5 answer in
//! the response body) and the closing frame `0xFF 0x00`.

use std::fmt;

use md5::{Digest, Md5};

use crate::handshake::{list_contains, trim_ows, HandshakeRequest};
use crate::origin::split_host_port;
use crate::utf8::Utf8Validator;

/// Which legacy draft a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draft {
    Draft75,
    Draft76,
}

impl Draft {
    /// The 101 status line (without `HTTP/1.1 `) as Apache's `status_line`
    /// wants it. Clients of these drafts compared the status line byte for
    /// byte, so it has to be exactly this.
    pub fn status_line(self) -> &'static std::ffi::CStr {
        match self {
            Draft::Draft75 => c"101 Web Socket Protocol Handshake",
            Draft::Draft76 => c"101 WebSocket Protocol Handshake",
        }
    }
}

/// A valid legacy opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRequest {
    pub draft: Draft,
    /// The `Host` header as sent, used to build the location.
    pub host: String,
    /// The `Origin` header, echoed back in the response.
    pub origin: String,
    /// `Sec-WebSocket-Protocol` (draft-76) or `WebSocket-Protocol`
    /// (draft-75): a single opaque value, not a list, in these drafts.
    pub protocol: Option<String>,
    /// The two key numbers of a draft-76 request, already divided by their
    /// spaces, so a bad key is refused before the body is read.
    pub key_numbers: Option<(u32, u32)>,
}

impl LegacyRequest {
    /// Validates a draft-75/76 opening handshake.
    ///
    /// The drafts demand `Upgrade: WebSocket` as the whole header value
    /// (compared case-insensitively), unlike RFC 6455's token list. For
    /// `Connection` we accept any list containing `Upgrade`, because proxies
    /// add `keep-alive`.
    pub fn from_request(req: &HandshakeRequest<'_>) -> Result<LegacyRequest, LegacyError> {
        let headers = req.headers;
        if !headers
            .get("Upgrade")
            .is_some_and(|v| trim_ows(v).eq_ignore_ascii_case("websocket"))
        {
            return Err(LegacyError::NotUpgrade);
        }
        if req.method != "GET" {
            return Err(LegacyError::MethodNotAllowed);
        }
        // Exactly HTTP/1.1: the drafts' handshake sends bytes after the
        // headers and answers with bytes after the 101, which neither
        // HTTP/1.0 nor an HTTP/2 stream (RFC 8441 is RFC 6455 only) carries.
        if req.http_version != (1, 1) {
            return Err(LegacyError::HttpVersion);
        }
        if !headers
            .get("Connection")
            .is_some_and(|v| list_contains(v, "upgrade"))
        {
            return Err(LegacyError::MissingConnectionUpgrade);
        }
        let host = trim_ows(headers.get("Host").unwrap_or(""));
        if host.is_empty() {
            return Err(LegacyError::MissingHost);
        }
        if split_host_port(host).is_err() {
            return Err(LegacyError::BadHost);
        }
        let origin = trim_ows(headers.get("Origin").unwrap_or(""));
        if origin.is_empty() {
            return Err(LegacyError::MissingOrigin);
        }
        if !is_header_safe(origin) {
            return Err(LegacyError::BadOrigin);
        }
        let (draft, key_numbers) = match (
            headers.get("Sec-WebSocket-Key1"),
            headers.get("Sec-WebSocket-Key2"),
        ) {
            (Some(k1), Some(k2)) => (Draft::Draft76, Some((key_number(k1)?, key_number(k2)?))),
            (None, None) => (Draft::Draft75, None),
            _ => return Err(LegacyError::MissingKey),
        };
        let protocol_header = match draft {
            Draft::Draft75 => "WebSocket-Protocol",
            Draft::Draft76 => "Sec-WebSocket-Protocol",
        };
        let protocol = match headers.get(protocol_header).map(trim_ows) {
            Some(p) if p.is_empty() || !is_header_safe(p) => return Err(LegacyError::BadProtocol),
            p => p.map(str::to_owned),
        };
        Ok(LegacyRequest {
            draft,
            host: host.to_owned(),
            origin: origin.to_owned(),
            protocol,
            key_numbers,
        })
    }

    /// The 16-byte response body answering the eight bytes that followed the
    /// request headers. `None` for draft-75, which has no challenge.
    pub fn answer(&self, key3: &[u8; 8]) -> Option<[u8; 16]> {
        self.key_numbers.map(|(n1, n2)| answer_from_numbers(n1, n2, key3))
    }

    /// `ws://` or `wss://`, the host (with its port only when it is not the
    /// scheme's default) and the resource name: the path and, if any, `?`
    /// and the query, as requested.
    pub fn location(&self, secure: bool, resource: &str) -> String {
        let (scheme, default) = if secure { ("wss", 443) } else { ("ws", 80) };
        let host = match split_host_port(&self.host) {
            Ok((name, Some(port))) if port != default => format!("{name}:{port}"),
            Ok((name, _)) => name.to_owned(),
            // Unreachable for a validated request; echo what we were given.
            Err(_) => self.host.clone(),
        };
        format!("{scheme}://{host}{resource}")
    }

    /// The headers of the 101 response, in the order the drafts list them.
    /// `protocol` must be the client's own value if the server accepts it:
    /// these drafts have no negotiation, only confirmation.
    pub fn response_headers(
        &self,
        secure: bool,
        resource: &str,
        protocol: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let (origin, location, proto) = match self.draft {
            Draft::Draft75 => ("WebSocket-Origin", "WebSocket-Location", "WebSocket-Protocol"),
            Draft::Draft76 => (
                "Sec-WebSocket-Origin",
                "Sec-WebSocket-Location",
                "Sec-WebSocket-Protocol",
            ),
        };
        let mut out = vec![
            ("Upgrade", "WebSocket".to_owned()),
            ("Connection", "Upgrade".to_owned()),
            (origin, self.origin.clone()),
            (location, self.location(secure, resource)),
        ];
        if let Some(p) = protocol {
            out.push((proto, p.to_owned()));
        }
        out
    }
}

/// Values we echo into response headers must not smuggle anything: visible
/// ASCII and spaces only.
fn is_header_safe(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7F).contains(&b))
}

/// Why a legacy handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyError {
    /// Not `Upgrade: WebSocket`: not ours, the module declines.
    NotUpgrade,
    MethodNotAllowed,
    HttpVersion,
    MissingConnectionUpgrade,
    MissingHost,
    BadHost,
    MissingOrigin,
    /// An origin with characters we would not echo into a header.
    BadOrigin,
    /// Only one of `Sec-WebSocket-Key1` and `Sec-WebSocket-Key2`.
    MissingKey,
    /// A key without spaces: the draft's defence against cross-protocol
    /// attacks.
    KeyNoSpaces,
    /// The key's digits are not a multiple of its number of spaces.
    KeyNotMultiple,
    /// The key's number, divided by its spaces, does not fit 32 bits.
    KeyOutOfRange,
    /// An empty protocol, or one with characters we would not echo.
    BadProtocol,
}

impl LegacyError {
    pub fn http_status(&self) -> u16 {
        match self {
            LegacyError::NotUpgrade => 426,
            LegacyError::MethodNotAllowed => 405,
            _ => 400,
        }
    }

    pub fn is_not_websocket(&self) -> bool {
        matches!(self, LegacyError::NotUpgrade)
    }
}

impl fmt::Display for LegacyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyError::NotUpgrade => "not a WebSocket request (no \"Upgrade: WebSocket\")",
            LegacyError::MethodNotAllowed => "WebSocket upgrade with a method other than GET",
            LegacyError::HttpVersion => {
                "draft-75/76 WebSocket upgrade not over HTTP/1.1 (the drafts work only there; over HTTP/2 only RFC 6455 does)"
            }
            LegacyError::MissingConnectionUpgrade => "WebSocket upgrade without \"Connection: Upgrade\"",
            LegacyError::MissingHost => "WebSocket upgrade without a Host header",
            LegacyError::BadHost => "WebSocket upgrade with a malformed Host header",
            LegacyError::MissingOrigin => "draft WebSocket upgrade without an Origin header",
            LegacyError::BadOrigin => "Origin header with characters that cannot be echoed",
            LegacyError::MissingKey => {
                "draft-76 upgrade with only one of Sec-WebSocket-Key1 and Sec-WebSocket-Key2"
            }
            LegacyError::KeyNoSpaces => "draft-76 key without spaces",
            LegacyError::KeyNotMultiple => "draft-76 key number is not a multiple of its number of spaces",
            LegacyError::KeyOutOfRange => "draft-76 key number does not fit in 32 bits",
            LegacyError::BadProtocol => "malformed WebSocket subprotocol",
        })
    }
}

impl std::error::Error for LegacyError {}

/// The draft-76 challenge answer: MD5 of the two key numbers (each the
/// key's digits read as a decimal number, divided by the key's spaces) as
/// big-endian 32-bit integers, followed by the eight bytes after the
/// request headers.
pub fn draft76_answer(key1: &str, key2: &str, key3: &[u8; 8]) -> Result<[u8; 16], LegacyError> {
    Ok(answer_from_numbers(key_number(key1)?, key_number(key2)?, key3))
}

fn answer_from_numbers(n1: u32, n2: u32, key3: &[u8; 8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(n1.to_be_bytes());
    md5.update(n2.to_be_bytes());
    md5.update(key3);
    md5.finalize().into()
}

/// A u64 cannot overflow before the quotient leaves u32: that would take
/// more than 2^32 spaces in one header.
fn key_number(key: &str) -> Result<u32, LegacyError> {
    let mut number: u64 = 0;
    let mut spaces: u64 = 0;
    for b in key.bytes() {
        match b {
            b'0'..=b'9' => {
                number = number
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    .ok_or(LegacyError::KeyOutOfRange)?;
            }
            b' ' => spaces += 1,
            _ => {}
        }
    }
    if spaces == 0 {
        return Err(LegacyError::KeyNoSpaces);
    }
    let part = number / spaces;
    if part * spaces != number {
        return Err(LegacyError::KeyNotMultiple);
    }
    u32::try_from(part).map_err(|_| LegacyError::KeyOutOfRange)
}

/// The draft-76 closing frame.
pub const CLOSE_FRAME: [u8; 2] = [0xFF, 0x00];

/// Appends a text frame. `text` is UTF-8 (the caller has checked it: these
/// frames cannot carry anything else).
pub fn encode_text(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(0x00);
    out.extend_from_slice(text);
    out.push(0xFF);
}

/// What the decoder produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyEvent<'a> {
    /// A complete text message.
    Text(&'a str),
    /// The draft-76 closing frame `0xFF 0x00`.
    Close,
}

/// Why the decoder gave up. Once it has, it keeps returning the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyDecodeError {
    InvalidUtf8,
    /// A text message longer than the configured maximum.
    TooBig,
    /// A length prefix that does not fit 64 bits.
    LengthOverflow,
}

impl fmt::Display for LegacyDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyDecodeError::InvalidUtf8 => "invalid UTF-8 in a text frame",
            LegacyDecodeError::TooBig => "text message exceeds the maximum message size",
            LegacyDecodeError::LengthOverflow => "frame length prefix overflows",
        })
    }
}

impl std::error::Error for LegacyDecodeError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a frame type byte.
    Idle,
    /// Inside a `0x00` text frame; its bytes so far are in `buf`.
    Text,
    /// Inside a sentinel-terminated frame of a type other than `0x00`.
    DiscardUntilFF,
    /// Reading the base-128 length of a frame whose type has the high bit.
    Length {
        frame_type: u8,
        length: u64,
    },
    /// Skipping the payload of a length-prefixed frame.
    Skip {
        remaining: u64,
    },
    Closed,
    Failed(LegacyDecodeError),
}

/// A streaming decoder for draft-75/76 frames, fed chunks of any size.
///
/// Following draft-76 §5.3 (and draft-75, which reads frames the same way):
///
/// - `0x00` starts a text message that runs up to the next `0xFF`. It is
///   validated as it arrives and refused as soon as it is invalid or longer
///   than the limit, so the buffer never grows past the limit.
/// - A type byte with the high bit set is followed by a length in base-128
///   digits (high bit = more digits) and that many payload bytes, which are
///   skipped unbuffered: neither draft defines such a frame except
///   `0xFF` with length 0, the closing frame. draft-75 has no closing frame,
///   but a draft-75 client never sends one, so one decoder serves both.
/// - Any other type (high bit clear, not `0x00`) is a sentinel-terminated
///   frame of a type the drafts reserve; its bytes up to `0xFF` are
///   discarded without validation, as the drafts say.
///
/// After [`LegacyEvent::Close`] the decoder consumes nothing more.
#[derive(Debug, Clone)]
pub struct LegacyDecoder {
    max_message_size: u64,
    state: State,
    buf: Vec<u8>,
    utf8: Utf8Validator,
}

impl LegacyDecoder {
    pub fn new(max_message_size: u64) -> Self {
        LegacyDecoder {
            max_message_size,
            state: State::Idle,
            buf: Vec::new(),
            utf8: Utf8Validator::new(),
        }
    }

    /// True once the closing frame has been read.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True between frames, where the stream may cleanly end.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Consumes bytes from `input` until an event is complete or the input
    /// runs out. Returns how many bytes were consumed and the event, if
    /// any; call again with the rest of the input after an event. On an
    /// error the connection is beyond repair: the caller closes it.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> (usize, Result<Option<LegacyEvent<'a>>, LegacyDecodeError>) {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Failed(e) => return (pos, Err(e)),
                State::Closed => return (pos, Ok(None)),
                _ if rest.is_empty() => return (pos, Ok(None)),
                State::Idle => {
                    pos += 1;
                    self.state = match rest[0] {
                        0x00 => {
                            if let Some(end) = rest[1..].iter().position(|&b| b == 0xFF) {
                                // The whole message is in the caller's buffer:
                                // hand it out from there, no copy.
                                return (pos + end + 1, self.whole_text(&rest[1..1 + end]));
                            }
                            self.buf.clear();
                            self.utf8.reset();
                            State::Text
                        }
                        t if t & 0x80 != 0 => State::Length {
                            frame_type: t,
                            length: 0,
                        },
                        _ => State::DiscardUntilFF,
                    };
                }
                State::Text => {
                    let end = rest.iter().position(|&b| b == 0xFF);
                    let piece = &rest[..end.unwrap_or(rest.len())];
                    if let Err(e) = self.buffer_text(piece) {
                        return (pos, Err(self.fail(e)));
                    }
                    pos += piece.len();
                    if end.is_none() {
                        return (pos, Ok(None));
                    }
                    pos += 1;
                    if self.utf8.finish().is_err() {
                        return (pos, Err(self.fail(LegacyDecodeError::InvalidUtf8)));
                    }
                    self.state = State::Idle;
                    // Checked piece by piece above; this second pass only
                    // turns the bytes into a `str` without `unsafe`.
                    let text = simdutf8::basic::from_utf8(&self.buf)
                        .map(|t| Some(LegacyEvent::Text(t)))
                        .map_err(|_| LegacyDecodeError::InvalidUtf8);
                    return (pos, text);
                }
                State::DiscardUntilFF => match rest.iter().position(|&b| b == 0xFF) {
                    Some(end) => {
                        pos += end + 1;
                        self.state = State::Idle;
                    }
                    None => return (input.len(), Ok(None)),
                },
                State::Length { frame_type, length } => {
                    let b = rest[0];
                    pos += 1;
                    let Some(length) = length.checked_mul(128).map(|l| l + u64::from(b & 0x7F)) else {
                        return (pos, Err(self.fail(LegacyDecodeError::LengthOverflow)));
                    };
                    self.state = if b & 0x80 != 0 {
                        State::Length { frame_type, length }
                    } else if length == 0 && frame_type == 0xFF {
                        self.state = State::Closed;
                        return (pos, Ok(Some(LegacyEvent::Close)));
                    } else if length == 0 {
                        State::Idle
                    } else {
                        State::Skip { remaining: length }
                    };
                }
                State::Skip { remaining } => {
                    let n = remaining.min(rest.len() as u64);
                    pos += n as usize;
                    self.state = match remaining - n {
                        0 => State::Idle,
                        remaining => State::Skip { remaining },
                    };
                }
            }
        }
    }

    /// A message found whole in the input.
    fn whole_text<'a>(&mut self, text: &'a [u8]) -> Result<Option<LegacyEvent<'a>>, LegacyDecodeError> {
        if text.len() as u64 > self.max_message_size {
            return Err(self.fail(LegacyDecodeError::TooBig));
        }
        match simdutf8::basic::from_utf8(text) {
            Ok(t) => Ok(Some(LegacyEvent::Text(t))),
            Err(_) => Err(self.fail(LegacyDecodeError::InvalidUtf8)),
        }
    }

    /// Adds part of a message to the buffer, growing it geometrically but
    /// never past the limit.
    fn buffer_text(&mut self, piece: &[u8]) -> Result<(), LegacyDecodeError> {
        let needed = self.buf.len() + piece.len();
        if needed as u64 > self.max_message_size {
            return Err(LegacyDecodeError::TooBig);
        }
        self.utf8
            .feed(piece)
            .map_err(|_| LegacyDecodeError::InvalidUtf8)?;
        if needed > self.buf.capacity() {
            let limit = usize::try_from(self.max_message_size).unwrap_or(usize::MAX);
            let target = needed.max(self.buf.capacity().saturating_mul(2)).min(limit);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(piece);
        Ok(())
    }

    fn fail(&mut self, e: LegacyDecodeError) -> LegacyDecodeError {
        self.state = State::Failed(e);
        self.buf = Vec::new();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY1: &str = "4 @1  46546xW%0l 1 5";
    const KEY2: &str = "12998 5 Y3 1  .P00";
    const KEY3: &[u8; 8] = b"^n:ds[4U";

    #[test]
    fn draft76_spec_example() {
        assert_eq!(&draft76_answer(KEY1, KEY2, KEY3).unwrap(), b"8jKS'y:G*Co,Wxa-");
        assert_eq!(key_number(KEY1), Ok(4_146_546_015 / 5));
        assert_eq!(key_number(KEY2), Ok(1_299_853_100 / 5));
    }

    #[test]
    fn key_errors() {
        assert_eq!(key_number("12345"), Err(LegacyError::KeyNoSpaces));
        assert_eq!(key_number(""), Err(LegacyError::KeyNoSpaces));
        assert_eq!(key_number("1 2 3"), Err(LegacyError::KeyNotMultiple)); // 123 / 2
        assert_eq!(key_number("1 2 4"), Ok(62));
        assert_eq!(key_number(" "), Ok(0), "no digits is the number 0");
        // 2^32 with one space is one past u32.
        assert_eq!(key_number("4294967296 "), Err(LegacyError::KeyOutOfRange));
        assert_eq!(key_number("4294967295 "), Ok(u32::MAX));
        assert_eq!(
            key_number("8589934590  "),
            Ok(u32::MAX),
            "large but divided back in range"
        );
        assert_eq!(
            key_number(&"9".repeat(40).replace("99", "9 9")),
            Err(LegacyError::KeyOutOfRange)
        );
        assert_eq!(draft76_answer("1", KEY2, KEY3), Err(LegacyError::KeyNoSpaces));
        assert_eq!(
            draft76_answer(KEY1, "1 2 3", KEY3),
            Err(LegacyError::KeyNotMultiple)
        );
        for e in [
            LegacyError::KeyNoSpaces,
            LegacyError::KeyNotMultiple,
            LegacyError::KeyOutOfRange,
        ] {
            assert_eq!(e.http_status(), 400);
        }
    }

    type Headers = Vec<(&'static str, &'static str)>;

    fn draft76_headers() -> Headers {
        vec![
            ("Host", "example.com"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key2", KEY2),
            ("Sec-WebSocket-Protocol", "sample"),
            ("Upgrade", "WebSocket"),
            ("Sec-WebSocket-Key1", KEY1),
            ("Origin", "http://example.com"),
        ]
    }

    fn draft75_headers() -> Headers {
        vec![
            ("Upgrade", "WebSocket"),
            ("Connection", "Upgrade"),
            ("Host", "example.com:8080"),
            ("Origin", "http://example.com:8080"),
            ("WebSocket-Protocol", "chat"),
        ]
    }

    fn without(h: &Headers, name: &str) -> Headers {
        h.iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .copied()
            .collect()
    }

    fn replace(h: &Headers, name: &'static str, value: &'static str) -> Headers {
        let mut h = without(h, name);
        h.push((name, value));
        h
    }

    fn validate(h: &Headers) -> Result<LegacyRequest, LegacyError> {
        validate_with("GET", (1, 1), h)
    }

    fn validate_with(method: &str, v: (u32, u32), h: &Headers) -> Result<LegacyRequest, LegacyError> {
        LegacyRequest::from_request(&HandshakeRequest {
            method,
            http_version: v,
            headers: h,
        })
    }

    #[test]
    fn draft76_request() {
        let req = validate(&draft76_headers()).unwrap();
        assert_eq!(req.draft, Draft::Draft76);
        assert_eq!(req.origin, "http://example.com");
        assert_eq!(req.protocol.as_deref(), Some("sample"));
        assert_eq!(&req.answer(KEY3).unwrap(), b"8jKS'y:G*Co,Wxa-");
        assert_eq!(
            req.response_headers(false, "/demo", Some("sample")),
            [
                ("Upgrade", "WebSocket".to_owned()),
                ("Connection", "Upgrade".to_owned()),
                ("Sec-WebSocket-Origin", "http://example.com".to_owned()),
                ("Sec-WebSocket-Location", "ws://example.com/demo".to_owned()),
                ("Sec-WebSocket-Protocol", "sample".to_owned()),
            ]
        );
        assert_eq!(Draft::Draft76.status_line(), c"101 WebSocket Protocol Handshake");
    }

    #[test]
    fn draft75_request() {
        let req = validate(&draft75_headers()).unwrap();
        assert_eq!(req.draft, Draft::Draft75);
        assert_eq!(req.protocol.as_deref(), Some("chat"));
        assert_eq!(req.answer(KEY3), None);
        assert_eq!(
            req.response_headers(false, "/chat?room=1", None),
            [
                ("Upgrade", "WebSocket".to_owned()),
                ("Connection", "Upgrade".to_owned()),
                ("WebSocket-Origin", "http://example.com:8080".to_owned()),
                (
                    "WebSocket-Location",
                    "ws://example.com:8080/chat?room=1".to_owned()
                ),
            ]
        );
        let with_proto = req.response_headers(true, "/", Some("chat"));
        assert_eq!(with_proto[4], ("WebSocket-Protocol", "chat".to_owned()));
        assert_eq!(Draft::Draft75.status_line(), c"101 Web Socket Protocol Handshake");
        // The draft-76 header name means nothing to draft-75.
        let h = replace(
            &without(&draft75_headers(), "WebSocket-Protocol"),
            "Sec-WebSocket-Protocol",
            "x",
        );
        assert_eq!(validate(&h).unwrap().protocol, None);
    }

    #[test]
    fn location_includes_only_non_default_ports() {
        let loc = |host: &'static str, secure: bool| {
            let req = validate(&replace(&draft76_headers(), "Host", host)).unwrap();
            req.location(secure, "/p")
        };
        assert_eq!(loc("example.com", false), "ws://example.com/p");
        assert_eq!(loc("example.com:80", false), "ws://example.com/p");
        assert_eq!(loc("example.com:443", false), "ws://example.com:443/p");
        assert_eq!(loc("example.com:443", true), "wss://example.com/p");
        assert_eq!(loc("example.com:80", true), "wss://example.com:80/p");
        assert_eq!(loc("[::1]:8080", false), "ws://[::1]:8080/p");
        assert_eq!(loc("[::1]:80", false), "ws://[::1]/p");
        assert_eq!(loc("Example.COM", true), "wss://Example.COM/p");
    }

    #[test]
    fn legacy_request_errors() {
        let h = draft76_headers();
        let cases: Vec<(Result<LegacyRequest, LegacyError>, LegacyError, u16)> = vec![
            (validate(&without(&h, "Upgrade")), LegacyError::NotUpgrade, 426),
            (
                validate(&replace(&h, "Upgrade", "websocket, h2c")),
                LegacyError::NotUpgrade,
                426,
            ),
            (
                validate_with("POST", (1, 1), &h),
                LegacyError::MethodNotAllowed,
                405,
            ),
            (validate_with("GET", (1, 0), &h), LegacyError::HttpVersion, 400),
            (validate_with("GET", (2, 0), &h), LegacyError::HttpVersion, 400),
            (
                validate(&without(&h, "Connection")),
                LegacyError::MissingConnectionUpgrade,
                400,
            ),
            (
                validate(&replace(&h, "Connection", "close")),
                LegacyError::MissingConnectionUpgrade,
                400,
            ),
            (validate(&without(&h, "Host")), LegacyError::MissingHost, 400),
            (validate(&replace(&h, "Host", " ")), LegacyError::MissingHost, 400),
            (validate(&replace(&h, "Host", "a:b")), LegacyError::BadHost, 400),
            (
                validate(&replace(&h, "Host", "a\u{7f}b")),
                LegacyError::BadHost,
                400,
            ),
            (validate(&without(&h, "Origin")), LegacyError::MissingOrigin, 400),
            (
                validate(&replace(&h, "Origin", "http://\u{1}")),
                LegacyError::BadOrigin,
                400,
            ),
            (
                validate(&without(&h, "Sec-WebSocket-Key1")),
                LegacyError::MissingKey,
                400,
            ),
            (
                validate(&without(&h, "Sec-WebSocket-Key2")),
                LegacyError::MissingKey,
                400,
            ),
            (
                validate(&replace(&h, "Sec-WebSocket-Key1", "123")),
                LegacyError::KeyNoSpaces,
                400,
            ),
            (
                validate(&replace(&h, "Sec-WebSocket-Key2", "1 2 3")),
                LegacyError::KeyNotMultiple,
                400,
            ),
            (
                validate(&replace(&h, "Sec-WebSocket-Key2", "99999999999 ")),
                LegacyError::KeyOutOfRange,
                400,
            ),
            (
                validate(&replace(&h, "Sec-WebSocket-Protocol", "")),
                LegacyError::BadProtocol,
                400,
            ),
            (
                validate(&replace(&h, "Sec-WebSocket-Protocol", "é")),
                LegacyError::BadProtocol,
                400,
            ),
            (
                validate(&replace(&draft75_headers(), "WebSocket-Protocol", "a\tb")),
                LegacyError::BadProtocol,
                400,
            ),
        ];
        for (i, (got, want, status)) in cases.into_iter().enumerate() {
            assert_eq!(got, Err(want), "case {i}");
            assert_eq!(want.http_status(), status, "case {i}");
            assert_eq!(want.is_not_websocket(), want == LegacyError::NotUpgrade);
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn legacy_request_leniency() {
        let h = replace(&draft76_headers(), "Upgrade", " websocket ");
        let h = replace(&h, "Connection", "keep-alive, upgrade");
        let h = replace(&h, "Sec-WebSocket-Protocol", "a protocol with spaces");
        let req = validate(&h).unwrap();
        assert_eq!(req.protocol.as_deref(), Some("a protocol with spaces"));
    }

    /// Feeds `input` in the given chunks, collecting events (texts owned).
    fn decode_chunks(
        dec: &mut LegacyDecoder,
        chunks: &[&[u8]],
    ) -> (Vec<Option<String>>, Option<LegacyDecodeError>) {
        let mut events = Vec::new();
        for chunk in chunks {
            let mut pos = 0;
            loop {
                let (n, r) = dec.decode(&chunk[pos..]);
                pos += n;
                match r {
                    Ok(Some(LegacyEvent::Text(t))) => events.push(Some(t.to_owned())),
                    Ok(Some(LegacyEvent::Close)) => events.push(None),
                    Ok(None) => break,
                    Err(e) => return (events, Some(e)),
                }
            }
            assert!(pos == chunk.len() || dec.is_closed());
        }
        (events, None)
    }

    fn decode_all(max: u64, input: &[u8], chunk: usize) -> (Vec<Option<String>>, Option<LegacyDecodeError>) {
        let chunks: Vec<&[u8]> = input.chunks(chunk.max(1)).collect();
        decode_chunks(&mut LegacyDecoder::new(max), &chunks)
    }

    fn texts(ts: &[&str]) -> Vec<Option<String>> {
        ts.iter().map(|t| Some(t.to_string())).collect()
    }

    #[test]
    fn decodes_text_frames() {
        let mut wire = Vec::new();
        for t in ["hello", "", "κόσμε 𝄞"] {
            encode_text(&mut wire, t.as_bytes());
        }
        wire.extend_from_slice(&CLOSE_FRAME);
        assert_eq!(&wire[..7], b"\x00hello\xFF");
        for chunk in [1, 2, 3, 7, 100] {
            let (events, err) = decode_all(1024, &wire, chunk);
            let mut want = texts(&["hello", "", "κόσμε 𝄞"]);
            want.push(None);
            assert_eq!(events, want, "chunk {chunk}");
            assert_eq!(err, None);
        }
    }

    #[test]
    fn close_stops_the_decoder() {
        let mut dec = LegacyDecoder::new(10);
        assert!(dec.is_idle());
        let (n, r) = dec.decode(b"\xFF\x00\x00more\xFF");
        assert_eq!((n, r), (2, Ok(Some(LegacyEvent::Close))));
        assert!(dec.is_closed());
        assert_eq!(dec.decode(b"\x00more\xFF"), (0, Ok(None)));
    }

    #[test]
    fn zero_copy_when_whole_message_is_in_the_input() {
        let input = b"\x00abc\xFF\x00def\xFF";
        let mut dec = LegacyDecoder::new(10);
        let (n, r) = dec.decode(input);
        assert_eq!(n, 5);
        let Ok(Some(LegacyEvent::Text(t))) = r else {
            panic!()
        };
        assert!(std::ptr::eq(t.as_ptr(), input[1..].as_ptr()));
        assert_eq!(dec.decode(&input[5..]), (5, Ok(Some(LegacyEvent::Text("def")))));
        assert_eq!(dec.decode(&[]), (0, Ok(None)));
    }

    #[test]
    fn too_big_is_caught_while_reading() {
        // Exactly the limit is fine.
        assert_eq!(decode_all(5, b"\x00hello\xFF", 2).0, texts(&["hello"]));
        assert_eq!(decode_all(5, b"\x00hello\xFF", 100).0, texts(&["hello"]));
        assert_eq!(decode_all(0, b"\x00\xFF", 1).0, texts(&[""]));
        for chunk in [1, 3, 100] {
            let (events, err) = decode_all(5, b"\x00ok\xFF\x00hello!\xFF", chunk);
            assert_eq!(events, texts(&["ok"]));
            assert_eq!(err, Some(LegacyDecodeError::TooBig));
        }
        // Fails at the sixth byte although the frame never ends.
        let mut dec = LegacyDecoder::new(5);
        assert_eq!(dec.decode(b"\x00hello"), (6, Ok(None)));
        assert_eq!(dec.decode(b"!"), (0, Err(LegacyDecodeError::TooBig)));
        // And stays failed.
        assert_eq!(dec.decode(b"\xFF"), (0, Err(LegacyDecodeError::TooBig)));
    }

    #[test]
    fn buffer_never_grows_past_the_limit() {
        let mut dec = LegacyDecoder::new(1000);
        assert_eq!(dec.decode(&[0x00]), (1, Ok(None)));
        for _ in 0..1000 {
            assert_eq!(dec.decode(b"x"), (1, Ok(None)));
            assert!(dec.buf.capacity() <= 1000);
        }
        assert_eq!(dec.decode(b"x").1, Err(LegacyDecodeError::TooBig));
    }

    #[test]
    fn invalid_utf8_fails_fast() {
        // 0xC0 can never start a valid sequence: fail before the frame ends.
        let mut dec = LegacyDecoder::new(100);
        assert_eq!(dec.decode(b"\x00ab"), (3, Ok(None)));
        assert_eq!(dec.decode(b"\xC0"), (0, Err(LegacyDecodeError::InvalidUtf8)));
        assert_eq!(dec.decode(b"\xFF"), (0, Err(LegacyDecodeError::InvalidUtf8)));
        // Surrogate half: wrong at its second byte.
        let mut dec = LegacyDecoder::new(100);
        assert_eq!(dec.decode(b"\x00\xED"), (2, Ok(None)));
        assert_eq!(dec.decode(b"\xA0").1, Err(LegacyDecodeError::InvalidUtf8));
        // Truncated sequence at the end of a frame.
        for chunk in [1, 100] {
            let (_, err) = decode_all(100, b"\x00ab\xE2\x82\xFF", chunk);
            assert_eq!(err, Some(LegacyDecodeError::InvalidUtf8), "chunk {chunk}");
        }
        // Whole message in one chunk.
        let (_, err) = decode_all(100, b"\x00\xC3\x28\xFF", 100);
        assert_eq!(err, Some(LegacyDecodeError::InvalidUtf8));
    }

    #[test]
    fn length_prefixed_frames_are_skipped() {
        let mut wire = Vec::new();
        wire.extend_from_slice(b"\x80\x03abc"); // type 0x80, 3 bytes
        encode_text(&mut wire, "one".as_bytes());
        wire.extend_from_slice(b"\x81\x81\x00"); // 128 bytes, two length digits
        wire.extend_from_slice(&[0xFF; 128]); // payload that looks like sentinels
        wire.extend_from_slice(b"\xFE\x00"); // empty frame of another type
        encode_text(&mut wire, "two".as_bytes());
        wire.extend_from_slice(b"\xFF\x02\x00\xFF"); // 0xFF with a length is no close
        encode_text(&mut wire, "three".as_bytes());
        wire.extend_from_slice(b"\xFF\x80\x00"); // length 0 spelled with two digits
        for chunk in [1, 2, 5, 1000] {
            let (events, err) = decode_all(100, &wire, chunk);
            let mut want = texts(&["one", "two", "three"]);
            want.push(None);
            assert_eq!(events, want, "chunk {chunk}");
            assert_eq!(err, None);
        }
    }

    #[test]
    fn huge_length_prefixes() {
        // 2^63 - 1 is a legal length to skip; one more digit overflows.
        let mut wire = vec![0x80];
        wire.extend_from_slice(&[0xFF; 8]);
        wire.push(0x7F);
        let mut dec = LegacyDecoder::new(10);
        assert_eq!(dec.decode(&wire), (10, Ok(None)));
        assert_eq!(dec.decode(b"anything"), (8, Ok(None)));
        let mut wire = vec![0x80];
        wire.extend_from_slice(&[0xFF; 10]);
        let mut dec = LegacyDecoder::new(10);
        assert_eq!(dec.decode(&wire).1, Err(LegacyDecodeError::LengthOverflow));
    }

    #[test]
    fn other_sentinel_frames_are_discarded_unvalidated() {
        let wire = b"\x01\xC0\xC1 not utf-8 \x00\xFF\x00kept\xFF\x7F\xFF";
        for chunk in [1, 4, 100] {
            assert_eq!(decode_all(4, wire, chunk), (texts(&["kept"]), None));
        }
    }

    #[test]
    fn decode_error_messages() {
        for e in [
            LegacyDecodeError::InvalidUtf8,
            LegacyDecodeError::TooBig,
            LegacyDecodeError::LengthOverflow,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[derive(Debug, Clone)]
    enum Frame {
        Text(String),
        Skipped(u8, Vec<u8>),
        Discarded(u8, Vec<u8>),
    }

    fn frame_strategy() -> impl Strategy<Value = Frame> {
        prop_oneof![
            4 => ".{0,40}".prop_map(Frame::Text),
            1 => (0x80u8..=0xFF, proptest::collection::vec(any::<u8>(), 1..300))
                .prop_map(|(t, p)| Frame::Skipped(t, p)),
            1 => (0x01u8..=0x7F, proptest::collection::vec(0u8..0xFF, 0..40))
                .prop_map(|(t, p)| Frame::Discarded(t, p)),
        ]
    }

    fn encode_length(out: &mut Vec<u8>, mut len: usize) {
        let mut digits = Vec::new();
        loop {
            digits.push((len & 0x7F) as u8);
            len >>= 7;
            if len == 0 {
                break;
            }
        }
        for (i, d) in digits.iter().rev().enumerate() {
            out.push(if i + 1 < digits.len() { d | 0x80 } else { *d });
        }
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(
            frames in proptest::collection::vec(frame_strategy(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
            close in any::<bool>(),
        ) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for f in &frames {
                match f {
                    Frame::Text(t) => {
                        encode_text(&mut wire, t.as_bytes());
                        want.push(Some(t.clone()));
                    }
                    Frame::Skipped(t, p) => {
                        wire.push(*t);
                        encode_length(&mut wire, p.len());
                        wire.extend_from_slice(p);
                    }
                    Frame::Discarded(t, p) => {
                        wire.push(*t);
                        wire.extend_from_slice(p);
                        wire.push(0xFF);
                    }
                }
            }
            if close {
                wire.extend_from_slice(&CLOSE_FRAME);
                want.push(None);
            }
            let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            offsets.push(0);
            offsets.push(wire.len());
            offsets.sort_unstable();
            let chunks: Vec<&[u8]> = offsets.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
            let mut dec = LegacyDecoder::new(200);
            prop_assert_eq!(decode_chunks(&mut dec, &chunks), (want.clone(), None));
            prop_assert_eq!(decode_all(200, &wire, 1), (want, None));
            prop_assert!(dec.is_closed() == close);
            prop_assert!(close || dec.is_idle());
        }
    }
}
