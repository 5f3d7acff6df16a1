//! Push deploys over the SSH endpoint (issue 19, first part): the real `rsync`, `scp -O` and
//! `ssh` clients against the exec channel. Deploy programs run as the customer, in their home;
//! everything else (a shell, another command, shell syntax) is refused with the sentence and
//! exit status 1, and nothing runs.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::have;
use crate::support::sftp::{Running, SftpSite, ssh_options, text};

const SENTENCE: &str = "this host accepts sftp, rsync, scp and git push; it gives no shell";

/// `ssh`'s options for the endpoint (`-p`, where sftp and scp take `-P`).
fn ssh_args(running: &Running, key: &Path) -> Vec<String> {
    let mut args = ssh_options(running.addr.port());
    args.truncate(args.len() - 2);
    args.extend([
        "-p".into(),
        running.addr.port().to_string(),
        "-i".into(),
        key.display().to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
    ]);
    args
}

fn ssh(running: &Running, key: &Path, extra: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg("ssh")
        .args(ssh_args(running, key))
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh")
}

#[test]
fn a_shell_or_any_other_command_is_refused_with_the_sentence_and_runs_nothing() {
    if !have("ssh") {
        return;
    }
    let s = SftpSite::new("");
    let running = s.start();
    let marker = s.site.dir.path().join("marker");
    let target = "demo@127.0.0.1";
    let touch = format!("touch {}", marker.display());
    for command in [
        vec!["-T", target],
        vec![target, "id"],
        vec![target, "ls -la /"],
        vec![target, &format!("rsync --server; {touch}")],
        vec![target, &format!("scp -t $({touch})")],
        vec![target, &format!("scp -t `{touch}`")],
        vec![target, &format!("scp -t x > {}", marker.display())],
        vec![
            target,
            &format!("rsync --server --rsync-path='{touch}' . x"),
        ],
    ] {
        let o = ssh(&running, &s.key, &command);
        assert_eq!(o.status.code(), Some(1), "{command:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(SENTENCE),
            "{command:?}: {}",
            text(&o)
        );
        assert!(!marker.exists(), "{command:?} ran something");
    }
    assert!(
        running.server.output().contains("command refused"),
        "the refusals are logged:\n{}",
        running.server.output()
    );
}

/// `rsync -e ssh...` to the endpoint.
fn rsync(running: &Running, key: &Path, args: &[&str]) -> Output {
    let shell = format!("ssh {}", ssh_args(running, key).join(" "));
    Command::new("timeout")
        .arg("120")
        .arg("rsync")
        .arg("-e")
        .arg(shell)
        .args(args)
        .output()
        .expect("rsync")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn rsync_uploads_with_modes_deletes_downloads_and_stays_in_the_home() {
    // Deploy programs run only as a customer's own identity: the server must be root.
    if !crate::support::host::as_root() || !have("rsync") || !have("ssh") {
        return;
    }
    let s = SftpSite::new("");
    let running = s.start();
    let local = tempfile::tempdir().expect("tempdir");
    let tree = local.path().join("tree");
    let write = |rel: &str, content: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let p = tree.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write(
        "cgi-bin/deployed.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ndeployed by rsync\\n'\n",
        0o755,
    );
    write("page.html", "a page\n", 0o644);
    write("sub/dir/deep.txt", "deep\n", 0o644);
    write("gone.txt", "to be deleted\n", 0o644);
    let to = "demo@127.0.0.1:/";
    let o = rsync(
        &running,
        &s.key,
        &["-a", &format!("{}/", tree.display()), to],
    );
    assert!(o.status.success(), "{}", text(&o));
    let site = s.site.htdocs();
    assert_eq!(mode(&site.join("cgi-bin/deployed.cgi")), 0o755);
    assert_eq!(mode(&site.join("page.html")), 0o644);
    assert_eq!(
        std::fs::read_to_string(site.join("sub/dir/deep.txt")).expect("deep"),
        "deep\n"
    );
    if let Some((uid, _)) = crate::support::test_user() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(site.join("page.html")).expect("stat");
        assert_eq!(meta.uid(), uid, "the customer owns what rsync wrote");
    }
    assert_eq!(
        running.server.get("/cgi-bin/deployed.cgi").text(),
        "deployed by rsync\n"
    );
    // The transfer log has the deploy's files, each with the web side's verdict.
    let said = running.server.output();
    let line = said
        .lines()
        .find(|l| l.contains("transfer") && l.contains("/cgi-bin/deployed.cgi"))
        .unwrap_or_else(|| panic!("no transfer line for the script:\n{said}"));
    assert!(
        line.contains("via=\"rsync\"") || line.contains("via=rsync"),
        "{line}"
    );
    assert!(line.contains("runs"), "{line}");

    // --delete removes what the local tree no longer has.
    std::fs::remove_file(tree.join("gone.txt")).expect("rm");
    let o = rsync(
        &running,
        &s.key,
        &["-a", "--delete", &format!("{}/", tree.display()), to],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!site.join("gone.txt").exists());
    assert!(site.join("page.html").exists());

    // Download.
    let back = local.path().join("back");
    let o = rsync(
        &running,
        &s.key,
        &[
            "-a",
            "demo@127.0.0.1:/sub/",
            &format!("{}/", back.display()),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(back.join("dir/deep.txt")).expect("downloaded"),
        "deep\n"
    );

    // `..` and absolute paths are read inside the home, as the SFTP jail reads them.
    let one = local.path().join("one.txt");
    std::fs::write(&one, "escaped?\n").expect("write");
    let o = rsync(
        &running,
        &s.key,
        &[
            one.to_str().expect("path"),
            "demo@127.0.0.1:../../../../escaped.txt",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !s.site.dir.path().join("escaped.txt").exists(),
        "written above the home"
    );
    assert_eq!(
        std::fs::read_to_string(site.join("escaped.txt")).expect("in the home"),
        "escaped?\n"
    );

    // A deploy that outlives the server's sweeps for scripts' leftovers (one a second) is
    // not taken for one: 300 KiB at 100 KiB/s.
    let slow = local.path().join("slow.bin");
    std::fs::write(&slow, vec![b's'; 300 * 1024]).expect("write");
    let o = rsync(
        &running,
        &s.key,
        &[
            "--bwlimit=100",
            slow.to_str().expect("path"),
            "demo@127.0.0.1:/slow.bin",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::metadata(site.join("slow.bin"))
            .expect("landed")
            .len(),
        300 * 1024
    );

    // A refused option fails the run with a non-zero status.
    let o = rsync(
        &running,
        &s.key,
        &[
            "-a",
            "--rsync-path=/bin/sh",
            &format!("{}/", tree.display()),
            to,
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn scp_in_the_legacy_protocol_uploads_and_downloads_and_sftp_mode_still_works() {
    // Deploy programs run only as a customer's own identity: the server must be root.
    if !crate::support::host::as_root() || !have("scp") {
        return;
    }
    let s = SftpSite::new("");
    let running = s.start();
    let local = tempfile::tempdir().expect("tempdir");
    let file = local.path().join("up.txt");
    std::fs::write(&file, "copied with scp -O\n").expect("write");
    let mut base = ssh_options(running.addr.port());
    base.extend([
        "-i".into(),
        s.key.display().to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
    ]);
    let scp = |args: &[&str]| {
        Command::new("timeout")
            .arg("60")
            .arg("scp")
            .args(&base)
            .args(args)
            .output()
            .expect("scp")
    };
    let o = scp(&[
        "-O",
        file.to_str().expect("path"),
        "demo@127.0.0.1:/legacy.txt",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(s.site.htdocs().join("legacy.txt")).expect("uploaded"),
        "copied with scp -O\n"
    );
    let back = local.path().join("back.txt");
    let o = scp(&[
        "-O",
        "demo@127.0.0.1:/legacy.txt",
        back.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&back).expect("downloaded"),
        "copied with scp -O\n"
    );
    let o = scp(&[file.to_str().expect("path"), "demo@127.0.0.1:/modern.txt"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(s.site.htdocs().join("modern.txt").exists());
}

#[test]
fn a_site_over_its_quota_cannot_start_an_upload_but_can_still_download() {
    // Deploy programs run only as a customer's own identity: the server must be root.
    if !crate::support::host::as_root() || !have("rsync") || !have("scp") {
        return;
    }
    let s = SftpSite::new("quota_bytes = 20000\n");
    // Already over: 30,000 bytes put there by other means (a script, the operator).
    s.site.file("big.bin", vec![b'b'; 30000], 0o644);
    let running = s.start();
    let local = tempfile::tempdir().expect("tempdir");
    let file = local.path().join("small.txt");
    std::fs::write(&file, "small\n").expect("write");
    let o = rsync(
        &running,
        &s.key,
        &[file.to_str().expect("path"), "demo@127.0.0.1:/"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("over its quota"),
        "{}",
        text(&o)
    );
    assert!(!s.site.htdocs().join("small.txt").exists());
    let mut base = ssh_options(running.addr.port());
    base.extend([
        "-i".into(),
        s.key.display().to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
    ]);
    let o = Command::new("timeout")
        .arg("60")
        .arg("scp")
        .args(&base)
        .args(["-O", file.to_str().expect("path"), "demo@127.0.0.1:/"])
        .output()
        .expect("scp");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!s.site.htdocs().join("small.txt").exists());
    // Reading is not writing.
    let back = local.path().join("big.bin");
    let o = rsync(
        &running,
        &s.key,
        &["demo@127.0.0.1:/big.bin", back.to_str().expect("path")],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::metadata(&back).expect("downloaded").len(), 30000);
}

#[test]
fn a_transfer_that_crosses_the_quota_is_stopped_and_said_so() {
    if !crate::support::host::as_root() || !have("rsync") {
        return;
    }
    let s = SftpSite::new("quota_bytes = 300000\n");
    let running = s.start();
    let local = tempfile::tempdir().expect("tempdir");
    let site = s.site.htdocs();
    // One file larger than the room left: refused by the file size limit, nothing left behind.
    let big = local.path().join("big.bin");
    std::fs::write(&big, vec![b'b'; 400_000]).expect("write");
    let o = rsync(
        &running,
        &s.key,
        &[big.to_str().expect("path"), "demo@127.0.0.1:/"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    // The client is told when it listens long enough (rsync hangs up the moment it learns of
    // the failure, so its stderr may have nothing); the error log always says it.
    running
        .server
        .wait_for("a file larger than the room left in the quota was refused");
    assert!(!site.join("big.bin").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&site)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().contains("big.bin"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Many files, each within the room, that pass it together (slowly, so that the count
    // made while it runs finds the site over): stopped, and said so.
    let tree = local.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    for n in 0..40 {
        std::fs::write(tree.join(format!("f{n:02}.bin")), vec![b'f'; 10_000]).expect("write");
    }
    let o = rsync(
        &running,
        &s.key,
        &[
            "-a",
            "--bwlimit=40",
            &format!("{}/", tree.display()),
            "demo@127.0.0.1:/many/",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("passed its quota"), "{}", text(&o));
    let log = running.server.output();
    assert!(
        log.contains("deploy stopped: the site passed its quota"),
        "{log}"
    );
    // Not every file landed: it was stopped on the way.
    let landed = std::fs::read_dir(site.join("many")).map_or(0, |d| d.count());
    assert!(landed < 40, "all {landed} files landed");
}

#[test]
fn git_push_and_clone_over_the_endpoint_reach_a_repository_in_the_home() {
    // Deploy programs run only as a customer's own identity: the server must be root.
    if !crate::support::host::as_root() || !have("git") || !have("ssh") {
        return;
    }
    let s = SftpSite::new("");
    let bare = s.site.htdocs().join("repos/site.git");
    std::fs::create_dir_all(&bare).expect("mkdir");
    let git = |dir: &Path, args: &[&str]| {
        let o = crate::support::sftp::git(&s.key, dir, args);
        assert!(o.status.success(), "git {args:?}: {}", text(&o));
        o
    };
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    crate::support::give_to_test_user(&s.site.htdocs().join("repos"));
    let running = s.start();
    let url = format!(
        "ssh://demo@127.0.0.1:{}/repos/site.git",
        running.addr.port()
    );
    let local = tempfile::tempdir().expect("tempdir");
    let work = local.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("index.html"), "pushed with git\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(&work, &["push", "-q", &url, "main"]);
    let clone = local.path().join("clone");
    git(
        local.path(),
        &["clone", "-q", &url, clone.to_str().expect("path")],
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("index.html")).expect("cloned"),
        "pushed with git\n"
    );
}

#[test]
fn alices_rsync_cannot_read_or_write_bobs_home_by_any_path() {
    if !crate::support::host::as_root() || !have("rsync") {
        return;
    }
    let h = crate::support::host::Host::new(
        "[hosting]\nhomes = \"homes\"\nuid_range = [26000, 26999]\n",
    );
    let alice = h.customer("alice", &[]);
    h.customer("bob", &[]);
    h.site_file("bob", "secret.txt", "bob's secret\n", 0o644);
    let running = h.start();
    let bob = h.home("bob");
    let local = tempfile::tempdir().expect("tempdir");
    let got = local.path().join("got");
    for path in [
        format!("{}/public_html/secret.txt", bob.display()),
        "../bob/public_html/secret.txt".to_string(),
        "~bob/public_html/secret.txt".to_string(),
        "/../../bob/public_html/secret.txt".to_string(),
    ] {
        let o = rsync(
            &running,
            &alice,
            &[
                &format!("alice@127.0.0.1:{path}"),
                got.to_str().expect("path"),
            ],
        );
        assert!(
            !got.exists(),
            "alice read bob's file through `{path}`: {}",
            text(&o)
        );
        assert!(!o.status.success(), "{path}: {}", text(&o));
    }
    // Writing: whatever the path says, it lands in alice's home or nowhere.
    let file = local.path().join("planted.txt");
    std::fs::write(&file, "planted\n").expect("write");
    for path in [
        format!("{}/public_html/", bob.display()),
        "../bob/public_html/".to_string(),
    ] {
        let _ = rsync(
            &running,
            &alice,
            &[
                file.to_str().expect("path"),
                &format!("alice@127.0.0.1:{path}"),
            ],
        );
        assert!(
            !bob.join("public_html/planted.txt").exists(),
            "alice wrote into bob's home through `{path}`"
        );
    }
    // A link alice plants towards bob's home leads nowhere either: she runs as herself.
    std::os::unix::fs::symlink(
        bob.join("public_html/secret.txt"),
        h.home("alice").join("public_html/link.txt"),
    )
    .expect("symlink");
    let o = rsync(
        &running,
        &alice,
        &[
            "-L",
            "alice@127.0.0.1:/public_html/link.txt",
            got.to_str().expect("path"),
        ],
    );
    assert!(
        !got.exists() || std::fs::read_to_string(&got).unwrap_or_default() != "bob's secret\n",
        "alice read bob's file through a link: {}",
        text(&o)
    );
}
