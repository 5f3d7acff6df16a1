//! What the `.htaccess` files on a request's path say before the file is looked for: refuse
//! (a broken file, access denied, credentials wanted), or go on with the rules in force and the
//! user who logged in. Access is decided first, as Apache's authorization phase comes before
//! its fixups (where rewrites run).

use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use yadokari_site::Jail;

use super::Refusal;
use super::access::{Asker, Decision};
use super::auth::{Attempt, BasicAuth, Outcome};
use super::cache::Cache;
use super::chain::Chain;
use super::guard;
use super::rules::Rules;
use crate::url::UrlPath;

/// The outcome of the `.htaccess` files for one request.
pub enum Admission {
    /// No file on the path: nothing to apply (the cheap common case).
    Plain,
    /// Go on with these rules (and the user who logged in, if any).
    Go {
        chain: Arc<Chain>,
        rules: Arc<Rules>,
        user: Option<String>,
    },
    /// The request ends here: a file on the path cannot be used, so no rules are in force.
    Refused(Box<Refusal>),
    /// The request ends here, refused by the rules in force (access, credentials), whose
    /// `ErrorDocument` and `Header always` lines still apply to the refusal, as in Apache.
    RefusedBy {
        refusal: Box<Refusal>,
        rules: Arc<Rules>,
    },
}

/// What the request brings, and where it is.
pub struct Asking<'a> {
    pub url: &'a UrlPath,
    pub method: &'a str,
    pub peer: IpAddr,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// The site's web root, held open, and its path.
    pub jail: &'a Jail,
    pub root: &'a Path,
    /// The customer's home, where an `AuthUserFile` must be (the document root for the
    /// default site).
    pub home: &'a Path,
    /// The server's directory indexes (`DirectoryIndex` in the files overrides them).
    pub index_files: &'a [String],
}

/// Applies the files on the path of `asking.url`.
pub async fn admit(cache: &Cache, auth: &Arc<BasicAuth>, asking: &Asking<'_>) -> Admission {
    let (jail, root) = (asking.jail, asking.root);
    let chain = match Chain::of(cache, jail, root, asking.url) {
        Ok(chain) if chain.is_empty() => return Admission::Plain,
        Ok(chain) => chain,
        Err(broken) => return Admission::Refused(Box::new(Refusal::broken(&broken))),
    };
    let name = file_name(&chain, asking);
    let rules = chain.merged(cache, name.as_deref(), asking.method);
    let mut who = Asker {
        ip: asking.peer,
        method: asking.method,
        user: None,
    };
    let path = asking.url.display();
    let user = match guard::decide(&rules, &who) {
        Decision::Granted => None,
        Decision::Denied => return refused_by(guard::denied(&chain, &path), rules),
        Decision::NeedUser => {
            let refusal = guard::need_user(&chain, &rules);
            let (Some(realm), Some(file)) = (&refusal.realm, &rules.auth_user_file) else {
                return refused_by(refusal, rules);
            };
            let attempt = Attempt {
                realm: realm.clone(),
                user_file: file.clone(),
                home: asking.home.to_path_buf(),
                authorization: asking.authorization.map(<[u8]>::to_vec),
                client: asking.peer,
            };
            let user = match auth.check(attempt).await {
                Outcome::Authenticated { user } => user,
                other => return refused_by(login_refusal(other, refusal), rules),
            };
            who.user = Some(&user);
            match guard::decide(&rules, &who) {
                Decision::Granted => Some(user),
                // A user who logged in but is not among those allowed: Apache asks again.
                _ => return refused_by(refusal, rules),
            }
        }
    };
    Admission::Go { chain, rules, user }
}

/// The name `<Files>` sections are matched against: that of the file the URL reaches, as
/// Apache matches the file it resolved. SECURITY: not simply the URL's last segment, or
/// `/admin.php/x` (a script with extra path) would escape `<Files "admin.php">`, and `/dir/`
/// the `<Files>` of its index. The walk stops at the first regular file (what follows is the
/// script's `PATH_INFO`); a directory asked for with its slash gives its index (the files'
/// `DirectoryIndex`, else the server's), `None` when it has none; a path that does not
/// exist gives its last segment (a rewrite may still send it elsewhere).
fn file_name(chain: &Chain, asking: &Asking<'_>) -> Option<String> {
    let url = asking.url;
    if chain.levels.iter().all(|l| l.file.files.is_empty()) {
        // No `<Files>` on the path: the name decides nothing, spare the walk.
        return (!url.trailing_slash)
            .then(|| url.segments.last().map(|s| lossy(s)))
            .flatten();
    }
    // The chain's walk already stopped at the first segment that is not a directory.
    if let Some(k) = chain.file_at {
        return url.segments.get(k).map(|s| lossy(s));
    }
    if !url.trailing_slash {
        return url.segments.last().map(|s| lossy(s));
    }
    let mut rel = std::path::PathBuf::new();
    for segment in &url.segments {
        rel.push(std::ffi::OsStr::from_bytes(segment));
    }
    let dir_rules = chain.rules(None, asking.method);
    let names = dir_rules
        .directory_index
        .as_deref()
        .unwrap_or(asking.index_files);
    names
        .iter()
        .find(|n| !n.contains('/') && asking.jail.stat(&rel.join(n)).is_ok())
        .cloned()
}

fn lossy(segment: &[u8]) -> String {
    String::from_utf8_lossy(segment).into_owned()
}

fn refused_by(refusal: Refusal, rules: Arc<Rules>) -> Admission {
    Admission::RefusedBy {
        refusal: Box::new(refusal),
        rules,
    }
}

/// The refusal for a login that did not succeed: the challenge again, a ban, or a user file
/// that cannot be used.
fn login_refusal(outcome: Outcome, challenge: Refusal) -> Refusal {
    match outcome {
        Outcome::Banned { retry_after } => Refusal {
            status: http::StatusCode::TOO_MANY_REQUESTS,
            code: "htaccess_banned",
            reason: "Too many failed logins came from this address; it is refused for a while."
                .into(),
            fix: "Wait, then log in with the right password.".into(),
            realm: None,
            retry_after: Some(retry_after.as_secs().max(1)),
        },
        Outcome::Misconfigured(p) => Refusal {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            code: "htaccess_user_file",
            reason: format!("{}.", p.problem.trim_end_matches('.')),
            fix: p.fix,
            realm: None,
            retry_after: None,
        },
        Outcome::Challenge { .. } | Outcome::Authenticated { .. } => challenge,
    }
}
