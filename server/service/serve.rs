//! Serving what a URL names in its site: resolve it (with the `.htaccess` rules in force),
//! then send the file, run the script, or refuse with the gate's reason.

use http::header::{self, HeaderMap};
use http::{Method, Request};

use super::listing;
use super::per_dir::{self, Notes};
use super::{Acted, Ctx, Pass, add_slash};
use crate::body::RequestBody;
use crate::cgi::{self, Outcome};
use crate::error::HttpError;
use crate::htaccess::rules::Rules;
use crate::resolve::{self, Resolution};
use crate::sites::Served;
use crate::{compress, static_files, url};

/// Resolves the URL in the site (with the `.htaccess` rules in force, if any) and serves,
/// runs or refuses what it names.
pub(super) async fn serve(
    req: Request<RequestBody>,
    ctx: Ctx<'_>,
    site: &Served<'_>,
    url: &url::UrlPath,
    rules: Option<&Rules>,
    notes: &Notes,
    pass: Pass<'_>,
) -> Result<Acted, HttpError> {
    let Ctx { state, conn, app } = ctx;
    let config = &state.config;
    let scope = resolve::Scope {
        config,
        rules,
        proposed_mode: None,
    };
    let name = url
        .segments
        .last()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let mut response = match resolve::resolve_in(site.jail, url, scope) {
        Resolution::NotFound => return Err(HttpError::NotFound),
        Resolution::AddSlash => add_slash(&req),
        Resolution::Denied { denial, path } => {
            return listing::instead_of(&denial, &req, ctx, site, url, rules, notes)
                .unwrap_or(Err(HttpError::Denied { denial, path }));
        }
        Resolution::Fault { path, error } => {
            let what = format!("cannot open {}", path.escape_debug());
            return Err(HttpError::internal(what, error));
        }
        Resolution::Static(file) => {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Err(HttpError::MethodNotAllowed);
            }
            let file_name = file
                .rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let asked = (req.method(), req.headers());
            let content_type = static_files::content_type(&file.rel);
            let encoding =
                compress::for_static(asked, &file, content_type, site.jail, config.compression);
            let mut r = static_files::respond(
                asked,
                (file, content_type),
                encoding,
                conn.sendfile(req.version()),
            );
            if let Some(rules) = rules {
                per_dir::finish(
                    &mut r,
                    rules,
                    file_name.as_deref().or(name.as_deref()),
                    true,
                );
            }
            return Ok(Acted::Done(r));
        }
        Resolution::Script(script) => {
            let path = script.rel.to_string_lossy().into_owned();
            // Kept for compressing the output: the request goes to the script. An nph- script's
            // output goes out as the script wrote it.
            let nph = script
                .rel
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"nph-"));
            let compression = (!nph && config.compression.cgi).then(|| {
                let accept = req.headers().get_all(header::ACCEPT_ENCODING);
                let mut asked = HeaderMap::new();
                for v in accept {
                    asked.append(header::ACCEPT_ENCODING, v.clone());
                }
                (req.method().clone(), asked)
            });
            let mut env = notes.env.clone();
            if let Some(rules) = rules {
                env.extend(rules.set_env.iter().cloned());
            }
            let original = pass.original.path_and_query().map(|pq| pq.as_str());
            let before = cgi::Before {
                redirected: pass.redirected,
                request_uri: pass.redirected.and(original),
                remote_user: notes.user.as_deref(),
                env: &env,
            };
            // Boxed: the script's future is large, and kept inline it would make every
            // request's future (static ones too) that large to build and move.
            let run = Box::pin(cgi::run(
                req,
                &script,
                site,
                config,
                conn,
                cgi::Scripts {
                    slots: &app.scripts,
                    sandboxes: &app.sandboxes,
                },
                before,
            ));
            match run.await {
                Ok(Outcome::Response(r)) => match &compression {
                    Some((method, asked)) => {
                        compress::for_script(r, (method, asked), config.compression)
                    }
                    None => r,
                },
                Ok(Outcome::Redirect(location, parts)) => {
                    return Ok(Acted::Redirect(location, parts));
                }
                Err(failure) => return Err(HttpError::Script { failure, path }),
            }
        }
    };
    if let Some(rules) = rules {
        per_dir::finish(&mut response, rules, None, false);
    }
    Ok(Acted::Done(response))
}
