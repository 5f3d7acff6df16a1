//! The `[htaccess]` section: whether sites' `.htaccess` files are read, which directive groups
//! they may use (Apache's `AllowOverride`), and whether `Options +Indexes` may turn on
//! directory listings.

use serde::Deserialize;

use super::{ConfigError, Origin};
use crate::htaccess::file::Group;

/// `[htaccess]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHtaccess {
    enabled: bool,
    allow_override: Vec<String>,
    listings: bool,
    listing_limit: usize,
}

impl Default for RawHtaccess {
    fn default() -> Self {
        RawHtaccess {
            enabled: true,
            allow_override: Group::ALL.iter().map(|(n, _)| n.to_string()).collect(),
            listings: false,
            listing_limit: 1000,
        }
    }
}

/// `[htaccess]`, validated.
#[derive(Clone, Debug)]
pub struct Htaccess {
    /// Whether `.htaccess` files are read at all (off: as Apache's `AllowOverride None`).
    pub enabled: bool,
    /// The directive groups sites may use.
    pub allowed: Vec<Group>,
    /// Whether `Options +Indexes` may turn directory listings on. Off (the default), a
    /// directory a `.htaccess` asks to list is refused as one without an index file (403),
    /// and the explanation names this setting; not a 500 as in Apache when `AllowOverride`
    /// leaves out Indexes, since nothing the line protects is exposed by ignoring it.
    pub listings: bool,
    /// The most entries a listing shows (and judges); the page says when there are more.
    pub listing_limit: usize,
}

/// Checks the section.
pub(super) fn htaccess(raw: RawHtaccess, origin: &Origin) -> Result<Htaccess, ConfigError> {
    let mut allowed = Vec::new();
    for name in &raw.allow_override {
        let group = Group::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, g)| *g)
            .ok_or_else(|| {
                origin.err(
                    "htaccess.allow_override",
                    format!(
                        "`{name}` is not a group; use AuthConfig, FileInfo, Indexes, Limit, Options"
                    ),
                )
            })?;
        allowed.push(group);
    }
    if raw.listing_limit == 0 {
        return Err(origin.err(
            "htaccess.listing_limit",
            "must be at least 1 (listings are turned off with `listings = false`)".to_string(),
        ));
    }
    Ok(Htaccess {
        enabled: raw.enabled && !allowed.is_empty(),
        allowed,
        listings: raw.listings,
        listing_limit: raw.listing_limit,
    })
}
