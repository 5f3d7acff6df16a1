//! The panel's logins: a random token per login, kept in memory and sent as an `HttpOnly`,
//! `SameSite=Strict` cookie, with a second random token for the forms (CSRF) that a page
//! carries in a hidden field. A session ends when its customer logs out or after
//! [`IDLE`] without a request; at most [`MAX_SESSIONS`] are held (the oldest goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A session not used for this long has ended.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// Sessions held at most, all customers together.
const MAX_SESSIONS: usize = 10_000;
/// Sessions of one customer at most (a new login ends their oldest).
const MAX_PER_USER: usize = 20;
/// The cookie's name.
pub const COOKIE: &str = "yadokari_panel";

/// One login.
#[derive(Clone, Debug)]
pub struct Session {
    /// The customer.
    pub user: String,
    /// The token every form must carry.
    pub csrf: String,
    seen: Instant,
}

/// The sessions, by cookie token.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `user`; its cookie token.
    pub fn start(&self, user: &str) -> Result<String, String> {
        let cookie = token()?;
        let session = Session {
            user: user.to_string(),
            csrf: token()?,
            seen: Instant::now(),
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.seen.elapsed() < IDLE);
        let theirs = map.values().filter(|s| s.user == user).count();
        if theirs >= MAX_PER_USER
            && let Some(oldest) = map
                .iter()
                .filter(|(_, s)| s.user == user)
                .min_by_key(|(_, s)| s.seen)
                .map(|(t, _)| t.clone())
        {
            map.remove(&oldest);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(t, _)| t.clone())
        {
            map.remove(&oldest);
        }
        map.insert(cookie.clone(), session);
        Ok(cookie)
    }

    /// The session of `token`, if it has not ended; a request of the customer's renews it
    /// (`renew`; not the page's own refreshes, or an open tab would never let it end).
    pub fn get(&self, token: &str, renew: bool) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get_mut(token)?;
        if s.seen.elapsed() >= IDLE {
            map.remove(token);
            return None;
        }
        if renew {
            s.seen = Instant::now();
        }
        Some(s.clone())
    }

    /// Ends every session of `user` but `keep` (their password changed).
    pub fn end_others(&self, user: &str, keep: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|t, s| s.user != user || t == keep);
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

/// 32 random bytes, hex.
fn token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    yadokari_site::random::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `given` is the session's form token (compared in constant time).
pub fn csrf_ok(session: &Session, given: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    !session.csrf.is_empty() && bool::from(session.csrf.as_bytes().ct_eq(given))
}

/// The panel's cookie token in a `Cookie` header, if there is one.
pub fn cookie_token(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_renew_and_end() {
        let sessions = Sessions::default();
        let token = sessions.start("alice").unwrap();
        let s = sessions.get(&token, true).unwrap();
        assert_eq!(s.user, "alice");
        assert!(csrf_ok(&s, s.csrf.as_bytes()));
        assert!(!csrf_ok(&s, b"guess"));
        assert!(sessions.get("nope", true).is_none());
        let other = sessions.start("alice").unwrap();
        sessions.end_others("alice", &token);
        assert!(sessions.get(&other, true).is_none());
        sessions.end(&token);
        assert!(sessions.get(&token, true).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie_token("a=1; yadokari_panel=abc; b=2"), Some("abc"));
        assert_eq!(cookie_token("a=1"), None);
    }
}
