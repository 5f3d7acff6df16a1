//! git push deploys (issue 19): `yadokari user repo NAME add SITE` makes `~/repos/SITE.git`,
//! and a push with the real `git` client over the SSH endpoint publishes the branch's tree as a
//! new release that the web root (a link) is switched to in one step. As root: deploys run
//! only as the customer's own identity.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::have;
use crate::support::host::{Host, as_root, get};
use crate::support::sftp::{Running, git, text};

/// A host with customer `alice` (domain `alice.example`) whose site is published from
/// `repos/site.git` (`repo add` with `repo_args`), her key, and a local work tree.
struct Published {
    host: Host,
    key: PathBuf,
    local: tempfile::TempDir,
}

impl Published {
    fn new(hosting: &str, repo_args: &[&str]) -> Published {
        let host = Host::new(&format!(
            "[hosting]\nhomes = \"homes\"\nuid_range = [27000, 27999]\n{hosting}"
        ));
        let key = host.customer("alice", &["--domain", "alice.example"]);
        host.site_file("alice", "old.html", "before the first push\n", 0o644);
        let mut args = vec!["repo", "alice", "add", "site"];
        args.extend_from_slice(repo_args);
        host.user(&args);
        let local = tempfile::tempdir().expect("tempdir");
        let p = Published { host, key, local };
        p.git_ok(&["init", "-q", "-b", "main"]);
        p
    }

    fn work(&self) -> PathBuf {
        self.local.path().to_path_buf()
    }

    fn home(&self) -> PathBuf {
        self.host.home("alice")
    }

    /// Writes `rel` in the work tree with `mode`.
    fn write(&self, rel: &str, content: &str, mode: u32) {
        let p = self.work().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn git_ok(&self, args: &[&str]) -> Output {
        let o = git(&self.key, &self.work(), args);
        assert!(o.status.success(), "git {args:?}: {}", text(&o));
        o
    }

    /// Commits everything and pushes `main`; git's output.
    fn push(&self, running: &Running, message: &str) -> Output {
        self.git_ok(&["add", "-A"]);
        self.git_ok(&["commit", "-q", "--allow-empty", "-m", message]);
        git(
            &self.key,
            &self.work(),
            &["push", &self.url(running), "main"],
        )
    }

    fn url(&self, running: &Running) -> String {
        format!(
            "ssh://alice@127.0.0.1:{}/repos/site.git",
            running.addr.port()
        )
    }

    /// The release directories made by pushes, oldest first (not the `…-before` one that
    /// holds what the web root served before, which is never pruned).
    fn releases(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.home().join("releases"))
            .expect("releases/")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && !n.ends_with("-before"))
            .collect();
        names.sort();
        names
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_git_push_publishes_a_release_and_switches_the_web_root_to_it() {
    if !as_root() || !have("git") || !have("ssh") {
        return;
    }
    let p = Published::new("", &["--keep", "2"]);
    let home = p.home();
    let web = home.join("public_html");
    assert!(
        web.symlink_metadata().expect("lstat").is_symlink(),
        "repo add made the web root a link"
    );
    let hook = home.join("repos/site.git/hooks/post-receive");
    let alice = std::fs::metadata(&home).expect("home").uid();
    assert_eq!(std::fs::metadata(&hook).expect("hook").uid(), alice);
    let listed = p.host.user(&["list"]);
    assert!(listed.contains("repos=site"), "{listed}");
    let running = p.host.start();
    let server = &running.server;
    // What the web root held before is still served, from its first release.
    assert_eq!(
        get(server, "alice.example", "/old.html"),
        (200, "before the first push\n".to_string())
    );

    p.write("index.html", "published by git\n", 0o644);
    p.write(
        "cgi-bin/hello.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello from %s\\n' \"$(basename \"$(dirname \"$PWD\")\")\"\n",
        0o755,
    );
    p.write(
        "cgi-bin/off.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\noff\\n'\n",
        0o644,
    );
    let o = p.push(&running, "first");
    assert!(o.status.success(), "{}", text(&o));
    let said = stderr(&o);
    assert!(said.contains("remote: published"), "{said}");
    // The web's refusal of a pushed file reaches `git push`, with the fix.
    let off = said
        .lines()
        .find(|l| l.starts_with("remote: cgi-bin/off.cgi:"))
        .unwrap_or_else(|| panic!("no verdict for off.cgi:\n{said}"));
    assert!(off.contains("chmod"), "{off}");
    assert!(!said.contains("cgi-bin/hello.cgi:"), "{said}");

    assert_eq!(
        get(server, "alice.example", "/index.html"),
        (200, "published by git\n".to_string())
    );
    assert_eq!(get(server, "alice.example", "/old.html").0, 404);
    let release = p.releases().last().cloned().expect("a release");
    // The script runs in the release it was served from.
    assert_eq!(
        get(server, "alice.example", "/cgi-bin/hello.cgi"),
        (200, format!("hello from {release}\n"))
    );
    let dir = home.join("releases").join(&release);
    let mode = |rel: &str| std::fs::metadata(dir.join(rel)).expect("stat").mode() & 0o7777;
    assert_eq!(mode("cgi-bin/hello.cgi"), 0o755);
    assert_eq!(mode("cgi-bin/off.cgi"), 0o644);
    assert_eq!(mode("index.html"), 0o644);
    assert_eq!(
        std::fs::metadata(dir.join("index.html"))
            .expect("stat")
            .uid(),
        alice,
        "the customer owns the release"
    );
    assert_eq!(
        std::fs::read_link(&web).expect("link"),
        PathBuf::from("releases").join(&release)
    );
    // The transfer log has the release's files, with the web's verdicts.
    let log = server.output();
    assert!(
        log.lines().any(|l| l.contains("transfer")
            && l.contains("cgi-bin/hello.cgi")
            && l.contains("runs")),
        "{log}"
    );

    // Two more pushes: the newest two releases are kept (--keep 2), the first gone.
    for n in 2..=3 {
        p.write("index.html", &format!("push {n}\n"), 0o644);
        let o = p.push(&running, &format!("push {n}"));
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            get(server, "alice.example", "/index.html"),
            (200, format!("push {n}\n"))
        );
    }
    let kept = p.releases();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&release), "{kept:?}");
    let before = std::fs::read_dir(home.join("releases"))
        .expect("releases/")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("-before"))
        .count();
    assert_eq!(before, 1, "what the web root held before is kept");

    // A checkout that fails leaves the release that was serving in place.
    let releases = home.join("releases");
    std::fs::set_permissions(&releases, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    p.write("index.html", "never published\n", 0o644);
    let o = p.push(&running, "fails");
    std::fs::set_permissions(&releases, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let said = stderr(&o);
    assert!(said.contains("remote: not published"), "{said}");
    assert!(said.contains("still serves"), "{said}");
    assert_eq!(
        get(server, "alice.example", "/index.html"),
        (200, "push 3\n".to_string())
    );

    // The same repository clones over the endpoint.
    let clone = p.local.path().join("clone");
    let o = git(
        &p.key,
        &p.work(),
        &[
            "clone",
            "-q",
            &p.url(&running),
            clone.to_str().expect("path"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(clone.join("index.html")).expect("cloned"),
        "never published\n"
    );
}

#[test]
fn twenty_pushes_under_load_never_fail_a_request_and_each_sees_one_release() {
    if !as_root() || !have("git") || !have("ssh") {
        return;
    }
    let p = Published::new("", &["--keep", "3"]);
    // The script prints two files that every push changes together, by relative path.
    p.write(
        "cgi-bin/pair.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ncat ../data/a.txt ../data/b.txt\n",
        0o755,
    );
    let version = |n: usize| {
        p.write("data/a.txt", &format!("a{n}\n"), 0o644);
        p.write("data/b.txt", &format!("b{n}\n"), 0o644);
    };
    version(0);
    let running = p.host.start();
    let o = p.push(&running, "v0");
    assert!(o.status.success(), "{}", text(&o));
    let http = running.server.http;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = 0usize;
            let mut problems = Vec::new();
            // Bounded: it stops when the pushes are done, or after 20,000 requests.
            while !stop.load(Ordering::Relaxed) && seen < 20_000 {
                let (status, body) = get_at(http, "/cgi-bin/pair.cgi");
                let lines: Vec<&str> = body.lines().collect();
                let same =
                    lines.len() == 2 && lines[0].strip_prefix('a') == lines[1].strip_prefix('b');
                if status != 200 || !same {
                    problems.push(format!("pair.cgi: {status} {body:?}"));
                }
                let (status, body) = get_at(http, "/data/a.txt");
                if status != 200 {
                    problems.push(format!("a.txt: {status} {body:?}"));
                }
                seen += 2;
            }
            (seen, problems)
        })
    };
    for n in 1..=20 {
        version(n);
        let o = p.push(&running, &format!("v{n}"));
        assert!(o.status.success(), "push {n}: {}", text(&o));
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, problems) = load.join().expect("load thread");
    assert!(seen > 20, "the load loop ran ({seen} requests)");
    assert!(
        problems.is_empty(),
        "{} of {seen}: {problems:?}",
        problems.len()
    );
    assert_eq!(
        get(&running.server, "alice.example", "/cgi-bin/pair.cgi"),
        (200, "a20\nb20\n".to_string())
    );
    assert_eq!(p.releases().len(), 3);
}

/// `GET path` on alice's site over HTTP/1.0 at `http`; status 0 when the connection failed.
fn get_at(http: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(http) else {
        return (0, "cannot connect".into());
    };
    let ask = format!("GET {path} HTTP/1.0\r\nHost: alice.example\r\n\r\n");
    let mut raw = Vec::new();
    if s.write_all(ask.as_bytes()).is_err() || s.read_to_end(&mut raw).is_err() {
        return (0, "the connection broke".into());
    }
    (
        crate::support::raw_status(&raw),
        String::from_utf8_lossy(crate::support::raw_body(&raw)).into_owned(),
    )
}

/// Every file and directory under `dir` but `logs/` (the server writes the customer's logs
/// there), with its size.
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("readdir") {
            let path = e.expect("entry").path();
            let rel = path.strip_prefix(dir).expect("inside").to_path_buf();
            if rel.starts_with("logs") {
                continue;
            }
            let meta = path.symlink_metadata().expect("lstat");
            if meta.is_dir() {
                todo.push(path);
                out.push((rel, 0));
            } else {
                out.push((rel, meta.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_push_larger_than_the_room_left_in_the_quota_is_refused_and_the_home_is_unchanged() {
    if !as_root() || !have("git") || !have("ssh") {
        return;
    }
    let p = Published::new("", &[]);
    let home = p.home();
    p.write("index.html", "small\n", 0o644);
    // The room left: what the home holds now (the repository, the release) and 200 KB more.
    let used = quota_used(&p.host.user(&["list"]));
    p.host
        .set_user("alice", "quota_bytes", (used + 300_000) as i64);
    let running = p.host.start();
    let o = p.push(&running, "small");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        get(&running.server, "alice.example", "/index.html"),
        (200, "small\n".to_string())
    );
    let before = tree(&home);
    // 1 MB that does not compress.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: String = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect();
    p.write("big.txt", &noise, 0o644);
    let o = p.push(&running, "too big");
    assert!(!o.status.success(), "{}", text(&o));
    let said = stderr(&o);
    assert!(said.contains("quota"), "{said}");
    assert_eq!(tree(&home), before, "the push changed the home");
    assert_eq!(
        get(&running.server, "alice.example", "/index.html"),
        (200, "small\n".to_string())
    );
    let log = running.server.output();
    assert!(log.contains("room left in the quota"), "{log}");
}

/// What alice's home holds as the quota counts it (`user list`'s `bytes=USED/…`).
fn quota_used(listed: &str) -> u64 {
    listed
        .lines()
        .find(|l| l.starts_with("alice\t"))
        .and_then(|l| l.split("bytes=").nth(1))
        .and_then(|b| b.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no usage in {listed}"))
}

#[test]
fn a_web_root_linked_out_of_the_home_is_not_served() {
    if !as_root() {
        return;
    }
    let h = Host::new("[hosting]\nhomes = \"homes\"\nuid_range = [27000, 27999]\n");
    h.customer("alice", &["--domain", "alice.example"]);
    h.customer("bob", &["--domain", "bob.example"]);
    h.site_file("bob", "secret.txt", "bob's secret\n", 0o644);
    let web = h.home("alice").join("public_html");
    std::fs::remove_dir_all(&web).expect("rm");
    std::os::unix::fs::symlink("../bob/public_html", &web).expect("symlink");
    std::os::unix::fs::lchown(&web, Some(27000), Some(27000)).ok();
    let running = h.start();
    let (status, body) = get(&running.server, "alice.example", "/secret.txt");
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("bob's secret"), "{body}");
    assert_eq!(
        get(&running.server, "bob.example", "/secret.txt"),
        (200, "bob's secret\n".to_string())
    );
    let log = running.server.output();
    assert!(log.contains("not a directory inside the home"), "{log}");

    // A web root that was a directory when the server read its configuration, and is made a
    // link afterwards, is not followed either (until the configuration is read again, which
    // then checks it as the link it is).
    h.customer("carol", &["--domain", "carol.example"]);
    let carol = h.home("carol").join("public_html");
    let running = h.start();
    std::fs::remove_dir_all(&carol).expect("rm");
    std::os::unix::fs::symlink("/", &carol).expect("symlink");
    let (status, body) = get(&running.server, "carol.example", "/etc/passwd");
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("root:"), "{body}");
}
