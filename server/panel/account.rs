//! The panel's log view and account page. Logs: the customer's own access and error logs
//! (read from `logs/` in their home, with their identity), newest first, filtered by status,
//! refreshed live by the page's script; a refused request's line links to the file and its
//! checkboxes. Account: disk usage against the quota, the domains, the SSH keys (added by
//! pasting, removed), and the password (the old one asked first). Keys and the password are
//! kept where `yadokari user` keeps them (the configuration and the `authorized_keys` file
//! beside it), changed by the same functions, and the running server follows them.

use std::fmt::Write;

use http::StatusCode;

use super::form::value;
use super::page::{escape, query};
use super::{Act, Reply};

/// The end of a log read for the view.
const TAIL: u64 = 256 * 1024;
/// Lines shown at most.
const LINES: usize = 500;

/// One access-log line's facts: its status and the URL path it asked for.
fn access_facts(line: &str) -> Option<(u16, &str)> {
    let (_, after) = line.split_once('"')?;
    let (request, rest) = after.split_once('"')?;
    let status = rest.split_whitespace().next()?.parse().ok()?;
    let path = request.split_whitespace().nth(1)?;
    Some((status, path.split('?').next().unwrap_or(path)))
}

/// Whether `status` passes `filter` (`all`, `2xx` … `5xx`, `refused`).
fn passes(status: u16, filter: &str) -> bool {
    match filter {
        "refused" => status == 403 || status == 500,
        f if f.len() == 3 && f.ends_with("xx") => {
            f.as_bytes()[0].wrapping_sub(b'0') as u16 == status / 100
        }
        _ => true,
    }
}

/// The customer whose home is `site` (a panel user's SFTP site).
pub(super) fn customer_of<'a>(
    state: &'a crate::app::State,
    site: &std::path::Path,
) -> Option<&'a crate::config::Customer> {
    state.config.customers.iter().find(|c| c.home == site)
}

impl Act<'_> {
    /// The log view (`part=list`: the list alone, for the live refresh).
    pub(super) async fn logs(&self, q: &[(String, Vec<u8>)]) -> Reply {
        let which = match value(q, "log") {
            Some(b"error") => "error",
            _ => "access",
        };
        let filter = value(q, "status")
            .and_then(|s| std::str::from_utf8(s).ok())
            .filter(|s| ["all", "2xx", "3xx", "4xx", "5xx", "refused"].contains(s))
            .unwrap_or("all")
            .to_string();
        let file = format!("/logs/{which}.log");
        let read = self
            .in_home(move |home, _| {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = match home.open_read(file.as_bytes()) {
                    Ok(f) => f,
                    Err(_) => return Ok(String::new()),
                };
                let len = f.metadata().map_err(|e| e.to_string())?.len();
                f.seek(SeekFrom::Start(len.saturating_sub(TAIL)))
                    .map_err(|e| e.to_string())?;
                let mut bytes = Vec::new();
                f.take(TAIL)
                    .read_to_end(&mut bytes)
                    .map_err(|e| e.to_string())?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            })
            .await;
        let text = match read {
            Ok(t) => t,
            Err(e) => return self.trouble(StatusCode::NOT_FOUND, &e),
        };
        let web_root = self.web_root_in_home();
        let mut list = String::from("<ol class=\"log\" reversed>\n");
        let mut shown = 0;
        // Newest first; the first line may be cut by the tail.
        for line in text.lines().rev().filter(|l| !l.is_empty()) {
            if shown == LINES {
                break;
            }
            let facts = (which == "access").then(|| access_facts(line)).flatten();
            if filter != "all" && !facts.is_some_and(|(status, _)| passes(status, &filter)) {
                continue;
            }
            shown += 1;
            let link = match facts {
                Some((403 | 500, path)) => {
                    let mine = format!("/~{}/", self.user.name);
                    let path = match path.strip_prefix(&mine[..mine.len() - 1]) {
                        Some(rest) if path.starts_with(&mine) => rest,
                        _ => path,
                    };
                    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
                    let mut file = web_root.as_bytes().to_vec();
                    file.extend_from_slice(&decoded);
                    format!(
                        " <a href=\"/file?path={}\">the file and its permissions</a>",
                        query(&file)
                    )
                }
                _ => String::new(),
            };
            let _ = writeln!(list, "<li><code>{}</code>{link}</li>", escape(line));
        }
        list.push_str("</ol>\n");
        if shown == 0 {
            list = "<p>Nothing logged yet.</p>\n".into();
        }
        if value(q, "part") == Some(b"list") {
            return super::html(StatusCode::OK, list);
        }
        let mut body = String::new();
        let _ = write!(
            body,
            "<form method=\"get\" action=\"/logs\" class=\"inline\">\
             <label for=\"log\">Log</label> <select id=\"log\" name=\"log\">\
             <option value=\"access\"{}>access</option><option value=\"error\"{}>error</option></select> \
             <label for=\"status\">Status</label> <select id=\"status\" name=\"status\">",
            if which == "access" { " selected" } else { "" },
            if which == "error" { " selected" } else { "" },
        );
        for f in ["all", "2xx", "3xx", "4xx", "5xx", "refused"] {
            let selected = if f == filter { " selected" } else { "" };
            let _ = write!(body, "<option value=\"{f}\"{selected}>{f}</option>");
        }
        let _ = write!(
            body,
            "</select> <button type=\"submit\">Show</button></form>\n\
             <section id=\"live\" data-source=\"/logs?log={which}&amp;status={filter}&amp;part=list\" aria-live=\"polite\">\n{list}</section>\n"
        );
        self.page(&format!("Your {which} log"), &body)
    }

    /// The web root's path in the home, as the panel names files (`/public_html`).
    fn web_root_in_home(&self) -> String {
        let state = self.panel.app.state();
        let rel = customer_of(&state, &self.user.site)
            .and_then(|c| c.web_root.strip_prefix(&c.home).ok())
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        if rel.is_empty() {
            String::new()
        } else {
            format!("/{rel}")
        }
    }

    /// The account page, with `said` on top.
    pub(super) async fn account(&self, said: Option<String>) -> Reply {
        let counted = self
            .in_home(|home, _| sftp_upload::count_usage(home.root()).map_err(|e| e.to_string()))
            .await;
        let state = self.panel.app.state();
        let customer = customer_of(&state, &self.user.site);
        let mut body = String::new();
        if let Some(said) = said {
            let _ = writeln!(
                body,
                "<p class=\"said\" role=\"status\">{}</p>",
                escape(&said)
            );
        }
        body.push_str("<h2>Disk</h2>\n");
        match (counted, self.user.quota.bytes) {
            (Ok(used), Some(max)) => {
                let _ = writeln!(
                    body,
                    "<p><label for=\"usage\">{} of {} bytes used</label> <meter id=\"usage\" min=\"0\" max=\"{max}\" value=\"{}\">{}%</meter></p>",
                    used.bytes,
                    max,
                    used.bytes.min(max),
                    used.bytes.saturating_mul(100) / max.max(1)
                );
            }
            (Ok(used), None) => {
                let _ = writeln!(body, "<p>{} bytes used; no quota.</p>", used.bytes);
            }
            (Err(e), _) => {
                let _ = writeln!(body, "<p>Usage unknown: {}</p>", escape(&e));
            }
        }
        if let Some(files) = self.user.quota.files {
            let _ = writeln!(body, "<p>At most {files} files and folders.</p>");
        }
        body.push_str("<h2>Domains</h2>\n<ul>\n");
        for d in customer.map(|c| c.domains.as_slice()).unwrap_or_default() {
            let _ = writeln!(body, "<li>{}</li>", escape(d));
        }
        if state.config.hosting.userdir {
            let _ = writeln!(
                body,
                "<li>/~{}/ on any of this server's names</li>",
                escape(&self.user.name)
            );
        }
        body.push_str("</ul>\n<h2>SSH keys</h2>\n<ul>\n");
        let (file, name) = (self.user.authorized_keys.clone(), self.user.name.clone());
        let keys = tokio::task::spawn_blocking(move || {
            file.as_deref()
                .map(|p| sftp_upload::accounts::authorized_keys(p, &name))
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        let csrf = escape(&self.session.csrf);
        for key in &keys {
            let fp = key
                .fingerprint(sftp_upload::keys::HashAlg::Sha256)
                .to_string();
            let _ = writeln!(
                body,
                "<li><code>{} {}</code> {} <form method=\"post\" action=\"/key/remove\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"fingerprint\" value=\"{}\">\
                 <button type=\"submit\">Remove</button></form></li>",
                escape(key.algorithm().as_str()),
                escape(&fp),
                escape(key.comment().as_ref()),
                escape(&fp)
            );
        }
        if keys.is_empty() {
            body.push_str("<li>none</li>\n");
        }
        let _ = write!(
            body,
            "</ul>\n<form method=\"post\" action=\"/key/add\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"key\">Add a public key (paste the line of your .pub file)</label>\n\
             <textarea id=\"key\" name=\"key\" rows=\"3\" required></textarea>\n<button type=\"submit\">Add</button></form>\n\
             <h2>Password</h2>\n<form method=\"post\" action=\"/password\" class=\"login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"old\">Current password</label> <input id=\"old\" name=\"old\" type=\"password\" autocomplete=\"current-password\" required>\
             <label for=\"new\">New password</label> <input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\
             <label for=\"again\">New password again</label> <input id=\"again\" name=\"again\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\
             <button type=\"submit\">Change</button></form>\n"
        );
        self.page("Your account", &body)
    }

    /// Adds a pasted key, removes one, or changes the password (`what`: `add`, `remove`,
    /// `password`).
    pub(super) async fn credentials(&self, what: &str, form: &[(String, Vec<u8>)]) -> Reply {
        let Some(config) = self.panel.app.config_file() else {
            return self.trouble(
                StatusCode::CONFLICT,
                "this server has no configuration file to keep keys and passwords in",
            );
        };
        let text = |name: &str| {
            String::from_utf8_lossy(value(form, name).unwrap_or_default()).into_owned()
        };
        // SECURITY: a keys file the customer can reach (in their home) would be written by
        // the server with its own rights, following what the customer planted there: not here.
        if what != "password"
            && self
                .user
                .authorized_keys
                .as_deref()
                .is_some_and(|k| k.starts_with(&self.user.site))
        {
            return self
                .account(Some(
                    "your keys file is in your home: change it over SFTP".into(),
                ))
                .await;
        }
        if what == "password" {
            let (old, new, again) = (text("old"), text("new"), text("again"));
            if new != again {
                return self
                    .account(Some("the two new passwords differ; nothing changed".into()))
                    .await;
            }
            let endpoint = self.panel.app.sftp().cloned();
            let known = match endpoint {
                Some(e) => e
                    .password_login(self.panel_peer(), &self.user.name, &old)
                    .await
                    .is_ok(),
                None => false,
            };
            if !known {
                tracing::warn!(user = %self.user.name, "panel: password change with a wrong current password");
                return self
                    .account(Some(
                        "the current password is wrong; nothing changed".into(),
                    ))
                    .await;
            }
        }
        let name = self.user.name.clone();
        let what_done = what.to_string();
        let (key, fingerprint, new) = (text("key"), text("fingerprint"), text("new"));
        let done = tokio::task::spawn_blocking(move || {
            // One change to the configuration and the keys files at a time.
            static EDITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one = EDITING.lock().unwrap_or_else(|e| e.into_inner());
            match what_done.as_str() {
                "add" => crate::users::add_key_text(&config, &name, &key, "the pasted key")
                    .map(|(n, _)| format!("{n} key(s) added")),
                "remove" => crate::users::remove_key(&config, &name, &fingerprint).map(|found| {
                    if found {
                        "the key is removed".to_string()
                    } else {
                        "no such key".to_string()
                    }
                }),
                _ => crate::users::set_password(&config, &name, &new).map(|()| {
                    "your password is changed (for SFTP too); your other sessions have ended"
                        .to_string()
                }),
            }
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
        match done {
            Ok(said) => {
                tracing::info!(user = %self.user.name, op = what, via = "panel", "account changed");
                if what == "password" {
                    self.panel.sessions.end_others(&self.user.name, self.token);
                }
                // The server reads its configuration again at once, rather than within seconds.
                let app = self.panel.app.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    app.reload_from_source("the panel changed a customer's credentials")
                })
                .await;
                self.account(Some(said)).await
            }
            Err(e) => self.account(Some(format!("nothing changed: {e}"))).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_and_filters() {
        let line = r#"127.0.0.1 - - [07/Dec/2026:10:00:00 +0000] "GET /cgi-bin/x.cgi?a=1 HTTP/1.1" 500 123 "-" "curl""#;
        assert_eq!(access_facts(line), Some((500, "/cgi-bin/x.cgi")));
        assert!(passes(500, "5xx") && passes(500, "refused") && !passes(500, "4xx"));
        assert!(passes(404, "all") && !passes(404, "refused"));
    }
}
