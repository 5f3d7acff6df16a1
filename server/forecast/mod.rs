//! What the server would do with a URL of a site, decided without a request, through the very
//! steps a request goes through: the `.htaccess` files on its path (a file that cannot be used,
//! access, a login wanted, the redirects and rewrites a plain GET meets), then resolution and
//! the permission gate, then whether a script would really start (`cgi::predict`).
//!
//! `yadokari explain`, the SFTP transfer log and the directory listings all ask here, so they
//! never disagree with each other or with a request; and each names the `.htaccess` file and
//! line that decided, which a request's error page cannot always do. Access is decided for a
//! [`Visitor`]: the listings ask for the visitor who asked for the listing, `explain` and the
//! transfer log for [`Visitor::ANYONE`] (no login, an address no rule is likely to name).
//! Rewrites depend on the request (its query string, its headers); what is foreseen is a plain
//! GET, and the verdict says so.

mod per_dir;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use yadokari_site::denial::Explanation;
use yadokari_site::{Denial, Jail};

use crate::config::Config;
use crate::htaccess::cache::Cache;
use crate::htaccess::chain::Chain;
use crate::htaccess::rules::Rules;
use crate::listing::Listings;
use crate::resolve::{self, Resolution, Scope};
use crate::url::UrlPath;

/// The site a URL is foreseen in.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    pub config: &'a Config,
    /// The compiled `.htaccess` files (`None`: the server does not read them).
    pub cache: Option<&'a Cache>,
    /// The web root, held open, and its path.
    pub jail: &'a Jail,
    pub root: &'a Path,
    /// Judge the file asked about as if it had these permission bits (see
    /// [`crate::resolve::Scope::proposed_mode`]).
    pub proposed_mode: Option<u32>,
}

/// Who asks, for the access rules.
#[derive(Clone, Copy, Debug)]
pub struct Visitor<'a> {
    pub ip: IpAddr,
    /// The user who logged in (Basic authentication), if any.
    pub user: Option<&'a str>,
    /// How messages call this visitor.
    pub called: &'a str,
}

impl Visitor<'static> {
    /// A visitor with no login, from 192.0.2.1 (TEST-NET-1, an address for documentation:
    /// no `Require ip` or `Allow from` names it unless it names everyone).
    pub const ANYONE: Visitor<'static> = Visitor {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        user: None,
        called: "a visitor with no login",
    };
}

/// What the server would do.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Nothing there (404).
    NotFound,
    /// A directory named without its slash: redirected (301) to add it.
    AddSlash,
    /// Sent as a static file; `by` names the `.htaccess` line that made it one, if any.
    Served { rel: String, by: Option<String> },
    /// A directory listing is sent (`Options +Indexes`, said by `by`).
    Listed { by: String },
    /// Run as a CGI script, through `interpreter` for a handler file; `by` names the
    /// `.htaccess` line that made it a script, if any.
    Runs {
        rel: String,
        interpreter: Option<PathBuf>,
        by: Option<String>,
    },
    /// The gate lets the script run, but it will fail to start.
    Fails { status: u16, why: Explanation },
    /// Refused with this status, why and the fix (naming the `.htaccess` line when one
    /// decided).
    Refused { status: u16, why: Explanation },
    /// Redirected to `location` by a `.htaccess` line.
    Redirected {
        status: u16,
        location: String,
        by: String,
    },
    /// A login is asked for (401) first, by `by`; `then` is what a user who may enter gets.
    Login {
        realm: String,
        by: String,
        then: Box<Verdict>,
    },
    /// The server cannot open it (500).
    Fault { path: String, error: String },
}

/// A [`Verdict`] with the notes that come with it (a rewrite on the way, what depends on the
/// request).
#[derive(Clone, Debug)]
pub struct Forecast {
    pub verdict: Verdict,
    pub notes: Vec<String>,
}

impl Verdict {
    /// Whether the file is served or run (after a login, for a login).
    pub fn works(&self) -> bool {
        match self {
            Verdict::Served { .. }
            | Verdict::Listed { .. }
            | Verdict::Runs { .. }
            | Verdict::AddSlash
            | Verdict::Redirected { .. } => true,
            Verdict::Login { then, .. } => then.works(),
            _ => false,
        }
    }

    /// The verdict in one line, as the transfer log prints it: "served as a static file",
    /// "runs as a CGI script (...)", "refused (500): why Fix: fix".
    pub fn line(&self) -> String {
        let by = |by: &Option<String>| by.as_ref().map_or(String::new(), |b| format!(", by {b}"));
        match self {
            Verdict::NotFound => "not found (404)".into(),
            Verdict::AddSlash => "a directory".into(),
            Verdict::Served { by: b, .. } => format!("served as a static file{}", by(b)),
            Verdict::Listed { by } => format!("listed (a directory listing, by {by})"),
            Verdict::Runs {
                interpreter, by: b, ..
            } => match interpreter {
                Some(i) => format!("runs as a CGI script through {}{}", i.display(), by(b)),
                None => format!("runs as a CGI script{}", by(b)),
            },
            Verdict::Fails { status, why } | Verdict::Refused { status, why } => {
                format!("refused ({status}): {} Fix: {}", why.reason, why.fix)
            }
            Verdict::Redirected {
                status,
                location,
                by,
            } => format!("redirected ({status}) to {location} by {by}"),
            Verdict::Login { realm, by, then } => format!(
                "asks for a login (401, realm \"{realm}\") by {by}; with an allowed login: {}",
                then.line()
            ),
            Verdict::Fault { path, error } => format!("the server cannot open {path}: {error}"),
        }
    }
}

/// The most rewrites followed, as a request follows them.
const MAX_REWRITES: usize = 10;

/// What the server would do with a plain GET of `url` in `site`, from `visitor`.
pub fn forecast(site: &Site<'_>, url: &UrlPath, visitor: &Visitor<'_>) -> Forecast {
    let mut notes = Vec::new();
    let mut url = url.clone();
    let mut ended = false;
    for _ in 0..=MAX_REWRITES {
        match per_dir::pass(site, &url, visitor, &mut notes, &mut ended) {
            per_dir::Pass::Done(verdict) => return Forecast { verdict, notes },
            per_dir::Pass::Rewritten(next) => url = next,
        }
    }
    let why = Explanation {
        reason: format!(
            "The rewrite rules send `{}` on more than {MAX_REWRITES} times.",
            url.display()
        ),
        fix: "Add a condition or `[L]`/`[END]` so that the rules stop.".into(),
    };
    Forecast {
        verdict: Verdict::Refused { status: 500, why },
        notes,
    }
}

/// What resolution and the gate decide for `url`, with the `.htaccess` rules in force (and
/// the chain that made them, to name lines).
fn resolved(site: &Site<'_>, url: &UrlPath, per_dir: Option<(&Chain, &Rules)>) -> Verdict {
    let rules = per_dir.map(|(_, r)| r);
    let scope = Scope {
        config: site.config,
        rules,
        proposed_mode: site.proposed_mode,
    };
    let name = url
        .segments
        .last()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let said_handler = || {
        let (chain, rules) = per_dir?;
        per_dir::handler_origin(chain, rules, name.as_deref()?)
    };
    match resolve::resolve_in(site.jail, url, scope) {
        Resolution::NotFound => Verdict::NotFound,
        Resolution::AddSlash => Verdict::AddSlash,
        Resolution::Fault { path, error } => Verdict::Fault {
            path,
            error: error.to_string(),
        },
        Resolution::Static(file) => Verdict::Served {
            rel: file.rel.to_string_lossy().into_owned(),
            by: said_handler(),
        },
        Resolution::Script(script) => {
            let rel = script.rel.to_string_lossy().into_owned();
            match crate::cgi::predict::predict(site.config, site.root, site.jail, &script) {
                Some(failure) => {
                    let (status, why) = failure.explain(&rel);
                    Verdict::Fails {
                        status: status.as_u16(),
                        why,
                    }
                }
                None => Verdict::Runs {
                    rel,
                    interpreter: script.interpreter.clone(),
                    by: said_handler(),
                },
            }
        }
        Resolution::Denied { denial, path } => denied(site, url, per_dir, denial, &path),
    }
}

/// A refusal of the gate, or the listing `Options +Indexes` asks for in its place.
fn denied(
    site: &Site<'_>,
    url: &UrlPath,
    per_dir: Option<(&Chain, &Rules)>,
    denial: Denial,
    path: &str,
) -> Verdict {
    let origin = |said: fn(&Rules) -> usize| {
        let (chain, _) = per_dir?;
        let name = url.segments.last().map(|s| String::from_utf8_lossy(s));
        let name = name.as_deref().filter(|_| !url.trailing_slash);
        chain.origin(name, "GET", said).map(|o| o.to_string())
    };
    if denial == Denial::NoIndex {
        let by = origin(|r| r.lines.indexes);
        match crate::listing::permitted(per_dir.map(|(_, r)| r), site.config) {
            Listings::NotAsked => {}
            Listings::On => {
                return Verdict::Listed {
                    by: by.unwrap_or_else(|| "a .htaccess on the path".into()),
                };
            }
            Listings::Off => {
                let refusal = crate::listing::off(&url.display(), by.as_deref());
                return Verdict::Refused {
                    status: refusal.status.as_u16(),
                    why: Explanation {
                        reason: refusal.reason,
                        fix: refusal.fix,
                    },
                };
            }
        }
    }
    let mut why = resolve::explain(&denial, path, site.config);
    if denial == Denial::ExecCgiOff
        && let Some(by) = origin(|r| r.lines.exec_cgi)
    {
        why.reason = format!("`{path}` is a script, and {by} turns scripts off here.");
    }
    Verdict::Refused {
        status: denial.status(),
        why,
    }
}
