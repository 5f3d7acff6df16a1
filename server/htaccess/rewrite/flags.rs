//! The `[...]` flags of `RewriteRule` and `RewriteCond`, read as Apache reads them
//! (`cmd_parseflagfield`: comma-separated, names in any case, short or long form, `name=value`).
//! A flag this server does not implement is a [`Problem`]: a dropped `[P]` or `[CO=...]` would
//! change what the rule does without a word.

use super::super::Problem;
use super::template::{Escaping, Template};

/// What `[E=...]` does.
#[derive(Clone, Debug)]
pub enum EnvFlag {
    /// `E=NAME:value` (or `E=NAME`, an empty value).
    Set(String, Template),
    /// `E=!NAME`.
    Unset(String),
}

/// The flags of one `RewriteRule`.
#[derive(Clone, Debug, Default)]
pub struct RuleFlags {
    pub last: bool,
    pub end: bool,
    pub nocase: bool,
    pub noescape: bool,
    pub passthrough: bool,
    pub qsa: bool,
    pub qsd: bool,
    pub qsl: bool,
    pub chain: bool,
    pub allow_3f: bool,
    /// `R` / `R=3xx`: redirect with this status.
    pub redirect: Option<u16>,
    /// `F`, `G`, `R=4xx`: answer with this status and stop; the substitution is not used.
    pub status: Option<u16>,
    /// `S=N`: skip this many rules after a match.
    pub skip: usize,
    pub env: Vec<EnvFlag>,
    /// `B` and friends.
    pub escaping: Option<Escaping>,
}

/// The flags of one `RewriteCond`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CondFlags {
    pub nocase: bool,
    pub or_next: bool,
    pub no_vary: bool,
}

const RULE_FLAGS: &str = "L, END, R, R=301 (or 302, 303, 307, 308, permanent, temp, seeother), \
    F, G, NC, NE, PT, QSA, QSD, QSL, C, S=N, E=NAME:value, B, BNP, BCTLS, BNE=chars, NS, DPI, \
    UnsafeAllow3F";

/// The `key=value` items of a `[...]` field.
fn items<'a>(directive: &str, field: &'a str) -> Result<Vec<(&'a str, Option<&'a str>)>, Problem> {
    let inner = field
        .strip_prefix('[')
        .and_then(|f| f.strip_suffix(']'))
        .ok_or_else(|| {
            Problem::new(
                format!("{directive}: the flags `{field}` are not enclosed in `[...]`"),
                "write the flags in square brackets with no spaces, like `[L,R=301]`",
            )
        })?;
    Ok(inner
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (i, None),
        })
        .collect())
}

impl RuleFlags {
    /// Reads a `RewriteRule` flags field.
    pub fn parse(field: &str) -> Result<RuleFlags, Problem> {
        let mut flags = RuleFlags::default();
        for (key, value) in items("RewriteRule", field)? {
            flags.set(key, value)?;
        }
        if flags.redirect.is_some() && flags.status.is_some() {
            return Err(Problem::new(
                format!("RewriteRule flags `{field}` both redirect and answer with an error"),
                "keep either the R=3xx flag or the F / G flag",
            ));
        }
        Ok(flags)
    }

    fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), Problem> {
        let is = |names: &[&str]| names.iter().any(|n| key.eq_ignore_ascii_case(n));
        if is(&["L", "last"]) {
            self.last = true;
        } else if is(&["END"]) {
            self.end = true;
        } else if is(&["NC", "nocase"]) {
            self.nocase = true;
        } else if is(&["NE", "noescape"]) {
            self.noescape = true;
        } else if is(&["PT", "passthrough"]) {
            self.passthrough = true;
        } else if is(&["QSA", "qsappend"]) {
            self.qsa = true;
        } else if is(&["QSD", "qsdiscard"]) {
            self.qsd = true;
        } else if is(&["QSL", "qslast"]) {
            self.qsl = true;
        } else if is(&["C", "chain"]) {
            self.chain = true;
        } else if is(&["UnsafeAllow3F"]) {
            self.allow_3f = true;
        } else if is(&["NS", "nosubreq", "DPI", "discardpath"]) {
            // NS: this server makes no sub-requests. DPI: rules here always match the whole
            // rewritten path, never with the old path info re-appended, which is what DPI asks.
        } else if is(&["F", "forbidden"]) {
            self.status = Some(403);
        } else if is(&["G", "gone"]) {
            self.status = Some(410);
        } else if is(&["R", "redirect"]) {
            self.redirect_flag(key, value)?;
        } else if is(&["S", "skip"]) {
            self.skip = value
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| bad_value(key, value, "a number of rules, like `S=2`"))?;
        } else if is(&["E", "env"]) {
            self.env.push(env_flag(key, value)?);
        } else if is(&[
            "B",
            "backrefescaping",
            "BNP",
            "backrefnoplus",
            "BCTLS",
            "BNE",
        ]) {
            self.escaping_flag(key, value)?;
        } else {
            return Err(unknown_rule_flag(key, value));
        }
        Ok(())
    }

    fn redirect_flag(&mut self, key: &str, value: Option<&str>) -> Result<(), Problem> {
        let status = match value.map(str::trim) {
            None | Some("") => 302,
            Some(v) if v.eq_ignore_ascii_case("permanent") => 301,
            Some(v) if v.eq_ignore_ascii_case("temp") => 302,
            Some(v) if v.eq_ignore_ascii_case("seeother") => 303,
            Some(v) => v.parse::<u16>().map_err(|_| {
                bad_value(
                    key,
                    value,
                    "a redirect status like `R=301`, or `R` alone for 302",
                )
            })?,
        };
        match status {
            301 | 302 | 303 | 307 | 308 => self.redirect = Some(status),
            // Apache: a status outside 3xx answers with that status, as F and G do.
            400..=599 => self.status = Some(status),
            _ => {
                return Err(bad_value(
                    key,
                    value,
                    "a redirect status this server sends: 301, 302, 303, 307 or 308 (or an \
                     error status 400-599 to answer with it)",
                ));
            }
        }
        Ok(())
    }

    fn escaping_flag(&mut self, key: &str, value: Option<&str>) -> Result<(), Problem> {
        let e = self.escaping.get_or_insert_with(Escaping::default);
        let chars = value.filter(|v| !v.is_empty()).map(str::to_string);
        if key.eq_ignore_ascii_case("B") || key.eq_ignore_ascii_case("backrefescaping") {
            e.only = chars;
        } else if key.eq_ignore_ascii_case("BNE") {
            e.except = Some(chars.ok_or_else(|| {
                bad_value(key, value, "the characters not to escape, like `BNE=/`")
            })?);
        } else if key.eq_ignore_ascii_case("BCTLS") {
            e.controls = true;
        } else {
            e.no_plus = true;
        }
        Ok(())
    }
}

fn env_flag(key: &str, value: Option<&str>) -> Result<EnvFlag, Problem> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_value(key, value, "a variable and value, like `E=NAME:value`"))?;
    if let Some(name) = value.strip_prefix('!') {
        return Ok(EnvFlag::Unset(name.to_string()));
    }
    let (name, text) = value.split_once(':').unwrap_or((value, ""));
    if name.is_empty() {
        return Err(bad_value(
            key,
            Some(value),
            "a variable name before the `:`",
        ));
    }
    Ok(EnvFlag::Set(
        name.to_string(),
        Template::compile("RewriteRule [E=]", text)?,
    ))
}

fn flag_text(key: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{key}={v}"),
        None => key.to_string(),
    }
}

fn bad_value(key: &str, value: Option<&str>, wanted: &str) -> Problem {
    Problem::new(
        format!(
            "RewriteRule flag `[{}]` has a value this server cannot use",
            flag_text(key, value)
        ),
        format!("write {wanted}"),
    )
}

fn unknown_rule_flag(key: &str, value: Option<&str>) -> Problem {
    let flag = flag_text(key, value);
    let why = match key.to_ascii_uppercase().as_str() {
        "P" | "PROXY" => " (this server does not proxy requests)",
        "N" | "NEXT" => " (restarting the rules is not implemented: it loops too easily)",
        "T" | "TYPE" => " (use `ForceType` or `AddType` for the content type)",
        "H" | "HANDLER" => " (use `SetHandler` or `AddHandler`)",
        "CO" | "COOKIE" => " (setting cookies from rules is not implemented)",
        _ => "",
    };
    Problem::new(
        format!("RewriteRule flag `[{flag}]` is not one this server knows{why}"),
        format!("use one of {RULE_FLAGS}"),
    )
}

impl CondFlags {
    /// Reads a `RewriteCond` flags field.
    pub fn parse(field: &str) -> Result<CondFlags, Problem> {
        let mut flags = CondFlags::default();
        for (key, value) in items("RewriteCond", field)? {
            let is = |names: &[&str]| {
                value.is_none() && names.iter().any(|n| key.eq_ignore_ascii_case(n))
            };
            if is(&["NC", "nocase"]) {
                flags.nocase = true;
            } else if is(&["OR", "ornext"]) {
                flags.or_next = true;
            } else if is(&["NV", "novary"]) {
                flags.no_vary = true;
            } else {
                return Err(Problem::new(
                    format!(
                        "RewriteCond flag `[{}]` is not one this server knows",
                        flag_text(key, value)
                    ),
                    "use NC, OR or NV, like `[NC,OR]`",
                ));
            }
        }
        Ok(flags)
    }
}
