//! Who may do what on the admin endpoint: read (status, metrics, lists,
//! browsing) or administer (purge, delete, move, close), from the users'
//! names and groups (`[admin] admins`, `readers`); and the token that keeps
//! another web site from making a logged-in browser change anything.

use std::fmt;
use std::net::SocketAddr;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hawser_broker::Principal;
use serde::Serialize;

/// The header a change must carry the session token in (a custom header:
/// a page of another origin cannot send one without the CORS permission
/// this endpoint never gives).
pub const TOKEN_HEADER: &str = "x-hawser-token";

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read everything, change nothing.
    Read,
    /// Read and change.
    Admin,
}

/// The roles as configured.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    /// Users and groups with [`Access::Admin`].
    pub admins: Vec<String>,
    /// Users and groups with [`Access::Read`]; empty: every user.
    pub readers: Vec<String>,
}

impl Roles {
    /// What `principal`, calling from loopback or not, may do; `None`:
    /// nothing. Without users (nobody authenticates; the broker listens on
    /// loopback only unless told `--allow-anonymous`) a caller on this host
    /// administers and one from elsewhere reads; an anonymous caller of a
    /// broker with users (`allow_anonymous`) only reads.
    pub fn access(&self, principal: &Principal, users: bool, loopback: bool) -> Option<Access> {
        match principal {
            Principal::Anonymous if users || !loopback => Some(Access::Read),
            Principal::Anonymous | Principal::Broker => Some(Access::Admin),
            Principal::User { name, groups } => {
                let named = |list: &[String]| {
                    list.iter()
                        .any(|n| **n == **name || groups.iter().any(|g| **g == **n))
                };
                if named(&self.admins) {
                    Some(Access::Admin)
                } else if self.readers.is_empty() || named(&self.readers) {
                    Some(Access::Read)
                } else {
                    None
                }
            }
        }
    }
}

/// Where a request came from (axum's connection info, for plain and TLS
/// listeners alike; see `server`).
#[derive(Clone, Copy, Debug)]
pub struct Remote(pub SocketAddr);

/// The authenticated caller of a request (put there by the credentials layer).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user's name (`anonymous` without one).
    pub user: String,
    /// What it may do.
    pub access: Access,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)
    }
}

/// A random token per process, given to callers who ask (`/api/session`),
/// required on every change.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the endpoint refused a request: its status and the text it says.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The HTTP status.
    pub status: StatusCode,
    /// What the answer says.
    pub message: String,
}

impl Refused {
    /// A refusal with `status`, saying `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}

/// `Ok` if `caller` may change things and the request carries `token`:
/// otherwise 403 saying which is missing.
pub fn may_change(caller: &Caller, headers: &HeaderMap, token: &str) -> Result<(), Refused> {
    if caller.access != Access::Admin {
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            format!("user {caller} may read but not change anything"),
        ));
    }
    let given = headers.get(TOKEN_HEADER).map(|v| v.as_bytes());
    // Compared in constant time: how long a refusal takes says nothing of
    // how much of a guess was right.
    let same = given.is_some_and(|g| {
        g.len() == token.len()
            && g.iter()
                .zip(token.as_bytes())
                .fold(0, |d, (a, b)| d | (a ^ b))
                == 0
    });
    if !same {
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            format!(
                "a change needs the session token in the {TOKEN_HEADER} header (GET /api/session)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn user(name: &str, groups: &[&str]) -> Principal {
        Principal::User {
            name: Arc::from(name),
            groups: groups.iter().map(|g| Arc::from(*g)).collect(),
        }
    }

    #[test]
    fn admins_and_readers_by_name_or_group() {
        let roles = Roles {
            admins: vec!["admins".into(), "root".into()],
            readers: vec!["ops".into()],
        };
        assert_eq!(
            roles.access(&user("a", &["admins"]), true, false),
            Some(Access::Admin)
        );
        assert_eq!(
            roles.access(&user("root", &[]), true, false),
            Some(Access::Admin)
        );
        assert_eq!(
            roles.access(&user("b", &["ops"]), true, false),
            Some(Access::Read)
        );
        assert_eq!(roles.access(&user("c", &["users"]), true, true), None);
        assert_eq!(
            roles.access(&Principal::Anonymous, true, true),
            Some(Access::Read)
        );
        assert_eq!(
            roles.access(&Principal::Anonymous, false, true),
            Some(Access::Admin)
        );
        assert_eq!(
            roles.access(&Principal::Anonymous, false, false),
            Some(Access::Read),
            "without users, a caller from elsewhere only reads"
        );
        let open = Roles {
            admins: vec!["admins".into()],
            readers: Vec::new(),
        };
        assert_eq!(
            open.access(&user("c", &["users"]), true, false),
            Some(Access::Read)
        );
    }

    #[test]
    fn a_change_needs_the_admin_role_and_the_token() {
        let admin = Caller {
            user: "a".into(),
            access: Access::Admin,
        };
        let reader = Caller {
            user: "r".into(),
            access: Access::Read,
        };
        let mut headers = HeaderMap::new();
        assert!(may_change(&admin, &headers, "t").is_err());
        headers.insert(TOKEN_HEADER, "wrong".parse().unwrap());
        assert!(may_change(&admin, &headers, "t").is_err());
        headers.insert(TOKEN_HEADER, "t".parse().unwrap());
        assert!(may_change(&admin, &headers, "t").is_ok());
        assert!(may_change(&reader, &headers, "t").is_err());
        assert_ne!(new_token(), new_token());
    }
}
