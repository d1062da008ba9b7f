//! A simulated disk for crash tests: a [`Storage`] in memory that remembers, for every
//! file, what is durable and what was written since its last fsync, and for every
//! directory, which entries are durable and which changed since its last fsync.
//!
//! A test runs the journal on it, stops it at an operation of its choosing (the disk
//! then fails every operation, as a machine that lost power would perform none), and asks
//! for the disk a reboot would find: [`SimDisk::power_loss`]. There, everything synced is
//! kept; every write since a file's last fsync is kept, dropped, or torn (a prefix of
//! it), independently of the others, sector by sector, so that later writes may survive
//! while earlier ones are lost (the disk reordered them); size changes since the last
//! fsync may or may not survive; every directory entry created, renamed or removed since
//! the directory's last fsync may or may not survive. Or it asks for a process crash
//! ([`SimDisk::restart`]): the unsynced writes stay pending (in the page cache) and a
//! later power loss may still drop them.
//!
//! The disk never reorders two writes to the same byte (a page cache holds the last
//! one), and a rename is atomic: both what a journal on Linux may rely on.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::{LockGuard, OpenMode, Storage, StorageFile};

/// Writes are torn and reordered in units of this many bytes (at file offsets that are
/// multiples of it), the smallest a disk writes atomically.
const SECTOR_BYTES: u64 = 512;

/// A small deterministic random number generator (SplitMix64): crash states follow from
/// a seed, so a failing case can be run again.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

type NodeId = u64;

const ROOT: NodeId = 0;

/// An operation on a file since its last fsync.
#[derive(Clone, Debug)]
enum FileOp {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    /// Grows the file to at least this length (an allocation).
    Grow(u64),
}

impl FileOp {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            FileOp::Write {
                offset,
                data: bytes,
            } => write_into(data, *offset, bytes),
            FileOp::SetLen(len) => data.resize(*len as usize, 0),
            FileOp::Grow(len) => {
                if data.len() < *len as usize {
                    data.resize(*len as usize, 0);
                }
            }
        }
    }
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(bytes);
}

/// An operation on a directory's entries since its last fsync.
#[derive(Clone, Debug)]
enum DirOp {
    Link(String, NodeId),
    Unlink(String),
    Rename(String, String),
}

impl DirOp {
    fn apply(&self, entries: &mut BTreeMap<String, NodeId>) {
        match self {
            DirOp::Link(name, node) => {
                entries.insert(name.clone(), *node);
            }
            DirOp::Unlink(name) => {
                entries.remove(name);
            }
            DirOp::Rename(from, to) => {
                // A rename whose source never reached the disk renames nothing.
                if let Some(node) = entries.remove(from) {
                    entries.insert(to.clone(), node);
                }
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct FileNode {
    /// What survives any crash.
    durable: Vec<u8>,
    /// What the running process sees.
    live: Vec<u8>,
    /// What happened since the last fsync, in order; `durable` with all of it is `live`.
    pending: Vec<FileOp>,
}

impl FileNode {
    /// A file as a reboot finds it: all of it durable.
    fn durable(data: Vec<u8>) -> FileNode {
        FileNode {
            durable: data.clone(),
            live: data,
            pending: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct DirNode {
    durable: BTreeMap<String, NodeId>,
    live: BTreeMap<String, NodeId>,
    pending: Vec<DirOp>,
}

impl DirNode {
    fn durable(entries: BTreeMap<String, NodeId>) -> DirNode {
        DirNode {
            durable: entries.clone(),
            live: entries,
            pending: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct Disk {
    nodes: HashMap<NodeId, Node>,
    next_node: NodeId,
    /// Bumped by a process crash: handles of the dead process fail from then on.
    generation: u64,
    /// Operations that changed something or synced it, counted to place a crash.
    changes: u64,
    /// The disk stops when `changes` reaches this.
    stop_at: Option<u64>,
    /// Set once stopped: every operation fails until a restart or a power loss.
    stopped: bool,
    /// Held locks: path to (generation, token).
    locks: HashMap<PathBuf, (u64, u64)>,
    next_token: u64,
}

fn stopped_error() -> io::Error {
    io::Error::other("simulated disk: stopped (crash)")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("simulated disk: {} not found", path.display()),
    )
}

impl Disk {
    fn new() -> Disk {
        Disk {
            nodes: HashMap::from([(ROOT, Node::Dir(DirNode::default()))]),
            next_node: ROOT + 1,
            generation: 0,
            changes: 0,
            stop_at: None,
            stopped: false,
            locks: HashMap::new(),
            next_token: 0,
        }
    }

    /// Fails once stopped, or for a handle of a crashed process.
    fn check(&self, generation: u64) -> io::Result<()> {
        if self.stopped || generation != self.generation {
            return Err(stopped_error());
        }
        Ok(())
    }

    /// Counts an operation that changes the disk; stops the disk instead if this is the
    /// operation the test chose to crash at (it then never happens).
    fn change(&mut self, generation: u64) -> io::Result<()> {
        self.check(generation)?;
        self.changes += 1;
        if self.stop_at.is_some_and(|at| self.changes >= at) {
            self.stopped = true;
            return Err(stopped_error());
        }
        Ok(())
    }

    fn dir(&self, id: NodeId) -> Option<&DirNode> {
        match self.nodes.get(&id) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    fn dir_mut(&mut self, id: NodeId) -> &mut DirNode {
        match self.nodes.get_mut(&id) {
            Some(Node::Dir(d)) => d,
            _ => panic!("node {id} is not a directory"),
        }
    }

    fn file_mut(&mut self, id: NodeId) -> io::Result<&mut FileNode> {
        match self.nodes.get_mut(&id) {
            Some(Node::File(f)) => Ok(f),
            _ => Err(io::Error::other("simulated disk: not a file")),
        }
    }

    fn resolve(&self, path: &Path) -> Option<NodeId> {
        let mut node = ROOT;
        for component in path.components() {
            match component {
                Component::RootDir => node = ROOT,
                Component::Normal(name) => {
                    node = *self.dir(node)?.live.get(name.to_str()?)?;
                }
                Component::CurDir => {}
                _ => return None,
            }
        }
        Some(node)
    }

    /// The directory holding `path`, and the name in it.
    fn parent_of(&self, path: &Path) -> io::Result<(NodeId, String)> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other("simulated disk: bad name"))?
            .to_owned();
        let parent = path.parent().unwrap_or(Path::new("/"));
        let id = self.resolve(parent).ok_or_else(|| not_found(parent))?;
        self.dir(id).ok_or_else(|| not_found(parent))?;
        Ok((id, name))
    }

    fn add_node(&mut self, node: Node) -> NodeId {
        let id = self.next_node;
        self.next_node += 1;
        self.nodes.insert(id, node);
        id
    }

    fn link(&mut self, dir: NodeId, name: String, node: NodeId) {
        let d = self.dir_mut(dir);
        d.live.insert(name.clone(), node);
        d.pending.push(DirOp::Link(name, node));
    }

    fn create_file(&mut self, path: &Path) -> io::Result<NodeId> {
        let (dir, name) = self.parent_of(path)?;
        if self.dir(dir).expect("dir").live.contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let node = self.add_node(Node::File(FileNode::default()));
        self.link(dir, name, node);
        Ok(node)
    }

    fn file_op(&mut self, node: NodeId, op: FileOp) -> io::Result<()> {
        let file = self.file_mut(node)?;
        op.apply(&mut file.live);
        file.pending.push(op);
        Ok(())
    }

    fn sync_file(&mut self, node: NodeId) -> io::Result<()> {
        let file = self.file_mut(node)?;
        file.durable = file.live.clone();
        file.pending.clear();
        Ok(())
    }

    fn live_file(&self, path: &Path) -> io::Result<&FileNode> {
        match self.resolve(path).and_then(|id| self.nodes.get(&id)) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(io::Error::other("simulated disk: is a directory")),
            None => Err(not_found(path)),
        }
    }
}

/// How a crash treats the unsynced operations of one file or directory.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// All survive.
    All,
    /// None survives.
    None,
    /// The first few survive, the next one maybe torn: a disk that kept the order.
    Prefix,
    /// Each sector of each write, each size change, each entry change, on its own: a
    /// disk that reordered.
    Independent,
}

impl Fate {
    fn pick(rng: &mut Rng) -> Fate {
        match rng.below(100) {
            0..15 => Fate::All,
            15..30 => Fate::None,
            30..60 => Fate::Prefix,
            _ => Fate::Independent,
        }
    }
}

/// What a crash leaves of a file: its durable bytes and some of what followed.
fn crash_file(file: &FileNode, rng: &mut Rng) -> Vec<u8> {
    let mut data = file.durable.clone();
    if file.pending.is_empty() {
        return data;
    }
    match Fate::pick(rng) {
        Fate::All => data = file.live.clone(),
        Fate::None => {}
        Fate::Prefix => {
            let kept = rng.below(file.pending.len() as u64 + 1) as usize;
            for op in &file.pending[..kept] {
                op.apply(&mut data);
            }
            if let Some(FileOp::Write {
                offset,
                data: bytes,
            }) = file.pending.get(kept)
            {
                let torn = rng.below(bytes.len() as u64 + 1) as usize;
                write_into(&mut data, *offset, &bytes[..torn]);
            }
        }
        Fate::Independent => {
            for op in &file.pending {
                match op {
                    FileOp::Write {
                        offset,
                        data: bytes,
                    } => {
                        let mut at = *offset;
                        let end = offset + bytes.len() as u64;
                        while at < end {
                            let sector_end = ((at / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
                            let chunk =
                                &bytes[(at - offset) as usize..(sector_end - offset) as usize];
                            match rng.below(100) {
                                0..45 => write_into(&mut data, at, chunk),
                                45..85 => {}
                                _ => {
                                    let torn = rng.below(chunk.len() as u64 + 1) as usize;
                                    write_into(&mut data, at, &chunk[..torn]);
                                }
                            }
                            at = sector_end;
                        }
                    }
                    FileOp::SetLen(_) | FileOp::Grow(_) => {
                        if rng.chance(50) {
                            op.apply(&mut data);
                        }
                    }
                }
            }
        }
    }
    data
}

/// What a crash leaves of a directory's entries.
fn crash_dir(dir: &DirNode, rng: &mut Rng) -> BTreeMap<String, NodeId> {
    let mut entries = dir.durable.clone();
    if dir.pending.is_empty() {
        return entries;
    }
    match Fate::pick(rng) {
        Fate::All => entries = dir.live.clone(),
        Fate::None => {}
        Fate::Prefix => {
            let kept = rng.below(dir.pending.len() as u64 + 1) as usize;
            for op in &dir.pending[..kept] {
                op.apply(&mut entries);
            }
        }
        Fate::Independent => {
            for op in &dir.pending {
                if rng.chance(50) {
                    op.apply(&mut entries);
                }
            }
        }
    }
    entries
}

/// A simulated disk; clones share it.
#[derive(Clone, Debug)]
pub struct SimDisk(Arc<Mutex<Disk>>);

impl Default for SimDisk {
    fn default() -> SimDisk {
        SimDisk::new()
    }
}

impl SimDisk {
    pub fn new() -> SimDisk {
        SimDisk(Arc::new(Mutex::new(Disk::new())))
    }

    /// Stops the disk at the `n`-th change from now (counting writes, syncs, size
    /// changes and entry changes): that operation and all later ones fail.
    pub fn stop_after(&self, n: u64) {
        let mut disk = self.0.lock();
        disk.stop_at = Some(disk.changes + n.max(1));
    }

    /// Stops the disk now: a crash at this point.
    pub fn stop_now(&self) {
        self.0.lock().stopped = true;
    }

    /// Forgets a stop asked for by [`SimDisk::stop_after`] and not reached yet.
    pub fn clear_stop(&self) {
        self.0.lock().stop_at = None;
    }

    /// Whether the disk has stopped.
    pub fn is_stopped(&self) -> bool {
        self.0.lock().stopped
    }

    /// The process died (at the stop, or now) but the machine did not: what it wrote
    /// stays in the page cache, unsynced, and a new process may go on. Handles and
    /// locks of the dead process are void.
    pub fn restart(&self) {
        let mut disk = self.0.lock();
        disk.generation += 1;
        disk.stopped = false;
        disk.stop_at = None;
    }

    /// The disk a reboot finds after the machine lost power at the stop (or now): a new
    /// disk, everything on it durable. This one stays stopped.
    pub fn power_loss(&self, rng: &mut Rng) -> SimDisk {
        self.crash(
            &mut |node, rng| match node {
                Node::File(f) => Node::File(FileNode::durable(crash_file(f, rng))),
                Node::Dir(d) => Node::Dir(DirNode::durable(crash_dir(d, rng))),
            },
            rng,
        )
    }

    /// A power loss that keeps exactly what was synced: the disk that makes a missing
    /// fsync show.
    pub fn power_loss_keeping_only_synced(&self) -> SimDisk {
        self.crash(
            &mut |node, _| match node {
                Node::File(f) => Node::File(FileNode::durable(f.durable.clone())),
                Node::Dir(d) => Node::Dir(DirNode::durable(d.durable.clone())),
            },
            &mut Rng::new(0),
        )
    }

    fn crash(&self, fate: &mut dyn FnMut(&Node, &mut Rng) -> Node, rng: &mut Rng) -> SimDisk {
        let mut disk = self.0.lock();
        disk.stopped = true;
        // Every node's fate, whether reachable or not: cheap, and keeps the draws in
        // node order for a given seed.
        let mut ids: Vec<NodeId> = disk.nodes.keys().copied().collect();
        ids.sort_unstable();
        let mut crashed: HashMap<NodeId, Node> = HashMap::new();
        for id in ids {
            crashed.insert(id, fate(&disk.nodes[&id], rng));
        }
        // Only what the root still reaches exists.
        let mut reachable = HashMap::new();
        let mut stack = vec![ROOT];
        while let Some(id) = stack.pop() {
            let Some(node) = crashed.remove(&id) else {
                continue;
            };
            if let Node::Dir(d) = &node {
                stack.extend(d.live.values().copied());
            }
            reachable.insert(id, node);
        }
        SimDisk(Arc::new(Mutex::new(Disk {
            nodes: reachable,
            next_node: disk.next_node,
            generation: 0,
            changes: 0,
            stop_at: None,
            stopped: false,
            locks: HashMap::new(),
            next_token: 0,
        })))
    }

    /// The live contents of a file, for tests.
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.0.lock().live_file(path)?.live.clone())
    }
}

impl Storage for SimDisk {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.0.lock();
        let generation = disk.generation;
        disk.check(generation)?;
        let (dir, name) = disk.parent_of(path)?;
        if disk.dir(dir).expect("dir").live.contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        disk.change(generation)?;
        let node = disk.add_node(Node::Dir(DirNode::default()));
        disk.link(dir, name, node);
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let disk = self.0.lock();
        disk.check(disk.generation)?;
        Ok(disk.resolve(path).is_some())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.0.lock();
        disk.check(disk.generation)?;
        let id = disk.resolve(dir).ok_or_else(|| not_found(dir))?;
        let d = disk.dir(id).ok_or_else(|| not_found(dir))?;
        Ok(d.live.keys().cloned().collect())
    }

    fn read(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
        let disk = self.0.lock();
        disk.check(disk.generation)?;
        buf.extend_from_slice(&disk.live_file(path)?.live);
        Ok(())
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let disk = self.0.lock();
        disk.check(disk.generation)?;
        let data = &disk.live_file(path)?.live;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        let disk = self.0.lock();
        disk.check(disk.generation)?;
        Ok(disk.live_file(path)?.live.len() as u64)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut disk = self.0.lock();
        let generation = disk.generation;
        disk.check(generation)?;
        let existing = disk.resolve(path);
        let node = match (mode, existing) {
            (OpenMode::CreateNew, Some(_)) => return Err(io::ErrorKind::AlreadyExists.into()),
            (OpenMode::Existing, None) => return Err(not_found(path)),
            (OpenMode::Existing, Some(node)) => {
                disk.file_mut(node)?;
                node
            }
            (OpenMode::CreateTruncate, Some(node)) => {
                disk.change(generation)?;
                disk.file_op(node, FileOp::SetLen(0))?;
                node
            }
            (_, None) => {
                disk.change(generation)?;
                disk.create_file(path)?
            }
        };
        Ok(Box::new(SimFile {
            disk: self.clone(),
            node,
            generation,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.0.lock();
        let generation = disk.generation;
        disk.check(generation)?;
        let (from_dir, from_name) = disk.parent_of(from)?;
        let (to_dir, to_name) = disk.parent_of(to)?;
        assert_eq!(from_dir, to_dir, "the journal renames within a directory");
        let node = *disk
            .dir(from_dir)
            .expect("dir")
            .live
            .get(&from_name)
            .ok_or_else(|| not_found(from))?;
        disk.change(generation)?;
        let d = disk.dir_mut(from_dir);
        d.live.remove(&from_name);
        d.live.insert(to_name.clone(), node);
        d.pending.push(DirOp::Rename(from_name, to_name));
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.0.lock();
        let generation = disk.generation;
        disk.check(generation)?;
        let node = disk.resolve(from).ok_or_else(|| not_found(from))?;
        let (dir, name) = disk.parent_of(to)?;
        if disk.dir(dir).expect("dir").live.contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        disk.change(generation)?;
        disk.link(dir, name, node);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.remove_dir_all(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.0.lock();
        let generation = disk.generation;
        disk.check(generation)?;
        let (dir, name) = disk.parent_of(path)?;
        if !disk.dir(dir).expect("dir").live.contains_key(&name) {
            return Err(not_found(path));
        }
        disk.change(generation)?;
        let d = disk.dir_mut(dir);
        d.live.remove(&name);
        d.pending.push(DirOp::Unlink(name));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.0.lock();
        let generation = disk.generation;
        disk.check(generation)?;
        let id = disk.resolve(dir).ok_or_else(|| not_found(dir))?;
        disk.dir(id).ok_or_else(|| not_found(dir))?;
        disk.change(generation)?;
        let d = disk.dir_mut(id);
        d.durable = d.live.clone();
        d.pending.clear();
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let mut disk = self.0.lock();
        let generation = disk.generation;
        disk.check(generation)?;
        if disk
            .locks
            .get(path)
            .is_some_and(|&(held_by, _)| held_by == generation)
        {
            return Ok(None);
        }
        if disk.resolve(path).is_none() {
            disk.change(generation)?;
            disk.create_file(path)?;
        }
        let token = disk.next_token;
        disk.next_token += 1;
        disk.locks.insert(path.to_path_buf(), (generation, token));
        Ok(Some(Box::new(SimLock {
            disk: self.clone(),
            path: path.to_path_buf(),
            token,
        })))
    }

    fn available_bytes(&self, _dir: &Path) -> io::Result<u64> {
        Ok(u64::MAX / 2)
    }
}

struct SimLock {
    disk: SimDisk,
    path: PathBuf,
    token: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut disk = self.disk.0.lock();
        if disk
            .locks
            .get(&self.path)
            .is_some_and(|&(_, t)| t == self.token)
        {
            disk.locks.remove(&self.path);
        }
    }
}

struct SimFile {
    disk: SimDisk,
    node: NodeId,
    /// The process generation that opened it.
    generation: u64,
}

impl SimFile {
    fn change(&self, op: impl FnOnce(&mut Disk) -> io::Result<()>) -> io::Result<()> {
        let mut disk = self.disk.0.lock();
        disk.change(self.generation)?;
        op(&mut disk)
    }
}

impl StorageFile for SimFile {
    fn write_at(&self, offset: u64, head: &[u8], tail: &[u8]) -> io::Result<()> {
        let mut data = Vec::with_capacity(head.len() + tail.len());
        data.extend_from_slice(head);
        data.extend_from_slice(tail);
        self.change(|disk| disk.file_op(self.node, FileOp::Write { offset, data }))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.change(|disk| disk.sync_file(self.node))
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.change(|disk| disk.file_op(self.node, FileOp::SetLen(len)))
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.change(|disk| disk.file_op(self.node, FileOp::Grow(len)))
    }

    fn file_len(&self) -> io::Result<u64> {
        let mut disk = self.disk.0.lock();
        disk.check(self.generation)?;
        Ok(disk.file_mut(self.node)?.live.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(disk: &SimDisk, path: &str, offset: u64, data: &[u8]) -> Box<dyn StorageFile> {
        let file = disk
            .open(Path::new(path), OpenMode::CreateTruncate)
            .unwrap();
        file.write_at(offset, data, &[]).unwrap();
        file
    }

    #[test]
    fn synced_data_and_entries_survive_every_crash() {
        for seed in 0..200 {
            let disk = SimDisk::new();
            disk.create_dir(Path::new("/d")).unwrap();
            disk.sync_dir(Path::new("/")).unwrap();
            let file = write(&disk, "/d/f", 0, b"durable");
            file.sync_data().unwrap();
            disk.sync_dir(Path::new("/d")).unwrap();
            file.write_at(7, b" maybe", &[]).unwrap();
            write(&disk, "/d/g", 0, b"unsynced entry");
            let after = disk.power_loss(&mut Rng::new(seed));
            let data = after.contents(Path::new("/d/f")).unwrap();
            assert!(data.starts_with(b"durable"), "seed {seed}: {data:?}");
            assert!(b" maybe".starts_with(&data[7..]), "seed {seed}: {data:?}");
        }
    }

    #[test]
    fn unsynced_writes_are_sometimes_reordered_torn_or_lost() {
        let (mut kept_later_only, mut torn, mut lost_entry) = (false, false, false);
        for seed in 0..500 {
            let disk = SimDisk::new();
            let file = write(&disk, "/f", 0, &[]);
            file.sync_data().unwrap();
            disk.sync_dir(Path::new("/")).unwrap();
            file.write_at(0, &[1; 512], &[]).unwrap();
            file.write_at(512, &[2; 512], &[]).unwrap();
            write(&disk, "/new", 0, b"x");
            let after = disk.power_loss(&mut Rng::new(seed));
            let data = after.contents(Path::new("/f")).unwrap();
            if data.len() == 1024 && data[0] == 0 && data[1023] == 2 {
                kept_later_only = true;
            }
            if !data.len().is_multiple_of(512) {
                torn = true;
            }
            if after.contents(Path::new("/new")).is_err() {
                lost_entry = true;
            }
        }
        assert!(kept_later_only && torn && lost_entry);
    }

    #[test]
    fn a_stopped_disk_fails_everything_and_a_restart_keeps_the_page_cache() {
        let disk = SimDisk::new();
        let file = write(&disk, "/f", 0, b"cached");
        disk.stop_after(1);
        assert!(
            file.write_at(6, b"!", &[]).is_err(),
            "the stop happens here"
        );
        assert!(file.sync_data().is_err());
        assert!(disk.list_dir(Path::new("/")).is_err());
        disk.restart();
        assert!(
            file.write_at(0, b"x", &[]).is_err(),
            "handle of a dead process"
        );
        assert_eq!(disk.contents(Path::new("/f")).unwrap(), b"cached");
        let gone = disk.power_loss(&mut Rng::new(1));
        let _ = gone.contents(Path::new("/f"));
    }

    #[test]
    fn a_lock_is_released_by_a_process_crash() {
        let disk = SimDisk::new();
        let guard = disk.try_lock(Path::new("/lock")).unwrap().expect("free");
        assert!(disk.try_lock(Path::new("/lock")).unwrap().is_none());
        disk.restart();
        let _second = disk
            .try_lock(Path::new("/lock"))
            .unwrap()
            .expect("dead holder");
        drop(guard);
        assert!(disk.try_lock(Path::new("/lock")).unwrap().is_none());
    }
}
