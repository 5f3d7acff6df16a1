//! Who a script runs as. When the server is root it behaves like suEXEC plus Apache's `User`:
//! a script owned by an ordinary user (uid ≥ `cgi.min_uid`) runs as that user with that user's
//! groups; one owned by root or a system account runs as `cgi.fallback_user`. Never as root.
//! A customer's allocated identity (a uid of their own with no account in `/etc/passwd`, as
//! SFTPGo's and CloudLinux's virtual users) runs as that uid with its own gid and no other group.
//! When the server is not root, scripts run as the server's own user.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Uid, User, getgrouplist};

use super::failure::Failure;
use super::spawn::Identity;
use crate::config::{Cgi, Config};

/// How long a looked-up account is reused. Reading `/etc/passwd` and `/etc/group` for every
/// request costs more than everything else the server adds to a CGI request; a change to an
/// account is seen within this time.
const CACHE_FOR: Duration = Duration::from_secs(10);

type Key = (u32, u32, String);
static CACHE: Mutex<Option<HashMap<Key, (Instant, Identity)>>> = Mutex::new(None);

/// The identity for a script owned by `owner`, or `None` to run as the server's user.
pub fn for_owner(owner: u32, config: &Config) -> Result<Option<Identity>, Failure> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let cgi = &config.cgi;
    if let Some(&i) = config.by_uid.get(&owner)
        && let customer = &config.customers[i]
        && customer.unix_user.is_none()
        && let Some(id) = customer.identity
        && owner >= cgi.min_uid
    {
        return Ok(Some(Identity {
            name: customer.name.clone(),
            uid: id.uid,
            gid: id.gid,
            groups: vec![id.gid],
        }));
    }
    let key = (owner, cgi.min_uid, cgi.fallback_user.clone());
    if let Ok(cache) = CACHE.lock()
        && let Some((at, identity)) = cache.as_ref().and_then(|c| c.get(&key))
        && at.elapsed() < CACHE_FOR
    {
        return Ok(Some(identity.clone()));
    }
    let identity = look_up(owner, cgi)?;
    if let Ok(mut cache) = CACHE.lock() {
        let map = cache.get_or_insert_with(HashMap::new);
        if map.len() > 1024 {
            map.clear();
        }
        map.insert(key, (Instant::now(), identity.clone()));
    }
    Ok(Some(identity))
}

fn look_up(owner: u32, cgi: &Cgi) -> Result<Identity, Failure> {
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
    Ok(Identity {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: groups.into_iter().map(Gid::as_raw).collect(),
    })
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
