//! The file operations the journal performs, behind a trait, so that a test can swap in
//! a disk that crashes on purpose (see `sim_disk`) and run the real recovery on what it
//! leaves.
//!
//! Every operation is one system call or close to it, so the one dynamic call added per
//! operation is lost in the syscall's own cost; the writer's hot path does one
//! [`StorageFile::write_at`] per buffer it flushes and one [`StorageFile::sync_data`] per
//! commit, as it did on `std::fs::File`.
//!
//! Nothing here knows about segments or records: paths and bytes only.

use std::any::Any;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, IoSlice, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{fallocate, FallocateFlags};

/// How [`Storage::open`] opens a file for writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// A new file; fails with `AlreadyExists` if the name is taken.
    CreateNew,
    /// Created if missing, emptied if present.
    CreateTruncate,
    /// An existing file, as it is.
    Existing,
}

/// Held while a directory lock is held; dropping it releases the lock.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// A file system as the journal uses it. Directory entries (creating, renaming, linking,
/// removing names) are durable only after [`Storage::sync_dir`] of their directory, and
/// file contents only after [`StorageFile::sync_data`] or [`StorageFile::sync_all`]:
/// the journal calls both where a crash must not undo what it did.
pub trait Storage: Send + Sync + 'static {
    /// Creates one directory (its parent must exist); `AlreadyExists` if it does.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether anything (file or directory) has this name.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Names in a directory, in no particular order; names that are not UTF-8 are
    /// left out (the journal names none of its files so).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Appends a whole file's contents to `buf`.
    fn read(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<()>;
    /// Reads from `offset` into `buf`; returns how much was read, less than asked only
    /// where the file ends.
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// A file's length.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Opens a file for writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>>;
    /// Renames a file (replacing `to` if it exists).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Gives the file `from` a second name; `AlreadyExists` if `to` is taken.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file's name.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of a directory durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing) for as long as the guard
    /// lives; `None` if someone else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
    /// Bytes free for this user on the file system of `dir`.
    fn available_bytes(&self, dir: &Path) -> io::Result<u64>;
}

/// A file open for writing. Writes are positional: the writer knows where each goes.
pub trait StorageFile: Send + Sync {
    /// Writes all of `head`, then all of `tail`, starting at `offset`.
    fn write_at(&self, offset: u64, head: &[u8], tail: &[u8]) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Cuts or extends (with zeros) the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Allocates blocks up to `len` (they read as zeros), growing the file to `len`.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn file_len(&self) -> io::Result<u64>;
}

/// The storage a journal runs on; by default the real file system.
#[derive(Clone)]
pub struct StorageHandle(Arc<dyn Storage>);

impl StorageHandle {
    /// A handle on `storage`.
    pub fn new(storage: impl Storage) -> StorageHandle {
        StorageHandle(Arc::new(storage))
    }
}

impl Default for StorageHandle {
    fn default() -> Self {
        StorageHandle::new(FileSystem)
    }
}

impl std::ops::Deref for StorageHandle {
    type Target = dyn Storage;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for StorageHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageHandle")
    }
}

impl PartialEq for StorageHandle {
    fn eq(&self, other: &StorageHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StorageHandle {}

/// The real file system, through `std::fs` and `rustix`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileSystem;

impl Storage for FileSystem {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
        File::open(path)?.read_to_end(buf).map(drop)
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let file = File::open(path)?;
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.write(true);
        match mode {
            OpenMode::CreateNew => options.create_new(true),
            OpenMode::CreateTruncate => options.create(true).truncate(true),
            OpenMode::Existing => &mut options,
        };
        Ok(Box::new(options.open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            // The lock lives as long as the open file.
            Ok(()) => Ok(Some(Box::new(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        let fs = rustix::fs::statvfs(dir)?;
        Ok(fs.f_bavail.saturating_mul(fs.f_frsize))
    }
}

impl StorageFile for File {
    fn write_at(&self, mut offset: u64, mut head: &[u8], mut tail: &[u8]) -> io::Result<()> {
        // One pwritev per call unless the kernel writes short, as `write_vectored` did.
        while !head.is_empty() || !tail.is_empty() {
            let slices = [IoSlice::new(head), IoSlice::new(tail)];
            let written = match rustix::io::pwritev(self, &slices, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            offset += written as u64;
            if written < head.len() {
                head = &head[written..];
            } else {
                tail = &tail[written - head.len()..];
                head = &[];
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        Ok(fallocate(self, FallocateFlags::empty(), 0, len)?)
    }

    fn file_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// Creates `dir` and any missing parents, fsyncing each parent after the entry made in
/// it, so that the directory is still there after a crash.
///
/// # Errors
/// If a directory cannot be created or synced.
pub fn create_dir_all_durable(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    if storage.exists(dir)? {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_durable(storage, parent)?;
    }
    match storage.create_dir(dir) {
        Ok(()) => {}
        // Made meanwhile by someone else, who syncs it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    storage.sync_dir(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_writes_land_where_asked_and_extend_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = FileSystem.open(&path, OpenMode::CreateNew).unwrap();
        file.write_at(0, b"head", b"").unwrap();
        file.write_at(10, b"ab", b"cd").unwrap();
        assert_eq!(file.file_len().unwrap(), 14);
        let mut data = Vec::new();
        FileSystem.read(&path, &mut data).unwrap();
        assert_eq!(data, b"head\0\0\0\0\0\0abcd");
        let mut buf = [0u8; 8];
        assert_eq!(FileSystem.read_at(&path, 10, &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"abcd");
        assert!(FileSystem.open(&path, OpenMode::CreateNew).is_err());
    }

    #[test]
    fn nested_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        create_dir_all_durable(&FileSystem, &nested).unwrap();
        assert!(nested.is_dir());
        create_dir_all_durable(&FileSystem, &nested).unwrap();
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let guard = FileSystem.try_lock(&path).unwrap().expect("free");
        assert!(FileSystem.try_lock(&path).unwrap().is_none());
        drop(guard);
        assert!(FileSystem.try_lock(&path).unwrap().is_some());
    }
}
