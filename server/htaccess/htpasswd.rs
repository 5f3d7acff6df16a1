//! Pure: the text of an htpasswd file (`AuthUserFile`) → its users and their hashes, and
//! checking a password against them, for every hash the real `htpasswd` (apache2-utils 2.4)
//! writes that can be verified safely:
//!
//! | `htpasswd` | hash | verified by |
//! | --- | --- | --- |
//! | `-B` | bcrypt `$2y$` (and `$2a$`, `$2b$`) | the `bcrypt` crate |
//! | `-m` (default) | Apache MD5 `$apr1$` (and the BSD `$1$`) | [`md5_crypt`](super::md5_crypt), by hand |
//! | `-2`, `-5` | SHA-256 / SHA-512 crypt `$5$`, `$6$` | the `sha-crypt` crate |
//! | `-s` | `{SHA}` (base64 of an unsalted SHA-1) | the `sha1` crate |
//!
//! A hash this server cannot verify safely is never a pass: DES `crypt` (`-d`: only the first
//! 8 characters count, cracked in minutes), plain text (`-p`: Apache on Unix refuses it too),
//! an unknown scheme, a damaged hash, or one so costly that each check would burn seconds of
//! CPU. Checking such a user's password gives [`Check::Unsupported`], which the caller turns
//! into an explained 500 whose fix is `htpasswd -B`. Comparisons are in constant time.
//!
//! The file itself must be well formed: a line that is not `user:hash` (comments with `#`
//! and blank lines aside) makes the whole file an error naming the line, rather than a line
//! silently skipped, as the rest of `.htaccess` support does.

use std::collections::HashMap;

use base64::Engine;
use sha_crypt::{PasswordVerifier, ShaCrypt};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::md5_crypt::Md5Crypt;

/// Highest bcrypt cost accepted: about half a second per check on this machine kind (cost 5,
/// `htpasswd`'s default, takes 2 ms; each step up doubles it). Every wrong guess costs the
/// server one check, so a file at cost 17 would let anyone slow it at will.
pub const MAX_BCRYPT_COST: u32 = 12;

/// Highest SHA-crypt round count accepted: about a fifth of a second per check here (the
/// default 5,000 takes 1 ms), for the same reason as [`MAX_BCRYPT_COST`].
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 1_000_000;

/// The users of one htpasswd file.
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, Entry>,
    /// A verifiable hash of the file, checked (and the answer thrown away) for an unknown
    /// user, so that an unknown name costs about as long as a wrong password.
    sample: Option<Hash>,
}

#[derive(Debug)]
struct Entry {
    line: usize,
    hash: Hash,
}

#[derive(Clone, Debug)]
enum Hash {
    Bcrypt(String),
    Md5(Md5Crypt),
    Sha1([u8; 20]),
    ShaCrypt(String),
    Unsupported(Unsupported),
}

/// Why a user's hash cannot be verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// DES `crypt` (`htpasswd -d`).
    Des,
    /// Plain text (`htpasswd -p`).
    Plain,
    /// `*…` or `!…`: a locked account, or what `crypt()` writes when it fails.
    Locked,
    /// A scheme this server does not know, by its prefix.
    Scheme(String),
    /// Too costly to check on every request.
    TooCostly(String),
    /// A known scheme, but the hash is damaged.
    Damaged(&'static str),
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsupported::Des => f.write_str(
                "a DES crypt hash (`htpasswd -d`), which keeps only the first 8 characters \
                 of a password and is cracked in minutes, so this server does not accept it",
            ),
            Unsupported::Plain => f.write_str(
                "a password stored as plain text (`htpasswd -p`), which this server does not \
                 accept (Apache on Unix does not either)",
            ),
            Unsupported::Locked => f.write_str(
                "a locked or failed hash (`*` or `!`; `htpasswd` writes `*0` when the hash \
                 could not be made)",
            ),
            Unsupported::Scheme(prefix) => write!(
                f,
                "a `{prefix}` hash, a scheme this server does not verify (it verifies bcrypt, \
                 Apache MD5 `$apr1$`, SHA-256/512 crypt and `{{SHA}}`)"
            ),
            Unsupported::TooCostly(what) => write!(
                f,
                "{what}: each check would take seconds of CPU, which would let anyone who \
                 guesses wrong slow the server"
            ),
            Unsupported::Damaged(scheme) => {
                write!(f, "a damaged {scheme} hash (wrong length or characters)")
            }
        }
    }
}

/// The answer for one user and password.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The password is right.
    Match,
    /// The password is wrong.
    Mismatch,
    /// The file has no such user.
    NoSuchUser,
    /// The user's hash (on `line`) cannot be verified: never a pass.
    Unsupported { line: usize, why: Unsupported },
}

/// A line that is not `user:hash`.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// Parses the text of an htpasswd file.
pub fn parse(text: &[u8]) -> Result<Htpasswd, ParseError> {
    let mut users: HashMap<String, Entry> = HashMap::new();
    let mut sample = None;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            continue;
        }
        let (user, hash) = split_line(trimmed).map_err(|problem| ParseError { line, problem })?;
        let hash = classify(hash);
        if sample.is_none() && !matches!(hash, Hash::Unsupported(_)) {
            sample = Some(hash.clone());
        }
        // Apache reads the file top down and stops at the first line for the user: the first
        // one wins.
        users.entry(user).or_insert(Entry { line, hash });
    }
    Ok(Htpasswd { users, sample })
}

/// `user:hash` → the two; the hash may itself hold colons.
fn split_line(line: &[u8]) -> Result<(String, &[u8]), String> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err("the line has no `:` between a user name and a hash".to_string());
    };
    let (user, hash) = (&line[..colon], &line[colon + 1..]);
    if user.is_empty() {
        return Err("the line has no user name before the `:`".to_string());
    }
    if hash.is_empty() {
        return Err("the line has no hash after the `:`".to_string());
    }
    let user = std::str::from_utf8(user)
        .map_err(|_| "the user name is not UTF-8".to_string())?
        .to_string();
    Ok((user, hash))
}

/// What kind of hash `bytes` is, checked as far as can be without a password.
fn classify(bytes: &[u8]) -> Hash {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Hash::Unsupported(Unsupported::Plain);
    };
    if ["$2y$", "$2a$", "$2b$"].iter().any(|p| text.starts_with(p)) {
        return bcrypt(text);
    }
    if text.starts_with("$apr1$") || text.starts_with("$1$") {
        return Md5Crypt::parse(text)
            .map_or(Hash::Unsupported(Unsupported::Damaged("MD5")), Hash::Md5);
    }
    if text.starts_with("$5$") || text.starts_with("$6$") {
        return sha_crypt(text);
    }
    if let Some(b64) = text.strip_prefix("{SHA}") {
        let digest = base64::engine::general_purpose::STANDARD.decode(b64).ok();
        return match digest.and_then(|d| <[u8; 20]>::try_from(d).ok()) {
            Some(d) => Hash::Sha1(d),
            None => Hash::Unsupported(Unsupported::Damaged("{SHA}")),
        };
    }
    Hash::Unsupported(unsupported(text))
}

/// Why a hash of no verifiable scheme is refused.
fn unsupported(text: &str) -> Unsupported {
    const CRYPT64: &str = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    if text.starts_with(['*', '!']) {
        Unsupported::Locked
    } else if text.len() == 13 && text.chars().all(|c| CRYPT64.contains(c)) {
        Unsupported::Des
    } else if let Some(rest) = text.strip_prefix('$') {
        let id = rest.split('$').next().unwrap_or_default();
        Unsupported::Scheme(format!("${id}$"))
    } else if text.starts_with('{') && text.contains('}') {
        let id = text.split('}').next().unwrap_or_default();
        Unsupported::Scheme(format!("{id}}}"))
    } else {
        Unsupported::Plain
    }
}

/// A bcrypt hash: `$2y$NN$` and 53 characters, at an acceptable cost.
fn bcrypt(text: &str) -> Hash {
    let cost = text
        .get(4..6)
        .filter(|_| text.len() == 60 && text.as_bytes()[6] == b'$')
        .and_then(|c| c.parse::<u32>().ok());
    match cost {
        Some(cost) if (4..=MAX_BCRYPT_COST).contains(&cost) => Hash::Bcrypt(text.to_string()),
        Some(cost) if cost > MAX_BCRYPT_COST => Hash::Unsupported(Unsupported::TooCostly(format!(
            "a bcrypt hash of cost {cost}, above the {MAX_BCRYPT_COST} this server allows"
        ))),
        _ => Hash::Unsupported(Unsupported::Damaged("bcrypt")),
    }
}

/// A SHA-crypt hash: `$5$` or `$6$`, optional `rounds=N$`, salt, `$`, checksum.
fn sha_crypt(text: &str) -> Hash {
    let rest = &text[3..];
    let Some(spec) = rest.strip_prefix("rounds=") else {
        return Hash::ShaCrypt(text.to_string());
    };
    let rounds = spec.split('$').next().and_then(|n| n.parse::<u32>().ok());
    match rounds {
        Some(n) if (1000..=MAX_SHA_CRYPT_ROUNDS).contains(&n) => Hash::ShaCrypt(text.to_string()),
        Some(n) if n > MAX_SHA_CRYPT_ROUNDS => Hash::Unsupported(Unsupported::TooCostly(format!(
            "a SHA-crypt hash of {n} rounds, above the {MAX_SHA_CRYPT_ROUNDS} this server allows"
        ))),
        _ => Hash::Unsupported(Unsupported::Damaged("SHA-crypt")),
    }
}

impl Htpasswd {
    /// Checks `password` for `user`. CPU-bound for the slow schemes (bcrypt, SHA-crypt): call
    /// it off the async threads.
    pub fn check(&self, user: &str, password: &[u8]) -> Check {
        let Some(entry) = self.users.get(user) else {
            if let Some(sample) = &self.sample {
                let _ = verify(sample, password);
            }
            return Check::NoSuchUser;
        };
        match verify(&entry.hash, password) {
            Ok(true) => Check::Match,
            Ok(false) => Check::Mismatch,
            Err(why) => Check::Unsupported {
                line: entry.line,
                why,
            },
        }
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }
}

/// Whether `password` gives `hash`.
fn verify(hash: &Hash, password: &[u8]) -> Result<bool, Unsupported> {
    match hash {
        // `verify` cuts the password at 72 bytes, as `htpasswd -B` did when it made the hash.
        Hash::Bcrypt(h) => bcrypt::verify(password, h).map_err(|_| Unsupported::Damaged("bcrypt")),
        Hash::Md5(h) => Ok(h.verify(password)),
        Hash::Sha1(d) => Ok(Sha1::digest(password).as_slice().ct_eq(d).into()),
        Hash::ShaCrypt(h) => match ShaCrypt::default().verify_password(password, h.as_str()) {
            Ok(()) => Ok(true),
            Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(_) => Err(Unsupported::Damaged("SHA-crypt")),
        },
        Hash::Unsupported(why) => Err(why.clone()),
    }
}

#[cfg(test)]
mod tests;
