//! The `.htaccess` side of a forecast, in the order a request meets it: a file that cannot be
//! used, access (for the [`Visitor`]), a login wanted, the rewrites and redirects of a plain
//! GET; each verdict names the file and line that decided ([`Chain::origin`]).

use std::net::IpAddr;

use yadokari_site::denial::Explanation;

use super::{Site, Verdict, Visitor, resolved};
use crate::htaccess::Refusal;
use crate::htaccess::access::{Asker, Decision, Require};
use crate::htaccess::chain::{Chain, Origin};
use crate::htaccess::context::{Context, FileTest};
use crate::htaccess::guard;
use crate::htaccess::rewrite::Outcome;
use crate::htaccess::rules::Rules;
use crate::url::UrlPath;

/// One pass over a URL: a verdict, or a rewrite to follow.
pub(super) enum Pass {
    Done(Verdict),
    Rewritten(UrlPath),
}

/// The `.htaccess` files on the path of `url`, then resolution.
pub(super) fn pass(
    site: &Site<'_>,
    url: &UrlPath,
    visitor: &Visitor<'_>,
    notes: &mut Vec<String>,
    ended: &mut bool,
) -> Pass {
    let Some(cache) = site.cache else {
        return Pass::Done(resolved(site, url, None));
    };
    let chain = match Chain::of(cache, site.jail, site.root, url) {
        Ok(chain) if chain.is_empty() => return Pass::Done(resolved(site, url, None)),
        Ok(chain) => chain,
        Err(broken) => return Pass::Done(refused(&Refusal::broken(&broken))),
    };
    let name = (!url.trailing_slash)
        .then(|| url.segments.last())
        .flatten()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let name = name.as_deref();
    let rules = chain.rules(name, "GET");
    if visitor.user.is_none() && depends_on_address(&rules) {
        notes.push(format!(
            "access here depends on the visitor's address; this is the verdict for {} from an address the rules do not name",
            visitor.called
        ));
    }
    let who = Asker {
        ip: visitor.ip,
        method: "GET",
        user: visitor.user,
    };
    let rest = |notes: &mut Vec<String>, ended: &mut bool| match moves(
        site, url, &chain, visitor, notes, ended,
    ) {
        Some(pass) => pass,
        None => Pass::Done(resolved(site, url, Some((&chain, &rules)))),
    };
    match guard::decide(&rules, &who) {
        Decision::Granted => rest(notes, ended),
        Decision::Denied => Pass::Done(closed(&chain, &rules, name, url, visitor)),
        Decision::NeedUser => {
            Pass::Done(login(&chain, &rules, name, || match rest(notes, ended) {
                Pass::Done(v) => v,
                Pass::Rewritten(next) => {
                    let f = super::forecast(site, &next, visitor);
                    notes.extend(f.notes);
                    f.verdict
                }
            }))
        }
    }
}

/// The verdict for a visitor who must log in: the login, with what a user let in gets
/// (`then`), or the misconfiguration of a directory that says no way to log in.
fn login(
    chain: &Chain,
    rules: &Rules,
    name: Option<&str>,
    then: impl FnOnce() -> Verdict,
) -> Verdict {
    let by = chain
        .origin(name, "GET", |r| r.lines.require)
        .map_or_else(|| "the .htaccess files".to_string(), |o| o.to_string());
    let asked = guard::need_user(chain, rules);
    let Some(realm) = asked.realm else {
        let why = Explanation {
            reason: sentence(&format!(
                "{by} requires a login, but the directory says no way to log in (`AuthType Basic` and `AuthUserFile`)."
            )),
            fix: asked.fix,
        };
        return Verdict::Refused { status: 500, why };
    };
    Verdict::Login {
        realm,
        by,
        then: Box::new(then()),
    }
}

/// Whether the access rules look at the client's address.
fn depends_on_address(rules: &Rules) -> bool {
    fn by_address(r: &Require) -> bool {
        match r {
            Require::Ip(_) | Require::Local => true,
            Require::Not(inner) => by_address(inner),
            Require::Every(rs) | Require::Any(rs) => rs.iter().any(by_address),
            _ => false,
        }
    }
    rules.compat.is_some() || rules.require.as_ref().is_some_and(by_address)
}

/// The refusal of a visitor the access rules deny, naming the line: the host rules' (their
/// `Deny` line first) when they fail, else the `Require` in force.
fn closed(
    chain: &Chain,
    rules: &Rules,
    name: Option<&str>,
    url: &UrlPath,
    visitor: &Visitor<'_>,
) -> Verdict {
    let hosts_fail = rules.compat.as_ref().is_some_and(|c| !c.passes(visitor.ip));
    let origin = if hosts_fail {
        chain.origin(name, "GET", |r| match (r.lines.compat, r.lines.deny) {
            (0, _) => 0,
            (compat, 0) => compat,
            (_, deny) => deny,
        })
    } else {
        chain.origin(name, "GET", |r| r.lines.require)
    };
    let by = origin.map_or_else(|| "the .htaccess files".to_string(), |o| o.to_string());
    Verdict::Refused {
        status: 403,
        why: Explanation {
            reason: sentence(&format!(
                "{by} closes `{}` to {}.",
                url.display(),
                visitor.called
            )),
            fix: "If it should be reachable, change that line (e.g. `Require all granted`, or add the visitor's address to `Require ip`).".into(),
        },
    }
}

/// What the rewrites and redirects do to a plain GET of `url`; `None`: nothing.
fn moves(
    site: &Site<'_>,
    url: &UrlPath,
    chain: &Chain,
    visitor: &Visitor<'_>,
    notes: &mut Vec<String>,
    ended: &mut bool,
) -> Option<Pass> {
    let path = url.display();
    let ctx = Plain {
        site,
        path: &path,
        ip: visitor.ip,
    };
    if !*ended && let Some((dir_url, rewrites)) = chain.rewrites() {
        let applied = rewrites.apply(&ctx, dir_url, &path, None);
        let by = rewrite_origin(chain, dir_url, applied.line);
        match applied.outcome {
            Outcome::Unchanged => notes.push(format!(
                "the rewrite rules in {dir_url}.htaccess leave a plain GET of {path} as it is; a request with a query string or other headers may be rewritten"
            )),
            Outcome::Internal { path: to, end, .. } => {
                *ended |= end;
                notes.push(format!(
                    "a plain GET of {path} is rewritten to {to} by {by}; a request with a query string or other headers may be rewritten otherwise"
                ));
                return Some(match crate::url::parse(&to) {
                    Ok(next) => Pass::Rewritten(next),
                    Err(e) => Pass::Done(Verdict::Refused {
                        status: 400,
                        why: Explanation {
                            reason: format!("{by} rewrites it to `{to}`: {e}."),
                            fix: "Correct the rule's substitution.".into(),
                        },
                    }),
                });
            }
            other => return Some(Pass::Done(moved(other, &by))),
        }
    }
    chain.levels.iter().rev().find_map(|level| {
        let r = level.file.redirects.apply(&ctx, &path, None)?;
        let by = Origin {
            level,
            line: r.line,
            text: level.file.line_text(r.line).unwrap_or(""),
        };
        Some(Pass::Done(moved(r.outcome, &by.to_string())))
    })
}

/// The verdict of a rule that answers the request itself.
fn moved(outcome: Outcome, by: &str) -> Verdict {
    let refused = |status: u16, reason: String, fix: &str| Verdict::Refused {
        status,
        why: Explanation {
            reason: sentence(&reason),
            fix: fix.to_string(),
        },
    };
    match outcome {
        Outcome::Redirect { status, location } => Verdict::Redirected {
            status,
            location,
            by: by.to_string(),
        },
        Outcome::Status(code) => refused(
            code,
            format!("{by} answers {code} for this URL (a rule's [F], [G] or a status)."),
            "Change that rule if this URL should be served.",
        ),
        Outcome::Refused { status, problem } => {
            refused(status, format!("{by}: {}", problem.problem), &problem.fix)
        }
        Outcome::Unchanged | Outcome::Internal { .. } => refused(
            500,
            format!("{by} gives no answer"),
            "Report this to the host.",
        ),
    }
}

/// The file of the rewrite rule on `line` (the deepest file with rules that has a rule there:
/// an inheriting file runs its parent's rules too).
fn rewrite_origin(chain: &Chain, dir_url: &str, line: Option<usize>) -> String {
    let found = line.and_then(|line| {
        let level = chain
            .levels
            .iter()
            .rev()
            .find(|l| l.file.rewrites.has_rule_at(line))?;
        Some(Origin {
            level,
            line,
            text: level.file.line_text(line).unwrap_or(""),
        })
    });
    match found {
        Some(origin) => origin.to_string(),
        None => format!("the rewrite rules of the .htaccess in {dir_url}"),
    }
}

/// A verdict from a `.htaccess` refusal.
fn refused(r: &Refusal) -> Verdict {
    Verdict::Refused {
        status: r.status.as_u16(),
        why: Explanation {
            reason: r.reason.clone(),
            fix: r.fix.clone(),
        },
    }
}

/// The name of the handler's line for a file named `name`, when a `.htaccess` gave it one.
pub(super) fn handler_origin(chain: &Chain, rules: &Rules, name: &str) -> Option<String> {
    rules.handler_for(name)?;
    let origin = if rules.set_handler.is_some() {
        chain.origin(Some(name), "GET", |r| r.lines.set_handler)
    } else {
        chain.origin(Some(name), "GET", |r| {
            r.added_handler(name).map_or(0, |(_, line)| line)
        })
    };
    origin.map(|o| o.to_string())
}

/// `text` with its first letter upper-case.
fn sentence(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A plain GET of a path, as the rewrite conditions see it: no query string, no headers.
struct Plain<'a> {
    site: &'a Site<'a>,
    path: &'a str,
    ip: IpAddr,
}

impl Context for Plain<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        let root = self.site.root;
        Some(match name {
            "REQUEST_URI" => self.path.to_string(),
            "REQUEST_FILENAME" | "SCRIPT_FILENAME" => root
                .join(self.path.trim_start_matches('/'))
                .display()
                .to_string(),
            "REQUEST_METHOD" => "GET".into(),
            "HTTPS" => "off".into(),
            "REQUEST_SCHEME" => "http".into(),
            "SERVER_PROTOCOL" => "HTTP/1.1".into(),
            "SERVER_SOFTWARE" => crate::version::server_software().into(),
            "REMOTE_ADDR" | "REMOTE_HOST" | "CONN_REMOTE_ADDR" => self.ip.to_string(),
            "DOCUMENT_ROOT" | "CONTEXT_DOCUMENT_ROOT" => root.display().to_string(),
            "QUERY_STRING" | "CONTEXT_PREFIX" | "PATH_INFO" => String::new(),
            "THE_REQUEST" => format!("GET {} HTTP/1.1", self.path),
            _ => return None,
        })
    }

    fn header(&self, _name: &str) -> Option<String> {
        None
    }

    fn file_test(&self, path: &str, test: FileTest) -> bool {
        crate::htaccess::context::test_in_site(self.site.jail, self.site.root, path, test)
    }
}
