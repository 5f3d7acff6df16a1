//! A thread's file-system identity. When the server runs as root, work done on behalf of a
//! customer must not be done with root's rights: the thread that does it takes the site owner's
//! file-system uid and gid (`setfsuid`/`setfsgid`) and only the owner's groups, so the kernel
//! checks every open, create, rename, chmod and unlink as it would for the owner (as OpenSSH's
//! sftp-server, running as the user, would), and what is created belongs to the owner.
//!
//! Two places need it, so it lives here, in the crate both sides share, as one copy: the SFTP
//! session's request thread (`sftp-upload`), and the server's writer of per-customer logs
//! (`server/customer_log`), which opens and rotates files in a `logs/` directory the customer
//! controls. One copy means one audited sequence of raw system calls, and one place where the
//! order (groups, then gid, then uid; restored in reverse) can go wrong.
//!
//! These are per-thread on Linux when made as raw system calls (glibc's `setgroups` would change
//! every thread of the process, so the raw call is used). The identity is restored on drop,
//! before the blocking-pool thread serves anything else. Reads handed to other threads use
//! descriptors opened here, so they carry the owner's checks with them.

/// The process's own supplementary groups, remembered before any thread takes an owner's.
static PROCESS_GROUPS: std::sync::OnceLock<Vec<libc::gid_t>> = std::sync::OnceLock::new();

/// Remembers the process's groups; call once at start, before threads are made.
pub fn remember_process_groups() {
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer holds `groups.len()` entries.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    let _ = PROCESS_GROUPS.set(groups);
}

/// Gives the calling thread the process's own file-system identity back: for a thread that
/// has just been made (a runtime's `on_thread_start`).
///
/// SECURITY: Linux copies a thread's credentials to the threads it makes. A blocking-pool
/// thread made while an SFTP session's thread held a customer's identity (a `spawn_blocking`
/// from there) would start as that customer, and serve other customers' work with their
/// rights or fail it. Every new thread starts from the process's own identity instead.
pub fn reset_thread() {
    // SAFETY: geteuid/getegid have no preconditions; the raw calls change only this thread.
    unsafe {
        if libc::geteuid() != 0 {
            return;
        }
        libc::setfsuid(0);
        libc::setfsgid(libc::getegid());
        if let Some(groups) = PROCESS_GROUPS.get() {
            libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr());
        }
    }
}

/// The site owner's identity could not be taken.
#[derive(Debug)]
pub struct CannotAssume;

/// The owner's identity, held by the current thread until dropped.
pub struct OwnerIdentity {
    saved_groups: Option<Vec<libc::gid_t>>,
}

impl OwnerIdentity {
    /// Takes the owner's identity when running as root and the owner is not root; otherwise
    /// nothing changes. An error means the identity could not be taken (and root's was kept):
    /// the session must not go on.
    pub fn assume((uid, gid): (u32, u32)) -> Result<OwnerIdentity, CannotAssume> {
        let none = OwnerIdentity { saved_groups: None };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || uid == 0 {
            return Ok(none);
        }
        let mut groups = vec![0 as libc::gid_t; 256];
        // SAFETY: the buffer holds `groups.len()` entries.
        let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
        if n < 0 {
            tracing::error!("getgroups failed; cannot take the site owner's identity");
            return Err(CannotAssume);
        }
        groups.truncate(n as usize);
        // The owner's own groups (as a login would have them), else only its group.
        let only: Vec<libc::gid_t> = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .and_then(|u| {
                let name = std::ffi::CString::new(u.name).ok()?;
                nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid)).ok()
            })
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![gid]);
        // SAFETY: raw per-thread system calls with valid arguments; setfsgid before setfsuid,
        // while the thread still has the privilege to change it.
        let ok = unsafe {
            libc::syscall(libc::SYS_setgroups, only.len(), only.as_ptr()) == 0 && {
                libc::setfsgid(gid);
                libc::setfsuid(uid);
                // setfsuid returns the previous value; asking for an invalid id reads it.
                libc::setfsuid(u32::MAX) as u32 == uid && libc::setfsgid(u32::MAX) as u32 == gid
            }
        };
        if !ok {
            tracing::error!(
                uid,
                gid,
                "cannot take the site owner's identity; refusing to go on as root"
            );
            // SAFETY: as above; restores root.
            unsafe {
                libc::setfsuid(0);
                libc::setfsgid(0);
                libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr());
            }
            return Err(CannotAssume);
        }
        Ok(OwnerIdentity {
            saved_groups: Some(groups),
        })
    }
}

impl Drop for OwnerIdentity {
    fn drop(&mut self) {
        if let Some(groups) = self.saved_groups.take() {
            // SAFETY: restores the identity saved in `assume`; root may always do so, because
            // setfsuid keeps the real and saved uids at 0.
            unsafe {
                libc::setfsuid(0);
                libc::setfsgid(0);
                libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// setfsuid with an invalid id reads the current one.
    fn fsuid() -> u32 {
        // SAFETY: an invalid id changes nothing.
        unsafe { libc::setfsuid(u32::MAX) as u32 }
    }

    #[test]
    fn a_thread_made_while_an_owner_is_assumed_starts_as_the_process() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        remember_process_groups();
        let held = OwnerIdentity::assume((54321, 54321)).expect("assume");
        assert_eq!(fsuid(), 54321);
        let (inherited, reset) = std::thread::spawn(|| {
            let inherited = fsuid();
            reset_thread();
            (inherited, fsuid())
        })
        .join()
        .expect("thread");
        drop(held);
        assert_eq!(inherited, 54321, "Linux copies the maker's identity");
        assert_eq!(reset, 0);
        assert_eq!(fsuid(), 0);
    }
}
