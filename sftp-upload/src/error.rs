//! Why a request failed, with the SFTP status it maps to and the message the client shows,
//! converted in one place ([`FsError::status`]). Messages speak of the site, never of the
//! kernel's view of it: an escape is "outside your site", not "Invalid cross-device link".

use std::io;

use nix::errno::Errno;
use yadokari_site::JailError;

use crate::wire::{Malformed, StatusCode};

/// A failed file operation.
#[derive(Debug)]
pub enum FsError {
    /// Nothing at that path.
    NotFound,
    /// The path leads outside the user's site.
    Outside,
    /// The operation is refused by this server's rules, with the reason.
    Refused(&'static str),
    /// The request names something that exists but is of the wrong kind, with the reason.
    Failed(&'static str),
    /// Not implemented, deliberately.
    Unsupported(&'static str),
    /// The request would pass a quota limit.
    Quota(crate::quota::Exceeded),
    /// The request could not be parsed.
    BadMessage,
    /// Anything else the system said.
    Io(io::Error),
}

impl FsError {
    /// The status code and message sent to the client.
    pub fn status(&self) -> (StatusCode, String) {
        match self {
            FsError::NotFound => (StatusCode::NoSuchFile, "No such file or directory".into()),
            FsError::Outside => (
                StatusCode::PermissionDenied,
                "outside your site: paths and links must stay inside it".into(),
            ),
            FsError::Refused(why) => (StatusCode::PermissionDenied, (*why).into()),
            FsError::Failed(why) => (StatusCode::Failure, (*why).into()),
            FsError::Unsupported(why) => (StatusCode::OpUnsupported, (*why).into()),
            // SSH_FX_FAILURE, as OpenSSH's server answers EDQUOT.
            FsError::Quota(exceeded) => (StatusCode::Failure, exceeded.to_string()),
            FsError::BadMessage => (StatusCode::BadMessage, "malformed request".into()),
            FsError::Io(e) => io_status(e),
        }
    }

    /// Whether this is the server's fault (logged as an error, with its cause) rather than
    /// the client's: a full disk, or an errno with no meaning for a client.
    pub fn is_internal(&self) -> bool {
        match self {
            FsError::Io(e) => match e.raw_os_error().map(Errno::from_raw) {
                Some(errno) => !CLIENT_ERRNOS.contains(&errno),
                None => true,
            },
            _ => false,
        }
    }

    /// Whether the server's rules or the site refused the request (logged as a refusal, with
    /// its reason): a rule, a quota, the jail, or a client error the system gave (a directory
    /// not empty, a name taken, permission denied).
    pub fn is_refusal(&self) -> bool {
        match self {
            FsError::Refused(_) | FsError::Quota(_) | FsError::Outside => true,
            FsError::Io(_) => !self.is_internal(),
            FsError::NotFound
            | FsError::Failed(_)
            | FsError::Unsupported(_)
            | FsError::BadMessage => false,
        }
    }
}

/// The errnos that answer what the client asked (the name is taken, the directory is not
/// empty, ...), as opposed to the server's own trouble.
const CLIENT_ERRNOS: &[Errno] = &[
    Errno::EACCES,
    Errno::EPERM,
    Errno::EROFS,
    Errno::EEXIST,
    Errno::ENOTEMPTY,
    Errno::EISDIR,
    Errno::ELOOP,
    Errno::ENAMETOOLONG,
    Errno::EINVAL,
    Errno::EDQUOT,
];

/// The status of an error the system gave. `ENOENT`, `ENOTDIR` and `EXDEV` never get here:
/// every errno passes through the jail's classification first ([`JailError`]'s
/// `From<Errno>`), which makes them [`FsError::NotFound`] and [`FsError::Outside`].
fn io_status(e: &io::Error) -> (StatusCode, String) {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EACCES | Errno::EPERM | Errno::EROFS) => {
            (StatusCode::PermissionDenied, "Permission denied".into())
        }
        Some(Errno::EEXIST) => (StatusCode::Failure, "already exists".into()),
        Some(Errno::ENOTEMPTY) => (StatusCode::Failure, "directory not empty".into()),
        Some(Errno::EISDIR) => (StatusCode::Failure, "is a directory".into()),
        Some(Errno::ENOSPC) => (StatusCode::Failure, "no space left on the server".into()),
        Some(Errno::EDQUOT) => (StatusCode::Failure, "disk quota exceeded".into()),
        Some(Errno::ELOOP) => (
            StatusCode::Failure,
            "too many levels of symbolic links".into(),
        ),
        Some(Errno::ENAMETOOLONG) => (StatusCode::Failure, "file name too long".into()),
        Some(Errno::EINVAL) => (StatusCode::Failure, "invalid argument".into()),
        _ => (StatusCode::Failure, e.to_string()),
    }
}

/// Through the jail's classification, the one copy both sides of the product use: what is
/// "not found" and what is "outside the site" is decided in `yadokari_site::jail`.
impl From<Errno> for FsError {
    fn from(e: Errno) -> FsError {
        JailError::from(e).into()
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> FsError {
        match e.raw_os_error() {
            Some(n) => Errno::from_raw(n).into(),
            None => FsError::Io(e),
        }
    }
}

impl From<Malformed> for FsError {
    fn from(_: Malformed) -> FsError {
        FsError::BadMessage
    }
}

impl From<JailError> for FsError {
    fn from(e: JailError) -> FsError {
        match e {
            JailError::NotFound => FsError::NotFound,
            JailError::Outside => FsError::Outside,
            // Already classified: the jail makes its Io only of the other errnos.
            JailError::Io(e) => FsError::Io(e),
        }
    }
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.status().1)
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FsError::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_never_say_cross_device() {
        for e in [FsError::Outside, FsError::from(Errno::EXDEV)] {
            let (code, msg) = e.status();
            assert_eq!(code, StatusCode::PermissionDenied);
            assert!(msg.contains("outside your site"), "{msg}");
        }
    }

    #[test]
    fn errno_table() {
        let rows = [
            (Errno::ENOENT, StatusCode::NoSuchFile),
            (Errno::ENOTDIR, StatusCode::NoSuchFile),
            (Errno::EXDEV, StatusCode::PermissionDenied),
            (Errno::EACCES, StatusCode::PermissionDenied),
            (Errno::EEXIST, StatusCode::Failure),
            (Errno::ENOTEMPTY, StatusCode::Failure),
        ];
        for (errno, code) in rows {
            assert_eq!(FsError::from(errno).status().0, code, "{errno}");
            let io = io::Error::from_raw_os_error(errno as i32);
            assert_eq!(FsError::from(io).status().0, code, "{errno} as io::Error");
        }
    }
}
