//! Rough append throughput on this machine's disk.
//!
//! `cargo run --release -p hawser-journal --example append_bench [DIR]`
//!
//! Measures: one producer doing sync appends one at a time (= fsyncs/s of the disk),
//! 8 producers doing the same concurrently (group commit), and non-sync bulk appends.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_journal::{Journal, JournalConfig};

const RECORD_BYTES: usize = 1024;
const RUN_TIME: Duration = Duration::from_secs(3);

fn main() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let base = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let record = Bytes::from(vec![0x5Au8; RECORD_BYTES]);

    for producers in [1usize, 8, 32] {
        let dir = base.join(format!("sync-{producers}"));
        let (journal, _) = Journal::open(JournalConfig::new(&dir)).expect("open");
        let journal = Arc::new(journal);
        let barrier = Arc::new(Barrier::new(producers));
        let syncs_before = journal.sync_count();
        let start = Instant::now();
        let counts: Vec<u64> = (0..producers)
            .map(|_| {
                let journal = Arc::clone(&journal);
                let barrier = Arc::clone(&barrier);
                let record = record.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let mut appended = 0u64;
                    while start.elapsed() < RUN_TIME {
                        let (_, durable) = journal.append(record.clone(), true).expect("append");
                        durable.wait_blocking().expect("durable");
                        appended += 1;
                    }
                    appended
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("producer"))
            .collect();
        let elapsed = start.elapsed().as_secs_f64();
        let appends: u64 = counts.iter().sum();
        let syncs = journal.sync_count() - syncs_before;
        println!(
            "sync, {producers:>2} producers waiting per record: {:>8.0} appends/s, {:>6.0} fsyncs/s, {:.1} records per fsync",
            appends as f64 / elapsed,
            syncs as f64 / elapsed,
            appends as f64 / syncs.max(1) as f64
        );
    }

    let dir = base.join("bulk");
    let (journal, _) = Journal::open(JournalConfig::new(&dir)).expect("open");
    let total = 200_000u64;
    let start = Instant::now();
    let mut last = None;
    for _ in 0..total {
        last = Some(journal.append(record.clone(), false).expect("append").1);
    }
    last.expect("appended").wait_blocking().expect("durable");
    journal.close();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "non-sync bulk, 1 producer: {:>8.0} appends/s, {:.0} MiB/s (incl. final fsync)",
        total as f64 / elapsed,
        (total * RECORD_BYTES as u64) as f64 / elapsed / (1024.0 * 1024.0)
    );
}
