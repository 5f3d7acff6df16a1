//! Directory listings (`Options +Indexes`, allowed by `[htaccess] listings = true`): names,
//! sizes, escaping, the per-entry verdicts of the permission gate and the `.htaccess` files,
//! hidden `.ht*` names and `IndexIgnore`, the bound, HEAD, `Header`; and the refusals when a
//! listing is not asked for or the server has listings off.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::support::{Site, bin};

fn explain(site: &Site, what: &str) -> String {
    site.write_config();
    let out = std::process::Command::new(bin())
        .args(["explain", "--config"])
        .arg(site.config_path())
        .arg(what)
        .output()
        .expect("explain");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const OK_CGI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n";

/// The row of the listing that links to `href`.
fn row<'a>(page: &'a str, href: &str) -> &'a str {
    let needle = format!("<a href=\"{href}\">");
    page.lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no row for {href} in:\n{page}"))
}

fn listing_site() -> Site {
    let site = Site::new().config("[htaccess]\nlistings = true");
    site.file(
        "pub/.htaccess",
        "Options +Indexes\nIndexIgnore *.bak\nHeader set X-Listing yes\n",
        0o644,
    );
    site.file("pub/readme.txt", "hello", 0o644);
    site.file("pub/<b>&'x\".txt", "xy", 0o644);
    site.file("pub/bad.cgi", OK_CGI, 0o644);
    site.file("pub/good.cgi", OK_CGI, 0o755);
    site.file("pub/secret.txt", "s", 0o600);
    site.file("pub/old.bak", "b", 0o644);
    site.file("pub/sub/index.html", "sub", 0o644);
    site.file("pub/closed/.htaccess", "Require all denied\n", 0o644);
    let latin1 = site.path("pub").join(OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::write(&latin1, "latin-1").expect("write");
    site.own(&latin1);
    std::os::unix::fs::symlink("/etc", site.path("pub/out")).expect("symlink");
    site
}

#[test]
fn a_listing_names_each_entry_with_what_the_server_does_with_it() {
    let site = listing_site();
    let server = site.start();
    let r = server.get("/pub/");
    let page = r.text();
    assert_eq!(r.status, 200, "{page}");
    assert_eq!(r.header("x-listing"), Some("yes"), "Header rules apply");
    assert!(page.contains("Index of /pub/"), "{page}");
    assert!(row(&page, "../").contains("Parent directory"));
    let readme = row(&page, "readme.txt");
    assert!(
        readme.contains("<td>5</td>") && readme.contains(">served<"),
        "{readme}"
    );
    let hostile = row(&page, "%3Cb%3E%26%27x%22.txt");
    assert!(
        hostile.contains("&lt;b&gt;&amp;&#39;x&quot;.txt"),
        "{hostile}"
    );
    assert!(!page.contains("<b>&"), "names are escaped:\n{page}");
    let bad = row(&page, "bad.cgi");
    assert!(bad.contains("refused (500)"), "{bad}");
    assert!(bad.contains("nobody may execute it"), "{bad}");
    assert!(row(&page, "good.cgi").contains("runs as a script"));
    assert!(row(&page, "secret.txt").contains("refused (403)"));
    assert!(
        row(&page, "out").contains("refused (403)"),
        "a link out is refused"
    );
    let closed = row(&page, "closed/");
    assert!(
        closed.contains("refused (403)") && closed.contains("line 1: `Require all denied`"),
        "{closed}"
    );
    assert!(row(&page, "sub/").contains("served"));
    assert!(!page.contains("href=\".htaccess\""), "hidden:\n{page}");
    assert!(!page.contains("old.bak"), "IndexIgnore:\n{page}");
    // Directories first, then by name.
    let at = |needle: &str| page.find(needle).unwrap_or(usize::MAX);
    assert!(at("href=\"closed/\"") < at("href=\"sub/\""));
    assert!(at("href=\"sub/\"") < at("href=\"bad.cgi\""));
    assert!(at("href=\"bad.cgi\"") < at("href=\"readme.txt\""));
    // A name that is not UTF-8 links to its own bytes.
    let latin1 = row(&page, "caf%E9.txt");
    assert!(latin1.contains("caf\u{fffd}.txt"), "{latin1}");
    assert_eq!(server.get("/pub/caf%E9.txt").text(), "latin-1");
    assert_eq!(server.get("/pub/good.cgi").text(), "ok");

    let said = explain(&site, "/pub/");
    assert!(
        said.contains(
            "a directory listing is sent, by the .htaccess in /pub/ (line 1: `Options +Indexes`)"
        ),
        "{said}"
    );

    let head = server.request("HEAD", "/pub/", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(page.len().to_string().as_str())
    );
}

#[test]
fn without_the_server_setting_the_directory_is_refused_and_the_setting_named() {
    let site = Site::new();
    site.file("pub/.htaccess", "# listing\nOptions +Indexes\n", 0o644);
    site.file("pub/readme.txt", "hello", 0o644);
    let server = site.start();
    let r = server.get("/pub/");
    let text = r.text();
    assert_eq!(r.status, 403, "{text}");
    assert!(text.contains("listings are off on this server"), "{text}");
    assert!(text.contains("listings = true"), "{text}");
    assert!(text.contains("the .htaccess in /pub/ (line 2"), "{text}");
    assert!(!text.contains("readme.txt"), "{text}");
    let said = explain(&site, "/pub/");
    assert!(said.contains("refused (403)"), "{said}");
    assert!(said.contains("listings are off on this server"), "{said}");
}

#[test]
fn without_options_indexes_there_is_no_listing() {
    let site = Site::new().config("[htaccess]\nlistings = true");
    site.file("pub/.htaccess", "Options -Indexes\n", 0o644);
    site.file("pub/readme.txt", "hello", 0o644);
    site.file("plain/readme.txt", "hello", 0o644);
    let server = site.start();
    for dir in ["/pub/", "/plain/"] {
        let r = server.get(dir);
        let text = r.text();
        assert_eq!(r.status, 403, "{dir}: {text}");
        assert!(text.contains("no index.html"), "{dir}: {text}");
        assert!(!text.contains("readme.txt"), "{dir}: {text}");
    }
}

#[test]
fn index_ignore_star_hides_everything_and_a_deeper_reset_shows_again() {
    let site = Site::new().config("[htaccess]\nlistings = true");
    site.file("pub/.htaccess", "Options +Indexes\nIndexIgnore *\n", 0o644);
    site.file("pub/readme.txt", "hello", 0o644);
    site.file("pub/deeper/.htaccess", "IndexIgnoreReset On\n", 0o644);
    site.file("pub/deeper/shown.txt", "hello", 0o644);
    let server = site.start();
    let text = server.get("/pub/").text();
    assert!(text.contains("0 entries."), "{text}");
    assert!(!text.contains("readme.txt"), "{text}");
    let text = server.get("/pub/deeper/").text();
    assert!(text.contains("shown.txt"), "{text}");
}

#[test]
fn a_huge_directory_is_listed_up_to_the_limit_and_says_so() {
    let site = Site::new().config("[htaccess]\nlistings = true\nlisting_limit = 50");
    site.file("big/.htaccess", "Options +Indexes\n", 0o644);
    let dir = site.path("big");
    for i in 0..20_000 {
        std::fs::write(dir.join(format!("f{i:05}.txt")), "x").expect("write");
    }
    let server = site.start();
    let r = server.get("/big/");
    let text = r.text();
    assert_eq!(r.status, 200);
    assert!(
        text.contains("50 of 20000 entries shown"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.contains("href=\"f00000.txt\"") && text.contains("href=\"f00049.txt\""));
    assert!(!text.contains("href=\"f00050.txt\""));
}

#[test]
fn refusals_in_a_listing_say_why_only_when_the_server_explains_errors() {
    let site = Site::new().config("[server]\nexplain_errors = false\n[htaccess]\nlistings = true");
    site.file("pub/.htaccess", "Options +Indexes\n", 0o644);
    site.file("pub/bad.cgi", OK_CGI, 0o644);
    let server = site.start();
    let text = server.get("/pub/").text();
    let bad = row(&text, "bad.cgi");
    assert!(bad.contains("refused (500)"), "{bad}");
    assert!(!bad.contains("execute"), "{bad}");
}

/// Stock `.htaccess` files carry mod_autoindex's looks: `IndexOptions` and `IndexOrderDefault`
/// are taken and change nothing (this listing has its own format), an unknown keyword is a
/// fault; `HeaderName`/`ReadmeName` frame the listing with a file of the site, shown as HTML
/// when it is `.html` and escaped otherwise, and only when the visitor could fetch it.
#[test]
fn header_and_readme_frame_a_listing_and_index_options_change_nothing() {
    let site = Site::new().config("[htaccess]\nlistings = true");
    site.file(
        "pub/.htaccess",
        "Options +Indexes\n\
         IndexOptions +FancyIndexing +FoldersFirst +NameWidth=* +Charset=UTF-8 -IconsAreLinks\n\
         IndexOrderDefault Descending Date\n\
         HeaderName HEADER.html\n\
         ReadmeName README.txt\n",
        0o644,
    );
    site.file("pub/HEADER.html", "<h2 id=\"top\">Our files</h2>", 0o644);
    site.file("pub/README.txt", "Read <me> & enjoy", 0o644);
    site.file("pub/a.txt", "a", 0o644);
    site.file(
        "pub/deep/.htaccess",
        "ReadmeName /secret.txt\nHeaderName ../HEADER.html\n",
        0o644,
    );
    site.file("pub/deep/b.txt", "b", 0o644);
    site.file("secret.txt", "do not show", 0o600);
    site.file(
        "typo/.htaccess",
        "Options +Indexes\nIndexOptions +Fancy\n",
        0o644,
    );
    site.file("typo/c.txt", "c", 0o644);
    let server = site.start();

    let r = server.get("/pub/");
    let page = r.text();
    assert_eq!(r.status, 200, "{page}");
    assert!(page.contains("<h2 id=\"top\">Our files</h2>"), "{page}");
    assert!(
        !page.contains("<h1>"),
        "the header takes the heading's place:\n{page}"
    );
    let readme = page
        .find("<pre>Read &lt;me&gt; &amp; enjoy</pre>")
        .unwrap_or_else(|| panic!("escaped readme:\n{page}"));
    assert!(readme > page.find("</table>").expect("table"), "{page}");
    // The order is this listing's own (directories first, then by name), whatever
    // IndexOrderDefault says.
    let at = |href: &str| page.find(&format!("<a href=\"{href}\">")).expect(href);
    assert!(at("deep/") < at("HEADER.html") && at("README.txt") < at("a.txt"));

    // A deeper file names its own; a readme the visitor may not read (0600) is left out.
    let r = server.get("/pub/deep/");
    let page = r.text();
    assert_eq!(r.status, 200, "{page}");
    assert!(page.contains("<h2 id=\"top\">Our files</h2>"), "{page}");
    assert!(!page.contains("do not show"), "{page}");
    assert!(!page.contains("<pre>"), "{page}");

    let r = server.get("/typo/");
    let text = r.text();
    assert_eq!(r.status, 500, "{text}");
    assert!(
        text.contains("`+Fancy` is not an IndexOptions keyword"),
        "{text}"
    );
    assert_eq!(server.get("/typo/c.txt").status, 500);
}
