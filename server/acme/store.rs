//! The ACME state directory on disk: the account (`.account.json`, 0600: it holds the
//! account's private key) and each domain's certificate in the layout the TLS listener reads,
//! `<domain>/fullchain.pem` and `<domain>/privkey.pem` (0600).
//!
//! Every file is written whole to a temporary file and renamed into place, so a reader never
//! sees half a certificate. Below the state directory itself nothing is opened through a
//! symbolic link: domain directories and files are opened relative to the directory's
//! descriptor with `O_NOFOLLOW`, and `rename` replaces a link rather than writing through it.
//! No domain name begins with a dot, so `.account.json` and the temporary files cannot be
//! mistaken for a domain's directory.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// The account's file in the state directory.
const ACCOUNT: &str = ".account.json";
/// The certificate chain's file in a domain's directory.
pub const CHAIN: &str = "fullchain.pem";
/// The private key's file in a domain's directory.
pub const KEY: &str = "privkey.pem";

/// The most a certificate or account file may hold; anything larger is not ours.
const MAX_FILE: u64 = 1024 * 1024;

/// A certificate's validity period and serial, as read from its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
    /// The serial number, hex.
    pub serial: String,
}

impl Validity {
    /// When a certificate with this validity is due for renewal: after `renew_at` of its
    /// lifetime has passed.
    pub fn renew_after(&self, renew_at: f64) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + life.mul_f64(renew_at)
    }
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store at `dir`, created (0700) when missing.
    pub fn open(dir: &Path) -> io::Result<Store> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// The state directory's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn root(&self) -> io::Result<OwnedFd> {
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        Ok(nix::fcntl::open(&self.dir, flags, Mode::empty())?)
    }

    /// `domain`'s directory, opened without following a link; created (0755) when `create`.
    fn domain_dir(&self, domain: &str, create: bool) -> io::Result<OwnedFd> {
        let root = self.root()?;
        if create {
            match mkdirat(&root, domain, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        // SECURITY: O_NOFOLLOW: a link planted at `<state>/<domain>` (by whoever can write
        // there) cannot send the key to a place of its choosing.
        openat(&root, domain, flags, Mode::empty()).map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => io::Error::other(format!(
                "{} is not a directory (a symbolic link?); refusing to use it",
                self.dir.join(domain).display()
            )),
            e => e.into(),
        })
    }

    /// The stored account credentials, if any.
    pub fn account(&self) -> io::Result<Option<Vec<u8>>> {
        match read_beneath(&self.root()?, ACCOUNT) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores the account credentials (0600).
    pub fn save_account(&self, json: &[u8]) -> io::Result<()> {
        let root = self.root()?;
        write_beneath(&root, ACCOUNT, json, 0o600)
    }

    /// The validity of `domain`'s stored certificate; `None` when there is none or it cannot
    /// be read (then a new one is ordered).
    pub fn validity(&self, domain: &str) -> Option<Validity> {
        let dir = self.domain_dir(domain, false).ok()?;
        let pem = read_beneath(&dir, CHAIN).ok()?;
        validity(&pem)
    }

    /// Stores `domain`'s chain and key: both written first, then renamed into place, the key
    /// first, so the pair is mismatched for the shortest time.
    pub fn save_certificate(&self, domain: &str, chain: &[u8], key: &[u8]) -> io::Result<()> {
        let dir = self.domain_dir(domain, true)?;
        let key_tmp = write_temp(&dir, KEY, key, 0o600)?;
        let chain_tmp = match write_temp(&dir, CHAIN, chain, 0o644) {
            Ok(t) => t,
            Err(e) => {
                let _ = unlinkat(&dir, key_tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                return Err(e);
            }
        };
        renameat(&dir, key_tmp.as_str(), &dir, KEY)?;
        renameat(&dir, chain_tmp.as_str(), &dir, CHAIN)?;
        Ok(())
    }
}

/// The validity of the first certificate in `pem`.
pub fn validity(pem: &[u8]) -> Option<Validity> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).ok()?;
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    };
    Some(Validity {
        not_before: time(cert.validity().not_before)?,
        not_after: time(cert.validity().not_after)?,
        serial: cert.raw_serial_as_string(),
    })
}

/// Reads `name` in `dir`, not through a link, at most [`MAX_FILE`] bytes.
fn read_beneath(dir: &OwnedFd, name: &str) -> io::Result<Vec<u8>> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let file = File::from(openat(dir, name, flags, Mode::empty())?);
    let mut bytes = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes `bytes` to `name` in `dir` through a temporary file and a rename.
fn write_beneath(dir: &OwnedFd, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(dir, name, bytes, mode)?;
    renameat(dir, tmp.as_str(), dir, name)?;
    Ok(())
}

/// Writes `bytes` to a new temporary file beside `name` in `dir`, with `mode`, synced;
/// returns its name.
///
/// SECURITY: `O_CREAT | O_EXCL | O_NOFOLLOW` makes a new file or fails: a link planted at the
/// temporary name cannot redirect the private key, and the mode is set at creation, so the key
/// is never readable by others, not even for a moment.
fn write_temp(dir: &OwnedFd, name: &str, bytes: &[u8], mode: u32) -> io::Result<String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = format!(".{name}.{}.{nanos}.tmp", std::process::id());
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut file = File::from(openat(
        dir,
        tmp.as_str(),
        flags,
        Mode::from_bits_truncate(mode),
    )?);
    let written = file
        .write_all(bytes)
        .and_then(|()| file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode)))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(e);
    }
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_the_pair_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save_certificate("a.test", b"chain", b"key").unwrap();
        let key = dir.path().join("a.test").join(KEY);
        assert_eq!(std::fs::read(&key).unwrap(), b"key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        store
            .save_certificate("a.test", b"chain2", b"key2")
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a.test").join(CHAIN)).unwrap(),
            b"chain2"
        );
    }

    #[test]
    fn refuses_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("b.test")).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.save_certificate("b.test", b"c", b"k").is_err());
        assert!(
            std::fs::read_dir(elsewhere.path())
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn replaces_a_planted_file_link_instead_of_writing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, b"untouched").unwrap();
        std::fs::create_dir(dir.path().join("c.test")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("c.test").join(KEY)).unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save_certificate("c.test", b"c", b"k").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
    }
}
