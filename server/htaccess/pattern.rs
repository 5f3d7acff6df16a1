//! Regular expressions written for Apache (PCRE), compiled by the `regex` crate. The two
//! agree on what `.htaccess` files use (classes, anchors, groups, alternation, counted
//! repetition); what only PCRE has (back-references, look-around, atomic groups) does not
//! compile here, and that is a [`Problem`] that says so rather than a rule that never matches.

use super::Problem;
use regex::{Regex, RegexBuilder};

/// Largest compiled program one pattern may take. The crate's default (10 MiB) is per
/// pattern; a customer's file may hold hundreds of them, and the server holds thousands of
/// customers' files.
const SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` for `directive`, ignoring case when `nocase`.
pub fn compile(directive: &str, pattern: &str, nocase: bool) -> Result<Regex, Problem> {
    RegexBuilder::new(pattern)
        .case_insensitive(nocase)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| explain(directive, pattern, &e))
}

fn explain(directive: &str, pattern: &str, error: &regex::Error) -> Problem {
    let detail = match error {
        regex::Error::CompiledTooBig(_) => "it is too large".to_string(),
        // The crate's message spans lines with a caret under the fault; keep it on one.
        other => other
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    };
    let pcre_only = [
        "(?=", "(?!", "(?<=", "(?<!", "(?>", "\\1", "\\2", "\\3", "\\k", "\\Z",
    ]
    .iter()
    .any(|p| pattern.contains(p))
        || pattern.contains("*+")
        || pattern.contains("++");
    let fix = if pcre_only {
        "this server's regular expressions have no back-references, look-around, atomic groups \
         or possessive quantifiers (Apache's PCRE has): rewrite the pattern without them, for \
         example with a `RewriteCond` for the part that looked around"
    } else {
        "correct the regular expression (Apache's syntax: PCRE)"
    };
    Problem::new(
        format!("{directive}: the pattern `{pattern}` does not compile: {detail}"),
        fix,
    )
}
