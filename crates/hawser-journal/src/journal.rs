//! The [`Journal`] handle: producers append through it, recovery opens it, and it hands
//! every write to the single writer thread (see `writer`).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::config::{JournalConfig, LINGER_BYTES, MAX_QUEUED_BYTES, MIN_SEGMENT_BYTES};
use crate::durable::Durable;
use crate::epochs::Seals;
use crate::error::{AppendError, DeleteError, OpenError};
use crate::format::MAX_SEGMENT_BYTES;
use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::position::Position;
use crate::recovery::{recover, Layout, RecordVisitor, ResumeChooser};
use crate::shared::{Pending, ProgressHook, Shared, State};
use crate::stats::HistogramSnapshot;
use crate::storage::{create_dir_all_durable, LockGuard, Storage};
use crate::writer;

/// Name of the file whose lock keeps a second journal out of the directory.
const LOCK_FILE_NAME: &str = "journal.lock";

/// What [`Journal::open`] found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// Every good record of every segment, oldest first.
    pub records: Vec<(Position, Bytes)>,
    /// The last segment's file and the length its torn tail was cut to, if it was cut.
    pub truncated: Option<(PathBuf, u64)>,
    /// The file that keeps the bytes cut off that torn tail (`None` if there was no cut,
    /// or the cut bytes were all zeros).
    pub torn_tail_copy: Option<PathBuf>,
}

/// An open journal. `Send + Sync`: share it behind an `Arc`; every method takes `&self`.
pub struct Journal {
    pub(crate) shared: Arc<Shared>,
    /// The writer thread and the preallocator, joined (and taken) by `close`.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Holds the directory lock until `close`.
    lock_file: Mutex<Option<LockGuard>>,
}

impl Journal {
    /// Opens the journal in `config.dir` (creating the directory if needed), scans every
    /// segment in order verifying each record's CRC, and returns all records.
    ///
    /// A bad record in the last segment after which nothing says the bytes were durable
    /// is a torn tail from a crash: its bytes are copied aside, the file is cut there
    /// (and fsynced), one warning names the file, the offset and the copy, and opening
    /// goes on (see `recovery` for the rule). A bad record or header anywhere else, or in
    /// the last segment before a record written after it was fsynced, is corruption:
    /// `OpenError::Corrupt`, naming the file and offset, and nothing is changed.
    ///
    /// # Errors
    /// `Corrupt` as above; `Locked` if another journal has the directory open;
    /// `SegmentTooSmall` or `SegmentTooLarge` for a bad configuration; `Io` if the file
    /// system fails.
    pub fn open(config: JournalConfig) -> Result<(Journal, Recovered), OpenError> {
        let mut records = Vec::new();
        let (journal, found) = Journal::open_with(config, &mut |position, payload| {
            records.push((position, Bytes::copy_from_slice(payload)));
            Ok(())
        })?;
        Ok((
            journal,
            Recovered {
                records,
                truncated: found.truncated,
                torn_tail_copy: found.torn_tail_copy,
            },
        ))
    }

    /// [`Journal::open`], handing each record to `visit` as the scan meets it
    /// instead of keeping them all: a store recovering a backlog larger than
    /// memory keeps what it needs of each (where it is) and lets its bytes go.
    /// The returned [`Recovered`] holds no records.
    ///
    /// # Errors
    /// As [`Journal::open`]; `Stopped` if `visit` said so.
    pub fn open_with(
        config: JournalConfig,
        visit: &mut RecordVisitor<'_>,
    ) -> Result<(Journal, Recovered), OpenError> {
        Journal::open_from(config, &mut |_| None, visit)
    }

    /// [`Journal::open_with`], visiting only the records from the position
    /// `resume` chooses on, once the directory is locked and its segments
    /// known: a caller that keeps a checkpoint of what the records before it
    /// said opens in the time the records after it take, whatever the size of
    /// the journal. Segments before that position are not read or verified.
    ///
    /// # Errors
    /// As [`Journal::open_with`]; `NoResume` if the position chosen is not a
    /// record's (the caller opens again from the start).
    pub fn open_from(
        mut config: JournalConfig,
        resume: &mut ResumeChooser<'_>,
        visit: &mut RecordVisitor<'_>,
    ) -> Result<(Journal, Recovered), OpenError> {
        if config.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(OpenError::SegmentTooSmall {
                segment_bytes: config.segment_bytes,
                min: MIN_SEGMENT_BYTES,
            });
        }
        if config.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(OpenError::SegmentTooLarge {
                segment_bytes: config.segment_bytes,
                max: MAX_SEGMENT_BYTES,
            });
        }
        let storage = config.storage.clone();
        create_dir_all_durable(&*storage, &config.dir).map_err(|source| OpenError::Io {
            op: "create directory",
            path: config.dir.clone(),
            source,
        })?;
        let (seals, inherited_from) = match config.epoch {
            Some(epoch) => {
                let prepared =
                    crate::epochs::prepare(&*storage, &config.dir, epoch, config.max_record_bytes)?;
                config.dir = prepared.dir;
                (prepared.seals, Some(prepared.from))
            }
            None if crate::epochs::has_epochs(&*storage, &config.dir) => {
                return Err(OpenError::SharedStore {
                    dir: config.dir.clone(),
                })
            }
            None => (Seals::new(), None),
        };
        let lock_file = lock_dir(&config)?;
        crate::preallocate::remove_leftovers(&*storage, &config.dir).map_err(|source| {
            OpenError::Io {
                op: "remove unfinished preallocated segments in",
                path: config.dir.clone(),
                source,
            }
        })?;
        let segments: Vec<u64> = crate::recovery::list_segments(&*storage, &config.dir)?
            .into_iter()
            .map(|(segment, _)| segment)
            .collect();
        let start = resume(&Layout {
            dir: &config.dir,
            epoch: config.epoch,
            inherited_from: inherited_from.as_deref(),
            seals: &seals,
            segments: &segments,
        });
        let recovery = recover(&config, &seals, start, visit)?;
        info!(
            dir = %config.dir.display(),
            segments = recovery.segments.len(),
            records = recovery.records,
            end = %recovery.end,
            "journal: opened"
        );
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                next: recovery.end,
                queue: Vec::new(),
                queued_bytes: 0,
                queued_syncs: 0,
                lingering: false,
                urgent: false,
                written: recovery.end,
                segments: recovery.segments,
                failed: None,
                closing: false,
                writer_done: false,
                prepared: None,
                // Recovery leaves the last segment exactly as long as its records.
                preallocated: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            spare: Condvar::new(),
            sync_count: AtomicU64::new(0),
            stats: crate::stats::WriterStats::default(),
            batch_count: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            disk_bytes: AtomicU64::new(recovery.disk_bytes),
            progress_hook: std::sync::OnceLock::new(),
            #[cfg(test)]
            faults: crate::shared::Faults::default(),
        });
        let handle =
            writer::spawn(Arc::clone(&shared), recovery.file, recovery.end).map_err(|source| {
                OpenError::Io {
                    op: "spawn writer thread for",
                    path: shared.config.dir.clone(),
                    source,
                }
            })?;
        let mut threads = vec![handle];
        if shared.config.preallocate {
            let preallocator =
                crate::preallocate::spawn(Arc::clone(&shared)).map_err(|source| OpenError::Io {
                    op: "spawn preallocation thread for",
                    path: shared.config.dir.clone(),
                    source,
                })?;
            threads.push(preallocator);
        }
        let journal = Journal {
            shared,
            threads: Mutex::new(threads),
            lock_file: Mutex::new(Some(lock_file)),
        };
        let recovered = Recovered {
            records: Vec::new(),
            truncated: recovery.truncated,
            torn_tail_copy: recovery.torn_tail_copy,
        };
        Ok((journal, recovered))
    }

    /// Appends one record and returns at once with its position; the writer thread
    /// writes it. Records reach the disk in exactly the order `append` was called.
    ///
    /// With `sync`, the returned [`Durable`] completes after an fsync covering the
    /// record; without, after the record was written (a later fsync covers it).
    ///
    /// Blocks only when [`MAX_QUEUED_BYTES`] are already waiting for the writer.
    ///
    /// # Errors
    /// `TooLarge` above `max_record_bytes`; `Failed` once a write or fsync has failed;
    /// `Closed` after `close`. A failure of this record's own write arrives on the
    /// `Durable` instead.
    pub fn append(&self, record: Bytes, sync: bool) -> Result<(Position, Durable), AppendError> {
        self.append_tagged(record, sync, None)
    }

    /// As [`Journal::append`], with the caller's number for the record: once the record
    /// is durable the progress hook (see [`Journal::set_progress_hook`]) is told `tag`,
    /// or a higher one appended later. Tags must rise in append order.
    ///
    /// # Errors
    /// As [`Journal::append`].
    pub fn append_tagged(
        &self,
        record: Bytes,
        sync: bool,
        tag: Option<u64>,
    ) -> Result<(Position, Durable), AppendError> {
        let max = self.shared.config.max_record_bytes;
        if record.len() > max as usize {
            return Err(AppendError::TooLarge {
                len: record.len(),
                max,
            });
        }
        let size = RECORD_HEADER_BYTES + record.len() as u64;
        let (done, durable) = oneshot::channel();
        let mut state = self.shared.state.lock();
        while state.queued_bytes > 0
            && state.queued_bytes + size > MAX_QUEUED_BYTES
            && state.failed.is_none()
            && !state.closing
        {
            self.shared.progress.wait(&mut state);
        }
        if let Some(cause) = &state.failed {
            return Err(AppendError::Failed {
                cause: cause.clone(),
            });
        }
        if state.closing {
            return Err(AppendError::Closed);
        }
        let mut added = size;
        let started = state.next.offset > SEGMENT_HEADER_BYTES;
        let full = started && state.next.offset + size > self.shared.config.segment_bytes;
        let segment = state.next.segment + 1;
        let prepared = state
            .prepared
            .as_ref()
            .is_some_and(|p| p.segment == segment);
        // A segment the writer had to grow itself is left as soon as a prepared one is
        // ready: its commits cost twice the I/O (see `preallocate`).
        if full || (started && prepared && !state.preallocated) {
            state.preallocated = prepared;
            state.next = Position {
                segment,
                offset: SEGMENT_HEADER_BYTES,
            };
            state.segments.insert(segment);
            added += SEGMENT_HEADER_BYTES;
        }
        let position = state.next;
        state.next.offset += size;
        state.queued_bytes += size;
        self.shared
            .queued_bytes
            .store(state.queued_bytes, Ordering::Relaxed);
        state.queued_syncs += usize::from(sync);
        state.queue.push(Pending {
            position,
            record,
            sync,
            done,
            tag,
        });
        // The writer sleeps on an empty queue, and lingering over records that asked
        // for no fsync (holding a commit back it spins).
        let wake = state.queue.len() == 1
            || (state.lingering && (sync || state.queued_bytes >= LINGER_BYTES));
        drop(state);
        if wake {
            self.shared.work.notify_one();
        }
        self.shared.disk_bytes.fetch_add(added, Ordering::Relaxed);
        Ok((position, Durable(durable)))
    }

    /// Has the writer thread call `hook` after every batch, with the highest tag the batch
    /// completed (see [`Journal::append_tagged`]), and with the error once the journal
    /// fails. Without a thread of one's own waiting on every [`Durable`], a caller learns
    /// of group commits as they happen. Only the first hook set counts.
    pub fn set_progress_hook(&self, hook: ProgressHook) {
        let _ = self.shared.progress_hook.set(hook);
    }

    /// Deletes a whole segment file (and fsyncs the directory, so it stays deleted after
    /// a crash). Only segments older than the current one may be deleted; if the writer
    /// has not finished writing the segment yet, this waits until it has.
    ///
    /// # Errors
    /// `Active` for the current (or a future) segment; `NoSuchSegment`; `Io`.
    pub fn delete_segment(&self, segment: u64) -> Result<(), DeleteError> {
        {
            let mut state = self.shared.state.lock();
            if segment >= state.next.segment {
                return Err(DeleteError::Active {
                    segment,
                    current: state.next.segment,
                });
            }
            if !state.segments.contains(&segment) {
                return Err(DeleteError::NoSuchSegment { segment });
            }
            while state.written.segment <= segment && state.writer_can_progress() {
                self.shared.hurry(&mut state);
                self.shared.progress.wait(&mut state);
            }
            // Removed before the file goes, so a concurrent delete of the same segment
            // gets NoSuchSegment instead of racing on the file.
            state.segments.remove(&segment);
        }
        let path = self.shared.segment_path(segment);
        let storage = &*self.shared.config.storage;
        let removed = storage
            .len(&path)
            .and_then(|length| storage.remove_file(&path).map(|()| length));
        let length = match removed {
            Ok(length) => length,
            Err(source) => {
                self.shared.state.lock().segments.insert(segment);
                return Err(DeleteError::Io {
                    op: "delete segment",
                    path,
                    source,
                });
            }
        };
        let _ =
            self.shared
                .disk_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                    Some(total.saturating_sub(length))
                });
        storage
            .sync_dir(&self.shared.config.dir)
            .map_err(|source| DeleteError::Io {
                op: "fsync directory",
                path: self.shared.config.dir.clone(),
                source,
            })
    }

    /// Bytes of records appended and not yet taken by the writer. `append`
    /// blocks once [`MAX_QUEUED_BYTES`] wait; a caller that must not block
    /// (the broker's engine appends under its lock) holds its own producers
    /// back well before that.
    pub fn queued_bytes(&self) -> u64 {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }

    /// Ids of the existing segments, oldest first (including one just assigned whose
    /// file the writer is about to create).
    pub fn segments(&self) -> Vec<u64> {
        self.shared.state.lock().segments.iter().copied().collect()
    }

    /// The segment new records go to.
    pub fn current_segment(&self) -> u64 {
        self.shared.state.lock().next.segment
    }

    /// Total size of all segments, counting queued records as already written.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    /// Number of fsyncs of segment files so far (directory fsyncs not counted). With
    /// group commit this grows slower than the number of sync appends.
    pub fn sync_count(&self) -> u64 {
        self.shared.sync_count.load(Ordering::Relaxed)
    }

    /// The writer's fsync latencies and batch sizes so far.
    pub fn stats(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        let s = &self.shared.stats;
        (s.sync_seconds.snapshot(), s.batch_records.snapshot())
    }

    /// Number of batches the writer has written so far: records appended close
    /// together share one.
    pub fn batch_count(&self) -> u64 {
        self.shared.batch_count.load(Ordering::Relaxed)
    }

    /// The configuration the journal was opened with.
    pub fn config(&self) -> &JournalConfig {
        &self.shared.config
    }

    /// Stops the writer after it has written and fsynced everything queued, and releases
    /// the directory lock. Later appends get `AppendError::Closed`. Idempotent; also done
    /// on drop.
    pub fn close(&self) {
        self.shared.state.lock().closing = true;
        self.shared.work.notify_all();
        self.shared.spare.notify_all();
        // Producers held back by MAX_QUEUED_BYTES must see `closing` too.
        self.shared.progress.notify_all();
        for handle in self.threads.lock().drain(..) {
            if handle.join().is_err() {
                error!("journal: a journal thread panicked");
            }
        }
        // A prepared segment nobody will start.
        if let Some(prepared) = self.shared.state.lock().prepared.take() {
            let _ = self.shared.config.storage.remove_file(&prepared.path);
        }
        self.lock_file.lock().take();
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.config.dir)
            .field("current_segment", &self.current_segment())
            .finish_non_exhaustive()
    }
}

/// Takes an exclusive lock on the directory's lock file: two journals appending to the
/// same segment files would interleave records and corrupt both.
fn lock_dir(config: &JournalConfig) -> Result<LockGuard, OpenError> {
    let storage: &dyn Storage = &*config.storage;
    let path = config.dir.join(LOCK_FILE_NAME);
    let io_error = |op| {
        let path = path.clone();
        move |source| OpenError::Io { op, path, source }
    };
    let existed = storage
        .exists(&path)
        .map_err(io_error("look for lock file"))?;
    let Some(guard) = storage.try_lock(&path).map_err(io_error("lock"))? else {
        return Err(OpenError::Locked {
            dir: config.dir.clone(),
        });
    };
    if !existed {
        // Every file the journal creates has its name made durable.
        storage
            .sync_dir(&config.dir)
            .map_err(io_error("fsync directory of"))?;
    }
    Ok(guard)
}
