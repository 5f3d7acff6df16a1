//! Pure: who may have a file. Apache 2.4's `Require` (mod_authz_core, _host's `ip`/`local`,
//! _user's `valid-user`/`user`, `method`), in `<RequireAll>`/`<RequireAny>`/`<RequireNone>`
//! containers, and the Apache 2.2 forms old software ships (mod_access_compat: `Order`,
//! `Allow from`, `Deny from`, `Satisfy`).
//!
//! No DNS lookups: `Require host` and `Allow from example.org` would need reverse lookups on
//! the request path, so they are problems with a fix (use addresses), never ignored: an
//! ignored `Deny` opens what it closed.

use std::net::IpAddr;

use super::Problem;
use super::syntax::Line;

/// What a requirement says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Granted,
    Denied,
    /// Would be granted to the right user: ask for credentials (401).
    NeedUser,
}

/// A requirement: a `Require` line, or a container of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Require {
    All(bool),
    Ip(Vec<Net>),
    Local,
    ValidUser,
    Users(Vec<String>),
    Methods(Vec<String>),
    Not(Box<Require>),
    /// `<RequireAll>`: every one.
    Every(Vec<Require>),
    /// `<RequireAny>` (and several `Require` lines side by side): one of them.
    Any(Vec<Require>),
}

/// What the request brings to the decision.
pub struct Asker<'a> {
    pub ip: IpAddr,
    pub method: &'a str,
    /// The user the server authenticated, if any.
    pub user: Option<&'a str>,
}

impl Require {
    /// Parses the arguments of one `Require` line.
    pub fn line(line: &Line) -> Result<Require, Problem> {
        let (negated, args) = match line.args.first().map(String::as_str) {
            Some("not") => (true, &line.args[1..]),
            _ => (false, &line.args[..]),
        };
        let Some((kind, rest)) = args.split_first() else {
            return Err(Problem::new(
                "`Require` needs a requirement",
                "write e.g. `Require all granted`, `Require valid-user` or `Require ip 192.0.2.0/24`",
            ));
        };
        let r = match (kind.to_ascii_lowercase().as_str(), rest) {
            ("all", [v]) if v.eq_ignore_ascii_case("granted") => Require::All(true),
            ("all", [v]) if v.eq_ignore_ascii_case("denied") => Require::All(false),
            ("ip", nets) if !nets.is_empty() => Require::Ip(
                nets.iter()
                    .map(|n| Net::parse(n))
                    .collect::<Result<_, _>>()?,
            ),
            ("local", []) => Require::Local,
            ("valid-user", []) => Require::ValidUser,
            ("user", names) if !names.is_empty() => Require::Users(names.to_vec()),
            ("method", methods) if !methods.is_empty() => {
                Require::Methods(methods.iter().map(|m| m.to_ascii_uppercase()).collect())
            }
            ("host" | "forward-dns", _) => {
                return Err(Problem::new(
                    format!("`Require {kind}` needs DNS lookups, which this server never makes"),
                    "name the clients by address instead: `Require ip 192.0.2.0/24`",
                ));
            }
            _ => {
                return Err(Problem::new(
                    format!(
                        "`Require {}` is not a requirement this server knows",
                        args.join(" ")
                    ),
                    "use `Require all granted|denied`, `ip`, `local`, `valid-user`, `user NAME`, `method`, or `not` before ip/user/method inside <RequireAll>",
                ));
            }
        };
        Ok(if negated {
            Require::Not(Box::new(r))
        } else {
            r
        })
    }

    /// Whether this requirement holds, or needs a user to tell.
    pub fn decide(&self, who: &Asker<'_>) -> Decision {
        use Decision::*;
        match self {
            Require::All(true) => Granted,
            Require::All(false) => Denied,
            Require::Ip(nets) => granted(nets.iter().any(|n| n.contains(who.ip))),
            Require::Local => granted(canonical(who.ip).is_loopback()),
            Require::Methods(m) => granted(m.iter().any(|m| m == who.method)),
            Require::ValidUser => who.user.map_or(NeedUser, |_| Granted),
            Require::Users(names) => match who.user {
                None => NeedUser,
                Some(u) => granted(names.iter().any(|n| n == u)),
            },
            Require::Not(inner) => match inner.decide(who) {
                Granted => Denied,
                Denied => Granted,
                NeedUser => NeedUser,
            },
            Require::Every(all) => {
                let ds: Vec<_> = all.iter().map(|r| r.decide(who)).collect();
                if ds.contains(&Denied) {
                    Denied
                } else if ds.contains(&NeedUser) {
                    NeedUser
                } else {
                    Granted
                }
            }
            Require::Any(any) => {
                let ds: Vec<_> = any.iter().map(|r| r.decide(who)).collect();
                if ds.contains(&Granted) {
                    Granted
                } else if ds.contains(&NeedUser) {
                    NeedUser
                } else {
                    Denied
                }
            }
        }
    }

    /// Whether deciding may ask for a user (so the directory needs `AuthType` and friends).
    pub fn wants_user(&self) -> bool {
        match self {
            Require::ValidUser | Require::Users(_) => true,
            Require::Not(r) => r.wants_user(),
            Require::Every(rs) | Require::Any(rs) => rs.iter().any(Require::wants_user),
            _ => false,
        }
    }

    /// A `not` standing alone (outside `<RequireAll>`/`<RequireNone>`) grants everyone who is
    /// not excluded, which is never what was meant: Apache refuses it, so do we.
    pub fn check_negation(&self) -> Result<(), Problem> {
        match self {
            Require::Not(_) => Err(Problem::new(
                "a negative `Require not ...` on its own would let everyone else in",
                "put it inside <RequireAll> with what is allowed, e.g. `Require all granted` and `Require not ip 192.0.2.1`",
            )),
            Require::Any(rs) => rs.iter().try_for_each(Require::check_negation),
            _ => Ok(()),
        }
    }
}

fn granted(yes: bool) -> Decision {
    if yes {
        Decision::Granted
    } else {
        Decision::Denied
    }
}

/// An address range: `192.0.2.1`, `10.1` (a prefix of whole octets, as Apache takes it),
/// `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `2001:db8::/32`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    bits: u8,
}

impl Net {
    /// Parses one range.
    pub fn parse(text: &str) -> Result<Net, Problem> {
        let bad = || {
            Problem::new(
                format!("`{text}` is not an address or a network"),
                "write an address (192.0.2.1, 2001:db8::1), a network (192.0.2.0/24) or leading octets (10.1); host names need DNS, which this server never uses",
            )
        };
        let (addr, mask) = match text.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (text, None),
        };
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match mask {
                None => max,
                Some(m) => match (m.parse::<u8>(), m.parse::<std::net::Ipv4Addr>()) {
                    (Ok(b), _) if b <= max => b,
                    (_, Ok(netmask)) if ip.is_ipv4() => {
                        let n = u32::from(netmask);
                        if n.leading_ones() + n.trailing_zeros() != 32 {
                            return Err(bad());
                        }
                        n.leading_ones() as u8
                    }
                    _ => return Err(bad()),
                },
            };
            return Ok(Net { addr: ip, bits });
        }
        // Leading octets: `10.1` or `10.1.` is 10.1.0.0/16.
        let octets: Vec<&str> = addr.trim_end_matches('.').split('.').collect();
        if mask.is_some() || octets.len() > 3 {
            return Err(bad());
        }
        let mut bytes = [0u8; 4];
        for (i, o) in octets.iter().enumerate() {
            bytes[i] = o.parse().map_err(|_| bad())?;
        }
        Ok(Net {
            addr: IpAddr::from(bytes),
            bits: 8 * octets.len() as u8,
        })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 client (`::ffff:192.0.2.1`, from a dual-stack listener) counts as its
/// IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    let rest = bits % 8;
    a[..whole] == b[..whole]
        && (rest == 0 || {
            let mask = 0xffu8 << (8 - rest);
            a[whole] & mask == b[whole] & mask
        })
}

/// mod_access_compat's `Order`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Allowed unless denied and not allowed (the default).
    #[default]
    DenyAllow,
    /// Denied unless allowed and not denied.
    AllowDeny,
    /// Allowed only when allowed and not denied.
    MutualFailure,
}

/// The 2.2 host rules of one directory: `Order`, `Allow from`, `Deny from`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compat {
    pub order: Order,
    /// `None` is `from all`.
    pub allow: Vec<Option<Net>>,
    pub deny: Vec<Option<Net>>,
}

impl Compat {
    /// Takes an `Order`, `Allow` or `Deny` line.
    pub fn line(&mut self, line: &Line) -> Result<(), Problem> {
        let name = line.name.to_ascii_lowercase();
        if name == "order" {
            let text = line.args.concat().to_ascii_lowercase();
            self.order = match text.as_str() {
                "deny,allow" => Order::DenyAllow,
                "allow,deny" => Order::AllowDeny,
                "mutual-failure" => Order::MutualFailure,
                _ => {
                    return Err(Problem::new(
                        format!("`Order {}` is not an order", line.args.join(" ")),
                        "write `Order Deny,Allow` or `Order Allow,Deny`",
                    ));
                }
            };
            return Ok(());
        }
        let from = match line.args.split_first() {
            Some((f, rest)) if f.eq_ignore_ascii_case("from") && !rest.is_empty() => rest,
            _ => {
                return Err(Problem::new(
                    format!("`{}` needs `from` and addresses", line.name),
                    format!(
                        "write e.g. `{} from all` or `{} from 192.0.2.0/24`",
                        line.name, line.name
                    ),
                ));
            }
        };
        let mut nets = Vec::new();
        for f in from {
            if f.eq_ignore_ascii_case("all") {
                nets.push(None);
            } else if f.starts_with("env=") {
                return Err(Problem::new(
                    format!(
                        "`{} from {f}` depends on SetEnvIf, which this server does not have",
                        line.name
                    ),
                    "decide by address or with `Require`",
                ));
            } else {
                nets.push(Some(Net::parse(f)?));
            }
        }
        match name.as_str() {
            "allow" => self.allow.extend(nets),
            _ => self.deny.extend(nets),
        }
        Ok(())
    }

    /// Whether the client passes the host rules.
    pub fn passes(&self, ip: IpAddr) -> bool {
        let hit = |list: &[Option<Net>]| {
            list.iter()
                .any(|n| n.as_ref().is_none_or(|n| n.contains(ip)))
        };
        let (allowed, denied) = (hit(&self.allow), hit(&self.deny));
        match self.order {
            Order::DenyAllow => allowed || !denied,
            Order::AllowDeny | Order::MutualFailure => allowed && !denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &str) -> Require {
        let line = Line {
            number: 1,
            name: "Require".into(),
            args: args.split(' ').map(String::from).collect(),
        };
        Require::line(&line).expect(args)
    }

    fn asker(ip: &str, user: Option<&'static str>) -> Asker<'static> {
        Asker {
            ip: ip.parse().expect("ip"),
            method: "GET",
            user,
        }
    }

    #[test]
    fn requirements_decide() {
        use Decision::*;
        let a = asker("192.0.2.7", None);
        assert_eq!(req("all granted").decide(&a), Granted);
        assert_eq!(req("all denied").decide(&a), Denied);
        assert_eq!(req("ip 192.0.2.0/24").decide(&a), Granted);
        assert_eq!(req("ip 10 192.0.3").decide(&a), Denied);
        assert_eq!(req("ip 192.0.2.0/255.255.255.0").decide(&a), Granted);
        assert_eq!(req("valid-user").decide(&a), NeedUser);
        assert_eq!(req("user alice").decide(&asker("::1", Some("bob"))), Denied);
        assert_eq!(
            req("user alice bob").decide(&asker("::1", Some("bob"))),
            Granted
        );
        assert_eq!(
            req("local").decide(&asker("::ffff:127.0.0.1", None)),
            Granted
        );
        assert_eq!(
            req("ip 127.0.0.1").decide(&asker("::ffff:127.0.0.1", None)),
            Granted
        );
        let all = Require::Every(vec![req("all granted"), req("not ip 192.0.2.7")]);
        assert_eq!(all.decide(&a), Denied);
        assert_eq!(all.decide(&asker("198.51.100.1", None)), Granted);
        let any = Require::Any(vec![req("ip 10.0.0.0/8"), req("valid-user")]);
        assert_eq!(any.decide(&a), NeedUser);
        assert_eq!(any.decide(&asker("10.1.2.3", None)), Granted);
        assert!(any.wants_user());
        assert!(
            Require::Any(vec![req("not ip 10.0.0.1")])
                .check_negation()
                .is_err()
        );
    }

    #[test]
    fn unknown_and_dns_requirements_are_problems() {
        for args in [
            "host example.org",
            "group admins",
            "env FOO",
            "expr true",
            "ip example.org",
            "all",
        ] {
            let line = Line {
                number: 1,
                name: "Require".into(),
                args: args.split(' ').map(String::from).collect(),
            };
            assert!(Require::line(&line).is_err(), "{args}");
        }
    }

    #[test]
    fn order_allow_deny() {
        let mut c = Compat::default();
        for (name, args) in [
            ("Order", "Deny,Allow"),
            ("Deny", "from all"),
            ("Allow", "from 10.0.0.0/8"),
        ] {
            c.line(&Line {
                number: 1,
                name: name.into(),
                args: args.split(' ').map(String::from).collect(),
            })
            .expect(args);
        }
        assert!(c.passes("10.2.3.4".parse().expect("ip")));
        assert!(!c.passes("192.0.2.1".parse().expect("ip")));
        let closed = Compat {
            order: Order::AllowDeny,
            allow: Vec::new(),
            deny: vec![None],
        };
        assert!(!closed.passes("10.2.3.4".parse().expect("ip")));
        assert!(Compat::default().passes("10.2.3.4".parse().expect("ip")));
    }
}
