//! What the `.htaccess` files on a request's path say before the file is looked for: refuse
//! (a broken file, access denied, credentials wanted), or go on with the rules in force and the
//! user who logged in. Access is decided first, as Apache's authorization phase comes before
//! its fixups (where rewrites run).

use std::net::IpAddr;
use std::path::Path;

use yadokari_site::Jail;

use super::Refusal;
use super::access::{Asker, Decision};
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
        chain: Chain,
        rules: Box<Rules>,
        user: Option<String>,
    },
    /// The request ends here.
    Refused(Box<Refusal>),
}

/// What the request brings.
pub struct Asking<'a> {
    pub url: &'a UrlPath,
    pub method: &'a str,
    pub peer: IpAddr,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
}

/// Applies the files on the path of `asking.url` in the site held by `jail` (root `root`).
pub fn admit(cache: &Cache, jail: &Jail, root: &Path, asking: &Asking<'_>) -> Admission {
    let chain = match Chain::of(cache, jail, root, asking.url) {
        Ok(chain) if chain.is_empty() => return Admission::Plain,
        Ok(chain) => chain,
        Err(broken) => return Admission::Refused(Box::new(Refusal::broken(&broken))),
    };
    let name = (!asking.url.trailing_slash)
        .then(|| asking.url.segments.last())
        .flatten()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let rules = chain.rules(name.as_deref(), asking.method);
    let mut who = Asker {
        ip: asking.peer,
        method: asking.method,
        user: None,
    };
    let path = shown(asking.url);
    let user = match guard::decide(&rules, &who) {
        Decision::Granted => None,
        Decision::Denied => return Admission::Refused(Box::new(guard::denied(&chain, &path))),
        Decision::NeedUser => {
            let refusal = guard::need_user(&chain, &rules);
            let Some(user) = logged_in(&rules, asking) else {
                return Admission::Refused(Box::new(refusal));
            };
            who.user = Some(&user);
            match guard::decide(&rules, &who) {
                Decision::Granted => Some(user),
                // A user who logged in but is not among those allowed: Apache asks again.
                _ => return Admission::Refused(Box::new(refusal)),
            }
        }
    };
    Admission::Go {
        chain,
        rules: Box::new(rules),
        user,
    }
}

/// The user the request's credentials prove, checked against the directory's user file.
fn logged_in(_rules: &Rules, _asking: &Asking<'_>) -> Option<String> {
    // Basic authentication is being built (htpasswd verification); until it lands nobody
    // logs in, so a protected directory stays closed.
    None
}

/// The URL path as a person reads it.
fn shown(url: &UrlPath) -> String {
    let mut s = String::new();
    for seg in &url.segments {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(seg));
    }
    if url.trailing_slash || s.is_empty() {
        s.push('/');
    }
    s
}
