//! Recent [`Verdict`]s of the password check, so that a browser repeating the same
//! credentials for every image of a page costs neither a hash nor a ban.
//!
//! Why remember passes: a browser sends the credentials again with every request under the
//! protected directory, and a bcrypt check costs milliseconds (cost 5) to half a second
//! (cost 12) of CPU each time; Apache offers the same thing as `mod_authn_socache`.
//!
//! Why remember failures: browsers also send remembered credentials, unasked, to every path
//! below the one they were accepted for. Where a deeper directory uses another user file, each
//! request of a page would count as one more failed guess, and ten images would ban an honest
//! visitor. A repeat of the very same wrong credentials guesses nothing new, so it counts once
//! per failure window; a password-guessing client still sends a new guess each time and is
//! counted every time.
//!
//! An entry is keyed by a SHA-256 over a per-process random secret, the client address, the
//! exact version of the user file ([`FileKey`]: an edit starts afresh), the user and the
//! password, so no password is kept, not even as an unsalted hash. The table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::user_file::FileKey;

/// Most verdicts held; past it, the expired ones go, and if none had, all of them.
const CAPACITY: usize = 16_384;

/// What a check of one set of credentials concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The password was right.
    Passed,
    /// The user is unknown or the password wrong.
    Failed,
}

/// Which credentials, from where, against which file.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// The recent verdicts.
pub struct Verdicts {
    /// `None` when the kernel gave no random bytes: then nothing is remembered.
    secret: Option<[u8; 32]>,
    table: Mutex<HashMap<Fingerprint, (Instant, Verdict)>>,
}

impl Verdicts {
    /// An empty table with a fresh secret.
    pub fn new() -> Verdicts {
        let mut secret = [0u8; 32];
        let secret = yadokari_site::random::fill(&mut secret)
            .ok()
            .map(|()| secret);
        Verdicts {
            secret,
            table: Mutex::default(),
        }
    }

    /// The fingerprint of one attempt; `None` when nothing can be remembered.
    pub fn fingerprint(
        &self,
        client: IpAddr,
        file: FileKey,
        user: &str,
        password: &[u8],
    ) -> Option<Fingerprint> {
        let secret = self.secret?;
        let mut h = Sha256::new();
        h.update(secret);
        h.update(format!("{client}\0{file:?}\0").as_bytes());
        // Lengths first, so that no two (user, password) pairs run together the same way.
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update((password.len() as u64).to_le_bytes());
        h.update(password);
        Some(Fingerprint(h.finalize().into()))
    }

    /// The verdict remembered for `print`, if it has not expired.
    pub fn recall(&self, print: &Fingerprint, now: Instant) -> Option<Verdict> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table
            .get(print)
            .filter(|(until, _)| *until > now)
            .map(|(_, verdict)| *verdict)
    }

    /// Remembers `verdict` for `print` until `now + ttl`.
    pub fn remember(&self, print: Fingerprint, verdict: Verdict, now: Instant, ttl: Duration) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= CAPACITY {
            table.retain(|_, (until, _)| *until > now);
            if table.len() >= CAPACITY {
                table.clear();
            }
        }
        table.insert(print, (now + ttl, verdict));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FileKey {
        let st = nix::sys::stat::stat("/").expect("stat /");
        FileKey::of(&st)
    }

    #[test]
    fn a_verdict_is_recalled_until_it_expires_and_only_for_the_same_attempt() {
        let v = Verdicts::new();
        let ip: IpAddr = [192, 0, 2, 1].into();
        let print = v.fingerprint(ip, key(), "alice", b"pw").expect("secret");
        let now = Instant::now();
        assert_eq!(v.recall(&print, now), None);
        v.remember(print, Verdict::Failed, now, Duration::from_secs(10));
        assert_eq!(v.recall(&print, now), Some(Verdict::Failed));
        assert_eq!(v.recall(&print, now + Duration::from_secs(11)), None);
        for other in [
            v.fingerprint(ip, key(), "alice", b"pw2"),
            v.fingerprint(ip, key(), "alicep", b"w"),
            v.fingerprint([192, 0, 2, 2].into(), key(), "alice", b"pw"),
        ] {
            assert_eq!(v.recall(&other.expect("secret"), now), None);
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let v = Verdicts::new();
        let now = Instant::now();
        for i in 0..CAPACITY + 10 {
            let print = v
                .fingerprint([192, 0, 2, 1].into(), key(), &i.to_string(), b"")
                .expect("secret");
            v.remember(print, Verdict::Failed, now, Duration::from_secs(60));
        }
        let len = v.table.lock().map(|t| t.len()).unwrap_or(usize::MAX);
        assert!(len <= CAPACITY, "{len}");
    }
}
