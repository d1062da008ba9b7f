//! `Journal::queued_bytes`: what waits for the writer while it is busy (a
//! slow fsync), and nothing once it has caught up. A store tells its
//! producers to wait on it (`Store::writes_behind`) before `append` blocks.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_journal::{
    FileSystem, Journal, JournalConfig, LockGuard, OpenMode, Storage, StorageFile, StorageHandle,
    RECORD_HEADER_BYTES,
};

/// The real file system, with commits (`sync_data`) that wait while a gate is shut.
#[derive(Clone, Default)]
struct Gated {
    shut: Arc<(Mutex<bool>, Condvar)>,
}

impl Gated {
    fn set(&self, shut: bool) {
        *self.shut.0.lock().unwrap_or_else(|e| e.into_inner()) = shut;
        self.shut.1.notify_all();
    }
}

/// Opens the gate when dropped: a failed assertion must not leave the
/// writer waiting in its fsync (closing the journal would wait for it).
struct Opens(Gated);

impl Drop for Opens {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

struct GatedFile {
    file: Box<dyn StorageFile>,
    gate: Gated,
}

impl StorageFile for GatedFile {
    fn write_at(&self, offset: u64, head: &[u8], tail: &[u8]) -> std::io::Result<()> {
        self.file.write_at(offset, head, tail)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let (shut, cv) = &*self.gate.shut;
        let _open = cv.wait_while(shut.lock().unwrap(), |shut| *shut).unwrap();
        self.file.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.file.allocate(len)
    }
    fn file_len(&self) -> std::io::Result<u64> {
        self.file.file_len()
    }
}

impl Storage for Gated {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        FileSystem.create_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        FileSystem.exists(path)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        FileSystem.list_dir(dir)
    }
    fn read(&self, path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
        FileSystem.read(path, buf)
    }
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        FileSystem.read_at(path, offset, buf)
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        FileSystem.len(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(GatedFile {
            file: FileSystem.open(path, mode)?,
            gate: self.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        FileSystem.rename(from, to)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        FileSystem.hard_link(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        FileSystem.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        FileSystem.remove_dir_all(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        FileSystem.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<LockGuard>> {
        FileSystem.try_lock(path)
    }
    fn available_bytes(&self, dir: &Path) -> std::io::Result<u64> {
        FileSystem.available_bytes(dir)
    }
}

/// Waits, at most 10 s, until `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn what_waits_for_a_busy_writer_is_counted_until_it_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gated::default();
    let config = JournalConfig {
        preallocate: false,
        storage: StorageHandle::new(gate.clone()),
        ..JournalConfig::new(dir.path())
    };
    let (journal, _) = Journal::open(config).unwrap();
    assert_eq!(journal.queued_bytes(), 0);
    let _opens = Opens(gate.clone());
    gate.set(true);
    // The writer takes this one and waits in its fsync.
    let (_, first) = journal.append(Bytes::from_static(b"first"), true).unwrap();
    eventually("the writer takes the first record", || {
        journal.queued_bytes() == 0
    });
    let records = [Bytes::from(vec![1u8; 1000]), Bytes::from(vec![2u8; 3000])];
    let mut expected = 0;
    let mut waiting = Vec::new();
    for r in &records {
        waiting.push(journal.append(r.clone(), true).unwrap().1);
        expected += RECORD_HEADER_BYTES + r.len() as u64;
        assert_eq!(journal.queued_bytes(), expected, "queued behind the fsync");
    }
    gate.set(false);
    first.wait_blocking().unwrap();
    for d in waiting {
        d.wait_blocking().unwrap();
    }
    assert_eq!(journal.queued_bytes(), 0, "all taken once durable");
    journal.close();
}
