//! `user domain`, `user quota` and `user remove`: changes to one customer's entry. A running
//! server follows each within seconds: a removed customer's logins and serving stop, their
//! domains fall back to the default site.

use std::path::Path;

use anyhow::{Context, bail};

use super::edit::{edit_config, user_entry, users_array};
use super::load;

/// `user domain NAME add|remove D`.
pub(super) fn domain(path: &Path, name: &str, add: bool, domain: &str) -> anyhow::Result<()> {
    let d = crate::sites::check_domain(domain).map_err(anyhow::Error::msg)?;
    let config = load(path)?;
    if add && let Some(owner) = config.customers.iter().find(|c| c.domains.contains(&d)) {
        bail!(
            "the domain `{d}` is already `{}`'s; nothing changed",
            owner.name
        );
    }
    edit_config(path, |doc| {
        let entry = user_entry(doc, name)?;
        let list = entry
            .entry("domains")
            .or_insert(toml_edit::value(toml_edit::Array::new()))
            .as_array_mut()
            .context("`domains` must be a list")?;
        let at = list
            .iter()
            .position(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&d)));
        match (add, at) {
            (true, None) => list.push(d.as_str()),
            (false, Some(i)) => {
                list.remove(i);
            }
            (true, Some(_)) => bail!("`{name}` already has `{d}`"),
            (false, None) => bail!("`{name}` has no domain `{d}`"),
        }
        Ok(())
    })?;
    if add {
        println!("`{d}` now reaches `{name}`'s site");
    } else {
        println!("`{d}` no longer reaches `{name}`'s site (it gets the default site)");
    }
    Ok(())
}

/// `user quota NAME [--bytes N] [--files N]`; `none` lifts a limit.
pub(super) fn quota(
    path: &Path,
    name: &str,
    bytes: Option<&str>,
    files: Option<&str>,
) -> anyhow::Result<()> {
    if bytes.is_none() && files.is_none() {
        bail!("give --bytes N and/or --files N (`none` lifts a limit)");
    }
    let parse = |text: &str| -> anyhow::Result<Option<i64>> {
        match text {
            "none" | "unlimited" => Ok(None),
            n => n
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .with_context(|| format!("`{n}` is not a number of bytes or files, or `none`")),
        }
    };
    let changes = [("quota_bytes", bytes), ("quota_files", files)]
        .into_iter()
        .filter_map(|(key, v)| v.map(|v| parse(v).map(|n| (key, n))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    edit_config(path, |doc| {
        let entry = user_entry(doc, name)?;
        for (key, n) in &changes {
            match n {
                Some(n) => entry[*key] = toml_edit::value(*n),
                None => {
                    entry.remove(key);
                }
            }
        }
        Ok(())
    })?;
    println!("quota of `{name}` set");
    Ok(())
}

/// `user remove NAME [--purge]`: the entry goes (logins and serving stop), the home stays
/// unless `purge`.
pub(super) fn remove(path: &Path, name: &str, purge: bool) -> anyhow::Result<()> {
    let config = load(path)?;
    let customer = config
        .customers
        .iter()
        .find(|c| c.name == name)
        .with_context(|| format!("no user `{name}`"))?;
    let home = customer.home.clone();
    if purge {
        purgeable(&config, name, &home)?;
    }
    edit_config(path, |doc| {
        let users = users_array(doc)?;
        let before = users.len();
        users.retain(|t| t.get("name").and_then(|v| v.as_str()) != Some(name));
        if users.len() == before {
            bail!("no user `{name}`");
        }
        Ok(())
    })?;
    if purge {
        // remove_dir_all never follows a symlink out of the tree it removes.
        std::fs::remove_dir_all(&home)
            .with_context(|| format!("removed `{name}`, but cannot delete {}", home.display()))?;
        println!(
            "removed user `{name}` and deleted their home {}",
            home.display()
        );
    } else {
        println!(
            "removed user `{name}` (their files stay in {})",
            home.display()
        );
    }
    Ok(())
}

/// Refuses to purge a home that is not the customer's alone: the document root, another
/// customer's, or one holding the server's own files.
fn purgeable(config: &crate::config::Config, name: &str, home: &Path) -> anyhow::Result<()> {
    let shared = config
        .customers
        .iter()
        .any(|c| c.name != name && (c.home.starts_with(home) || home.starts_with(&c.home)));
    if home == config.document_root || config.document_root.starts_with(home) || shared {
        bail!(
            "{} is not `{name}`'s alone (the document root or another customer's files are in it); nothing was removed",
            home.display()
        );
    }
    if let Some(reason) = crate::config::unsafe_site(home, config, false) {
        bail!("will not delete it: {reason}; nothing was removed");
    }
    Ok(())
}
