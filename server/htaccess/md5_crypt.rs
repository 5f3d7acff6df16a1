//! Pure: MD5-crypt, Poul-Henning Kamp's `$1$` scheme, and Apache's `$apr1$` variant of it (the
//! same algorithm with another magic string mixed in), which is what `htpasswd -m` (its
//! default) writes.
//!
//! Written here by hand, over the `md-5` crate's digest, because no well-kept crate verifies
//! `$apr1$`: `pwhash` knows only `$1$`, and `htpasswd-verify` sits on the abandoned
//! `rust-crypto`. The algorithm is short and fixed (1000 rounds, since 1994), and the tests
//! check it against hashes the real `htpasswd` made. The comparison is in constant time.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// The alphabet of crypt's own base-64 encoding.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Longest salt the scheme uses; longer ones are cut, as every implementation does.
const MAX_SALT: usize = 8;

/// Length of the encoded checksum.
const CHECKSUM_LEN: usize = 22;

/// Which of the two magic strings a hash carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// Apache's `$apr1$` (`htpasswd -m`).
    Apr1,
    /// The BSD/glibc `$1$` (`openssl passwd -1`), which Apache also accepts through `crypt()`.
    Bsd,
}

impl Magic {
    fn text(self) -> &'static str {
        match self {
            Magic::Apr1 => "$apr1$",
            Magic::Bsd => "$1$",
        }
    }
}

/// A parsed MD5-crypt hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Md5Crypt {
    magic: Magic,
    salt: Vec<u8>,
    checksum: [u8; CHECKSUM_LEN],
}

impl Md5Crypt {
    /// Parses `$apr1$salt$checksum` or `$1$salt$checksum`; `None` when it is not one.
    pub fn parse(hash: &str) -> Option<Md5Crypt> {
        let (magic, rest) = if let Some(rest) = hash.strip_prefix(Magic::Apr1.text()) {
            (Magic::Apr1, rest)
        } else {
            (Magic::Bsd, hash.strip_prefix(Magic::Bsd.text())?)
        };
        let (salt, checksum) = rest.split_once('$')?;
        let salt = &salt.as_bytes()[..salt.len().min(MAX_SALT)];
        let checksum: [u8; CHECKSUM_LEN] = checksum.as_bytes().try_into().ok()?;
        if !checksum.iter().all(|b| CRYPT64.contains(b)) {
            return None;
        }
        Some(Md5Crypt {
            magic,
            salt: salt.to_vec(),
            checksum,
        })
    }

    /// Whether `password` gives this hash (compared in constant time).
    pub fn verify(&self, password: &[u8]) -> bool {
        let digest = md5_crypt(password, &self.salt, self.magic.text().as_bytes());
        encode(&digest).ct_eq(&self.checksum).into()
    }
}

/// The MD5-crypt digest of `password` with `salt` and `magic`.
fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> [u8; 16] {
    let alternate: [u8; 16] = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize()
        .into();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        ctx.update(&alternate[..chunk.len()]);
    }
    // The "weird" step of the original: for each bit of the length, a zero byte or the
    // password's first byte.
    let mut n = password.len();
    while n != 0 {
        if n & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        n >>= 1;
    }
    let mut digest: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round % 2 == 1 {
            ctx.update(password);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(password);
        }
        if round % 2 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(password);
        }
        digest = ctx.finalize().into();
    }
    digest
}

/// The 22 characters of crypt's base-64 for an MD5-crypt digest, in the scheme's byte order.
fn encode(d: &[u8; 16]) -> [u8; CHECKSUM_LEN] {
    let groups: [(u8, u8, u8); 5] = [
        (d[0], d[6], d[12]),
        (d[1], d[7], d[13]),
        (d[2], d[8], d[14]),
        (d[3], d[9], d[15]),
        (d[4], d[10], d[5]),
    ];
    let mut out = [0u8; CHECKSUM_LEN];
    for (i, (a, b, c)) in groups.into_iter().enumerate() {
        let v = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
        put(&mut out[i * 4..i * 4 + 4], v);
    }
    put(&mut out[20..22], u32::from(d[11]));
    out
}

/// Writes `v` as `out.len()` crypt base-64 characters, least significant first.
fn put(out: &mut [u8], mut v: u32) {
    for slot in out {
        *slot = CRYPT64[(v & 0x3f) as usize];
        v >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from `htpasswd -nb -m alice 'pass word:ü'` (apache2-utils 2.4) and
    // `openssl passwd -1 -salt xxxxxxxx password` (its manual's example); the real tool is
    // also run live in `auth`'s tests.
    const APR1: &str = "$apr1$C25AnVP6$MFpPbfWBsp8CKyZlQrCGk/";
    const BSD: &str = "$1$xxxxxxxx$UYCIxa628.9qXjpQCjM4a.";

    #[test]
    fn apr1_made_by_htpasswd_verifies() {
        let h = Md5Crypt::parse(APR1).expect("parses");
        assert!(h.verify("pass word:ü".as_bytes()));
        assert!(!h.verify(b"pass word:u"));
        assert!(!h.verify(b""));
    }

    #[test]
    fn bsd_md5_crypt_verifies() {
        let h = Md5Crypt::parse(BSD).expect("parses");
        assert!(h.verify(b"password"));
        assert!(!h.verify(b"Password"));
    }

    #[test]
    fn the_magic_is_part_of_the_hash() {
        let swapped = APR1.replacen("$apr1$", "$1$", 1);
        let h = Md5Crypt::parse(&swapped).expect("parses");
        assert!(!h.verify("pass word:ü".as_bytes()));
    }

    #[test]
    fn malformed_hashes_do_not_parse() {
        for bad in [
            "$apr1$",
            "$apr1$salt",
            "$apr1$salt$short",
            "$apr1$C25AnVP6$MFpPbfWBsp8CKyZlQrCGk/x",
            "$apr1$C25AnVP6$MFpPbfWBsp8CKyZlQrCG!/",
            "$2y$05$abc",
            "apr1$x$y",
        ] {
            assert_eq!(Md5Crypt::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_and_long_passwords_do_not_panic() {
        let h = Md5Crypt::parse(APR1).expect("parses");
        assert!(!h.verify(b""));
        assert!(!h.verify(&[0xffu8; 1000]));
    }
}
