//! Users and their groups, from a file of argon2 password hashes.
//!
//! One user per line, `name:hash:group,group`: the hash is argon2id's PHC
//! string (`$argon2id$v=19$m=...`), which carries its salt and parameters;
//! `#` starts a comment, blank lines are skipped. `hawser passwd` writes the
//! lines ([`set_user`], [`remove_user`]), so nobody needs to hash by hand and
//! no password is ever stored. The file is read at start and again at SIGHUP.
//!
//! Checking a password costs argon2's work (tens of milliseconds and 19 MiB,
//! by design): callers run [`Users::authenticate`] on a blocking thread.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Largest users file read (bytes): a mistaken path to a huge file is refused
/// rather than read into memory.
pub const MAX_USERS_FILE_BYTES: u64 = 16 << 20;

/// Longest user or group name (bytes).
pub const MAX_NAME_BYTES: usize = 256;

/// Longest password checked (bytes); a longer one fails without hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// It could not be read or written.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// It is larger than [`MAX_USERS_FILE_BYTES`].
    #[error("users file {path} is larger than {MAX_USERS_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line is not `name:hash:groups`.
    #[error("users file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// Its number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A name given to `hawser passwd` cannot be written.
    #[error("{0}")]
    BadName(String),
    /// argon2 refused to hash a password.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// One user: the hash of its password and the groups it belongs to.
#[derive(Clone, Debug)]
struct User {
    /// argon2's PHC string.
    hash: String,
    /// Its groups, as authorization entries name them.
    groups: Arc<[Arc<str>]>,
}

/// Who authenticated: a user and its groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The user's name.
    pub name: Arc<str>,
    /// Its groups.
    pub groups: Arc<[Arc<str>]>,
}

/// The users a broker knows.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<Arc<str>, User>,
    /// Checked when the name is unknown, so that an unknown name takes as
    /// long to refuse as a wrong password (no probing for names by timing);
    /// made at the first such check.
    decoy: std::sync::OnceLock<String>,
}

impl Users {
    /// Reads `path`.
    ///
    /// # Errors
    /// If it cannot be read, is too large, or has a malformed line.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_USERS_FILE_BYTES {
            return Err(UsersError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Users::parse(&text, path)
    }

    /// Parses a users file's text (`path` names it in errors).
    ///
    /// # Errors
    /// On a malformed line.
    pub fn parse(text: &str, path: &Path) -> Result<Users, UsersError> {
        let mut by_name = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |reason: String| UsersError::Line {
                path: path.to_owned(),
                line: i + 1,
                reason,
            };
            let Some((name, hash, groups)) = split_line(line).map_err(bad)? else {
                continue;
            };
            PasswordHash::new(hash)
                .map_err(|e| bad(format!("the hash of {name:?} is not a PHC string: {e}")))?;
            let user = User {
                hash: hash.to_owned(),
                groups: groups.into_iter().map(Arc::from).collect(),
            };
            if by_name.insert(Arc::from(name), user).is_some() {
                return Err(bad(format!("{name:?} appears twice")));
            }
        }
        Ok(Users {
            by_name,
            decoy: std::sync::OnceLock::new(),
        })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True without users.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user `name`, without a password (a verified client certificate
    /// names it).
    pub fn user(&self, name: &str) -> Option<Authenticated> {
        self.by_name
            .get_key_value(name)
            .map(|(name, u)| Authenticated {
                name: Arc::clone(name),
                groups: Arc::clone(&u.groups),
            })
    }

    /// The user `name` if `password` is its password. Slow on purpose (see
    /// the module): call it on a blocking thread.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<Authenticated> {
        let user = self.by_name.get_key_value(name);
        let hash = match user {
            Some((_, u)) => u.hash.as_str(),
            None => self
                .decoy
                .get_or_init(|| hash_password("decoy").unwrap_or_default()),
        };
        let ok = password.len() <= MAX_PASSWORD_BYTES && verify(hash, password);
        match user {
            Some((name, u)) if ok => Some(Authenticated {
                name: Arc::clone(name),
                groups: Arc::clone(&u.groups),
            }),
            _ => None,
        }
    }
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// argon2id's PHC string for `password`, with a fresh random salt and the
/// crate's default parameters (19 MiB, two passes: OWASP's minimum).
///
/// # Errors
/// If hashing fails (a password longer than argon2 takes).
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// A line's parts: name, hash, groups.
type Entry<'a> = (&'a str, &'a str, Vec<&'a str>);

/// One line's name, hash and groups; `None` for a blank or comment line.
fn split_line(line: &str) -> Result<Option<Entry<'_>>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    let (Some(hash), groups) = (parts.next(), parts.next().unwrap_or_default()) else {
        return Err("expected name:hash:groups".to_owned());
    };
    check_name(name)?;
    let groups: Vec<&str> = groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    for g in &groups {
        check_name(g)?;
    }
    Ok(Some((name, hash, groups)))
}

/// A user or group name: not empty, at most [`MAX_NAME_BYTES`], and none of
/// the characters the file and ACL lists use (`:`, `,`, `#`, whitespace).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a name must have 1 to {MAX_NAME_BYTES} bytes: {name:?}"
        ));
    }
    if name
        .chars()
        .any(|c| c == ':' || c == ',' || c == '#' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "a name may not contain ':', ',', '#' or spaces: {name:?}"
        ));
    }
    Ok(())
}

/// Sets `name`'s password hash and groups in the users file at `path`
/// (creating it), keeping every other line as it was. The file is replaced
/// whole (written beside it, then renamed), so a reader sees the old or the
/// new one.
///
/// # Errors
/// A bad name, or if the file cannot be read or written.
pub fn set_user(path: &Path, name: &str, hash: &str, groups: &[&str]) -> Result<(), UsersError> {
    check_name(name).map_err(UsersError::BadName)?;
    for g in groups {
        check_name(g).map_err(UsersError::BadName)?;
    }
    let line = format!("{name}:{hash}:{}", groups.join(","));
    rewrite(path, name, Some(line))
}

/// Removes `name` from the users file at `path`; returns whether it was there.
///
/// # Errors
/// If the file cannot be read or written.
pub fn remove_user(path: &Path, name: &str) -> Result<bool, UsersError> {
    let before = existing(path)?;
    rewrite(path, name, None)?;
    Ok(before.lines().any(|l| names(l, name)))
}

fn existing(path: &Path) -> Result<String, UsersError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(UsersError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Whether `line` is the entry of `name`.
fn names(line: &str, name: &str) -> bool {
    matches!(split_line(line), Ok(Some((n, _, _))) if n == name)
}

fn rewrite(path: &Path, name: &str, line: Option<String>) -> Result<(), UsersError> {
    let io = |source| UsersError::Io {
        path: path.to_owned(),
        source,
    };
    let mut out = String::new();
    let mut line = line;
    for l in existing(path)?.lines() {
        if names(l, name) {
            // Replaced where it stood (or dropped).
            if let Some(new) = line.take() {
                out.push_str(&new);
                out.push('\n');
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if let Some(new) = line {
        out.push_str(&new);
        out.push('\n');
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(out.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_written_by_passwd_authenticates_with_its_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# who may connect\n\n").unwrap();
        set_user(
            &path,
            "alice",
            &hash_password("s3cret").unwrap(),
            &["admins", "ops"],
        )
        .unwrap();
        set_user(&path, "bob", &hash_password("hunter2").unwrap(), &[]).unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 2);
        let alice = users.authenticate("alice", "s3cret").unwrap();
        assert_eq!(&*alice.name, "alice");
        assert_eq!(
            alice.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
            ["admins", "ops"]
        );
        assert!(users.authenticate("alice", "S3cret").is_none());
        assert!(users.authenticate("alice", "").is_none());
        assert!(users.authenticate("carol", "s3cret").is_none());
        assert!(users.authenticate("bob", "hunter2").is_some());
        assert!(!std::fs::read_to_string(&path).unwrap().contains("s3cret"));
        // A new password replaces the line in place; the comment stays.
        set_user(&path, "alice", &hash_password("new").unwrap(), &["admins"]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# who may connect\n"));
        assert_eq!(text.matches("alice:").count(), 1);
        let users = Users::load(&path).unwrap();
        assert!(users.authenticate("alice", "s3cret").is_none());
        assert!(users.authenticate("alice", "new").is_some());
        assert!(remove_user(&path, "alice").unwrap());
        assert!(!remove_user(&path, "alice").unwrap());
        assert_eq!(Users::load(&path).unwrap().len(), 1);
    }

    proptest::proptest! {
        /// Whatever the text, parsing says yes or no and never panics; what
        /// it takes has names the file format can write back.
        #[test]
        fn any_text_parses_or_is_refused(text in "(?s).{0,400}", lines in proptest::collection::vec("[a-z:,# $]{0,30}", 0..8)) {
            let p = Path::new("users");
            let _ = Users::parse(&text, p);
            if let Ok(users) = Users::parse(&lines.join("\n"), p) {
                for name in users.by_name.keys() {
                    proptest::prop_assert!(check_name(name).is_ok());
                }
            }
        }
    }

    #[test]
    fn malformed_files_and_names_are_refused_with_their_line() {
        let p = Path::new("users");
        let hash = hash_password("x").unwrap();
        for (text, want) in [
            ("alice".to_owned(), "line 1"),
            (format!("alice:{hash}:\nalice:{hash}:"), "appears twice"),
            ("alice:plain-text-password:".to_owned(), "not a PHC string"),
            (format!("# c\nal ice:{hash}:"), "line 2"),
            (format!("alice:{hash}:a b"), "may not contain"),
        ] {
            let e = Users::parse(&text, p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(set_user(Path::new("/nonexistent/x"), "a:b", &hash, &[]).is_err());
        assert!(
            Users::parse(&format!("alice:{hash}"), p).is_ok(),
            "groups are optional"
        );
    }
}
