//! Which file system a shared store is on, and whether its file locks can fence.
//!
//! The file-lock mode trusts an exclusive lock on `ha/master.lock` to let one broker
//! claim epochs at a time. On a network or distributed file system that lock is only
//! as good as the lock protocol behind it: NFS locks can be lost and granted to
//! another client when a lease or a server restart goes wrong, SMB and FUSE
//! back-ends may keep them per client machine, and some (BeeGFS by default, many
//! FUSE file systems) do not share them between machines at all. Two brokers that
//! both hold "the" lock claim epoch after epoch from each other. So the file-lock
//! fence refuses to start there, and the operator chooses lease mode, which relies
//! on the epoch claims (hard links, atomic on these file systems) and on time.
//!
//! The file system is recognised by `statfs`'s `f_type` (the super block magic), a
//! pure classification tested below. The list, with the magic numbers of Linux's
//! `<linux/magic.h>` and of the out-of-tree modules named:
//!
//! | f_type | file system |
//! |---|---|
//! | `0x6969` | NFS (v2, v3, v4) |
//! | `0x517B` | SMB (the old smbfs) |
//! | `0xFF534D42` | CIFS (`mount -t cifs`) |
//! | `0xFE534D42` | SMB2/SMB3 (`mount -t smb3`) |
//! | `0x00C36400` | CephFS (kernel client) |
//! | `0x01021997` | 9p (v9fs: virtual machines' shared folders, WSL) |
//! | `0x5346414F` | AFS (OpenAFS) |
//! | `0x6B414653` | AFS (the kernel's kAFS) |
//! | `0x73757245` | Coda |
//! | `0x564C` | NCP (NetWare) |
//! | `0x0BD00BD0` | Lustre |
//! | `0x20030528` | OrangeFS (PVFS2) |
//! | `0x19830326` | BeeGFS |
//! | `0x65735546` | FUSE: sshfs, GlusterFS, CephFS's ceph-fuse, s3fs, virtiofs... |
//!
//! FUSE is refused as a whole: its type does not say what serves it, and the
//! networked ones are what a shared store would be put on. Left out on purpose:
//! shared-disk cluster file systems whose locks go through the cluster's lock
//! manager and are designed to be trusted across machines (GFS2 `0x01161970`, OCFS2
//! `0x7461636F`, IBM Storage Scale/GPFS `0x47504653`). Lease mode works on every
//! file system, these included.

use std::io;
use std::path::Path;

/// `(f_type, name)` of every file system on which the file-lock fence refuses to start.
const NETWORK_FILE_SYSTEMS: &[(u32, &str)] = &[
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2/SMB3"),
    (0x00C3_6400, "CephFS"),
    (0x0102_1997, "9p"),
    (0x5346_414F, "AFS"),
    (0x6B41_4653, "AFS (kAFS)"),
    (0x7375_7245, "Coda"),
    (0x564C, "NCP"),
    (0x0BD0_0BD0, "Lustre"),
    (0x2003_0528, "OrangeFS"),
    (0x1983_0326, "BeeGFS"),
    (0x6573_5546, "FUSE (sshfs, GlusterFS, ceph-fuse, ...)"),
];

/// The network file system `f_type` identifies, if it is one. `f_type` is a C
/// `long` that the kernel fills with a 32-bit magic; only the low 32 bits count
/// (a 32-bit `long` sign-extends the magics with the top bit set).
pub fn network_file_system(f_type: i64) -> Option<&'static str> {
    let magic = (f_type as u64 & 0xFFFF_FFFF) as u32;
    NETWORK_FILE_SYSTEMS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

/// `statfs(dir).f_type`: the type of the file system `dir` is on.
///
/// # Errors
/// If `statfs` fails (no such directory, no permission).
pub fn file_system_type(dir: &Path) -> io::Result<i64> {
    let fs = rustix::fs::statfs(dir)?;
    #[allow(clippy::useless_conversion)] // `long` is i64 here, i32 on 32-bit targets
    Ok(i64::from(fs.f_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_file_systems_are_recognised() {
        assert_eq!(network_file_system(0x6969), Some("NFS"));
        assert_eq!(network_file_system(0x517B), Some("SMB"));
        assert_eq!(network_file_system(0xFF53_4D42), Some("CIFS"));
        assert_eq!(network_file_system(0xFE53_4D42), Some("SMB2/SMB3"));
        assert_eq!(network_file_system(0x00C3_6400), Some("CephFS"));
        assert_eq!(network_file_system(0x0102_1997), Some("9p"));
        assert_eq!(network_file_system(0x5346_414F), Some("AFS"));
        assert_eq!(network_file_system(0x0BD0_0BD0), Some("Lustre"));
        assert!(network_file_system(0x6573_5546)
            .unwrap()
            .starts_with("FUSE"));
    }

    #[test]
    fn a_sign_extended_magic_is_the_same_file_system() {
        // A 32-bit `long` holding CIFS's magic reads as a negative number.
        let cifs_as_i32 = 0xFF53_4D42_u32 as i32;
        assert_eq!(network_file_system(i64::from(cifs_as_i32)), Some("CIFS"));
    }

    #[test]
    fn local_and_cluster_file_systems_are_not() {
        for local in [
            0xEF53,      // ext2/3/4
            0x5846_5342, // XFS
            0x9123_683E, // Btrfs
            0x0102_1994, // tmpfs
            0x2FC1_2FC1, // ZFS
            0x794C_7630, // overlayfs
            0x0116_1970, // GFS2
            0x7461_636F, // OCFS2
            0x4750_4653, // GPFS
        ] {
            assert_eq!(network_file_system(local), None, "{local:#x}");
        }
    }

    #[test]
    fn the_type_of_a_local_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let t = file_system_type(dir.path()).unwrap();
        assert_ne!(t, 0);
        assert!(file_system_type(&dir.path().join("missing")).is_err());
    }
}
