//! Pure: whether a request may have what it asks for, by the `.htaccess` files on its path:
//! the host rules (`Order`/`Allow`/`Deny`) and the requirements (`Require`), combined by
//! `Satisfy` (All by default: both must pass; Any: one is enough), as Apache 2.4 with
//! mod_access_compat decides. A requirement that needs a user asks for one (401) when the
//! directory says how (`AuthType Basic`, `AuthUserFile`); without that, the directory is
//! misconfigured (500, explained), as in Apache.

use http::StatusCode;

use super::Refusal;
use super::access::{Asker, Decision};
use super::chain::Chain;
use super::rules::Rules;

/// What the rules decide for `who`.
pub fn decide(rules: &Rules, who: &Asker<'_>) -> Decision {
    let hosts = rules.compat.as_ref().is_none_or(|c| c.passes(who.ip));
    match (
        rules.require.as_ref().map(|r| r.decide(who)),
        rules.satisfy_any,
    ) {
        (None, _) => granted(hosts),
        (Some(d), Some(true)) if hosts => {
            let _ = d;
            Decision::Granted
        }
        (Some(d), Some(true)) => d,
        (Some(_), _) if !hosts => Decision::Denied,
        (Some(d), _) => d,
    }
}

fn granted(yes: bool) -> Decision {
    if yes {
        Decision::Granted
    } else {
        Decision::Denied
    }
}

/// The refusal for a request the rules deny.
pub fn denied(chain: &Chain, path: &str) -> Refusal {
    Refusal {
        status: StatusCode::FORBIDDEN,
        code: "htaccess_denied",
        reason: format!(
            "`{path}` is closed to this request by {} (Require, Deny or Order).",
            deciding_file(chain)
        ),
        fix: "If it should be reachable, change the access lines of that file (e.g. `Require all granted`, or add the client's address to `Require ip`).".into(),
        realm: None,
        retry_after: None,
    }
}

/// The refusal for a request that needs a user: a challenge when the directory names a
/// realm and a user file, else the misconfiguration.
pub fn need_user(chain: &Chain, rules: &Rules) -> Refusal {
    match (rules.auth_basic, &rules.auth_user_file) {
        (Some(true), Some(_)) => Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "htaccess_auth",
            reason: "This area needs a user name and password.".into(),
            fix: "Log in with an account of this site's password file.".into(),
            realm: Some(rules.auth_name.clone().unwrap_or_else(|| "Restricted".into())),
            retry_after: None,
        },
        _ => Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "htaccess_auth_config",
            reason: format!(
                "{} requires a user (Require valid-user or user), but says no way to log in.",
                deciding_file(chain)
            ),
            fix: "Add `AuthType Basic`, `AuthName \"...\"` and `AuthUserFile` naming a file made with `htpasswd -B` inside your home.".into(),
            realm: None,
            retry_after: None,
        },
    }
}

/// The deepest file that says anything about access, for messages.
fn deciding_file(chain: &Chain) -> String {
    chain
        .levels
        .iter()
        .rev()
        .find(|l| {
            let f = &l.file;
            f.rules.require.is_some()
                || f.rules.compat.is_some()
                || !f.limits.is_empty()
                || f.files
                    .iter()
                    .any(|(_, r)| r.require.is_some() || r.compat.is_some())
        })
        .map_or_else(
            || "the .htaccess files".to_string(),
            |l| format!("the .htaccess in {}", l.url),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::htaccess::access::{Compat, Require};

    #[test]
    fn satisfy_combines_hosts_and_requirements() {
        let who = |ip: &str, user| Asker {
            ip: ip.parse().expect("ip"),
            method: "GET",
            user,
        };
        let office = Compat {
            order: crate::htaccess::access::Order::DenyAllow,
            allow: vec![Some(
                crate::htaccess::access::Net::parse("10.0.0.0/8").expect("net"),
            )],
            deny: vec![None],
        };
        let mut rules = Rules {
            compat: Some(office),
            require: Some(Require::ValidUser),
            ..Rules::default()
        };
        assert_eq!(decide(&rules, &who("192.0.2.1", None)), Decision::Denied);
        assert_eq!(decide(&rules, &who("10.0.0.1", None)), Decision::NeedUser);
        assert_eq!(
            decide(&rules, &who("10.0.0.1", Some("a"))),
            Decision::Granted
        );
        rules.satisfy_any = Some(true);
        assert_eq!(decide(&rules, &who("10.0.0.1", None)), Decision::Granted);
        assert_eq!(decide(&rules, &who("192.0.2.1", None)), Decision::NeedUser);
        assert_eq!(
            decide(&Rules::default(), &who("192.0.2.1", None)),
            Decision::Granted
        );
    }
}
