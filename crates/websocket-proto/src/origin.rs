//! Origins (RFC 6454) and the checks behind `WebSocketOriginCheck`.
//!
//! Browsers send the serialization of an origin: `scheme "://" host [ ":"
//! port ]`, or `null` for opaque origins (sandboxed frames, `file:` pages).
//! We parse strictly, because the same parser reads `WebSocketTrustedOrigin`
//! entries and a typo there should stop the server at startup rather than
//! silently trust nothing:
//!
//! - the scheme is an RFC 3986 scheme, the host a DNS-style name or IPv4
//!   address (letters, digits, `-`, `.`, `_`) or a bracketed IPv6 literal
//!   without zone; the port, when present, is 1 to 5 digits up to 65535;
//! - no userinfo, path, query or fragment, with one concession: a single
//!   trailing `/` is ignored, because administrators paste URLs;
//! - scheme and host compare case-insensitively, IPv6 literals by address
//!   (`[0::1]` is `[::1]`), and a port equal to the scheme's default is the
//!   same as no port. `ws`/`wss` are treated as `http`/`https`: a page
//!   served over https talks to its own server over wss.

use std::fmt;
use std::net::Ipv6Addr;

/// A parsed, normalized origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The opaque origin `null`.
    Null,
    Tuple(TupleOrigin),
}

/// A scheme/host/port origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TupleOrigin {
    /// Lowercase; `ws` and `wss` are stored as `http` and `https`.
    pub scheme: String,
    /// Lowercase; an IPv6 literal keeps its brackets and is in canonical
    /// form.
    pub host: String,
    /// The explicit port, or the scheme's default; `None` only for schemes
    /// without a default that were given without a port.
    pub port: Option<u16>,
}

/// Why a string is not an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginError {
    Empty,
    /// No `://` after a valid scheme.
    BadScheme,
    BadHost,
    BadPort,
    /// Userinfo, path, query or fragment.
    NotAnOrigin,
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OriginError::Empty => "empty origin",
            OriginError::BadScheme => "origin does not start with a scheme followed by \"://\"",
            OriginError::BadHost => "origin has an invalid host",
            OriginError::BadPort => "origin has an invalid port",
            OriginError::NotAnOrigin => {
                "an origin is scheme://host[:port], without user, path, query or fragment"
            }
        })
    }
}

impl std::error::Error for OriginError {}

/// The port a scheme implies when none is written.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `ws`/`wss` are the same origins as `http`/`https` for our purposes.
fn canonical_scheme(scheme: &str) -> String {
    let lower = scheme.to_ascii_lowercase();
    match lower.as_str() {
        "ws" => "http".to_owned(),
        "wss" => "https".to_owned(),
        _ => lower,
    }
}

impl Origin {
    /// Parses an origin serialization (see the module documentation for how
    /// strict this is). Surrounding spaces and tabs are ignored.
    pub fn parse(s: &str) -> Result<Origin, OriginError> {
        let s = s.trim_matches([' ', '\t']);
        if s.is_empty() {
            return Err(OriginError::Empty);
        }
        if s == "null" {
            return Ok(Origin::Null);
        }
        let (scheme, rest) = s.split_once("://").ok_or(OriginError::BadScheme)?;
        if !is_scheme(scheme) {
            return Err(OriginError::BadScheme);
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(OriginError::NotAnOrigin);
        }
        let (host, port) = parse_authority(authority)?;
        Ok(Origin::Tuple(TupleOrigin {
            port: port.or_else(|| default_port(scheme)),
            scheme: canonical_scheme(scheme),
            host,
        }))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Origin::Null)
    }
}

impl std::str::FromStr for Origin {
    type Err = OriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Origin::parse(s)
    }
}

/// The normalized serialization, with the port only when it is not the
/// scheme's default.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Null => f.write_str("null"),
            Origin::Tuple(t) => {
                write!(f, "{}://{}", t.scheme, t.host)?;
                match t.port {
                    Some(p) if Some(p) != default_port(&t.scheme) => write!(f, ":{p}"),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Splits `host[:port]` (a `Host` header) into its parts, IPv6 literals
/// keeping their brackets. The host is validated like an origin's host but
/// returned as written: the draft-76 handshake echoes it in the location.
pub fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), OriginError> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(OriginError::BadHost)?;
        let (host, after) = authority.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(OriginError::BadHost),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    normalize_host(host)?;
    Ok((host, port))
}

/// Parses and normalizes `host[:port]`.
fn parse_authority(authority: &str) -> Result<(String, Option<u16>), OriginError> {
    let (host, port) = split_host_port(authority)?;
    Ok((normalize_host(host)?, port))
}

/// An empty port (`host:`) is legal in a URI but never appears in a
/// browser's serialization, so it is refused here as a likely typo.
fn parse_port(p: &str) -> Result<u16, OriginError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OriginError::BadPort);
    }
    p.parse().map_err(|_| OriginError::BadPort)
}

fn normalize_host(host: &str) -> Result<String, OriginError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(OriginError::BadHost)?;
        let addr: Ipv6Addr = inner.parse().map_err(|_| OriginError::BadHost)?;
        return Ok(format!("[{addr}]"));
    }
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if valid {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(OriginError::BadHost)
    }
}

/// Is `origin` (an `Origin` header value) the origin of the request itself?
///
/// `request_scheme` is how the request arrived (`http` or `https`; `ws`/`wss`
/// work too), `request_host_header` its `Host` header, and `default_port`
/// the port to assume when `Host` names none. `null`, unparsable values and
/// unparsable `Host` headers never match.
pub fn same_origin(origin: &str, request_scheme: &str, request_host_header: &str, default_port: u16) -> bool {
    let Ok(Origin::Tuple(origin)) = Origin::parse(origin) else {
        return false;
    };
    let Ok((host, port)) = parse_authority(request_host_header.trim_matches([' ', '\t'])) else {
        return false;
    };
    origin.scheme == canonical_scheme(request_scheme)
        && origin.host == host
        && origin.port == Some(port.unwrap_or(default_port))
}

/// The origins trusted by `WebSocketTrustedOrigin`, parsed once at
/// configuration time and compared exactly after normalization.
///
/// An explicit `null` entry trusts every opaque origin, sandboxed frames
/// and local files included; it is allowed because only an administrator
/// can write it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginList {
    entries: Vec<Origin>,
}

impl OriginList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses every entry; the error names the first bad one so the
    /// directive can report it.
    pub fn parse<'a, I>(entries: I) -> Result<Self, (String, OriginError)>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut list = Self::new();
        for e in entries {
            list.add(e).map_err(|err| (e.to_owned(), err))?;
        }
        Ok(list)
    }

    /// Adds one configured entry; duplicates are dropped.
    pub fn add(&mut self, entry: &str) -> Result<(), OriginError> {
        let origin = Origin::parse(entry)?;
        if !self.entries.contains(&origin) {
            self.entries.push(origin);
        }
        Ok(())
    }

    /// Appends another list, as a per-directory merge does.
    pub fn extend(&mut self, other: &OriginList) {
        for o in &other.entries {
            if !self.entries.contains(o) {
                self.entries.push(o.clone());
            }
        }
    }

    pub fn matches(&self, origin: &Origin) -> bool {
        self.entries.contains(origin)
    }

    /// Checks an `Origin` header value; an unparsable one never matches.
    pub fn matches_header(&self, origin: &str) -> bool {
        Origin::parse(origin).is_ok_and(|o| self.matches(&o))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Origin> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(scheme: &str, host: &str, port: Option<u16>) -> Origin {
        Origin::Tuple(TupleOrigin {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
        })
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(
            Origin::parse("http://example.com").unwrap(),
            tuple("http", "example.com", Some(80))
        );
        assert_eq!(
            Origin::parse("HTTPS://Example.COM").unwrap(),
            tuple("https", "example.com", Some(443))
        );
        assert_eq!(
            Origin::parse(" http://example.com:8080\t").unwrap(),
            tuple("http", "example.com", Some(8080))
        );
        assert_eq!(
            Origin::parse("wss://a.b").unwrap(),
            tuple("https", "a.b", Some(443))
        );
        assert_eq!(
            Origin::parse("ws://127.0.0.1:9000").unwrap(),
            tuple("http", "127.0.0.1", Some(9000))
        );
        assert_eq!(
            Origin::parse("chrome-extension://abcdef").unwrap(),
            tuple("chrome-extension", "abcdef", None)
        );
        assert_eq!(
            Origin::parse("http://under_score.example:0").unwrap(),
            tuple("http", "under_score.example", Some(0))
        );
    }

    #[test]
    fn default_ports_are_implicit() {
        let p = |s| Origin::parse(s).unwrap();
        assert_eq!(p("http://a.example:80"), p("http://a.example"));
        assert_eq!(p("https://a.example:443"), p("https://a.example"));
        assert_eq!(p("ws://a.example"), p("http://a.example:80"));
        assert_eq!(p("wss://a.example:443"), p("https://a.example"));
        assert_ne!(p("http://a.example:443"), p("https://a.example"));
        assert_ne!(p("http://a.example"), p("https://a.example"));
        assert_ne!(p("http://a.example:8080"), p("http://a.example"));
        assert_ne!(p("foo://a.example"), p("foo://a.example:80"));
    }

    #[test]
    fn ipv6_literals() {
        assert_eq!(
            Origin::parse("http://[::1]:8080").unwrap(),
            tuple("http", "[::1]", Some(8080))
        );
        assert_eq!(
            Origin::parse("https://[0:0:0:0:0:0:0:1]").unwrap(),
            Origin::parse("https://[::1]:443").unwrap()
        );
        assert_eq!(
            Origin::parse("http://[2001:DB8::A]").unwrap(),
            tuple("http", "[2001:db8::a]", Some(80))
        );
        for bad in [
            "http://[::1",
            "http://::1",
            "http://[::1]x",
            "http://[::1]]",
            "http://[fe80::1%25eth0]",
            "http://[127.0.0.1]",
            "http://[]",
            "http://[::1]:",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_origin() {
        assert_eq!(Origin::parse("null").unwrap(), Origin::Null);
        assert!(Origin::parse(" null ").unwrap().is_null());
        assert_eq!(Origin::parse("NULL"), Err(OriginError::BadScheme));
        assert!(!same_origin("null", "http", "null", 80));
    }

    #[test]
    fn trailing_slash_is_tolerated_but_nothing_else() {
        assert_eq!(
            Origin::parse("https://example.com/").unwrap(),
            Origin::parse("https://example.com").unwrap()
        );
        for bad in [
            "https://example.com//",
            "https://example.com/path",
            "https://example.com:8443/x",
            "https://example.com?q",
            "https://example.com#f",
            "https://user@example.com",
            "https://user:pw@example.com",
        ] {
            assert_eq!(Origin::parse(bad), Err(OriginError::NotAnOrigin), "{bad}");
        }
    }

    #[test]
    fn garbage() {
        assert_eq!(Origin::parse(""), Err(OriginError::Empty));
        assert_eq!(Origin::parse("  "), Err(OriginError::Empty));
        for (bad, err) in [
            ("example.com", OriginError::BadScheme),
            ("http:example.com", OriginError::BadScheme),
            ("http:/example.com", OriginError::BadScheme),
            ("://example.com", OriginError::BadScheme),
            ("1http://example.com", OriginError::BadScheme),
            ("ht tp://example.com", OriginError::BadScheme),
            ("http://", OriginError::BadHost),
            ("http://:80", OriginError::BadHost),
            ("http://exa mple.com", OriginError::BadHost),
            ("http://exämple.com", OriginError::BadHost),
            ("http://a.example, http://b.example", OriginError::NotAnOrigin),
            ("http://a.example http://b.example", OriginError::NotAnOrigin),
            ("http://a.example:", OriginError::BadPort),
            ("http://a.example:65536", OriginError::BadPort),
            ("http://a.example:123456", OriginError::BadPort),
            ("http://a.example:+80", OriginError::BadPort),
            ("http://a.example:8a", OriginError::BadPort),
            ("http://a.example:80:80", OriginError::BadPort),
        ] {
            assert_eq!(Origin::parse(bad), Err(err), "{bad}");
            assert!(!Origin::parse(bad).unwrap_err().to_string().is_empty());
        }
    }

    #[test]
    fn display_is_the_normalized_serialization() {
        for (input, shown) in [
            ("HTTP://Example.com:80", "http://example.com"),
            ("wss://example.com:8443/", "https://example.com:8443"),
            ("http://[0::1]:81", "http://[::1]:81"),
            ("null", "null"),
            ("x-app://thing", "x-app://thing"),
        ] {
            assert_eq!(Origin::parse(input).unwrap().to_string(), shown);
            assert_eq!(shown.parse::<Origin>(), Origin::parse(input));
        }
    }

    #[test]
    fn same_origin_checks() {
        assert!(same_origin("http://example.com", "http", "example.com", 80));
        assert!(same_origin("http://example.com:80", "http", "EXAMPLE.com", 80));
        assert!(same_origin(
            "https://example.com",
            "https",
            "example.com:443",
            443
        ));
        assert!(same_origin(
            "http://example.com:8080",
            "http",
            "example.com:8080",
            80
        ));
        // No port in Host: the server's port is assumed.
        assert!(same_origin(
            "http://example.com:8080",
            "http",
            "example.com",
            8080
        ));
        assert!(same_origin("ws://example.com", "http", "example.com", 80));
        assert!(same_origin("https://example.com", "wss", "example.com", 443));
        assert!(same_origin("http://[::1]:8080", "http", "[0:0::1]:8080", 80));
        assert!(same_origin("http://example.com", "HTTP", " example.com ", 80));

        assert!(!same_origin("https://example.com", "http", "example.com", 80));
        assert!(!same_origin("http://example.com", "https", "example.com", 443));
        assert!(!same_origin("http://evil.com", "http", "example.com", 80));
        assert!(!same_origin("http://example.com:8080", "http", "example.com", 80));
        assert!(!same_origin("http://example.com", "http", "example.com:8080", 80));
        assert!(!same_origin(
            "http://example.com.evil.com",
            "http",
            "example.com",
            80
        ));
        assert!(!same_origin("garbage", "http", "example.com", 80));
        assert!(!same_origin("http://example.com", "http", "exa mple.com", 80));
        assert!(!same_origin("http://example.com", "http", "", 80));
        assert!(!same_origin("http://example.com", "http", "example.com:x", 80));
    }

    #[test]
    fn split_host_port_keeps_the_raw_host() {
        assert_eq!(split_host_port("Example.com"), Ok(("Example.com", None)));
        assert_eq!(split_host_port("example.com:81"), Ok(("example.com", Some(81))));
        assert_eq!(split_host_port("[::1]:81"), Ok(("[::1]", Some(81))));
        assert_eq!(split_host_port("[::1]"), Ok(("[::1]", None)));
        assert_eq!(split_host_port("[::1"), Err(OriginError::BadHost));
        assert_eq!(split_host_port("a:b"), Err(OriginError::BadPort));
        assert_eq!(split_host_port("a\u{1}b"), Err(OriginError::BadHost));
        assert_eq!(split_host_port(""), Err(OriginError::BadHost));
    }

    #[test]
    fn trusted_origin_list() {
        let list = OriginList::parse([
            "https://app.example.com",
            "http://localhost:8080/",
            "null",
            "HTTPS://APP.example.com:443",
        ])
        .unwrap();
        assert_eq!(list.len(), 3, "duplicates after normalization are dropped");
        assert!(list.matches_header("https://app.example.com"));
        assert!(list.matches_header("wss://app.example.com:443"));
        assert!(list.matches_header("http://LOCALHOST:8080"));
        assert!(list.matches_header("null"));
        assert!(!list.matches_header("http://app.example.com"));
        assert!(!list.matches_header("https://other.example.com"));
        assert!(!list.matches_header("http://localhost"));
        assert!(!list.matches_header("garbage"));
        assert!(!list.matches_header(""));
        assert!(list.matches(&Origin::Null));

        let err = OriginList::parse(["https://ok.example", "https://bad.example/path"]).unwrap_err();
        assert_eq!(
            err,
            ("https://bad.example/path".to_owned(), OriginError::NotAnOrigin)
        );

        let mut merged = OriginList::new();
        assert!(merged.is_empty());
        merged.add("https://a.example").unwrap();
        assert_eq!(merged.add("nope"), Err(OriginError::BadScheme));
        merged.extend(&list);
        assert_eq!(merged.len(), 4);
        assert_eq!(merged.iter().next().unwrap().to_string(), "https://a.example");
        merged.extend(&list);
        assert_eq!(merged.len(), 4);
    }
}
