//! mod_alias's redirects in `.htaccess`: `Redirect`, `RedirectMatch`, `RedirectPermanent` and
//! `RedirectTemp`. A family apart from mod_rewrite, as in Apache: its entries merge across
//! directories (the deeper file's first, then its parent's) instead of replacing them, they
//! match the whole URL path (not a directory-relative one), and they run after the rewrite
//! rules have had their turn (Apache's fixup hooks: mod_rewrite first).

use super::context::Context;
use super::rewrite::Outcome;
use super::syntax::Line;
use super::{Problem, location, pattern};
use regex::Regex;

#[derive(Clone, Debug)]
enum Matcher {
    /// `Redirect`: a URL path prefix, matched a whole segment at a time.
    Prefix(String),
    /// `RedirectMatch`: a regular expression over the URL path.
    Regex(Regex),
}

#[derive(Clone, Debug)]
struct Entry {
    line: usize,
    matcher: Matcher,
    /// Where to; `None` for a status that is not a redirect (`gone`, 4xx).
    target: Option<String>,
    status: u16,
}

/// The mod_alias redirects of one file, or of a directory after merging.
#[derive(Clone, Debug, Default)]
pub struct Redirects {
    entries: Vec<Entry>,
}

/// A redirect entry that matched: what to answer, and the line that said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirected {
    /// [`Outcome::Redirect`], [`Outcome::Status`] or [`Outcome::Refused`].
    pub outcome: Outcome,
    pub line: usize,
}

const DIRECTIVES: &[&str] = &[
    "Redirect",
    "RedirectMatch",
    "RedirectPermanent",
    "RedirectTemp",
];

impl Redirects {
    /// Whether `name` is a mod_alias redirect directive (any case).
    pub fn handles(name: &str) -> bool {
        DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// Compiles one directive (one that [`Redirects::handles`]).
    pub fn directive(&mut self, line: &Line) -> Result<(), Problem> {
        let name = line.name.to_ascii_lowercase();
        let (default, regex) = match name.as_str() {
            "redirectpermanent" => (301, false),
            "redirecttemp" => (302, false),
            "redirectmatch" => (302, true),
            _ => (302, false),
        };
        let fixed = default != 302 || name == "redirecttemp";
        let args = line.args.as_slice();
        let (status, from, to) = match (fixed, args) {
            (true, [from, to]) => (default, from, Some(to)),
            (false, [first, rest @ ..]) if (1..=2).contains(&rest.len()) => {
                split_status(&line.name, first, rest)?
            }
            _ => return Err(usage(&line.name, fixed)),
        };
        let entry = entry(
            &line.name,
            line.number,
            status,
            from,
            to.map(String::as_str),
            regex,
        )?;
        self.entries.push(entry);
        Ok(())
    }

    /// Whether there is any entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The redirects of a directory whose own file has `child`, under a parent directory
    /// whose merged redirects are `parent`: the child's are tried first.
    pub fn merge(parent: &Redirects, child: &Redirects) -> Redirects {
        Redirects {
            entries: [child.entries.as_slice(), &parent.entries].concat(),
        }
    }

    /// The first entry matching `path` (decoded, starting with `/`), if any.
    pub fn apply(&self, ctx: &dyn Context, path: &str, query: Option<&str>) -> Option<Redirected> {
        self.apply_either(ctx, path, None, query)
    }

    /// The first entry matching the request: its `path` inside the site or, for a site
    /// reached under a prefix, `full`, the path as the client sent it (`/~alice/old`). A
    /// customer may write either (`Redirect /old ...` for the site's own domain, `Redirect
    /// /~alice/old ...` as Apache matches it); each entry tries the path inside the site
    /// first. A local target keeps the prefix either way ([`super::location::qualify`]).
    pub fn apply_either(
        &self,
        ctx: &dyn Context,
        path: &str,
        full: Option<&str>,
        query: Option<&str>,
    ) -> Option<Redirected> {
        self.entries.iter().find_map(|e| {
            let target = e.target(path).or_else(|| e.target(full?))?;
            Some(Redirected {
                outcome: e.outcome(ctx, target, query),
                line: e.line,
            })
        })
    }
}

/// `[status] from [to]` → the status and the rest (Apache's `add_redirect_internal`).
fn split_status<'a>(
    name: &str,
    first: &'a String,
    rest: &'a [String],
) -> Result<(u16, &'a String, Option<&'a String>), Problem> {
    let word = first.to_ascii_lowercase();
    let status = match word.as_str() {
        "permanent" => Some(301),
        "temp" => Some(302),
        "seeother" => Some(303),
        "gone" => Some(410),
        w if w.starts_with(|c: char| c.is_ascii_digit()) => {
            Some(w.parse::<u16>().map_err(|_| {
                Problem::new(
                    format!("{name}: `{first}` is not a status"),
                    "write a status like 301",
                )
            })?)
        }
        _ => None,
    };
    match (status, rest) {
        (None, [to]) => Ok((302, first, Some(to))),
        (None, _) => Err(usage(name, false)),
        (Some(s), [from]) if !(300..400).contains(&s) => Ok((s, from, None)),
        (Some(s), [from, to]) => Ok((s, from, Some(to))),
        (Some(_), [_]) => Err(Problem::new(
            format!(
                "{name} {first} with one URL redirects the whole directory (Apache's expression form), which is not implemented"
            ),
            format!("name the path too: `{name} {first} /old/path https://example.com/new/path`"),
        )),
        (Some(_), _) => Err(usage(name, false)),
    }
}

fn usage(name: &str, fixed: bool) -> Problem {
    let form = if fixed { "" } else { "[status] " };
    Problem::new(
        format!("{name} takes {form}a URL path and the URL to send it to"),
        format!("write it like `{name} {form}/old.html https://example.com/new.html`"),
    )
}

fn entry(
    name: &str,
    line: usize,
    status: u16,
    from: &str,
    to: Option<&str>,
    regex: bool,
) -> Result<Entry, Problem> {
    let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
    if !redirect && !(400..600).contains(&status) {
        return Err(Problem::new(
            format!("{name}: status {status} is not one this server redirects with"),
            "use permanent (301), temp (302), seeother (303), 307, 308, gone (410), or a 4xx/5xx status without a URL",
        ));
    }
    match (redirect, to) {
        (true, None) => return Err(usage(name, false)),
        (false, Some(_)) => {
            return Err(Problem::new(
                format!("{name}: status {status} is not a redirect, so it takes no URL"),
                format!("write `{name} {status} {from}`"),
            ));
        }
        (true, Some(t)) if !regex && !t.starts_with('/') && location::scheme_len(t).is_none() => {
            return Err(Problem::new(
                format!("{name}: `{t}` is not a URL to redirect to"),
                "write a full URL (https://example.com/new) or a path starting with `/`",
            ));
        }
        _ => {}
    }
    let matcher = if regex {
        Matcher::Regex(pattern::compile(name, from, false)?)
    } else if from.starts_with('/') {
        Matcher::Prefix(from.to_string())
    } else {
        return Err(Problem::new(
            format!("{name}: `{from}` is not a URL path, so it would never match"),
            "write the full URL path from the site's root, like `/old/page.html` (not relative to this directory)",
        ));
    };
    Ok(Entry {
        line,
        matcher,
        target: to.map(str::to_string),
        status,
    })
}

impl Entry {
    /// The target for `path` when this entry matches it (empty when there is no URL).
    fn target(&self, path: &str) -> Option<String> {
        match &self.matcher {
            Matcher::Prefix(prefix) => {
                let len = prefix_len(path, prefix)?;
                let Some(to) = self.target.as_deref() else {
                    return Some(String::new());
                };
                Some(format!("{to}{}", location::escape(&path[len..])))
            }
            Matcher::Regex(re) => {
                let caps = re.captures(path)?;
                let Some(to) = self.target.as_deref() else {
                    return Some(String::new());
                };
                Some(escape_keeping_query(&substitute(to, &caps)))
            }
        }
    }

    fn outcome(&self, ctx: &dyn Context, target: String, query: Option<&str>) -> Outcome {
        if self.target.is_none() {
            return Outcome::Status(self.status);
        }
        let mut location = match target.starts_with('/') {
            true => location::qualify(ctx, &target),
            false => target,
        };
        if location::scheme_len(&location).is_none() {
            return Outcome::Refused {
                status: 500,
                problem: Problem::new(
                    format!(
                        "RedirectMatch on line {} made `{location}`, which is not a URL",
                        self.line
                    ),
                    "make the target a full URL or a path starting with `/`",
                ),
            };
        }
        // The request's query goes along unless the target has its own.
        if let Some(q) = query.filter(|_| !location.contains('?')) {
            location.push('?');
            location.push_str(q);
        }
        Outcome::Redirect {
            status: self.status,
            location,
        }
    }
}

/// How much of `path` the prefix `alias` covers (Apache's `alias_matches`): runs of `/` match
/// runs of `/`, and the match must end at a segment boundary.
fn prefix_len(path: &str, alias: &str) -> Option<usize> {
    let (p, a) = (path.as_bytes(), alias.as_bytes());
    let (mut i, mut j) = (0, 0);
    while j < a.len() {
        if a[j] == b'/' {
            if p.get(i) != Some(&b'/') {
                return None;
            }
            while a.get(j) == Some(&b'/') {
                j += 1;
            }
            while p.get(i) == Some(&b'/') {
                i += 1;
            }
        } else {
            if p.get(i) != Some(&a[j]) {
                return None;
            }
            i += 1;
            j += 1;
        }
    }
    let ends_segment = a.last() == Some(&b'/') || i == p.len() || p[i] == b'/';
    // The match ends after an ASCII byte it compared, or at the end of `path`.
    (ends_segment && path.is_char_boundary(i)).then_some(i)
}

/// `$N` in `to` replaced by group N (`ap_pregsub`); a backslash keeps the next character.
fn substitute(to: &str, caps: &regex::Captures) -> String {
    let mut out = String::new();
    let mut chars = to.chars();
    while let Some(c) = chars.next() {
        let rest = chars.as_str();
        match (c, rest.chars().next()) {
            ('$', Some(d)) if d.is_ascii_digit() => {
                let n = usize::from(d as u8 - b'0');
                out.push_str(caps.get(n).map_or("", |m| m.as_str()));
                chars.next();
            }
            ('\\', Some(n)) => {
                out.push(n);
                chars.next();
            }
            (c, _) => out.push(c),
        }
    }
    out
}

/// A RedirectMatch target with its path escaped and its query and fragment kept.
fn escape_keeping_query(target: &str) -> String {
    match target.find(['?', '#']) {
        Some(i) => format!("{}{}", location::escape(&target[..i]), &target[i..]),
        None => location::escape(target),
    }
}

#[cfg(test)]
mod tests;
