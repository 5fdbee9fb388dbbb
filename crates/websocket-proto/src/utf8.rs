//! Streaming UTF-8 validation for text messages that arrive in pieces.
//!
//! Text messages reach us split at frame and read boundaries, so a multi-byte
//! sequence can straddle two chunks. The validator keeps at most three bytes of
//! an unfinished sequence and reports an error as soon as a byte makes the
//! input impossible to complete, not when the message ends: RFC 6455 §8.1 lets
//! (and Autobahn's 6.4.x cases expect) an endpoint fail the connection early.

use std::fmt;

/// The text is not UTF-8 (or, at [`Utf8Validator::finish`], stops inside a
/// multi-byte sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8 in text data")
    }
}

impl std::error::Error for Utf8Error {}

/// Validates one text message fed in arbitrary chunks.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// Length of the sequence a valid lead byte starts (only called on bytes the
/// validator already accepted as the start of an incomplete sequence).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any unfinished sequence, ready for the next message.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// True when the bytes fed so far end on a character boundary.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Validates the next chunk. Fails as soon as the input can no longer be
    /// the prefix of valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let want = sequence_len(self.pending[0]);
            let take = (want - have).min(data.len());
            self.pending[have..have + take].copy_from_slice(&data[..take]);
            let filled = have + take;
            match simdutf8::compat::from_utf8(&self.pending[..filled]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(Utf8Error),
                Err(_) => {
                    // Still a valid prefix, but the chunk ran out first.
                    self.pending_len = filled as u8;
                    return Ok(());
                }
            }
            data = &data[take..];
        }
        if simdutf8::basic::from_utf8(data).is_ok() {
            return Ok(());
        }
        // The fast validator only says "no"; the compat one tells an invalid
        // byte from a sequence cut off by the end of the chunk.
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Utf8Error),
            Err(e) => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the message: an unfinished sequence is an error.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.is_complete();
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }
}

/// Validates a complete text in one go.
pub fn validate(data: &[u8]) -> Result<(), Utf8Error> {
    // Short ASCII messages are the common case; the SIMD validator's setup
    // costs more than the check itself at that size.
    if data.len() < 64 && data.is_ascii() {
        return Ok(());
    }
    simdutf8::basic::from_utf8(data)
        .map(|_| ())
        .map_err(|_| Utf8Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(chunks: &[&[u8]]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        for c in chunks {
            v.feed(c)?;
        }
        v.finish()
    }

    #[test]
    fn accepts_valid_text_split_anywhere() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \u{10FFFF}".as_bytes();
        for split in 0..=text.len() {
            assert_eq!(
                feed_all(&[&text[..split], &text[split..]]),
                Ok(()),
                "split {split}"
            );
        }
        let singles: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(feed_all(&singles), Ok(()));
    }

    #[test]
    fn fails_at_the_first_impossible_byte() {
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        // 0xED 0xA0 starts a UTF-16 surrogate: invalid before the sequence ends.
        assert_eq!(v.feed(&[0xED]), Ok(()));
        assert_eq!(v.feed(&[0xA0]), Err(Utf8Error));
    }

    #[test]
    fn rejects_overlong_and_out_of_range() {
        for bad in [
            &[0xC0, 0xAF][..],
            &[0xE0, 0x80, 0xAF],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xF5],
            &[0xFF],
            &[0x80],
        ] {
            let mut v = Utf8Validator::new();
            assert_eq!(
                v.feed(&bad[..1]).and_then(|_| v.feed(&bad[1..])),
                Err(Utf8Error),
                "{bad:x?}"
            );
        }
    }

    #[test]
    fn truncated_sequence_fails_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xF0, 0x9D]).unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(Utf8Error));
        // finish resets for the next message
        assert_eq!(feed_all(&[b"ok"]), Ok(()));
    }

    #[test]
    fn one_byte_at_a_time_over_a_four_byte_char() {
        let mut v = Utf8Validator::new();
        for b in "𝄞".as_bytes() {
            v.feed(std::slice::from_ref(b)).unwrap();
        }
        assert!(v.is_complete());
    }
}
