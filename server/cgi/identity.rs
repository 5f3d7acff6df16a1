//! Who a script runs as. When the server is root it behaves like suEXEC plus Apache's `User`:
//! a script owned by an ordinary user (uid ≥ `cgi.min_uid`) runs as that user with that user's
//! groups; one owned by root or a system account runs as `cgi.fallback_user`. Never as root.
//! When the server is not root, scripts run as the server's own user.

use std::ffi::CString;

use nix::unistd::{Gid, Uid, User, getgrouplist};

use super::failure::Failure;
use super::spawn::Identity;
use crate::config::Cgi;

/// The identity for a script owned by `owner`, or `None` to run as the server's user.
pub fn for_owner(owner: u32, cgi: &Cgi) -> Result<Option<Identity>, Failure> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = if owner >= cgi.min_uid {
        User::from_uid(Uid::from_raw(owner))
            .ok()
            .flatten()
            .ok_or(Failure::NoAccount { uid: owner })?
    } else {
        User::from_name(&cgi.fallback_user)
            .ok()
            .flatten()
            .ok_or_else(|| Failure::NoFallbackUser {
                name: cgi.fallback_user.clone(),
            })?
    };
    if user.uid.is_root() {
        return Err(Failure::WouldRunAsRoot);
    }
    let groups = CString::new(user.name.clone())
        .ok()
        .and_then(|name| getgrouplist(&name, user.gid).ok())
        .unwrap_or_else(|| vec![user.gid]);
    Ok(Some(Identity {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: groups.into_iter().map(Gid::as_raw).collect(),
    }))
}

/// How to name the account a script runs as, in messages.
pub fn describe(identity: Option<&Identity>) -> String {
    match identity {
        Some(i) => format!("the user `{}`", i.name),
        None => match User::from_uid(Uid::effective()) {
            Ok(Some(u)) => format!("the server's user `{}`", u.name),
            _ => "the server's user".to_string(),
        },
    }
}
