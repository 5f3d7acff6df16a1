//! A [`Listing`] as an HTML page: every name escaped (names are bytes, shown lossily as UTF-8),
//! every link percent-encoded from the name's own bytes, so that a non-UTF-8 name still links
//! to itself.

use std::fmt::Write;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use super::{Entry, Listing};
use crate::forecast::Verdict;

/// What a link keeps as it is: the unreserved characters of RFC 3986.
///
/// SECURITY: everything else is encoded, `:` and `/` included, so that a file named
/// `javascript:alert(1)` or `//evil.example` is a relative link to itself, never a script or
/// another site.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The page.
pub fn render(listing: &Listing) -> String {
    let title = escape(&format!("Index of {}", listing.url));
    // A `HeaderName` file takes the heading's place, as in Apache.
    let top = match &listing.header {
        Some(header) => format!("{header}\n"),
        None => format!("<h1>{title}</h1>\n"),
    };
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{STYLE}</style></head>\n<body>\n{top}<table>\n<tr><th>Name</th><th>Last modified</th><th>Size</th><th>What the server does with it</th></tr>\n"
    );
    if !listing.at_root {
        page.push_str(
            "<tr><td><a href=\"../\">Parent directory</a></td><td></td><td>-</td><td></td></tr>\n",
        );
    }
    for entry in &listing.entries {
        row(&mut page, entry, listing.explained);
    }
    page.push_str("</table>\n");
    let shown = listing.entries.len();
    if shown < listing.total {
        let _ = writeln!(
            page,
            "<p class=\"more\">{shown} of {} entries shown: a listing stops at {} (directories first, then by name).</p>",
            listing.total, listing.limit
        );
    } else {
        let _ = writeln!(page, "<p class=\"more\">{shown} entries.</p>");
    }
    if let Some(readme) = &listing.readme {
        page.push_str(readme);
        page.push('\n');
    }
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font-family:sans-serif}td,th{padding:0 1em 0 0;text-align:left}\
.served,.runs{color:#060}.refused{color:#a00}.other{color:#555}.more{color:#555}";

fn row(page: &mut String, entry: &Entry, explained: bool) {
    let mut href = percent_encode(&entry.name, KEPT).to_string();
    let mut shown = escape(&String::from_utf8_lossy(&entry.name));
    let size = if entry.is_dir {
        href.push('/');
        shown.push('/');
        "-".to_string()
    } else {
        entry.stat.st_size.to_string()
    };
    let (class, what) = verdict(&entry.verdict, explained);
    let _ = writeln!(
        page,
        "<tr><td><a href=\"{href}\">{shown}</a></td><td>{}</td><td>{size}</td><td class=\"{class}\">{}</td></tr>",
        date(entry.stat.st_mtime),
        escape(&what)
    );
}

/// The verdict in a few words, and its class for the page's colours; refusals say why only
/// when the server explains its errors.
fn verdict(v: &Verdict, explained: bool) -> (&'static str, String) {
    match v {
        Verdict::Served { .. } => ("served", "served".into()),
        Verdict::Listed { .. } => ("served", "listed".into()),
        Verdict::Runs { .. } => ("runs", "runs as a script".into()),
        Verdict::Fails { status, why } | Verdict::Refused { status, why } => (
            "refused",
            if explained {
                format!("refused ({status}): {}", why.reason)
            } else {
                format!("refused ({status})")
            },
        ),
        Verdict::Redirected {
            status, location, ..
        } => ("other", format!("redirected ({status}) to {location}")),
        Verdict::Login { .. } => ("other", "asks for a login".into()),
        Verdict::AddSlash => ("other", "a directory".into()),
        Verdict::NotFound => ("other", "gone".into()),
        Verdict::Fault { .. } => ("refused", "refused (500)".into()),
    }
}

/// `&`, `<`, `>`, `"` and `'` as entities (the error page's escaping).
pub(super) fn escape(text: &str) -> String {
    crate::error_page::escape(text)
}

/// `2024-05-01 12:34` (UTC) for seconds since the epoch.
fn date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_escapes_and_links() {
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(951_782_400), "2000-02-29 00:00");
        assert_eq!(date(1_714_566_840), "2024-05-01 12:34");
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let href = percent_encode(b"javascript:alert(1) \xff/x", KEPT).to_string();
        assert_eq!(href, "javascript%3Aalert%281%29%20%FF%2Fx");
    }
}
