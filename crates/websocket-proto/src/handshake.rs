//! The server side of the RFC 6455 opening handshake (§4.2), also used for
//! the hybi drafts that browsers shipped as versions 7 and 8.
//!
//! The module hands us what Apache parsed: the method, the protocol version
//! and a header lookup. Apache's `headers_in` table is case-insensitive and
//! merges repeated request headers into one value joined by ", ", so every
//! multi-valued header here is parsed as an RFC 7230 comma-separated list.
//!
//! Validation tells three situations apart, because the module reacts to
//! each differently: a request that is not a WebSocket upgrade at all
//! ([`HandshakeError::NotUpgrade`], the module declines and lets another
//! handler serve it), a legacy draft-75/76 request ([`classify`] says
//! [`RequestKind::Legacy`], the draft-76 module's business), and a broken
//! WebSocket request (every other error, answered with its
//! [`HandshakeError::http_status`]).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::frame::ProtocolVersion;

/// The value of the `Sec-WebSocket-Version` header sent with a 400 when the
/// client asked for a version we do not speak (RFC 6455 §4.4), preferred
/// version first.
pub const SUPPORTED_VERSIONS_HEADER: &str = "13, 8, 7";

/// Appended to the client's key before hashing (RFC 6455 §1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A request header lookup. Names are matched case-insensitively; for a
/// header sent several times the value should be the list Apache builds
/// (the values joined by ", ").
pub trait HeaderSource {
    fn get(&self, name: &str) -> Option<&str>;
}

impl<T: HeaderSource + ?Sized> HeaderSource for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

/// A plain list of `(name, value)` pairs, for tests and tools. The first
/// pair with a matching name wins, which is what `apr_table_get` does.
impl<K: AsRef<str>, V: AsRef<str>> HeaderSource for [(K, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> HeaderSource for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        HeaderSource::get(self.as_slice(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderSource for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        HeaderSource::get(self.as_slice(), name)
    }
}

/// What the module knows about a request when its handler runs.
#[derive(Clone, Copy)]
pub struct HandshakeRequest<'a> {
    pub method: &'a str,
    /// `(major, minor)`; Apache's `r->proto_num` 1001 is `(1, 1)`, see
    /// [`HandshakeRequest::version_from_proto_num`].
    pub http_version: (u32, u32),
    pub headers: &'a dyn HeaderSource,
}

impl<'a> HandshakeRequest<'a> {
    /// Splits Apache's `proto_num` (`major * 1000 + minor`).
    pub fn version_from_proto_num(proto_num: i32) -> (u32, u32) {
        let n = proto_num.max(0) as u32;
        (n / 1000, n % 1000)
    }
}

impl fmt::Debug for HandshakeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeRequest")
            .field("method", &self.method)
            .field("http_version", &self.http_version)
            .finish_non_exhaustive()
    }
}

/// Which dialect of WebSocket a request speaks, decided from headers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// No `Upgrade: websocket`: an ordinary HTTP request.
    NotWebSocket,
    /// RFC 6455 or one of the hybi drafts 7/8 (it may still be malformed).
    Rfc6455,
    /// draft-75 or draft-76 (hixie): the legacy module's business.
    Legacy,
}

/// Sorts a request without validating it, so a module can decline what is
/// not its own before doing any real work.
///
/// `Sec-WebSocket-Key1`/`Key2` only exist in draft-76, so they mark a legacy
/// request. Without them, a request that carries neither
/// `Sec-WebSocket-Version` nor `Sec-WebSocket-Key` is draft-75; one that
/// carries either is meant as RFC 6455 even if it lacks the other, so that it
/// gets a 400 naming the missing header rather than silence from a module
/// that declined it.
pub fn classify(headers: &dyn HeaderSource) -> RequestKind {
    if !headers
        .get("Upgrade")
        .is_some_and(|v| list_contains(v, "websocket"))
    {
        return RequestKind::NotWebSocket;
    }
    if headers.get("Sec-WebSocket-Key1").is_some() || headers.get("Sec-WebSocket-Key2").is_some() {
        return RequestKind::Legacy;
    }
    if headers.get("Sec-WebSocket-Version").is_some() || headers.get("Sec-WebSocket-Key").is_some() {
        RequestKind::Rfc6455
    } else {
        RequestKind::Legacy
    }
}

/// One offered extension from `Sec-WebSocket-Extensions`, with its
/// parameters in the order sent. Quoted values arrive unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// `None` when the parameter is absent, `Some(None)` when it is present
    /// without a value. The first occurrence wins; negotiators that must
    /// reject repeated parameters (RFC 7692 §7) look at `params` directly.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// A valid opening handshake: everything the module needs to answer 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub version: ProtocolVersion,
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// Offered subprotocols, in the client's order of preference.
    pub protocols: Vec<String>,
    /// Offered extensions, in the client's order of preference.
    pub extensions: Vec<ExtensionOffer>,
    /// `Origin` for version 13; versions 7 and 8 sent `Sec-WebSocket-Origin`
    /// (we fall back to `Origin` for clients that mixed the two).
    pub origin: Option<String>,
}

impl Handshake {
    /// Validates an opening handshake (RFC 6455 §4.2.1).
    ///
    /// Checks run in an order that makes the answer useful: first whether
    /// this is a WebSocket request at all, then what makes it unanswerable
    /// (method, HTTP version), then the individual headers.
    pub fn from_request(req: &HandshakeRequest<'_>) -> Result<Handshake, HandshakeError> {
        let headers = req.headers;
        if !headers
            .get("Upgrade")
            .is_some_and(|v| list_contains(v, "websocket"))
        {
            return Err(HandshakeError::NotUpgrade);
        }
        if req.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed(excerpt(req.method)));
        }
        if req.http_version < (1, 1) {
            return Err(HandshakeError::HttpVersion(req.http_version));
        }
        if !headers
            .get("Connection")
            .is_some_and(|v| list_contains(v, "upgrade"))
        {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        match headers.get("Host").map(trim_ows) {
            Some(h) if !h.is_empty() => {}
            _ => return Err(HandshakeError::MissingHost),
        }
        let key = headers
            .get("Sec-WebSocket-Key")
            .ok_or(HandshakeError::MissingKey)?;
        let key = trim_ows(key);
        if !is_valid_key(key) {
            return Err(HandshakeError::BadKey(excerpt(key)));
        }
        let version = parse_version(
            headers
                .get("Sec-WebSocket-Version")
                .ok_or(HandshakeError::MissingVersion)?,
        )?;
        let protocols = match headers.get("Sec-WebSocket-Protocol") {
            Some(v) => parse_protocols(v)?,
            None => Vec::new(),
        };
        let extensions = match headers.get("Sec-WebSocket-Extensions") {
            Some(v) => parse_extensions(v)?,
            None => Vec::new(),
        };
        let origin = match version {
            ProtocolVersion::V13 => headers.get("Origin"),
            ProtocolVersion::V7 | ProtocolVersion::V8 => headers
                .get("Sec-WebSocket-Origin")
                .or_else(|| headers.get("Origin")),
        };
        Ok(Handshake {
            version,
            accept: accept_key(key),
            protocols,
            extensions,
            origin: origin.map(|o| trim_ows(o).to_owned()),
        })
    }

    /// Did the client offer this subprotocol? (A server must only pick one
    /// of those, RFC 6455 §4.2.2.)
    pub fn offers_protocol(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p == protocol)
    }

    /// The headers of the 101 response, in the order they should be sent.
    /// `protocol` is the subprotocol the application picked, `extensions`
    /// the already formatted `Sec-WebSocket-Extensions` answer.
    pub fn response_headers(
        &self,
        protocol: Option<&str>,
        extensions: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("Upgrade", "websocket".to_owned()),
            ("Connection", "Upgrade".to_owned()),
            ("Sec-WebSocket-Accept", self.accept.clone()),
        ];
        if let Some(p) = protocol {
            out.push(("Sec-WebSocket-Protocol", p.to_owned()));
        }
        if let Some(e) = extensions {
            out.push(("Sec-WebSocket-Extensions", e.to_owned()));
        }
        out
    }
}

/// Why an opening handshake was refused. Values quoted in the messages are
/// shortened and escaped: they come from the client and end up in the error
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// No `Upgrade: websocket`: not a WebSocket request, not an error. The
    /// module declines it.
    NotUpgrade,
    /// A WebSocket upgrade with a method other than GET.
    MethodNotAllowed(String),
    /// A WebSocket upgrade over HTTP/1.0 or older.
    HttpVersion((u32, u32)),
    /// `Connection` does not list `upgrade`.
    MissingConnectionUpgrade,
    MissingHost,
    MissingKey,
    /// `Sec-WebSocket-Key` is not the base64 of 16 bytes.
    BadKey(String),
    MissingVersion,
    /// `Sec-WebSocket-Version` is not a plain decimal number.
    BadVersionSyntax(String),
    /// A version number we do not speak.
    UnsupportedVersion(String),
    /// `Sec-WebSocket-Protocol` is not a non-empty list of tokens.
    BadProtocolList(String),
    /// `Sec-WebSocket-Extensions` does not follow RFC 6455 §9.1.
    BadExtensionList(String),
}

impl HandshakeError {
    /// The status to answer with (RFC 6455 §4.2.1, §4.4).
    ///
    /// `NotUpgrade` maps to 426 Upgrade Required for a module that wants to
    /// insist on WebSocket at a location; mod_websocket declines instead.
    pub fn http_status(&self) -> u16 {
        match self {
            HandshakeError::NotUpgrade => 426,
            HandshakeError::MethodNotAllowed(_) => 405,
            _ => 400,
        }
    }

    /// True when the request simply is not a WebSocket upgrade.
    pub fn is_not_websocket(&self) -> bool {
        matches!(self, HandshakeError::NotUpgrade)
    }

    /// A header to add to the error response, if any. Every version problem
    /// gets the list of versions we speak, so a client can retry with one
    /// (RFC 6455 §4.4 requires it for an unknown version; a missing or
    /// garbled one is no better understood).
    pub fn response_header(&self) -> Option<(&'static str, &'static str)> {
        match self {
            HandshakeError::MissingVersion
            | HandshakeError::BadVersionSyntax(_)
            | HandshakeError::UnsupportedVersion(_) => {
                Some(("Sec-WebSocket-Version", SUPPORTED_VERSIONS_HEADER))
            }
            _ => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::NotUpgrade => f.write_str("not a WebSocket request (no \"Upgrade: websocket\")"),
            HandshakeError::MethodNotAllowed(m) => {
                write!(f, "WebSocket upgrade with method \"{m}\" (only GET is allowed)")
            }
            HandshakeError::HttpVersion((major, minor)) => {
                write!(
                    f,
                    "WebSocket upgrade over HTTP/{major}.{minor} (HTTP/1.1 or later required)"
                )
            }
            HandshakeError::MissingConnectionUpgrade => {
                f.write_str("WebSocket upgrade without \"Connection: Upgrade\"")
            }
            HandshakeError::MissingHost => f.write_str("WebSocket upgrade without a Host header"),
            HandshakeError::MissingKey => f.write_str("WebSocket upgrade without a Sec-WebSocket-Key header"),
            HandshakeError::BadKey(k) => write!(
                f,
                "Sec-WebSocket-Key \"{k}\" is not the base64 encoding of 16 bytes"
            ),
            HandshakeError::MissingVersion => {
                f.write_str("WebSocket upgrade without a Sec-WebSocket-Version header")
            }
            HandshakeError::BadVersionSyntax(v) => {
                write!(f, "Sec-WebSocket-Version \"{v}\" is not a number")
            }
            HandshakeError::UnsupportedVersion(v) => write!(
                f,
                "unsupported Sec-WebSocket-Version {v} (supported: {SUPPORTED_VERSIONS_HEADER})"
            ),
            HandshakeError::BadProtocolList(why) => {
                write!(f, "malformed Sec-WebSocket-Protocol: {why}")
            }
            HandshakeError::BadExtensionList(why) => {
                write!(f, "malformed Sec-WebSocket-Extensions: {why}")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2 step 5.4). The
/// key is used exactly as given; callers trim it first.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// 16 bytes always encode to 22 characters plus "==", so anything of another
/// length is rejected before decoding. The standard engine also rejects
/// non-canonical trailing bits, which no conforming client produces.
fn is_valid_key(key: &str) -> bool {
    key.len() == 24 && BASE64.decode(key).is_ok_and(|k| k.len() == 16)
}

/// Only the exact spellings "13", "8" and "7" name a version we speak: the
/// RFC grammar has no leading zeros, so "013" is a number, but not one of
/// ours.
fn parse_version(value: &str) -> Result<ProtocolVersion, HandshakeError> {
    let v = trim_ows(value);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HandshakeError::BadVersionSyntax(excerpt(v)));
    }
    match v {
        "13" => Ok(ProtocolVersion::V13),
        "8" => Ok(ProtocolVersion::V8),
        "7" => Ok(ProtocolVersion::V7),
        _ => Err(HandshakeError::UnsupportedVersion(excerpt(v))),
    }
}

/// Parses `Sec-WebSocket-Protocol` (RFC 6455 §4.1, `1#token`).
///
/// Several header lines are one list (RFC 7230 §3.2.2; Apache joins them
/// with ", "). Empty list elements are skipped (RFC 7230 §7), but a value
/// with no token at all is malformed. A token offered more than once is
/// the client's mistake but harmless: it is kept once, at its first place.
pub fn parse_protocols(value: &str) -> Result<Vec<String>, HandshakeError> {
    let mut out: Vec<String> = Vec::new();
    for element in list_elements(value) {
        if !is_token(element) {
            return Err(HandshakeError::BadProtocolList(format!(
                "\"{}\" is not a token",
                excerpt(element)
            )));
        }
        if !out.iter().any(|p| p == element) {
            out.push(element.to_owned());
        }
    }
    if out.is_empty() {
        return Err(HandshakeError::BadProtocolList(
            "the header names no subprotocol".to_owned(),
        ));
    }
    Ok(out)
}

/// Parses `Sec-WebSocket-Extensions` (RFC 6455 §9.1):
///
/// ```text
/// extension-list = 1#extension
/// extension      = token *( ";" param )
/// param          = token [ "=" (token / quoted-string) ]
/// ```
///
/// with optional whitespace around every separator (the grammar uses RFC
/// 2616's implied linear whitespace). A quoted value, once unescaped, must
/// itself be a token. Empty list elements are skipped (RFC 7230 §7); the
/// same extension may be offered several times with different parameters
/// (alternatives, in order), and an identical offer repeated is kept once.
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    ExtensionParser {
        s: value.as_bytes(),
        pos: 0,
    }
    .parse()
    .map_err(|why| HandshakeError::BadExtensionList(why.to_owned()))
}

struct ExtensionParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl ExtensionParser<'_> {
    fn parse(mut self) -> Result<Vec<ExtensionOffer>, &'static str> {
        let mut out = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(out),
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name = self.token().ok_or("expected an extension name")?;
            let mut params = Vec::new();
            loop {
                self.skip_ows();
                match self.peek() {
                    None => break,
                    Some(b',') => {
                        self.pos += 1;
                        break;
                    }
                    Some(b';') => self.pos += 1,
                    Some(_) => return Err("expected ';' or ',' after an extension or parameter"),
                }
                self.skip_ows();
                let pname = self.token().ok_or("expected a parameter name after ';'")?;
                self.skip_ows();
                let value = if self.peek() == Some(b'=') {
                    self.pos += 1;
                    self.skip_ows();
                    let v = if self.peek() == Some(b'"') {
                        let v = self.quoted_string()?;
                        if !is_token(&v) {
                            return Err("a quoted parameter value is not a token");
                        }
                        v
                    } else {
                        self.token().ok_or("expected a parameter value after '='")?
                    };
                    Some(v)
                } else {
                    None
                };
                params.push((pname, value));
            }
            let offer = ExtensionOffer { name, params };
            // The same offer twice (a repeated header line) is one offer;
            // different parameters are alternatives and all kept.
            if !out.contains(&offer) {
                out.push(offer);
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        // tchars are ASCII, so the slice is valid UTF-8 on its own.
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// RFC 7230 §3.2.6 quoted-string; the caller has seen the opening quote.
    fn quoted_string(&mut self) -> Result<String, &'static str> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted-string"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) if c == b'\t' || c >= 0x20 && c != 0x7F => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err("bad escape in quoted-string"),
                    }
                }
                Some(c) if c == b'\t' || c >= 0x20 && c != 0x7F => {
                    out.push(c);
                    self.pos += 1;
                }
                Some(_) => return Err("control character in quoted-string"),
            }
        }
        // Non-ASCII bytes never survive the token check that follows, so a
        // lossy conversion loses nothing that matters.
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// RFC 7230 §3.2.6 tchar.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Optional whitespace is SP and HTAB only (RFC 7230 §3.2.3).
pub(crate) fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The non-empty elements of a comma-separated list, trimmed.
pub(crate) fn list_elements(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(trim_ows).filter(|e| !e.is_empty())
}

/// Does a comma-separated list contain `token` (ASCII case-insensitive)?
pub(crate) fn list_contains(value: &str, token: &str) -> bool {
    list_elements(value).any(|e| e.eq_ignore_ascii_case(token))
}

/// A client-supplied value made safe for the error log: at most 64
/// characters, with quotes, backslashes and anything outside printable
/// ASCII escaped.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.extend(c.escape_default()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    type Headers = Vec<(String, String)>;

    fn base_headers() -> Headers {
        [
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Origin", "http://example.com"),
            ("Sec-WebSocket-Version", "13"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    }

    /// `headers` with `name` replaced by `value`, or removed.
    fn with(headers: &Headers, name: &str, value: Option<&str>) -> Headers {
        let mut h: Headers = headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        if let Some(v) = value {
            h.push((name.to_owned(), v.to_owned()));
        }
        h
    }

    fn run(method: &str, version: (u32, u32), headers: &Headers) -> Result<Handshake, HandshakeError> {
        Handshake::from_request(&HandshakeRequest {
            method,
            http_version: version,
            headers,
        })
    }

    fn get(headers: &Headers) -> Result<Handshake, HandshakeError> {
        run("GET", (1, 1), headers)
    }

    fn err_with(name: &str, value: Option<&str>) -> HandshakeError {
        get(&with(&base_headers(), name, value)).unwrap_err()
    }

    #[test]
    fn rfc_6455_sample_accept_key() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_the_rfc_sample_request() {
        let hs = get(&with(
            &base_headers(),
            "Sec-WebSocket-Protocol",
            Some("chat, superchat"),
        ))
        .unwrap();
        assert_eq!(hs.version, ProtocolVersion::V13);
        assert_eq!(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(hs.protocols, ["chat", "superchat"]);
        assert!(hs.extensions.is_empty());
        assert_eq!(hs.origin.as_deref(), Some("http://example.com"));
        assert!(hs.offers_protocol("superchat"));
        assert!(!hs.offers_protocol("Chat"));
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let headers = [
            ("host", "h"),
            ("UPGRADE", "WebSocket"),
            ("connection", "keep-alive, UPGRADE"),
            ("sec-websocket-key", KEY),
            ("SEC-WEBSOCKET-VERSION", "13"),
        ];
        let req = HandshakeRequest {
            method: "GET",
            http_version: (1, 1),
            headers: &headers,
        };
        assert!(Handshake::from_request(&req).is_ok());
    }

    #[test]
    fn upgrade_and_connection_are_token_lists() {
        let h = with(&base_headers(), "Upgrade", Some("h2c ,  websocket"));
        let h = with(&h, "Connection", Some("keep-alive,Upgrade"));
        assert!(get(&h).is_ok());
        assert_eq!(
            get(&with(&base_headers(), "Connection", Some("upgraded"))).unwrap_err(),
            HandshakeError::MissingConnectionUpgrade
        );
    }

    #[test]
    fn key_and_version_tolerate_surrounding_whitespace() {
        let h = with(
            &base_headers(),
            "Sec-WebSocket-Key",
            Some(" \tdGhlIHNhbXBsZSBub25jZQ== "),
        );
        let h = with(&h, "Sec-WebSocket-Version", Some(" 13\t"));
        assert_eq!(get(&h).unwrap().accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn not_an_upgrade_is_not_an_error() {
        for upgrade in [
            None,
            Some("h2c"),
            Some("websockets"),
            Some(""),
            Some("web socket"),
        ] {
            let e = err_with("Upgrade", upgrade);
            assert_eq!(e, HandshakeError::NotUpgrade, "{upgrade:?}");
            assert!(e.is_not_websocket());
            assert_eq!(e.http_status(), 426);
        }
        // Even a POST over HTTP/1.0 is merely "not ours" without the upgrade.
        let h = with(&base_headers(), "Upgrade", None);
        assert_eq!(run("POST", (1, 0), &h).unwrap_err(), HandshakeError::NotUpgrade);
    }

    #[test]
    fn method_must_be_get() {
        for method in ["POST", "HEAD", "get", "CONNECT"] {
            let e = run(method, (1, 1), &base_headers()).unwrap_err();
            assert_eq!(e, HandshakeError::MethodNotAllowed(method.to_owned()));
            assert_eq!(e.http_status(), 405);
            assert!(!e.is_not_websocket());
            assert!(e.to_string().contains(method));
        }
    }

    #[test]
    fn http_version_must_be_at_least_1_1() {
        for v in [(0, 9), (1, 0)] {
            let e = run("GET", v, &base_headers()).unwrap_err();
            assert_eq!(e, HandshakeError::HttpVersion(v));
            assert_eq!(e.http_status(), 400);
        }
        assert!(run("GET", (1, 2), &base_headers()).is_ok());
        assert!(run("GET", (2, 0), &base_headers()).is_ok());
        assert_eq!(HandshakeRequest::version_from_proto_num(1001), (1, 1));
        assert_eq!(HandshakeRequest::version_from_proto_num(1000), (1, 0));
        assert_eq!(HandshakeRequest::version_from_proto_num(2000), (2, 0));
        assert_eq!(HandshakeRequest::version_from_proto_num(-1), (0, 0));
    }

    #[test]
    fn connection_upgrade_is_required() {
        for c in [None, Some("keep-alive"), Some("")] {
            let e = err_with("Connection", c);
            assert_eq!(e, HandshakeError::MissingConnectionUpgrade);
            assert_eq!(e.http_status(), 400);
        }
    }

    #[test]
    fn host_is_required() {
        for h in [None, Some(""), Some("  ")] {
            let e = err_with("Host", h);
            assert_eq!(e, HandshakeError::MissingHost);
            assert_eq!(e.http_status(), 400);
        }
    }

    #[test]
    fn key_is_required_and_must_be_16_bytes_of_base64() {
        let e = err_with("Sec-WebSocket-Key", None);
        assert_eq!(e, HandshakeError::MissingKey);
        assert_eq!(e.http_status(), 400);
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",                             // padding missing
            "dGhlIHNhbXBsZSBub25jZQ=",                            // padding short
            "dGhlIHNhbXBsZSBub25jZQ===",                          // padding long
            "dGhlIHNhbXBsZSBub25jZR==",                           // non-canonical trailing bits
            "dGhlIHNhbXBsZSBub25j",                               // 15 bytes
            "dGhlIHNhbXBsZSBub25jZTEy",                           // 18 bytes
            "dGhlIHNhbXBsZSBub25jZQ-_",                           // URL-safe alphabet
            "dGhlIHNhbXBsZSBub25j ZQ==",                          // inner space
            "dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ==", // sent twice
            "ZGhlIHNhbXBsZSBub25jZWU=",                           // 17 bytes
        ] {
            let e = err_with("Sec-WebSocket-Key", Some(bad));
            assert!(matches!(e, HandshakeError::BadKey(_)), "{bad:?}: {e:?}");
            assert_eq!(e.http_status(), 400);
            assert!(e.response_header().is_none());
        }
    }

    #[test]
    fn any_16_byte_key_is_accepted() {
        let key = BASE64.encode([0xFFu8; 16]);
        let hs = get(&with(&base_headers(), "Sec-WebSocket-Key", Some(&key))).unwrap();
        assert_eq!(hs.accept, accept_key(&key));
    }

    #[test]
    fn versions_13_8_and_7_are_spoken() {
        for (v, expected) in [
            ("13", ProtocolVersion::V13),
            ("8", ProtocolVersion::V8),
            ("7", ProtocolVersion::V7),
        ] {
            let hs = get(&with(&base_headers(), "Sec-WebSocket-Version", Some(v))).unwrap();
            assert_eq!(hs.version, expected);
        }
    }

    #[test]
    fn version_syntax_errors() {
        for bad in ["", " ", "+13", "-13", "13a", "1 3", "13, 8", "0x0d", "١٣", "13.0"] {
            let e = err_with("Sec-WebSocket-Version", Some(bad));
            assert!(matches!(e, HandshakeError::BadVersionSyntax(_)), "{bad:?}: {e:?}");
            assert_eq!(e.http_status(), 400);
            assert_eq!(e.response_header(), Some(("Sec-WebSocket-Version", "13, 8, 7")));
        }
    }

    #[test]
    fn unsupported_versions_get_the_supported_list() {
        for bad in ["0", "6", "9", "12", "14", "013", "99999999999999999999999"] {
            let e = err_with("Sec-WebSocket-Version", Some(bad));
            assert_eq!(e, HandshakeError::UnsupportedVersion(bad.to_owned()));
            assert_eq!(e.http_status(), 400);
            assert_eq!(
                e.response_header(),
                Some(("Sec-WebSocket-Version", SUPPORTED_VERSIONS_HEADER))
            );
            assert!(e.to_string().contains("13, 8, 7"));
        }
    }

    #[test]
    fn missing_version() {
        let e = err_with("Sec-WebSocket-Version", None);
        assert_eq!(e, HandshakeError::MissingVersion);
        assert_eq!(e.http_status(), 400);
        assert!(e.response_header().is_some());
    }

    #[test]
    fn origin_header_depends_on_version() {
        let h = with(
            &base_headers(),
            "Sec-WebSocket-Origin",
            Some("http://old.example"),
        );
        assert_eq!(get(&h).unwrap().origin.as_deref(), Some("http://example.com"));
        let h8 = with(&h, "Sec-WebSocket-Version", Some("8"));
        assert_eq!(get(&h8).unwrap().origin.as_deref(), Some("http://old.example"));
        // Version 7/8 clients that sent only Origin.
        let h7 = with(&base_headers(), "Sec-WebSocket-Version", Some("7"));
        assert_eq!(get(&h7).unwrap().origin.as_deref(), Some("http://example.com"));
        let none = with(&base_headers(), "Origin", None);
        assert_eq!(get(&none).unwrap().origin, None);
    }

    #[test]
    fn protocol_lists() {
        assert_eq!(parse_protocols("chat").unwrap(), ["chat"]);
        assert_eq!(parse_protocols(" a ,b,\tc ").unwrap(), ["a", "b", "c"]);
        assert_eq!(parse_protocols(",, a ,, b ,").unwrap(), ["a", "b"]);
        // Offered twice, in one line or across lines Apache joined: once.
        assert_eq!(parse_protocols("a, b, a").unwrap(), ["a", "b"]);
        assert_eq!(
            parse_protocols("chat, superchat, chat").unwrap(),
            ["chat", "superchat"]
        );
        assert_eq!(
            parse_protocols("v2.bookings.example.net, x~y|z").unwrap(),
            ["v2.bookings.example.net", "x~y|z"]
        );
        assert_eq!(parse_protocols("A, a").unwrap(), ["A", "a"]);
    }

    #[test]
    fn bad_protocol_lists() {
        for bad in [
            "a b",
            "a;b",
            "chat, \"chat\"",
            "a/b",
            "é",
            "x=1",
            // 1#token: at least one.
            "",
            " ",
            "\t \t",
            ",",
            ",,",
            ", ,",
            "a,(b)",
            "a\u{1}",
        ] {
            let e = parse_protocols(bad).unwrap_err();
            assert!(matches!(e, HandshakeError::BadProtocolList(_)), "{bad:?}");
            assert_eq!(e.http_status(), 400);
        }
        let e = err_with("Sec-WebSocket-Protocol", Some("chat, super chat"));
        assert!(matches!(e, HandshakeError::BadProtocolList(_)));
        assert!(e.to_string().contains("super chat"), "{e}");
    }

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn extension_lists() {
        assert_eq!(
            parse_extensions("permessage-deflate; client_max_window_bits, permessage-deflate").unwrap(),
            [
                ext("permessage-deflate", &[("client_max_window_bits", None)]),
                ext("permessage-deflate", &[]),
            ]
        );
        assert_eq!(
            parse_extensions("foo;a=1 ; b = \"2\";c=\"x\\yz\",\tbar ,,").unwrap(),
            [
                ext("foo", &[("a", Some("1")), ("b", Some("2")), ("c", Some("xyz"))]),
                ext("bar", &[]),
            ]
        );
        assert!(parse_extensions("").unwrap().is_empty());
        assert!(parse_extensions(" , ,").unwrap().is_empty());
        // Two header lines with the same offer, as Apache joins them.
        assert_eq!(
            parse_extensions("permessage-deflate; client_max_window_bits, permessage-deflate; client_max_window_bits, permessage-deflate")
                .unwrap(),
            [
                ext("permessage-deflate", &[("client_max_window_bits", None)]),
                ext("permessage-deflate", &[]),
            ]
        );
        let offer = &parse_extensions("x; A=1; b").unwrap()[0];
        assert_eq!(offer.param("a"), Some(Some("1")));
        assert_eq!(offer.param("B"), Some(None));
        assert_eq!(offer.param("c"), None);
    }

    #[test]
    fn bad_extension_lists() {
        for bad in [
            ";a",               // no name
            "foo;",             // empty parameter
            "foo;;a",           // empty parameter
            "foo;a=",           // no value
            "foo;a=\"1",        // unterminated
            "foo;a=\"1 2\"",    // unquoted value is not a token
            "foo;a=\"\"",       // empty value is not a token
            "foo;a=\"x,y\"",    // comma is not a tchar
            "foo;a=\"x\\\"",    // escape eats the closing quote
            "foo;a=\"x\u{1}\"", // control character
            "foo bar",          // two names
            "foo;a=1 2",        // two values
            "foo;a b",          // parameter followed by junk
            "foo=1",            // value on the extension itself
            "f(o)",             // non-token name
            "foo;a=\"é\"",      // non-ASCII
            "foo;a=b=c",
        ] {
            let e = parse_extensions(bad).unwrap_err();
            assert!(matches!(e, HandshakeError::BadExtensionList(_)), "{bad:?}");
            assert_eq!(e.http_status(), 400);
        }
        let e = err_with("Sec-WebSocket-Extensions", Some("foo; =1"));
        assert!(matches!(e, HandshakeError::BadExtensionList(_)));
    }

    #[test]
    fn extensions_reach_the_handshake() {
        let h = with(
            &base_headers(),
            "Sec-WebSocket-Extensions",
            Some("permessage-deflate; server_no_context_takeover"),
        );
        assert_eq!(
            get(&h).unwrap().extensions,
            [ext("permessage-deflate", &[("server_no_context_takeover", None)])]
        );
    }

    #[test]
    fn response_headers() {
        let hs = get(&base_headers()).unwrap();
        assert_eq!(
            hs.response_headers(None, None),
            [
                ("Upgrade", "websocket".to_owned()),
                ("Connection", "Upgrade".to_owned()),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_owned()),
            ]
        );
        let full = hs.response_headers(Some("chat"), Some("permessage-deflate"));
        assert_eq!(full.len(), 5);
        assert_eq!(full[3], ("Sec-WebSocket-Protocol", "chat".to_owned()));
        assert_eq!(
            full[4],
            ("Sec-WebSocket-Extensions", "permessage-deflate".to_owned())
        );
    }

    #[test]
    fn classification() {
        let rfc = base_headers();
        assert_eq!(classify(&rfc), RequestKind::Rfc6455);
        // A broken RFC request is still RFC 6455, so it gets its 400.
        assert_eq!(
            classify(&with(&rfc, "Sec-WebSocket-Version", None)),
            RequestKind::Rfc6455
        );
        assert_eq!(
            classify(&with(&rfc, "Sec-WebSocket-Key", None)),
            RequestKind::Rfc6455
        );
        assert_eq!(classify(&with(&rfc, "Upgrade", None)), RequestKind::NotWebSocket);
        assert_eq!(
            classify(&with(&rfc, "Upgrade", Some("h2c"))),
            RequestKind::NotWebSocket
        );
        let no_version = with(
            &with(&rfc, "Sec-WebSocket-Version", None),
            "Sec-WebSocket-Key",
            None,
        );
        let draft75 = with(&no_version, "Upgrade", Some("WebSocket"));
        assert_eq!(classify(&draft75), RequestKind::Legacy);
        let draft76 = with(&draft75, "Sec-WebSocket-Key1", Some("4 @1  46546xW%0l 1 5"));
        assert_eq!(classify(&draft76), RequestKind::Legacy);
        let key2_only = with(&rfc, "Sec-WebSocket-Key2", Some("12998 5 Y3 1  .P00"));
        assert_eq!(classify(&key2_only), RequestKind::Legacy);
        let empty: [(&str, &str); 0] = [];
        assert_eq!(classify(&empty), RequestKind::NotWebSocket);
    }

    #[test]
    fn error_messages_are_log_safe() {
        let e = err_with("Sec-WebSocket-Key", Some("\u{7}\"bad\"\\\n"));
        let msg = e.to_string();
        assert!(msg.chars().all(|c| (' '..='~').contains(&c)), "{msg}");
        assert!(msg.contains("\\\"bad\\\""), "{msg}");
        let long = "x".repeat(1000);
        assert!(excerpt(&long).len() < 100);
        assert_eq!(excerpt("é"), "\\u{e9}");
    }

    #[test]
    fn every_error_has_a_message() {
        let errors = [
            HandshakeError::NotUpgrade,
            HandshakeError::MethodNotAllowed("POST".into()),
            HandshakeError::HttpVersion((1, 0)),
            HandshakeError::MissingConnectionUpgrade,
            HandshakeError::MissingHost,
            HandshakeError::MissingKey,
            HandshakeError::BadKey("k".into()),
            HandshakeError::MissingVersion,
            HandshakeError::BadVersionSyntax("x".into()),
            HandshakeError::UnsupportedVersion("9".into()),
            HandshakeError::BadProtocolList("why".into()),
            HandshakeError::BadExtensionList("why".into()),
        ];
        for e in errors {
            assert!(!e.to_string().is_empty());
            let expected = match e {
                HandshakeError::NotUpgrade => 426,
                HandshakeError::MethodNotAllowed(_) => 405,
                _ => 400,
            };
            assert_eq!(e.http_status(), expected);
        }
    }

    #[test]
    fn borrowed_header_lists_work_too() {
        let owned = base_headers();
        let borrowed: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(HeaderSource::get(&borrowed, "sec-websocket-key"), Some(KEY));
        let slice: &[(&str, &str)] = &borrowed;
        assert!(Handshake::from_request(&HandshakeRequest {
            method: "GET",
            http_version: (1, 1),
            headers: &slice,
        })
        .is_ok());
    }
}
