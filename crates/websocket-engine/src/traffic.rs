//! What a session sent: messages and bytes, and the first close frame, for
//! the line that logs the session's end.
//!
//! Plugins send through the queue or straight to the connection from any
//! of their threads, so the count is taken where every byte passes on its
//! way out, by following the frames in the written stream.

use crate::connection::Framing;

/// Follows the frames written to one connection.
#[derive(Debug)]
pub struct OutputCounter {
    framing: Framing,
    /// Bytes before the first frame (draft-76's handshake digest).
    preamble: usize,
    pub bytes: u64,
    pub messages: u64,
    /// The first close frame written: `Some(None)` when it had no code.
    pub close_sent: Option<Option<u16>>,
    // RFC 6455: the header being read, then the payload still to skip.
    header: Vec<u8>,
    remaining: u64,
    opcode: u8,
    fin: bool,
    close_code: Vec<u8>,
    // Legacy framing: inside a text frame, or just after a 0xFF opener.
    in_text: bool,
    after_ff: bool,
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;

impl OutputCounter {
    pub fn new(framing: Framing, preamble: usize) -> OutputCounter {
        OutputCounter {
            framing,
            preamble,
            bytes: 0,
            messages: 0,
            close_sent: None,
            header: Vec::with_capacity(14),
            remaining: 0,
            opcode: 0,
            fin: false,
            close_code: Vec::with_capacity(2),
            in_text: false,
            after_ff: false,
        }
    }

    /// Takes the next bytes of the output stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        let skip = self.preamble.min(data.len());
        self.preamble -= skip;
        let data = &data[skip..];
        match self.framing {
            Framing::Rfc6455 => self.feed_rfc6455(data),
            Framing::Legacy => self.feed_legacy(data),
        }
    }

    fn feed_rfc6455(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                if self.opcode == OP_CLOSE {
                    let want = 2usize.saturating_sub(self.close_code.len()).min(n);
                    self.close_code.extend_from_slice(&data[..want]);
                }
                data = &data[n..];
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.frame_done();
                }
                continue;
            }
            self.header.push(data[0]);
            data = &data[1..];
            if let Some(len) = header_payload_len(&self.header) {
                self.fin = self.header[0] & 0x80 != 0;
                self.opcode = self.header[0] & 0x0f;
                self.header.clear();
                self.close_code.clear();
                self.remaining = len;
                if len == 0 {
                    self.frame_done();
                }
            }
        }
    }

    fn frame_done(&mut self) {
        match self.opcode {
            OP_TEXT | OP_BINARY | OP_CONTINUATION if self.fin => self.messages += 1,
            OP_CLOSE if self.close_sent.is_none() => {
                self.close_sent = Some(
                    (self.close_code.len() == 2)
                        .then(|| u16::from_be_bytes([self.close_code[0], self.close_code[1]])),
                );
            }
            _ => {}
        }
    }

    fn feed_legacy(&mut self, data: &[u8]) {
        for &b in data {
            if self.in_text {
                if b == 0xff {
                    self.in_text = false;
                    self.messages += 1;
                }
            } else if self.after_ff {
                self.after_ff = false;
                if self.close_sent.is_none() {
                    self.close_sent = Some(None);
                }
            } else if b == 0x00 {
                self.in_text = true;
            } else if b == 0xff {
                self.after_ff = true;
            }
        }
    }
}

/// The payload length once `header` holds a whole (unmasked, server) frame
/// header.
fn header_payload_len(header: &[u8]) -> Option<u64> {
    if header.len() < 2 {
        return None;
    }
    let masked = header[1] & 0x80 != 0;
    let extra = if masked { 4 } else { 0 };
    match header[1] & 0x7f {
        126 if header.len() == 4 + extra => Some(u64::from(u16::from_be_bytes([header[2], header[3]]))),
        127 if header.len() == 10 + extra => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&header[2..10]);
            Some(u64::from_be_bytes(len))
        }
        126 | 127 => None,
        n if header.len() == 2 + extra => Some(u64::from(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use websocket_proto::close::{CloseCode, ClosePayload};
    use websocket_proto::encoder::FrameHeaderBuf;
    use websocket_proto::Opcode;

    fn frame(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = FrameHeaderBuf::new(opcode, fin, false, payload.len() as u64)
            .as_bytes()
            .to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn counts_messages_and_the_close_code_in_any_split() {
        let mut stream = Vec::new();
        stream.extend(frame(Opcode::Text, true, b"hello"));
        stream.extend(frame(Opcode::Ping, true, b""));
        stream.extend(frame(Opcode::Binary, false, &[7u8; 300]));
        stream.extend(frame(Opcode::Continuation, true, &[8u8; 70000]));
        stream.extend(frame(
            Opcode::Close,
            true,
            ClosePayload::new(CloseCode::GOING_AWAY, "bye").as_bytes(),
        ));
        stream.extend(frame(Opcode::Text, true, b"after"));
        for chunk in [1, 2, 3, 7, 100, 65536, stream.len()] {
            let mut c = OutputCounter::new(Framing::Rfc6455, 0);
            for piece in stream.chunks(chunk) {
                c.feed(piece);
            }
            assert_eq!(c.bytes, stream.len() as u64, "chunk {chunk}");
            assert_eq!(c.messages, 3, "chunk {chunk}");
            assert_eq!(c.close_sent, Some(Some(1001)), "chunk {chunk}");
        }
    }

    #[test]
    fn a_close_without_code() {
        let mut c = OutputCounter::new(Framing::Rfc6455, 0);
        c.feed(&frame(Opcode::Close, true, b""));
        assert_eq!((c.messages, c.close_sent), (0, Some(None)));
    }

    #[test]
    fn legacy_frames_after_the_digest() {
        let mut c = OutputCounter::new(Framing::Legacy, 16);
        let mut stream = vec![0xffu8, 0x00, 0x12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        stream.extend_from_slice(b"\x00one\xff\x00two\xff\xff\x00");
        for b in &stream {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!((c.messages, c.close_sent), (2, Some(None)));
    }
}
