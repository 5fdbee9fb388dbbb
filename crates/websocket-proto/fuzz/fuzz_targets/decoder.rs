//! The RFC 6455 frame decoder on arbitrary bytes: it must never panic, never
//! buffer more than the message limit, and decode the same events whether
//! the input comes whole or in pieces.

#![no_main]

use libfuzzer_sys::fuzz_target;
use websocket_proto::decoder::{Decoder, DecoderConfig};
use websocket_proto::ProtocolVersion;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&chunk, stream)) = rest.split_first() else {
        return;
    };
    let config = DecoderConfig {
        max_message_size: if flags & 1 != 0 { 64 } else { 4096 },
        expect_masked: flags & 2 == 0,
        allow_rsv1: flags & 4 != 0,
        allow_reserved_close_codes: flags & 8 != 0,
        version: if flags & 16 != 0 { ProtocolVersion::V8 } else { ProtocolVersion::V13 },
    };
    let (whole, whole_result) = Decoder::new(config).decode_all(&mut stream.to_vec());

    let chunk = usize::from(chunk).max(1);
    let mut decoder = Decoder::new(config);
    let mut pieces = Vec::new();
    let mut piece_result = Ok(());
    for part in stream.chunks(chunk) {
        let (events, r) = decoder.decode_all(&mut part.to_vec());
        pieces.extend(events);
        assert!(decoder.buffered() as u64 <= config.max_message_size.max(4096));
        if r.is_err() {
            piece_result = r;
            break;
        }
    }
    assert_eq!(whole, pieces);
    assert_eq!(whole_result, piece_result);
    if let Err(e) = whole_result {
        let code = e.close_code(config.version).0;
        assert!(matches!(code, 1002 | 1004 | 1007 | 1009));
    }
});
