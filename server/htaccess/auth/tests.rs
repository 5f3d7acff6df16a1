//! The check end to end over real files: fixtures recorded from `htpasswd`, and the real
//! `htpasswd` tool run live into a temporary home (required under CI=true).

use std::path::Path;
use std::process::Command;

use base64::Engine;

use super::*;

// `htpasswd -nb -s alice secret`.
const ALICE: &str = "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n";
// `htpasswd -nb -d des secret`.
const DES: &str = "des:QWOqu4F3Jd9yQ\n";

fn limits() -> Limits {
    Limits {
        delay: Duration::from_millis(1),
        max_failures: 3,
        ..Limits::default()
    }
}

fn auth() -> Arc<BasicAuth> {
    Arc::new(BasicAuth::new(limits()))
}

fn home(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".htpasswd"), text).expect("write");
    dir
}

fn header(user: &str, password: &str) -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}").into_bytes()
}

fn attempt(home: &Path, authorization: Option<Vec<u8>>, client: [u8; 4]) -> Attempt {
    Attempt {
        realm: "Members \"only\"".to_string(),
        user_file: ".htpasswd".to_string(),
        home: home.to_path_buf(),
        authorization,
        client: client.into(),
    }
}

const CLIENT: [u8; 4] = [192, 0, 2, 1];

#[tokio::test]
async fn no_credentials_is_a_challenge_and_the_right_ones_pass() {
    let (auth, h) = (auth(), home(ALICE));
    let asked = auth.check(attempt(h.path(), None, CLIENT)).await;
    assert_eq!(asked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        asked.challenge().as_deref(),
        Some(r#"Basic realm="Members \"only\"""#)
    );
    let other_scheme = auth
        .check(attempt(h.path(), Some(b"Bearer x".to_vec()), CLIENT))
        .await;
    assert!(matches!(other_scheme, Outcome::Challenge { .. }));
    let right = attempt(h.path(), Some(header("alice", "secret")), CLIENT);
    for _ in 0..2 {
        // The second time from the remembered verdict.
        assert_eq!(
            auth.check(right.clone()).await,
            Outcome::Authenticated {
                user: "alice".into()
            }
        );
    }
}

#[tokio::test]
async fn different_wrong_guesses_ban_the_address_and_then_even_the_right_password_is_refused() {
    let (auth, h) = (auth(), home(ALICE));
    for guess in ["a", "b"] {
        let wrong = attempt(h.path(), Some(header("alice", guess)), CLIENT);
        assert!(matches!(auth.check(wrong).await, Outcome::Challenge { .. }));
    }
    let third = attempt(h.path(), Some(header("nobody", "c")), CLIENT);
    let banned = auth.check(third).await;
    assert_eq!(banned.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(banned.retry_after_secs(), Some(900));
    let right = attempt(h.path(), Some(header("alice", "secret")), CLIENT);
    assert!(matches!(auth.check(right).await, Outcome::Banned { .. }));
    let elsewhere = attempt(h.path(), Some(header("alice", "secret")), [192, 0, 2, 2]);
    assert!(matches!(
        auth.check(elsewhere).await,
        Outcome::Authenticated { .. }
    ));
}

#[tokio::test]
async fn the_same_wrong_credentials_repeated_count_once() {
    // A browser re-sending remembered credentials for every image of a page is not guessing.
    let (auth, h) = (auth(), home(ALICE));
    for _ in 0..10 {
        let stale = attempt(h.path(), Some(header("alice", "old")), CLIENT);
        assert!(matches!(auth.check(stale).await, Outcome::Challenge { .. }));
    }
    let right = attempt(h.path(), Some(header("alice", "secret")), CLIENT);
    assert!(matches!(
        auth.check(right).await,
        Outcome::Authenticated { .. }
    ));
}

#[tokio::test]
async fn malformed_headers_are_failures_never_panics() {
    let (auth, h) = (auth(), home(ALICE));
    for bad in [&b"Basic !!!"[..], b"Basic YWxpY2U", b"Basic"] {
        let outcome = auth
            .check(attempt(h.path(), Some(bad.to_vec()), CLIENT))
            .await;
        assert!(!matches!(outcome, Outcome::Authenticated { .. }));
    }
    assert!(auth.defender.is_banned(CLIENT.into()));
}

#[tokio::test]
async fn a_user_file_outside_the_home_is_explained_before_any_password() {
    let (auth, h) = (auth(), home(ALICE));
    let mut outside = attempt(h.path(), None, CLIENT);
    outside.user_file = "/etc/shadow".into();
    let outcome = auth.check(outside).await;
    assert_eq!(outcome.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let Outcome::Misconfigured(problem) = outcome else {
        return;
    };
    assert!(problem.problem.contains("outside your home"), "{problem:?}");
}

#[tokio::test]
async fn an_unverifiable_hash_is_an_explained_500_even_with_the_right_password() {
    let (auth, h) = (auth(), home(&format!("{ALICE}{DES}")));
    let des = attempt(h.path(), Some(header("des", "secret")), CLIENT);
    let Outcome::Misconfigured(problem) = auth.check(des).await else {
        panic!("not refused");
    };
    assert!(problem.problem.contains("line 2"), "{problem:?}");
    assert!(problem.problem.contains("DES"), "{problem:?}");
    assert_eq!(
        problem.fix,
        "re-create the password with `htpasswd -B .htpasswd des`"
    );
    // The other users of the file still get in.
    let alice = attempt(h.path(), Some(header("alice", "secret")), CLIENT);
    assert!(matches!(
        auth.check(alice).await,
        Outcome::Authenticated { .. }
    ));
}

#[tokio::test]
async fn an_edited_file_applies_to_the_next_request() {
    let (auth, h) = (auth(), home(ALICE));
    let right = attempt(h.path(), Some(header("alice", "secret")), CLIENT);
    assert!(matches!(
        auth.check(right.clone()).await,
        Outcome::Authenticated { .. }
    ));
    std::fs::write(
        h.path().join(".htpasswd"),
        "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
    )
    .expect("write");
    // The remembered pass was for the old version of the file.
    assert!(matches!(auth.check(right).await, Outcome::Challenge { .. }));
}

#[test]
fn the_blocking_check_says_how_long_to_wait() {
    let (auth, h) = (BasicAuth::new(Limits::default()), home(ALICE));
    let wrong = auth.check_blocking(&attempt(h.path(), Some(header("alice", "x")), CLIENT));
    assert!(matches!(wrong.outcome, Outcome::Challenge { .. }));
    assert_eq!(wrong.delay, Duration::from_millis(500));
    let right = auth.check_blocking(&attempt(h.path(), Some(header("alice", "secret")), CLIENT));
    assert!(matches!(right.outcome, Outcome::Authenticated { .. }));
    assert_eq!(right.delay, Duration::ZERO);
    let asked = auth.check_blocking(&attempt(h.path(), None, CLIENT));
    assert_eq!(asked.delay, Duration::ZERO);
}

/// Whether the real `htpasswd` is here; under CI=true it must be (scripts/test installs
/// apache2-utils), as `tests/support.rs`'s `have()` demands of every tool.
fn have_htpasswd() -> bool {
    let found = Command::new("htpasswd").arg("-h").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "htpasswd is required under CI=true (scripts/test installs apache2-utils)"
        );
        eprintln!("skipping: htpasswd is not installed");
    }
    found
}

/// `htpasswd -b [-c] FLAGS FILE USER PASSWORD`.
fn htpasswd(file: &Path, flags: &[&str], user: &str, password: &str) {
    let status = Command::new("htpasswd")
        .arg("-b")
        .args(flags)
        .arg(file)
        .args([user, password])
        .output()
        .expect("run htpasswd");
    assert!(status.status.success(), "htpasswd {flags:?}: {status:?}");
}

#[tokio::test]
async fn every_hash_the_real_htpasswd_makes_is_verified_or_refused_with_its_fix() {
    if !have_htpasswd() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(".htpasswd");
    let password = "pässword with: colon";
    htpasswd(&file, &["-c", "-B"], "bcrypt", password);
    for (flag, user) in [
        ("-m", "md5"),
        ("-s", "sha1"),
        ("-2", "sha256"),
        ("-5", "sha512"),
    ] {
        htpasswd(&file, &[flag], user, password);
    }
    htpasswd(&file, &["-d"], "des", password);
    htpasswd(&file, &["-p"], "plain", password);
    let auth = auth();
    for (i, user) in ["bcrypt", "md5", "sha1", "sha256", "sha512"]
        .into_iter()
        .enumerate()
    {
        let right = attempt(dir.path(), Some(header(user, password)), CLIENT);
        assert_eq!(
            auth.check(right).await,
            Outcome::Authenticated { user: user.into() },
            "{user}"
        );
        // Each wrong guess from its own address, so that none is banned.
        let wrong = attempt(
            dir.path(),
            Some(header(user, "pässword")),
            [192, 0, 2, 100 + i as u8],
        );
        assert!(
            matches!(auth.check(wrong).await, Outcome::Challenge { .. }),
            "{user}"
        );
    }
    for (user, words) in [("des", "DES"), ("plain", "plain text")] {
        let refused = attempt(dir.path(), Some(header(user, password)), CLIENT);
        let Outcome::Misconfigured(problem) = auth.check(refused).await else {
            panic!("{user} was not refused");
        };
        assert!(problem.problem.contains(words), "{problem:?}");
        assert!(problem.fix.contains("htpasswd -B"), "{problem:?}");
    }
}
