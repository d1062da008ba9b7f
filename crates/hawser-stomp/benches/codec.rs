//! STOMP decode and encode of the frames on the broker's hot path.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hawser_stomp::{encode, Command, Decoder, Frame, Limits, Version};
use std::hint::black_box;

fn send_frame(body: usize) -> Frame {
    Frame::new(Command::Send)
        .with_header("destination", "/queue/bench")
        .with_header("persistent", "true")
        .with_header("receipt", "12345")
        .with_header("hawser-producer", "hawser-1f2e-0123456789abcdef")
        .with_header("hawser-seq", "12345")
        .with_body(Bytes::from(vec![b'x'; body]))
}

/// A MESSAGE frame as a broker sends it to a consumer: a dozen short headers.
fn message_frame() -> Frame {
    Frame::new(Command::Message)
        .with_header("subscription", "c3")
        .with_header("message-id", "ID:hawser-1234567")
        .with_header("destination", "/topic/hawser.bench")
        .with_header("ack", "ID:hawser-1234567")
        .with_header("priority", "4")
        .with_header("expires", "0")
        .with_header("timestamp", "1764633600000")
        .with_header("bench-p", "0")
        .with_header("bench-seq", "123456")
        .with_header("bench-ts", "1234567890123")
        .with_header("hawser-producer", "hawser-1f2e-0123456789abcdef")
        .with_header("hawser-seq", "123457")
        .with_body(Bytes::from(vec![b'x'; 1024]))
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("stomp");
    for body in [1024usize, 64 * 1024] {
        let frame = send_frame(body);
        let mut wire = BytesMut::new();
        encode(&frame, Version::V1_2, &mut wire);
        let wire = wire.freeze();
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("encode_send_{body}"), |b| {
            let mut dst = BytesMut::with_capacity(wire.len() * 2);
            b.iter(|| {
                dst.clear();
                encode(black_box(&frame), Version::V1_2, &mut dst);
            })
        });
        group.bench_function(format!("decode_send_{body}"), |b| {
            let mut decoder = Decoder::new(Limits::default());
            decoder.set_version(Version::V1_2);
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                black_box(decoder.decode(&mut buf).unwrap().unwrap())
            })
        });
    }
    let mut wire = BytesMut::new();
    encode(&message_frame(), Version::V1_2, &mut wire);
    let wire = wire.freeze();
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_message_1024", |b| {
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(Version::V1_2);
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            black_box(decoder.decode(&mut buf).unwrap().unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
