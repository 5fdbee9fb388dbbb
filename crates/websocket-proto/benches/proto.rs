//! Throughput of the receive path's hot loops: unmasking, UTF-8 validation and
//! decoding streams of small frames.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use websocket_proto::decoder::{Decoder, DecoderConfig, Event};
use websocket_proto::encoder::write_masked_frame;
use websocket_proto::mask::apply_mask;
use websocket_proto::utf8::{validate, Utf8Validator};
use websocket_proto::Opcode;

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for size in [4096usize, 65536, 1 << 20] {
        let mut buf = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), [1, 2, 3, 4], 1))
        });
    }
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let ascii = "The quick brown fox jumps over the lazy dog. ".repeat(1 << 14);
    let mixed = "Grüße, κόσμε, こんにちは, 𝄞 music, ascii text here. ".repeat(1 << 13);
    let mut g = c.benchmark_group("utf8");
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed)] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("{name}/whole"), |b| {
            b.iter(|| validate(black_box(text.as_bytes())).unwrap())
        });
        g.bench_function(format!("{name}/streaming_4k_chunks"), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for chunk in text.as_bytes().chunks(4093) {
                    v.feed(black_box(chunk)).unwrap();
                }
                v.finish().unwrap();
            })
        });
    }
    g.finish();
}

fn decode_small_frames(c: &mut Criterion) {
    const FRAMES: usize = 4096;
    let mut stream = Vec::new();
    for i in 0..FRAMES {
        write_masked_frame(&mut stream, Opcode::Binary, true, &[i as u8; 16], [9, 8, 7, 6]);
    }
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("16_byte_binary_frames", |b| {
        let mut work = stream.clone();
        b.iter(|| {
            work.copy_from_slice(&stream);
            let mut d = Decoder::new(DecoderConfig::default());
            let mut pos = 0;
            let mut n = 0usize;
            while pos < work.len() {
                let (used, ev) = d.decode(&mut work[pos..]).unwrap();
                pos += used;
                if let Some(Event::Message { data, .. }) = ev {
                    n += data.len();
                }
            }
            black_box(n)
        })
    });
    let mut text_stream = Vec::new();
    for _ in 0..FRAMES {
        write_masked_frame(
            &mut text_stream,
            Opcode::Text,
            true,
            b"sixteen bytes!!!",
            [9, 8, 7, 6],
        );
    }
    g.bench_function("16_byte_text_frames", |b| {
        let mut work = text_stream.clone();
        b.iter(|| {
            work.copy_from_slice(&text_stream);
            let mut d = Decoder::new(DecoderConfig::default());
            let mut pos = 0;
            while pos < work.len() {
                let (used, ev) = d.decode(&mut work[pos..]).unwrap();
                pos += used;
                black_box(ev);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, unmask, utf8, decode_small_frames);
criterion_main!(benches);
