//! The start-up banner: what a newcomer reads first (where to point the browser, the `sftp`
//! line to type, the one-time password) and the `listening http=ADDR` lines tests read.
//!
//! It goes to standard error, like the error log, so that standard output carries only the
//! access log. Writing it never panics: `println!` does when the stream is closed (`yadokari |
//! head -3`), and a server must not die because nobody reads its banner.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Writes one banner line to standard error; a closed or full stream loses the line, nothing
/// more.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line);
    let _ = err.write_all(b"\n");
}

/// Writes a banner line built like `format!`.
macro_rules! banner {
    ($($arg:tt)*) => {
        $crate::banner::say(format_args!($($arg)*))
    };
}
pub(crate) use banner;

/// The address a client on this machine uses to reach `bound`: a wildcard listen address
/// (`0.0.0.0`, `::`) is reached through loopback.
pub fn reachable(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// A host as OpenSSH's `sftp` and a URL want it: IPv6 in brackets (`[::1]`).
pub fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_loopback_and_ipv6_gets_brackets() {
        let r = reachable("0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(r.to_string(), "127.0.0.1:8080");
        let r = reachable("[::]:2222".parse().expect("addr"));
        assert_eq!(host(r.ip()), "[::1]");
        assert_eq!(host("192.0.2.1".parse().expect("ip")), "192.0.2.1");
    }
}
