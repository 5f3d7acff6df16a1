//! The binary's side of the SFTP endpoint: start-up (host key generated on first start, the
//! demo user's first password, the banner lines, the listener) and turning [`Config`] into the
//! endpoint's own [`sftp_upload::Config`], at start and at every reload. The `yadokari user ...`
//! subcommands that edit the users are in [`users`]; the `[sftp]` and `[[users]]` sections are
//! read and checked with the rest of the configuration (`config/sftp.rs`).
//!
//! The protocol itself lives in the `sftp-upload` crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sftp_upload::{Endpoint, QuotaLimits};
use tokio_util::sync::CancellationToken;

use crate::banner::banner;
use crate::config::{Config, DEFAULT_CONFIG};

use crate::users::{config_file, edit_config, user_entry};

/// The SFTP side, started: the endpoint's handle (for reloads) and its task.
pub struct Running {
    /// The running endpoint; [`reload`] puts a new configuration in force on it.
    pub endpoint: Arc<Endpoint>,
    /// Runs push deploys once the server is told it serves ([`crate::deploy::Deployer::serve`]).
    pub deployer: crate::deploy::Deployer,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until the endpoint has stopped (after the shutdown token is cancelled).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Starts the SFTP endpoint on `listener`: host key, first password, banner lines, the task.
pub fn start(
    config: &Config,
    file: Option<&Path>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let host_key = host_key(config)?;
    let mut users: Vec<_> = config.sftp_settings.users.clone();
    let first_password = ensure_credentials(&mut users, config, file)?;
    banner!("listening sftp={addr}");
    banner!(
        "SSH host key fingerprint: {}",
        sftp_upload::accounts::host_key_fingerprint(&host_key)
    );
    if let Some((user, password)) = &first_password {
        banner!("SFTP user `{user}` has no key or password yet; its password is now: {password}");
        if file.is_some() || Path::new(DEFAULT_CONFIG).exists() {
            banner!("  (shown only this once; change it with `yadokari user passwd {user}`)");
        } else {
            banner!("  (no configuration file: it lasts until the server stops)");
        }
    }
    if let Some(u) = users.first() {
        let to = crate::banner::reachable(addr);
        banner!(
            "Upload with: sftp -P {} {}@{}   (files land in {})",
            to.port(),
            u.name,
            crate::banner::host(to.ip()),
            u.site.display()
        );
    }
    let deployer = crate::deploy::Deployer::default();
    let endpoint_config = crate_config(config, users, host_key, Arc::new(deployer.clone()));
    for u in &endpoint_config.users {
        if let Some(reason) = &u.refused {
            banner!("SFTP logins of `{}` are refused: {reason}", u.name);
        }
    }
    let endpoint = Endpoint::new(endpoint_config, shutdown);
    Ok(Running {
        task: tokio::spawn(sftp_upload::run(listener, endpoint.clone())),
        endpoint,
        deployer,
    })
}

/// The host key from its file (generated there on first start), or an ephemeral one when the
/// server runs without a configuration file.
fn host_key(config: &Config) -> anyhow::Result<sftp_upload::keys::PrivateKey> {
    match &config.sftp_settings.host_key {
        Some(path) => {
            let (key, created) =
                sftp_upload::accounts::load_or_create_host_key(path).map_err(anyhow::Error::msg)?;
            if created {
                banner!("generated the SSH host key {}", path.display());
            }
            Ok(key)
        }
        None => {
            sftp_upload::accounts::generate_host_key().context("cannot generate an SSH host key")
        }
    }
}

fn crate_config(
    config: &Config,
    users: Vec<sftp_upload::User>,
    host_key: sftp_upload::keys::PrivateKey,
    deployer: Arc<dyn sftp_upload::exec::Deployer>,
) -> sftp_upload::Config {
    let s = &config.sftp_settings;
    let mut limits = s.limits.clone();
    limits.max_open_handles = crate::descriptors::sftp_handles(config);
    sftp_upload::Config {
        host_key,
        users: {
            let guard = crate::config::SiteGuard::new(config);
            let customers: std::collections::HashMap<&str, &crate::config::Customer> = config
                .customers
                .iter()
                .map(|c| (c.name.as_str(), c))
                .collect();
            users
                .into_iter()
                .map(|u| {
                    let customer = customers.get(u.name.as_str()).copied();
                    Arc::new(with_refusal(u, customer, &guard))
                })
                .collect()
        },
        honour_client_mode: s.honour_client_mode,
        limits,
        advisor: Some(advisor(Arc::new(config.clone()))),
        deployer: Some(deployer),
    }
}

/// `user` marked as refused when their site would give them rights they must not have (see
/// [`crate::config::unsafe_site`]; the owner rule only matters when the server runs as root).
/// The web side still serves it.
fn with_refusal(
    mut user: sftp_upload::User,
    customer: Option<&crate::config::Customer>,
    guard: &crate::config::SiteGuard,
) -> sftp_upload::User {
    let as_root = nix::unistd::Uid::effective().is_root();
    user.refused = guard
        .check(&user.site, as_root)
        .or_else(|| not_their_home(customer?).filter(|_| as_root));
    user
}

/// Why a customer with a declared identity may not log in to a home that belongs to someone
/// else (they would act with that owner's rights), with the fix.
fn not_their_home(customer: &crate::config::Customer) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let id = customer.identity?;
    let owner = std::fs::metadata(&customer.home).ok()?.uid();
    (owner != id.uid).then(|| {
        format!(
            "their home {} belongs to uid {owner}, not to their identity (uid {}); fix: chown -R {}:{} {}",
            customer.home.display(),
            id.uid,
            id.uid,
            id.gid,
            customer.home.display()
        )
    })
}

/// The web side's verdict on a file a user just uploaded or chmodded, through the very steps
/// a request goes through (`crate::forecast`, as `yadokari explain` does: the `.htaccess` files
/// on its path, resolution, the gate, whether a script would start), so the transfer log says
/// "refused (500): ... Fix: chmod 755 hello.cgi" right after the upload, or names the line of
/// a `.htaccess` that decided.
fn advisor(config: Arc<Config>) -> sftp_upload::Advisor {
    // A customer's SFTP site is their home; what the web serves is their web root inside it
    // (for a web root that is a link to a release, where it leads now).
    let web_roots: std::collections::HashMap<PathBuf, (PathBuf, Option<PathBuf>)> = config
        .customers
        .iter()
        .map(|c| {
            (
                c.home.clone(),
                (c.web_root.clone(), c.web_root_link.clone()),
            )
        })
        .collect();
    // Its own compiled files: keyed by inode and mtime, so an upload applies at once.
    let cache = crate::htaccess::cache::Cache::for_config(&config);
    Arc::new(move |home: &Path, rel: &Path| {
        let place = web_roots
            .get(home)
            .map(|(w, l)| (w.as_path(), l.as_deref()));
        let (verdict, url) = web_verdict(&config, cache.as_ref(), (home, place), rel, None)?;
        Some(sftp_upload::Advice {
            line: verdict.line(),
            works: verdict.works(),
            url,
        })
    })
}

/// What the web makes of the file `rel` of the home `home` (whose web root and link, for a
/// customer's, are `place`), as a plain GET from anyone would find it; with `proposed_mode`,
/// as if the file had those permission bits. The verdict and the file's URL path in its site;
/// `None` when it is not on the web (outside the web root, or not found).
pub fn web_verdict(
    config: &Config,
    cache: Option<&crate::htaccess::cache::Cache>,
    (home, place): (&Path, Option<(&Path, Option<&Path>)>),
    rel: &Path,
    proposed_mode: Option<u32>,
) -> Option<(crate::forecast::Verdict, String)> {
    use std::os::unix::ffi::OsStrExt;
    let (web_root, jail) = match place {
        Some((_, Some(link))) => {
            let now = crate::web_root::resolve(home, link).ok()?;
            (now.root.to_path_buf(), now.jail)
        }
        Some((web_root, None)) => {
            let now = crate::web_root::open_plain(home, web_root).ok()?;
            (now.root.to_path_buf(), now.jail)
        }
        None => (
            home.to_path_buf(),
            Arc::new(yadokari_site::Jail::open(home).ok()?),
        ),
    };
    // A file outside the web root (in `logs/`, say) is not on the web at all; a file named
    // through the link is in the release it leads to.
    let rel = home.join(rel);
    let rel = rel
        .strip_prefix(&web_root)
        .ok()
        .or_else(|| rel.strip_prefix(place?.0).ok())?;
    let segments: Vec<Vec<u8>> = rel
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let url = crate::url::UrlPath {
        segments,
        trailing_slash: false,
    };
    let site = crate::forecast::Site {
        config,
        cache,
        jail: &jail,
        root: &web_root,
        proposed_mode,
    };
    let visitor = crate::forecast::Visitor::ANYONE;
    match crate::forecast::forecast(&site, &url, &visitor).verdict {
        crate::forecast::Verdict::NotFound | crate::forecast::Verdict::AddSlash => None,
        verdict => Some((
            verdict,
            String::from_utf8_lossy(&url.relative()).into_owned(),
        )),
    }
}

/// Puts `config`'s users and limits in force on the running `endpoint` (new logins; open
/// sessions keep what they started with). The demo password is only ever created at start-up.
///
/// SECURITY: only a configuration that never had users keeps the in-memory demo user made at
/// start; when the file's last user is removed, nobody stays able to log in.
pub fn reload(endpoint: &Endpoint, previous: &Config, config: &Config) {
    let running = endpoint.config();
    let mut users = config.sftp_settings.users.clone();
    if users.is_empty() && previous.sftp_settings.users.is_empty() {
        users = running.users.iter().map(|u| (**u).clone()).collect();
    }
    let deployer = running
        .deployer
        .clone()
        .unwrap_or_else(|| Arc::new(crate::deploy::Deployer::default()));
    endpoint.replace_config(crate_config(
        config,
        users,
        running.host_key.clone(),
        deployer,
    ));
}

/// On the very first start nobody can log in: give the demo user (or the first user, or a new
/// in-memory `demo` on the document root when there are no users) a random password, store its
/// hash in the configuration file, and return it to be printed once.
fn ensure_credentials(
    users: &mut Vec<sftp_upload::User>,
    config: &Config,
    file: Option<&Path>,
) -> anyhow::Result<Option<(String, String)>> {
    let has_credentials = users.iter().any(|u| {
        u.password_hash.is_some()
            || u.authorized_keys
                .as_deref()
                .is_some_and(|p| !sftp_upload::accounts::authorized_keys(p, &u.name).is_empty())
    });
    if has_credentials {
        return Ok(None);
    }
    let password = random_password()?;
    let hash = sftp_upload::accounts::hash_password(&password).map_err(anyhow::Error::msg)?;
    if users.is_empty() {
        users.push(sftp_upload::User {
            name: "demo".into(),
            site: config.document_root.clone(),
            authorized_keys: None,
            password_hash: Some(hash),
            quota: QuotaLimits::default(),
            refused: None,
        });
        return Ok(Some(("demo".into(), password)));
    }
    let i = users.iter().position(|u| u.name == "demo").unwrap_or(0);
    let name = users[i].name.clone();
    let stored = config_file(file).and_then(|path| {
        edit_config(&path, |doc| {
            let entry = user_entry(doc, &name)?;
            entry["password_hash"] = toml_edit::value(hash.clone());
            Ok(())
        })
    });
    if let Err(e) = stored {
        // A read-only configuration (a container image, say) must not stop the server: the
        // password then lasts until the next start.
        tracing::warn!(error = %format!("{e:#}"), "cannot store the new password's hash in the configuration; it is valid until the server stops");
    }
    users[i].password_hash = Some(hash);
    Ok(Some((name, password)))
}

/// 16 characters from an alphabet without look-alikes.
fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    yadokari_site::random::fill(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}
