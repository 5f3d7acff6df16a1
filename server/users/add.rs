//! `user add`: a new customer. With a home (`--home DIR`, or `[hosting] homes`/NAME), it is
//! made with the web root (`public_html/`), its `cgi-bin/`, `logs/` and a starter page that
//! says whose site it is, and given to the customer's identity: one of their own from
//! `[hosting] uid_range`, or the existing account `--unix-user` (as root; otherwise the
//! server's own user keeps it). With `--site DIR`, an existing directory is both home and web
//! root and its owner is who the customer is, as before homes existed.
//!
//! Everything is checked before anything is made (the name, the domains, where the home goes,
//! the identity); the configuration is written last, and a home made for an entry that then
//! cannot be written is removed again, so a refused `add` changes nothing.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::edit::{edit_config, user_entry, users_array};
use super::identity;
use super::load;
use crate::config::{Config, Identity};

/// What `user add` was asked for.
pub(super) struct NewCustomer {
    pub(super) name: String,
    pub(super) domains: Vec<String>,
    pub(super) home: Option<PathBuf>,
    pub(super) unix_user: Option<String>,
    pub(super) site: Option<PathBuf>,
}

/// `user add NAME [--domain D]... [--home DIR | --site DIR] [--unix-user NAME]`.
pub(super) fn add(path: &Path, new: &NewCustomer) -> anyhow::Result<()> {
    let name = &new.name;
    if !crate::config::valid_user_name(name) {
        bail!("`{name}` is not a user name (letters, digits, . _ -; at most 32)");
    }
    let config = load(path)?;
    if config.customers.iter().any(|c| &c.name == name) {
        bail!("user `{name}` already exists");
    }
    let domains = checked_domains(&config, &new.domains)?;
    let as_root = nix::unistd::Uid::effective().is_root();
    let identity = match (&new.unix_user, &new.site) {
        (Some(account), _) => Some(identity::existing(&config, account)?),
        (None, None) if as_root => Some(identity::allocate(&config)?),
        _ => None,
    };
    let made = match &new.site {
        Some(site) => {
            let site = std::fs::canonicalize(site)
                .with_context(|| format!("{} is not a directory", site.display()))?;
            if let Some(reason) = crate::config::unsafe_site(&site, &config, as_root) {
                bail!("cannot add `{name}`: {reason}");
            }
            Place::Site(site)
        }
        None => Place::Home(make_home(&config, new, identity)?),
    };
    let written = edit_config(path, |doc| {
        if user_entry(doc, name).is_ok() {
            bail!("user `{name}` already exists");
        }
        users_array(doc)?.push(entry(new, &made, identity, &domains));
        Ok(())
    });
    if let (Err(_), Place::Home(home)) = (&written, &made) {
        let _ = std::fs::remove_dir_all(home);
    }
    written?;
    say_added(&config, new, &made, identity);
    Ok(())
}

/// Where the customer lives: a home made for them, or an existing site.
enum Place {
    Home(PathBuf),
    Site(PathBuf),
}

/// The `[[users]]` table for the new customer.
fn entry(
    new: &NewCustomer,
    made: &Place,
    identity: Option<Identity>,
    domains: &[String],
) -> toml_edit::Table {
    let mut t = toml_edit::Table::new();
    t["name"] = toml_edit::value(&new.name);
    match made {
        Place::Home(home) => t["home"] = toml_edit::value(home.display().to_string()),
        Place::Site(site) => t["site"] = toml_edit::value(site.display().to_string()),
    }
    match (&new.unix_user, identity) {
        (Some(account), _) => t["unix_user"] = toml_edit::value(account),
        (None, Some(id)) => t["uid"] = toml_edit::value(i64::from(id.uid)),
        (None, None) => {}
    }
    if !domains.is_empty() {
        t["domains"] = toml_edit::value(domains.iter().collect::<toml_edit::Array>());
    }
    t["authorized_keys"] = toml_edit::value(format!("authorized_keys.{}", new.name));
    t
}

/// The domains, checked, lowercased and claimed by nobody else.
fn checked_domains(config: &Config, domains: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for d in domains {
        let d = crate::sites::check_domain(d).map_err(anyhow::Error::msg)?;
        if let Some(owner) = config.customers.iter().find(|c| c.domains.contains(&d)) {
            bail!("the domain `{d}` is already `{}`'s", owner.name);
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Makes the home, checked first: it must be new, not inside another customer's home nor
/// holding one, and not hold the server's own files.
fn make_home(
    config: &Config,
    new: &NewCustomer,
    identity: Option<Identity>,
) -> anyhow::Result<PathBuf> {
    let home = match (&new.home, &config.hosting.homes) {
        (Some(h), _) => std::path::absolute(h).unwrap_or_else(|_| h.clone()),
        (None, Some(homes)) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(homes)
                .with_context(|| format!("cannot make {}", homes.display()))?;
            homes.join(&new.name)
        }
        (None, None) => bail!(
            "where should the home go? Give --home DIR, or set `homes = \"DIR\"` in the [hosting] section (or use --site DIR for an existing site)"
        ),
    };
    if std::fs::symlink_metadata(&home).is_ok() {
        bail!(
            "{} already exists; a new customer's home must be a new directory (use --site DIR to make an existing directory their site)",
            home.display()
        );
    }
    let parent = home
        .parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .with_context(|| {
            format!(
                "the directory {} is to go in does not exist",
                home.display()
            )
        })?;
    let home = parent.join(home.file_name().context("a home needs a name")?);
    refuse_overlap(config, &home)?;
    build(config, &home, &new.name, identity).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&home);
    })?;
    if let Some(reason) = crate::config::unsafe_site(&home, config, false) {
        let _ = std::fs::remove_dir_all(&home);
        bail!("cannot add `{}`: {reason}", new.name);
    }
    Ok(home)
}

/// Refuses a home inside another customer's home, or one that would hold another's.
fn refuse_overlap(config: &Config, home: &Path) -> anyhow::Result<()> {
    for c in &config.customers {
        if home.starts_with(&c.home) || c.home.starts_with(home) {
            bail!(
                "{} overlaps `{}`'s home {}: each customer's home must be a directory of its own, outside every other",
                home.display(),
                c.name,
                c.home.display()
            );
        }
    }
    if home.starts_with(&config.document_root) {
        bail!(
            "{} is inside the document root {}, which the world can read: put homes elsewhere",
            home.display(),
            config.document_root.display()
        );
    }
    Ok(())
}

/// The home's directories and starter page, given to `identity`.
fn build(
    config: &Config,
    home: &Path,
    name: &str,
    identity: Option<Identity>,
) -> anyhow::Result<()> {
    let web = home.join(&config.hosting.web_root);
    let dirs = [
        (home.to_path_buf(), 0o711),
        (web.clone(), 0o755),
        (web.join("cgi-bin"), 0o755),
        (home.join("logs"), 0o700),
    ];
    for (dir, mode) in &dirs {
        std::fs::DirBuilder::new()
            .mode(*mode)
            .create(dir)
            .with_context(|| format!("cannot make {}", dir.display()))?;
        // The umask must not narrow what the customer is given.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))?;
    }
    let index = web.join("index.html");
    std::fs::write(&index, starter_page(name, &config.hosting.web_root))
        .with_context(|| format!("cannot write {}", index.display()))?;
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o644))?;
    if let Some(id) = identity {
        identity::give_home(home, id)?;
    }
    Ok(())
}

/// The page a new site shows until its owner uploads their own.
fn starter_page(name: &str, web_root: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{name}'s site</title></head>\n<body>\n<h1>This is {name}'s site</h1>\n<p>It is served from <code>{web_root}/</code> in {name}'s home.\nTo change it, log in over SFTP as <code>{name}</code>, upload your files into\n<code>{web_root}/</code> (scripts into <code>{web_root}/cgi-bin/</code>, then\n<code>chmod 755</code> them), and reload. Your logs are in <code>logs/</code>.</p>\n</body>\n</html>\n"
    )
}

/// What was made, and what to do next.
fn say_added(config: &Config, new: &NewCustomer, made: &Place, identity: Option<Identity>) {
    let name = &new.name;
    match made {
        Place::Home(home) => println!(
            "added `{name}`: home {}, web root {}/",
            home.display(),
            home.join(&config.hosting.web_root).display()
        ),
        Place::Site(site) => println!("added `{name}`: site {}", site.display()),
    }
    match (identity, &new.unix_user) {
        (Some(id), Some(account)) => println!("identity: the account `{account}` (uid {})", id.uid),
        (Some(id), None) => println!("identity: uid {} gid {}, their own", id.uid, id.gid),
        (None, _) if new.site.is_none() => println!(
            "identity: the server's own user (not started as root: customers are not isolated from each other)"
        ),
        (None, _) => println!("identity: whoever owns the site"),
    }
    println!(
        "give them a key with `yadokari user key {name} FILE` or a password with `yadokari user passwd {name}`"
    );
}
