//! One `RewriteCond`: a test string, and what it is tested against (a regular expression, a
//! file test, or a string or number comparison), read as Apache's `cmd_rewritecond` reads it
//! and evaluated as `apply_rewrite_cond` does.

use super::super::context::FileTest;
use super::super::{Problem, pattern};
use super::flags::CondFlags;
use super::template::{Scope, Template};
use regex::Regex;
use std::cmp::Ordering;

#[derive(Clone, Debug)]
enum Test {
    Regex(Regex),
    File(FileTest),
    /// `=`, `<`, `<=`, `>`, `>=`: the orderings that pass, and the string compared with.
    Text(&'static [Ordering], String),
    /// `-eq`, `-lt`...: the orderings that pass, and the number compared with.
    Number(&'static [Ordering], i64),
}

/// A compiled `RewriteCond`.
#[derive(Clone, Debug)]
pub struct Condition {
    pub line: usize,
    input: Template,
    test: Test,
    negate: bool,
    pub flags: CondFlags,
}

const LESS: &[Ordering] = &[Ordering::Less];
const LESS_EQ: &[Ordering] = &[Ordering::Less, Ordering::Equal];
const EQUAL: &[Ordering] = &[Ordering::Equal];
const GREATER: &[Ordering] = &[Ordering::Greater];
const GREATER_EQ: &[Ordering] = &[Ordering::Greater, Ordering::Equal];

impl Condition {
    /// Compiles `RewriteCond input pattern [flags]` from line `line`.
    pub fn compile(line: usize, args: &[String]) -> Result<Condition, Problem> {
        let (input, pattern, flags) = match args {
            [i, p] => (i, p, CondFlags::default()),
            [i, p, f] => (i, p, CondFlags::parse(f)?),
            _ => {
                return Err(Problem::new(
                    format!(
                        "RewriteCond takes a test string, a pattern and optional flags; this one has {} argument(s)",
                        args.len()
                    ),
                    "write it like `RewriteCond %{REQUEST_FILENAME} !-f`; quote a pattern that contains spaces",
                ));
            }
        };
        if input.eq_ignore_ascii_case("expr") {
            return Err(Problem::new(
                "RewriteCond expr (an ap_expr expression) is not implemented",
                "write the condition with a test string and a pattern, like `RewriteCond %{HTTPS} off`",
            ));
        }
        let (negate, body) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern.as_str()),
        };
        let (test, flip) = test(body, flags.nocase)?;
        Ok(Condition {
            line,
            input: Template::compile("RewriteCond", input)?,
            test,
            negate: negate != flip,
            flags,
        })
    }

    /// Whether the condition holds; a regular expression that matches (not negated) leaves
    /// its groups in `scope.cond` for `%N`.
    pub fn holds(&self, scope: &mut Scope) -> bool {
        let input = self.input.expand(scope, None).text;
        let nocase = self.flags.nocase;
        let passed = match &self.test {
            Test::Regex(re) => match re.captures(&input) {
                Some(caps) => {
                    if !self.negate {
                        scope.cond = super::groups(&caps);
                    }
                    true
                }
                None => false,
            },
            Test::File(kind) => !input.is_empty() && scope.ctx.file_test(&input, *kind),
            Test::Text(pass, with) => pass.contains(&compare_text(&input, with, nocase)),
            Test::Number(pass, with) => pass.contains(&atoi(&input).cmp(with)),
        };
        passed != self.negate
    }
}

/// The test a pattern (after its `!`) makes, and whether it inverts the negation (`-ne`).
fn test(body: &str, nocase: bool) -> Result<(Test, bool), Problem> {
    // Apache: a one-character pattern is always a regular expression (`.` is common).
    if body.len() >= 2 {
        let file = match body {
            "-f" => Some(FileTest::File),
            "-d" => Some(FileTest::Directory),
            "-s" => Some(FileTest::NonEmptyFile),
            "-l" | "-L" | "-h" => Some(FileTest::Symlink),
            "-x" => Some(FileTest::Executable),
            "-F" | "-U" => {
                return Err(Problem::new(
                    format!(
                        "RewriteCond `{body}` (a test through a sub-request) is not implemented"
                    ),
                    "test the file itself with `-f` or `-d` on %{REQUEST_FILENAME}",
                ));
            }
            _ => None,
        };
        if let Some(kind) = file {
            return Ok((Test::File(kind), false));
        }
        if let Some(number) = number_test(body) {
            return Ok(number);
        }
        let text = if let Some(rest) = body.strip_prefix(">=") {
            Some((GREATER_EQ, rest))
        } else if let Some(rest) = body.strip_prefix("<=") {
            Some((LESS_EQ, rest))
        } else if let Some(rest) = body.strip_prefix('>') {
            Some((GREATER, rest))
        } else if let Some(rest) = body.strip_prefix('<') {
            Some((LESS, rest))
        } else {
            // `=""` is the empty string.
            body.strip_prefix('=')
                .map(|rest| (EQUAL, if rest == "\"\"" { "" } else { rest }))
        };
        if let Some((pass, with)) = text {
            return Ok((Test::Text(pass, with.to_string()), false));
        }
    }
    Ok((
        Test::Regex(pattern::compile("RewriteCond", body, nocase)?),
        false,
    ))
}

/// `-eq N`, `-lt N`... written together (`-lt10`), as Apache reads them.
fn number_test(body: &str) -> Option<(Test, bool)> {
    let ops: [(&str, &'static [Ordering], bool); 6] = [
        ("-lt", LESS, false),
        ("-le", LESS_EQ, false),
        ("-gt", GREATER, false),
        ("-ge", GREATER_EQ, false),
        ("-eq", EQUAL, false),
        ("-ne", EQUAL, true),
    ];
    ops.into_iter().find_map(|(op, pass, flip)| {
        let rest = body.strip_prefix(op).filter(|r| !r.is_empty())?;
        Some((Test::Number(pass, atoi(rest)), flip))
    })
}

/// Apache's string ordering: case-blind lexical with NC, else shorter first, then by bytes.
fn compare_text(a: &str, b: &str, nocase: bool) -> Ordering {
    if nocase {
        a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())
    } else {
        a.len()
            .cmp(&b.len())
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    }
}

/// C's `atoi`: leading spaces, a sign, digits; anything else ends it (and nothing is 0).
fn atoi(text: &str) -> i64 {
    let t = text.trim_start();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    }) * sign
}
