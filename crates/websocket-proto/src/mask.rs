//! Client-to-server masking (RFC 6455 §5.3), applied in place.
//!
//! Every byte a client sends is XORed with a 4-byte key. Doing that a byte at a
//! time costs more than everything else on the receive path, so the bulk is
//! processed in fixed 64-byte blocks that the compiler turns into vector XORs.

const BLOCK: usize = 64;

/// XORs `data` with `key`, where `data` starts `offset` bytes into the frame
/// payload (frames arrive in pieces, and the key's phase must carry over).
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let phase = offset & 3;
    let key = [
        key[phase],
        key[(phase + 1) & 3],
        key[(phase + 2) & 3],
        key[(phase + 3) & 3],
    ];
    let mut pattern = [0u8; BLOCK];
    for (i, b) in pattern.iter_mut().enumerate() {
        *b = key[i & 3];
    }
    let mut blocks = data.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        // A fixed-size array lets the optimiser drop bounds checks and emit
        // whole-register XORs.
        let block: &mut [u8; BLOCK] = block.try_into().expect("exact chunk");
        for (b, k) in block.iter_mut().zip(pattern.iter()) {
            *b ^= *k;
        }
    }
    // BLOCK is a multiple of 4, so the tail keeps the same key phase.
    for (b, k) in blocks.into_remainder().iter_mut().zip(pattern.iter()) {
        *b ^= *k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_bytewise_masking_for_all_lengths_and_phases() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..200 {
            for offset in 0..4 {
                let orig: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = orig.clone();
                let mut slow = orig.clone();
                apply_mask(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: a masked "Hello" from a client.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn split_masking_equals_whole() {
        let key = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut whole = orig.clone();
        apply_mask(&mut whole, key, 0);
        for split in [1, 3, 63, 64, 65, 130, 999] {
            let mut parts = orig.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(parts, whole);
        }
    }
}
