//! `.htaccess`: the per-directory configuration a rental customer controls, in the subset of
//! Apache 2.4 (and the 2.2 forms old software still ships) that real files use.
//!
//! [`syntax`] splits a file into directives and sections; the directive families compile
//! their lines into typed values (a directive this server does not implement is a
//! [`Problem`], never a silently ignored line: an ignored `Require` would expose what it
//! protected). A file that does not compile makes everything under its directory a 500 naming
//! the file, the line, the directive and the fix, as Apache's "Invalid command" does, but
//! explained.

// Being built: the families are wired into the request path as they land.
#![allow(dead_code)]

pub mod access;
pub mod admission;
pub mod auth;
pub mod basic;
pub mod cache;
pub mod chain;
pub mod content;
pub mod context;
pub mod file;
pub mod guard;
pub mod headers;
pub mod htpasswd;
pub mod indexes;
pub mod location;
pub mod md5_crypt;
pub mod pattern;
pub mod redirect;
pub mod rewrite;
pub mod rules;
pub mod syntax;
pub mod user_file;
pub mod verdicts;
pub mod watch;

/// Why a directive cannot be used, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, in plain words.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    /// A problem with its fix.
    pub fn new(problem: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// How a `.htaccess` ends a request: refused by its rules, asking for credentials, or unusable.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// 403, 401, 500, ...
    pub status: http::StatusCode,
    /// A short name for the log (`htaccess_denied`, `htaccess_fault`, ...).
    pub code: &'static str,
    /// Why, in plain words, naming the file (and line) that decided.
    pub reason: String,
    /// What to do.
    pub fix: String,
    /// For a 401: the realm to ask credentials for.
    pub realm: Option<String>,
    /// For a 429: seconds until the client may try again.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// The `WWW-Authenticate` value of a 401: `Basic realm="..."`, the realm's quotes and
    /// backslashes escaped and control characters replaced (a realm is the customer's text).
    pub fn challenge(&self) -> Option<http::HeaderValue> {
        let realm = self.realm.as_ref()?;
        http::HeaderValue::from_str(&basic::challenge(realm)).ok()
    }

    /// A file that cannot be used: 500 for everything under its directory.
    pub fn broken(b: &cache::Broken) -> Refusal {
        let f = &b.fault;
        let at = match (f.line, f.directive.is_empty()) {
            (0, _) => b.path.clone(),
            (n, true) => format!("{}, line {n}", b.path),
            (n, false) => format!("{}, line {n} (`{}`)", b.path, f.directive),
        };
        Refusal {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            code: "htaccess_fault",
            reason: format!(
                "{at}: {}. Until it is fixed, everything in that directory is refused, so that nothing it protects is exposed.",
                f.problem.problem
            ),
            fix: capitalised(&f.problem.fix),
            realm: None,
            retry_after: None,
        }
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => {
            first.to_uppercase().chain(c).collect::<String>()
                + if s.ends_with('.') { "" } else { "." }
        }
        None => String::new(),
    }
}
