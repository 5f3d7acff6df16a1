//! Strings with references in them, as mod_rewrite expands test strings, substitutions and
//! `[E=]` values (`do_expand`): `$N` is group N of the rule's pattern, `%N` group N of the
//! last condition that matched, `%{NAME}` a server variable, `%{HTTP:Name}` a request header,
//! `%{ENV:NAME}` an environment variable, and a backslash keeps the next character as it is.
//! Names are checked when the file is read: Apache expands a name it does not know to an
//! empty string, which silently changes what a condition means; here it is a [`Problem`].

use super::super::Problem;
use super::super::context::{Context, HEADER_VARIABLES, VARIABLES};

/// What a `%{...}` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Variable {
    /// A server variable the [`Context`] answers.
    Server(&'static str),
    /// A request header (`%{HTTP:Name}`, or one of the `HTTP_*` names).
    Header(String),
    /// `%{ENV:NAME}`.
    Env(String),
    /// `QUERY_STRING`: the query as rewritten so far in this pass.
    Query,
    /// `IS_SUBREQ`: this server makes no sub-requests.
    SubRequest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Rule(usize),
    Cond(usize),
    Var(Variable),
}

/// A compiled string with references.
#[derive(Clone, Debug)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What references read from: the request, the groups matched so far, the pass's state.
pub struct Scope<'a> {
    pub ctx: &'a dyn Context,
    /// Groups 0-9 of the rule's pattern (`$N`).
    pub rule: Vec<Option<String>>,
    /// Groups 0-9 of the last condition that matched (`%N`).
    pub cond: Vec<Option<String>>,
    /// The query string as rewritten so far.
    pub query: Option<String>,
    /// `[E=]` settings of this pass, in order (`None` unsets).
    pub env: Vec<(String, Option<String>)>,
    /// Headers read while evaluating conditions (for `Vary`).
    pub headers: Vec<String>,
}

/// How back-references are escaped in a substitution (the `[B]` family of flags).
#[derive(Clone, Debug, Default)]
pub struct Escaping {
    /// `B=chars`: only these characters (else every one but letters, digits and `_`).
    pub only: Option<String>,
    /// `BNE=chars`: never these.
    pub except: Option<String>,
    /// `BNP`: a space becomes `%20`, not `+`.
    pub no_plus: bool,
    /// `BCTLS`: only control characters and spaces.
    pub controls: bool,
}

/// An expanded string, with where the `?`s that came from references are (a `?` from a
/// decoded `%3f` in the request must not split the query: CVE-2024-38474).
pub struct Expanded {
    pub text: String,
    pub unsafe_qmarks: Vec<usize>,
}

impl Template {
    /// Compiles `text` as an argument of `directive`.
    pub fn compile(directive: &str, text: &str) -> Result<Template, Problem> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let after = &rest[c.len_utf8()..];
            let next = after.chars().next();
            match (c, next) {
                ('\\', Some(n)) => {
                    literal.push(n);
                    rest = &after[n.len_utf8()..];
                    continue;
                }
                ('$' | '%', Some(d)) if d.is_ascii_digit() => {
                    flush(&mut literal, &mut pieces);
                    let n = usize::from(d as u8 - b'0');
                    pieces.push(if c == '$' {
                        Piece::Rule(n)
                    } else {
                        Piece::Cond(n)
                    });
                    rest = &after[1..];
                    continue;
                }
                ('$', Some('{')) if after.contains('}') => {
                    return Err(Problem::new(
                        format!(
                            "{directive}: `{text}` looks a value up in a RewriteMap (`${{...}}`)"
                        ),
                        "RewriteMap can only be defined in the server configuration, and this \
                         server has none: write the mapping out as rules",
                    ));
                }
                ('%', Some('{')) => {
                    if let Some(end) = after.find('}') {
                        flush(&mut literal, &mut pieces);
                        let name = &after[1..end];
                        pieces.push(Piece::Var(variable(directive, name)?));
                        rest = &after[end + 1..];
                        continue;
                    }
                }
                _ => {}
            }
            literal.push(c);
            rest = after;
        }
        flush(&mut literal, &mut pieces);
        Ok(Template { pieces })
    }

    /// The text, when the template has no references.
    pub fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Expands the template, escaping back-references as `escaping` says.
    pub fn expand(&self, scope: &mut Scope, escaping: Option<&Escaping>) -> Expanded {
        let mut text = String::new();
        let mut unsafe_qmarks = Vec::new();
        for piece in &self.pieces {
            let value = match piece {
                Piece::Text(t) => {
                    text.push_str(t);
                    continue;
                }
                Piece::Rule(n) => backref(&scope.rule, *n, escaping),
                Piece::Cond(n) => backref(&scope.cond, *n, escaping),
                Piece::Var(v) => lookup(v, scope),
            };
            unsafe_qmarks.extend(value.match_indices('?').map(|(i, _)| text.len() + i));
            text.push_str(&value);
        }
        Expanded {
            text,
            unsafe_qmarks,
        }
    }
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Text(std::mem::take(literal)));
    }
}

fn backref(groups: &[Option<String>], n: usize, escaping: Option<&Escaping>) -> String {
    let value = groups.get(n).cloned().flatten().unwrap_or_default();
    match escaping {
        Some(e) => escape_backref(&value, e),
        None => value,
    }
}

/// Apache's `escape_backref`, byte by byte.
fn escape_backref(value: &str, e: &Escaping) -> String {
    let in_set =
        |set: &Option<String>, b: u8| set.as_deref().is_some_and(|s| s.as_bytes().contains(&b));
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        let wanted = if e.controls {
            b.is_ascii_control() || b == b' ' || in_set(&e.only, b)
        } else {
            e.only.is_none() || in_set(&e.only, b)
        };
        if !wanted || in_set(&e.except, b) || b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b);
        } else if b == b' ' && !e.no_plus {
            out.push(b'+');
        } else {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    // Kept bytes are whole characters unless `B=`/`BNE=` named a byte of a multi-byte one.
    String::from_utf8_lossy(&out).into_owned()
}

fn lookup(v: &Variable, scope: &mut Scope) -> String {
    let value = match v {
        Variable::Server(name) => scope.ctx.variable(name),
        Variable::Header(name) => {
            scope.headers.push(name.clone());
            scope.ctx.header(name)
        }
        Variable::Env(name) => match scope.env.iter().rev().find(|(n, _)| n == name) {
            Some((_, value)) => value.clone(),
            None => scope.ctx.env(name),
        },
        Variable::Query => scope.query.clone(),
        Variable::SubRequest => Some("false".into()),
    };
    value.unwrap_or_default()
}

/// The variable `%{name}` reads.
fn variable(directive: &str, name: &str) -> Result<Variable, Problem> {
    if let Some((prefix, rest)) = name.split_once(':') {
        if prefix.eq_ignore_ascii_case("HTTP") && !rest.is_empty() {
            return Ok(Variable::Header(rest.to_string()));
        }
        if prefix.eq_ignore_ascii_case("ENV") && !rest.is_empty() {
            return Ok(Variable::Env(rest.to_string()));
        }
        return Err(Problem::new(
            format!("{directive}: `%{{{name}}}` is not a lookup this server can make"),
            "use `%{HTTP:Header-Name}` for a request header, `%{ENV:NAME}` for an environment \
             variable, or a server variable like `%{REQUEST_URI}` (SSL:, LA-U: and LA-F: \
             lookups are not implemented)",
        ));
    }
    if let Some(known) = VARIABLES.iter().find(|v| **v == name) {
        return Ok(Variable::Server(known));
    }
    if let Some((_, header)) = HEADER_VARIABLES.iter().find(|(v, _)| *v == name) {
        return Ok(Variable::Header((*header).to_string()));
    }
    match name {
        "QUERY_STRING" => return Ok(Variable::Query),
        "IS_SUBREQ" => return Ok(Variable::SubRequest),
        _ => {}
    }
    let upper = name.to_ascii_uppercase();
    let known = |n: &str| {
        VARIABLES.contains(&n)
            || HEADER_VARIABLES.iter().any(|(v, _)| *v == n)
            || n == "QUERY_STRING"
            || n == "IS_SUBREQ"
    };
    let fix = if upper != name && known(&upper) {
        format!("variable names are case-sensitive: write `%{{{upper}}}`")
    } else if let Some(header) = upper.strip_prefix("HTTP_") {
        format!(
            "read other request headers as `%{{HTTP:{}}}`",
            header.replace('_', "-")
        )
    } else {
        format!(
            "use one of QUERY_STRING, IS_SUBREQ, {}, {}, or %{{HTTP:Header}} / %{{ENV:NAME}}",
            HEADER_VARIABLES
                .iter()
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(", "),
            VARIABLES.join(", ")
        )
    };
    Err(Problem::new(
        format!("{directive}: `%{{{name}}}` is not a variable this server knows"),
        fix,
    ))
}
