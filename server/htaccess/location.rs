//! Building a redirect's `Location` as Apache does: a local path is made a full URL on the
//! host the client asked for (`fully_qualify_uri`, `ap_construct_url`), and what came from
//! the decoded request path is escaped again (`ap_escape_uri`) so that it is a valid URL.
//! Shared by mod_rewrite's `[R]` and mod_alias's `Redirect`.

use super::context::Context;

/// Characters `ap_escape_uri` leaves as they are, besides ASCII letters and digits.
const PATH_SAFE: &[u8] = b"$-_.+!*'(),:;@&=/~";

/// `text` with every byte outside the path-safe set written `%xx` (Apache writes lower-case
/// hex digits). `%` itself is escaped: the text is decoded, so a `%` in it is a real one.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || PATH_SAFE.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The length of `scheme://` when `text` is an absolute URL (http or https, any case).
pub fn scheme_len(text: &str) -> Option<usize> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        text.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .map(|_| scheme.len())
    })
}

/// `scheme://host[:port]` of this request: the Host header when it is a plain host name or
/// address, else `SERVER_NAME` and `SERVER_PORT` (Apache's `UseCanonicalName Off`).
pub fn origin(ctx: &dyn Context) -> String {
    let https = ctx
        .variable("REQUEST_SCHEME")
        .map(|s| s.eq_ignore_ascii_case("https"))
        .or_else(|| ctx.variable("HTTPS").map(|s| s.eq_ignore_ascii_case("on")))
        .unwrap_or(false);
    let scheme = if https { "https" } else { "http" };
    // SECURITY: the Host header goes into a Location the client follows; one that is not a
    // plain authority (a `/`, `@` or space in it) could point the redirect somewhere else.
    let host = ctx.header("Host").filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    });
    let authority = host.unwrap_or_else(|| {
        let name = ctx
            .variable("SERVER_NAME")
            .unwrap_or_else(|| "localhost".into());
        match ctx.variable("SERVER_PORT") {
            Some(p) if p != if https { "443" } else { "80" } && !p.is_empty() => {
                format!("{name}:{p}")
            }
            _ => name,
        }
    });
    format!("{scheme}://{authority}")
}

/// `path` (starting with `/`) as a full URL on this request's origin, in the same site: for a
/// site reached under a prefix (`CONTEXT_PREFIX`, `/~alice`), a path written for the site's
/// own domain gets the prefix (see [`in_site`]). A path that names a user directory (`/~bob/`)
/// already says which site it means, and the client is sent there as written.
pub fn qualify(ctx: &dyn Context, path: &str) -> String {
    let prefix = ctx.variable("CONTEXT_PREFIX").unwrap_or_default();
    if path.starts_with("/~") {
        return format!("{}{path}", origin(ctx));
    }
    format!("{}{}", origin(ctx), in_site(&prefix, path))
}

/// The URL path of a site's `path` for a site reached under `prefix` (`/~name`; empty on the
/// site's own domain): a path the rules wrote as the client sees it (`RewriteBase /~alice/`,
/// as WordPress writes it for a user directory, or a `%{REQUEST_URI}` back-reference) already
/// has the prefix; one written for the site's own domain (`Redirect /old /new`,
/// `RewriteBase /`) gets it, so that it stays in the same site instead of landing on the
/// default site (where Apache, which knows no such sites, would send it).
pub fn in_site(prefix: &str, path: &str) -> String {
    let has_prefix = !prefix.is_empty()
        && path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if has_prefix || prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}{path}")
    }
}

/// An absolute URL with its path escaped (`escape_absolute_uri`): what follows
/// `scheme://host/` is escaped, the rest kept.
pub fn escape_url(url: &str) -> String {
    let Some(skip) = scheme_len(url) else {
        return escape(url);
    };
    match url[skip..].find('/') {
        Some(slash) => {
            let (head, path) = url.split_at(skip + slash + 1);
            format!("{head}{}", escape(path))
        }
        None => url.to_string(),
    }
}

/// When `url` is on this request's own origin, its path (Apache's `reduce_uri`: a rule that
/// rewrites to its own server without `[R]` stays an internal rewrite).
pub fn own_path(ctx: &dyn Context, url: &str) -> Option<String> {
    let origin = origin(ctx);
    let head = url.get(..origin.len())?;
    if !head.eq_ignore_ascii_case(&origin) {
        return None;
    }
    match &url[origin.len()..] {
        "" => Some("/".into()),
        rest if rest.starts_with('/') => Some(rest.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_apache() {
        assert_eq!(escape("/a b/ü?x#y%z"), "/a%20b/%c3%bc%3fx%23y%25z");
        assert_eq!(
            escape("/a-b_c.d~e/$&=+,;:@!*'()"),
            "/a-b_c.d~e/$&=+,;:@!*'()"
        );
        assert_eq!(
            escape_url("https://h.example/a b"),
            "https://h.example/a%20b"
        );
        assert_eq!(escape_url("http://h.example"), "http://h.example");
        assert_eq!(scheme_len("HTTPS://x"), Some(8));
        assert_eq!(scheme_len("/x"), None);
    }

    #[test]
    fn paths_stay_in_the_site_once_prefixed() {
        assert_eq!(in_site("", "/index.php"), "/index.php");
        assert_eq!(in_site("/~alice", "/index.php"), "/~alice/index.php");
        assert_eq!(in_site("/~alice", "/~alice/index.php"), "/~alice/index.php");
        assert_eq!(in_site("/~alice", "/~alice"), "/~alice");
        // Another name that merely starts the same is not the prefix.
        assert_eq!(in_site("/~al", "/~alice/x"), "/~al/~alice/x");
    }
}
