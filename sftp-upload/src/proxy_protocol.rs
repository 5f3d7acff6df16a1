//! The PROXY protocol (HAProxy's, versions 1 and 2): behind a load balancer every connection
//! comes from the balancer's address, so bans, per-address limits, `REMOTE_ADDR`, the logs and
//! `Require ip` would all see one client. With `[server] proxy_protocol = true` the balancer
//! (`send-proxy-v2` in HAProxy) starts each connection with a header naming the real client,
//! which is read here before anything else; a connection without one is refused. Used by the
//! HTTP, HTTPS and SFTP listeners (never the admin listener: health checks come straight).
//!
//! The header is read exactly (v2: 16 bytes, then the length they give; v1: up to its CRLF,
//! 15 to 107 bytes), so no byte of the protocol that follows is consumed; `ppp` parses it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a balancer may take to send the header (it sends it at once).
pub const HEADER_WAIT: Duration = Duration::from_secs(2);

/// The peers allowed to send a header (`[server] proxy_protocol_from`): networks such as
/// `10.0.0.0/8`; empty, any peer. Anyone else is refused before a byte is read: a header from
/// a client that reached the listener directly would let it claim any address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trusted(Vec<(IpAddr, u8)>);

impl Trusted {
    /// Parses `192.0.2.0/24`, `2001:db8::/32` or a single address, each.
    pub fn parse(nets: &[String]) -> Result<Trusted, String> {
        nets.iter()
            .map(|text| {
                let (addr, bits) = text.split_once('/').unwrap_or((text, ""));
                let ip: IpAddr = addr
                    .parse()
                    .map_err(|_| format!("`{text}` is not an address or a network (10.0.0.0/8)"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits =
                    match bits {
                        "" => max,
                        b => b.parse::<u8>().ok().filter(|&b| b <= max).ok_or_else(|| {
                            format!("`{text}`: the prefix length must be 0 to {max}")
                        })?,
                    };
                Ok((ip, bits))
            })
            .collect::<Result<_, _>>()
            .map(Trusted)
    }

    /// Whether `peer` may send a header.
    pub fn admits(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.0.is_empty()
            || self.0.iter().any(|&(net, bits)| match (net, peer) {
                (IpAddr::V4(n), IpAddr::V4(p)) => {
                    let shift = 32 - u32::from(bits);
                    u64::from(u32::from(n)) >> shift == u64::from(u32::from(p)) >> shift
                }
                (IpAddr::V6(n), IpAddr::V6(p)) => {
                    let shift = 128 - u32::from(bits);
                    u128::from(n).checked_shr(shift).unwrap_or(0)
                        == u128::from(p).checked_shr(shift).unwrap_or(0)
                }
                _ => false,
            })
    }
}

/// An IPv4-mapped IPv6 address counts as its IPv4 address (bans and limits count one client
/// once, whichever way a balancer wrote it).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;
/// The most address and TLV bytes a v2 header may carry that we read.
const V2_MAX_BODY: usize = 4096;

/// Reads the PROXY header at the start of `stream`: the client's address it names, `None` for
/// a header that names none (v2 LOCAL, a balancer's own health check, or v1 UNKNOWN: the
/// connection's own peer stands), or why the connection must be refused.
pub async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, String> {
    tokio::time::timeout(HEADER_WAIT, read(stream))
        .await
        .map_err(|_| format!("no PROXY protocol header within {HEADER_WAIT:?}"))?
}

async fn read(stream: &mut TcpStream) -> Result<Option<SocketAddr>, String> {
    // 15 bytes: the shortest header there is (`PROXY UNKNOWN\r\n`); reading more could take
    // the first byte of what follows it.
    let mut head = [0u8; 15];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("no PROXY protocol header: {e}"))?;
    let mut bytes = head.to_vec();
    if head[..12] == V2_SIGNATURE[..] {
        let last = stream
            .read_u8()
            .await
            .map_err(|e| format!("a PROXY v2 header cut short: {e}"))?;
        bytes.push(last);
        let len = usize::from(u16::from_be_bytes([head[14], last]));
        if len > V2_MAX_BODY {
            return Err(format!("a PROXY v2 header of {len} bytes is too long"));
        }
        let mut body = vec![0u8; len];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("a PROXY v2 header cut short: {e}"))?;
        bytes.extend_from_slice(&body);
    } else if head.starts_with(b"PROXY ") {
        while !bytes.ends_with(b"\r\n") {
            if bytes.len() >= V1_MAX {
                return Err("a PROXY v1 header longer than 107 bytes".into());
            }
            let b = stream
                .read_u8()
                .await
                .map_err(|e| format!("a PROXY v1 header cut short: {e}"))?;
            bytes.push(b);
        }
    } else {
        return Err("the connection did not start with a PROXY protocol header (proxy_protocol = true: only the load balancer may connect)".into());
    }
    parse(&bytes)
}

/// The client address in a whole header.
fn parse(bytes: &[u8]) -> Result<Option<SocketAddr>, String> {
    let addr = |ip: IpAddr, port: u16| Some(SocketAddr::new(canonical(ip), port));
    // A header that began with the v2 signature is judged as v2 (ppp would try v1 on a bad
    // one and name the wrong version).
    let parsed = match bytes.starts_with(V2_SIGNATURE) {
        true => ppp::HeaderResult::V2(ppp::v2::Header::try_from(bytes)),
        false => ppp::HeaderResult::parse(bytes),
    };
    match parsed {
        ppp::HeaderResult::V2(Ok(h)) => match (h.command, h.addresses) {
            (ppp::v2::Command::Local, _) => Ok(None),
            (_, ppp::v2::Addresses::IPv4(a)) => Ok(addr(a.source_address.into(), a.source_port)),
            (_, ppp::v2::Addresses::IPv6(a)) => Ok(addr(a.source_address.into(), a.source_port)),
            (_, ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_)) => Ok(None),
        },
        ppp::HeaderResult::V1(Ok(h)) => match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => Ok(addr(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Tcp6(a) => Ok(addr(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Unknown => Ok(None),
        },
        ppp::HeaderResult::V2(Err(e)) => Err(format!("a malformed PROXY v2 header: {e}")),
        ppp::HeaderResult::V1(Err(e)) => Err(format!("a malformed PROXY v1 header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_name_the_client() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 8080\r\n";
        assert_eq!(
            parse(v1).expect("v1"),
            Some("203.0.113.7:51234".parse().expect("addr"))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").expect("unknown"), None);
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12]);
        v2.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 2, 0x1f, 0x90, 0x08, 0xae]);
        assert_eq!(
            parse(&v2).expect("v2"),
            Some("198.51.100.9:8080".parse().expect("addr"))
        );
        assert!(parse(b"PROXY TCP4 nonsense\r\n").is_err());
        let mapped = b"PROXY TCP6 ::ffff:203.0.113.7 ::1 51234 8080\r\n";
        assert_eq!(
            parse(mapped).expect("mapped"),
            Some("203.0.113.7:51234".parse().expect("addr"))
        );
    }

    #[test]
    fn only_trusted_peers_may_send_a_header() {
        let t = Trusted::parse(&[
            "10.0.0.0/8".into(),
            "2001:db8::/32".into(),
            "192.0.2.7".into(),
        ])
        .expect("parse");
        for ok in ["10.1.2.3", "2001:db8::1", "192.0.2.7", "::ffff:10.0.0.1"] {
            assert!(t.admits(ok.parse().expect("ip")), "{ok}");
        }
        for no in ["11.0.0.1", "2001:db9::1", "192.0.2.8", "127.0.0.1"] {
            assert!(!t.admits(no.parse().expect("ip")), "{no}");
        }
        assert!(Trusted::default().admits("127.0.0.1".parse().expect("ip")));
        assert!(Trusted::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(Trusted::parse(&["ten".into()]).is_err());
        assert!(
            Trusted::parse(&["0.0.0.0/0".into()])
                .expect("all")
                .admits("8.8.8.8".parse().expect("ip"))
        );
    }
}
