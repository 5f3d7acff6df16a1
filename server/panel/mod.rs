//! The customers' control panel: their home in the browser, each file's mode as nine
//! checkboxes with the permission gate's verdict beside them, and the verdict of a mode asked
//! before it is applied.
//!
//! It has a listener of its own (`[server] panel`, `--panel`), so it never collides with a
//! customer's URLs; with `panel_tls = true` it speaks TLS with the HTTPS listener's
//! certificates (HTTP/1.1 only), and its cookie is `Secure`. A customer logs in with their
//! SFTP name and password (the same hash; the same ban, fed by failures on either side); a
//! session is a cookie (`HttpOnly`, `SameSite=Strict`) and every form carries its CSRF token
//! ([`session`]). Their files are
//! reached through the SFTP side's own [`sftp_upload::Home`] (the same jail and rules), on a
//! thread that holds the home owner's identity, as an SFTP request is; every change is logged
//! as the SFTP transfer lines are, in the customer's error log. Pages are rendered here
//! ([`page`]) and work without JavaScript; the small embedded script only makes the badge
//! follow the checkboxes.

mod account;
mod files;
mod form;
mod page;
mod session;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use sftp_upload::{Home, LoginFailure, User};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::App;
use form::{query, read_form, value};
use page::Badge;
use session::{Session, Sessions};

/// An answer: a whole page, or a file streamed.
type Reply = Response<BoxBody<Bytes, std::io::Error>>;

/// Uploaded files written at once (each holds a blocking thread while it arrives).
const MAX_WRITERS: usize = 16;

/// Connections to the panel at once, at most (a browser opens a few; the panel is for people).
const MAX_CONNECTIONS: usize = 256;

/// What every connection of the panel shares.
struct Panel {
    app: Arc<App>,
    sessions: Sessions,
    /// Uploaded files being written at once, all customers together.
    writers: tokio::sync::Semaphore,
}

/// How long a TLS handshake with the panel may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves the panel on `listener` until `shutdown`; over TLS with `tls`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let panel = Arc::new(Panel {
        app,
        sessions: Sessions::default(),
        writers: tokio::sync::Semaphore::new(MAX_WRITERS),
    });
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = connections.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "panel accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let panel = panel.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, panel, peer, false).await,
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(stream)) => connection(stream, panel, peer, true).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "panel TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "panel TLS handshake took too long"),
                },
            }
        });
    }
}

/// One connection's requests (`secure`: over TLS).
async fn connection<IO>(io: IO, panel: Arc<Panel>, peer: SocketAddr, secure: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let panel = panel.clone();
        async move { Ok::<_, Infallible>(secured(answer(&panel, req, peer, secure).await)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

/// One request.
async fn answer(
    panel: &Panel,
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    secure: bool,
) -> Reply {
    if req.method() == Method::POST && foreign_origin(&req) {
        tracing::warn!(%peer, "panel: a form posted from another site refused");
        return forged();
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/assets/panel.css") => {
            return asset(include_str!("assets/panel.css"), "text/css; charset=utf-8");
        }
        (&Method::GET, "/assets/panel.js") => {
            return asset(
                include_str!("assets/panel.js"),
                "text/javascript; charset=utf-8",
            );
        }
        (&Method::GET, "/login") => return html(StatusCode::OK, page::login(None)),
        (&Method::POST, "/login") => return login(panel, req, peer, secure).await,
        _ => {}
    }
    let token = req
        .headers()
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(session::cookie_token)
        .map(str::to_string);
    // The log view's own refreshes do not count as the customer's activity.
    let renew = !(req.uri().path() == "/logs"
        && req.uri().query().is_some_and(|q| q.contains("part=list")));
    let found = token
        .as_deref()
        .and_then(|t| Some((t, panel.sessions.get(t, renew)?)));
    let Some((token, session)) = found else {
        return match *req.method() {
            Method::GET | Method::HEAD => redirect("/login"),
            _ => text(
                StatusCode::FORBIDDEN,
                "not logged in (or the session ended): log in again\n",
            ),
        };
    };
    let endpoint = panel.app.sftp();
    let user = endpoint.and_then(|e| {
        e.config()
            .users
            .iter()
            .find(|u| u.name == session.user)
            .cloned()
    });
    let Some(user) = user.filter(|u| u.refused.is_none()) else {
        panel.sessions.end(token);
        return redirect("/login");
    };
    let span = tracing::info_span!("panel", customer = %user.name, %peer);
    let act = Act {
        panel,
        token,
        session: &session,
        user,
        peer,
    };
    async {
        match (req.method().clone(), req.uri().path()) {
            (Method::GET, "/") => redirect("/files?path=%2F"),
            (Method::GET, "/files") => act.directory(&query(&req)).await,
            (Method::GET, "/file") => act.file(&query(&req), None).await,
            (Method::GET, "/verdict") => act.verdict(&query(&req)).await,
            (Method::GET, "/download") => act.download(&query(&req)).await,
            (Method::GET, "/delete") => act.confirm_delete(&query(&req)),
            (Method::GET, "/edit") => act.edit(&query(&req)).await,
            (Method::GET, "/logs") => act.logs(&query(&req)).await,
            (Method::GET, "/account") => act.account(None).await,
            // An upload's body is the files: its token and folder are in the query string.
            (Method::POST, "/upload") => {
                let q = query(&req);
                if !session::csrf_ok(&session, value(&q, "csrf").unwrap_or_default()) {
                    tracing::warn!("panel: a form without its session's token refused");
                    return forged();
                }
                match Home::normalise(value(&q, "dir").unwrap_or(b"/")) {
                    Some(dir) => act.upload(req, dir).await,
                    None => text(StatusCode::BAD_REQUEST, "that path has a NUL byte\n"),
                }
            }
            (Method::POST, path) => {
                let path = path.to_string();
                let form = match read_form(req).await {
                    Ok(form) => form,
                    Err(reply) => return reply,
                };
                let csrf = value(&form, "csrf").unwrap_or_default();
                if !session::csrf_ok(&session, csrf) {
                    tracing::warn!("panel: a form without its session's token refused");
                    return forged();
                }
                match path.as_str() {
                    "/chmod" => act.chmod(&form).await,
                    "/mkdir" => act.mkdir(&form).await,
                    "/rename" => act.rename(&form).await,
                    "/delete" => act.delete(&form).await,
                    "/save" => act.save(&form).await,
                    "/key/add" => act.credentials("add", &form).await,
                    "/key/remove" => act.credentials("remove", &form).await,
                    "/password" => act.credentials("password", &form).await,
                    "/logout" => {
                        panel.sessions.end(token);
                        let mut r = redirect("/login");
                        set_cookie(&mut r, &format!("{}=; Path=/; Max-Age=0", session::COOKIE));
                        r
                    }
                    _ => text(StatusCode::NOT_FOUND, "no such action\n"),
                }
            }
            _ => text(StatusCode::NOT_FOUND, "no such page\n"),
        }
    }
    .instrument(span)
    .await
}

/// Whether a request says it comes from a page of another site (`Origin` names another host
/// than the panel's): refused for every form, the login's too, whatever its token.
fn foreign_origin<B>(req: &Request<B>) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return false;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, a)| a);
    authority.is_none() || authority != host
}

/// The answer to a form without its session's token.
fn forged() -> Reply {
    text(
        StatusCode::FORBIDDEN,
        "this form did not come from your panel page (its token is missing or wrong): reload the page and try again\n",
    )
}

/// A logged-in customer's request.
struct Act<'a> {
    panel: &'a Panel,
    /// The session's cookie token.
    token: &'a str,
    session: &'a Session,
    user: Arc<User>,
    /// Where the request came from (a password check counts toward its ban).
    peer: SocketAddr,
}

impl Act<'_> {
    fn panel_peer(&self) -> std::net::IpAddr {
        self.peer.ip()
    }

    /// Runs `f` on the customer's home, on a blocking thread that holds their identity.
    async fn in_home<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Home, &crate::app::State) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let user = self.user.clone();
        let state = self.panel.app.state();
        let endpoint = self.panel.app.sftp().cloned();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _in = span.enter();
            let home = endpoint
                .ok_or("this server runs no SFTP endpoint")?
                .home(&user)?;
            let _as_them = yadokari_site::identity::OwnerIdentity::assume(home.owner())
                .map_err(|_| "the server cannot act as the owner of your home".to_string())?;
            f(&home, &state)
        })
        .await
        .unwrap_or_else(|e| Err(format!("the panel failed ({e})")))
    }

    fn page(&self, title: &str, body: &str) -> Reply {
        html(
            StatusCode::OK,
            page::layout(title, Some((&self.user.name, &self.session.csrf)), body),
        )
    }

    fn trouble(&self, status: StatusCode, problem: &str) -> Reply {
        html(
            status,
            page::layout(
                "Not possible",
                Some((&self.user.name, &self.session.csrf)),
                &format!(
                    "<p class=\"problem\" role=\"alert\">{}</p>\n<p><a href=\"/files?path=%2F\">Back to your files</a></p>\n",
                    page::escape(problem)
                ),
            ),
        )
    }

    /// A directory's page.
    async fn directory(&self, q: &[(String, Vec<u8>)]) -> Reply {
        let raw = value(q, "path").unwrap_or(b"/").to_vec();
        let Some(dir) = Home::normalise(&raw) else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let page_no: usize = value(q, "page")
            .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
            .unwrap_or(0);
        self.directory_with(&dir, page_no, None).await
    }

    /// The page of directory `dir` (normalised), page `page_no`, with `said` on top.
    async fn directory_with(&self, dir: &str, page_no: usize, said: Option<String>) -> Reply {
        let dir = dir.to_string();
        let shown = dir.clone();
        let site = self.user.site.clone();
        let listed = self
            .in_home(move |home, state| {
                let entries = home.list(dir.as_bytes())?;
                let pages = entries.len().div_ceil(page::PAGE).max(1);
                let page_no = page_no.min(pages - 1);
                let rows = entries
                    .into_iter()
                    .skip(page_no * page::PAGE)
                    .take(page::PAGE)
                    .map(|e| {
                        let badge = (!e.is_dir() && !e.is_link()).then(|| {
                            let mut path = dir.trim_end_matches('/').as_bytes().to_vec();
                            path.push(b'/');
                            path.extend_from_slice(&e.name);
                            badge_of(state, &site, &path, None)
                        });
                        (e, badge)
                    })
                    .collect::<Vec<_>>();
                Ok((rows, (page_no, pages)))
            })
            .await;
        match listed {
            Ok((rows, pages)) => self.page(
                &format!("Files: {shown}"),
                &page::listing(&shown, &rows, pages, &self.session.csrf, said.as_deref()),
            ),
            Err(e) => self.trouble(StatusCode::NOT_FOUND, &format!("{shown}: {e}")),
        }
    }

    /// A file's page, with `said` (what was just done) on top.
    async fn file(&self, q: &[(String, Vec<u8>)], said: Option<String>) -> Reply {
        let raw = value(q, "path").unwrap_or(b"/").to_vec();
        let Some(path) = Home::normalise(&raw) else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let site = self.user.site.clone();
        let p = path.clone();
        let found = self
            .in_home(move |home, state| {
                let entry = home.stat(p.as_bytes())?;
                let badge = badge_of(state, &site, p.as_bytes(), None);
                Ok((entry, badge))
            })
            .await;
        match found {
            Ok((entry, _)) if entry.is_dir() => {
                redirect(&format!("/files?path={}", page::query(path.as_bytes())))
            }
            Ok((entry, badge)) => self.page(
                &path,
                &page::file(&path, &entry, &badge, &self.session.csrf, said.as_deref()),
            ),
            Err(e) => self.trouble(StatusCode::NOT_FOUND, &format!("{path}: {e}")),
        }
    }

    /// The gate's verdict on a file with a proposed mode, for the page's script: three lines
    /// (class, label, sentence).
    async fn verdict(&self, q: &[(String, Vec<u8>)]) -> Reply {
        let raw = value(q, "path").unwrap_or(b"/").to_vec();
        let mode = value(q, "mode")
            .and_then(|m| std::str::from_utf8(m).ok())
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .filter(|m| *m <= 0o7777);
        let (Some(path), Some(mode)) = (Home::normalise(&raw), mode) else {
            return text(StatusCode::BAD_REQUEST, "give path= and mode= (octal)\n");
        };
        let site = self.user.site.clone();
        let asked = self
            .in_home(move |home, state| {
                home.stat(path.as_bytes())?;
                Ok(badge_of(state, &site, path.as_bytes(), Some(mode)))
            })
            .await;
        match asked {
            Ok(b) => text(
                StatusCode::OK,
                &format!("{}\n{}\n{}\n", b.class, b.label, b.line.replace('\n', " ")),
            ),
            Err(e) => text(StatusCode::NOT_FOUND, &format!("{e}\n")),
        }
    }

    /// Applies the mode the form's checkboxes make.
    async fn chmod(&self, form: &[(String, Vec<u8>)]) -> Reply {
        let raw = value(form, "path").unwrap_or_default().to_vec();
        let Some(path) = Home::normalise(&raw) else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let mode = form
            .iter()
            .filter(|(k, _)| k == "bit")
            .filter_map(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u32>().ok())
            .filter(|bit| bit.is_power_of_two() && *bit <= 0o400)
            .fold(0, |m, bit| m | bit);
        let site = self.user.site.clone();
        let p = path.clone();
        let done = self
            .in_home(move |home, state| {
                let applied = home.chmod(p.as_bytes(), mode)?;
                let badge = badge_of(state, &site, p.as_bytes(), None);
                Ok((applied, badge))
            })
            .await;
        match done {
            Ok((applied, badge)) => {
                tracing::info!(user = %self.user.name, op = "chmod", via = "panel", path = %path, mode = %format_args!("{applied:04o}"), web = %badge.line, "transfer");
                let q = vec![("path".to_string(), path.clone().into_bytes())];
                self.file(
                    &q,
                    Some(format!("{path} is now {applied:04o}: {}", badge.line)),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(user = %self.user.name, op = "chmod", via = "panel", path = %path, error = %e, "panel action failed");
                self.trouble(StatusCode::FORBIDDEN, &format!("{path}: {e}"))
            }
        }
    }
}

/// The badge of `path` (in the home `site`), as it is or with `proposed` permission bits.
fn badge_of(state: &crate::app::State, site: &Path, path: &[u8], proposed: Option<u32>) -> Badge {
    use crate::forecast::Verdict;
    let config = &state.config;
    let place = account::customer_of(state, site)
        .map(|c| (c.web_root.as_path(), c.web_root_link.as_deref()));
    let Some(rel) = Home::relative(path) else {
        return Badge::off_the_web();
    };
    let found = crate::sftp::web_verdict(
        config,
        state.htaccess.as_ref(),
        (site, place),
        &rel,
        proposed,
    );
    let Some((verdict, _)) = found else {
        return Badge::off_the_web();
    };
    let line = verdict.line();
    let kind = match &verdict {
        Verdict::Login { then, .. } => then.as_ref(),
        v => v,
    };
    let (class, label) = match kind {
        Verdict::Runs { .. } => ("runs", "runs as a script"),
        Verdict::Served { .. } | Verdict::Listed { .. } | Verdict::Redirected { .. } => {
            ("served", "served")
        }
        _ => ("refused", "refused"),
    };
    Badge { class, label, line }
}

/// The login form's answer: a session and its cookie, or the form again with why not.
async fn login(
    panel: &Panel,
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    secure: bool,
) -> Reply {
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(reply) => return reply,
    };
    let name = String::from_utf8_lossy(value(&form, "name").unwrap_or_default()).into_owned();
    let password =
        String::from_utf8_lossy(value(&form, "password").unwrap_or_default()).into_owned();
    let Some(endpoint) = panel.app.sftp() else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            page::login(Some(
                "logins are not possible: this server runs no SFTP endpoint",
            )),
        );
    };
    match endpoint.password_login(peer.ip(), &name, &password).await {
        Ok(user) => match panel.sessions.start(&user.name) {
            Ok(token) => {
                tracing::info!(%peer, user = %user.name, "panel login");
                let mut r = redirect("/files?path=%2F");
                set_cookie(
                    &mut r,
                    &format!(
                        "{}={token}; Path=/; HttpOnly; SameSite=Strict{}",
                        session::COOKIE,
                        if secure { "; Secure" } else { "" }
                    ),
                );
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "panel: cannot start a session");
                html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    page::login(Some("the server cannot start a session now")),
                )
            }
        },
        Err(failure) => {
            // SECURITY: the name comes from the client; Debug-format it so control characters
            // cannot forge log lines.
            tracing::warn!(%peer, user = ?name, ?failure, "panel login failed");
            let (status, said) = match failure {
                LoginFailure::Wrong => (
                    StatusCode::UNAUTHORIZED,
                    "wrong user name or password".to_string(),
                ),
                LoginFailure::Banned => (
                    StatusCode::FORBIDDEN,
                    "too many failed logins from your address (here or over SSH); try again later"
                        .to_string(),
                ),
                LoginFailure::Busy => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "another login from your address is being checked; try again in a moment"
                        .to_string(),
                ),
                LoginFailure::Refused(why) => (
                    StatusCode::FORBIDDEN,
                    format!("this login is refused: {why}"),
                ),
            };
            html(status, page::login(Some(&said)))
        }
    }
}

pub(super) fn html(status: StatusCode, body: String) -> Reply {
    reply(status, "text/html; charset=utf-8", Bytes::from(body))
}

pub(super) fn text(status: StatusCode, body: &str) -> Reply {
    reply(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(body.to_string()),
    )
}

fn asset(body: &'static str, kind: &'static str) -> Reply {
    reply(StatusCode::OK, kind, Bytes::from_static(body.as_bytes()))
}

pub(super) fn redirect(to: &str) -> Reply {
    let mut r = text(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn set_cookie(r: &mut Reply, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
}

fn reply(status: StatusCode, kind: &'static str, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// The headers every answer gets: no caching of a customer's pages, no framing, no sniffing,
/// and scripts only from the panel itself (a file name can never become a script).
fn secured(mut r: Reply) -> Reply {
    let h = r.headers_mut();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}
