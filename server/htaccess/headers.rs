//! Pure: response headers a customer adds: mod_headers' common forms (`Header [always] set|
//! append|add|merge|setifempty|unset NAME [VALUE]`) and mod_expires (`ExpiresActive`,
//! `ExpiresByType`, `ExpiresDefault` with `A<seconds>`/`M<seconds>` or `access plus 1 month`).
//!
//! Values are taken literally; a value with `%{...}` format specifiers, a condition (`env=`,
//! `expr=`) or an `edit`/`echo` action is a problem, not a header sent with the wrong text.

use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Problem;
use super::rules::Rules;
use super::syntax::Line;

/// What a `Header` line does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Set,
    Append,
    Add,
    Merge,
    SetIfEmpty,
    Unset,
}

/// One `Header` line.
#[derive(Clone, Debug)]
pub struct HeaderAction {
    pub action: Action,
    pub name: HeaderName,
    pub value: Option<HeaderValue>,
    /// `always`: also on error responses.
    pub always: bool,
}

/// `Expires*`: when responses expire, by media type.
#[derive(Clone, Debug, Default)]
pub struct Expires {
    pub active: Option<bool>,
    /// (media type, from modification (true) or access, how long).
    pub by_type: Vec<(String, bool, Duration)>,
    pub default: Option<(bool, Duration)>,
}

impl Expires {
    /// `deeper` over `self`.
    pub fn merge(&mut self, deeper: &Expires) {
        self.active = deeper.active.or(self.active);
        self.by_type.extend(deeper.by_type.iter().cloned());
        if deeper.default.is_some() {
            self.default = deeper.default;
        }
    }

    /// How long a response of `media` type stays fresh, counted from modification (true) or
    /// access.
    pub fn for_type(&self, media: &str) -> Option<(bool, Duration)> {
        if self.active != Some(true) {
            return None;
        }
        let bare = media.split(';').next().unwrap_or(media).trim();
        self.by_type
            .iter()
            .rev()
            .find(|(t, _, _)| t.eq_ignore_ascii_case(bare))
            .map(|(_, m, d)| (*m, *d))
            .or(self.default)
    }
}

/// The directive names this family takes (lowercase).
pub const NAMES: &[&str] = &["header", "expiresactive", "expiresbytype", "expiresdefault"];

/// Applies one line of this family to `rules`.
pub fn apply(rules: &mut Rules, line: &Line) -> Result<(), Problem> {
    match line.name.to_ascii_lowercase().as_str() {
        "header" => {
            rules.headers.push(header(&line.args)?);
            Ok(())
        }
        "expiresactive" => match line.args.first().map(|a| a.to_ascii_lowercase()) {
            Some(v) if line.args.len() == 1 && (v == "on" || v == "off") => {
                rules.expires.active = Some(v == "on");
                Ok(())
            }
            _ => Err(Problem::new(
                "`ExpiresActive` takes On or Off",
                "write `ExpiresActive On`",
            )),
        },
        "expiresbytype" => match &line.args[..] {
            [media, when] => {
                let (m, d) = expiry(when)?;
                rules.expires.by_type.push((media.clone(), m, d));
                Ok(())
            }
            _ => Err(Problem::new(
                "`ExpiresByType` takes a media type and a time",
                "write e.g. `ExpiresByType image/png \"access plus 1 month\"`",
            )),
        },
        "expiresdefault" => match &line.args[..] {
            [when] => {
                rules.expires.default = Some(expiry(when)?);
                Ok(())
            }
            _ => Err(Problem::new(
                "`ExpiresDefault` takes one time",
                "write e.g. `ExpiresDefault \"access plus 1 day\"`",
            )),
        },
        _ => Err(Problem::new(
            format!("`{}` is not a header directive", line.name),
            "remove it",
        )),
    }
}

fn header(args: &[String]) -> Result<HeaderAction, Problem> {
    let unsupported = |what: &str| {
        Problem::new(
            format!("`Header {}`: {what} is not supported here", args.join(" ")),
            "use `Header [always] set|append|add|merge|setifempty|unset NAME [\"value\"]` with a literal value",
        )
    };
    let (always, rest) = match args.split_first() {
        Some((w, rest)) if w.eq_ignore_ascii_case("always") => (true, rest),
        Some((w, rest)) if w.eq_ignore_ascii_case("onsuccess") => (false, rest),
        _ => (false, args),
    };
    let Some((action, rest)) = rest.split_first() else {
        return Err(unsupported("a missing action"));
    };
    let action = match action.to_ascii_lowercase().as_str() {
        "set" => Action::Set,
        "append" => Action::Append,
        "add" => Action::Add,
        "merge" => Action::Merge,
        "setifempty" => Action::SetIfEmpty,
        "unset" => Action::Unset,
        other => return Err(unsupported(&format!("the action `{other}`"))),
    };
    let (name, value) = match (&action, rest) {
        (Action::Unset, [name]) => (name, None),
        (Action::Unset, _) => return Err(unsupported("unset with a value or a condition")),
        (_, [name, value]) => (name, Some(value)),
        (_, [_, _, cond, ..]) => return Err(unsupported(&format!("the condition `{cond}`"))),
        _ => return Err(unsupported("a missing name or value")),
    };
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| unsupported(&format!("the name `{name}`")))?;
    let value = match value {
        Some(v) if v.replace("%%", "").contains('%') => {
            return Err(unsupported("a value with %-format specifiers"));
        }
        Some(v) => Some(
            HeaderValue::from_str(&v.replace("%%", "%"))
                .map_err(|_| unsupported("a value with control characters"))?,
        ),
        None => None,
    };
    Ok(HeaderAction {
        action,
        name,
        value,
        always,
    })
}

/// `A3600`, `M86400`, or `access plus 1 month 2 days` / `modification plus 1 hour`.
fn expiry(text: &str) -> Result<(bool, Duration), Problem> {
    let bad = || {
        Problem::new(
            format!("`{text}` is not an expiry time"),
            "write `A<seconds>`, `M<seconds>`, or e.g. \"access plus 1 month\"",
        )
    };
    let from_mod = |c: char| match c {
        'A' | 'a' => Some(false),
        'M' | 'm' => Some(true),
        _ => None,
    };
    let mut chars = text.chars();
    if let (Some(base), Ok(secs)) = (
        chars.next().and_then(from_mod),
        chars.as_str().parse::<u64>(),
    ) {
        return Ok((base, Duration::from_secs(secs)));
    }
    let words: Vec<String> = text
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let (base, rest) = words.split_first().ok_or_else(bad)?;
    let modification = match base.as_str() {
        "access" | "now" => false,
        "modification" => true,
        _ => return Err(bad()),
    };
    let rest = match rest.split_first() {
        Some((p, r)) if p == "plus" => r,
        _ => rest,
    };
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(bad());
    }
    let mut secs = 0u64;
    for pair in rest.chunks(2) {
        let n: u64 = pair[0].parse().map_err(|_| bad())?;
        let unit = match pair[1].trim_end_matches('s') {
            "year" => 365 * 86400,
            "month" => 30 * 86400,
            "week" => 7 * 86400,
            "day" => 86400,
            "hour" => 3600,
            "minute" => 60,
            "second" => 1,
            _ => return Err(bad()),
        };
        secs = secs.saturating_add(n.saturating_mul(unit));
    }
    Ok((modification, Duration::from_secs(secs)))
}

/// Applies `actions` to a response's headers (`error`: only `always` ones apply).
pub fn apply_to(headers: &mut HeaderMap, actions: &[HeaderAction], error: bool) {
    for a in actions.iter().filter(|a| a.always || !error) {
        let name = a.name.clone();
        match (&a.action, &a.value) {
            (Action::Unset, _) => {
                headers.remove(&name);
            }
            (Action::Set, Some(v)) => {
                headers.insert(name, v.clone());
            }
            (Action::Add, Some(v)) => {
                headers.append(name, v.clone());
            }
            (Action::SetIfEmpty, Some(v)) => {
                headers.entry(name).or_insert_with(|| v.clone());
            }
            (Action::Append | Action::Merge, Some(v)) => {
                let old = headers
                    .get(&name)
                    .and_then(|o| o.to_str().ok())
                    .map(str::to_string);
                let merged = match old {
                    Some(o)
                        if a.action == Action::Merge
                            && o.split(',').any(|p| p.trim().as_bytes() == v.as_bytes()) =>
                    {
                        continue;
                    }
                    Some(o) => {
                        HeaderValue::from_str(&format!("{o}, {}", v.to_str().unwrap_or(""))).ok()
                    }
                    None => Some(v.clone()),
                };
                if let Some(m) = merged {
                    headers.insert(name, m);
                }
            }
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        super::super::syntax::words(text).expect("words")
    }

    #[test]
    fn header_actions() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
        h.insert("x-powered-by", HeaderValue::from_static("PHP"));
        let actions: Vec<_> = [
            "set X-Frame-Options SAMEORIGIN",
            "always set X-A \"one two\"",
            "append Cache-Control private",
            "merge Cache-Control private",
            "unset X-Powered-By",
            "setifempty X-Frame-Options DENY",
        ]
        .iter()
        .map(|l| header(&args(l)).expect(l))
        .collect();
        apply_to(&mut h, &actions, false);
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert_eq!(h["x-a"], "one two");
        assert_eq!(h["cache-control"], "no-cache, private");
        assert!(h.get("x-powered-by").is_none());
        let mut e = HeaderMap::new();
        apply_to(&mut e, &actions, true);
        assert_eq!(e.len(), 1, "only `always` on errors");
        for bad in [
            "echo X",
            "edit X a b",
            "set X \"%{T}e\"",
            "set X y env=z",
            "set",
        ] {
            assert!(header(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_times() {
        assert_eq!(
            expiry("A3600").expect("A"),
            (false, Duration::from_secs(3600))
        );
        assert_eq!(
            expiry("access plus 1 month 2 days").expect("words"),
            (false, Duration::from_secs(32 * 86400))
        );
        assert!(expiry("modification plus 1 hour").expect("m").0);
        assert!(expiry("later").is_err());
        assert!(expiry("access plus 1 fortnight").is_err());
    }
}
