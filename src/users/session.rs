//! Sessions: the token a logged-in browser holds and the server-side state behind it.
//! A token is 256 random bits from the OS, given to the client once as 64 hex
//! characters; the server keeps only its SHA-256 (so a memory or log dump does not leak
//! live tokens), with the user and the monotonic times of login and last use from the
//! injected clock. Sessions live in memory: a restart logs everyone out. This module
//! owns tokens and expiry arithmetic; `Users` decides.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::audit::record::hex;
use crate::clock::Micros;

use super::password::{PasswordError, os_random};
use super::role::Role;

/// A session token as handed to the client. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A fresh random token.
    pub(crate) fn generate() -> Result<SessionToken, PasswordError> {
        let mut b = [0u8; 32];
        os_random(&mut b)?;
        Ok(SessionToken(hex(&b)))
    }

    /// Wrap a token the client sent back.
    pub fn from_client(text: &str) -> SessionToken {
        SessionToken(text.to_string())
    }

    /// The token text (for a cookie).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key the server stores: SHA-256 of the token text.
    pub(crate) fn key(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(…)")
    }
}

/// What a successful login returns.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token to present on every request.
    pub token: SessionToken,
    /// Who logged in.
    pub user: String,
    /// Their role at login.
    pub role: Role,
    /// Idle timeout: the session ends after this long without a request.
    pub idle_timeout: Duration,
}

/// The server side of a session.
#[derive(Debug, Clone)]
pub(crate) struct SessionState {
    pub user: String,
    pub started: Micros,
    pub last_used: Micros,
}

impl SessionState {
    /// Whether the session has expired at `now`.
    pub fn expired(&self, now: Micros, idle: Duration, max: Duration) -> bool {
        now.since(self.last_used) >= idle || now.since(self.started) >= max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_hex_and_unique() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "SessionToken(…)");
        assert_eq!(SessionToken::from_client(a.as_str()).key(), a.key());
    }

    #[test]
    fn expiry_by_idle_and_by_age() {
        let s = SessionState {
            user: "u".into(),
            started: Micros(0),
            last_used: Micros(50_000_000),
        };
        let idle = Duration::from_secs(60);
        let max = Duration::from_secs(100);
        assert!(!s.expired(Micros(109_999_999), idle, Duration::from_secs(1000)));
        assert!(s.expired(Micros(110_000_000), idle, Duration::from_secs(1000)));
        assert!(s.expired(Micros(100_000_000), idle, max));
        assert!(!s.expired(Micros(99_999_999), idle, max));
    }
}
