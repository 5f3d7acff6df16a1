//! The version a client can see: the crate's, and the deploy version an image was built with
//! (`YADOKARI_DEPLOY_VERSION`, set by the image; `scripts/deploy v2` builds one with `v2`), so
//! that two images built from one checkout can be told apart while a rolling update runs. It is
//! reported in the banner, `--version`, `SERVER_SOFTWARE` and the `yadokari_build_info` metric.

use std::sync::OnceLock;

/// The environment variable an image sets to its deploy version.
const DEPLOY_VERSION: &str = "YADOKARI_DEPLOY_VERSION";

/// The deploy version, when the environment names one (printable ASCII without spaces or
/// parentheses, at most 64 bytes: it goes into `SERVER_SOFTWARE`'s comment).
pub fn deploy() -> Option<&'static str> {
    static DEPLOY: OnceLock<Option<String>> = OnceLock::new();
    DEPLOY
        .get_or_init(|| {
            std::env::var(DEPLOY_VERSION).ok().filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()".contains(&b))
            })
        })
        .as_deref()
}

/// `0.1.0`, or `0.1.0 (deploy v2)` in an image built for deploy version `v2`.
pub fn long() -> &'static str {
    static LONG: OnceLock<String> = OnceLock::new();
    LONG.get_or_init(|| match deploy() {
        Some(d) => format!("{} (deploy {d})", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// `SERVER_SOFTWARE`: `yadokari/0.1.0`, or `yadokari/0.1.0 (deploy v2)` (a product token and
/// a comment, as RFC 3875 allows).
pub fn server_software() -> &'static str {
    static SOFTWARE: OnceLock<String> = OnceLock::new();
    SOFTWARE.get_or_init(|| format!("yadokari/{}", long()))
}
