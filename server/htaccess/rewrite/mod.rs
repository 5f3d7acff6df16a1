//! mod_rewrite in per-directory (`.htaccess`) context: `RewriteEngine`, `RewriteBase`,
//! `RewriteCond`, `RewriteRule` and `RewriteOptions`, compiled from one file's lines and
//! applied to a request as one pass of Apache's per-directory rewriting (`hook_fixup`).
//!
//! It is pure: what it needs to know about the request and the files comes through
//! [`Context`], and what it decides is a value ([`Applied`]) the request path acts on. An
//! internal rewrite is not followed here: the caller routes the new path again, from the top,
//! as Apache's internal redirect does, and runs the rules of the directory it lands in
//! (bounded against loops); a rule like WordPress's `RewriteRule ^index\.php$ - [L]` is what
//! stops the second pass.
//!
//! Which file's rules apply: Apache does not inherit per-directory rules. The rules that run
//! for a request are those of the deepest `.htaccess` on its path that has any `Rewrite*`
//! directive ([`Rewrites::is_set`]), merged over its ancestors' with [`Rewrites::merge`]
//! (which carries `RewriteEngine` down and, with `RewriteOptions Inherit`, the parent's rules),
//! and they run with that file's directory as their prefix.

mod cond;
mod engine;
#[cfg(test)]
pub(super) mod fake;
mod flags;
#[cfg(test)]
mod stock;
mod template;
#[cfg(test)]
mod tests;

use super::Problem;
use super::pattern;
use super::syntax::Line;
use cond::Condition;
use flags::RuleFlags;
use regex::Regex;
use template::Template;

pub use super::context::Context;

/// What one pass of the rules decided, and what it set on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Outcome,
    /// `[E=]` settings in the order they ran (`None` unsets): they go into the CGI
    /// environment (WordPress and Laravel pass `Authorization` this way). Kept even when the
    /// outcome is `Unchanged`.
    pub env: Vec<(String, Option<String>)>,
    /// Request headers that conditions of matching rules read: Apache adds them to `Vary`.
    pub vary: Vec<String>,
    /// The line of the rule that decided the outcome (for the log and `explain`).
    pub line: Option<usize>,
}

/// What to do with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the request as it is.
    Unchanged,
    /// Route `path` (decoded, like a request path; the caller normalises it as one and does
    /// not decode it again) with `query` instead. With `end`, no rewrite rules run again
    /// for this request (the `END` flag).
    Internal {
        path: String,
        query: Option<String>,
        end: bool,
    },
    /// Answer with a redirect to `location` (an escaped, absolute URL).
    Redirect { status: u16, location: String },
    /// Answer with this status and no redirect: 403 for `[F]`, 410 for `[G]`, or the
    /// 4xx/5xx of an `[R=4xx]`.
    Status(u16),
    /// Refuse the request as Apache would, with the reason for the error log.
    Refused { status: u16, problem: Problem },
}

/// A compiled `RewriteRule` with the conditions written before it.
#[derive(Clone, Debug)]
struct Rule {
    line: usize,
    pattern: Regex,
    negate: bool,
    /// `None` for `-`.
    substitution: Option<Template>,
    /// The substitution as written starts with `//` (leading slashes are then kept).
    literal_slashes: bool,
    flags: RuleFlags,
    conditions: Vec<Condition>,
}

/// How a directory's rules combine with its parent's (`RewriteOptions`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Inherit {
    #[default]
    No,
    /// The parent's rules run after this directory's.
    After,
    /// The parent's rules run before this directory's.
    Before,
}

#[derive(Clone, Copy, Debug, Default)]
struct Options {
    inherit: Inherit,
    /// `InheritDown` / `InheritDownBefore`: children inherit without asking.
    inherit_down: Inherit,
    ignore_inherit: bool,
    allow_no_slash: bool,
    merge_base: bool,
}

/// The mod_rewrite directives of one `.htaccess` file, or of a directory after merging.
#[derive(Clone, Debug, Default)]
pub struct Rewrites {
    engine: Option<bool>,
    base: Option<String>,
    options: Option<Options>,
    rules: Vec<Rule>,
    /// Conditions read since the last rule, waiting for the rule they belong to.
    pending: Vec<Condition>,
    set: bool,
}

const DIRECTIVES: &[&str] = &[
    "RewriteEngine",
    "RewriteBase",
    "RewriteCond",
    "RewriteRule",
    "RewriteOptions",
    "RewriteMap",
    "RewriteLog",
    "RewriteLogLevel",
    "RewriteLock",
];

impl Rewrites {
    /// Whether `name` is a mod_rewrite directive (any case).
    pub fn handles(name: &str) -> bool {
        DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// Compiles one directive (one that [`Rewrites::handles`]).
    pub fn directive(&mut self, line: &Line) -> Result<(), Problem> {
        self.set = true;
        let name = line.name.to_ascii_lowercase();
        match name.as_str() {
            "rewriteengine" => self.engine = Some(on_off(line)?),
            "rewritebase" => self.base = Some(base(line)?),
            "rewriteoptions" => self.options = Some(options(line, self.options)?),
            "rewritecond" => self
                .pending
                .push(Condition::compile(line.number, &line.args)?),
            "rewriterule" => {
                let conditions = std::mem::take(&mut self.pending);
                self.rules.push(rule(line, conditions)?);
            }
            _ => {
                return Err(Problem::new(
                    format!("{} is not allowed in a .htaccess file", line.name),
                    "remove it: Apache accepts it only in the server configuration",
                ));
            }
        }
        Ok(())
    }

    /// Ends the file: conditions with no rule after them are a problem (Apache drops them,
    /// which leaves what they were meant to guard unguarded).
    pub fn finish(&mut self) -> Result<(), (usize, Problem)> {
        match self.pending.first() {
            Some(c) => Err((
                c.line,
                Problem::new(
                    "RewriteCond has no RewriteRule after it, so it applies to nothing",
                    "put the RewriteRule it should guard right after it, or remove it",
                ),
            )),
            None => Ok(()),
        }
    }

    /// Whether the file has any mod_rewrite directive: then its configuration replaces its
    /// ancestors' for the requests under it (merged with [`Rewrites::merge`]).
    pub fn is_set(&self) -> bool {
        self.set
    }

    /// The configuration of a directory whose own file is `child`, under a parent directory
    /// whose merged configuration is `parent` (Apache's `config_perdir_merge`).
    pub fn merge(parent: &Rewrites, child: &Rewrites) -> Rewrites {
        let options = child.options.or(parent.options);
        let opts = options.unwrap_or_default();
        let down = parent.options.map(|o| o.inherit_down).unwrap_or_default();
        let inherit = match (opts.inherit, down) {
            (Inherit::No, down) if !opts.ignore_inherit => down,
            (own, _) => own,
        };
        let rules = match inherit {
            Inherit::No => child.rules.clone(),
            Inherit::After => [child.rules.as_slice(), &parent.rules].concat(),
            Inherit::Before => [parent.rules.as_slice(), &child.rules].concat(),
        };
        let base = match opts.merge_base {
            true => child.base.clone().or_else(|| parent.base.clone()),
            false => child.base.clone(),
        };
        Rewrites {
            engine: child.engine.or(parent.engine),
            base,
            options,
            rules,
            pending: Vec::new(),
            set: child.set || parent.set,
        }
    }

    /// Whether this configuration has a `RewriteRule` on line `line` (to tell which file the
    /// rule that decided is in, after an inheriting merge).
    pub fn has_rule_at(&self, line: usize) -> bool {
        self.rules.iter().any(|r| r.line == line)
    }

    /// Runs one pass of the rules over a request for `path` (decoded, starting with `/`) with
    /// `query`, where this configuration belongs to the directory at URL `dir_url` (`/` or
    /// `/blog/`).
    pub fn apply(
        &self,
        ctx: &dyn Context,
        dir_url: &str,
        path: &str,
        query: Option<&str>,
    ) -> Applied {
        engine::apply(self, ctx, dir_url, path, query)
    }
}

/// The groups 0-9 of a match (Apache keeps ten).
fn groups(caps: &regex::Captures) -> Vec<Option<String>> {
    (0..10)
        .map(|i| caps.get(i).map(|m| m.as_str().to_string()))
        .collect()
}

fn on_off(line: &Line) -> Result<bool, Problem> {
    match line.args.as_slice() {
        [v] if v.eq_ignore_ascii_case("on") => Ok(true),
        [v] if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(Problem::new(
            format!(
                "RewriteEngine takes `On` or `Off`, not `{}`",
                line.args.join(" ")
            ),
            "write `RewriteEngine On`",
        )),
    }
}

fn base(line: &Line) -> Result<String, Problem> {
    match line.args.as_slice() {
        [b] if b.starts_with('/') => Ok(if b.ends_with('/') {
            b.clone()
        } else {
            format!("{b}/")
        }),
        _ => Err(Problem::new(
            format!(
                "RewriteBase takes one URL path starting with `/`, not `{}`",
                line.args.join(" ")
            ),
            "write the URL of this directory, like `RewriteBase /` or `RewriteBase /blog/`",
        )),
    }
}

fn options(line: &Line, old: Option<Options>) -> Result<Options, Problem> {
    let mut o = old.unwrap_or_default();
    for word in &line.args {
        match word.to_ascii_lowercase().as_str() {
            "inherit" => o.inherit = Inherit::After,
            "inheritbefore" => o.inherit = Inherit::Before,
            "inheritdown" => o.inherit_down = Inherit::After,
            "inheritdownbefore" => o.inherit_down = Inherit::Before,
            "ignoreinherit" => o.ignore_inherit = true,
            "allownoslash" => o.allow_no_slash = true,
            "mergebase" => o.merge_base = true,
            // Only how Apache stores long URLs; MaxRedirects Apache itself ignores.
            w if w == "longurloptimization" || w.starts_with("maxredirects=") => {}
            _ => {
                return Err(Problem::new(
                    format!("RewriteOptions `{word}` is not an option this server knows"),
                    "use Inherit, InheritBefore, InheritDown, InheritDownBefore, IgnoreInherit, \
                     AllowNoSlash or MergeBase",
                ));
            }
        }
    }
    Ok(o)
}

fn rule(line: &Line, conditions: Vec<Condition>) -> Result<Rule, Problem> {
    let (pattern, substitution, flags) = match line.args.as_slice() {
        [p, s] => (p, s, RuleFlags::default()),
        [p, s, f] => (p, s, RuleFlags::parse(f)?),
        _ => {
            return Err(Problem::new(
                format!(
                    "RewriteRule takes a pattern, a substitution and optional flags; this one has {} argument(s)",
                    line.args.len()
                ),
                "write it like `RewriteRule ^old$ /new [L]`; quote an argument that contains spaces",
            ));
        }
    };
    let (negate, body) = match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern.as_str()),
    };
    let compiled = pattern::compile("RewriteRule", body, flags.nocase)?;
    let substitution = match substitution.as_str() {
        "-" => None,
        s => Some(substitution_template(s)?),
    };
    Ok(Rule {
        line: line.number,
        pattern: compiled,
        negate,
        literal_slashes: substitution.is_some() && line.args[1].starts_with("//"),
        substitution,
        flags,
        conditions,
    })
}

/// A substitution, refusing URL schemes other than http(s): Apache would redirect to them,
/// and treating one as a relative path would rewrite to a nonsense local path instead.
fn substitution_template(text: &str) -> Result<Template, Problem> {
    let scheme_end = text.find(':').filter(|&i| {
        i > 0
            && text[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && text.as_bytes()[0].is_ascii_alphabetic()
            && (text[i..].starts_with("://")
                || ["mailto", "news"]
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&text[..i])))
    });
    if let Some(i) = scheme_end.filter(|_| super::location::scheme_len(text).is_none()) {
        return Err(Problem::new(
            format!(
                "RewriteRule substitution `{text}` is a `{}:` URL",
                &text[..i]
            ),
            "rules here can rewrite to local paths and redirect to http:// or https:// URLs",
        ));
    }
    Template::compile("RewriteRule", text)
}
