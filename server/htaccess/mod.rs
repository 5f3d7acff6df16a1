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

pub mod auth;
pub mod basic;
pub mod htpasswd;
pub mod md5_crypt;
pub mod syntax;
pub mod user_file;
pub mod verdicts;

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
