//! Who may connect: authentication for every listener, in one place.
//!
//! A protocol session hands [`Authenticator::authenticate`] the credentials
//! its handshake carried (STOMP's `login`/`passcode`, OpenWire's
//! `ConnectionInfo` user name and password, HTTP Basic for the status
//! endpoint; a verified client certificate's name) and gets back the [`Principal`]
//! it gives the engine, or an [`AuthError`] to send as that protocol's error
//! before closing the connection.
//!
//! - [`users`]: the users file (argon2 hashes, groups).
//! - [`passwd`]: `hawser passwd`, which writes it.
//! - [`throttle`]: the delay before a failure is answered, growing per address.
//! - [`tls`]: the listeners' TLS (certificate, key, client CA), reloadable.
//!
//! Without a users file the broker runs open, as it always has, and ignores
//! credentials; the server refuses to start that way on anything but a
//! loopback address unless `allow_anonymous` says so
//! (`Config::check_exposure`). With a
//! users file every connection must authenticate, unless `allow_anonymous`
//! lets a connection without credentials in as [`Principal::Anonymous`].
//! Every failure is logged on the `audit` target.

pub mod passwd;
pub mod throttle;
pub mod tls;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use tokio::sync::Semaphore;

use crate::connection::{Principal, Protocol};
use throttle::Throttle;
use users::{Users, UsersError};

/// Password checks running at once, broker-wide: each takes argon2's
/// 19 MiB and tens of milliseconds of a core, so a flood of logins waits
/// here rather than exhausting memory.
pub const MAX_CONCURRENT_CHECKS: usize = 4;

/// Why a connection was not let in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong user name or password (which of the two is not said).
    #[error("user name or password is invalid")]
    Invalid,
    /// No credentials, and the broker lets nobody in without.
    #[error("authentication required: this broker has users and does not allow anonymous access")]
    Required,
}

/// How connections authenticate (see the module).
pub struct Authenticator {
    /// The users file, if there is one.
    path: Option<PathBuf>,
    /// Its users, replaced whole at each reload.
    users: RwLock<Arc<Users>>,
    /// Connections without credentials are let in as anonymous.
    allow_anonymous: bool,
    /// Failures per address.
    throttle: Throttle,
    /// See [`MAX_CONCURRENT_CHECKS`].
    checks: Semaphore,
}

impl Authenticator {
    /// Loads `users_file`, if given.
    ///
    /// # Errors
    /// If the file cannot be read or has a malformed line.
    pub fn new(users_file: Option<PathBuf>, allow_anonymous: bool) -> Result<Self, UsersError> {
        let users = match &users_file {
            Some(path) => Users::load(path)?,
            None => Users::default(),
        };
        Ok(Authenticator {
            path: users_file,
            users: RwLock::new(Arc::new(users)),
            allow_anonymous,
            throttle: Throttle::default(),
            checks: Semaphore::new(MAX_CONCURRENT_CHECKS),
        })
    }

    /// An authenticator that lets everyone in (no users file).
    pub fn open() -> Self {
        Authenticator::new(None, true).expect("no file to read")
    }

    /// Whether connections must authenticate (a users file is configured).
    pub fn required(&self) -> bool {
        self.path.is_some()
    }

    /// Reads the users file again (SIGHUP); returns how many users it has.
    /// On an error the users before stay in force.
    ///
    /// # Errors
    /// As [`Authenticator::new`].
    pub fn reload(&self) -> Result<usize, UsersError> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let users = Users::load(path)?;
        let n = users.len();
        *self.users.write() = Arc::new(users);
        Ok(n)
    }

    /// Authenticates a connection from `remote` over `protocol` with the
    /// credentials it gave. A failure is answered after the throttle's
    /// delay for its address, and logged on the `audit` target.
    ///
    /// `certificate` is the subject common name of a client certificate its
    /// TLS handshake verified: without credentials of its own, the
    /// connection is the user of that name, if the users file has one (the
    /// client CA vouches for it, as with ActiveMQ's certificate login
    /// module). Credentials, when given, are checked as always.
    ///
    /// # Errors
    /// [`AuthError`] when it may not connect.
    pub async fn authenticate(
        &self,
        protocol: Protocol,
        remote: Option<SocketAddr>,
        login: Option<&str>,
        passcode: Option<&str>,
        certificate: Option<&str>,
    ) -> Result<Principal, AuthError> {
        if !self.required() {
            return Ok(Principal::Anonymous);
        }
        let login = login.filter(|l| !l.is_empty());
        if let (None, Some(name)) = (login, certificate) {
            if let Some(user) = self.users.read().user(name) {
                return Ok(Principal::User {
                    name: user.name,
                    groups: user.groups,
                });
            }
        }
        let outcome = match login {
            None if self.allow_anonymous => return Ok(Principal::Anonymous),
            None => Err(AuthError::Required),
            Some(login) => self.check(login, passcode.unwrap_or_default()).await,
        };
        let ip = remote.map(|r| r.ip());
        match outcome {
            Ok(principal) => {
                if let Some(ip) = ip {
                    self.throttle.succeeded(ip);
                }
                Ok(principal)
            }
            Err(e) => {
                let delay = ip.map_or(throttle::FAILURE_DELAY, |ip| {
                    self.throttle.failed(ip, Instant::now())
                });
                tracing::warn!(
                    target: "audit",
                    %protocol,
                    remote = ?remote,
                    user = login.unwrap_or(""),
                    delay_ms = delay.as_millis() as u64,
                    "authentication failed: {e}"
                );
                tokio::time::sleep(delay).await;
                Err(e)
            }
        }
    }

    /// Checks a password on a blocking thread, at most
    /// [`MAX_CONCURRENT_CHECKS`] at once.
    async fn check(&self, login: &str, passcode: &str) -> Result<Principal, AuthError> {
        let _permit = self
            .checks
            .acquire()
            .await
            .map_err(|_| AuthError::Invalid)?;
        let users = Arc::clone(&self.users.read());
        let (login, passcode) = (login.to_owned(), passcode.to_owned());
        let found = tokio::task::spawn_blocking(move || users.authenticate(&login, &passcode))
            .await
            .ok()
            .flatten();
        found
            .map(|a| Principal::User {
                name: a.name,
                groups: a.groups,
            })
            .ok_or(AuthError::Invalid)
    }
}
