//! Customers' identities: allocating a uid of their own from `[hosting] uid_range`, giving a
//! home to it, and, on the first start as root, adopting a customer that has none yet (the
//! shipped demo user, whose home is the checkout's `htdocs/`).
//!
//! An allocated identity needs no `/etc/passwd` entry (as SFTPGo's and CloudLinux's virtual
//! users): the uid is stored in the customer's entry, its gid is the same number, and it has no
//! other group. A number is only taken when no customer has it, no customer's home belongs to
//! it, and the system has neither an account nor a group with it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, bail};

use crate::config::{Config, Identity};

/// The uids customers of `config` are: declared, or owning their home.
fn taken(config: &Config) -> HashSet<u32> {
    config
        .customers
        .iter()
        .filter_map(|c| {
            c.identity
                .map(|id| id.uid)
                .or_else(|| std::fs::metadata(&c.home).ok().map(|m| m.uid()))
        })
        .collect()
}

/// The lowest free identity of `[hosting] uid_range`.
pub fn allocate(config: &Config) -> anyhow::Result<Identity> {
    let Some((first, last)) = config.hosting.uid_range else {
        bail!(
            "no identity to give: set `uid_range = [20000, 29999]` in the [hosting] section of the configuration (or give --unix-user NAME)"
        );
    };
    let taken = taken(config);
    let free = (first..=last).find(|&uid| {
        !taken.contains(&uid)
            && nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .is_ok_and(|u| u.is_none())
            && nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(uid))
                .is_ok_and(|g| g.is_none())
    });
    match free {
        Some(uid) => Ok(Identity { uid, gid: uid }),
        None => bail!("every uid of hosting.uid_range ({first}-{last}) is taken; widen the range"),
    }
}

/// The existing account `name` as a customer's identity: an ordinary one no other customer is.
pub fn existing(config: &Config, name: &str) -> anyhow::Result<Identity> {
    let account = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .with_context(|| format!("there is no account `{name}` on this system"))?;
    let id = Identity {
        uid: account.uid.as_raw(),
        gid: account.gid.as_raw(),
    };
    if id.uid == 0 || id.gid == 0 || id.uid < config.cgi.min_uid {
        bail!(
            "`{name}` (uid {}) is root or a system account; a customer's identity must be an ordinary account (uid {} or above, cgi.min_uid)",
            id.uid,
            config.cgi.min_uid
        );
    }
    if taken(config).contains(&id.uid) {
        bail!(
            "`{name}` (uid {}) is already another customer's identity; each customer needs their own, or one could change the other's files",
            id.uid
        );
    }
    Ok(id)
}

/// Gives everything under `home` (itself included) to `id`, never following a symlink: a link
/// is changed itself, not what it points at.
pub fn give_home(home: &Path, id: Identity) -> anyhow::Result<()> {
    let chown = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(id.uid), Some(id.gid))
            .with_context(|| format!("cannot give {} to uid {}", p.display(), id.uid))
    };
    chown(home)?;
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = entry.path();
            chown(&path)?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    Ok(())
}

/// Whether customer `c` would be adopted: their home is root's or a system account's.
fn needs_identity(c: &crate::config::Customer, config: &Config) -> bool {
    std::fs::metadata(&c.home).is_ok_and(|m| m.uid() < config.cgi.min_uid)
}

/// On a start as root: each customer with no identity whose home belongs to root or a system
/// account (which a customer must never act as) is given one from `[hosting] uid_range`, their
/// home handed to it and the identity stored in their entry. Returns what was done, for the
/// banner; nothing without a range or a configuration file.
pub fn adopt(config: &Config, file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let (Some(file), Some(_)) = (file, config.hosting.uid_range) else {
        return Ok(Vec::new());
    };
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(Vec::new());
    }
    let mut said = Vec::new();
    let mut config = config.clone();
    if !config
        .customers
        .iter()
        .any(|c| c.identity.is_none() && needs_identity(c, &config))
    {
        return Ok(said);
    }
    // Replicas sharing one configuration may start together: under the edit lock, and from
    // the file as it is now, so two never give out one identity.
    let _lock = super::edit::lock_for_edit(file)?;
    config = Config::load(Some(file), &crate::config::Overrides::default())?;
    for i in 0..config.customers.len() {
        let c = &config.customers[i];
        if c.identity.is_some() || !needs_identity(c, &config) {
            continue;
        }
        if let Some(reason) = crate::config::unsafe_site(&c.home, &config, false) {
            said.push(format!("`{}` keeps no identity: {reason}", c.name));
            continue;
        }
        let id = allocate(&config)?;
        let name = c.name.clone();
        let home = c.home.clone();
        // The home first: a home given but not recorded still works (its owner is who the
        // customer is), an identity recorded for a home still root's would refuse them.
        give_home(&home, id)?;
        super::edit_config(file, |doc| {
            let entry = super::user_entry(doc, &name)?;
            entry["uid"] = toml_edit::value(i64::from(id.uid));
            Ok(())
        })?;
        config.customers[i].identity = Some(id);
        said.push(format!(
            "started as root: `{name}` now has an identity of their own, uid {}, and their home {} belongs to it",
            id.uid,
            home.display()
        ));
    }
    Ok(said)
}
