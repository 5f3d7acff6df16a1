//! The [`Defender`]: failed logins counted per address, and an address with too many of them
//! refused for a while (like SFTPGo's defender): at accept, and before a password is checked.
//!
//! It lives in the shared crate because two doors use it: SFTP password and key logins, and
//! the web side's Basic authentication (`.htaccess` `AuthUserFile`), where the issue asks for
//! failures to be "slowed and banned like SFTP logins". Each door holds its own instance (the
//! binary decides whether they share one); the rule is one copy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remembers failed logins per address and refuses an address with too many of them for a
/// while (like SFTPGo's defender).
pub struct Defender {
    max_failures: u32,
    window: Duration,
    ban: Duration,
    table: Mutex<HashMap<IpAddr, Record>>,
}

struct Record {
    failures: u32,
    first: Instant,
    banned_until: Option<Instant>,
}

impl Defender {
    /// Bans an address for `ban` once it fails `max_failures` times within `window`.
    pub fn new(max_failures: u32, window: Duration, ban: Duration) -> Defender {
        Defender {
            max_failures,
            window,
            ban,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` is refused right now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.get(&ip)
            .and_then(|r| r.banned_until)
            .is_some_and(|until| until > now)
    }

    /// How much longer `ip` is refused, if it is (for a `Retry-After`).
    pub fn banned_for(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.get(&ip)
            .and_then(|r| r.banned_until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Records a failure; returns whether `ip` is now banned.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() > 100_000 {
            // Bound the table: forget records whose window and ban are over.
            t.retain(|_, r| {
                now.duration_since(r.first) < self.window || r.banned_until.is_some_and(|u| u > now)
            });
        }
        let r = t.entry(ip).or_insert(Record {
            failures: 0,
            first: now,
            banned_until: None,
        });
        if now.duration_since(r.first) > self.window {
            r.failures = 0;
            r.first = now;
        }
        r.failures += 1;
        if r.failures >= self.max_failures {
            r.banned_until = Some(now + self.ban);
            r.failures = 0;
            r.first = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defender_bans_after_repeated_failures() {
        let d = Defender::new(3, Duration::from_secs(60), Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(!d.fail(ip));
        assert!(!d.fail(ip));
        assert!(!d.is_banned(ip));
        assert!(d.fail(ip));
        assert!(d.is_banned(ip));
        assert!(
            d.banned_for(ip)
                .is_some_and(|left| left <= Duration::from_secs(60))
        );
        assert!(!d.is_banned("192.0.2.2".parse().expect("ip")));
        assert_eq!(d.banned_for("192.0.2.2".parse().expect("ip")), None);
    }
}
