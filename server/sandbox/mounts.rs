//! A customer's view of the filesystem: a mount namespace built once, in a thread of its own,
//! and held by descriptors that each script's child `setns`es into.
//!
//! What it holds: the whole system read-only and without set-id programs; a private `/tmp`
//! (also at `/var/tmp` and `/dev/shm`) of `tmp_bytes`, whose pages are charged to the
//! customer's memory cgroup; every place that is not theirs (the other homes, the server's
//! document root, configuration, certificates and logs) covered by an empty tmpfs; their home
//! bound back, read-write, at the very same path, so that every path a script is given (its
//! `SCRIPT_FILENAME`, `DOCUMENT_ROOT`) means the same inside; a `/proc` of its own that shows
//! other users' processes to nobody.
//!
//! The thread: `unshare(CLONE_NEWNS)` applies to the calling thread only (it also unshares its
//! working directory and root), so the server's other threads never see these mounts; the
//! thread ends as soon as the descriptors are open, and a runtime thread is never used (it
//! would go back to the pool carrying the customer's namespace).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What one customer's namespace is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Their home, canonical: bound back read-write at the same path.
    pub home: PathBuf,
    /// Places covered by an empty tmpfs, canonical.
    pub hidden: Vec<PathBuf>,
    /// The size of their `/tmp`.
    pub tmp_bytes: u64,
}

/// The built namespaces: mount and IPC (and the Landlock ruleset made inside, whose paths must
/// be this namespace's).
pub struct Built {
    pub mnt: OwnedFd,
    pub ipc: OwnedFd,
    pub landlock: Option<OwnedFd>,
}

/// Builds the namespaces of `plan` on a new thread; `landlock` makes the ruleset inside.
pub fn build(plan: Plan, landlock: Option<u32>) -> Result<Built, String> {
    std::thread::Builder::new()
        .name("sandbox-build".into())
        .spawn(move || {
            yadokari_site::identity::reset_thread();
            build_here(&plan, landlock)
        })
        .map_err(|e| format!("cannot start a thread to build the sandbox: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("building the sandbox panicked".into()))
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn build_here(plan: &Plan, landlock: Option<u32>) -> Result<Built, String> {
    let step = |what: &'static str| {
        let e = io::Error::last_os_error();
        move || format!("{what}: {e}")
    };
    // SAFETY: unshare affects only this thread (CLONE_NEWNS implies CLONE_FS for it).
    if unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC) } != 0 {
        return Err(step("unshare(mount, ipc)")());
    }
    let mnt = open_ns("mnt")?;
    let ipc = open_ns("ipc")?;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| format!("making / private: {e}"))?;
    let home = c_path(&plan.home)?;
    // The home as it is now, before anything covers it.
    // SAFETY: open_tree with a valid path; the result is a new descriptor or -1.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            home.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(step("open_tree(home) (needs Linux 5.2)")());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let tmp_options = format!("mode=1777,size={}", plan.tmp_bytes);
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&tmp_options),
    )
    .map_err(|e| format!("a private /tmp: {e}"))?;
    for place in &plan.hidden {
        // Gone already (under /tmp, or under a place covered before): nothing to cover.
        if !place.is_dir() {
            continue;
        }
        mount(
            Some("tmpfs"),
            place,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=0755,size=1m,nr_inodes=1024"),
        )
        .map_err(|e| format!("covering {}: {e}", place.display()))?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&plan.home)
        .map_err(|e| format!("the home's place {}: {e}", plan.home.display()))?;
    setattr(
        None,
        "/",
        libc::AT_RECURSIVE,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        0,
    )
    .map_err(|e| format!("making the system read-only (needs Linux 5.12): {e}"))?;
    setattr(None, "/tmp", 0, 0, MOUNT_ATTR_RDONLY).map_err(|e| format!("/tmp: {e}"))?;
    for place in ["/var/tmp", "/dev/shm"] {
        if Path::new(place).is_dir() {
            mount(Some("/tmp"), place, None, libc::MS_BIND, None)
                .map_err(|e| format!("{place}: {e}"))?;
        }
    }
    setattr(
        Some(&tree),
        "",
        libc::AT_RECURSIVE | libc::AT_EMPTY_PATH,
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        0,
    )
    .map_err(|e| format!("the home's options: {e}"))?;
    // SAFETY: moves the detached tree (a descriptor) onto the home's path.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            home.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if moved != 0 {
        return Err(step("binding the home back")());
    }
    // A /proc that shows each user only their own processes; the host's (read-only) when the
    // kernel refuses.
    let _ = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("hidepid=invisible"),
    );
    let landlock = match landlock {
        Some(abi) => Some(
            super::landlock::ruleset(
                abi,
                &super::landlock::Rules {
                    read: &[Path::new("/")],
                    write: &[&plan.home, Path::new("/tmp")],
                    devices: &[Path::new("/dev")],
                    no_tcp: false,
                },
            )
            .map_err(|e| format!("the Landlock ruleset: {e}"))?,
        ),
        None => None,
    };
    Ok(Built { mnt, ipc, landlock })
}

/// This thread's namespace of `kind`, held open.
fn open_ns(kind: &str) -> Result<OwnedFd, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .open(format!("/proc/thread-self/ns/{kind}"))
        .map(OwnedFd::from)
        .map_err(|e| format!("opening the {kind} namespace: {e}"))
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} holds a NUL byte", path.display()))
}

/// mount(2).
fn mount(
    source: Option<&str>,
    target: impl AsRef<Path>,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let source = source.map(c).transpose()?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    let target = CString::new(target.as_ref().as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a valid C string or null, as mount(2) allows.
    let r = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// mount_setattr(2) on `path` (relative to `dir`, or the current directory).
fn setattr(
    dir: Option<&OwnedFd>,
    path: &str,
    flags: libc::c_int,
    set: u64,
    clear: u64,
) -> io::Result<()> {
    let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid path, attribute and size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()),
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
