//! Frame-level vocabulary of RFC 6455 §5.2.

use std::fmt;

/// A frame opcode known to RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl Opcode {
    /// Maps the low nibble of the first header byte; reserved opcodes are `None`.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        Some(match value {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// RSV1, the bit permessage-deflate (RFC 7692) uses to flag a compressed message.
pub const RSV1: u8 = 0x40;
pub const RSV2: u8 = 0x20;
pub const RSV3: u8 = 0x10;

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The `Sec-WebSocket-Version` a connection speaks. Versions 7 and 8 are the
/// hybi drafts browsers shipped before RFC 6455 (version 13); they differ in
/// the origin header name and the "message too big" close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtocolVersion {
    V7,
    V8,
    #[default]
    V13,
}

impl ProtocolVersion {
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            7 => Some(Self::V7),
            8 => Some(Self::V8),
            13 => Some(Self::V13),
            _ => None,
        }
    }

    pub fn number(self) -> u32 {
        match self {
            Self::V7 => 7,
            Self::V8 => 8,
            Self::V13 => 13,
        }
    }

    /// The hybi drafts had no 1009 yet and used 1004 for "frame too large".
    pub fn too_big_code(self) -> u16 {
        match self {
            Self::V7 | Self::V8 => 1004,
            Self::V13 => 1009,
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The RSV1..3 bits in their wire position (`RSV1 | RSV2 | RSV3` mask).
    pub rsv: u8,
    /// The raw opcode nibble (reserved values included, for error reporting).
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// The part of a header that comes before the masking key: everything a
/// receiver needs to refuse a frame, known as soon as the length field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePrefix {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload_len: u64,
}

/// Why a header is malformed on its own, before any stream context applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// A 64-bit length with the most significant bit set (RFC 6455 §5.2).
    LengthOverflow,
}

impl FrameHeader {
    pub fn prefix(&self) -> FramePrefix {
        FramePrefix {
            fin: self.fin,
            rsv: self.rsv,
            opcode: self.opcode,
            masked: self.mask.is_some(),
            payload_len: self.payload_len,
        }
    }

    /// Parses the start of a header up to its length field, so that a frame
    /// can be refused before its masking key arrives. `Ok(None)` when `buf`
    /// is too short to hold the length.
    pub fn parse_prefix(buf: &[u8]) -> Result<Option<FramePrefix>, HeaderError> {
        let Some((payload_len, _)) = Self::length_field(buf)? else {
            return Ok(None);
        };
        Ok(Some(FramePrefix {
            fin: buf[0] & 0x80 != 0,
            rsv: buf[0] & (RSV1 | RSV2 | RSV3),
            opcode: buf[0] & 0x0f,
            masked: buf[1] & 0x80 != 0,
            payload_len,
        }))
    }

    /// The payload length and where the length field ends, once `buf` holds it.
    #[inline]
    fn length_field(buf: &[u8]) -> Result<Option<(u64, usize)>, HeaderError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        Ok(Some(match buf[1] & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(HeaderError::LengthOverflow);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        }))
    }

    /// Parses a header from the start of `buf`. Returns the header and its
    /// length in bytes, or `Ok(None)` when `buf` is too short to tell.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        let Some((payload_len, mut pos)) = Self::length_field(buf)? else {
            return Ok(None);
        };
        let b0 = buf[0];
        let masked = buf[1] & 0x80 != 0;
        let mask = if masked {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            pos += 4;
            Some(key)
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv: b0 & (RSV1 | RSV2 | RSV3),
                opcode: b0 & 0x0f,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// The longest header RFC 6455 allows: 2 + 8 length bytes + 4 mask bytes.
    pub const MAX_LEN: usize = 14;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_known_before_the_mask() {
        // 64-bit length 2^63-1, masked, no key yet.
        let buf = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(FrameHeader::parse(&buf), Ok(None));
        let p = FrameHeader::parse_prefix(&buf).unwrap().unwrap();
        assert_eq!(
            p,
            FramePrefix {
                fin: true,
                rsv: 0,
                opcode: 2,
                masked: true,
                payload_len: (1 << 63) - 1
            }
        );
        assert_eq!(FrameHeader::parse_prefix(&buf[..9]), Ok(None));
        assert_eq!(FrameHeader::parse_prefix(&[0x81]), Ok(None));
        assert_eq!(FrameHeader::parse_prefix(&[0x81, 0xFE, 0x01]), Ok(None));
        assert_eq!(
            FrameHeader::parse_prefix(&[0x81, 0xFE, 0x01, 0x00])
                .unwrap()
                .unwrap()
                .payload_len,
            256
        );
        let mut over = buf;
        over[2] = 0x80;
        assert_eq!(FrameHeader::parse_prefix(&over), Err(HeaderError::LengthOverflow));
        // A complete header gives the same prefix.
        let full = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d];
        let (h, _) = FrameHeader::parse(&full).unwrap().unwrap();
        assert_eq!(FrameHeader::parse_prefix(&full).unwrap(), Some(h.prefix()));
    }

    #[test]
    fn parses_rfc_examples() {
        // RFC 6455 §5.7: single-frame unmasked text "Hello".
        let (h, n) = FrameHeader::parse(&[0x81, 0x05, 0x48]).unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, 1);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.mask, None);
        // masked
        let (h, n) = FrameHeader::parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        // 256 bytes binary, 16-bit length
        let (h, n) = FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        // 64 KiB binary, 64-bit length
        let (h, n) = FrameHeader::parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(FrameHeader::parse(&full[..cut]), Ok(None), "cut {cut}");
        }
        assert!(FrameHeader::parse(&full).unwrap().is_some());
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let buf = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&buf), Err(HeaderError::LengthOverflow));
    }

    #[test]
    fn opcodes() {
        for v in 0..16u8 {
            let known = matches!(v, 0 | 1 | 2 | 8 | 9 | 10);
            assert_eq!(Opcode::from_u8(v).is_some(), known);
        }
        assert!(Opcode::Ping.is_control());
        assert!(!Opcode::Continuation.is_control());
    }
}
