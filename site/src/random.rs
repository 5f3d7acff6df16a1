//! Random bytes from the kernel (`/dev/urandom`), for the secrets yadokari makes itself: the
//! seed of a new SSH host key on the SFTP side, the first password of the demo user on the
//! binary's side.
//!
//! It lives in this crate because this is the one crate both the binary and `sftp-upload`
//! depend on; it has nothing to do with the site model otherwise, and it stays this small so
//! that neither side grows a copy of its own again.

use std::io::{self, Read};

/// Fills `buf` with random bytes from the kernel's generator.
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a).expect("urandom");
        fill(&mut b).expect("urandom");
        assert_ne!(a, b);
    }
}
