//! The `longname` of a directory entry, formatted exactly like OpenSSH's `sftp-server` (which
//! formats like `ls -l`), because the OpenSSH `sftp` client prints it verbatim for `ls -l`:
//! type and permission letters (with setuid/setgid/sticky as `s`/`S`/`t`/`T`), link count,
//! owner, group, size, the local date, the name.

use std::collections::HashMap;

/// `-rwxr-xr-x` from `st_mode`.
pub fn mode_string(st_mode: u32) -> String {
    let kind = match st_mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    let bit = |mask: u32, c: char| if st_mode & mask != 0 { c } else { '-' };
    let special = |x: bool, set: bool, on: char, off: char| match (set, x) {
        (true, true) => on,
        (true, false) => off,
        (false, true) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(
        st_mode & 0o100 != 0,
        st_mode & 0o4000 != 0,
        's',
        'S',
    ));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(
        st_mode & 0o010 != 0,
        st_mode & 0o2000 != 0,
        's',
        'S',
    ));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(
        st_mode & 0o001 != 0,
        st_mode & 0o1000 != 0,
        't',
        'T',
    ));
    s
}

/// `Nov 25 13:04` for a recent time, `Nov 25  2024` for one more than six months away, in the
/// server's local time zone.
pub fn date_string(mtime: i64, now: i64) -> String {
    const HALF_YEAR: i64 = 365 * 24 * 60 * 60 / 2;
    let recent = mtime > now - HALF_YEAR && mtime < now + HALF_YEAR;
    let fmt: &[u8] = if recent {
        b"%b %e %H:%M\0"
    } else {
        b"%b %e  %Y\0"
    };
    let t = mtime as libc::time_t;
    // SAFETY: `tm` is plain data filled by localtime_r; strftime writes at most `buf.len()`
    // bytes into `buf` and returns how many it wrote; the format is NUL-terminated.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return "??? ?? ?????".into();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr().cast(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// One `ls -l` line for `name`.
pub struct LongName<'a> {
    pub name: &'a [u8],
    pub st_mode: u32,
    pub nlink: u64,
    pub owner: &'a str,
    pub group: &'a str,
    pub size: u64,
    pub mtime: i64,
    pub now: i64,
}

impl LongName<'_> {
    /// The line, as bytes (the name is not necessarily UTF-8).
    pub fn format(&self) -> Vec<u8> {
        let head = format!(
            "{}  {:>3} {:<8} {:<8} {:>8} {} ",
            mode_string(self.st_mode),
            self.nlink,
            self.owner,
            self.group,
            self.size,
            date_string(self.mtime, self.now)
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(self.name);
        out
    }
}

/// User and group names by id, looked up once per session.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// The name of `uid`, or the number when it has none.
    pub fn user(&mut self, uid: u32) -> &str {
        self.users.entry(uid).or_insert_with(|| {
            match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                Ok(Some(u)) => u.name,
                _ => uid.to_string(),
            }
        })
    }

    /// The name of `gid`, or the number when it has none.
    pub fn group(&mut self, gid: u32) -> &str {
        self.groups.entry(gid).or_insert_with(|| {
            match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
                Ok(Some(g)) => g.name,
                _ => gid.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_letters_match_ls() {
        let rows = [
            (libc::S_IFREG | 0o644, "-rw-r--r--"),
            (libc::S_IFREG | 0o755, "-rwxr-xr-x"),
            (libc::S_IFDIR | 0o755, "drwxr-xr-x"),
            (libc::S_IFLNK | 0o777, "lrwxrwxrwx"),
            (libc::S_IFREG | 0o4755, "-rwsr-xr-x"),
            (libc::S_IFREG | 0o4644, "-rwSr--r--"),
            (libc::S_IFREG | 0o2755, "-rwxr-sr-x"),
            (libc::S_IFDIR | 0o1777, "drwxrwxrwt"),
            (libc::S_IFDIR | 0o1776, "drwxrwxrwT"),
            (libc::S_IFIFO | 0o600, "prw-------"),
        ];
        for (mode, want) in rows {
            assert_eq!(mode_string(mode), want, "{mode:o}");
        }
    }

    #[test]
    fn line_has_the_columns_of_ls() {
        let line = LongName {
            name: b"hello.cgi",
            st_mode: libc::S_IFREG | 0o644,
            nlink: 1,
            owner: "demo",
            group: "users",
            size: 123,
            mtime: 1_700_000_000,
            now: 1_700_000_100,
        }
        .format();
        let text = String::from_utf8(line).expect("utf-8");
        assert!(
            text.starts_with("-rw-r--r--    1 demo     users         123 "),
            "{text}"
        );
        assert!(text.ends_with(" hello.cgi"), "{text}");
        let old = date_string(1_000_000_000, 1_700_000_000);
        assert!(old.ends_with("  2001"), "{old}");
    }
}
