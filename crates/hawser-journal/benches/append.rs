//! Journal appends with group commit: how many synced 1 KiB records per second
//! 1 and 8 concurrent writers get, and unsynced appends.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hawser_journal::{Journal, JournalConfig};

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(JournalConfig::new(dir.path())).unwrap();
    let journal = Arc::new(journal);
    let record = Bytes::from(vec![b'x'; 1024]);
    let mut group = c.benchmark_group("journal");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    group.bench_function("append_1k_nosync", |b| {
        b.iter(|| journal.append(record.clone(), false).unwrap())
    });
    group.bench_function("append_1k_sync_1_writer", |b| {
        b.iter(|| {
            let (_, durable) = journal.append(record.clone(), true).unwrap();
            durable.wait_blocking().unwrap();
        })
    });
    // 8 writers each waiting for their own record: group commit shares fsyncs.
    group.throughput(Throughput::Elements(8));
    group.bench_function("append_1k_sync_8_writers", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..8 {
                    let j = Arc::clone(&journal);
                    let r = record.clone();
                    s.spawn(move || {
                        let (_, durable) = j.append(r, true).unwrap();
                        durable.wait_blocking().unwrap();
                    });
                }
            })
        })
    });
    group.finish();
    journal.close();
}

criterion_group!(benches, append);
criterion_main!(benches);
