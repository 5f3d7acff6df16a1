//! Pure: the mod_autoindex directives a `.htaccess` may use to shape a directory listing:
//! `IndexIgnore` (wildcard patterns of names left out; several lines and deeper files add to
//! the list, as in Apache) and `IndexIgnoreReset On` (drop the inherited patterns). Both are in
//! the Indexes group. Whether a listing is made at all is `Options Indexes` (content.rs) and
//! the server's `[htaccess] listings`.
//!
//! What is left out of a listing is only hidden from it: a request for the name is judged like
//! any other (Apache's `IndexIgnore` is not access control either).

use super::Problem;
use super::rules::Rules;
use super::syntax::Line;

/// The directive names this family takes (lowercase).
pub const NAMES: &[&str] = &["indexignore", "indexignorereset"];

/// Applies one line of this family to `rules`.
pub fn apply(rules: &mut Rules, line: &Line) -> Result<(), Problem> {
    match line.name.to_ascii_lowercase().as_str() {
        "indexignore" if !line.args.is_empty() => {
            for pattern in &line.args {
                // Apache also matches a pattern with a slash against the whole path; names in
                // one listing have no slash, so only the last part of such a pattern can match.
                let last = pattern.rsplit('/').next().unwrap_or(pattern);
                rules.index_ignore.push(last.to_string());
            }
            Ok(())
        }
        "indexignore" => Err(Problem::new(
            "`IndexIgnore` takes one or more name patterns",
            "write e.g. `IndexIgnore *.bak README*`",
        )),
        "indexignorereset" => match line.args.first().map(|a| a.to_ascii_lowercase()) {
            Some(v) if line.args.len() == 1 && (v == "on" || v == "off") => {
                rules.index_ignore_reset = v == "on";
                Ok(())
            }
            _ => Err(Problem::new(
                "`IndexIgnoreReset` takes On or Off",
                "write `IndexIgnoreReset On`",
            )),
        },
        _ => Err(Problem::new(
            format!("`{}` is not a listing directive", line.name),
            "remove it",
        )),
    }
}

/// Whether a listing leaves out the entry named `name` by these patterns.
pub fn ignored(patterns: &[String], name: &[u8]) -> bool {
    patterns
        .iter()
        .any(|p| super::file::glob(p.as_bytes(), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::syntax::line;

    #[test]
    fn patterns_add_up_and_a_reset_drops_the_inherited_ones() {
        let mut top = Rules::default();
        apply(&mut top, &line("IndexIgnore *.bak")).expect("valid");
        apply(&mut top, &line("IndexIgnore README* /x/secret")).expect("valid");
        assert!(ignored(&top.index_ignore, b"site.bak"));
        assert!(ignored(&top.index_ignore, b"README.txt"));
        assert!(ignored(&top.index_ignore, b"secret"));
        assert!(!ignored(&top.index_ignore, b"index.html"));
        let mut deeper = Rules::default();
        apply(&mut deeper, &line("IndexIgnoreReset On")).expect("valid");
        apply(&mut deeper, &line("IndexIgnore *")).expect("valid");
        let mut merged = top.clone();
        merged.merge(&deeper);
        assert_eq!(merged.index_ignore, vec!["*".to_string()]);
        assert!(ignored(&merged.index_ignore, b"anything"));
        assert!(apply(&mut top, &line("IndexIgnore")).is_err());
        assert!(apply(&mut top, &line("IndexIgnoreReset maybe")).is_err());
    }
}
