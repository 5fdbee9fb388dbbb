//! Close frames (RFC 6455 §5.5.1, §7.4).

use std::fmt;

/// A status code carried in a close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reserved in RFC 6455; the hybi-07/08 drafts used it for "frame too large".
    pub const FRAME_TOO_LARGE_DRAFT: CloseCode = CloseCode(1004);
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// May this code appear in a close frame received from a peer?
    /// Registered codes 1000-1003 and 1007-1014, and the 3000-4999 ranges for
    /// libraries and applications. 1004-1006 and 1015 are never sent; the rest
    /// of 1000-2999 is reserved for future RFCs.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// "Reserved" in RFC 6455 §7.4.1 (1004) or for future protocol
    /// revisions (1016-2999), but not forbidden on the wire the way 1005,
    /// 1006 and 1015 are: `WebSocketAllowReservedStatusCodes` lets
    /// applications use them.
    pub fn is_reserved(self) -> bool {
        matches!(self.0, 1004 | 1016..=2999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A close frame body that violates RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseError {
    /// A one-byte body cannot hold a status code.
    Truncated,
    /// A status code that must not appear on the wire.
    InvalidCode(u16),
    /// The reason is not UTF-8.
    InvalidReason,
}

impl CloseError {
    /// The close code to fail the connection with.
    pub fn close_code(self) -> CloseCode {
        match self {
            CloseError::InvalidReason => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::Truncated => f.write_str("close frame with a one-byte body"),
            CloseError::InvalidCode(c) => write!(f, "close frame with invalid status code {c}"),
            CloseError::InvalidReason => f.write_str("close frame reason is not UTF-8"),
        }
    }
}

impl std::error::Error for CloseError {}

/// A validated close frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// `None` when the peer sent an empty body (which we report as 1005).
    pub code: Option<CloseCode>,
    pub reason: &'a str,
}

/// Parses and validates a close frame body. With `allow_reserved`, the
/// reserved codes (1004 and 1016-2999) are accepted.
pub fn parse_close(payload: &[u8], allow_reserved: bool) -> Result<CloseFrame<'_>, CloseError> {
    match payload.len() {
        0 => Ok(CloseFrame {
            code: None,
            reason: "",
        }),
        1 => Err(CloseError::Truncated),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !(code.is_valid_on_wire() || allow_reserved && code.is_reserved()) {
                return Err(CloseError::InvalidCode(code.0));
            }
            let reason = simdutf8::basic::from_utf8(&payload[2..]).map_err(|_| CloseError::InvalidReason)?;
            Ok(CloseFrame {
                code: Some(code),
                reason,
            })
        }
    }
}

/// A close frame body of at most 125 bytes, built without allocating.
#[derive(Debug, Clone, Copy)]
pub struct ClosePayload {
    buf: [u8; crate::frame::MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl ClosePayload {
    /// Code plus reason; the reason is cut at a character boundary so the
    /// body fits in a control frame.
    pub fn new(code: CloseCode, reason: &str) -> Self {
        let mut buf = [0u8; crate::frame::MAX_CONTROL_PAYLOAD];
        buf[..2].copy_from_slice(&code.0.to_be_bytes());
        let mut cut = reason.len().min(buf.len() - 2);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        buf[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
        ClosePayload {
            buf,
            len: (2 + cut) as u8,
        }
    }

    /// An empty body (no status code).
    pub fn empty() -> Self {
        ClosePayload {
            buf: [0u8; crate::frame::MAX_CONTROL_PAYLOAD],
            len: 0,
        }
    }

    /// The reply to a peer's close: echo its code (RFC 6455 §5.5.1), or an
    /// empty body when it sent none.
    pub fn reply_to(frame: &CloseFrame<'_>) -> Self {
        match frame.code {
            Some(code) => ClosePayload::new(code, ""),
            None => ClosePayload::empty(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_codes() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
        ];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in valid {
            assert!(parse_close(&(c as u16).to_be_bytes(), false).is_ok(), "{c}");
        }
        for c in invalid {
            assert_eq!(
                parse_close(&(c as u16).to_be_bytes(), false),
                Err(CloseError::InvalidCode(c as u16))
            );
        }
    }

    #[test]
    fn reserved_codes_only_when_allowed() {
        // 1004 is "Reserved" like 1016-2999 (RFC 6455 §7.4.1); 1005, 1006
        // and 1015 must never appear on the wire.
        for c in [1004u16, 1016, 2000, 2999] {
            assert!(parse_close(&c.to_be_bytes(), false).is_err(), "{c}");
            assert!(parse_close(&c.to_be_bytes(), true).is_ok(), "{c}");
        }
        for c in [0u16, 999, 1005, 1006, 1015, 5000, 65535] {
            assert!(parse_close(&c.to_be_bytes(), true).is_err(), "{c}");
        }
        // The IANA-registered 1012-1014 need no option.
        for c in [1012u16, 1013, 1014] {
            assert!(parse_close(&c.to_be_bytes(), false).is_ok(), "{c}");
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_close(&[], false).unwrap().code, None);
        assert_eq!(parse_close(&[0x03], false), Err(CloseError::Truncated));
        assert_eq!(CloseError::Truncated.close_code(), CloseCode::PROTOCOL_ERROR);
        let mut body = vec![0x03, 0xE8];
        body.extend_from_slice("bye ✓".as_bytes());
        let f = parse_close(&body, false).unwrap();
        assert_eq!((f.code, f.reason), (Some(CloseCode::NORMAL), "bye ✓"));
        let bad = [0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD];
        assert_eq!(parse_close(&bad, false), Err(CloseError::InvalidReason));
        assert_eq!(CloseError::InvalidReason.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn payload_building() {
        assert_eq!(
            ClosePayload::new(CloseCode(1002), "x").as_bytes(),
            &[0x03, 0xEA, b'x']
        );
        let long = "é".repeat(100);
        let p = ClosePayload::new(CloseCode::NORMAL, &long);
        assert!(p.as_bytes().len() <= 125);
        assert!(std::str::from_utf8(&p.as_bytes()[2..]).is_ok());
        let echoed = ClosePayload::reply_to(&parse_close(&[0x0F, 0xA0, b'a'], false).unwrap());
        assert_eq!(echoed.as_bytes(), &[0x0F, 0xA0]);
        assert!(ClosePayload::reply_to(&parse_close(&[], false).unwrap())
            .as_bytes()
            .is_empty());
    }
}
