//! The permission gate: one pure function from what a file *is* (type, mode, owner, its
//! directory's mode) and how the server would use it, to what the server does with it.
//!
//! The default profile emulates an Apache + suEXEC rental server. The hosting account owns the
//! files and the web server is "someone else": a static file is served only when *other* may
//! read it, and a script runs only under suEXEC's rules. The gate decides from the bits it is
//! given and never relies on the operating system refusing the server, which may run as root.

use crate::denial::Denial;

/// The type of a file, as `lstat`/`stat` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (only ever seen through `lstat`).
    Symlink,
    /// A FIFO, socket or device: never served, never run, never opened.
    Special,
}

impl FileKind {
    /// The kind encoded in an `st_mode` value.
    pub fn from_mode(st_mode: u32) -> FileKind {
        match st_mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::Regular,
            libc::S_IFDIR => FileKind::Directory,
            libc::S_IFLNK => FileKind::Symlink,
            _ => FileKind::Special,
        }
    }
}

/// The facts about one file that the gate looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileFacts {
    /// File type.
    pub kind: FileKind,
    /// Permission bits, including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
}

impl FileFacts {
    /// Facts from a raw `st_mode` and owner.
    pub fn new(st_mode: u32, uid: u32) -> FileFacts {
        FileFacts {
            kind: FileKind::from_mode(st_mode),
            mode: st_mode & 0o7777,
            uid,
        }
    }
}

/// How the server would use the file if the gate lets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sent as it is.
    Static,
    /// Executed itself: it is in a CGI directory or has a CGI extension.
    Script,
    /// Read by an interpreter mapped to its extension (e.g. `.php` → `php-cgi`): it needs no
    /// execute bit, but every other script rule holds.
    Handler,
}

/// Everything the gate needs to decide about one request for one file.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The file's own name (its last path component), for the `.ht*` rule.
    pub name: &'a [u8],
    /// Whether the last component itself is a symbolic link (followed inside the site).
    pub is_symlink: bool,
    /// The file, after following a symlink that stays inside the site.
    pub file: FileFacts,
    /// The permission bits of the directory that holds the file.
    pub dir_mode: u32,
    /// How the server would use it.
    pub role: Role,
    /// The site's owner: the owner of the site's root directory.
    pub site_owner: u32,
}

/// What the server does with the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Serve,
    /// Run it as a CGI script (directly, or through its handler).
    Run,
    /// Refuse, for this reason.
    Deny(Denial),
}

const OTHER_READ: u32 = 0o004;
const OWNER_EXEC: u32 = 0o100;
const GROUP_OTHER_WRITE: u32 = 0o022;
const SET_ID: u32 = 0o6000;

/// The gate. Pure: it reads only its argument.
pub fn decide(s: &Subject<'_>) -> Verdict {
    // SECURITY: `.htaccess`, `.htpasswd` and friends hold credentials and configuration; Apache
    // refuses them to every client, whatever their mode.
    if s.name.starts_with(b".ht") {
        return Verdict::Deny(Denial::Hidden);
    }
    match s.file.kind {
        FileKind::Regular => {}
        FileKind::Directory => return Verdict::Deny(Denial::NoIndex),
        FileKind::Symlink | FileKind::Special => return Verdict::Deny(Denial::SpecialFile),
    }
    let mode = s.file.mode;
    match s.role {
        Role::Static if mode & OTHER_READ == 0 => Verdict::Deny(Denial::NotReadable { mode }),
        Role::Static => Verdict::Serve,
        Role::Script | Role::Handler => match script_denial(s) {
            Some(denial) => Verdict::Deny(denial),
            None => Verdict::Run,
        },
    }
}

/// suEXEC's checks, in the order that gives the most useful first reason.
fn script_denial(s: &Subject<'_>) -> Option<Denial> {
    let mode = s.file.mode;
    if s.is_symlink {
        // SECURITY: a link would let a script run with the rights of whoever owns the link's
        // directory while its code lives elsewhere; suEXEC refuses links for that reason.
        return Some(Denial::ScriptSymlink);
    }
    if mode & SET_ID != 0 {
        return Some(Denial::SetId { mode });
    }
    if s.role == Role::Script && mode & OWNER_EXEC == 0 {
        return Some(Denial::NotExecutable { mode });
    }
    if mode & GROUP_OTHER_WRITE != 0 {
        return Some(Denial::WritableByOthers { mode });
    }
    if s.dir_mode & GROUP_OTHER_WRITE != 0 {
        return Some(Denial::DirWritableByOthers {
            mode: s.dir_mode & 0o7777,
        });
    }
    if s.file.uid != s.site_owner {
        return Some(Denial::OwnerMismatch {
            uid: s.file.uid,
            owner: s.site_owner,
        });
    }
    None
}

/// The check for every directory on a request's path: the web server, being "other", must be
/// allowed to search it.
pub fn check_directory(mode: u32) -> Result<(), Denial> {
    if mode & 0o001 == 0 {
        Err(Denial::DirNotSearchable {
            mode: mode & 0o7777,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: u32 = 1000;

    fn subject(role: Role, mode: u32) -> Subject<'static> {
        Subject {
            name: b"file",
            is_symlink: false,
            file: FileFacts::new(libc::S_IFREG | mode, OWNER),
            dir_mode: 0o755,
            role,
            site_owner: OWNER,
        }
    }

    #[test]
    fn static_modes_other_readable_are_served() {
        for mode in [0o644, 0o604, 0o404, 0o666] {
            assert_eq!(
                decide(&subject(Role::Static, mode)),
                Verdict::Serve,
                "{mode:o}"
            );
        }
    }

    #[test]
    fn static_modes_not_other_readable_are_refused() {
        for mode in [0o640, 0o600, 0o000] {
            assert_eq!(
                decide(&subject(Role::Static, mode)),
                Verdict::Deny(Denial::NotReadable { mode }),
                "{mode:o}"
            );
        }
    }

    #[test]
    fn directory_without_other_execute_is_refused() {
        assert_eq!(
            check_directory(0o700),
            Err(Denial::DirNotSearchable { mode: 0o700 })
        );
        assert_eq!(check_directory(0o711), Ok(()));
        assert_eq!(check_directory(0o755), Ok(()));
    }

    #[test]
    fn scripts_with_owner_execute_run() {
        for mode in [0o755, 0o705, 0o700, 0o750, 0o711, 0o500] {
            assert_eq!(
                decide(&subject(Role::Script, mode)),
                Verdict::Run,
                "{mode:o}"
            );
        }
    }

    #[test]
    fn script_without_owner_execute_is_not_executable() {
        assert_eq!(
            decide(&subject(Role::Script, 0o644)),
            Verdict::Deny(Denial::NotExecutable { mode: 0o644 })
        );
    }

    #[test]
    fn script_writable_by_group_or_other_is_refused() {
        for mode in [0o775, 0o757, 0o777] {
            assert_eq!(
                decide(&subject(Role::Script, mode)),
                Verdict::Deny(Denial::WritableByOthers { mode }),
                "{mode:o}"
            );
        }
    }

    #[test]
    fn script_in_writable_directory_is_refused() {
        for dir_mode in [0o775, 0o777] {
            let mut s = subject(Role::Script, 0o755);
            s.dir_mode = dir_mode;
            assert_eq!(
                decide(&s),
                Verdict::Deny(Denial::DirWritableByOthers { mode: dir_mode })
            );
        }
    }

    #[test]
    fn setuid_and_setgid_scripts_are_refused() {
        for mode in [0o4755, 0o2755] {
            assert_eq!(
                decide(&subject(Role::Script, mode)),
                Verdict::Deny(Denial::SetId { mode })
            );
        }
    }

    #[test]
    fn script_owned_by_someone_else_is_refused() {
        let mut s = subject(Role::Script, 0o755);
        s.file.uid = 0;
        assert_eq!(
            decide(&s),
            Verdict::Deny(Denial::OwnerMismatch {
                uid: 0,
                owner: OWNER
            })
        );
    }

    #[test]
    fn script_that_is_a_symlink_is_refused() {
        let mut s = subject(Role::Script, 0o755);
        s.is_symlink = true;
        assert_eq!(decide(&s), Verdict::Deny(Denial::ScriptSymlink));
    }

    #[test]
    fn static_symlink_inside_the_site_is_served() {
        let mut s = subject(Role::Static, 0o644);
        s.is_symlink = true;
        assert_eq!(decide(&s), Verdict::Serve);
    }

    #[test]
    fn ht_files_are_hidden_whatever_their_mode() {
        let mut s = subject(Role::Static, 0o644);
        s.name = b".htaccess";
        assert_eq!(decide(&s), Verdict::Deny(Denial::Hidden));
        s.name = b".htpasswd";
        assert_eq!(decide(&s), Verdict::Deny(Denial::Hidden));
    }

    #[test]
    fn handler_files_need_no_execute_bit_but_obey_the_rest() {
        assert_eq!(decide(&subject(Role::Handler, 0o644)), Verdict::Run);
        assert_eq!(
            decide(&subject(Role::Handler, 0o664)),
            Verdict::Deny(Denial::WritableByOthers { mode: 0o664 })
        );
    }

    #[test]
    fn special_files_are_never_served() {
        let mut s = subject(Role::Static, 0o644);
        s.file = FileFacts::new(libc::S_IFIFO | 0o644, OWNER);
        assert_eq!(decide(&s), Verdict::Deny(Denial::SpecialFile));
    }
}
