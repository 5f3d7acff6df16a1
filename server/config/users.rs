//! The customers: `[hosting]` and the `[[users]]` entries, as written (raw) and validated into
//! [`Hosting`] and [`Customer`]s.
//!
//! A customer has a home (their SFTP jail), a web root inside it (`public_html/` by default;
//! the home itself for an entry written with `site = DIR`, as the shipped demo user's, whose
//! home is the document root), their domains, their identity when one is declared (an
//! allocated `uid`/`gid`, or an existing account named by `unix_user`; otherwise the home's
//! owner is who they are), their share of the script slots and their scripts' resource limits.
//! Everything a customer is lives in this one record, as SFTPGo keeps its virtual users.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Cgi, ConfigError, Origin, ScriptLimits};

/// One `[[users]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) name: String,
    site: Option<PathBuf>,
    home: Option<PathBuf>,
    web_root: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    unix_user: Option<String>,
    pub(super) authorized_keys: Option<PathBuf>,
    pub(super) password_hash: Option<String>,
    pub(super) quota_bytes: Option<u64>,
    pub(super) quota_files: Option<u64>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    repos: Vec<String>,
    #[serde(default)]
    acme: bool,
    max_scripts: Option<usize>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    force_https: bool,
    hsts_max_age: Option<u64>,
    limit_cpu_secs: Option<u64>,
    limit_memory_bytes: Option<u64>,
    limit_open_files: Option<u64>,
    limit_processes: Option<u64>,
    sandbox_network: Option<String>,
    sandbox_memory_bytes: Option<u64>,
    sandbox_processes: Option<u64>,
    sandbox_cpu_weight: Option<u64>,
    sandbox_tmp_bytes: Option<u64>,
}

/// `[hosting]`, validated.
#[derive(Clone, Debug)]
pub struct Hosting {
    /// `/~name/` on any host serves that customer's web root.
    pub userdir: bool,
    /// Where `user add` makes homes, absolute; `None` when not configured.
    pub homes: Option<PathBuf>,
    /// The web root's name inside a home (`public_html`).
    pub web_root: String,
    /// The uids `user add` (and the first start as root) allocate customers' identities from.
    pub uid_range: Option<(u32, u32)>,
    /// Scripts one customer may have running at once, unless their entry says otherwise.
    pub max_scripts_per_user: usize,
}

/// A customer's own Unix identity, declared in their entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// One customer, validated.
#[derive(Clone, Debug)]
pub struct Customer {
    /// Login name, also their `/~name/`.
    pub name: String,
    /// Their home: the SFTP jail, absolute.
    pub home: PathBuf,
    /// Their web root, absolute: the home itself or a directory inside it.
    pub web_root: PathBuf,
    /// Their web root is a link to a release (`public_html -> releases/…`, what a git push
    /// deploy switches), looked up at each request (`crate::web_root`): the link's path
    /// relative to the home. `web_root` is then the link's own path, not where it leads.
    pub web_root_link: Option<PathBuf>,
    /// Their declared identity; `None`: whoever owns the home.
    pub identity: Option<Identity>,
    /// The account named by `unix_user`, when the identity is an existing account.
    pub unix_user: Option<String>,
    /// Their domains, checked and lowercased.
    pub domains: Vec<String>,
    /// Their deploy repositories (`~/repos/NAME.git`, made by `user repo NAME add`).
    pub repos: Vec<String>,
    /// Their domains get certificates from ACME (`acme = true`; `[acme] all_domains` for all).
    pub acme: bool,
    /// Scripts of theirs running at once, at most.
    pub max_scripts: usize,
    /// Their own certificate for their domains (`tls_certificate`, `tls_key`).
    pub tls: Option<super::CertFiles>,
    /// Plain HTTP requests for their domains are sent to HTTPS (301).
    pub force_https: bool,
    /// HSTS for their HTTPS responses, over `[tls] hsts_max_age`.
    pub hsts_max_age: Option<u64>,
    /// Their scripts' resource limits.
    pub limits: ScriptLimits,
    /// Their shell: network and limits for all their scripts together.
    pub shell: super::sandbox::Shell,
}

/// The `[hosting]` section, checked.
pub(super) fn hosting(
    raw: super::raw::RawHosting,
    cgi: &Cgi,
    origin: &Origin,
) -> Result<Hosting, ConfigError> {
    let plain = !raw.web_root.is_empty()
        && Path::new(&raw.web_root)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain {
        return Err(origin.err(
            "hosting.web_root",
            "must be a directory name inside a home, like \"public_html\"",
        ));
    }
    let uid_range = match raw.uid_range {
        None => None,
        Some([lo, hi]) if lo <= hi && lo >= cgi.min_uid && lo > 0 => Some((lo, hi)),
        Some(_) => {
            return Err(origin.err(
                "hosting.uid_range",
                format!(
                    "must be [first, last] with first ≤ last and first at least cgi.min_uid ({})",
                    cgi.min_uid
                ),
            ));
        }
    };
    origin.positive(
        "hosting.max_scripts_per_user",
        raw.max_scripts_per_user as u64,
    )?;
    Ok(Hosting {
        userdir: raw.userdir,
        homes: raw.homes.map(|h| origin.resolve(&h)),
        web_root: raw.web_root,
        uid_range,
        max_scripts_per_user: raw.max_scripts_per_user.min(cgi.max_concurrent),
    })
}

/// The `[[users]]` entries, checked one by one, then together: one name, one identity and one
/// domain each.
pub(super) fn customers(
    raw: &[RawUser],
    hosting: &Hosting,
    cgi: &Cgi,
    origin: &Origin,
    (document_root, sandbox): (&Path, &super::Sandbox),
) -> Result<Vec<Customer>, ConfigError> {
    let mut out: Vec<Customer> = Vec::with_capacity(raw.len());
    let mut names: HashMap<&str, ()> = HashMap::with_capacity(raw.len());
    let mut identities: HashMap<u32, &str> = HashMap::new();
    for u in raw {
        if names.insert(&u.name, ()).is_some() {
            return Err(origin.err("users.name", format!("`{}` appears twice", u.name)));
        }
        let c = customer(u, hosting, cgi, origin, (document_root, sandbox))?;
        if let Some(id) = c.identity
            && let Some(other) = identities.insert(id.uid, &u.name)
        {
            return Err(origin.err(
                "users.uid",
                format!(
                    "`{other}` and `{}` both have uid {}: each customer needs an identity of their own, or one could read and change the other's files",
                    u.name, id.uid
                ),
            ));
        }
        out.push(c);
    }
    Ok(out)
}

/// One entry, checked: a plain name, an existing home and web root, a valid identity, domains
/// and limits.
fn customer(
    u: &RawUser,
    hosting: &Hosting,
    cgi: &Cgi,
    origin: &Origin,
    (document_root, sandbox): (&Path, &super::Sandbox),
) -> Result<Customer, ConfigError> {
    let err = |key: &str, problem: String| origin.err(key, format!("user `{}`: {problem}", u.name));
    if !valid_user_name(&u.name) {
        return Err(origin.err(
            "users.name",
            format!(
                "`{}` is not a user name (letters, digits, . _ -; at most 32)",
                u.name
            ),
        ));
    }
    let (home, web_root, web_root_link) = places(u, hosting, origin, document_root)?;
    let (identity, unix_user) = identity(u, cgi).map_err(|p| err("users.uid", p))?;
    let domains = u
        .domains
        .iter()
        .map(|d| crate::sites::check_domain(d).map_err(|p| err("users.domains", p)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = u
        .repos
        .iter()
        .find(|r| !valid_user_name(r) || r.starts_with('.'))
    {
        return Err(err(
            "users.repos",
            format!("`{bad}` is not a repository name (letters, digits, . _ -)"),
        ));
    }
    let max_scripts = u.max_scripts.unwrap_or(hosting.max_scripts_per_user);
    if max_scripts == 0 || max_scripts > cgi.max_concurrent {
        return Err(err(
            "users.max_scripts",
            format!(
                "must be between 1 and cgi.max_concurrent ({})",
                cgi.max_concurrent
            ),
        ));
    }
    let tls = super::tls::pair(u.tls_certificate.clone(), u.tls_key.clone(), origin)
        .map_err(|(key, problem)| err(&format!("users.tls_{key}"), problem))?;
    let overrides = super::sandbox::RawOverrides {
        sandbox_network: u.sandbox_network.as_deref(),
        sandbox_memory_bytes: u.sandbox_memory_bytes,
        sandbox_processes: u.sandbox_processes,
        sandbox_cpu_weight: u.sandbox_cpu_weight,
        sandbox_tmp_bytes: u.sandbox_tmp_bytes,
    };
    let shell = super::sandbox::shell(&overrides, &sandbox.defaults, origin, &u.name)?;
    let d = &cgi.limits;
    Ok(Customer {
        name: u.name.clone(),
        home,
        web_root,
        web_root_link,
        identity,
        unix_user,
        domains,
        repos: u.repos.clone(),
        acme: u.acme,
        max_scripts,
        tls,
        force_https: u.force_https,
        hsts_max_age: u.hsts_max_age,
        limits: ScriptLimits {
            cpu_secs: u.limit_cpu_secs.unwrap_or(d.cpu_secs),
            memory_bytes: u.limit_memory_bytes.unwrap_or(d.memory_bytes),
            open_files: u.limit_open_files.unwrap_or(d.open_files),
            processes: u.limit_processes.unwrap_or(d.processes),
        },
        shell,
    })
}

/// The home and the web root: `site = DIR` is a home that is its own web root; `home = DIR`
/// has its web root at `web_root` inside it (`hosting.web_root` by default, `.` for the home
/// itself); neither is the document root, as the shipped demo user's. A web root that is a
/// symbolic link (a release switched by a git push) is kept as the link, and followed at each
/// request, only ever to a directory inside the home (`crate::web_root`).
type Places = (PathBuf, PathBuf, Option<PathBuf>);

fn places(
    u: &RawUser,
    hosting: &Hosting,
    origin: &Origin,
    document_root: &Path,
) -> Result<Places, ConfigError> {
    let dir = |key: &str, path: &Path| {
        std::fs::canonicalize(origin.resolve(path))
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                origin.err(
                    key,
                    format!("user `{}`: {} is not a directory", u.name, path.display()),
                )
            })
    };
    match (&u.site, &u.home) {
        (Some(_), Some(_)) => Err(origin.err(
            "users.home",
            format!(
                "user `{}`: give `home` (with its web root inside) or `site` (a home that is its own web root), not both",
                u.name
            ),
        )),
        (Some(site), None) => {
            let site = dir("users.site", site)?;
            Ok((site.clone(), site, None))
        }
        (None, Some(home)) => {
            let home = dir("users.home", home)?;
            let inside = u
                .web_root
                .clone()
                .unwrap_or_else(|| PathBuf::from(&hosting.web_root));
            let plain = inside
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            let linked = home.join(&inside);
            if plain && linked.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
                return Ok((home, linked, Some(inside)));
            }
            let web_root = dir("users.web_root", &home.join(&inside))?;
            if !web_root.starts_with(&home) {
                return Err(origin.err(
                    "users.web_root",
                    format!(
                        "user `{}`: {} is not inside their home {}",
                        u.name,
                        web_root.display(),
                        home.display()
                    ),
                ));
            }
            Ok((home, web_root, None))
        }
        (None, None) => Ok((document_root.to_path_buf(), document_root.to_path_buf(), None)),
    }
}

/// The declared identity: `uid` (and `gid`, by default the same number) allocated to the
/// customer, or the existing account `unix_user`. Never root, never a system account.
fn identity(u: &RawUser, cgi: &Cgi) -> Result<(Option<Identity>, Option<String>), String> {
    let (id, account) = match (u.uid.as_ref(), u.unix_user.as_ref()) {
        (Some(_), Some(_)) => {
            return Err("give `uid` (an identity of their own) or `unix_user` (an existing account), not both".into());
        }
        (None, None) => {
            if u.gid.is_some() {
                return Err("`gid` needs `uid`".into());
            }
            return Ok((None, None));
        }
        (Some(&uid), None) => (
            Identity {
                uid,
                gid: u.gid.unwrap_or(uid),
            },
            None,
        ),
        (None, Some(name)) => {
            let account = nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| format!("there is no account `{name}` on this system"))?;
            (
                Identity {
                    uid: account.uid.as_raw(),
                    gid: account.gid.as_raw(),
                },
                Some(name.clone()),
            )
        }
    };
    if id.uid == 0 || id.gid == 0 || id.uid < cgi.min_uid {
        return Err(format!(
            "uid {} (gid {}) is root or a system account; a customer's identity must be an ordinary one, uid {} or above (cgi.min_uid), gid not 0",
            id.uid, id.gid, cgi.min_uid
        ));
    }
    Ok((Some(id), account))
}

/// Whether `name` may be a user's login name: letters, digits, `.`, `_`, `-`; 1 to 32.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Why `site` must not be a customer's SFTP site, with the fix; `None` when it may be.
/// `check_owner`: also refuse a site whose owner is root or a system account (what matters
/// when the server runs as root, and what `user add` always checks).
///
/// SECURITY: as root, a session takes its site owner's file-system identity, so a site owned
/// by root or a system account (uid below `cgi.min_uid`) would give the customer that account's
/// rights (`/etc/shadow` was downloaded through `--site /`). A site that holds the
/// configuration's directory, the host key or the server's program would let them rewrite the
/// server whatever its uid. Paths are compared canonicalised, and a site that cannot be looked
/// at is refused.
pub fn unsafe_site(site: &Path, config: &super::Config, check_owner: bool) -> Option<String> {
    SiteGuard::new(config).check(site, check_owner)
}

/// What [`unsafe_site`] checks sites against, worked out once for many sites (a reload with
/// 10,000 customers checks each).
pub struct SiteGuard {
    /// The server's own places, canonicalised: its configuration's directory, the host key's
    /// directory, its program.
    protected: Vec<PathBuf>,
    /// `cgi.min_uid`.
    min_uid: u32,
}

impl SiteGuard {
    /// The guard of `config`.
    pub fn new(config: &super::Config) -> SiteGuard {
        let host_key_dir = config
            .sftp_settings
            .host_key
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        let protected = [
            config.source_dir.clone(),
            host_key_dir,
            std::env::current_exe().ok(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
        SiteGuard {
            protected,
            min_uid: config.cgi.min_uid,
        }
    }

    /// [`unsafe_site`] for `site`.
    pub fn check(&self, site: &Path, check_owner: bool) -> Option<String> {
        let shown = site.display();
        let Ok(site) = std::fs::canonicalize(site) else {
            return Some(format!(
                "{shown} cannot be looked at, so it cannot be checked"
            ));
        };
        if self.protected.iter().any(|p| p.starts_with(&site)) {
            return Some(format!(
                "{shown} holds the server's own configuration, host key or program, so it can never be a customer's site; give the user a directory of their own"
            ));
        }
        if check_owner {
            return owner_refusal(&site, self.min_uid);
        }
        None
    }
}

/// Why `site`'s owner may not be a customer's identity (root or a system account), if it may not.
fn owner_refusal(site: &Path, min_uid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let shown = site.display();
    let owner = match std::fs::metadata(site) {
        Ok(meta) => meta.uid(),
        Err(e) => {
            return Some(format!(
                "{shown} cannot be looked at ({e}), so it cannot be checked"
            ));
        }
    };
    if owner < min_uid {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner))
            .ok()
            .flatten()
            .map_or_else(
                || format!("uid {owner}"),
                |u| format!("{} (uid {owner})", u.name),
            );
        return Some(format!(
            "{shown} belongs to {name}, and a customer acts over SFTP with the rights of their site's owner, which must be an ordinary user (uid {min_uid} or above, cgi.min_uid); fix: chown -R USER {shown} with the customer's own account"
        ));
    }
    None
}
