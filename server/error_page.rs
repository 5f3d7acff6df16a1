//! Error responses: Apache's wording for each status, plus — when `explain_errors` is on — the
//! plain-language reason and fix of the refusal.

use http::{Response, StatusCode, header};
use yadokari_site::denial::Explanation;

use crate::body::{self, Body};

/// An HTML error page for `status`, with `explanation` shown when given.
pub fn page(status: StatusCode, explanation: Option<&Explanation>) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n<body>\n<h1>{title}</h1>\n<p>{}</p>\n",
        message(status),
        code = status.as_u16(),
    );
    if let Some(e) = explanation {
        html.push_str(&format!(
            "<p><strong>Why:</strong> {}</p>\n<p><strong>Fix:</strong> <code>{}</code></p>\n",
            escape(&e.reason),
            escape(&e.fix)
        ));
    }
    html.push_str("<hr>\n<address>yadokari</address>\n</body></html>\n");
    let mut response = Response::new(body::full(html));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Your browser sent a request that this server could not understand.",
        403 => "You don't have permission to access this resource.",
        404 => "The requested URL was not found on this server.",
        405 => "The requested method is not allowed for this URL.",
        413 => "The request body is larger than this server accepts.",
        500 => {
            "The server encountered an internal error or misconfiguration and was unable to complete your request."
        }
        502 => "The script did not produce a valid response.",
        503 => "The server is temporarily busy; please try again shortly.",
        504 => "The script did not answer in time.",
        _ => "The request could not be completed.",
    }
}

/// SECURITY: reasons quote file names, which an uploader chooses; escaping them keeps a name
/// like `<script>.cgi` from becoming markup in the error page (reflected XSS).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
