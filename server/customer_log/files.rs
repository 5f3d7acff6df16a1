//! A customer's log files in their `logs/` directory: opened on the first line, rotated by
//! size, closed when idle.
//!
//! SECURITY: the customer controls `logs/` (they can create, rename and link anything there
//! over SFTP, or from their scripts). A server that opens `logs/access.log` by path, as root,
//! can be made to append to `/etc/passwd` through a symlink planted at that name, to hang on a
//! FIFO, or to write through a hard link to a file it was never meant to touch. So:
//! - every open and rename is done as the home's owner (`yadokari_site::identity`: fsuid,
//!   fsgid, only their groups), so the kernel refuses what the customer could not do
//!   themselves; a home owned by root or a system account (below `cgi.min_uid`) is never
//!   written into when the server is root;
//! - `logs` and the file are each opened by one name beneath the home (`openat2` with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and `O_NOFOLLOW`): no symlink is followed;
//! - `O_NONBLOCK`: a FIFO without a reader fails at once (`ENXIO`) instead of blocking;
//! - after the open, `fstat`: a regular file, owned by that owner, with one link; anything
//!   else is closed unwritten, with a warning in the global error log naming the customer, the
//!   file and the reason.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2, renameat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};
use yadokari_site::identity::OwnerIdentity;

use super::Settings;
use super::log::Stream;

/// The open files of one customer.
#[derive(Default)]
pub(super) struct Files {
    /// `logs/`, held open while a file is.
    dir: Option<OwnedFd>,
    /// `access.log` and `error.log`, indexed by [`Stream::slot`].
    open: [Option<Open>; 2],
    last_write: Option<Instant>,
    /// The warning about the home's owner was given (it is given once).
    warned_owner: bool,
}

struct Open {
    file: File,
    size: u64,
}

/// Why a customer's log was not written.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The home has no `logs/` directory (or there is no home): nothing to do, quietly.
    NoLogsDir,
    /// The home belongs to root or a system account and the server is root.
    Owner(u32),
    /// The owner's identity could not be taken.
    Identity,
    /// What is at a name is not something to write into.
    Unsafe(&'static str, String),
    /// A system call failed.
    Io(&'static str, String, io::Error),
}

impl Files {
    /// Appends `data` to `stream`'s file, opening (and first rotating) it as needed.
    pub(super) fn append(
        &mut self,
        stream: Stream,
        data: &[u8],
        settings: &Settings,
        now: Instant,
    ) -> Result<(), Refusal> {
        let name = stream.file_name();
        let len = data.len() as u64;
        let max = settings.rotation.max_bytes;
        let over = |o: &Open| o.size > 0 && o.size + len > max;
        let i = stream.slot();
        if self.open[i].as_ref().is_none_or(over) {
            let owner = Owner::of(settings)?;
            let _identity =
                OwnerIdentity::assume((owner.uid, owner.gid)).map_err(|_| Refusal::Identity)?;
            if self.dir.is_none() {
                self.dir = Some(logs_dir(&owner.home)?);
            }
            let Some(dir) = &self.dir else {
                return Err(Refusal::NoLogsDir);
            };
            if self.open[i].is_none() {
                self.open[i] = Some(open_log(dir, name, owner.expected)?);
            }
            if self.open[i].as_ref().is_some_and(over) {
                self.open[i] = None;
                rotate(dir, name, settings)?;
                self.open[i] = Some(open_log(dir, name, owner.expected)?);
            }
        }
        let Some(open) = self.open[i].as_mut() else {
            return Err(Refusal::NoLogsDir);
        };
        open.file
            .write_all(data)
            .map_err(|e| Refusal::Io("cannot write", name.to_string(), e))?;
        open.size += len;
        self.last_write = Some(now);
        Ok(())
    }

    /// Says why `stream` was not written, in the global error log (a missing `logs/` quietly;
    /// the home's owner once).
    pub(super) fn refused(&mut self, refusal: &Refusal, customer: &str, stream: Stream) {
        let file = format!("logs/{}", stream.file_name());
        match refusal {
            Refusal::NoLogsDir => {}
            Refusal::Owner(uid) => {
                if !std::mem::replace(&mut self.warned_owner, true) {
                    tracing::warn!(
                        customer,
                        uid,
                        "customer logs not written: the home belongs to root or a system account (below cgi.min_uid), and the server does not write there with root's rights; give the home to the customer's own user"
                    );
                }
            }
            Refusal::Identity => {
                tracing::warn!(
                    customer,
                    file,
                    "customer log not written: cannot take the home owner's identity"
                )
            }
            Refusal::Unsafe(why, name) => {
                let file = format!("logs/{name}");
                tracing::warn!(customer, file, reason = why, "customer log refused")
            }
            Refusal::Io(what, name, e) => {
                let file = format!("logs/{name}");
                tracing::warn!(customer, file, error = %e, "customer log not written: {what}")
            }
        }
    }

    /// Closes the files when nothing was written for `idle`.
    pub(super) fn close_if_idle(&mut self, now: Instant, idle: Duration) {
        if self
            .last_write
            .is_some_and(|t| now.duration_since(t) >= idle)
        {
            self.close();
        }
    }

    /// Closes `stream`'s file.
    pub(super) fn close_stream(&mut self, stream: Stream) {
        self.open[stream.slot()] = None;
    }

    /// Closes everything.
    pub(super) fn close(&mut self) {
        self.open = [None, None];
        self.dir = None;
        self.last_write = None;
    }
}

/// The home, held open, and who the log files must belong to.
struct Owner {
    home: OwnedFd,
    uid: u32,
    gid: u32,
    /// The owner a log file must have: the home's owner when the server is root (the file is
    /// created as them), else the server's own user.
    expected: u32,
}

impl Owner {
    /// The home's owner, refused when the server is root and the owner is root or a system
    /// account.
    fn of(settings: &Settings) -> Result<Owner, Refusal> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let home = match nix::fcntl::open(&settings.home, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(Refusal::NoLogsDir),
            Err(e) => return Err(Refusal::Io("cannot open the home", String::new(), e.into())),
        };
        // A home without `logs/` (the shipped demo's) wants no logs: said before anything about
        // its owner, which would otherwise warn about every root-owned demo.
        if let Err(Errno::ENOENT) = fstatat(&home, "logs", AtFlags::AT_SYMLINK_NOFOLLOW) {
            return Err(Refusal::NoLogsDir);
        }
        let st = fstat(&home)
            .map_err(|e| Refusal::Io("cannot stat the home", String::new(), e.into()))?;
        let root = nix::unistd::geteuid().is_root();
        if root && (st.st_uid == 0 || st.st_uid < settings.min_uid) {
            return Err(Refusal::Owner(st.st_uid));
        }
        let expected = if root {
            st.st_uid
        } else {
            nix::unistd::geteuid().as_raw()
        };
        Ok(Owner {
            home,
            uid: st.st_uid,
            gid: st.st_gid,
            expected,
        })
    }
}

/// How every name in `logs/` is reached: beneath the directory, no symlink anywhere.
fn no_symlinks() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// `logs/` in the home: a real directory, not a symlink to one.
fn logs_dir(home: &OwnedFd) -> Result<OwnedFd, Refusal> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(no_symlinks());
    match openat2(home.as_fd(), "logs", how) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => Err(Refusal::NoLogsDir),
        Err(Errno::ELOOP | Errno::ENOTDIR) => Err(Refusal::Unsafe(
            "`logs` is not a directory (a symlink is not followed)",
            String::new(),
        )),
        Err(e) => Err(Refusal::Io("cannot open logs/", String::new(), e.into())),
    }
}

/// Opens (creating, 0600) the log `name` in `dir` for appending, and checks what it got.
fn open_log(dir: &OwnedFd, name: &str, owner: u32) -> Result<Open, Refusal> {
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC;
    let how = OpenHow::new()
        .flags(flags)
        .mode(Mode::from_bits_truncate(0o600))
        .resolve(no_symlinks());
    let unsafe_ = |why: &'static str| Refusal::Unsafe(why, name.to_string());
    let fd = match openat2(dir.as_fd(), name, how) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) => return Err(unsafe_("it is a symbolic link, which is not followed")),
        Err(Errno::ENXIO) => return Err(unsafe_("it is a FIFO or socket, not a file")),
        Err(Errno::EISDIR) => return Err(unsafe_("it is a directory")),
        Err(e) => return Err(Refusal::Io("cannot open", name.to_string(), e.into())),
    };
    let st = fstat(&fd).map_err(|e| Refusal::Io("cannot stat", name.to_string(), e.into()))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(unsafe_(
            "it is not a regular file (a FIFO, socket or device)",
        ));
    }
    if st.st_uid != owner {
        return Err(unsafe_("it belongs to someone other than the home's owner"));
    }
    if st.st_nlink != 1 {
        return Err(unsafe_(
            "it has more than one link (a hard link to another file)",
        ));
    }
    Ok(Open {
        file: File::from(fd),
        size: st.st_size as u64,
    })
}

/// Moves `name` to `name.1` and each older generation up one, inside `dir`.
fn rotate(dir: &OwnedFd, name: &str, settings: &Settings) -> Result<(), Refusal> {
    for (from, to) in settings.rotation.renames(name) {
        match renameat(dir.as_fd(), from.as_str(), dir.as_fd(), to.as_str()) {
            // Missing generations are normal (the first rotations).
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Refusal::Io("cannot rotate", from, e.into())),
        }
    }
    Ok(())
}
