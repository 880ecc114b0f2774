//! Passwords: the policy a new password must meet, hashing with Argon2id into PHC
//! strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), and verification. The cost
//! parameters are configurable ([`HashParams`]) because the production defaults
//! (OWASP's 19 MiB, 2 passes, 1 lane) are slow in unoptimised test builds; the
//! parameters used are stored in each PHC string, so changing them later does not
//! invalidate existing hashes. Salts are 16 bytes from the OS random generator.
//! This module never stores or logs a password.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

/// Argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashParams {
    /// Memory per hash in KiB (default 19456 = 19 MiB; minimum 8 × `parallelism`).
    pub memory_kib: u32,
    /// Passes over the memory (default 2).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl HashParams {
    /// The cheapest valid parameters: for tests only, never for production.
    pub const fn insecure_fast_for_tests() -> HashParams {
        HashParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Check the parameters are acceptable to Argon2.
    pub fn validate(&self) -> Result<(), PasswordError> {
        self.argon2().map(|_| ())
    }
}

/// What a new password must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Minimum length in characters (default 10).
    pub min_chars: usize,
    /// Maximum length in characters (default 256; bounds hashing work).
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: 10,
            max_chars: 256,
        }
    }
}

impl PasswordPolicy {
    /// Check a proposed password for `user`; the error says what is wrong (never the
    /// password).
    pub fn check(&self, user: &str, password: &str) -> Result<(), PasswordError> {
        let n = password.chars().count();
        if n < self.min_chars {
            return Err(PasswordError::Weak(format!(
                "a password needs at least {} characters (this one has {n})",
                self.min_chars
            )));
        }
        if n > self.max_chars {
            return Err(PasswordError::Weak(format!(
                "a password may have at most {} characters (this one has {n})",
                self.max_chars
            )));
        }
        if password.eq_ignore_ascii_case(user) {
            return Err(PasswordError::Weak(
                "the password must not be the user name".into(),
            ));
        }
        if password.chars().any(char::is_control) {
            return Err(PasswordError::Weak(
                "the password must not contain control characters".into(),
            ));
        }
        Ok(())
    }
}

/// Password hashing and policy errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The password does not meet the policy.
    #[error("password rejected: {0}")]
    Weak(String),
    /// Invalid Argon2 parameters.
    #[error("invalid password hashing parameters: {0}")]
    Params(String),
    /// A stored hash is not a valid PHC string.
    #[error("stored password hash is damaged: {0}")]
    BadStoredHash(String),
    /// The OS random generator failed.
    #[error("cannot get random bytes from the OS: {0}")]
    Random(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Fill `buf` from the OS random generator.
pub fn os_random(buf: &mut [u8]) -> Result<(), PasswordError> {
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| PasswordError::Random(e.to_string()))
}

/// Hash `password` with a fresh salt into a PHC string.
pub fn hash_password(params: &HashParams, password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    os_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    params
        .argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (with the parameters stored in it).
pub fn verify_password(phc: &str, password: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadStoredHash(e.to_string()))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(PasswordError::BadStoredHash(format!(
            "algorithm {} is not argon2id",
            parsed.algorithm
        )));
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::BadStoredHash(e.to_string())),
    }
}

/// Check that `phc` is a parseable Argon2id PHC string.
pub fn check_stored(phc: &str) -> Result<(), PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadStoredHash(e.to_string()))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(PasswordError::BadStoredHash(format!(
            "algorithm {} is not argon2id",
            parsed.algorithm
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: HashParams = HashParams::insecure_fast_for_tests();

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password(&FAST, "correct horse").unwrap();
        let b = hash_password(&FAST, "correct horse").unwrap();
        assert_ne!(a, b, "same salt twice");
        assert!(a.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{a}");
        assert!(verify_password(&a, "correct horse").unwrap());
        assert!(!verify_password(&a, "correct horsE").unwrap());
        assert!(!verify_password(&a, "").unwrap());
    }

    #[test]
    fn default_params_are_owasp_and_valid() {
        let p = HashParams::default();
        assert_eq!(
            (p.memory_kib, p.iterations, p.parallelism),
            (19 * 1024, 2, 1)
        );
        p.validate().unwrap();
        let bad = HashParams {
            memory_kib: 1,
            ..FAST
        };
        assert!(matches!(bad.validate(), Err(PasswordError::Params(_))));
    }

    #[test]
    fn damaged_hashes_are_errors_not_mismatches() {
        assert!(matches!(
            verify_password("not a hash", "x"),
            Err(PasswordError::BadStoredHash(_))
        ));
        let a = hash_password(&FAST, "pw123456789").unwrap();
        let argon2i = a.replace("$argon2id$", "$argon2i$");
        assert!(verify_password(&argon2i, "pw123456789").is_err());
        assert!(check_stored(&a).is_ok());
        assert!(check_stored(&argon2i).is_err());
    }

    #[test]
    fn policy_names_what_is_wrong() {
        let p = PasswordPolicy::default();
        assert!(p.check("alice", "long enough pw").is_ok());
        let e = p.check("alice", "short").unwrap_err();
        assert!(e.to_string().contains("at least 10"), "{e}");
        assert!(p.check("alicealice1", "ALICEALICE1").is_err());
        assert!(p.check("bob", &"x".repeat(257)).is_err());
        assert!(p.check("bob", "tab\tinside pw").is_err());
    }
}
