//! Landlock rulesets, built once per customer and applied by each script's child with one
//! `landlock_restrict_self` between `setuid` and `execve`.
//!
//! By hand, not with the `landlock` crate: the crate applies a ruleset to the calling thread
//! (`restrict_self` consumes it), while here the ruleset is built in the server and applied in
//! the vfork-style child, which may only make raw system calls; what is needed is the
//! ruleset's descriptor, three system calls and three structures (the kernel's
//! `include/uapi/linux/landlock.h`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Filesystem rights (`LANDLOCK_ACCESS_FS_*`), by the ABI that brought them.
mod fs {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    /// Every right of ABI 1.
    pub const ABI1: u64 = (1 << 13) - 1;
    pub const REFER: u64 = 1 << 13;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
}

/// `LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP` (ABI 4).
const NET_TCP: u64 = 0b11;
/// `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL` (ABI 6).
const SCOPES: u64 = 0b11;
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI this kernel speaks, or why there is none.
pub fn abi() -> Result<u32, String> {
    // SAFETY: the documented version query: no attribute, size 0, the VERSION flag.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v > 0 {
        return Ok(v as u32);
    }
    Err(match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) => "Landlock: this kernel has none (Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)".into(),
        Some(libc::EOPNOTSUPP) => "Landlock: built into this kernel but not enabled (add landlock to the lsm= boot parameter)".into(),
        _ => format!("Landlock: {}", io::Error::last_os_error()),
    })
}

/// What a ruleset lets a customer's scripts do.
pub struct Rules<'a> {
    /// Read and execute beneath these (the system).
    pub read: &'a [&'a Path],
    /// Everything beneath these (their home, their `/tmp`).
    pub write: &'a [&'a Path],
    /// Device files beneath these may be opened for writing (`/dev/null`).
    pub devices: &'a [&'a Path],
    /// TCP `bind` and `connect` are refused (network `none` without a namespace).
    pub no_tcp: bool,
}

/// Builds a ruleset for `rules` on a kernel of `abi`; paths that do not exist are left out (a
/// system without `/lib64`). The descriptor is what the child restricts itself with.
pub fn ruleset(abi: u32, rules: &Rules<'_>) -> io::Result<OwnedFd> {
    let mut all = fs::ABI1;
    if abi >= 2 {
        all |= fs::REFER;
    }
    if abi >= 3 {
        all |= fs::TRUNCATE;
    }
    if abi >= 5 {
        all |= fs::IOCTL_DEV;
    }
    let attr = RulesetAttr {
        handled_access_fs: all,
        handled_access_net: if rules.no_tcp && abi >= 4 { NET_TCP } else { 0 },
        scoped: if abi >= 6 { SCOPES } else { 0 },
    };
    // The attribute's size tells the kernel which fields it knows: an older one refuses
    // a larger size with non-zero fields it does not know.
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => std::mem::size_of::<RulesetAttr>(),
    };
    // SAFETY: a valid attribute of `size` bytes; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let read = fs::EXECUTE | fs::READ_FILE | fs::READ_DIR | (all & fs::IOCTL_DEV);
    let device = read | fs::WRITE_FILE | (all & fs::TRUNCATE);
    for (paths, access) in [
        (rules.read, read),
        (rules.devices, device),
        (rules.write, all),
    ] {
        for path in paths {
            allow(&ruleset, path, access)?;
        }
    }
    Ok(ruleset)
}

/// Adds a rule: `access` beneath `path` (skipped when it does not exist; a file gets only the
/// rights that apply to files).
fn allow(ruleset: &OwnedFd, path: &Path, access: u64) -> io::Result<()> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let is_dir = file.metadata().is_ok_and(|m| m.is_dir());
    let file_rights = fs::EXECUTE | fs::WRITE_FILE | fs::READ_FILE | fs::TRUNCATE | fs::IOCTL_DEV;
    let attr = PathBeneathAttr {
        allowed_access: if is_dir { access } else { access & file_rights },
        parent_fd: file.as_raw_fd(),
    };
    // SAFETY: a valid ruleset descriptor and rule attribute; flags must be 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
