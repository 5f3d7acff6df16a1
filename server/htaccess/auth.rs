//! The Basic-authentication check a request for a protected directory goes through
//! (`AuthType Basic`, `AuthName`, `AuthUserFile`, and a `Require` that needs a user): from
//! the request's `Authorization` header and address to an [`Outcome`] the service acts on.
//!
//! The steps, each in its own module: the home's jail finds and the cache parses the user file
//! ([`user_file`](super::user_file)), the header is read strictly ([`basic`](super::basic)),
//! the password is checked against the hash ([`htpasswd`](super::htpasswd)), recent verdicts
//! spare repeats ([`verdicts`](super::verdicts)), and failures are counted per address by the
//! same [`Defender`] the SFTP logins use: a failed attempt is answered only after a short
//! delay, and an address with too many failures is refused for a while.
//!
//! The file is looked at before the credentials, so a broken setup (a user file outside the
//! home, a malformed line) is an explained 500 on the first visit, not only after someone
//! types a password.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use yadokari_site::defender::Defender;

use super::Problem;
use super::basic::{self, Presented};
use super::htpasswd::{Check, Unsupported};
use super::user_file::{self, UserFiles};
use super::verdicts::{Verdict, Verdicts};

/// The bounds of Basic authentication; the defaults are those of SFTP logins.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A failed attempt is answered no sooner than this.
    pub delay: Duration,
    /// Failures from one address (within `failure_window`) before it is refused.
    pub max_failures: u32,
    /// The window in which failures are counted.
    pub failure_window: Duration,
    /// How long a refused address stays refused.
    pub ban: Duration,
    /// How long a right password is remembered without checking its hash again.
    pub remember_pass: Duration,
    /// Bytes of parsed user files kept, all sites together.
    pub cache_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            delay: Duration::from_millis(500),
            max_failures: 10,
            failure_window: Duration::from_secs(600),
            ban: Duration::from_secs(900),
            remember_pass: Duration::from_secs(300),
            cache_bytes: user_file::DEFAULT_CACHE_BYTES,
        }
    }
}

/// One request's try at a protected directory.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// `AuthName`.
    pub realm: String,
    /// `AuthUserFile`, as written.
    pub user_file: String,
    /// The customer's home (for the default site, the document root).
    pub home: PathBuf,
    /// The request's `Authorization` header, if any.
    pub authorization: Option<Vec<u8>>,
    /// The client's address.
    pub client: IpAddr,
}

/// What the request gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Through: `AUTH_TYPE=Basic` and `REMOTE_USER=user` for CGI.
    Authenticated { user: String },
    /// 401 with `WWW-Authenticate: `[`challenge`](Outcome::challenge): no credentials yet,
    /// or wrong ones.
    Challenge { realm: String },
    /// 429 with `Retry-After`: this address failed too often. Not 403: the refusal is
    /// temporary, and 429 says "come back later" to people and crawlers alike.
    Banned { retry_after: Duration },
    /// 500, explained: the protection is set up wrong, so nothing is let through.
    Misconfigured(Problem),
}

impl Outcome {
    /// The status of the answer (200 for `Authenticated`: the request goes on).
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Authenticated { .. } => StatusCode::OK,
            Outcome::Challenge { .. } => StatusCode::UNAUTHORIZED,
            Outcome::Banned { .. } => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `WWW-Authenticate` value of a `Challenge`.
    pub fn challenge(&self) -> Option<String> {
        match self {
            Outcome::Challenge { realm } => Some(basic::challenge(realm)),
            _ => None,
        }
    }

    /// The `Retry-After` seconds of a `Banned` (rounded up).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Outcome::Banned { retry_after } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            _ => None,
        }
    }
}

/// An [`Outcome`] and how long to wait before answering with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Settled {
    /// What the request gets.
    pub outcome: Outcome,
    /// Wait this long first (a failed attempt; zero otherwise).
    pub delay: Duration,
}

impl Settled {
    fn now(outcome: Outcome) -> Settled {
        Settled {
            outcome,
            delay: Duration::ZERO,
        }
    }
}

/// What the password check concluded, before counting and delay.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Pass(String),
    /// No Basic credentials: ask for them.
    Ask,
    /// Wrong credentials; `counted` is false for a repeat of the same ones.
    Fail {
        user: Option<String>,
        counted: bool,
    },
    Misconfigured(Problem),
}

/// Basic authentication for every site of the server.
pub struct BasicAuth {
    limits: Limits,
    files: UserFiles,
    verdicts: Verdicts,
    defender: Defender,
}

impl BasicAuth {
    /// Basic authentication with `limits`.
    pub fn new(limits: Limits) -> BasicAuth {
        BasicAuth {
            files: UserFiles::new(limits.cache_bytes),
            verdicts: Verdicts::new(),
            defender: Defender::new(limits.max_failures, limits.failure_window, limits.ban),
            limits,
        }
    }

    /// Checks `attempt`, on the blocking pool (file and hash work), and answers a failure
    /// only after [`Limits::delay`]. The way for async callers.
    pub async fn check(self: &Arc<Self>, attempt: Attempt) -> Outcome {
        let this = Arc::clone(self);
        // The request's span goes along, so the log lines of the check carry its fields.
        let span = tracing::Span::current();
        let settled =
            tokio::task::spawn_blocking(move || span.in_scope(|| this.check_blocking(&attempt)))
                .await;
        match settled {
            Ok(Settled { outcome, delay }) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                outcome
            }
            Err(e) => Outcome::Misconfigured(Problem::new(
                format!("the password check stopped unexpectedly: {e}"),
                "report this to the server's administrator",
            )),
        }
    }

    /// Checks `attempt` on this thread, which it may block for a hash (milliseconds, up to
    /// half a second at the costs allowed); the caller waits [`Settled::delay`] before
    /// answering. For callers already off the async threads.
    pub fn check_blocking(&self, attempt: &Attempt) -> Settled {
        // SECURITY: a refused address gets no answer about its credentials at all, right or
        // wrong, so the ban really stops the guessing.
        if let Some(retry_after) = self.defender.banned_for(attempt.client) {
            return Settled::now(Outcome::Banned { retry_after });
        }
        let realm = attempt.realm.clone();
        match self.decide(attempt) {
            Decision::Pass(user) => Settled::now(Outcome::Authenticated { user }),
            Decision::Ask => Settled::now(Outcome::Challenge { realm }),
            Decision::Fail { user, counted } => self.failed(attempt.client, realm, user, counted),
            Decision::Misconfigured(problem) => Settled::now(Outcome::Misconfigured(problem)),
        }
    }

    /// A failed attempt: counted, logged, and answered late (or refused, if it was one too many).
    fn failed(
        &self,
        client: IpAddr,
        realm: String,
        user: Option<String>,
        counted: bool,
    ) -> Settled {
        // SECURITY: the name comes from the client; Debug-format it so control characters
        // cannot forge log lines. The password is never logged.
        if counted {
            tracing::warn!(peer = %client, user = ?user, realm = ?realm, "basic authentication failed");
        } else {
            tracing::debug!(peer = %client, user = ?user, realm = ?realm, "basic authentication failed again (same credentials, not counted)");
        }
        if counted && self.defender.fail(client) {
            tracing::warn!(peer = %client, "too many failed passwords; address refused for a while");
            return Settled::now(Outcome::Banned {
                retry_after: self.limits.ban,
            });
        }
        Settled {
            outcome: Outcome::Challenge { realm },
            delay: self.limits.delay,
        }
    }

    /// The blocking part: the file, the header, the hash. No delay, no counting.
    fn decide(&self, attempt: &Attempt) -> Decision {
        let loaded = match self.files.load(&attempt.home, &attempt.user_file) {
            Ok(loaded) => loaded,
            Err(problem) => return Decision::Misconfigured(problem),
        };
        let creds = match basic::presented(attempt.authorization.as_deref()) {
            Presented::Nothing => return Decision::Ask,
            Presented::Malformed => {
                return Decision::Fail {
                    user: None,
                    counted: true,
                };
            }
            Presented::Basic(creds) => creds,
        };
        let now = Instant::now();
        let print =
            self.verdicts
                .fingerprint(attempt.client, loaded.key, &creds.user, &creds.password);
        match print.as_ref().and_then(|p| self.verdicts.recall(p, now)) {
            Some(Verdict::Passed) => return Decision::Pass(creds.user),
            Some(Verdict::Failed) => {
                return Decision::Fail {
                    user: Some(creds.user),
                    counted: false,
                };
            }
            None => {}
        }
        let (verdict, ttl) = match loaded.table.check(&creds.user, &creds.password) {
            Check::Match => (Verdict::Passed, self.limits.remember_pass),
            Check::Mismatch | Check::NoSuchUser => (Verdict::Failed, self.limits.failure_window),
            Check::Unsupported { line, why } => {
                return Decision::Misconfigured(unsupported(attempt, &creds.user, line, &why));
            }
        };
        if let Some(print) = print {
            self.verdicts.remember(print, verdict, now, ttl);
        }
        match verdict {
            Verdict::Passed => Decision::Pass(creds.user),
            Verdict::Failed => Decision::Fail {
                user: Some(creds.user),
                counted: true,
            },
        }
    }
}

/// The explained 500 for a user whose hash cannot be verified.
fn unsupported(attempt: &Attempt, user: &str, line: usize, why: &Unsupported) -> Problem {
    let file = &attempt.user_file;
    let user = user.escape_debug();
    Problem::new(
        format!("user `{user}` in `AuthUserFile {file}` (line {line}) has {why}"),
        format!("re-create the password with `htpasswd -B {file} {user}`"),
    )
}

#[cfg(test)]
mod tests;
