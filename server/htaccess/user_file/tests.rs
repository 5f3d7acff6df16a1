use std::os::unix::fs::symlink;

use super::*;
use crate::htaccess::htpasswd::Check;

// `htpasswd -nb -s alice secret` and `htpasswd -nb -s alice other`.
const ALICE: &str = "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n";
const ALICE_OTHER: &str = "alice:{SHA}0JQeaNqPOBUf+Gph/Fn3xc+fyqI=\n";

struct Homes {
    _dir: tempfile::TempDir,
    home: PathBuf,
    other: PathBuf,
}

fn homes() -> Homes {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("alice");
    let other = dir.path().join("bob");
    for h in [&home, &other] {
        std::fs::create_dir_all(h.join("public_html")).expect("mkdir");
    }
    std::fs::write(home.join(".htpasswd"), ALICE).expect("write");
    std::fs::write(other.join(".htpasswd"), ALICE).expect("write");
    Homes {
        _dir: dir,
        home,
        other,
    }
}

fn files() -> UserFiles {
    UserFiles::new(DEFAULT_CACHE_BYTES)
}

fn loads(h: &Homes, written: &str) -> Result<Check, Problem> {
    files()
        .load(&h.home, written)
        .map(|l| l.table.check("alice", b"secret"))
}

#[test]
fn relative_paths_are_taken_from_the_home_and_absolute_ones_must_lie_in_it() {
    let h = homes();
    assert_eq!(loads(&h, ".htpasswd"), Ok(Check::Match));
    assert_eq!(loads(&h, "./public_html/../.htpasswd"), Ok(Check::Match));
    let absolute = h.home.join(".htpasswd");
    assert_eq!(loads(&h, &absolute.to_string_lossy()), Ok(Check::Match));
}

#[test]
fn another_customers_file_or_a_system_file_is_refused() {
    let h = homes();
    let theirs = h.other.join(".htpasswd");
    for written in [
        theirs.to_string_lossy().into_owned(),
        "../bob/.htpasswd".to_string(),
        "/etc/shadow".to_string(),
        "/etc/passwd".to_string(),
        format!("{}/../bob/.htpasswd", h.home.display()),
    ] {
        let problem = loads(&h, &written).expect_err(&written);
        assert!(
            problem.problem.contains("outside your home"),
            "{written}: {problem:?}"
        );
        assert!(
            problem.fix.contains("AuthUserFile .htpasswd"),
            "{problem:?}"
        );
    }
}

#[test]
fn symlinks_out_of_the_home_are_refused_and_inside_it_followed() {
    let h = homes();
    symlink(h.other.join(".htpasswd"), h.home.join("abs-link")).expect("symlink");
    symlink("../bob/.htpasswd", h.home.join("rel-link")).expect("symlink");
    symlink("/etc/shadow", h.home.join("shadow")).expect("symlink");
    symlink(".htpasswd", h.home.join("inner-link")).expect("symlink");
    for link in ["abs-link", "rel-link", "shadow"] {
        let problem = loads(&h, link).expect_err(link);
        assert!(
            problem.problem.contains("outside your home"),
            "{link}: {problem:?}"
        );
    }
    assert_eq!(loads(&h, "inner-link"), Ok(Check::Match));
}

#[test]
fn missing_files_directories_and_fifos_are_explained() {
    let h = homes();
    let missing = loads(&h, "nope").expect_err("missing");
    assert!(missing.problem.contains("does not exist"), "{missing:?}");
    let dir = loads(&h, "public_html").expect_err("directory");
    assert!(dir.problem.contains("not a regular file"), "{dir:?}");
    nix::unistd::mkfifo(&h.home.join("fifo"), Mode::from_bits_truncate(0o644)).expect("mkfifo");
    // Would block forever in open() without O_NONBLOCK.
    let fifo = loads(&h, "fifo").expect_err("fifo");
    assert!(fifo.problem.contains("not a regular file"), "{fifo:?}");
    let empty = loads(&h, "").expect_err("empty");
    assert!(empty.problem.contains("names no file"), "{empty:?}");
}

#[test]
fn a_file_of_someone_else_is_refused_even_inside_the_home() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root to give a file away");
        return;
    }
    let h = homes();
    let path = h.home.join(".htpasswd");
    std::os::unix::fs::chown(&path, Some(12345), None).expect("chown");
    let problem = loads(&h, ".htpasswd").expect_err("someone else's");
    assert!(problem.problem.contains("uid 12345"), "{problem:?}");
    assert!(problem.fix.contains("chown"), "{problem:?}");
}

#[test]
fn oversized_and_malformed_files_are_explained_with_the_line() {
    let h = homes();
    let big = vec![b'#'; MAX_FILE_BYTES as usize + 1];
    std::fs::write(h.home.join("big"), big).expect("write");
    let problem = loads(&h, "big").expect_err("big");
    assert!(
        problem.problem.contains("larger than 1024 KiB"),
        "{problem:?}"
    );
    std::fs::write(h.home.join("bad"), format!("{ALICE}garbage\n")).expect("write");
    let problem = loads(&h, "bad").expect_err("bad");
    assert!(problem.problem.contains("line 2"), "{problem:?}");
}

#[test]
fn an_edit_applies_to_the_next_load_and_a_repeat_is_served_from_the_cache() {
    let h = homes();
    let files = files();
    let first = files.load(&h.home, ".htpasswd").expect("loads");
    let again = files.load(&h.home, ".htpasswd").expect("loads");
    assert!(Arc::ptr_eq(&first.table, &again.table), "cached");
    assert_eq!(first.key, again.key);
    // Same size, new contents: the mtime (or ctime) tells.
    std::fs::write(h.home.join(".htpasswd"), ALICE_OTHER).expect("write");
    let edited = files.load(&h.home, ".htpasswd").expect("loads");
    assert_ne!(edited.key, first.key);
    assert_eq!(edited.table.check("alice", b"secret"), Check::Mismatch);
    assert_eq!(edited.table.check("alice", b"other"), Check::Match);
    assert_eq!(
        files.len(),
        1,
        "the old version was replaced, not kept beside"
    );
}

#[test]
fn the_cache_stays_within_its_byte_budget() {
    let h = homes();
    let files = UserFiles::new(3 * ALICE.len() as u64);
    for i in 0..10 {
        std::fs::write(h.home.join(format!("f{i}")), ALICE).expect("write");
        files.load(&h.home, &format!("f{i}")).expect("loads");
    }
    assert_eq!(files.len(), 3);
}
