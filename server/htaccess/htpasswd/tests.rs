//! Fixtures recorded from the real `htpasswd` (apache2-utils 2.4.x on Debian), each made with
//! `htpasswd -nb FLAG alice 'pass word:ü'` unless said otherwise; `auth`'s tests also run the
//! tool live.

use super::*;

const PASSWORD: &str = "pass word:ü";

/// `-B`, `-m`, `-s`, `-2`, `-5`, `-d`, `-p`, one user each.
const FILE: &str = "\
# made by htpasswd
bcrypt:$2y$05$s6FpBZt/Kl8OODKZ0zvvmOB.tnUi/e/irk7L6rtd39x/56IaCW1PW
apr1:$apr1$C25AnVP6$MFpPbfWBsp8CKyZlQrCGk/

sha1:{SHA}Zbq0zw87btsRwqNV+ElzMJDhtsI=
sha256:$5$CGycHrcPJvJ5Mzq1$/SI.rf4oVZ1sn7caojl8LPqvCKNAkItOtjo1baqtFt4
sha512:$6$kYWDlpUEp.Qhpldh$mGXp05YwzQzW8UV87AjhmsF.benoWbA/ErDP5uhpNWZDTHGgtm7bZGh.uICCUP.VhkTo6knlg41nLXv56Q8lN0
des:QWOqu4F3Jd9yQ
plain:pass word:ü
";

fn file() -> Htpasswd {
    parse(FILE.as_bytes()).expect("parses")
}

#[test]
fn every_verifiable_hash_htpasswd_makes_matches_its_password() {
    let f = file();
    for user in ["bcrypt", "apr1", "sha1", "sha256", "sha512"] {
        assert_eq!(f.check(user, PASSWORD.as_bytes()), Check::Match, "{user}");
        assert_eq!(f.check(user, b"pass word:u"), Check::Mismatch, "{user}");
        assert_eq!(f.check(user, b""), Check::Mismatch, "{user}");
    }
}

#[test]
fn des_and_plain_text_are_never_a_pass_even_with_the_right_password() {
    let f = file();
    let des = f.check("des", PASSWORD.as_bytes());
    assert_eq!(
        des,
        Check::Unsupported {
            line: 8,
            why: Unsupported::Des
        }
    );
    // The plain-text line holds exactly the password: still refused.
    let plain = f.check("plain", PASSWORD.as_bytes());
    assert_eq!(
        plain,
        Check::Unsupported {
            line: 9,
            why: Unsupported::Plain
        }
    );
}

#[test]
fn unknown_users_are_told_apart_from_wrong_passwords() {
    assert_eq!(file().check("mallory", b"x"), Check::NoSuchUser);
    assert_eq!(file().check("", b"x"), Check::NoSuchUser);
    assert_eq!(file().len(), 7);
}

#[test]
fn other_schemes_are_refused_with_their_reason() {
    let cases: &[(&str, Unsupported)] = &[
        ("u:*0", Unsupported::Locked),
        ("u:!$apr1$x$y", Unsupported::Locked),
        ("u:$y$j9T$abc$def", Unsupported::Scheme("$y$".to_string())),
        (
            "u:$2x$05$s6FpBZt/Kl8OODKZ0zvvmOB.tnUi/e/irk7L6rtd39x/56IaCW1PW",
            Unsupported::Scheme("$2x$".to_string()),
        ),
        ("u:{SSHA}abcd", Unsupported::Scheme("{SSHA}".to_string())),
        ("u:{SHA}not base64!", Unsupported::Damaged("{SHA}")),
        ("u:{SHA}YWJj", Unsupported::Damaged("{SHA}")),
        ("u:$apr1$C25AnVP6$short", Unsupported::Damaged("MD5")),
        ("u:$2y$05$tooshort", Unsupported::Damaged("bcrypt")),
        ("u:$5$rounds=10$salt$x", Unsupported::Damaged("SHA-crypt")),
        ("u:$6$salt$notbase64!!", Unsupported::Damaged("SHA-crypt")),
        ("u:hunter2", Unsupported::Plain),
    ];
    for (line, why) in cases {
        let f = parse(line.as_bytes()).expect("parses");
        assert_eq!(
            f.check("u", PASSWORD.as_bytes()),
            Check::Unsupported {
                line: 1,
                why: why.clone()
            },
            "{line}"
        );
    }
}

#[test]
fn hashes_too_costly_to_check_are_refused_without_being_run() {
    // `htpasswd -nbB -C 17 u x` would take a minute per check; the cost alone refuses it.
    let costly = "u:$2y$17$s6FpBZt/Kl8OODKZ0zvvmOB.tnUi/e/irk7L6rtd39x/56IaCW1PW";
    let check = parse(costly.as_bytes()).expect("parses").check("u", b"x");
    assert!(
        matches!(check, Check::Unsupported { why: Unsupported::TooCostly(ref w), .. } if w.contains("cost 17")),
        "{check:?}"
    );
    let rounds = "u:$6$rounds=999999999$C8x0aS2xbGbmQXMR$zWWqJCMmT1RLB7suYlNOppfmmX.ozC.reW6FwbQ6nVSspZoGQ7C2q8x9Vc/q8xIuLp1qAN0ZZFmOd8CkyX4T2.";
    let check = parse(rounds.as_bytes()).expect("parses").check("u", b"x");
    assert!(
        matches!(
            check,
            Check::Unsupported {
                why: Unsupported::TooCostly(_),
                ..
            }
        ),
        "{check:?}"
    );
}

#[test]
fn explicit_rounds_made_by_htpasswd_verify() {
    // `htpasswd -nb -2 -r 1000 alice x`
    let f =
        parse(b"alice:$5$rounds=1000$PFCEd4mT/3XmlowF$1wba0WEB/gaUnGkLbjZp6rl50VpZhHHnqu98ZZ0IbZ.")
            .expect("parses");
    assert_eq!(f.check("alice", b"x"), Check::Match);
    assert_eq!(f.check("alice", b"y"), Check::Mismatch);
}

#[test]
fn non_ascii_user_names_and_empty_passwords_work() {
    // `htpasswd -nbB -C 4 'ユーザー' 'パス'` and `htpasswd -nb -s bob ''`.
    let f = parse(
        "ユーザー:$2y$04$KyOWUlSRA06TCqa2Jt7PE.jOnys6UsOwS547RZUxA6NfkdQb1Ie9m\r\n\
         bob:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=\r\n"
            .as_bytes(),
    )
    .expect("parses");
    assert_eq!(f.check("ユーザー", "パス".as_bytes()), Check::Match);
    assert_eq!(f.check("bob", b""), Check::Match);
    assert_eq!(f.check("bob", b" "), Check::Mismatch);
}

#[test]
fn the_first_line_for_a_user_wins_as_in_apache() {
    let text = format!(
        "alice:{}\nalice:{}\n",
        "{SHA}Zbq0zw87btsRwqNV+ElzMJDhtsI=", "{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk="
    );
    let f = parse(text.as_bytes()).expect("parses");
    assert_eq!(f.check("alice", PASSWORD.as_bytes()), Check::Match);
    assert_eq!(f.check("alice", b""), Check::Mismatch);
}

#[test]
fn malformed_lines_are_named_by_number() {
    let cases: &[(&[u8], usize, &str)] = &[
        (b"alice:{SHA}x=\n\nno colon here\n", 3, "no `:`"),
        (b"# c\n:{SHA}x=\n", 2, "no user name"),
        (b"alice:\n", 1, "no hash"),
        (b"\xff\xfe:{SHA}x=\n", 1, "not UTF-8"),
    ];
    for (text, line, words) in cases {
        let err = parse(text).expect_err("malformed");
        assert_eq!(err.line, *line, "{err:?}");
        assert!(err.problem.contains(words), "{err:?}");
    }
}

#[test]
fn blank_lines_comments_and_an_empty_file_parse() {
    let f = parse(b"\n   \n# only a comment\n\t# indented comment\n").expect("parses");
    assert_eq!(f.len(), 0);
    assert_eq!(f.check("alice", b"x"), Check::NoSuchUser);
}

#[test]
fn reasons_read_as_sentences() {
    let text = Unsupported::Des.to_string();
    assert!(text.contains("htpasswd -d"), "{text}");
    let text = Unsupported::Scheme("$y$".into()).to_string();
    assert!(text.contains("`$y$`"), "{text}");
}
