//! Decodes an arbitrary draft-75/76 byte stream twice, in one piece and in
//! chunks, and checks both readings agree.
//!
//! Input layout: byte 0 picks the message size limit, byte 1 the chunk
//! size; the rest is the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use websocket_proto::legacy::{LegacyDecoder, LegacyEvent};

/// Events as owned values (`None` = close), and whether decoding failed.
/// Which error is reported may depend on the split (a message that is both
/// too long and invalid fails on whichever is seen first), whether one is
/// reported may not.
fn run(max: u64, data: &[u8], chunk: usize) -> (Vec<Option<String>>, bool) {
    let mut dec = LegacyDecoder::new(max);
    let mut events = Vec::new();
    for piece in data.chunks(chunk) {
        let mut pos = 0;
        loop {
            let (n, r) = dec.decode(&piece[pos..]);
            pos += n;
            assert!(pos <= piece.len());
            match r {
                Ok(Some(LegacyEvent::Text(t))) => {
                    assert!(t.len() as u64 <= max);
                    events.push(Some(t.to_owned()));
                }
                Ok(Some(LegacyEvent::Close)) => events.push(None),
                Ok(None) => break,
                Err(_) => return (events, true),
            }
        }
        assert!(pos == piece.len() || dec.is_closed());
    }
    (events, false)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = u64::from(data[0]);
    let chunk = usize::from(data[1]).max(1);
    let stream = &data[2..];
    let whole = run(max, stream, stream.len().max(1));
    assert_eq!(run(max, stream, chunk), whole);
    assert_eq!(run(max, stream, 1), whole);
});
