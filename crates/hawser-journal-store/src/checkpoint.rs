//! The tracker's checkpoint: what every record up to one position said, so
//! that opening reads the checkpoint and the records after it rather than the
//! whole journal (ActiveMQ's KahaDB checkpoints its index for the same reason).
//!
//! A checkpoint is written by the reclaim thread (see `store`): the tracker's
//! state is taken under its lock (cheaply: the index's runs are shared and
//! copied only if they change meanwhile), the few records it needs whole
//! (durable subscriptions, prepared transactions) are read back from the
//! journal outside it, and the file is written a chunk at a time once every
//! record it stands for is durable and the store may still confirm (a deposed
//! master writes none): to a temporary file, fsynced, renamed over the last
//! one, the directory fsynced. A crash therefore leaves
//! the old checkpoint or the new one, and either is true of the journal.
//!
//! Opening takes a checkpoint only if it is of this journal: its own (same
//! epoch), or, right after a takeover, the predecessor's if its last record is
//! within what was sealed. Anything else (no file, a bad checksum, a record the
//! journal cannot resume at) means replaying from the start, as before there
//! were checkpoints: slower, never wrong.
//!
//! The file: magic, version, epoch, the last record's position, the highest
//! message id; then the index of messages per container and priority, as it
//! is in memory (`level`: runs of varint deltas, a few bytes a message, so
//! taking it under the lock is a copy); the live holds per segment; then
//! producers, subscriptions and prepared transactions, each a list of holds
//! followed by one store record of their ops; then a CRC32C of all before it.

use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hawser_broker::store_codec::{
    decode_record_with, decode_store_key, encode_record, encode_store_key, CodecError, Names,
};
use hawser_broker::{MessageData, Replay, StoreKey, StoreOp};
use hawser_journal::{Journal, Layout, OpenMode, Position, Storage, StorageFile};

use crate::level::{put_varint, varint, Level};
use crate::tracker::{Levels, LiveRef, SegmentLive, Tracker};

/// The checkpoint's file name, in the journal's directory.
pub(crate) const FILE: &str = "index-checkpoint";
/// Where the next one is written before it is renamed into place.
const TEMP_FILE: &str = "index-checkpoint.tmp";
const MAGIC: &[u8; 8] = b"HWSRCKPT";
const VERSION: u32 = 3;

/// Why a checkpoint file is not used.
#[derive(thiserror::Error, Debug)]
pub(crate) enum CheckpointError {
    #[error("not a checkpoint (bad magic)")]
    Magic,
    #[error("checkpoint version {0}, this broker reads {VERSION}")]
    Version(u32),
    #[error("checksum mismatch")]
    Checksum,
    #[error("truncated")]
    Truncated,
    #[error("undecodable: {0}")]
    Codec(#[from] CodecError),
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
    #[error("of epoch {found:?}, the journal is {wanted:?}")]
    OtherEpoch {
        found: Option<u64>,
        wanted: Option<u64>,
    },
    #[error("inherited, but its last record {0} is not in what was sealed")]
    NotSealed(Position),
}

/// A checkpoint begun under the tracker's lock, written outside it: the
/// tracker's state then, taken cheaply (the index's runs are shared, copied
/// only if changed while the file is written).
pub(crate) struct Draft {
    epoch: Option<u64>,
    /// The tracker's seq then: the file waits until it is durable.
    pub(crate) seq: hawser_broker::Seq,
    /// The last record it stands for.
    pub(crate) last: Position,
    max_id: hawser_broker::MessageId,
    messages: Vec<(StoreKey, Levels)>,
    segments: Vec<(u64, SegmentLive)>,
    producers: Vec<(LiveRef, StoreOp<MessageData>)>,
    subscriptions: Vec<(StoreKey, LiveRef)>,
    prepared: Vec<(Arc<str>, LiveRef)>,
}

/// Begins a checkpoint of `t` (its lock held); `None` if no record was applied.
pub(crate) fn draft(t: &Tracker, epoch: Option<u64>) -> Option<Draft> {
    let last = t.last?;
    let mut prepared: Vec<_> = t
        .prepared
        .iter()
        .map(|(x, r)| (Arc::clone(x), *r))
        .collect();
    // In the order they were prepared (a recovery lists them so).
    prepared.sort_by_key(|(_, r)| r.pos);
    Some(Draft {
        epoch,
        seq: t.seq,
        last,
        max_id: t.max_id,
        messages: t
            .messages
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(k, l)| (k.clone(), l.clone()))
            .collect(),
        segments: t.segments.iter().map(|(s, l)| (*s, *l)).collect(),
        producers: t
            .producers
            .iter()
            .map(|(producer, (r, window))| {
                let op = StoreOp::ProducerWindow {
                    producer: producer.clone(),
                    window: window.clone(),
                };
                (*r, op)
            })
            .collect(),
        subscriptions: t
            .subscriptions
            .iter()
            .map(|(k, r)| (k.clone(), *r))
            .collect(),
        prepared,
    })
}

/// Bytes gathered before they go to the file: the checkpoint of a large
/// index is streamed, never held whole.
const CHUNK_BYTES: usize = 1 << 20;

/// Writes the checkpoint file a chunk at a time, with its running checksum.
struct Sink {
    file: Box<dyn StorageFile>,
    written: u64,
    crc: u32,
}

impl Sink {
    /// Sends what `buf` gathered to the file once it is a chunk.
    fn spill(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        if buf.len() >= CHUNK_BYTES {
            self.flush(buf)?;
        }
        Ok(())
    }

    fn flush(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.file.write_at(self.written, buf, &[])?;
        self.written += buf.len() as u64;
        buf.clear();
        Ok(())
    }
}

impl Draft {
    /// Writes the checkpoint of the journal in `dir`: everything drafted,
    /// the subscriptions and prepared transactions read from `journal`
    /// (their records cannot go meanwhile: the caller holds the store's
    /// maintenance lock, which reclaiming takes), then the checksum; durably,
    /// in place of the last. Returns its size.
    pub(crate) fn write(
        self,
        journal: &Journal,
        storage: &dyn Storage,
        dir: &Path,
    ) -> Result<u64, String> {
        let read = |pos: Position| -> Result<Vec<StoreOp<MessageData>>, String> {
            let bytes = journal.read(pos).map_err(|e| e.to_string())?;
            decode_record_with(&bytes, &mut Names::default()).map_err(|e| e.to_string())
        };
        let mut subscriptions = Vec::with_capacity(self.subscriptions.len());
        for (key, r) in &self.subscriptions {
            let op = read(r.pos)?
                .into_iter()
                .find(|op| matches!(op, StoreOp::Subscribe(s) if s.key() == *key))
                .ok_or_else(|| format!("no subscription {key:?} at {}", r.pos))?;
            subscriptions.push((*r, op));
        }
        let mut prepared = Vec::with_capacity(self.prepared.len());
        for (xid, r) in &self.prepared {
            let op = read(r.pos)?
                .into_iter()
                .find(|op| matches!(op, StoreOp::Prepare(p) if p.xid == *xid))
                .ok_or_else(|| format!("no prepared transaction {xid} at {}", r.pos))?;
            prepared.push((*r, op));
        }
        let temp = dir.join(TEMP_FILE);
        let io = |e: std::io::Error| format!("{}: {e}", temp.display());
        let file = storage.open(&temp, OpenMode::CreateTruncate).map_err(io)?;
        let mut sink = Sink {
            file,
            written: 0,
            crc: 0,
        };
        let mut buf = BytesMut::with_capacity(2 * CHUNK_BYTES);
        buf.put_slice(MAGIC);
        buf.put_u32_le(VERSION);
        buf.put_u64_le(self.epoch.map_or(0, |e| e.saturating_add(1)));
        put_pos(&mut buf, self.last);
        buf.put_u64_le(self.max_id);
        buf.put_u32_le(self.messages.len() as u32);
        for (key, levels) in &self.messages {
            encode_store_key(key, &mut buf);
            for level in &levels.0 {
                // Chunk by chunk: one queue's level can be the whole index.
                level.dump(&mut buf, |buf| sink.spill(buf)).map_err(io)?;
            }
        }
        put_varint(&mut buf, self.segments.len() as u64);
        for (segment, live) in &self.segments {
            put_varint(&mut buf, *segment);
            put_varint(&mut buf, live.refs);
            put_varint(&mut buf, live.bytes);
        }
        put_section(&mut buf, self.producers);
        put_section(&mut buf, subscriptions);
        put_section(&mut buf, prepared);
        sink.flush(&mut buf).map_err(io)?;
        buf.put_u32_le(sink.crc);
        sink.flush(&mut buf).map_err(io)?;
        sink.file.sync_all().map_err(io)?;
        let written = sink.written;
        drop(sink);
        storage.rename(&temp, &dir.join(FILE)).map_err(io)?;
        storage.sync_dir(dir).map_err(io)?;
        Ok(written)
    }
}

/// A checkpoint read back: the tracker and the replay it stands for.
pub(crate) struct Loaded {
    pub(crate) tracker: Tracker,
    pub(crate) replay: Replay,
    /// The last record it stands for.
    pub(crate) last: Position,
    /// Its size in bytes.
    pub(crate) bytes: u64,
    /// True if it is the predecessor's (a takeover): this journal has none yet.
    pub(crate) inherited: bool,
}

/// The checkpoint recovery may resume from in the journal `layout` shows:
/// its own, else the one it inherited. A file that is there but not usable is
/// logged and passed over.
pub(crate) fn find(storage: &dyn Storage, layout: &Layout<'_>) -> Option<Loaded> {
    let own = std::iter::once((layout.dir, false));
    let inherited = layout.inherited_from.map(|dir| (dir, true));
    for (dir, is_inherited) in own.chain(inherited) {
        let path = dir.join(FILE);
        if !storage.exists(&path).unwrap_or(false) {
            continue;
        }
        let mut data = Vec::new();
        if let Err(e) = storage.read(&path, &mut data) {
            tracing::warn!(file = %path.display(), "checkpoint not read ({e}); replaying the journal");
            continue;
        }
        let checked = load(Bytes::from(data)).and_then(|(loaded, epoch)| {
            if is_inherited {
                let sealed = layout.seals.get(&loaded.last.segment);
                if sealed.is_none_or(|&len| loaded.last.offset >= len) {
                    return Err(CheckpointError::NotSealed(loaded.last));
                }
            } else if epoch != layout.epoch {
                return Err(CheckpointError::OtherEpoch {
                    found: epoch,
                    wanted: layout.epoch,
                });
            }
            Ok(Loaded {
                inherited: is_inherited,
                ..loaded
            })
        });
        match checked {
            Ok(loaded) => return Some(loaded),
            Err(e) => {
                tracing::warn!(file = %path.display(), "checkpoint not used ({e}); looking further");
            }
        }
    }
    None
}

/// Decodes a checkpoint, and the epoch it was written in.
pub(crate) fn load(data: Bytes) -> Result<(Loaded, Option<u64>), CheckpointError> {
    let size = data.len() as u64;
    if data.len() < MAGIC.len() + 4 + 4 || &data[..MAGIC.len()] != MAGIC {
        return Err(CheckpointError::Magic);
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(CheckpointError::Checksum);
    }
    let body = data.slice(MAGIC.len()..data.len() - 4);
    let mut r = Reader {
        data: body,
        at: 0,
        names: Names::default(),
    };
    let version = r.u32()?;
    if version != VERSION {
        return Err(CheckpointError::Version(version));
    }
    let epoch = r.u64()?.checked_sub(1);
    let last = r.pos()?;
    let mut t = Tracker {
        last: Some(last),
        max_id: r.u64()?,
        ..Tracker::default()
    };
    let mut replay = Replay::without_messages();
    for _ in 0..r.u32()? {
        let key = decode_store_key(&r.data, &mut r.at, &mut r.names)?;
        let levels = t.messages.entry(key).or_default();
        for level in &mut levels.0 {
            *level = Level::undump(&r.data, &mut r.at).map_err(CheckpointError::Inconsistent)?;
        }
    }
    // The holds per segment as they were (not recounted: that would decode
    // every entry of a large index).
    for _ in 0..r.varint()? {
        let segment = r.varint()?;
        let live = SegmentLive {
            refs: r.varint()?,
            bytes: r.varint()?,
        };
        t.segments.insert(segment, live);
    }
    for (r_, op) in r.section()? {
        let StoreOp::ProducerWindow { producer, window } = &op else {
            return Err(CheckpointError::Inconsistent("a producer's op"));
        };
        t.producers.insert(producer.clone(), (r_, window.clone()));
        replay.apply(vec![op]);
    }
    for (r_, op) in r.section()? {
        let StoreOp::Subscribe(sub) = &op else {
            return Err(CheckpointError::Inconsistent("a subscription's op"));
        };
        t.subscriptions.insert(sub.key(), r_);
        replay.apply(vec![op]);
    }
    for (r_, op) in r.section()? {
        let StoreOp::Prepare(p) = &op else {
            return Err(CheckpointError::Inconsistent("a prepared transaction's op"));
        };
        t.prepared.insert(Arc::clone(&p.xid), r_);
        replay.apply(vec![op]);
    }
    if r.at != r.data.len() {
        return Err(CheckpointError::Inconsistent(
            "bytes after the last section",
        ));
    }
    Ok((
        Loaded {
            tracker: t,
            replay,
            last,
            bytes: size,
            inherited: false,
        },
        epoch,
    ))
}

/// What a checkpoint file holds, as opening would read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// The journal's epoch it was written in (`None`: a plain journal).
    pub epoch: Option<u64>,
    /// The last record it stands for.
    pub last: Position,
    /// Pending messages in its index.
    pub pending: u64,
    /// Those messages' holds, summed over segments: what reclaiming counts.
    pub holds: u64,
}

/// Reads a checkpoint file's bytes as opening does, and walks every entry of
/// its index (tools; the fuzz target: whatever the bytes, an error or a
/// well-formed index, never a panic).
///
/// # Errors
/// Why opening would not use it.
pub fn inspect_checkpoint(data: &[u8]) -> Result<CheckpointSummary, String> {
    let (loaded, epoch) = load(Bytes::copy_from_slice(data)).map_err(|e| e.to_string())?;
    let pending = loaded
        .tracker
        .messages
        .values()
        .flat_map(|levels| levels.values())
        .count() as u64;
    Ok(CheckpointSummary {
        epoch,
        last: loaded.last,
        pending,
        holds: loaded.tracker.segments.values().map(|s| s.refs).sum(),
    })
}

fn put_pos(buf: &mut BytesMut, pos: Position) {
    buf.put_u64_le(pos.segment);
    buf.put_u64_le(pos.offset);
}

fn put_ref(buf: &mut BytesMut, r: &LiveRef) {
    put_pos(buf, r.pos);
    buf.put_u64_le(r.bytes);
}

/// Holds, and one store record of their ops in the same order.
fn put_section(buf: &mut BytesMut, items: Vec<(LiveRef, StoreOp<MessageData>)>) {
    buf.put_u32_le(items.len() as u32);
    let (holds, ops): (Vec<LiveRef>, Vec<StoreOp<MessageData>>) = items.into_iter().unzip();
    for r in &holds {
        put_ref(buf, r);
    }
    let record = encode_record(&ops);
    buf.put_u64_le(record.len() as u64);
    buf.put_slice(&record);
}

/// A bounds-checked cursor over the checkpoint.
struct Reader {
    data: Bytes,
    at: usize,
    names: Names,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&[u8], CheckpointError> {
        if self.data.len() - self.at < n {
            return Err(CheckpointError::Truncated);
        }
        self.at += n;
        Ok(&self.data[self.at - n..self.at])
    }

    fn u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(self.take(4)?.get_u32_le())
    }

    fn u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(self.take(8)?.get_u64_le())
    }

    fn pos(&mut self) -> Result<Position, CheckpointError> {
        Ok(Position {
            segment: self.u64()?,
            offset: self.u64()?,
        })
    }

    fn varint(&mut self) -> Result<u64, CheckpointError> {
        varint(&self.data, &mut self.at).map_err(CheckpointError::Inconsistent)
    }

    /// What [`put_section`] wrote: holds paired with their ops.
    fn section(&mut self) -> Result<Vec<(LiveRef, StoreOp<MessageData>)>, CheckpointError> {
        let count = self.u32()? as usize;
        let mut holds = Vec::with_capacity(count.min(self.data.len() / 24));
        for _ in 0..count {
            let pos = self.pos()?;
            holds.push(LiveRef::at(pos, self.u64()?));
        }
        let len = usize::try_from(self.u64()?).map_err(|_| CheckpointError::Truncated)?;
        if self.data.len() - self.at < len {
            return Err(CheckpointError::Truncated);
        }
        let record = self.data.slice(self.at..self.at + len);
        self.at += len;
        let ops = decode_record_with(&record, &mut self.names)?;
        if ops.len() != holds.len() {
            return Err(CheckpointError::Inconsistent("a section's holds and ops"));
        }
        Ok(holds.into_iter().zip(ops).collect())
    }
}
