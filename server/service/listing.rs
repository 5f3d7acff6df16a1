//! The request side of directory listings: a directory without an index file, where a
//! `.htaccess` says `Options +Indexes`, gets its listing (see `crate::listing`), or, on a
//! server with listings off, a refusal that says so.

use http::{Method, Request};
use yadokari_site::Denial;

use super::per_dir::{self, Notes};
use super::{Acted, Ctx};
use crate::body::RequestBody;
use crate::error::HttpError;
use crate::forecast::{Site, Visitor};
use crate::htaccess::rules::Rules;
use crate::listing::{self, Listings};
use crate::sites::Served;
use crate::url::UrlPath;

/// What a refusal `denial` of `url` becomes when it is a directory without an index that the
/// rules ask to list; `None` when it stays the refusal it is.
pub(super) fn instead_of(
    denial: &Denial,
    req: &Request<RequestBody>,
    ctx: Ctx<'_>,
    served: &Served<'_>,
    url: &UrlPath,
    rules: Option<&Rules>,
    notes: &Notes,
) -> Option<Result<Acted, HttpError>> {
    if *denial != Denial::NoIndex {
        return None;
    }
    let config = &ctx.state.config;
    let site = Site {
        config,
        cache: ctx.state.htaccess.as_ref(),
        jail: served.jail,
        root: served.root,
        proposed_mode: None,
    };
    let rules = match listing::permitted(rules, config) {
        Listings::NotAsked => return None,
        Listings::Off => {
            let by = listing::asked_by(&site, url);
            let refusal = listing::off(&url.display(), by.as_deref());
            return Some(Err(HttpError::Htaccess(Box::new(refusal))));
        }
        Listings::On => rules?,
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Some(Err(HttpError::MethodNotAllowed));
    }
    let visitor = Visitor {
        ip: ctx.conn.peer.ip(),
        user: notes.user.as_deref(),
        called: "this visitor",
    };
    Some(
        match listing::list(&site, url, served.prefix, rules, &visitor) {
            Ok(listing) => {
                let mut r = listing::respond(req.method(), &listing);
                per_dir::finish(&mut r, rules, None, false);
                Ok(Acted::Done(r))
            }
            Err(e) => Err(HttpError::internal(
                format!("cannot list {}", url.display().escape_debug()),
                e,
            )),
        },
    )
}
