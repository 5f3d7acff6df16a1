//! The panel's pages, rendered on the server: plain HTML that works without JavaScript (the
//! script only makes the permission badge follow the checkboxes live), readable on a phone.
//! Every text that comes from a file name, a path or a verdict goes through [`escape`].

use std::fmt::Write;

use sftp_upload::Entry;

/// Entries shown on one page of a listing.
pub const PAGE: usize = 200;

/// What the web makes of a file, as the panel shows it.
#[derive(Clone, Debug)]
pub struct Badge {
    /// `served`, `runs`, `refused` or `off` (not on the web).
    pub class: &'static str,
    /// A short word or two for the badge.
    pub label: &'static str,
    /// The verdict in a sentence.
    pub line: String,
}

impl Badge {
    /// The badge of a file that is not on the web (outside the web root).
    pub fn off_the_web() -> Badge {
        Badge {
            class: "off",
            label: "not on the web",
            line: "outside the web root: not served".into(),
        }
    }
}

/// `text` made safe for HTML text and attribute values (the error pages' escaping).
pub use crate::error_page::escape;

/// `bytes` (a path or a name) percent-encoded for a query string.
pub fn query(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A whole page: `title`, then `body`; `user` names who is logged in (with the logout form).
pub fn layout(title: &str, user: Option<(&str, &str)>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · yadokari</title>\n<link rel=\"stylesheet\" href=\"/assets/panel.css\">\n\
         <script src=\"/assets/panel.js\" defer></script>\n</head>\n<body>\n<header><strong>yadokari</strong>",
        escape(title)
    );
    if let Some((name, csrf)) = user {
        let _ = write!(
            out,
            " <nav><a href=\"/files?path=%2F\">Files</a> <a href=\"/logs\">Logs</a> <a href=\"/account\">Account</a></nav> <span class=\"who\">{}</span>\
             <form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form>",
            escape(name),
            escape(csrf)
        );
    }
    let _ = write!(
        out,
        "</header>\n<main>\n<h1>{}</h1>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    );
    out
}

/// The login form, with `problem` said above it.
pub fn login(problem: Option<&str>) -> String {
    let said = problem.map_or(String::new(), |p| {
        format!("<p class=\"problem\" role=\"alert\">{}</p>\n", escape(p))
    });
    layout(
        "Log in",
        None,
        &format!(
            "{said}<form method=\"post\" action=\"/login\" class=\"login\">\n\
             <label for=\"name\">User name</label> <input id=\"name\" name=\"name\" autocomplete=\"username\" required>\n\
             <label for=\"password\">Password</label> <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
             <button type=\"submit\">Log in</button>\n</form>\n\
             <p>Use the name and password of your SFTP login.</p>\n"
        ),
    )
}

/// `drwxr-xr-x` for `mode`, as `ls -l` (and the SFTP listing) shows it.
pub use sftp_upload::mode_string;

/// The badge's HTML.
pub fn badge(b: &Badge) -> String {
    format!(
        "<span class=\"badge {}\" title=\"{}\">{}</span>",
        b.class,
        escape(&b.line),
        b.label
    )
}

/// What an action did, on top of the page that follows it.
fn said_block(said: Option<&str>) -> String {
    match said {
        Some(said) if !said.is_empty() => format!(
            "<p class=\"said\" role=\"status\">{}</p>\n",
            escape(said).replace('\n', "<br>")
        ),
        _ => String::new(),
    }
}

/// A directory's page: where it is, its entries (`page` of them), each with its badge, and
/// the forms to upload and to make a folder.
pub fn listing(
    dir: &str,
    entries: &[(Entry, Option<Badge>)],
    (page, pages): (usize, usize),
    csrf: &str,
    said: Option<&str>,
) -> String {
    let mut body = said_block(said);
    let _ = writeln!(body, "<p class=\"where\">{}</p>", crumbs(dir));
    let (d, c) = (query(dir.as_bytes()), query(csrf.as_bytes()));
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/upload?csrf={c}&amp;dir={d}\" enctype=\"multipart/form-data\" id=\"upload\" class=\"drop\">\n\
         <label for=\"files\">Upload files here</label> <input type=\"file\" id=\"files\" name=\"files\" multiple>\n\
         <button type=\"submit\">Upload</button> <progress id=\"progress\" max=\"100\" value=\"0\" hidden></progress>\n\
         <span class=\"hint\">or drop files on this box</span>\n</form>\n\
         <form method=\"post\" action=\"/mkdir\" class=\"inline\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"dir\" value=\"{}\">\n\
         <label for=\"folder\">New folder</label> <input id=\"folder\" name=\"name\" required> <button type=\"submit\">Make</button>\n</form>\n",
        escape(csrf),
        escape(dir)
    );
    body.push_str(
        "<table class=\"files\">\n<thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Size</th>\
         <th scope=\"col\">Permissions</th><th scope=\"col\">On the web</th><th scope=\"col\">Actions</th></tr></thead>\n<tbody>\n",
    );
    if dir != "/" {
        let parent = dir
            .rsplit_once('/')
            .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/files?path={}\">..</a></td><td></td><td></td><td></td><td></td></tr>",
            query(parent.as_bytes())
        );
    }
    for (entry, badge_of) in entries {
        let name = String::from_utf8_lossy(&entry.name);
        let path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        let (href, shown) = if entry.is_dir() {
            (
                format!("/files?path={}", query(path.as_bytes())),
                format!("{name}/"),
            )
        } else {
            (
                format!("/file?path={}", query(path.as_bytes())),
                name.to_string(),
            )
        };
        let size = if entry.is_dir() {
            String::new()
        } else {
            entry.size.to_string()
        };
        let q = query(path.as_bytes());
        let actions = if entry.is_dir() || entry.is_link() {
            format!("<a href=\"/delete?path={q}\">Delete</a>")
        } else {
            format!(
                "<a href=\"/download?path={q}\">Download</a> <a href=\"/delete?path={q}\">Delete</a>"
            )
        };
        let _ = writeln!(
            body,
            "<tr><td><a href=\"{href}\">{}</a></td><td>{size}</td><td><code>{} {:04o}</code></td><td>{}</td><td>{actions}</td></tr>",
            escape(&shown),
            mode_string(entry.mode),
            entry.mode & 0o7777,
            badge_of.as_ref().map(badge).unwrap_or_default()
        );
    }
    body.push_str("</tbody>\n</table>\n");
    if pages > 1 {
        body.push_str("<nav class=\"pages\" aria-label=\"pages\">");
        for p in 0..pages {
            if p == page {
                let _ = write!(body, " <strong>{}</strong>", p + 1);
            } else {
                let _ = write!(
                    body,
                    " <a href=\"/files?path={}&amp;page={p}\">{}</a>",
                    query(dir.as_bytes()),
                    p + 1
                );
            }
        }
        body.push_str("</nav>\n");
    }
    body
}

/// The way to `path`: each directory a link.
fn crumbs(path: &str) -> String {
    let mut out = String::from("<a href=\"/files?path=%2F\">home</a>");
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        so_far.push('/');
        so_far.push_str(part);
        let _ = write!(
            out,
            " / <a href=\"/files?path={}\">{}</a>",
            query(so_far.as_bytes()),
            escape(part)
        );
    }
    out
}

/// Who the nine checkboxes are for, and what each is called.
const WHO: [&str; 3] = ["owner", "group", "others"];
const WHAT: [&str; 3] = ["read", "write", "execute"];

/// A file's page: its facts, and the permission form (nine checkboxes and the octal number)
/// with the gate's badge beside them.
pub fn file(
    path: &str,
    entry: &Entry,
    badge_now: &Badge,
    csrf: &str,
    said: Option<&str>,
) -> String {
    let mut body = said_block(said);
    let dir = super::files::parent(path);
    let _ = writeln!(body, "<p class=\"where\">{}</p>", crumbs(dir));
    let q = query(path.as_bytes());
    let name = path.rsplit('/').next().unwrap_or("");
    let _ = write!(
        body,
        "<p class=\"actions\"><a href=\"/download?path={q}\">Download</a> · <a href=\"/edit?path={q}\">Edit</a> · \
         <a href=\"/delete?path={q}\">Delete</a></p>\n\
         <form method=\"post\" action=\"/rename\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"path\" value=\"{}\">\
         <label for=\"to\">Rename to</label> <input id=\"to\" name=\"to\" value=\"{}\" required> <button type=\"submit\">Rename</button></form>\n",
        escape(csrf),
        escape(path),
        escape(name)
    );
    let mode = entry.mode & 0o7777;
    let _ = writeln!(
        body,
        "<p>{} bytes · <code>{}</code></p>",
        entry.size,
        mode_string(entry.mode)
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/chmod\" id=\"permissions\" data-path=\"{}\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"path\" value=\"{}\">\n\
         <fieldset>\n<legend>Permissions</legend>\n<table class=\"modes\">\n\
         <thead><tr><td></td>",
        escape(path),
        escape(csrf),
        escape(path)
    );
    for what in WHAT {
        let _ = write!(body, "<th scope=\"col\">{what}</th>");
    }
    body.push_str("</tr></thead>\n<tbody>\n");
    for (i, who) in WHO.iter().enumerate() {
        let _ = write!(body, "<tr><th scope=\"row\">{who}</th>");
        for (j, what) in WHAT.iter().enumerate() {
            let bit = 1u32 << (8 - (i * 3 + j));
            let checked = if mode & bit != 0 { " checked" } else { "" };
            let _ = write!(
                body,
                "<td><input type=\"checkbox\" name=\"bit\" value=\"{bit}\" id=\"bit-{who}-{what}\" aria-label=\"{who} {what}\"{checked}>\
                 <label for=\"bit-{who}-{what}\" class=\"sr\">{who} {what}</label></td>"
            );
        }
        body.push_str("</tr>\n");
    }
    let _ = write!(
        body,
        "</tbody>\n</table>\n\
         <p><label for=\"octal\">Mode</label> <output id=\"octal\" name=\"octal\" for=\"permissions\">{mode:04o}</output>\
         → <span id=\"verdict\" aria-live=\"polite\">{}</span></p>\n\
         <p id=\"why\">{}</p>\n\
         <button type=\"submit\">Apply</button>\n</fieldset>\n</form>\n",
        badge(badge_now),
        escape(&badge_now.line)
    );
    body
}

/// The page that asks before `path` is deleted.
pub fn confirm_delete(path: &str, csrf: &str) -> String {
    format!(
        "<p>Delete <code>{}</code>? This cannot be undone. A folder must be empty.</p>\n\
         <form method=\"post\" action=\"/delete\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"path\" value=\"{}\"><button type=\"submit\">Delete</button> \
         <a href=\"/files?path={}\">Keep it</a></form>\n",
        escape(path),
        escape(csrf),
        escape(path),
        query(super::files::parent(path).as_bytes())
    )
}

/// The editor of `path` holding `content`, with `trouble` (a script's first-line problem)
/// said and its fix offered.
pub fn editor(path: &str, content: &str, trouble: Option<String>, csrf: &str) -> String {
    let mut body = String::new();
    let fix = match &trouble {
        Some(t) => {
            let _ = writeln!(
                body,
                "<p class=\"problem\" role=\"alert\">This script will not run: {}.</p>",
                escape(t)
            );
            "<p><input type=\"checkbox\" id=\"fix\" name=\"fix\" value=\"1\" checked> \
             <label for=\"fix\">Fix it: remove the byte order mark and the carriage returns</label></p>\n"
        }
        None => "",
    };
    // A file with Windows line ends that is not a script keeps them.
    let crlf = if trouble.is_none() && content.contains("\r\n") {
        "<input type=\"hidden\" name=\"crlf\" value=\"keep\">"
    } else {
        ""
    };
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/save\" class=\"editor\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"path\" value=\"{}\">{crlf}\n\
         <label for=\"content\">Text of {}</label>\n\
         <textarea id=\"content\" name=\"content\" rows=\"24\" spellcheck=\"false\">\n{}</textarea>\n{fix}\
         <button type=\"submit\">Save</button> <a href=\"/file?path={}\">Cancel</a>\n</form>\n",
        escape(csrf),
        escape(path),
        escape(path),
        escape(content),
        query(path.as_bytes())
    );
    body
}
