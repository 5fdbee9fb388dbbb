//! The messages the client sends, built once before the run.
//!
//! Every message starts with an 8-byte ASCII sequence tag (hex), so an echo
//! that comes back out of order or from another message is caught, and the
//! rest is a fixed template. Templates are masked once: per message only the
//! tag is masked afresh, and large payloads are written straight from the
//! premasked template.

use flate2::{Compress, Compression, FlushCompress};

/// Length of the per-message tag at the start of every payload.
pub const TAG_LEN: usize = 8;

/// The masking key of every frame the client sends. RFC 6455 wants keys
/// unpredictable to defeat cache poisoning through proxies that do not
/// understand WebSocket; a benchmark on loopback has no such proxy.
pub const MASK_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// What kind of payload a case sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Pseudo-random bytes.
    Binary,
    /// Valid UTF-8 mixing 1-, 2-, 3- and 4-byte characters.
    MixedText,
    /// English-like text that deflate shrinks several times.
    CompressibleText,
}

/// A small, fast, deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The tag of message `seq`: its low 32 bits as 8 lowercase hex digits.
pub fn tag(seq: u64) -> [u8; TAG_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [0u8; TAG_LEN];
    let v = seq as u32;
    for (i, b) in t.iter_mut().enumerate() {
        *b = HEX[((v >> (28 - 4 * i)) & 0xf) as usize];
    }
    t
}

/// XORs `data` with `key`, `data[0]` taking `key[offset % 4]`.
pub fn mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

/// A payload of exactly `size` bytes (at least [`TAG_LEN`]) whose first
/// [`TAG_LEN`] bytes are ASCII placeholders for the tag.
pub fn template(content: Content, size: usize, seed: u64) -> Vec<u8> {
    assert!(size >= TAG_LEN, "messages carry an {TAG_LEN}-byte tag");
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[b'#'; TAG_LEN]);
    let mut rng = Rng::new(seed);
    match content {
        Content::Binary => {
            while out.len() < size {
                let word = rng.next_u64().to_le_bytes();
                let n = word.len().min(size - out.len());
                out.extend_from_slice(&word[..n]);
            }
        }
        Content::MixedText => {
            const PIECES: &[&str] = &[
                "Grüße aus Köln, ",
                "κόσμε και θάλασσα, ",
                "こんにちは世界、",
                "𝄞 music 𝄢 and 😀 smiles, ",
                "ascii words 0123456789; ",
                "Ærø Øresund ß ñ ç, ",
                "中文字符测试，",
                "emoji 🚀🌍✨ ",
            ];
            fill_text(&mut out, size, &mut rng, PIECES);
        }
        Content::CompressibleText => {
            fill_text(&mut out, size, &mut rng, crate::words::WORDS);
        }
    }
    debug_assert_eq!(out.len(), size);
    out
}

/// Appends randomly chosen pieces while they fit whole, then ASCII filler,
/// so the result is valid UTF-8 of exactly `size` bytes.
fn fill_text(out: &mut Vec<u8>, size: usize, rng: &mut Rng, pieces: &[&str]) {
    loop {
        let piece = pieces[rng.below(pieces.len())].as_bytes();
        if out.len() + piece.len() > size {
            break;
        }
        out.extend_from_slice(piece);
    }
    out.resize(size, b'.');
}

/// Raw DEFLATE of one whole message as a permessage-deflate client without
/// context takeover sends it: a fresh stream, sync-flushed, without the
/// trailing `00 00 ff ff` (RFC 7692 §7.2.1).
pub fn deflate_message(payload: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        out.reserve(payload.len().max(64));
        let consumed = z.total_in() as usize;
        z.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .expect("raw deflate into a growing buffer cannot fail");
        if z.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_have_the_size_and_encoding_asked_for() {
        for size in [8, 16, 4096, 100_003] {
            for content in [Content::Binary, Content::MixedText, Content::CompressibleText] {
                let t = template(content, size, 7);
                assert_eq!(t.len(), size);
                assert_eq!(&t[..TAG_LEN], b"########");
                if content != Content::Binary {
                    assert!(std::str::from_utf8(&t).is_ok(), "{content:?} {size}");
                }
            }
        }
        let mixed = template(Content::MixedText, 1 << 20, 1);
        let text = std::str::from_utf8(&mixed).unwrap();
        for width in 2..=4 {
            assert!(
                text.chars().any(|c| c.len_utf8() == width),
                "has {width}-byte characters"
            );
        }
    }

    #[test]
    fn tags_are_hex_of_the_low_32_bits() {
        assert_eq!(&tag(0), b"00000000");
        assert_eq!(&tag(0x1234_abcd), b"1234abcd");
        assert_eq!(&tag(0x1_0000_0001), b"00000001");
    }

    #[test]
    fn masking_twice_restores_and_offsets_line_up() {
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        mask(&mut whole, MASK_KEY, 0);
        let mut split = data.clone();
        mask(&mut split[..5], MASK_KEY, 0);
        mask(&mut split[5..], MASK_KEY, 5);
        assert_eq!(whole, split);
        mask(&mut whole, MASK_KEY, 0);
        assert_eq!(whole, data);
    }

    #[test]
    fn deflated_messages_inflate_back() {
        let text = template(Content::CompressibleText, 16 * 1024, 3);
        let body = deflate_message(&text);
        assert!(body.len() * 3 < text.len(), "compressible: {} bytes", body.len());
        let mut z = flate2::Decompress::new(false);
        let mut input = body.clone();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(text.len() + 64);
        z.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, text);
    }
}
