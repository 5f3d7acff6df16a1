//! Pure: the Basic scheme on the wire (RFC 7617): the `Authorization: Basic base64(user:pass)`
//! a client sends, parsed strictly, and the `WWW-Authenticate` challenge the server answers
//! with. Nothing a client sends here can panic: bad base64, a missing colon or a name that is
//! not UTF-8 is simply "not authenticated".

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Longest decoded `user:password` accepted. `htpasswd` reads at most 255 characters of a
/// password when it prompts; the bound keeps a client from making one check (SHA-crypt hashes
/// the whole password in every round) arbitrarily expensive.
pub const MAX_CREDENTIALS: usize = 1024;

/// Standard base64, with or without the padding (some clients leave it out), nothing else.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A user name and password a client sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The name, before the first colon.
    pub user: String,
    /// The password, after it: bytes, as the client encoded them (browsers send UTF-8).
    pub password: Vec<u8>,
}

// SECURITY: never print a password, not even in a debug log.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What an `Authorization` header holds, as far as Basic authentication is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// No header, or another scheme (`Bearer`, `Digest`): the client has not tried Basic.
    Nothing,
    /// `Basic` with something that does not decode to `user:password`: a failed attempt.
    Malformed,
    /// `Basic` with a user and a password.
    Basic(Credentials),
}

/// Reads an `Authorization` header value (`None` when the request has none).
pub fn presented(header: Option<&[u8]>) -> Presented {
    let Some(value) = header else {
        return Presented::Nothing;
    };
    let value = value.trim_ascii();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return if value.eq_ignore_ascii_case(b"basic") {
            Presented::Malformed
        } else {
            Presented::Nothing
        };
    };
    let (scheme, token) = (&value[..space], value[space..].trim_ascii_start());
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Presented::Nothing;
    }
    match decode(token) {
        Some(credentials) => Presented::Basic(credentials),
        None => Presented::Malformed,
    }
}

/// The token68 of a Basic header → the credentials, or `None` when it is not one.
fn decode(token: &[u8]) -> Option<Credentials> {
    // Base64 grows 3 bytes to 4: refuse an over-long token before decoding it.
    if token.is_empty() || token.len() > MAX_CREDENTIALS.div_ceil(3) * 4 {
        return None;
    }
    let plain = BASE64.decode(token).ok()?;
    let colon = plain.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&plain[..colon]).ok()?;
    if user.is_empty() || user.chars().any(char::is_control) {
        return None;
    }
    Some(Credentials {
        user: user.to_string(),
        password: plain[colon + 1..].to_vec(),
    })
}

/// The `WWW-Authenticate` value that asks for a password in `realm` (the `AuthName`).
///
/// The realm is a quoted-string: `"` and `\` are escaped with a backslash. Control characters
/// cannot appear in a header value at all; they become `?`.
// SECURITY: the realm comes from a customer's `.htaccess`; without the escaping a quote in it
// would end the realm early and let the rest pose as more parameters of the challenge.
pub fn challenge(realm: &str) -> String {
    let mut out = String::with_capacity(realm.len() + 16);
    out.push_str("Basic realm=\"");
    for c in realm.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(plain: &[u8]) -> Vec<u8> {
        let mut v = b"Basic ".to_vec();
        v.extend(
            base64::engine::general_purpose::STANDARD
                .encode(plain)
                .bytes(),
        );
        v
    }

    fn creds(user: &str, password: &[u8]) -> Presented {
        Presented::Basic(Credentials {
            user: user.to_string(),
            password: password.to_vec(),
        })
    }

    #[test]
    fn a_basic_header_gives_the_user_and_password() {
        assert_eq!(
            presented(Some(&basic(b"alice:secret"))),
            creds("alice", b"secret")
        );
        // Colons after the first belong to the password; an empty password is one.
        assert_eq!(
            presented(Some(&basic(b"alice:a:b"))),
            creds("alice", b"a:b")
        );
        assert_eq!(presented(Some(&basic(b"alice:"))), creds("alice", b""));
        assert_eq!(
            presented(Some(&basic("ユーザー:パス".as_bytes()))),
            creds("ユーザー", "パス".as_bytes())
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_padding_optional() {
        assert_eq!(presented(Some(b"basic YWxpY2U6cw==")), creds("alice", b"s"));
        assert_eq!(presented(Some(b"BASIC   YWxpY2U6cw")), creds("alice", b"s"));
    }

    #[test]
    fn other_schemes_and_no_header_are_nothing() {
        assert_eq!(presented(None), Presented::Nothing);
        assert_eq!(presented(Some(b"")), Presented::Nothing);
        assert_eq!(presented(Some(b"Bearer abc")), Presented::Nothing);
        assert_eq!(
            presented(Some(b"Digest username=\"a\"")),
            Presented::Nothing
        );
        assert_eq!(presented(Some(b"Basicfoo")), Presented::Nothing);
    }

    #[test]
    fn broken_basic_headers_are_malformed_never_a_panic() {
        let long = basic(&[b'a'; MAX_CREDENTIALS + 1]);
        let cases: Vec<&[u8]> = vec![
            b"Basic",
            b"Basic ",
            b"Basic !!!!",
            b"Basic YWxpY2U",      // "alice": no colon
            b"Basic OnNlY3JldA==", // ":secret": no user
            b"Basic YWxpY2U6cw===",
            b"Basic YWxp Y2U6cw==",
            b"Basic /w==",     // 0xff: not UTF-8, no colon
            b"Basic /zpz",     // "\xff:s": user not UTF-8
            b"Basic YQphOmI=", // "a\na:b": control character in the name
            &long,
        ];
        for case in cases {
            assert_eq!(
                presented(Some(case)),
                Presented::Malformed,
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn the_challenge_escapes_the_realm() {
        assert_eq!(challenge("Members"), "Basic realm=\"Members\"");
        assert_eq!(challenge(r#"a "b" \c"#), r#"Basic realm="a \"b\" \\c""#);
        assert_eq!(challenge("x\r\ny"), "Basic realm=\"x??y\"");
        assert_eq!(challenge("会員"), "Basic realm=\"会員\"");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials {
            user: "alice".into(),
            password: b"hunter2".to_vec(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
