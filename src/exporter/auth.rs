//! Basic authentication as exporter-toolkit does it: `basic_auth_users` maps a user to a
//! bcrypt hash; a request passes with `Authorization: Basic` credentials whose password the
//! hash accepts. bcrypt costs 50–100 ms a check by design and Prometheus sends its credentials
//! with every scrape, so a successful (user, password, hash) is remembered — by its SHA-256,
//! never the password itself — and the next scrape costs a hash lookup. Checks that reach
//! bcrypt run one at a time (as the toolkit's mutex does): a flood of wrong passwords takes
//! one core, not all. An unknown user is checked against a decoy hash, so a reply's timing
//! does not tell which users exist.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::Engine;

use crate::error::WebConfigError;

/// How many successful credentials are remembered; past that the memory starts over.
const REMEMBERED: usize = 64;

/// Users and their bcrypt hashes, every hash checked to be one.
#[derive(Debug)]
pub(crate) struct Users(BTreeMap<String, String>);

impl Users {
    pub(crate) fn new(users: BTreeMap<String, String>) -> Result<Users, WebConfigError> {
        if let Some((user, _)) = users.iter().find(|(_, hash)| !is_bcrypt(hash)) {
            return Err(WebConfigError::NotBcrypt { user: user.clone() });
        }
        Ok(Users(users))
    }
}

/// `$2a$`, `$2b$`, `$2x$` or `$2y$`, a cost 04–31, `$`, then 22 characters of salt and 31 of
/// hash in bcrypt's base64 alphabet.
fn is_bcrypt(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        // Bytes, not `h[4..6]`: a non-ASCII character there is no char boundary to slice at.
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && (4..=31).contains(&(u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0')))
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

pub(crate) struct BasicAuth {
    users: Users,
    /// Paths served without credentials (`basic_auth_excluded_paths`), matched exactly.
    excluded: Vec<String>,
    /// SHA-256 of user, hash and password of checks that passed.
    passed: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time.
    bcrypt: Mutex<()>,
    /// A hash no password matches, as costly as the costliest user's, made on first use.
    decoy: std::sync::OnceLock<String>,
}

impl BasicAuth {
    pub(crate) fn new(users: Users, excluded: Vec<String>) -> BasicAuth {
        BasicAuth {
            users,
            excluded,
            passed: Mutex::new(HashSet::new()),
            bcrypt: Mutex::new(()),
            decoy: std::sync::OnceLock::new(),
        }
    }

    /// Whether a request for `path` with this `Authorization` header value may be served.
    pub(crate) fn allows(&self, path: &str, authorization: Option<&str>) -> bool {
        if self.excluded.iter().any(|p| p == path) {
            return true;
        }
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let (hash, known) = match self.users.0.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (self.decoy(), false),
        };
        let key = key(&user, hash, &password);
        if known && self.lock_passed().contains(&key) {
            return true;
        }
        let ok = {
            let _one = self.bcrypt.lock().unwrap_or_else(|p| p.into_inner());
            // Compares in constant time (subtle's ct_eq) once the hash is computed.
            bcrypt::verify(password.as_bytes(), hash).unwrap_or(false)
        };
        if ok && known {
            let mut passed = self.lock_passed();
            if passed.len() >= REMEMBERED {
                passed.clear();
            }
            passed.insert(key);
        }
        ok && known
    }

    fn decoy(&self) -> &str {
        self.decoy.get_or_init(|| {
            let cost = (self.users.0.values())
                .filter_map(|h| h[4..6].parse().ok())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            // What it matches does not matter: an unknown user never passes.
            let secret: [u8; 16] = std::array::from_fn(|i| (i as u8) ^ 0x5a);
            bcrypt::hash(secret, cost).unwrap_or_default()
        })
    }

    fn lock_passed(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.passed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The remembered form of a check: a digest, so no password is kept in memory. Lengths are
/// part of it, so ("ab", "c") and ("a", "bc") differ.
fn key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `Basic dXNlcjpwYXNz` → ("user", "pass"). The scheme is case-insensitive (RFC 9110 §11.1).
pub(crate) fn credentials(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(excluded: &[&str]) -> BasicAuth {
        // bcrypt("secret"), cost 4 to keep the test fast.
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users = Users::new(BTreeMap::from([("alice".to_string(), hash)])).unwrap();
        BasicAuth::new(users, excluded.iter().map(|s| s.to_string()).collect())
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn the_right_password_passes_and_is_remembered_by_digest() {
        let a = auth(&[]);
        assert!(a.allows("/metrics", Some(&basic("alice:secret"))));
        assert_eq!(a.lock_passed().len(), 1);
        assert!(a.allows("/metrics", Some(&basic("alice:secret"))));
        assert_eq!(a.lock_passed().len(), 1, "the second check used the memory");
        // The scheme in any case; a password with a colon keeps it.
        assert!(a.allows("/", Some(&basic("alice:secret").replace("Basic", "bAsIc"))));
    }

    #[test]
    fn wrong_missing_or_malformed_credentials_fail_and_are_not_remembered() {
        let a = auth(&[]);
        for bad in [
            None,
            Some(basic("alice:wrong")),
            Some(basic("bob:secret")),
            Some(basic("alice")),
            Some("Bearer abc".to_string()),
            Some("Basic !!!not-base64".to_string()),
            Some(basic("alice:secret:")),
        ] {
            assert!(!a.allows("/metrics", bad.as_deref()), "{bad:?}");
        }
        assert!(a.lock_passed().is_empty());
    }

    #[test]
    fn excluded_paths_need_no_credentials_others_do() {
        let a = auth(&["/healthz"]);
        assert!(a.allows("/healthz", None));
        assert!(!a.allows("/metrics", None));
        assert!(!a.allows("/healthz/", None), "matched exactly");
    }

    #[test]
    fn only_bcrypt_hashes_are_users() {
        let ok = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze";
        assert!(is_bcrypt(ok));
        for bad in [
            "secret",
            "$1$abc$def",
            &ok.replace("$2y$10", "$2y$99"),
            &ok.replace("$2y", "$3y"),
            &ok[..59],
            &ok.replace('.', "!"),
            // A non-ASCII character in the cost (60 bytes in all) once panicked on a slice
            // that was no char boundary (issue 31).
            &format!("$2y$1é{}", &ok[7..]),
        ] {
            let users = BTreeMap::from([("alice".to_string(), bad.to_string())]);
            let err = Users::new(users).unwrap_err();
            assert!(
                matches!(&err, WebConfigError::NotBcrypt { user } if user == "alice"),
                "{err}"
            );
            assert!(
                err.to_string().contains("\"alice\" is not a bcrypt hash"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_decoy_is_a_bcrypt_hash_as_costly_as_the_users() {
        let a = auth(&[]);
        assert!(!a.allows("/", Some(&basic("nobody:"))));
        assert!(is_bcrypt(a.decoy()) && a.decoy().starts_with("$2b$04$"));
    }
}
