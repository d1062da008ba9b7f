//! The broker's [`Store`] on the journal: records of [`StoreOp`]s, a durability
//! watermark, recovery from a checkpoint (`checkpoint`) and the records after
//! it, and reclaiming segments nobody needs.
//!
//! Every `append` encodes one record (`hawser_broker::store_codec`) and queues
//! it on the journal, in call order, tagged with its seq. The journal's writer
//! thread raises the watermark to the highest seq of each batch it completes
//! (its progress hook), so connections waiting for durability are woken once
//! per group commit, with no thread in between.
//!
//! Reclaiming: the store tracks which records are still *live* (hold a message
//! some container has not dequeued, or a durable subscription that exists) and
//! counts them per segment. Segments are deleted oldest first only, because a
//! later segment may hold the dequeue records that keep an older message dead.
//! When the oldest segment is mostly dead but pins a few live records, those are
//! copied forward (re-appended at the head) and the segment goes. Disk use and
//! recovery time therefore follow what is pending, not history.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_broker::message::MAX_PRIORITY;
use hawser_broker::store_codec::{
    decode_record, decode_record_with, encode_record, CodecError, Names,
};
use hawser_broker::{
    Durability, DurabilityWatch, Histogram, MessageData, MessageId, ReadFuture, ReadLimit,
    Recovered, Replay, Seq, Store, StoreError, StoreKey, StoreOp, StoredMessage, WriteStats,
};
use parking_lot::Mutex;
use tokio::sync::watch;

use hawser_journal::{Journal, JournalConfig, OpenError, Position, ReadError};

use crate::checkpoint;
use crate::tracker::{LiveRef, Tracker};

/// How often the reclaimer looks at the oldest segment.
const RECLAIM_INTERVAL: Duration = Duration::from_millis(500);
/// Bytes queued for the journal's writer from which the store says its
/// writes are behind (`Store::writes_behind`).
const WRITES_BEHIND_BYTES: u64 = hawser_journal::MAX_QUEUED_BYTES / 2;
/// Segments' worth of records after which a checkpoint is due (see `checkpoint_due`).
const CHECKPOINT_SEGMENTS: u64 = 2;
/// How long reclaiming waits for a newer checkpoint before writing one so that
/// it can delete the segment the last one resumes in.
const CHECKPOINT_FOR_RECLAIM_AFTER: Duration = Duration::from_secs(5);
/// Copy the oldest segment's live records forward when they are under this
/// fraction (1/N) of its size; above it, waiting for consumers is cheaper.
const COPY_FORWARD_BELOW_ONE_IN: u64 = 4;

/// Why the journal store could not open.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum JournalStoreError {
    /// The journal itself could not open (I/O, corruption...).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A record passed its checksum but is not a valid store record.
    #[error("undecodable record in {file} at offset {offset}: {source}")]
    Undecodable {
        /// The segment file.
        file: PathBuf,
        /// The record's offset.
        offset: u64,
        /// What is wrong.
        source: CodecError,
    },
}

/// What the store threads share.
struct Shared {
    journal: Journal,
    tracker: Mutex<Tracker>,
    /// Raised by the journal's writer thread after each group commit (its progress
    /// hook), from the tags `append_locked` gives records: their `Seq`s.
    durability: watch::Sender<Durability>,
    /// Set by `close`; the reclaimer stops.
    closing: AtomicBool,
    /// The newest checkpoint on disk, if any (the reclaim thread and `close`
    /// write them).
    checkpointed: Mutex<Option<Checkpointed>>,
    /// Held by whoever reclaims or writes a checkpoint (the reclaim thread;
    /// `close` and tools otherwise): one at a time, so that two checkpoints
    /// never share the temporary file, and no segment goes while a
    /// checkpoint reads records from it.
    maintenance: Mutex<()>,
    /// `Spilled::bytes`, readable without the tracker's lock (producer flow
    /// control asks it before each non-persistent send).
    spilled_bytes: AtomicU64,
}

/// The newest checkpoint written (or opened from).
#[derive(Clone, Copy, Debug)]
struct Checkpointed {
    /// Its last record's segment: recovery resumes there, so reclaiming
    /// leaves that segment and later ones until a newer checkpoint.
    segment: u64,
    /// Its last record.
    last: Position,
    /// `Tracker::applied_bytes` when it was taken.
    applied_bytes: u64,
    /// Its size.
    bytes: u64,
    /// It is the predecessor's, opened from after a takeover.
    inherited: bool,
    /// When it was written.
    at: Instant,
}

/// The broker's store on a local journal.
pub struct JournalStore {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// See [`JournalStore::opened_from`].
    opened_from: Option<Position>,
}

impl JournalStore {
    /// Opens the journal in `config.dir` and replays it: from its checkpoint
    /// on if it has a usable one (see `checkpoint`), else from the start.
    pub fn open(config: JournalConfig) -> Result<(JournalStore, Recovered), JournalStoreError> {
        match JournalStore::open_once(config.clone(), true) {
            Err(JournalStoreError::Open(OpenError::NoResume { at })) => {
                tracing::warn!(
                    "journal store: the checkpoint's last record {at} is not in the journal; replaying all of it"
                );
                JournalStore::open_once(config, false)
            }
            opened => opened,
        }
    }

    fn open_once(
        config: JournalConfig,
        use_checkpoint: bool,
    ) -> Result<(JournalStore, Recovered), JournalStoreError> {
        let storage = config.storage.clone();
        // The tracker is the index of messages: recovery keeps no message,
        // only where each is (the engine reads them back, `Store::read`), and
        // the journal hands over one record at a time, so that opening a
        // backlog larger than memory does not hold it. A checkpoint gives the
        // tracker as of its last record, and the scan starts there.
        let state = std::cell::RefCell::new((Tracker::default(), Replay::without_messages()));
        let resumed: std::cell::Cell<Option<(Position, u64, bool)>> = std::cell::Cell::new(None);
        let started = Instant::now();
        let mut names = Names::default();
        let mut undecodable = None;
        let opened = Journal::open_from(
            config,
            &mut |layout| {
                if !use_checkpoint {
                    return None;
                }
                let loaded = checkpoint::find(&*storage, layout)?;
                *state.borrow_mut() = (loaded.tracker, loaded.replay);
                resumed.set(Some((loaded.last, loaded.bytes, loaded.inherited)));
                Some(loaded.last)
            },
            &mut |pos, payload| {
                if resumed.get().is_some_and(|(last, _, _)| last == pos) {
                    // The checkpoint's last record: in it already.
                    return Ok(());
                }
                let bytes = Bytes::copy_from_slice(payload);
                match decode_record_with(&bytes, &mut names) {
                    Ok(ops) => {
                        let (tracker, replay) = &mut *state.borrow_mut();
                        tracker.apply(&ops, pos, record_len(&bytes));
                        replay.apply(ops);
                        Ok(())
                    }
                    Err(e) => {
                        undecodable = Some(e);
                        Err(())
                    }
                }
            },
        );
        let journal = match (opened, undecodable) {
            (Ok((journal, _)), _) => journal,
            (Err(OpenError::Stopped { file, offset }), Some(source)) => {
                return Err(JournalStoreError::Undecodable {
                    file,
                    offset,
                    source,
                })
            }
            (Err(e), _) => return Err(e.into()),
        };
        let (mut tracker, replay) = state.into_inner();
        // Non-persistent messages are not recovered (see `Spilled`).
        let dropped = tracker.drop_spilled();
        if dropped > 0 {
            tracing::info!("journal store: {dropped} non-persistent messages spilled before the start are dropped");
        }
        let mut recovered = replay.into_recovered();
        recovered.max_message_id = recovered.max_message_id.max(tracker.max_id);
        for (key, messages) in &tracker.messages {
            if !messages.is_empty() {
                recovered.pending.insert(key.clone(), messages.counts());
            }
        }
        // What prepared transactions acknowledged, which the engine holds from the start.
        for (key, id) in recovered.prepared.iter().flat_map(|p| &p.acks) {
            let Some(r) = tracker.messages.get(key).and_then(|m| m.get(*id)) else {
                continue;
            };
            let bytes = match journal.read(r.pos) {
                Ok(bytes) => Some(bytes),
                // A checkpoint spared the open from reading older segments:
                // damage found in one now refuses the open as the scan would.
                Err(ReadError::Corrupt {
                    file,
                    offset,
                    reason,
                }) => {
                    return Err(OpenError::Corrupt {
                        file,
                        offset,
                        reason,
                    }
                    .into())
                }
                Err(_) => None,
            };
            let message = bytes
                .and_then(|bytes| decode_record(&bytes).ok())
                .and_then(|ops| message_in(ops, *id));
            if let Some(data) = message {
                recovered.held.push((key.clone(), (data, r.redeliveries)));
            }
        }
        tracing::info!(
            checkpoint = ?resumed.get().map(|(last, bytes, _)| (last.to_string(), bytes)),
            replayed_bytes = tracker.applied_bytes,
            pending = recovered.pending_total(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "journal store: opened"
        );
        // The records replayed count towards the next checkpoint (see
        // `checkpoint_due`); an inherited checkpoint is not this journal's
        // own, and the next takeover needs one here: one is due at once.
        let checkpointed = resumed.get().map(|(last, bytes, inherited)| Checkpointed {
            segment: last.segment,
            last,
            applied_bytes: 0,
            bytes,
            at: Instant::now(),
            inherited,
        });
        let durability = watch::channel(Durability::default()).0;
        journal.set_progress_hook(progress_hook(durability.clone()));
        let shared = Arc::new(Shared {
            journal,
            tracker: Mutex::new(tracker),
            durability,
            closing: AtomicBool::new(false),
            checkpointed: Mutex::new(checkpointed),
            maintenance: Mutex::new(()),
            spilled_bytes: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let reclaimer = std::thread::Builder::new()
            .name("hawser-reclaim".into())
            .spawn(move || reclaim_loop(&s))
            .expect("spawn reclaim thread");
        Ok((
            JournalStore {
                shared,
                threads: Mutex::new(vec![reclaimer]),
                opened_from: resumed.get().map(|(last, _, _)| last),
            },
            recovered,
        ))
    }

    /// The journal underneath (for tools and tests).
    pub fn journal(&self) -> &Journal {
        &self.shared.journal
    }

    /// Every stored message, per container in id order, read now on this
    /// thread (tests, tools; the engine reads with `Store::read`).
    ///
    /// # Errors
    /// If a record cannot be read back.
    pub fn stored_messages(
        &self,
    ) -> Result<std::collections::HashMap<StoreKey, Vec<StoredMessage>>, StoreError> {
        let keys: Vec<StoreKey> = {
            let tracker = self.shared.tracker.lock();
            tracker
                .messages
                .iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(k, _)| k.clone())
                .collect()
        };
        let mut all = std::collections::HashMap::new();
        for key in keys {
            let mut messages = Vec::new();
            for priority in 0..=MAX_PRIORITY {
                messages.extend(
                    self.shared
                        .read_messages(&key, priority, 0, ReadLimit::ALL)?,
                );
            }
            messages.sort_by_key(|(m, _): &StoredMessage| m.id);
            all.insert(key, messages);
        }
        Ok(all)
    }

    /// Opens as [`JournalStore::open`] does, but replays the whole journal
    /// whatever checkpoint there is (tests and tools check checkpoints with it).
    ///
    /// # Errors
    /// As [`JournalStore::open`].
    pub fn open_replaying_all(
        config: JournalConfig,
    ) -> Result<(JournalStore, Recovered), JournalStoreError> {
        JournalStore::open_once(config, false)
    }

    /// The last record of the checkpoint this store opened from, if it did.
    pub fn opened_from(&self) -> Option<Position> {
        self.opened_from
    }

    /// Live holds per segment with any: segment, holds, their bytes (tests
    /// compare a checkpointed open with a full replay by it).
    pub fn segment_holds(&self) -> Vec<(u64, u64, u64)> {
        let tracker = self.shared.tracker.lock();
        tracker
            .segments
            .iter()
            .filter(|(_, live)| live.refs > 0)
            .map(|(segment, live)| (*segment, live.refs, live.bytes))
            .collect()
    }

    /// Writes a checkpoint now rather than when one is due (tests, tools).
    ///
    /// # Errors
    /// If the store cannot write one (it failed, or may no longer confirm).
    pub fn checkpoint_now(&self) -> Result<(), StoreError> {
        let _one = self.shared.maintenance.lock();
        write_checkpoint(&self.shared).map_err(StoreError::Failed)
    }

    /// Reclaims what it can now rather than at the next interval (tests, tools).
    pub fn reclaim_now(&self) {
        let _one = self.shared.maintenance.lock();
        reclaim(&self.shared, None);
    }
}

fn record_len(bytes: &Bytes) -> u64 {
    bytes.len() as u64 + hawser_journal::RECORD_HEADER_BYTES
}

impl Shared {
    /// Appends one record and registers it; the caller holds the tracker lock so
    /// the journal order and the tracker agree.
    fn append_locked(
        &self,
        tracker: &mut Tracker,
        ops: &[StoreOp<impl hawser_broker::message::AsMessageData>],
        sync: bool,
    ) -> Result<Seq, StoreError> {
        let bytes = encode_record(ops);
        let len = record_len(&bytes);
        let seq = tracker.seq + 1;
        // The Durable is not kept: the progress hook reports the seq instead.
        let (pos, _) = self
            .journal
            .append_tagged(bytes, sync, Some(seq))
            .map_err(|e| match e {
                hawser_journal::AppendError::TooLarge { len, max } => StoreError::TooLarge {
                    len,
                    max: max as usize,
                },
                hawser_journal::AppendError::Closed => StoreError::Closed,
                e => StoreError::Failed(e.to_string()),
            })?;
        tracker.seq = seq;
        tracker.apply(ops, pos, len);
        self.spilled_bytes
            .store(tracker.spilled.bytes, Ordering::Relaxed);
        Ok(seq)
    }
}

/// The message `id` among a record's ops.
fn message_in(ops: Vec<StoreOp<MessageData>>, id: MessageId) -> Option<MessageData> {
    ops.into_iter().find_map(|op| match op {
        StoreOp::Enqueue { message, .. } if message.id == id => Some(message),
        _ => None,
    })
}

/// Why a read did not get its messages.
enum Unread {
    /// A segment was deleted under it: look again.
    Moved(ReadError),
    /// A record fails its checksum: the store fails (see `read_messages`).
    Corrupt(ReadError),
    /// Anything else.
    Failed(String),
}

/// Attempts at a read whose segment was deleted under it (its live records
/// were copied forward, so a second look finds them elsewhere).
const READ_ATTEMPTS: usize = 3;

impl Shared {
    /// [`Store::read`], on the calling thread.
    fn read_messages(
        &self,
        key: &StoreKey,
        priority: u8,
        after: MessageId,
        limit: ReadLimit,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut last = None;
        for _ in 0..READ_ATTEMPTS {
            let wanted: Vec<(MessageId, LiveRef)> = {
                let tracker = self.tracker.lock();
                // The record's share stands for the message's size.
                let mut bytes = 0u64;
                tracker
                    .after(key, priority, after, limit.messages)
                    .into_iter()
                    .take_while(|(_, r)| {
                        let more = bytes < limit.bytes;
                        bytes += r.bytes;
                        more
                    })
                    .collect()
            };
            match self.read_at(&wanted) {
                Ok(read) => return Ok(read),
                Err(Unread::Moved(e)) => last = Some(e),
                Err(Unread::Failed(e)) => {
                    return Err(StoreError::Failed(format!(
                        "reading stored messages of {key:?}: {e}"
                    )))
                }
                Err(Unread::Corrupt(e)) => {
                    // Damage a crash cannot explain, in a segment a checkpoint
                    // spared the start from reading: as when a start meets it,
                    // nothing more is served from this store (the broker stops,
                    // naming file and offset) rather than skip a message.
                    let reason = format!("journal damaged: {e}");
                    tracing::error!("{reason}");
                    self.durability
                        .send_modify(|d| d.failed = Some(Arc::from(reason.as_str())));
                    return Err(StoreError::Failed(reason));
                }
            }
        }
        Err(StoreError::Failed(format!(
            "reading stored messages of {key:?}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Reads the messages `wanted` names, decoding each record once.
    fn read_at(&self, wanted: &[(MessageId, LiveRef)]) -> Result<Vec<StoredMessage>, Unread> {
        let mut out = Vec::with_capacity(wanted.len());
        // Each record once (a commit's holds many of the messages), all in one
        // read of the journal.
        let mut positions: Vec<Position> = wanted.iter().map(|(_, r)| r.pos).collect();
        positions.dedup();
        let records = self.journal.read_many(&positions).map_err(|e| match e {
            ReadError::NoSuchSegment { .. } => Unread::Moved(e),
            ReadError::Corrupt { .. } => Unread::Corrupt(e),
            e => Unread::Failed(e.to_string()),
        })?;
        let mut records = positions.into_iter().zip(records);
        let mut record: Option<(Position, Vec<StoreOp<MessageData>>)> = None;
        let mut next = 0;
        for (id, r) in wanted {
            if record.as_ref().is_none_or(|(pos, _)| *pos != r.pos) {
                next = 0;
                let bytes = match records.next() {
                    Some((pos, bytes)) if pos == r.pos => bytes,
                    _ => return Err(Unread::Failed("records read out of order".into())),
                };
                let ops = decode_record(&bytes).map_err(|e| {
                    Unread::Failed(format!("undecodable record at {:?}: {e}", r.pos))
                })?;
                record = Some((r.pos, ops));
            }
            let ops = record
                .as_ref()
                .map(|(_, ops)| ops.as_slice())
                .unwrap_or_default();
            // A commit's record holds its messages in id order, as they are
            // wanted: look from where the last one was found, then wrap.
            let at = |i: usize| match &ops[i] {
                StoreOp::Enqueue { message, .. } if message.id == *id => Some((i, message)),
                _ => None,
            };
            let found = (next..ops.len()).chain(0..next.min(ops.len())).find_map(at);
            let found = found.map(|(i, message)| {
                next = i + 1;
                message.clone()
            });
            if let Some(data) = found {
                out.push((data, r.redeliveries));
            }
        }
        Ok(out)
    }
}

impl Store for JournalStore {
    fn append(&self, ops: Vec<StoreOp>, sync: bool) -> Result<Seq, StoreError> {
        let mut tracker = self.shared.tracker.lock();
        self.shared.append_locked(&mut tracker, &ops, sync)
    }

    fn pages(&self) -> bool {
        true
    }

    fn read(&self, key: &StoreKey, priority: u8, after: MessageId, limit: ReadLimit) -> ReadFuture {
        let shared = Arc::clone(&self.shared);
        let key = key.clone();
        // Reading is file I/O: on a blocking thread, never the engine's.
        Box::pin(async move {
            tokio::task::spawn_blocking(move || shared.read_messages(&key, priority, after, limit))
                .await
                .map_err(|e| StoreError::Failed(format!("read task: {e}")))?
        })
    }

    fn durability(&self) -> DurabilityWatch {
        self.shared.durability.subscribe()
    }

    fn disk_bytes(&self) -> u64 {
        self.shared.journal.disk_bytes()
    }

    fn write_stats(&self) -> Option<WriteStats> {
        let histogram = |h: hawser_journal::HistogramSnapshot| Histogram {
            buckets: h.buckets,
            sum: h.sum,
            count: h.count,
        };
        let (sync, batch) = self.shared.journal.stats();
        Some(WriteStats {
            sync_seconds: histogram(sync),
            batch_records: histogram(batch),
        })
    }

    fn spilled_bytes(&self) -> u64 {
        self.shared.spilled_bytes.load(Ordering::Relaxed)
    }

    fn writes_behind(&self) -> bool {
        // Half the journal's queue: producers wait well before an append
        // would (acknowledgements and the store's own records still fit).
        self.shared.journal.queued_bytes() >= WRITES_BEHIND_BYTES
    }

    fn max_record_bytes(&self) -> usize {
        self.shared.journal.config().max_record_bytes as usize
    }

    fn check_confirmable(&self) -> Result<(), StoreError> {
        if let Some(reason) = &self.shared.durability.borrow().failed {
            return Err(StoreError::Failed(reason.to_string()));
        }
        match &self.shared.journal.config().confirm_check {
            Some(check) => check.check().map_err(StoreError::Failed),
            None => Ok(()),
        }
    }

    fn close(&self) {
        let first = !self.shared.closing.swap(true, Ordering::SeqCst);
        // The reclaimer first, while the journal it works on is still open.
        for t in self.threads.lock().drain(..) {
            t.thread().unpark();
            let _ = t.join();
        }
        if first {
            // So that the next start reads the checkpoint and nothing after it.
            let _one = self.shared.maintenance.lock();
            if let Err(e) = write_checkpoint(&self.shared) {
                tracing::info!("journal store: no checkpoint at close: {e}");
            }
        }
        self.shared.journal.close();
    }
}

impl Drop for JournalStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Raises the watermark as the journal's writer completes batches: a batch completes
/// whole and in append order, so its highest seq covers every earlier one.
fn progress_hook(durability: watch::Sender<Durability>) -> hawser_journal::ProgressHook {
    Box::new(move |progress| match progress {
        Ok(seq) => durability.send_modify(|d| d.seq = d.seq.max(seq)),
        Err(e) => {
            tracing::error!("journal write failed; no further message is confirmed: {e}");
            durability.send_modify(|d| d.failed = Some(Arc::from(e.to_string())));
        }
    })
}

/// Reclaims every `RECLAIM_INTERVAL` until closing. Parked rather than asleep, so that
/// `close` can wake it at once instead of waiting out the interval (half a second
/// added to every shutdown otherwise).
fn reclaim_loop(shared: &Shared) {
    let mut pinned = Pinned::default();
    loop {
        std::thread::park_timeout(RECLAIM_INTERVAL);
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let _one = shared.maintenance.lock();
        if checkpoint_due(shared) {
            if let Err(e) = write_checkpoint(shared) {
                tracing::warn!("journal store: checkpoint not written: {e}");
            }
        }
        reclaim(shared, Some(&mut pinned));
    }
}

/// A checkpoint is due once the records applied since the last one are
/// `CHECKPOINT_SEGMENTS` segments' worth, and at least twice its size: a
/// recovery reads about that much of the journal after the checkpoint, and
/// checkpoints of a large index cost at most half of what the journal writes.
/// After a takeover one is due at once: the checkpoint opened from is the
/// predecessor's, which the next takeover will not look for.
fn checkpoint_due(shared: &Shared) -> bool {
    let applied = shared.tracker.lock().applied_bytes;
    let last = *shared.checkpointed.lock();
    if last.is_some_and(|c| c.inherited) {
        return true;
    }
    let (since, size) = last.map_or((applied, 0), |c| (applied - c.applied_bytes, c.bytes));
    since >= (CHECKPOINT_SEGMENTS * shared.journal.config().segment_bytes).max(2 * size)
}

/// Writes a checkpoint of the tracker as it is now (see `checkpoint`).
fn write_checkpoint(shared: &Shared) -> Result<(), String> {
    let config = shared.journal.config();
    let (draft, applied_bytes) = {
        let mut tracker = shared.tracker.lock();
        if shared
            .checkpointed
            .lock()
            .is_some_and(|c| Some(c.last) == tracker.last)
        {
            return Ok(());
        }
        // A synced empty record: once it is durable, so is every record the
        // checkpoint stands for (some were appended without an fsync).
        shared
            .append_locked(&mut tracker, &[] as &[StoreOp<MessageData>], true)
            .map_err(|e| e.to_string())?;
        let Some(draft) = checkpoint::draft(&tracker, config.epoch) else {
            return Ok(());
        };
        (draft, tracker.applied_bytes)
    };
    let (seq, last) = (draft.seq, draft.last);
    wait_durable(shared, seq)?;
    if let Some(check) = &config.confirm_check {
        // A master that lost the store writes no checkpoint into it.
        check.check()?;
    }
    let bytes = draft.write(&shared.journal, &*config.storage, &config.dir)?;
    tracing::debug!(bytes, %last, "journal store: checkpoint written");
    *shared.checkpointed.lock() = Some(Checkpointed {
        segment: last.segment,
        last,
        applied_bytes,
        bytes,
        at: Instant::now(),
        inherited: false,
    });
    Ok(())
}

/// What the reclaimer saw of the oldest segment with live records last time.
///
/// Copying forward scans every live record (with the tracker's lock held,
/// which holds appends back) and rewrites what it finds; it is worth it for
/// records that stay, not for ones consumers are taking anyway. So a segment
/// is copied forward only once a whole interval passed without any of its
/// live records going: while a backlog drains, its oldest segment empties by
/// itself and is then deleted without a copy.
#[derive(Default)]
struct Pinned {
    /// The segment and its live holds.
    seen: Option<(u64, u64)>,
}

impl Pinned {
    /// True if `segment` still has exactly the `refs` live holds it had the
    /// last time; remembers them either way.
    fn is_stuck(&mut self, segment: u64, refs: u64) -> bool {
        let stuck = self.seen == Some((segment, refs));
        self.seen = Some((segment, refs));
        stuck
    }
}

/// Deletes dead segments from the oldest on, copying a few live records forward when that
/// frees a segment.
///
/// A segment is deleted only once its deletion cannot lose anything in a crash: the
/// copies made of its live records must be durable, and so must every record appended
/// before the decision, because those are what made the rest of its contents dead. A
/// dead-letter move is one record, written without an fsync, that dequeues a message
/// from its queue and enqueues it to the DLQ: were the segment holding the original
/// deleted before that record is durable, a crash would leave the message in neither.
/// So, after choosing the segments, one synced empty record (a barrier) is appended and
/// waited for: its fsync covers everything appended before it (earlier segments were
/// fsynced when the writer left them). One barrier serves every segment of the round.
fn reclaim(shared: &Shared, mut pinned: Option<&mut Pinned>) {
    let segment_bytes = shared.journal.config().segment_bytes;
    let mut dead = Vec::new();
    for segment in shared.journal.segments() {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        if segment >= shared.journal.current_segment() {
            break;
        }
        let live = shared.tracker.lock().live(segment);
        if live.refs > 0 {
            if live.bytes * COPY_FORWARD_BELOW_ONE_IN >= segment_bytes {
                break;
            }
            if let Some(pinned) = pinned.as_deref_mut() {
                if !pinned.is_stuck(segment, live.refs) {
                    break;
                }
            }
            if let Err(e) = copy_forward(shared, segment) {
                tracing::warn!("reclaim: could not copy segment {segment} forward: {e}");
                break;
            }
        }
        if !checkpointed_past(shared, segment, pinned.is_none()) {
            break;
        }
        let mut tracker = shared.tracker.lock();
        if tracker.live(segment).refs > 0 {
            break;
        }
        // Nothing appended later holds a record of an older segment: it stays dead.
        tracker.forget_segment(segment);
        dead.push(segment);
    }
    if dead.is_empty() {
        return;
    }
    let barrier = {
        let mut tracker = shared.tracker.lock();
        shared.append_locked(&mut tracker, &[] as &[StoreOp<MessageData>], true)
    };
    if let Err(e) = barrier
        .map_err(|e| e.to_string())
        .and_then(|seq| wait_durable(shared, seq))
    {
        tracing::warn!("reclaim: not deleting segments {dead:?}: {e}");
        return;
    }
    // Oldest first: a later segment may hold the dequeues that keep an older one dead.
    for segment in dead {
        match shared.journal.delete_segment(segment) {
            Ok(()) => tracing::debug!("reclaim: deleted segment {segment}"),
            Err(e) => {
                tracing::warn!("reclaim: could not delete segment {segment}: {e}");
                return;
            }
        }
    }
}

/// True if a recovery would not need `segment`: the newest checkpoint's last
/// record is in a later one. If not, a new checkpoint is written when `now`,
/// or when the last is `CHECKPOINT_FOR_RECLAIM_AFTER` old (while a backlog
/// drains, few records are appended and checkpoints would otherwise hold
/// every drained segment on disk).
fn checkpointed_past(shared: &Shared, segment: u64, now: bool) -> bool {
    let last = *shared.checkpointed.lock();
    let Some(c) = last else {
        return true;
    };
    if c.segment > segment {
        return true;
    }
    if !now && c.at.elapsed() < CHECKPOINT_FOR_RECLAIM_AFTER {
        return false;
    }
    if let Err(e) = write_checkpoint(shared) {
        tracing::warn!("reclaim: checkpoint not written: {e}");
        return false;
    }
    shared
        .checkpointed
        .lock()
        .is_some_and(|c| c.segment > segment)
}

/// Blocks the calling thread until the watermark passes `seq`, or the store fails.
fn wait_durable(shared: &Shared, seq: Seq) -> Result<(), String> {
    let mut watch = shared.durability.subscribe();
    let outcome = block_on(hawser_broker::store::wait_durable(&mut watch, seq));
    if shared.closing.load(Ordering::SeqCst) {
        // The unpark `close` sent may have been taken by `block_on`: send it again so
        // that the reclaim loop does not sleep out its interval before it stops.
        std::thread::current().unpark();
    }
    outcome.map_err(|e| e.to_string())
}

/// Runs a future to completion on this thread, sleeping between polls until its waker
/// is called: the watch's waker then wakes the reclaim thread directly, once per change,
/// where it used to poll the watermark every 2 ms. (No async runtime needed: the watch
/// works without one.)
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        // A stray unpark (`close` wakes the reclaimer) only costs one more poll.
        std::thread::park();
    }
}

/// Re-appends every live record of `segment` at the head of the journal (synced). The
/// caller waits for the copies (its barrier covers them) before deleting the segment.
fn copy_forward(shared: &Shared, segment: u64) -> Result<(), String> {
    // Positions first, then one record at a time under the lock, re-checking that
    // the hold is still there: a dequeue racing with the copy must win.
    let positions: Vec<Position> = {
        let t = shared.tracker.lock();
        let mut p: Vec<Position> = t
            .messages
            .values()
            .chain(t.spilled.messages.values())
            .flat_map(|m| m.in_segment(segment).map(|(_, r)| r))
            .chain(t.subscriptions.values().copied())
            .chain(t.prepared.values().copied())
            .filter(|r| r.pos.segment == segment)
            .map(|r| r.pos)
            .collect();
        p.sort();
        p.dedup();
        p
    };
    for pos in positions {
        let bytes = shared.journal.read(pos).map_err(|e| e.to_string())?;
        let ops = decode_record(&bytes).map_err(|e| e.to_string())?;
        let mut tracker = shared.tracker.lock();
        let mut copy: Vec<StoreOp<MessageData>> = Vec::new();
        for op in ops {
            match op {
                StoreOp::Enqueue { message, targets } => {
                    let mut still = Vec::new();
                    let mut redeliveries = Vec::new();
                    for key in targets {
                        if let Some(r) = tracker.message(&key, message.id) {
                            if r.pos == pos {
                                if r.redeliveries > 0 {
                                    redeliveries.push(StoreOp::Redelivered {
                                        key: key.clone(),
                                        id: message.id,
                                        count: r.redeliveries,
                                    });
                                }
                                still.push(key);
                            }
                        }
                    }
                    if !still.is_empty() {
                        copy.push(StoreOp::Enqueue {
                            message,
                            targets: still,
                        });
                        copy.extend(redeliveries);
                    }
                }
                StoreOp::Subscribe(sub)
                    if tracker
                        .subscriptions
                        .get(&sub.key())
                        .is_some_and(|r| r.pos == pos) =>
                {
                    copy.push(StoreOp::Subscribe(sub));
                }
                StoreOp::Prepare(p)
                    if tracker.prepared.get(&p.xid).is_some_and(|r| r.pos == pos) =>
                {
                    copy.push(StoreOp::Prepare(p));
                }
                _ => {}
            }
        }
        if !copy.is_empty() {
            shared
                .append_locked(&mut tracker, &copy, true)
                .map_err(|e| e.to_string())?;
        }
    }
    // Producers whose marks start in this segment: their whole window goes
    // forward as one snapshot each, replacing every older mark.
    loop {
        let mut tracker = shared.tracker.lock();
        let snapshots: Vec<StoreOp<MessageData>> = tracker
            .producers
            .iter()
            .filter(|(_, (r, _))| r.pos.segment == segment)
            .take(SNAPSHOTS_PER_RECORD)
            .map(|(producer, (_, window))| StoreOp::ProducerWindow {
                producer: producer.clone(),
                window: window.clone(),
            })
            .collect();
        if snapshots.is_empty() {
            break;
        }
        shared
            .append_locked(&mut tracker, &snapshots, true)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Producer windows copied forward per record: each is a few hundred bytes, so a
/// record stays far below the journal's record limit.
const SNAPSHOTS_PER_RECORD: usize = 1000;

#[cfg(test)]
mod tests {
    use super::Pinned;

    #[test]
    fn a_segment_is_stuck_only_when_a_whole_interval_took_none_of_its_records() {
        let mut pinned = Pinned::default();
        assert!(!pinned.is_stuck(1, 10), "first seen");
        assert!(!pinned.is_stuck(1, 7), "consumers are taking its records");
        assert!(pinned.is_stuck(1, 7), "nothing went for an interval");
        assert!(!pinned.is_stuck(2, 7), "another segment, first seen");
    }
}
