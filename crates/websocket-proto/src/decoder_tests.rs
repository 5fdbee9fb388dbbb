//! Unit tests of the RFC 6455 decoder (see the parent module).
use super::*;
use crate::encoder::write_masked_frame;
use proptest::prelude::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn frame(op: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, op, fin, payload, KEY);
    out
}

fn raw(first: u8, payload: &[u8]) -> Vec<u8> {
    // A masked frame with an arbitrary first byte (bad opcodes, RSV bits).
    let mut out = frame(Opcode::Binary, true, payload);
    out[0] = first;
    out
}

fn decode(bytes: &[u8]) -> (Vec<OwnedEvent>, Result<(), DecodeError>) {
    decode_with(DecoderConfig::default(), bytes)
}

fn decode_with(config: DecoderConfig, bytes: &[u8]) -> (Vec<OwnedEvent>, Result<(), DecodeError>) {
    Decoder::new(config).decode_all(&mut bytes.to_vec())
}

fn text(s: &str) -> OwnedEvent {
    OwnedEvent::Message {
        kind: MessageKind::Text,
        data: s.as_bytes().to_vec(),
        compressed: false,
    }
}

fn binary(b: &[u8]) -> OwnedEvent {
    OwnedEvent::Message {
        kind: MessageKind::Binary,
        data: b.to_vec(),
        compressed: false,
    }
}

fn error_code(bytes: &[u8]) -> u16 {
    let (_, r) = decode(bytes);
    r.expect_err("stream must fail")
        .close_code(ProtocolVersion::V13)
        .0
}

#[test]
fn rfc_single_frame_masked_text() {
    let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(decode(&bytes), (vec![text("Hello")], Ok(())));
}

#[test]
fn whole_message_is_delivered_in_place() {
    let mut bytes = frame(Opcode::Binary, true, b"abc");
    let base = bytes.as_ptr() as usize;
    let mut d = Decoder::new(DecoderConfig::default());
    let (used, ev) = d.decode(&mut bytes).unwrap();
    assert_eq!(used, 9);
    match ev {
        Some(Event::Message { data, .. }) => {
            assert_eq!(data, b"abc");
            assert_eq!(data.as_ptr() as usize, base + 6, "no copy");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.buffered(), 0);
}

#[test]
fn rfc_fragmented_text() {
    let mut bytes = frame(Opcode::Text, false, b"Hel");
    bytes.extend(frame(Opcode::Continuation, true, b"lo"));
    assert_eq!(decode(&bytes), (vec![text("Hello")], Ok(())));
}

#[test]
fn control_frames_between_fragments() {
    let mut bytes = frame(Opcode::Text, false, b"fra");
    bytes.extend(frame(Opcode::Ping, true, b"p1"));
    bytes.extend(frame(Opcode::Continuation, false, b"gm"));
    bytes.extend(frame(Opcode::Pong, true, b""));
    bytes.extend(frame(Opcode::Continuation, true, b"ent"));
    let (events, r) = decode(&bytes);
    assert_eq!(r, Ok(()));
    assert_eq!(
        events,
        vec![
            OwnedEvent::Ping(b"p1".to_vec()),
            OwnedEvent::Pong(vec![]),
            text("fragment")
        ]
    );
}

#[test]
fn lengths_7_16_64_bit() {
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        assert_eq!(
            decode(&frame(Opcode::Binary, true, &payload)),
            (vec![binary(&payload)], Ok(())),
            "len {len}"
        );
    }
}

#[test]
fn empty_messages_and_empty_fragments() {
    let mut bytes = frame(Opcode::Text, true, b"");
    bytes.extend(frame(Opcode::Binary, false, b""));
    bytes.extend(frame(Opcode::Continuation, false, b""));
    bytes.extend(frame(Opcode::Continuation, true, b""));
    assert_eq!(decode(&bytes), (vec![text(""), binary(b"")], Ok(())));
}

#[test]
fn unmasked_client_frame_is_1002() {
    let bytes = [0x81, 0x05, b'H', b'e', b'l', b'l', b'o'];
    let (_, r) = decode(&bytes);
    assert_eq!(r, Err(DecodeError::MaskMismatch { masked: false }));
    assert_eq!(error_code(&bytes), 1002);
}

#[test]
fn client_side_rejects_masked_frames() {
    let cfg = DecoderConfig {
        expect_masked: false,
        ..DecoderConfig::default()
    };
    assert_eq!(
        decode_with(cfg, &[0x81, 0x02, b'h', b'i']),
        (vec![text("hi")], Ok(()))
    );
    let (_, r) = decode_with(cfg, &frame(Opcode::Text, true, b"hi"));
    assert_eq!(r, Err(DecodeError::MaskMismatch { masked: true }));
}

#[test]
fn reserved_bits_are_1002_without_extension() {
    for rsv in [0x40u8, 0x20, 0x10, 0x70] {
        assert_eq!(
            decode(&raw(0x82 | rsv, b"x")).1,
            Err(DecodeError::ReservedBits(rsv))
        );
        assert_eq!(error_code(&raw(0x82 | rsv, b"x")), 1002);
    }
}

#[test]
fn rsv1_marks_compressed_messages_when_negotiated() {
    let cfg = DecoderConfig {
        allow_rsv1: true,
        ..DecoderConfig::default()
    };
    // Compressed text is not UTF-8 checked here (it is deflate data).
    let (events, r) = decode_with(cfg, &raw(0xC1, &[0xf2, 0x48, 0xff]));
    assert_eq!(r, Ok(()));
    assert_eq!(
        events,
        vec![OwnedEvent::Message {
            kind: MessageKind::Text,
            data: vec![0xf2, 0x48, 0xff],
            compressed: true
        }]
    );
    // RSV1 on a continuation or control frame stays an error.
    let mut bytes = raw(0x41, b"a");
    bytes.extend(raw(0xC0, b"b"));
    assert_eq!(decode_with(cfg, &bytes).1, Err(DecodeError::ReservedBits(0x40)));
    assert_eq!(
        decode_with(cfg, &raw(0xC9, b"")).1,
        Err(DecodeError::ReservedBits(0x40))
    );
    // RSV2 is never allowed.
    assert_eq!(
        decode_with(cfg, &raw(0xA2, b"")).1,
        Err(DecodeError::ReservedBits(0x20))
    );
}

#[test]
fn reserved_opcodes_are_1002() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(
            decode(&raw(0x80 | op, b"")).1,
            Err(DecodeError::UnknownOpcode(op))
        );
        assert_eq!(error_code(&raw(0x80 | op, b"")), 1002);
    }
}

#[test]
fn control_frame_rules() {
    let (events, r) = decode(&frame(Opcode::Ping, true, &[b'p'; 125]));
    assert_eq!((events, r), (vec![OwnedEvent::Ping(vec![b'p'; 125])], Ok(())));
    assert_eq!(
        decode(&frame(Opcode::Ping, true, &[0; 126])).1,
        Err(DecodeError::ControlTooLong(126))
    );
    assert_eq!(
        decode(&frame(Opcode::Pong, false, b"")).1,
        Err(DecodeError::FragmentedControl)
    );
    assert_eq!(error_code(&frame(Opcode::Close, false, b"")), 1002);
}

#[test]
fn continuation_rules() {
    assert_eq!(
        decode(&frame(Opcode::Continuation, true, b"x")).1,
        Err(DecodeError::UnexpectedContinuation)
    );
    let mut bytes = frame(Opcode::Text, false, b"a");
    bytes.extend(frame(Opcode::Binary, true, b"b"));
    assert_eq!(decode(&bytes).1, Err(DecodeError::ExpectedContinuation));
    let mut bytes = frame(Opcode::Text, true, b"a");
    bytes.extend(frame(Opcode::Continuation, true, b"b"));
    assert_eq!(
        decode(&bytes),
        (vec![text("a")], Err(DecodeError::UnexpectedContinuation))
    );
}

#[test]
fn length_with_top_bit_is_1002() {
    let bytes = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4];
    assert_eq!(decode(&bytes).1, Err(DecodeError::LengthOverflow));
    assert_eq!(error_code(&bytes), 1002);
}

#[test]
fn huge_length_claim_fails_before_any_allocation() {
    // 2^62 bytes announced, nothing sent: refused from the header alone.
    let mut d = Decoder::new(DecoderConfig::default());
    let mut bytes = vec![0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    let err = d.decode(&mut bytes).unwrap_err();
    assert_eq!(err, DecodeError::MessageTooBig { limit: 32 << 20 });
    assert_eq!(d.buffered(), 0);
    assert_eq!(err.close_code(ProtocolVersion::V13).0, 1009);
    assert_eq!(err.close_code(ProtocolVersion::V8).0, 1004);
    assert_eq!(err.close_code(ProtocolVersion::V7).0, 1004);
}

#[test]
fn limit_applies_to_the_sum_of_fragments() {
    let cfg = DecoderConfig {
        max_message_size: 10,
        ..DecoderConfig::default()
    };
    assert_eq!(decode_with(cfg, &frame(Opcode::Binary, true, &[0; 10])).1, Ok(()));
    let mut bytes = frame(Opcode::Binary, false, &[0; 6]);
    bytes.extend(frame(Opcode::Ping, true, b"ctl"));
    bytes.extend(frame(Opcode::Continuation, false, &[0; 4]));
    bytes.extend(frame(Opcode::Continuation, true, &[0; 1]));
    let (events, r) = decode_with(cfg, &bytes);
    assert_eq!(r, Err(DecodeError::MessageTooBig { limit: 10 }));
    assert_eq!(events.len(), 1);
    // The next message starts counting from zero again.
    let mut bytes = frame(Opcode::Binary, true, &[0; 8]);
    bytes.extend(frame(Opcode::Binary, true, &[0; 8]));
    assert_eq!(decode_with(cfg, &bytes).0.len(), 2);
}

#[test]
fn gathered_buffer_never_exceeds_the_limit() {
    let cfg = DecoderConfig {
        max_message_size: 100_000,
        ..DecoderConfig::default()
    };
    let payload = vec![7u8; 100_000];
    let bytes = frame(Opcode::Binary, true, &payload);
    let mut d = Decoder::new(cfg);
    let mut max_cap = 0;
    for chunk in bytes.chunks(1000) {
        let mut chunk = chunk.to_vec();
        d.decode(&mut chunk).unwrap();
        max_cap = max_cap.max(d.buffered());
    }
    assert!(max_cap <= 100_000, "capacity {max_cap}");
}

#[test]
fn large_buffer_is_released_after_the_message() {
    let payload = vec![1u8; 1 << 20];
    let bytes = frame(Opcode::Binary, true, &payload);
    let mut d = Decoder::new(DecoderConfig::default());
    for chunk in bytes.chunks(64 * 1024) {
        let mut chunk = chunk.to_vec();
        let (_, ev) = d.decode(&mut chunk).unwrap();
        if let Some(Event::Message { data, .. }) = ev {
            assert_eq!(data.len(), 1 << 20);
        }
    }
    assert!(d.buffered() >= 1 << 20);
    let mut next = frame(Opcode::Binary, true, b"small");
    d.decode(&mut next).unwrap();
    assert!(d.buffered() <= RETAINED_CAPACITY);
}

#[test]
fn invalid_utf8_fails_fast_inside_a_frame() {
    // The frame announces 20 bytes; the invalid byte comes third. The error
    // must come before the rest of the frame arrives.
    let mut payload = b"ab".to_vec();
    payload.push(0xFF);
    payload.extend_from_slice(&[b'c'; 17]);
    let bytes = frame(Opcode::Text, true, &payload);
    let mut d = Decoder::new(DecoderConfig::default());
    let mut first = bytes[..6 + 3].to_vec();
    assert_eq!(d.decode(&mut first).unwrap_err(), DecodeError::InvalidUtf8);
}

#[test]
fn invalid_utf8_fails_fast_across_fragments() {
    let mut d = Decoder::new(DecoderConfig::default());
    let mut first = frame(Opcode::Text, false, "κό".as_bytes());
    let len = first.len();
    assert_eq!(d.decode(&mut first).unwrap(), (len, None));
    let mut second = frame(Opcode::Continuation, false, &[0xCE, 0x20]);
    assert_eq!(d.decode(&mut second).unwrap_err(), DecodeError::InvalidUtf8);
    assert_eq!(DecodeError::InvalidUtf8.close_code(ProtocolVersion::V13).0, 1007);
}

#[test]
fn utf8_split_between_fragments_is_fine_but_truncation_is_1007() {
    let s = "κόσμε".as_bytes();
    let mut bytes = frame(Opcode::Text, false, &s[..3]);
    bytes.extend(frame(Opcode::Continuation, true, &s[3..]));
    assert_eq!(decode(&bytes), (vec![text("κόσμε")], Ok(())));
    assert_eq!(error_code(&frame(Opcode::Text, true, &s[..3])), 1007);
}

#[test]
fn binary_is_not_utf8_checked() {
    assert_eq!(decode(&frame(Opcode::Binary, true, &[0xFF, 0xFE])).1, Ok(()));
}

#[test]
fn close_frames() {
    assert_eq!(
        decode(&frame(Opcode::Close, true, b"")),
        (
            vec![OwnedEvent::Close {
                code: None,
                reason: String::new()
            }],
            Ok(())
        )
    );
    let mut body = 1000u16.to_be_bytes().to_vec();
    body.extend_from_slice(b"done");
    assert_eq!(
        decode(&frame(Opcode::Close, true, &body)).0,
        vec![OwnedEvent::Close {
            code: Some(1000),
            reason: "done".into()
        }]
    );
    assert_eq!(error_code(&frame(Opcode::Close, true, &[0x03])), 1002);
    assert_eq!(
        error_code(&frame(Opcode::Close, true, &1005u16.to_be_bytes())),
        1002
    );
    assert_eq!(error_code(&frame(Opcode::Close, true, &[0x03, 0xE8, 0xFF])), 1007);
    let reserved = frame(Opcode::Close, true, &2000u16.to_be_bytes());
    assert_eq!(error_code(&reserved), 1002);
    let allow = DecoderConfig {
        allow_reserved_close_codes: true,
        ..DecoderConfig::default()
    };
    assert_eq!(decode_with(allow, &reserved).1, Ok(()));
    // 1004 is "Reserved" too: refused unless allowed.
    let reserved_1004 = frame(Opcode::Close, true, &1004u16.to_be_bytes());
    assert_eq!(error_code(&reserved_1004), 1002);
    assert_eq!(
        decode_with(allow, &reserved_1004).0,
        vec![OwnedEvent::Close {
            code: Some(1004),
            reason: String::new()
        }]
    );
    for never in [1005u16, 1006, 1015, 999, 5000] {
        let f = frame(Opcode::Close, true, &never.to_be_bytes());
        assert!(decode_with(allow, &f).1.is_err(), "{never}");
    }
}

#[test]
fn a_length_over_the_limit_fails_before_the_mask_key() {
    // 2^63-1 announced; the masking key never comes.
    let header = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    let mut d = Decoder::new(DecoderConfig::default());
    let err = d.decode(&mut header.to_vec()).unwrap_err();
    assert_eq!(err, DecodeError::MessageTooBig { limit: 32 << 20 });
    // Byte by byte: nothing until the last length byte, then the error.
    let mut d = Decoder::new(DecoderConfig::default());
    for (i, b) in header.iter().enumerate() {
        let mut byte = [*b];
        let r = d.decode(&mut byte);
        if i + 1 < header.len() {
            assert!(matches!(r, Ok((1, None))), "byte {i}: {r:?}");
        } else {
            assert_eq!(r.unwrap_err(), DecodeError::MessageTooBig { limit: 32 << 20 });
        }
    }
    // 16-bit length over a small limit, versions 7/8 get 1004.
    let cfg = DecoderConfig {
        max_message_size: 100,
        version: ProtocolVersion::V8,
        ..DecoderConfig::default()
    };
    let mut d = Decoder::new(cfg);
    let err = d.decode(&mut [0x81, 0xFE, 0x01, 0x00]).unwrap_err();
    assert_eq!(err.close_code(ProtocolVersion::V8).0, 1004);
    // Other header errors are just as early.
    let mut d = Decoder::new(DecoderConfig::default());
    assert_eq!(
        d.decode(&mut [0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap_err(),
        DecodeError::MaskMismatch { masked: false }
    );
    // Within the limit, the header just waits for its key.
    let mut d = Decoder::new(DecoderConfig::default());
    assert!(matches!(d.decode(&mut [0x82, 0xFE, 0x01, 0x00]), Ok((4, None))));
}

#[test]
fn a_small_limit_bounds_control_frames() {
    let cfg = DecoderConfig {
        max_message_size: 4,
        ..DecoderConfig::default()
    };
    for op in [Opcode::Ping, Opcode::Pong] {
        assert_eq!(decode_with(cfg, &frame(op, true, b"four")).1, Ok(()));
        let (events, r) = decode_with(cfg, &frame(op, true, b"five!"));
        assert_eq!(r, Err(DecodeError::MessageTooBig { limit: 4 }), "{op:?}");
        assert!(events.is_empty());
    }
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    let r = decode_with(cfg, &frame(Opcode::Close, true, &close)).1;
    assert_eq!(r.unwrap_err().close_code(ProtocolVersion::V13).0, 1009);
    // Above 125 it stays the protocol error it always is.
    let big = DecoderConfig {
        max_message_size: 10,
        ..DecoderConfig::default()
    };
    let mut bytes = vec![0x89, 0xFE, 0x00, 126];
    bytes.extend_from_slice(&KEY);
    bytes.extend_from_slice(&[0; 126]);
    assert_eq!(decode_with(big, &bytes).1, Err(DecodeError::ControlTooLong(126)));
    // The default limit leaves control frames at 125.
    assert_eq!(decode(&frame(Opcode::Ping, true, &[0; 125])).1, Ok(()));
}

#[test]
fn compressed_messages_may_be_larger_on_the_wire_than_the_limit() {
    let cfg = DecoderConfig {
        max_message_size: 4,
        allow_rsv1: true,
        ..DecoderConfig::default()
    };
    let bound = crate::deflate::max_deflated_len(4) as usize;
    // "1234" deflates to 6 bytes: the inflater judges it, not the decoder.
    let mut six = frame(Opcode::Text, true, &[0; 6]);
    six[0] |= RSV1;
    let (events, r) = decode_with(cfg, &six);
    assert_eq!(r, Ok(()));
    assert_eq!(events.len(), 1);
    // Uncompressed, the limit is exact.
    assert!(decode_with(cfg, &frame(Opcode::Text, true, b"12345")).1.is_err());
    // Compressed, up to the bound, counting every fragment.
    let mut at_bound = frame(Opcode::Binary, false, &vec![0; bound - 1]);
    at_bound[0] |= RSV1;
    at_bound.extend(frame(Opcode::Continuation, true, &[0]));
    assert_eq!(decode_with(cfg, &at_bound).1, Ok(()));
    let mut over = frame(Opcode::Binary, false, &vec![0; bound]);
    over[0] |= RSV1;
    over.extend(frame(Opcode::Continuation, true, &[0]));
    assert_eq!(
        decode_with(cfg, &over).1,
        Err(DecodeError::MessageTooBig { limit: 4 })
    );
}

#[test]
fn idle_only_between_messages() {
    let mut d = Decoder::new(DecoderConfig::default());
    assert!(d.is_idle());
    let mut part = frame(Opcode::Text, false, b"a");
    d.decode(&mut part).unwrap();
    assert!(!d.is_idle());
    let mut end = frame(Opcode::Continuation, true, b"b");
    d.decode(&mut end).unwrap();
    assert!(d.is_idle());
    let mut half = frame(Opcode::Binary, true, b"xyz");
    d.decode(&mut half[..3]).unwrap();
    assert!(!d.is_idle());
}

#[derive(Debug, Clone)]
enum Msg {
    Text(String, Vec<usize>),
    Binary(Vec<u8>, Vec<usize>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn msg_strategy() -> impl Strategy<Value = Msg> {
    let cuts = proptest::collection::vec(0usize..300, 0..4);
    prop_oneof![
        (".{0,200}", cuts.clone()).prop_map(|(s, c)| Msg::Text(s, c)),
        (proptest::collection::vec(any::<u8>(), 0..300), cuts).prop_map(|(b, c)| Msg::Binary(b, c)),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Pong),
    ]
}

/// Encodes a message, fragmented at the given cut points (cuts may fall
/// inside UTF-8 sequences, which is legal).
fn encode(msg: &Msg, key: [u8; 4], out: &mut Vec<u8>) -> OwnedEvent {
    let (op, payload, cuts) = match msg {
        Msg::Text(s, c) => (Opcode::Text, s.as_bytes(), c),
        Msg::Binary(b, c) => (Opcode::Binary, &b[..], c),
        Msg::Ping(p) => {
            write_masked_frame(out, Opcode::Ping, true, p, key);
            return OwnedEvent::Ping(p.clone());
        }
        Msg::Pong(p) => {
            write_masked_frame(out, Opcode::Pong, true, p, key);
            return OwnedEvent::Pong(p.clone());
        }
    };
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut start = 0;
    let mut first = true;
    for p in points.into_iter().chain(std::iter::once(payload.len())) {
        let fin = p == payload.len();
        if p < start || (p == start && !fin && !first) {
            continue;
        }
        let opcode = if first { op } else { Opcode::Continuation };
        write_masked_frame(out, opcode, fin, &payload[start..p], key);
        first = false;
        start = p;
        if fin {
            break;
        }
    }
    OwnedEvent::Message {
        kind: if op == Opcode::Text {
            MessageKind::Text
        } else {
            MessageKind::Binary
        },
        data: payload.to_vec(),
        compressed: false,
    }
}

proptest! {
    #[test]
    fn any_split_of_a_valid_stream_decodes_the_same(
        msgs in proptest::collection::vec(msg_strategy(), 1..8),
        key in any::<[u8; 4]>(),
        splits in proptest::collection::vec(1usize..64, 1..50),
    ) {
        let mut stream = Vec::new();
        let expected: Vec<OwnedEvent> = msgs.iter().map(|m| encode(m, key, &mut stream)).collect();

        let (whole, r) = Decoder::new(DecoderConfig::default()).decode_all(&mut stream.clone());
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(&whole, &expected);

        let mut d = Decoder::new(DecoderConfig::default());
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = splits[i % splits.len()].min(rest.len());
            i += 1;
            let (events, r) = d.decode_all(&mut rest[..n].to_vec());
            prop_assert_eq!(r, Ok(()));
            got.extend(events);
            rest = &rest[n..];
        }
        prop_assert_eq!(got, expected);
        prop_assert!(d.is_idle());
    }

    #[test]
    fn one_byte_at_a_time(msgs in proptest::collection::vec(msg_strategy(), 1..4), key in any::<[u8; 4]>()) {
        let mut stream = Vec::new();
        let expected: Vec<OwnedEvent> = msgs.iter().map(|m| encode(m, key, &mut stream)).collect();
        let mut d = Decoder::new(DecoderConfig::default());
        let mut got = Vec::new();
        for b in &stream {
            let (events, r) = d.decode_all(&mut [*b]);
            prop_assert_eq!(r, Ok(()));
            got.extend(events);
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), chunk in 1usize..100) {
        let mut d = Decoder::new(DecoderConfig { max_message_size: 1000, ..DecoderConfig::default() });
        for c in bytes.chunks(chunk) {
            if d.decode_all(&mut c.to_vec()).1.is_err() {
                break;
            }
            prop_assert!(d.buffered() <= 1000);
        }
    }

    #[test]
    fn server_encode_then_client_decode_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..70000)) {
        let mut out = Vec::new();
        crate::encoder::write_frame(&mut out, Opcode::Binary, &payload);
        let cfg = DecoderConfig { expect_masked: false, ..DecoderConfig::default() };
        let (events, r) = Decoder::new(cfg).decode_all(&mut out);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(events, vec![binary(&payload)]);
    }
}
