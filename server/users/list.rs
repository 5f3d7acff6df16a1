//! `user list`: one line per customer, with who they are on this system, where they live,
//! their domains, what their home holds against their quota, and their credentials.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::load;
use crate::config::Customer;

/// `user list`.
pub(super) fn list(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    for (c, u) in config.customers.iter().zip(&config.sftp_settings.users) {
        let keys = u
            .authorized_keys
            .as_deref()
            .map(|p| sftp_upload::accounts::authorized_keys(p, &u.name).len())
            .unwrap_or(0);
        let password = if u.password_hash.is_some() {
            "yes"
        } else {
            "no"
        };
        let domains = if c.domains.is_empty() {
            "-".to_string()
        } else {
            c.domains.join(",")
        };
        let usage = match sftp_upload::count_usage(&c.home) {
            Ok(used) => format!(
                "bytes={}/{} files={}/{}",
                used.bytes,
                limit(u.quota.bytes),
                used.files,
                limit(u.quota.files)
            ),
            Err(e) => format!("usage=unknown ({e})"),
        };
        let web_root = match (&c.web_root_link, std::fs::read_link(&c.web_root)) {
            (Some(_), Ok(to)) => format!("{} -> {}", c.web_root.display(), to.display()),
            _ => c.web_root.display().to_string(),
        };
        let repos = match c.repos.is_empty() {
            true => String::new(),
            false => format!("\trepos={}", c.repos.join(",")),
        };
        println!(
            "{}\tidentity={}\thome={}\tweb_root={web_root}\tdomains={domains}\t{usage}\tkeys={keys}\tpassword={password}{repos}",
            c.name,
            identity(c),
            c.home.display(),
        );
    }
    Ok(())
}

fn limit(n: Option<u64>) -> String {
    n.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

/// Who the customer is on this system: their own uid, an account, or the home's owner.
fn identity(c: &Customer) -> String {
    match (c.identity, &c.unix_user) {
        (Some(id), Some(account)) => format!("{account}(uid {})", id.uid),
        (Some(id), None) => format!("uid {}", id.uid),
        (None, _) => match std::fs::metadata(&c.home) {
            Ok(m) => format!("owner uid {}", m.uid()),
            Err(_) => "unknown".to_string(),
        },
    }
}
