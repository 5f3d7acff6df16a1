//! Every refusal the gate can make, each with its HTTP status, a plain-language reason and the
//! fix, in one table (suEXEC gives each check its own message; so do we, but to the user).

use std::fmt;

/// Why the server refuses a file. Each variant carries what its explanation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// `.ht*` files (`.htaccess`, `.htpasswd`) are never sent.
    Hidden,
    /// A static file the web server ("other") may not read.
    NotReadable { mode: u32 },
    /// A directory on the path that "other" may not search (no `x` bit for other).
    DirNotSearchable { mode: u32 },
    /// A symbolic link (or `..`) that leads outside the site.
    OutsideSite,
    /// A FIFO, socket or device file.
    SpecialFile,
    /// A directory with no index file; listings are off.
    NoIndex,
    /// A script without the owner's execute bit.
    NotExecutable { mode: u32 },
    /// A script that the group or others may write.
    WritableByOthers { mode: u32 },
    /// A script whose own directory the group or others may write.
    DirWritableByOthers { mode: u32 },
    /// A setuid or setgid script.
    SetId { mode: u32 },
    /// A script owned by someone other than the site's owner.
    OwnerMismatch { uid: u32, owner: u32 },
    /// A script that is a symbolic link.
    ScriptSymlink,
    /// A script in a directory whose `.htaccess` turned scripts off (`Options -ExecCGI`).
    ExecCgiOff,
    /// A symbolic link on the path where a `.htaccess` turned following links off
    /// (`Options -FollowSymLinks`, or `SymLinksIfOwnerMatch` with owners that differ).
    SymlinkOff,
}

/// A refusal spelled out for a person: what is wrong and what to type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// One sentence: the cause.
    pub reason: String,
    /// One sentence or command: the fix.
    pub fix: String,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Fix: {}", self.reason, self.fix)
    }
}

impl Denial {
    /// The HTTP status this refusal maps to: 403 for files the server will not send, 500 for
    /// scripts it will not run (what Apache + suEXEC answers for each).
    pub fn status(&self) -> u16 {
        match self {
            Denial::Hidden
            | Denial::NotReadable { .. }
            | Denial::DirNotSearchable { .. }
            | Denial::OutsideSite
            | Denial::SpecialFile
            | Denial::NoIndex
            | Denial::ExecCgiOff
            | Denial::SymlinkOff => 403,
            Denial::NotExecutable { .. }
            | Denial::WritableByOthers { .. }
            | Denial::DirWritableByOthers { .. }
            | Denial::SetId { .. }
            | Denial::OwnerMismatch { .. }
            | Denial::ScriptSymlink => 500,
        }
    }

    /// A short stable name, for log fields.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::Hidden => "hidden",
            Denial::NotReadable { .. } => "not_readable",
            Denial::DirNotSearchable { .. } => "dir_not_searchable",
            Denial::OutsideSite => "outside_site",
            Denial::SpecialFile => "special_file",
            Denial::NoIndex => "no_index",
            Denial::NotExecutable { .. } => "not_executable",
            Denial::WritableByOthers { .. } => "writable_by_others",
            Denial::DirWritableByOthers { .. } => "dir_writable_by_others",
            Denial::SetId { .. } => "setid",
            Denial::OwnerMismatch { .. } => "owner_mismatch",
            Denial::ScriptSymlink => "script_symlink",
            Denial::ExecCgiOff => "exec_cgi_off",
            Denial::SymlinkOff => "symlink_off",
        }
    }

    /// The reason and the fix for `path`, the site-relative path of the file concerned (for
    /// [`Denial::DirNotSearchable`], of the directory).
    pub fn explain(&self, path: &str) -> Explanation {
        let name = if path.is_empty() { "." } else { path };
        let dir = parent(name);
        let (reason, fix) = match *self {
            Denial::Hidden => (
                format!("`{name}` is a .ht* file, which may hold passwords or configuration, so the server never sends it."),
                "Nothing to fix: keep private files out of reach, or rename the file if it is meant to be public.".to_string(),
            ),
            Denial::NotReadable { mode } => (
                format!("`{name}` is {mode:04o}: others may not read it, and the web server counts as \"others\", so it is not sent."),
                format!("chmod {:o} {name}{VIA_SFTP}", mode | 0o444),
            ),
            Denial::DirNotSearchable { mode } => (
                format!("The directory `{name}` is {mode:04o}: others may not enter it, and the web server counts as \"others\"."),
                format!("chmod {:o} {name}{VIA_SFTP}", mode | 0o111),
            ),
            Denial::OutsideSite => (
                format!("`{name}` leads outside the site (a symbolic link or `..` pointing elsewhere), so the server does not follow it."),
                "Upload the file itself into the site instead of linking to it.".to_string(),
            ),
            Denial::SpecialFile => (
                format!("`{name}` is not a regular file (a FIFO, socket or device), so the server will not serve it."),
                format!("Delete it (rm {name} over SFTP) and upload a regular file in its place."),
            ),
            Denial::NoIndex => return Denial::no_index(name, &["index.html", "index.htm", "index.cgi"]),
            Denial::NotExecutable { mode } => (
                format!("`{name}` is {mode:04o}: nobody may execute it, so the server will not run it as a script."),
                format!("chmod {:o} {name}{VIA_SFTP}", script_fix(mode)),
            ),
            Denial::WritableByOthers { mode } => (
                format!("`{name}` is {mode:04o}: {} can write it, so the server refuses to run it.", writers(mode)),
                format!("chmod {:o} {name}{VIA_SFTP}", script_fix(mode)),
            ),
            Denial::DirWritableByOthers { mode } => (
                format!("The directory `{dir}` is {mode:04o}: {} can write it, so the server refuses to run scripts in it.", writers(mode)),
                format!("chmod {:o} {dir}{VIA_SFTP}", mode & !0o022),
            ),
            Denial::SetId { mode } => (
                format!("`{name}` is {mode:04o}: it has the setuid or setgid bit, which a script must never have, so the server refuses to run it."),
                format!("chmod {:o} {name}{VIA_SFTP}", script_fix(mode)),
            ),
            Denial::OwnerMismatch { uid, owner } => (
                format!("`{name}` belongs to {}, but the site belongs to {}: a script runs as its owner, so it must be the site's owner.", user_label(uid), user_label(owner)),
                format!("Upload it again over SFTP as the site's user (what you upload belongs to the site's owner), or ask the host to run: chown {} {name}", user_label(owner)),
            ),
            Denial::ScriptSymlink => (
                format!("`{name}` is a symbolic link, and scripts are never run through links."),
                format!("Delete the link {name} and upload the script itself under that name."),
            ),
            Denial::SymlinkOff => (
                format!("`{name}` is a symbolic link, and a .htaccess on its path turns following links off here (`Options -FollowSymLinks`, or `SymLinksIfOwnerMatch` with a link and a target of different owners)."),
                "Upload the file itself in place of the link, or allow links in that .htaccess (`Options +FollowSymLinks`).".to_string(),
            ),
            Denial::ExecCgiOff => (
                format!("`{name}` is a script, and a .htaccess on its path turns scripts off here (`Options -ExecCGI`)."),
                "Remove `-ExecCGI` from that .htaccess (or write `Options +ExecCGI` in this directory's), or keep scripts elsewhere.".to_string(),
            ),
        };
        Explanation { reason, fix }
    }
}

/// How a rental customer changes a mode: they have SFTP, not a shell.
const VIA_SFTP: &str = " (over SFTP, or in your client's permissions dialog)";

impl Denial {
    /// The explanation of [`Denial::NoIndex`] for the directory `dir`, naming the index files
    /// the server looks for (its `index_files`), in order.
    pub fn no_index(dir: &str, names: &[impl AsRef<str>]) -> Explanation {
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        let listed = match names.as_slice() {
            [] => "no index file (none is configured)".to_string(),
            [one] => format!("no {one}"),
            [rest @ .., last] => format!("no {} or {last}", rest.join(", ")),
        };
        let first = names.first().copied().unwrap_or("index.html");
        Explanation {
            reason: format!(
                "`{dir}` is a directory with {listed}, and directory listings are off."
            ),
            fix: format!("Upload an {first} into {dir}."),
        }
    }
}

/// The mode to suggest for a script: read bits become execute bits, group/other write and the
/// set-id bits go (0644 → 755, 0600 → 700, 0775 → 755, 4755 → 755).
fn script_fix(mode: u32) -> u32 {
    let with_exec = mode | ((mode & 0o444) >> 2) | 0o100;
    with_exec & 0o755
}

fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "the group and everyone else",
        (true, false) => "the group",
        _ => "everyone else",
    }
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

/// `uid 1000 (alice)`, or `uid 1000` when the account has no name.
fn user_label(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_apache_and_suexec() {
        let rows = [
            (Denial::Hidden, 403),
            (Denial::NotReadable { mode: 0o600 }, 403),
            (Denial::DirNotSearchable { mode: 0o700 }, 403),
            (Denial::OutsideSite, 403),
            (Denial::SpecialFile, 403),
            (Denial::NoIndex, 403),
            (Denial::NotExecutable { mode: 0o644 }, 500),
            (Denial::WritableByOthers { mode: 0o775 }, 500),
            (Denial::DirWritableByOthers { mode: 0o777 }, 500),
            (Denial::SetId { mode: 0o4755 }, 500),
            (Denial::OwnerMismatch { uid: 1, owner: 2 }, 500),
            (Denial::ScriptSymlink, 500),
            (Denial::ExecCgiOff, 403),
            (Denial::SymlinkOff, 403),
        ];
        for (denial, status) in rows {
            assert_eq!(denial.status(), status, "{denial:?}");
        }
    }

    #[test]
    fn group_writable_script_names_the_group_and_the_fix() {
        let e = Denial::WritableByOthers { mode: 0o775 }.explain("cgi-bin/bbs.cgi");
        assert!(
            e.reason
                .contains("`cgi-bin/bbs.cgi` is 0775: the group can write it"),
            "{e}"
        );
        assert_eq!(
            e.fix,
            "chmod 755 cgi-bin/bbs.cgi (over SFTP, or in your client's permissions dialog)"
        );
    }

    #[test]
    fn not_executable_suggests_execute_bits_matching_the_read_bits() {
        assert_eq!(
            Denial::NotExecutable { mode: 0o644 }.explain("a.cgi").fix,
            "chmod 755 a.cgi (over SFTP, or in your client's permissions dialog)"
        );
        assert_eq!(
            Denial::NotExecutable { mode: 0o600 }.explain("a.cgi").fix,
            "chmod 700 a.cgi (over SFTP, or in your client's permissions dialog)"
        );
        assert_eq!(
            Denial::SetId { mode: 0o4755 }.explain("a.cgi").fix,
            "chmod 755 a.cgi (over SFTP, or in your client's permissions dialog)"
        );
    }

    #[test]
    fn writable_directory_fix_names_the_directory() {
        let e = Denial::DirWritableByOthers { mode: 0o777 }.explain("cgi-bin/a.cgi");
        assert_eq!(
            e.fix,
            "chmod 755 cgi-bin (over SFTP, or in your client's permissions dialog)"
        );
        assert!(e.reason.contains("the group and everyone else"));
    }
}
