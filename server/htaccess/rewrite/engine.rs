//! One pass of a directory's rules over a request: Apache's `apply_rewrite_list` (rules in
//! order, conditions after the pattern, `C`, `S`, `L`, `END`, `PT`) and the per-directory end
//! of `hook_fixup` (the directory prefix put back, `RewriteBase`, redirect or internal
//! rewrite, the escaping of a redirect target, the refusals).

use super::super::Problem;
use super::super::location;
use super::flags::{EnvFlag, RuleFlags};
use super::template::Scope;
use super::{Applied, Context, Outcome, Rewrites, Rule, groups};

/// Longest rewritten path: Apache stops at twice its request-line limit, which catches a
/// rule that grows the path on every pass.
const MAX_PATH: usize = 2 * 8190;

/// The URL being rewritten, in the three forms Apache's per-directory engine tells apart.
enum Uri {
    /// Below this directory, its prefix stripped (the request, or a relative substitution):
    /// rules match it as it is, and the prefix (or `RewriteBase`) goes back on at the end.
    Relative(String),
    /// An absolute URL path from a substitution: later rules match all of it.
    Path(String),
    /// An absolute URL: a redirect, unless a later rule rewrites it again.
    Url(String),
}

impl Uri {
    fn as_str(&self) -> &str {
        match self {
            Uri::Relative(s) | Uri::Path(s) | Uri::Url(s) => s,
        }
    }
}

/// What one rule did.
enum Step {
    NoMatch,
    Matched,
    Stop(Outcome),
}

struct Pass<'a> {
    rewrites: &'a Rewrites,
    dir_url: &'a str,
    uri: Uri,
    scope: Scope<'a>,
    /// A substitution changed the URL (as opposed to `-` rules only).
    changed: bool,
    noescape: bool,
    redirect: Option<u16>,
    line: Option<usize>,
    vary: Vec<String>,
    end: bool,
}

/// Runs the rules of `rewrites` (the directory at `dir_url`) over `path` and `query`.
pub fn apply(
    rewrites: &Rewrites,
    ctx: &dyn Context,
    dir_url: &str,
    path: &str,
    query: Option<&str>,
) -> Applied {
    let mut applied = Applied {
        outcome: Outcome::Unchanged,
        env: Vec::new(),
        vary: Vec::new(),
        line: None,
    };
    if rewrites.engine != Some(true) || rewrites.rules.is_empty() {
        return applied;
    }
    // A request for the directory without its slash is left alone, so that the server's
    // trailing-slash redirect happens first (Apache, unless `RewriteOptions AllowNoSlash`).
    let no_slash = dir_url.len() > 1 && dir_url.strip_suffix('/') == Some(path);
    if no_slash && !rewrites.options.is_some_and(|o| o.allow_no_slash) {
        return applied;
    }
    let uri = match path.strip_prefix(dir_url) {
        Some(rest) => Uri::Relative(rest.to_string()),
        None if no_slash => Uri::Relative(String::new()),
        None => Uri::Path(path.to_string()),
    };
    let mut pass = Pass {
        rewrites,
        dir_url,
        uri,
        scope: Scope {
            ctx,
            rule: Vec::new(),
            cond: Vec::new(),
            query: query.map(str::to_string),
            env: Vec::new(),
            headers: Vec::new(),
        },
        changed: false,
        noescape: false,
        redirect: None,
        line: None,
        vary: Vec::new(),
        end: false,
    };
    let stopped = pass.run();
    applied.outcome = match stopped {
        Some(outcome) => outcome,
        None => pass.finish(path, query),
    };
    applied.env = std::mem::take(&mut pass.scope.env);
    applied.vary = pass.vary;
    applied.line = pass.line;
    applied
}

impl Pass<'_> {
    /// The rules in order; `Some` when one of them ends the request (F, G, a refusal).
    fn run(&mut self) -> Option<Outcome> {
        let rules = &self.rewrites.rules;
        let mut i = 0;
        while i < rules.len() {
            let rule = &rules[i];
            match self.rule(rule) {
                Step::NoMatch => {
                    // A rule chained to the next (`C`) that does not match skips the chain.
                    while i < rules.len() && rules[i].flags.chain {
                        i += 1;
                    }
                }
                Step::Stop(outcome) => {
                    self.line = Some(rule.line);
                    return Some(outcome);
                }
                Step::Matched => {
                    let f = &rule.flags;
                    if f.end {
                        self.end = true;
                        break;
                    }
                    // PT means nothing per directory except that it stops, as L does.
                    if f.last || f.passthrough {
                        break;
                    }
                    i += f.skip;
                }
            }
            i += 1;
        }
        None
    }

    /// Applies one rule: pattern, then conditions, then substitution and flags.
    fn rule(&mut self, rule: &Rule) -> Step {
        let caps = rule.pattern.captures(self.uri.as_str());
        if caps.is_some() == rule.negate {
            return Step::NoMatch;
        }
        self.scope.rule = caps.as_ref().map(groups).unwrap_or_default();
        self.scope.cond = Vec::new();
        let read_before = self.scope.headers.len();
        if !self.conditions(rule) {
            self.scope.headers.truncate(read_before);
            return Step::NoMatch;
        }
        for name in self.scope.headers.drain(read_before..) {
            if !self.vary.iter().any(|v| v.eq_ignore_ascii_case(&name)) {
                self.vary.push(name);
            }
        }
        let expanded = rule
            .substitution
            .as_ref()
            .filter(|_| rule.flags.status.is_none())
            .map(|t| t.expand(&mut self.scope, rule.flags.escaping.as_ref()));
        self.set_env(&rule.flags);
        if let Some(status) = rule.flags.status {
            return Step::Stop(Outcome::Status(status));
        }
        let Some(expanded) = expanded else {
            return Step::Matched;
        };
        let split = match rule.flags.qsl {
            true => expanded.text.rfind('?'),
            false => expanded.text.find('?'),
        };
        if split.is_some_and(|q| expanded.unsafe_qmarks.contains(&q)) && !rule.flags.allow_3f {
            return Step::Stop(refused(
                403,
                rule,
                "a `?` that came from the request (an encoded %3F) would start the query string",
                "add the UnsafeAllow3F flag if that is intended, or the B flag to keep it escaped",
            ));
        }
        self.substitute(rule, expanded.text, split);
        Step::Matched
    }

    /// The rule's conditions, with `[OR]` chains (Apache's loop in `apply_rewrite_rule`).
    fn conditions(&mut self, rule: &Rule) -> bool {
        let conds = &rule.conditions;
        let mut k = 0;
        while k < conds.len() {
            let c = &conds[k];
            let read_before = self.scope.headers.len();
            let ok = c.holds(&mut self.scope);
            if c.flags.no_vary {
                self.scope.headers.truncate(read_before);
            }
            if c.flags.or_next {
                if ok {
                    // The rest of the OR chain need not be tested.
                    while k < conds.len() && conds[k].flags.or_next {
                        k += 1;
                    }
                }
            } else if !ok {
                return false;
            }
            k += 1;
        }
        true
    }

    fn set_env(&mut self, flags: &RuleFlags) {
        for e in &flags.env {
            let entry = match e {
                EnvFlag::Set(name, value) => {
                    let text = value.expand(&mut self.scope, None).text;
                    (name.clone(), Some(text))
                }
                EnvFlag::Unset(name) => (name.clone(), None),
            };
            self.scope.env.push(entry);
        }
    }

    /// The new URL of a matching rule, with its query split off (`splitout_queryargs`).
    fn substitute(&mut self, rule: &Rule, mut text: String, split: Option<usize>) {
        let f = &rule.flags;
        if f.qsd {
            self.scope.query = None;
        }
        if let Some(q) = split {
            let new = text[q + 1..].to_string();
            text.truncate(q);
            let old = self.scope.query.take();
            let query = match (f.qsa, old) {
                (true, old) if new.is_empty() => old,
                (true, Some(old)) => Some(format!("{new}&{old}")),
                (_, _) => Some(new),
            };
            self.scope.query = query
                .map(|q| q.strip_suffix('&').map(str::to_string).unwrap_or(q))
                .filter(|q| !q.is_empty());
        }
        let uri = if location::scheme_len(&text).is_some() {
            Uri::Url(text)
        } else if text.starts_with('/') {
            // Apache merges leading slashes a back-reference brought in, not written ones.
            let slashes = text.len() - text.trim_start_matches('/').len();
            match rule.literal_slashes {
                false if slashes > 1 => Uri::Path(text[slashes - 1..].to_string()),
                _ => Uri::Path(text),
            }
        } else {
            Uri::Relative(text)
        };
        self.uri = match (f.redirect, uri) {
            (Some(status), uri) => {
                self.redirect = Some(status);
                Uri::Url(self.qualify(uri))
            }
            // A URL on this very server without [R] is a local path (`reduce_uri`).
            (None, Uri::Url(url)) => match location::own_path(self.scope.ctx, &url) {
                Some(path) => Uri::Path(path),
                None => Uri::Url(url),
            },
            (None, uri) => uri,
        };
        self.changed = true;
        self.noescape = f.noescape;
        self.line = Some(rule.line);
    }

    /// The URL path of a local result: a relative one under `RewriteBase` or the directory.
    fn local(&self, uri: &Uri) -> String {
        match uri {
            Uri::Relative(rest) => {
                let base = self.rewrites.base.as_deref().unwrap_or(self.dir_url);
                format!("{base}{rest}")
            }
            Uri::Path(p) | Uri::Url(p) => p.clone(),
        }
    }

    fn qualify(&self, uri: Uri) -> String {
        match uri {
            Uri::Url(url) => url,
            local => location::qualify(self.scope.ctx, &self.local(&local)),
        }
    }

    /// What the pass comes to once every rule has had its turn (the end of `hook_fixup`).
    fn finish(&mut self, path: &str, query: Option<&str>) -> Outcome {
        if !self.changed {
            return Outcome::Unchanged;
        }
        let new_query = self.scope.query.take();
        if let Uri::Url(url) = &self.uri {
            return self.redirect_to(url, new_query, query);
        }
        let new_path = self.local(&self.uri);
        if let Some(bad) = bad_query(new_query.as_deref()) {
            return bad;
        }
        if new_path.len() > MAX_PATH {
            return Outcome::Refused {
                status: 500,
                problem: Problem::new(
                    format!("the rewritten path is longer than {MAX_PATH} bytes"),
                    "a rule probably adds to the path on every pass: add a condition that stops it",
                ),
            };
        }
        if new_path == path {
            // Rewritten to itself: routing it again would loop (Apache: "initial URL equal
            // rewritten URL"); a changed query still applies, without another pass.
            return match new_query.as_deref() == query {
                true => Outcome::Unchanged,
                false => Outcome::Internal {
                    path: new_path,
                    query: new_query,
                    end: true,
                },
            };
        }
        Outcome::Internal {
            path: new_path,
            query: new_query,
            end: self.end,
        }
    }

    fn redirect_to(&self, url: &str, new_query: Option<String>, old: Option<&str>) -> Outcome {
        let mut location = match self.noescape {
            true => url.to_string(),
            false => location::escape_url(url),
        };
        if let Some(q) = new_query {
            // A query the rules left as the client sent it is already escaped.
            let keep = self.noescape || Some(q.as_str()) == old;
            if let Some(bad) = bad_query(Some(&q)).filter(|_| keep) {
                return bad;
            }
            location.push('?');
            location.push_str(&if keep { q } else { location::escape(&q) });
        }
        Outcome::Redirect {
            status: self.redirect.unwrap_or(302),
            location,
        }
    }
}

/// Apache refuses a rewritten query with a space or control character in it that is not
/// going to be escaped (it would be read as the end of the request line elsewhere).
fn bad_query(query: Option<&str>) -> Option<Outcome> {
    let q = query?;
    q.bytes().any(|b| b <= b' ' || b == 0x7f).then(|| Outcome::Refused {
        status: 403,
        problem: Problem::new(
            format!("a rewrite made the query string `{}`, which has a space or control character in it", q.escape_debug()),
            "add the B flag to the rule so that back-references are escaped",
        ),
    })
}

fn refused(status: u16, rule: &Rule, what: &str, fix: &str) -> Outcome {
    Outcome::Refused {
        status,
        problem: Problem::new(format!("RewriteRule on line {}: {what}", rule.line), fix),
    }
}
