//! Pure: which site a request is for. A rental server answers many customers' domains and
//! `/~name/` on any host (Apache's mod_userdir); every other host gets the default site, the
//! document root, as Apache's first virtual host does.
//!
//! [`Sites`] is built once per configuration: the customers' domains in a hash map (exact
//! names, and `*.example.org` wildcards by their suffix), their names for `/~name/`, and their
//! web roots. Routing a request is a lowercase of the host and one or two lookups, whatever the
//! number of customers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use yadokari_site::Jail;

/// The site one request is served from: its web root (held open as `jail`), the URL prefix it
/// is reached under (`/~alice`, or empty), and the `DOCUMENT_ROOT` scripts are told (for
/// `/~name/` the server's document root, as Apache sets it; otherwise the site's own root).
pub struct Served<'a> {
    /// The site's web root (CONTEXT_DOCUMENT_ROOT).
    pub root: &'a Path,
    /// The web root, held open.
    pub jail: &'a Jail,
    /// CONTEXT_PREFIX: `/~name` or empty.
    pub prefix: &'a str,
    /// DOCUMENT_ROOT.
    pub document_root: &'a Path,
    /// The customer whose site this is (index into the configuration's customers): the
    /// routed one, or for the default site the customer whose web root the document root is.
    pub customer: Option<usize>,
}

/// The sites a configuration serves besides the default one.
#[derive(Clone, Debug, Default)]
pub struct Sites {
    /// `/~name/` on any host.
    userdir: bool,
    /// Customer name → index into `roots`.
    names: HashMap<String, usize>,
    /// Exact domain → index.
    exact: HashMap<String, usize>,
    /// `*.example.org` → index, keyed by `example.org`.
    wildcard: HashMap<String, usize>,
    /// Each customer's web root, absolute.
    roots: Vec<PathBuf>,
    /// The customer whose web root is the document root (the shipped demo user), if any.
    default_owner: Option<usize>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// The default site (the document root), the whole path.
    Default,
    /// Customer `index`'s site, by its domain; the whole path.
    Domain(usize),
    /// Customer `index`'s site at `/~name/`: `prefix` (`/~name`) and the `rest` of the path
    /// (starting with `/`).
    UserDir {
        index: usize,
        prefix: &'a str,
        rest: &'a str,
    },
    /// `/~name` without its slash: redirect to add it.
    UserDirSlash,
    /// `/~name/` for nobody of that name.
    NoSuchUser,
}

/// Why a domain is refused.
pub fn check_domain(domain: &str) -> Result<String, String> {
    let d = domain.to_ascii_lowercase();
    let bare = d.strip_prefix("*.").unwrap_or(&d);
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(d)
    } else {
        Err(format!(
            "`{domain}` is not a domain name (letters, digits and -, dot-separated; `*.` may start it)"
        ))
    }
}

impl Sites {
    /// An empty table; `userdir` turns `/~name/` on.
    pub fn new(userdir: bool) -> Sites {
        Sites {
            userdir,
            ..Sites::default()
        }
    }

    /// Adds customer `name` with web root `root` and its `domains` (already checked and
    /// lowercased); returns a domain another customer has, if one does.
    pub fn add(&mut self, name: &str, root: PathBuf, domains: &[String]) -> Result<(), String> {
        let index = self.roots.len();
        self.roots.push(root);
        self.names.insert(name.to_string(), index);
        for d in domains {
            let (map, key) = match d.strip_prefix("*.") {
                Some(suffix) => (&mut self.wildcard, suffix.to_string()),
                None => (&mut self.exact, d.clone()),
            };
            if map.insert(key, index).is_some() {
                return Err(format!("the domain `{d}` is listed by two customers"));
            }
        }
        Ok(())
    }

    /// Makes the first customer whose web root is `document_root` the owner of the default
    /// site (their limits and logs apply to it).
    pub fn set_default(&mut self, document_root: &Path) {
        self.default_owner = self.roots.iter().position(|r| r == document_root);
    }

    /// The customer whose web root is the document root.
    pub fn default_owner(&self) -> Option<usize> {
        self.default_owner
    }

    /// Customer `index`'s web root.
    pub fn root(&self, index: usize) -> &PathBuf {
        &self.roots[index]
    }

    /// How many customer sites there are.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Where a request for `path` goes; `host` gives its host (any case, maybe with a port),
    /// looked at only when there are domains to match.
    pub fn route<'a, 'h>(
        &self,
        host: impl FnOnce() -> Option<&'h str>,
        path: &'a str,
    ) -> Route<'a> {
        if self.userdir
            && let Some(after) = path.strip_prefix("/~")
        {
            let (name, rest) = match after.find('/') {
                Some(slash) => (&after[..slash], &after[slash..]),
                None => (after, ""),
            };
            return match self.names.get(name) {
                None => Route::NoSuchUser,
                Some(_) if rest.is_empty() => Route::UserDirSlash,
                Some(&index) => Route::UserDir {
                    index,
                    prefix: &path[..2 + name.len()],
                    rest,
                },
            };
        }
        // No domains at all (a single-site server): nothing to look at, nothing allocated.
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return Route::Default;
        }
        let Some(host) = host().map(host_name) else {
            return Route::Default;
        };
        if let Some(&index) = self.exact.get(&host) {
            return Route::Domain(index);
        }
        // The longest matching wildcard wins: a.b.example.org tries b.example.org, then
        // example.org.
        let mut rest = host.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(&index) = self.wildcard.get(rest) {
                return Route::Domain(index);
            }
        }
        Route::Default
    }
}

/// The host without its port, lowercased (`ALICE.Example:8080` → `alice.example`).
fn host_name(host: &str) -> String {
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> Sites {
        let mut s = Sites::new(true);
        s.add("alice", "/h/alice".into(), &["alice.example".into()])
            .expect("alice");
        s.add(
            "bob",
            "/h/bob".into(),
            &["*.bob.example".into(), "bob.example".into()],
        )
        .expect("bob");
        s
    }

    #[test]
    fn hosts_and_userdirs_pick_the_site() {
        let s = sites();
        assert_eq!(s.route(|| Some("alice.example"), "/"), Route::Domain(0));
        assert_eq!(
            s.route(|| Some("ALICE.EXAMPLE:8080"), "/x"),
            Route::Domain(0)
        );
        assert_eq!(s.route(|| Some("alice.example."), "/"), Route::Domain(0));
        assert_eq!(s.route(|| Some("www.bob.example"), "/"), Route::Domain(1));
        assert_eq!(s.route(|| Some("a.b.bob.example"), "/"), Route::Domain(1));
        assert_eq!(s.route(|| Some("bob.example"), "/"), Route::Domain(1));
        assert_eq!(s.route(|| Some("other.example"), "/"), Route::Default);
        assert_eq!(s.route(|| None, "/"), Route::Default);
        assert_eq!(
            s.route(|| Some("other.example"), "/~alice/cgi-bin/x.cgi"),
            Route::UserDir {
                index: 0,
                prefix: "/~alice",
                rest: "/cgi-bin/x.cgi"
            }
        );
        assert_eq!(s.route(|| None, "/~alice"), Route::UserDirSlash);
        assert_eq!(s.route(|| None, "/~nobody/"), Route::NoSuchUser);
        let off = Sites::new(false);
        assert_eq!(off.route(|| None, "/~alice/"), Route::Default);
    }

    #[test]
    fn domains_are_checked_and_claimed_once() {
        assert_eq!(
            check_domain("Alice.Example").as_deref(),
            Ok("alice.example")
        );
        assert!(check_domain("*.example.org").is_ok());
        for bad in ["", "a b", "a/../b", "-a.example", "a..b", "*."] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
        let mut s = sites();
        assert!(
            s.add("eve", "/h/eve".into(), &["alice.example".into()])
                .is_err()
        );
    }
}
