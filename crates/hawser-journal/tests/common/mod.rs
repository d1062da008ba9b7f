//! Helpers shared by the journal's integration tests.
#![allow(dead_code)]

pub mod fixture;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hawser_journal::{segment_file_name, Journal, JournalConfig, Position, Recovered};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

pub fn config(dir: &Path, segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        segment_bytes,
        max_record_bytes: 1024 * 1024,
        ..JournalConfig::new(dir)
    }
}

/// As [`config`], without preallocation: for tests that count fsyncs or rotations, which
/// an early switch to a prepared segment would make depend on timing.
#[allow(dead_code)]
pub fn config_without_preallocation(dir: &Path, segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        preallocate: false,
        ..config(dir, segment_bytes)
    }
}

pub fn open(config: &JournalConfig) -> (Journal, Recovered) {
    Journal::open(config.clone()).expect("open journal")
}

/// Appends every record with `sync` and waits for each to be durable.
pub fn append_all(journal: &Journal, records: &[Bytes]) -> Vec<Position> {
    let pending: Vec<_> = records
        .iter()
        .map(|r| journal.append(r.clone(), true).expect("append"))
        .collect();
    pending
        .into_iter()
        .map(|(position, durable)| {
            durable.wait_blocking().expect("durable");
            position
        })
        .collect()
}

/// Distinct, recognisable payloads of varying size (including empty).
pub fn records(count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(vec![(i % 251) as u8; (i * 7) % 61]))
        .collect()
}

pub fn payloads(recovered: &Recovered) -> Vec<Bytes> {
    recovered.records.iter().map(|(_, r)| r.clone()).collect()
}

pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(segment_file_name(segment))
}

/// Segment files actually present in `dir`, oldest first.
pub fn segment_files(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| hawser_journal::parse_segment_file_name(e.unwrap().file_name().to_str()?))
        .collect();
    ids.sort_unstable();
    ids
}

pub fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// Copies every file of `from` into a fresh temporary directory.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

/// One logged event: its level and its fields as `name=value` pairs.
#[derive(Clone, Debug)]
pub struct Logged {
    pub level: Level,
    pub fields: String,
}

/// Runs `f` with a subscriber that records the events it logs on this thread.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, Vec<Logged>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = Capture {
        events: Arc::clone(&events),
    };
    let result = tracing::subscriber::with_default(subscriber, f);
    let events = events.lock().unwrap().clone();
    (result, events)
}

struct Capture {
    events: Arc<Mutex<Vec<Logged>>>,
}

struct FieldsToString(String);

impl Visit for FieldsToString {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!("{}={} ", field.name(), value));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = FieldsToString(String::new());
        event.record(&mut fields);
        self.events.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

pub fn warnings(events: &[Logged]) -> Vec<&Logged> {
    events.iter().filter(|e| e.level == Level::WARN).collect()
}
