//! The writer thread: the only owner of the current segment's file handle.
//!
//! Group commit: each turn it takes everything queued at that moment, writes the batch
//! with as few `write` syscalls as the buffer limits allow, then does one `fdatasync`
//! if any record of the batch asked for it, and only then completes the batch's
//! `Durable`s. Producers that append while an fsync is running share the next one.
//! The waits it adds: after a small commit of sync records it holds the next
//! commit, at most one commit's time, for the senders it just released (see `Hold`);
//! and records that asked for no fsync wait a little for others
//! ([`DEFAULT_LINGER`](crate::config::DEFAULT_LINGER)).
//!
//! Framing: each record is framed as it is copied into the write buffer, with its
//! position and `synced`, how far the segment is known to be on disk (the end of the
//! last fsync; see `format`): that is what later tells recovery a torn write from
//! damage to durable data. Keeping it costs a field, no syscall.
//!
//! Rotation: a record assigned to the next segment makes the writer fsync the current
//! segment first, so only the last segment can ever hold a torn tail, and cut a
//! prepared segment's unused space off; then it renames the file the preallocator
//! prepared for the next segment into place (or, if there is none, creates the file
//! with its header and fsyncs it, so that no record is ever on disk before its
//! segment's header) and fsyncs the directory so the file survives a crash. After each
//! batch it tells the journal's progress hook the batch's highest tag (`Journal::
//! append_tagged`): that is how the broker's store raises its durability watermark.
//!
//! Any write or fsync error fails the journal for good: the batch and everything queued
//! complete with `Err`, and appends are refused. Writing on after a failed fsync would
//! build on pages the kernel may already have dropped.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;
use tracing::{debug, error};

use crate::config::{DIRECT_WRITE_MIN_BYTES, LINGER_BYTES, WRITE_BUFFER_BYTES};
use crate::error::WriteError;
use crate::format::{encode_record_header, encode_segment_header, SEGMENT_HEADER_BYTES};
use crate::position::Position;
use crate::shared::{Pending, Shared};
use crate::storage::{OpenMode, StorageFile};

/// Starts the writer on `file`, the segment `end.segment`, whose length is `end.offset`,
/// all of it durable (recovery fsynced it).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    file: Box<dyn StorageFile>,
    end: Position,
) -> io::Result<JoinHandle<()>> {
    let writer = Writer {
        shared,
        file,
        segment: end.segment,
        offset: end.offset,
        synced: end.offset,
        buf: Vec::with_capacity(WRITE_BUFFER_BYTES + DIRECT_WRITE_MIN_BYTES),
        dirty: false,
        sync_requested: false,
        unsynced_records: 0,
        preallocated: false,
        commit_time: CommitTime::default(),
        hold: None,
    };
    thread::Builder::new()
        .name("hawser-journal-writer".into())
        .spawn(move || writer.run())
}

struct Writer {
    shared: Arc<Shared>,
    /// The segment being appended to; replaced on rotation.
    file: Box<dyn StorageFile>,
    /// Id of `file`'s segment.
    segment: u64,
    /// Bytes in `file`, all written (not necessarily synced); `buf` goes after them.
    offset: u64,
    /// How much of `file` is known durable: the end of its last fsync (the header's end
    /// for a new segment, whose header is fsynced first). Framed into every record as
    /// `synced`, which is how recovery tells a torn write from damaged durable data.
    synced: u64,
    /// Framed records not yet written; flushed at `WRITE_BUFFER_BYTES` and batch end.
    buf: Vec<u8>,
    /// Bytes written to `file` since its last fsync.
    dirty: bool,
    /// A `sync` record was written since the last fsync.
    sync_requested: bool,
    /// Records written since the last fsync (its batch, for the statistics).
    unsynced_records: u64,
    /// `file` was prepared (see `preallocate`): allocated space, reading as zeros,
    /// follows `offset`, to be cut off when the writer leaves it.
    preallocated: bool,
    /// How long commits (writes and fsync) take, for the hold's length.
    commit_time: CommitTime,
    /// Set after a commit that confirmed synchronous records (see `take_batch`).
    hold: Option<Hold>,
}

/// Holding the next commit back for the synchronous senders the last one released.
///
/// Each sender that waits for its receipt before sending again (a window of one) sends
/// its next record about one round trip after the commit that confirmed it. Started at
/// once, the next commit takes only the records that arrived during the last fsync,
/// and the senders split into groups that take turns: with four, two records per fsync
/// and each sender waits two fsyncs per message. Waiting for the released senders,
/// at most one commit's time, keeps them in one group: one fsync per round for all.
///
/// The writer spins (yielding its CPU) rather than sleeps while it holds: waking a
/// sleeping thread took about 45 µs here, a third of the round trip it waits for, and
/// with it holding measured no better than not holding (four synchronous senders:
/// 10.6-11.2k msg/s against 11.9-12.3k; spinning 13.7-14.1k). It holds only when
/// holding can pay:
/// - the last commit confirmed at least two sync records or left some queued (one
///   sender gains nothing by waiting for itself);
/// - that commit was small, so its fsync cost was the disk's fixed cost per flush
///   rather than its bandwidth: with 64 KiB records the disk idled while the writer
///   waited (two senders with windows of 16: 11.1k msg/s without holding, 8.5k with).
struct Hold {
    syncs: usize,
    until: Instant,
}

impl Hold {
    /// Commits of more record bytes than this are not held for.
    const MAX_COMMIT_BYTES: usize = 16 * 1024;

    fn after(syncs: usize, bytes: usize, wait: Duration) -> Option<Hold> {
        (syncs > 0 && bytes <= Self::MAX_COMMIT_BYTES).then(|| Hold {
            syncs,
            until: Instant::now() + wait,
        })
    }
}

/// Running mean of the time a committing batch takes, write to fsync done.
#[derive(Default)]
struct CommitTime {
    mean_ns: u64,
}

impl CommitTime {
    /// The longest a commit is ever held back, whatever the disk: beyond it the
    /// latency added outweighs any sharing (a slow disk has its own queue).
    const MAX_HOLD: Duration = Duration::from_millis(1);

    fn record(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // Weight 1/8: follows the disk within a few dozen commits, ignores one outlier.
        self.mean_ns = if self.mean_ns == 0 {
            ns
        } else {
            self.mean_ns - self.mean_ns / 8 + ns / 8
        };
    }

    fn hold(&self) -> Duration {
        Duration::from_nanos(self.mean_ns).min(Self::MAX_HOLD)
    }
}

impl Writer {
    fn run(mut self) {
        let _exit = ExitGuard(Arc::clone(&self.shared));
        let mut batch = Vec::new();
        while self.take_batch(&mut batch) {
            let started = Instant::now();
            let syncs = batch.iter().filter(|pending| pending.sync).count();
            let bytes: usize = batch.iter().map(|pending| pending.record.len()).sum();
            if let Err(failure) = self.write_batch(&batch) {
                self.fail(failure, &mut batch);
                return;
            }
            if syncs > 0 {
                self.commit_time.record(started.elapsed());
            }
            self.shared.batch_count.fetch_add(1, Ordering::Relaxed);
            self.complete(&mut batch);
            self.hold = Hold::after(syncs, bytes, self.commit_time.hold());
        }
        // Closing: fsync whatever non-sync appends left unsynced, and leave the segment
        // as long as its records, so that the next open has no zeros to read.
        let closed = self
            .sync_if_dirty()
            .and_then(|()| self.cut_preallocated_tail());
        if let Err(failure) = closed {
            self.fail(failure, &mut batch);
        }
    }

    /// Waits for work and swaps the whole queue into `batch`. False once closing and
    /// drained.
    fn take_batch(&self, batch: &mut Vec<Pending>) -> bool {
        assert!(batch.is_empty());
        let mut state = self.shared.state.lock();
        while state.queue.is_empty() && !state.closing {
            self.shared.work.wait(&mut state);
        }
        // Records that asked for no fsync wait for company (see `DEFAULT_LINGER`).
        if state.queued_syncs == 0 {
            let until = Instant::now() + self.shared.config.linger;
            state.lingering = true;
            while state.queued_syncs == 0
                && state.queued_bytes < LINGER_BYTES
                && !state.urgent
                && !state.closing
                && !self.shared.work.wait_until(&mut state, until).timed_out()
            {}
            state.lingering = false;
        }
        state.urgent = false;
        // Senders the last commit released are expected back; a commit started now
        // would leave them for the next one (see `Hold`).
        if let Some(hold) = &self.hold {
            let wanted = hold.syncs + state.queued_syncs;
            while wanted >= 2
                && state.queued_syncs < wanted
                && !state.closing
                && Instant::now() < hold.until
            {
                MutexGuard::unlocked(&mut state, thread::yield_now);
            }
        }
        std::mem::swap(&mut state.queue, batch);
        state.queued_bytes = 0;
        self.shared.queued_bytes.store(0, Ordering::Relaxed);
        state.queued_syncs = 0;
        drop(state);
        // Producers held back by MAX_QUEUED_BYTES may go on.
        self.shared.progress.notify_all();
        !batch.is_empty()
    }

    fn write_batch(&mut self, batch: &[Pending]) -> Result<(), WriteError> {
        for pending in batch {
            if pending.position.segment != self.segment {
                self.flush()?;
                self.rotate(pending.position.segment)?;
            }
            let at = self.offset + self.buf.len() as u64;
            assert_eq!(
                pending.position.offset, at,
                "positions are assigned back to back"
            );
            assert!(
                at + crate::RECORD_HEADER_BYTES + pending.record.len() as u64
                    <= self.shared.config.segment_bytes
                    || at == SEGMENT_HEADER_BYTES,
                "only a segment's first record may overflow segment_bytes"
            );
            // The checksums are computed right before the bytes go out.
            assert!(self.synced <= at, "synced never passes what was written");
            let synced = u32::try_from(self.synced)
                .expect("record offsets fit in 32 bits: segment_bytes <= MAX_SEGMENT_BYTES");
            self.buf.extend_from_slice(&encode_record_header(
                pending.position,
                synced,
                &pending.record,
            ));
            if pending.record.len() >= DIRECT_WRITE_MIN_BYTES {
                self.write_out(&pending.record)?;
            } else {
                self.buf.extend_from_slice(&pending.record);
                if self.buf.len() >= WRITE_BUFFER_BYTES {
                    self.flush()?;
                }
            }
            self.sync_requested |= pending.sync;
            // Counted as written: a rotation's fsync takes the old segment's.
            self.unsynced_records += 1;
        }
        self.flush()?;
        if self.sync_requested {
            self.sync()?;
        }
        // Last, after the bytes are down and before anyone hears of it: a master
        // that was superseded meanwhile must not confirm this batch.
        if let Some(check) = &self.shared.config.confirm_check {
            check
                .check()
                .map_err(|reason| WriteError::ConfirmRefused { reason })?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.write_out(&[])
    }

    /// Writes `buf` followed by `tail` (a large payload, written without copying it).
    fn write_out(&mut self, tail: &[u8]) -> Result<(), WriteError> {
        let written = self.buf.len() + tail.len();
        self.inject_write_fault()
            .and_then(|()| self.file.write_at(self.offset, &self.buf, tail))
            .map_err(|source| self.io_error("write", source))?;
        self.offset += written as u64;
        self.shared
            .written_bytes
            .fetch_add(written as u64, Ordering::Relaxed);
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WriteError> {
        let started = Instant::now();
        self.inject_sync_fault()
            .and_then(|()| self.file.sync_data())
            .map_err(|source| self.io_error("fsync", source))?;
        let stats = &self.shared.stats;
        stats.sync_seconds.observe(started.elapsed().as_secs_f64());
        stats
            .batch_records
            .observe(std::mem::take(&mut self.unsynced_records) as f64);
        self.shared.sync_count.fetch_add(1, Ordering::Relaxed);
        self.dirty = false;
        self.sync_requested = false;
        self.synced = self.offset;
        Ok(())
    }

    fn sync_if_dirty(&mut self) -> Result<(), WriteError> {
        if self.dirty {
            self.sync()?;
        }
        Ok(())
    }

    /// Cuts the zeros after the records off a prepared segment, durably: only the last
    /// segment may hold anything but records.
    fn cut_preallocated_tail(&mut self) -> Result<(), WriteError> {
        if self.preallocated {
            self.file
                .set_len(self.offset)
                .and_then(|()| self.file.sync_all())
                .map_err(|source| self.io_error("cut preallocated tail of", source))?;
            self.preallocated = false;
        }
        Ok(())
    }

    /// Closes the current segment (fsynced) and starts segment `next` on disk, in the
    /// file the preallocator prepared for it if there is one.
    fn rotate(&mut self, next: u64) -> Result<(), WriteError> {
        assert_eq!(next, self.segment + 1, "segments are assigned in sequence");
        assert!(self.buf.is_empty());
        self.sync_if_dirty()?;
        self.cut_preallocated_tail()?;
        let path = self.shared.segment_path(next);
        let prepared = self
            .shared
            .state
            .lock()
            .prepared
            .take_if(|p| p.segment == next);
        let storage = &*self.shared.config.storage;
        let dir = &self.shared.config.dir;
        if let Some(prepared) = prepared {
            self.shared.spare.notify_all();
            // Its header and allocated blocks are durable already; the name is what
            // makes it a segment, and the directory fsync makes the name durable.
            storage
                .rename(&prepared.path, &path)
                .and_then(|()| storage.sync_dir(dir))
                .map_err(|source| WriteError::Io {
                    op: "rename preallocated segment to",
                    file: path.clone(),
                    source: Arc::new(source),
                })?;
            debug!(file = %path.display(), "journal: started preallocated segment");
            self.file = prepared.file;
            self.segment = next;
            self.offset = SEGMENT_HEADER_BYTES;
            self.synced = SEGMENT_HEADER_BYTES;
            self.dirty = false;
            self.preallocated = true;
            return Ok(());
        }
        let file = storage
            .open(&path, OpenMode::CreateNew)
            .map_err(|source| WriteError::Io {
                op: "create segment",
                file: path.clone(),
                source: Arc::new(source),
            })?;
        // The header is fsynced before any record is written after it: a disk may persist
        // a record before an earlier unsynced write, and a segment whose header was lost
        // while records survived would read as corruption. A crash before this fsync
        // leaves a short or zeroed file with no record in it, which recovery starts over.
        self.inject_write_fault()
            .and_then(|()| file.write_at(0, &encode_segment_header(next), &[]))
            .and_then(|()| file.sync_all())
            .map_err(|source| WriteError::Io {
                op: "write segment header",
                file: path.clone(),
                source: Arc::new(source),
            })?;
        storage.sync_dir(dir).map_err(|source| WriteError::Io {
            op: "fsync directory of",
            file: path.clone(),
            source: Arc::new(source),
        })?;
        debug!(file = %path.display(), "journal: started segment");
        self.file = file;
        self.segment = next;
        self.offset = SEGMENT_HEADER_BYTES;
        self.synced = SEGMENT_HEADER_BYTES;
        self.dirty = false;
        Ok(())
    }

    /// Publishes progress, tells the hook, then completes the batch, so a caller whose
    /// `Durable` is done can `read` its record without waiting and finds the hook told.
    fn complete(&self, batch: &mut Vec<Pending>) {
        self.shared.state.lock().written = Position {
            segment: self.segment,
            offset: self.offset,
        };
        self.shared.progress.notify_all();
        if let Some(tag) = batch.iter().rev().find_map(|pending| pending.tag) {
            self.shared.report(Ok(tag));
        }
        for pending in batch.drain(..) {
            // The caller may have dropped its Durable; that is fine.
            let _ = pending.done.send(Ok(()));
        }
    }

    fn fail(&self, failure: WriteError, batch: &mut Vec<Pending>) {
        error!(error = %failure, "journal: write failed; refusing appends until reopened");
        let queued = {
            let mut state = self.shared.state.lock();
            state.failed = Some(failure.clone());
            state.queued_bytes = 0;
            self.shared.queued_bytes.store(0, Ordering::Relaxed);
            state.queued_syncs = 0;
            std::mem::take(&mut state.queue)
        };
        self.shared.progress.notify_all();
        self.shared.report(Err(&failure));
        for pending in batch.drain(..).chain(queued) {
            let _ = pending.done.send(Err(failure.clone()));
        }
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> WriteError {
        WriteError::Io {
            op,
            file: self.shared.segment_path(self.segment),
            source: Arc::new(source),
        }
    }

    #[cfg(test)]
    fn inject_write_fault(&self) -> io::Result<()> {
        injected(&self.shared.faults.fail_writes)
    }

    #[cfg(test)]
    fn inject_sync_fault(&self) -> io::Result<()> {
        injected(&self.shared.faults.fail_syncs)
    }

    #[cfg(not(test))]
    fn inject_write_fault(&self) -> io::Result<()> {
        Ok(())
    }

    #[cfg(not(test))]
    fn inject_sync_fault(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
fn injected(switch: &std::sync::atomic::AtomicBool) -> io::Result<()> {
    if switch.load(Ordering::SeqCst) {
        Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "injected: no space left on device",
        ))
    } else {
        Ok(())
    }
}

/// Marks the writer as gone however it exits. If it panicked, the journal is failed and
/// queued records are dropped (their `Durable`s resolve to `WriterGone`), so producers
/// neither queue forever nor wait forever.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let orphans = {
            let mut state = self.0.state.lock();
            state.writer_done = true;
            if thread::panicking() {
                state.failed.get_or_insert(WriteError::WriterGone);
            }
            state.queued_bytes = 0;
            self.0.queued_bytes.store(0, Ordering::Relaxed);
            state.queued_syncs = 0;
            std::mem::take(&mut state.queue)
        };
        self.0.progress.notify_all();
        if thread::panicking() {
            self.0.report(Err(&WriteError::WriterGone));
        }
        drop(orphans);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_only_after_small_commits_of_sync_records() {
        let wait = Duration::from_micros(150);
        assert!(Hold::after(0, 100, wait).is_none(), "no sync record");
        assert!(
            Hold::after(4, Hold::MAX_COMMIT_BYTES + 1, wait).is_none(),
            "large"
        );
        let hold = Hold::after(4, 4 * 1100, wait).expect("small commit of four");
        assert_eq!(hold.syncs, 4);
        assert!(hold.until > Instant::now() && hold.until <= Instant::now() + wait);
    }

    #[test]
    fn commit_time_follows_the_disk_and_is_capped() {
        let mut time = CommitTime::default();
        assert_eq!(time.hold(), Duration::ZERO, "nothing measured yet: no hold");
        time.record(Duration::from_micros(100));
        assert_eq!(time.hold(), Duration::from_micros(100));
        // One slow commit moves the mean by an eighth of the difference.
        time.record(Duration::from_micros(900));
        assert_eq!(time.hold(), Duration::from_micros(200));
        for _ in 0..100 {
            time.record(Duration::from_secs(1));
        }
        assert_eq!(time.hold(), CommitTime::MAX_HOLD);
    }
}
