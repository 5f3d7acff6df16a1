//! Pure: the mod_autoindex directives a `.htaccess` may use to shape a directory listing, all
//! in the Indexes group. Whether a listing is made at all is `Options Indexes` (content.rs)
//! and the server's `[htaccess] listings`.
//!
//! - `IndexIgnore` (wildcard patterns of names left out; several lines and deeper files add to
//!   the list, as in Apache) and `IndexIgnoreReset On` (drop the inherited patterns).
//! - `HeaderName` and `ReadmeName`: a file of the site shown above and below the listing
//!   ([`Texts`]; the deepest file that names one decides, as in Apache). The listing reads it
//!   only when a request for it would be served to the same visitor (crate::listing).
//! - `IndexOptions` and `IndexOrderDefault` are accepted and have **no effect**: they choose
//!   columns, widths, icons and the sort order of Apache's own listing page, and this server's
//!   listing has its own fixed format (directories first, then by name, with each entry's
//!   verdict). They only change how a listing looks, never who may read what, so taking them
//!   without effect exposes nothing; an unknown keyword is still a problem (a typo is not
//!   silently taken), as in Apache.
//!
//! What is left out of a listing is only hidden from it: a request for the name is judged like
//! any other (Apache's `IndexIgnore` is not access control either).

use super::Problem;
use super::rules::Rules;
use super::syntax::Line;

/// The directive names this family takes into [`Rules`] (lowercase).
pub const NAMES: &[&str] = &[
    "indexignore",
    "indexignorereset",
    "indexoptions",
    "indexorderdefault",
];

/// The directive names that name a file shown with the listing (lowercase): they belong to
/// the file as a whole (its directory), not to a scope's [`Rules`]; see [`Texts`].
pub const TEXT_NAMES: &[&str] = &["headername", "readmename"];

/// `IndexOptions` keywords (Apache 2.4's, lowercase), each with whether it takes a value
/// (`NameWidth=*`); `None` says no value is needed but one may be given (`IconWidth[=n]`).
const INDEX_OPTIONS: &[(&str, Option<bool>)] = &[
    ("addaltclass", Some(false)),
    ("charset", Some(true)),
    ("descriptionwidth", Some(true)),
    ("fancyindexing", Some(false)),
    ("foldersfirst", Some(false)),
    ("htmltable", Some(false)),
    ("iconheight", None),
    ("iconsarelinks", Some(false)),
    ("iconwidth", None),
    ("ignorecase", Some(false)),
    ("ignoreclient", Some(false)),
    ("namewidth", Some(true)),
    ("none", Some(false)),
    ("scanhtmltitles", Some(false)),
    ("showforbidden", Some(false)),
    ("suppresscolumnsorting", Some(false)),
    ("suppressdescription", Some(false)),
    ("suppresshtmlpreamble", Some(false)),
    ("suppressicon", Some(false)),
    ("suppresslastmodified", Some(false)),
    ("suppressrules", Some(false)),
    ("suppresssize", Some(false)),
    ("trackmodified", Some(false)),
    ("type", Some(true)),
    ("useolddateformat", Some(false)),
    ("versionsort", Some(false)),
    ("xhtml", Some(false)),
];

/// The files one `.htaccess` names to show with its directory's listings (and its
/// subdirectories', unless a deeper file names others): `HeaderName` above the entries,
/// `ReadmeName` below them. As written: a name relative to the listed directory, or a path
/// from the site's root when it starts with `/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Texts {
    pub header: Option<String>,
    pub readme: Option<String>,
}

/// Applies one `HeaderName`/`ReadmeName` line (one of [`TEXT_NAMES`]) to `texts`.
pub fn text(texts: &mut Texts, line: &Line) -> Result<(), Problem> {
    let [name] = line.args.as_slice() else {
        return Err(Problem::new(
            format!("`{}` takes one file name", line.name),
            format!("write e.g. `{} HEADER.html`", line.name),
        ));
    };
    if super::location::scheme_len(name).is_some() || name.contains('\0') {
        return Err(Problem::new(
            format!("`{} {name}` does not name a file of this site", line.name),
            "name a file beside the listing (`HEADER.html`) or a path from the site's root (`/include/HEADER.html`)",
        ));
    }
    let slot = match line.name.to_ascii_lowercase().as_str() {
        "headername" => &mut texts.header,
        _ => &mut texts.readme,
    };
    *slot = Some(name.clone());
    Ok(())
}

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
        // Accepted without effect (see the module's docs), once every keyword is known.
        "indexoptions" => index_options(line),
        "indexorderdefault" => index_order(line),
        _ => Err(Problem::new(
            format!("`{}` is not a listing directive", line.name),
            "remove it",
        )),
    }
}

/// Checks an `IndexOptions` line: each word a known keyword (with `+`/`-`, and `=value` where
/// the keyword takes one).
fn index_options(line: &Line) -> Result<(), Problem> {
    if line.args.is_empty() {
        return Err(Problem::new(
            "`IndexOptions` takes one or more keywords",
            "write e.g. `IndexOptions FancyIndexing FoldersFirst`, or remove the line",
        ));
    }
    for word in &line.args {
        let bare = word.trim_start_matches(['+', '-']);
        let (keyword, value) = match bare.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (bare, None),
        };
        let known = INDEX_OPTIONS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(keyword));
        let fits = match (known, value) {
            (None, _) => false,
            (Some((_, Some(true))), v) => v.is_some_and(|v| !v.is_empty()),
            (Some((_, Some(false))), v) => v.is_none(),
            (Some((_, None)), _) => true,
        };
        if !fits {
            let problem = match known {
                None => format!("`{word}` is not an IndexOptions keyword"),
                Some((_, Some(true))) => format!("`{keyword}` takes a value (`{keyword}=...`)"),
                Some(_) => format!("`{keyword}` takes no value"),
            };
            return Err(Problem::new(
                problem,
                "correct it (Apache's keywords: FancyIndexing, FoldersFirst, HTMLTable, IgnoreCase, NameWidth=*, SuppressIcon, VersionSort, Charset=..., ...) or remove it; IndexOptions has no effect on this server's listing",
            ));
        }
    }
    Ok(())
}

/// Checks an `IndexOrderDefault` line: `Ascending|Descending Name|Date|Size|Description`.
fn index_order(line: &Line) -> Result<(), Problem> {
    let ok = match line.args.as_slice() {
        [order, key] => {
            ["ascending", "descending"]
                .iter()
                .any(|o| o.eq_ignore_ascii_case(order))
                && ["name", "date", "size", "description"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key))
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(Problem::new(
        "`IndexOrderDefault` takes Ascending or Descending, then Name, Date, Size or Description",
        "write e.g. `IndexOrderDefault Ascending Name`, or remove the line (it has no effect on this server's listing, which lists directories first, then by name)",
    ))
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

    #[test]
    fn index_options_and_order_are_checked_and_change_nothing() {
        let mut rules = Rules::default();
        for ok in [
            "IndexOptions FancyIndexing FoldersFirst",
            "IndexOptions +Charset=UTF-8 +NameWidth=* +DescriptionWidth=* -IconsAreLinks",
            "IndexOptions IgnoreCase SuppressHTMLPreamble HTMLTable XHTML IconWidth IconHeight=20",
            "indexoptions none",
            "IndexOrderDefault Descending Date",
            "IndexOrderDefault ascending name",
        ] {
            apply(&mut rules, &line(ok)).unwrap_or_else(|p| panic!("{ok}: {p:?}"));
        }
        assert!(rules.index_ignore.is_empty() && !rules.index_ignore_reset);
        for bad in [
            "IndexOptions",
            "IndexOptions Fancy",
            "IndexOptions NameWidth",
            "IndexOptions FoldersFirst=yes",
            "IndexOrderDefault Name",
            "IndexOrderDefault Up Name",
            "IndexOrderDefault Ascending Owner",
        ] {
            assert!(apply(&mut rules, &line(bad)).is_err(), "{bad}");
        }
        let p = apply(&mut rules, &line("IndexOptions +Fancy")).expect_err("unknown");
        assert!(p.problem.contains("`+Fancy`"), "{p:?}");
    }

    #[test]
    fn header_and_readme_names_a_file_each() {
        let mut texts = Texts::default();
        text(&mut texts, &line("HeaderName HEADER.html")).expect("valid");
        text(&mut texts, &line("ReadmeName /include/README.txt")).expect("valid");
        text(&mut texts, &line("headername TOP.txt")).expect("valid");
        assert_eq!(texts.header.as_deref(), Some("TOP.txt"));
        assert_eq!(texts.readme.as_deref(), Some("/include/README.txt"));
        assert!(text(&mut texts, &line("HeaderName")).is_err());
        assert!(text(&mut texts, &line("HeaderName a b")).is_err());
        assert!(text(&mut texts, &line("ReadmeName https://example.com/r")).is_err());
    }
}
