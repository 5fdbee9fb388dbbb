//! Frame headers for frames we send (RFC 6455 §5.2).
//!
//! Only the header is built here; the payload is written after it untouched,
//! so a large message goes out without a copy (a header bucket followed by a
//! bucket that points at the payload).

use crate::frame::{FrameHeader, Opcode, RSV1};

/// An encoded frame header (at most 14 bytes) on the stack.
#[derive(Debug, Clone, Copy)]
pub struct FrameHeaderBuf {
    buf: [u8; FrameHeader::MAX_LEN],
    len: u8,
}

impl FrameHeaderBuf {
    /// A server header: unmasked, with the shortest length encoding.
    #[inline]
    pub fn new(opcode: Opcode, fin: bool, compressed: bool, payload_len: u64) -> Self {
        Self::build(opcode, fin, compressed, payload_len, None)
    }

    /// A client header with a masking key (used by clients, tests and the
    /// benchmark load generator; the payload must then be masked with the key).
    pub fn masked(opcode: Opcode, fin: bool, compressed: bool, payload_len: u64, key: [u8; 4]) -> Self {
        Self::build(opcode, fin, compressed, payload_len, Some(key))
    }

    #[inline]
    fn build(opcode: Opcode, fin: bool, compressed: bool, len: u64, key: Option<[u8; 4]>) -> Self {
        let mut buf = [0u8; FrameHeader::MAX_LEN];
        buf[0] = (if fin { 0x80 } else { 0 }) | (if compressed { RSV1 } else { 0 }) | opcode as u8;
        let mask_bit = if key.is_some() { 0x80 } else { 0 };
        let mut pos = if len < 126 {
            buf[1] = mask_bit | len as u8;
            2
        } else if len <= u16::MAX as u64 {
            buf[1] = mask_bit | 126;
            buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            buf[1] = mask_bit | 127;
            buf[2..10].copy_from_slice(&len.to_be_bytes());
            10
        };
        if let Some(key) = key {
            buf[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        FrameHeaderBuf { buf, len: pos as u8 }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// Appends a whole unmasked frame to `out` (for small frames and tests; large
/// payloads should be sent after [`FrameHeaderBuf`] without copying).
pub fn write_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.extend_from_slice(FrameHeaderBuf::new(opcode, true, false, payload.len() as u64).as_bytes());
    out.extend_from_slice(payload);
}

/// Appends a whole masked (client) frame to `out`.
pub fn write_masked_frame(out: &mut Vec<u8>, opcode: Opcode, fin: bool, payload: &[u8], key: [u8; 4]) {
    out.extend_from_slice(FrameHeaderBuf::masked(opcode, fin, false, payload.len() as u64, key).as_bytes());
    let start = out.len();
    out.extend_from_slice(payload);
    crate::mask::apply_mask(&mut out[start..], key, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_length_forms() {
        assert_eq!(
            FrameHeaderBuf::new(Opcode::Text, true, false, 5).as_bytes(),
            &[0x81, 0x05]
        );
        assert_eq!(
            FrameHeaderBuf::new(Opcode::Binary, true, false, 125).as_bytes(),
            &[0x82, 125]
        );
        assert_eq!(
            FrameHeaderBuf::new(Opcode::Binary, true, false, 126).as_bytes(),
            &[0x82, 126, 0, 126]
        );
        assert_eq!(
            FrameHeaderBuf::new(Opcode::Binary, true, false, 65535).as_bytes(),
            &[0x82, 126, 0xff, 0xff]
        );
        assert_eq!(
            FrameHeaderBuf::new(Opcode::Binary, true, false, 65536).as_bytes(),
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(
            FrameHeaderBuf::new(Opcode::Text, false, true, 0).as_bytes(),
            &[0x41, 0]
        );
    }

    #[test]
    fn rfc_masked_hello() {
        let mut out = Vec::new();
        write_masked_frame(&mut out, Opcode::Text, true, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn header_round_trips_through_parser() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            let h = FrameHeaderBuf::new(Opcode::Binary, true, false, len);
            let (parsed, n) = FrameHeader::parse(h.as_bytes()).unwrap().unwrap();
            assert_eq!((parsed.payload_len, n), (len, h.as_bytes().len()));
        }
    }
}
