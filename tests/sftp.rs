//! The SFTP endpoint with the stock OpenSSH `sftp` client in batch mode, against the real
//! binary on port 0: the demo flow end to end, listings, file operations, the jail, modes,
//! atomic uploads and big transfers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::sftp::{SftpSite, filled, local, mode, text, upload_temporary};
use crate::support::{eventually, have};

const HELLO: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello from cgi\\n'\n";

#[test]
fn demo_put_chmod_run_and_reupload_keeps_mode() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = local(work.path(), "hello.cgi", HELLO.as_bytes());
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let o = r.batch(&s.key, format!("put {} hello.cgi\n", src.display()));
    assert!(o.status.success(), "{}", text(&o));
    let on_disk = s.site.path("hello.cgi");
    assert_eq!(
        mode(&on_disk),
        0o644,
        "a new file is 0644 whatever the client's mode"
    );
    let site_owner = std::fs::metadata(s.site.htdocs()).expect("stat").uid();
    assert_eq!(
        std::fs::metadata(&on_disk).expect("stat").uid(),
        site_owner,
        "belongs to the site's owner"
    );
    let resp = r.server.get("/hello.cgi");
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("chmod 755"), "{}", resp.text());
    // The transfer log tells the uploader what the web side will make of it.
    let line = r.server.wait_for("refused (500)");
    assert!(
        line.contains("op=\"upload\"") && line.contains("chmod 755"),
        "{line}"
    );

    let o = r.batch(&s.key, "chmod 755 hello.cgi\n");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&on_disk), 0o755);
    let line = r.server.wait_for("runs as a CGI script");
    assert!(line.contains("op=\"chmod\""), "{line}");
    let resp = r.server.get("/hello.cgi");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "hello from cgi\n");

    let v2 = HELLO.replace("hello from cgi", "hello again");
    std::fs::write(&src, v2).expect("write");
    let o = r.batch(&s.key, format!("put {} hello.cgi\n", src.display()));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&on_disk), 0o755, "a re-upload keeps the mode");
    assert_eq!(r.server.get("/hello.cgi").text(), "hello again\n");
    // The transfer log names the user, the operation and the path.
    let line = r.server.wait_for("op=\"upload\"");
    assert!(
        line.contains("user=demo") && line.contains("/hello.cgi"),
        "{line}"
    );
}

#[test]
fn ls_l_looks_like_ls() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("page.html", "<p>hi</p>", 0o644);
    s.site.file("cgi-bin/run.cgi", "#!/bin/sh\n", 0o755);
    for i in 0..500 {
        s.site.file(&format!("many/f{i:03}"), "x", 0o644);
    }
    let r = s.start();
    let o = r.batch(&s.key, "ls -l\nls -l cgi-bin\nls many\n");
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let page = out
        .lines()
        .find(|l| l.ends_with(" page.html"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(page.starts_with("-rw-r--r--    1 "), "{page}");
    assert!(page.contains("        9 "), "size column: {page}");
    let cgi = out
        .lines()
        .find(|l| l.ends_with("run.cgi"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(cgi.starts_with("-rwxr-xr-x"), "{cgi}");
    let dir = out
        .lines()
        .find(|l| l.ends_with(" cgi-bin"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(dir.starts_with("drwxr-xr-x"), "{dir}");
    let listed = out
        .split_whitespace()
        .filter(|w| {
            w.contains("f") && w.trim_start_matches("many/").starts_with('f') && w.len() <= 10
        })
        .count();
    assert!(listed >= 500, "500 entries listed, saw {listed}\n{out}");
}

#[test]
fn mkdir_rename_remove_get_and_df() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("a.txt", "alpha", 0o644);
    s.site.file("b.txt", "bravo", 0o644);
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let batch = format!(
        "mkdir docs\nrename a.txt docs/a.txt\nget docs/a.txt {w}/got.txt\nput {w}/got.txt c.txt\nrm b.txt\n\
         mkdir gone\nrmdir gone\ndf -h\n",
        w = work.path().display()
    );
    let o = r.batch(&s.key, batch);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&s.site.path("docs")), 0o755);
    assert_eq!(
        std::fs::read(s.site.path("docs/a.txt")).expect("moved"),
        b"alpha"
    );
    assert_eq!(
        std::fs::read(work.path().join("got.txt")).expect("got"),
        b"alpha"
    );
    assert_eq!(std::fs::read(s.site.path("c.txt")).expect("put"), b"alpha");
    assert!(!s.site.path("b.txt").exists());
    assert!(!s.site.path("gone").exists());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Size"),
        "df: {}",
        text(&o)
    );

    // The root stays put.
    let o = r.batch(&s.key, "rmdir /\n");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(s.site.htdocs().is_dir());
}

#[test]
fn jail_holds_against_dotdot_absolute_paths_and_links_out() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret"), "secret").expect("write");
    std::os::unix::fs::symlink(outside.path(), s.site.path("out")).expect("symlink");
    s.site.file("inside.txt", "inside", 0o644);
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path().display();

    let o = r.batch(&s.key, "cd ..\ncd ..\npwd\nls\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Remote working directory: /\n"),
        "{}",
        text(&o)
    );
    assert!(out.contains("inside.txt"), "{}", text(&o));

    for path in [
        "/etc/passwd",
        "../../etc/passwd",
        "out/secret",
        "/../../../etc/passwd",
    ] {
        let o = r.batch(&s.key, format!("get {path} {w}/stolen\n"));
        assert!(!o.status.success(), "{path}: {}", text(&o));
        assert!(!work.path().join("stolen").exists(), "{path} leaked");
    }
    let o = r.batch(&s.key, format!("put {w}/x out/planted\n"));
    assert!(!o.status.success());
    assert!(!outside.path().join("planted").exists());

    let o = r.batch(&s.key, "ln -s /etc/passwd pw\n");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(std::fs::symlink_metadata(s.site.path("pw")).is_err());
    let o = r.batch(&s.key, "ln inside.txt hard\n");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!s.site.path("hard").exists());
}

#[test]
fn chmod_drops_setuid_and_chown_is_refused() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("x.cgi", "#!/bin/sh\n", 0o644);
    let r = s.start();
    let o = r.batch(&s.key, "chmod 4755 x.cgi\n");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&s.site.path("x.cgi")), 0o755);
    r.server.wait_for("setuid");
    let o = r.batch(&s.key, "chown 4242 x.cgi\n");
    assert!(!o.status.success(), "{}", text(&o));
    assert_ne!(
        std::fs::metadata(s.site.path("x.cgi")).expect("stat").uid(),
        4242
    );
}

#[test]
fn shift_jis_names_round_trip() {
    if !have("sftp") {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let s = SftpSite::new("");
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    // "テスト.txt" in Shift_JIS: not UTF-8.
    let name: &[u8] = b"\x83\x65\x83\x58\x83\x67.txt";
    let os = std::ffi::OsStr::from_bytes(name);
    std::fs::write(work.path().join(os), "sjis").expect("write");
    let mut batch = b"lcd ".to_vec();
    batch.extend_from_slice(work.path().as_os_str().as_bytes());
    batch.extend_from_slice(b"\nput ");
    batch.extend_from_slice(name);
    batch.extend_from_slice(b"\nls\n");
    let o = r.batch(&s.key, batch);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(s.site.htdocs().join(os)).expect("stored under the same bytes"),
        b"sjis"
    );
    // The client prints names through strvis(3): the bytes come back, escaped in octal.
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        listed.lines().any(|l| l.trim() == "\\203e\\203X\\203g.txt"),
        "listed: {}",
        text(&o)
    );
    let mut batch = b"lcd ".to_vec();
    batch.extend_from_slice(work.path().as_os_str().as_bytes());
    batch.extend_from_slice(b"\nget ");
    batch.extend_from_slice(name);
    batch.extend_from_slice(b" back.txt\nrename ");
    batch.extend_from_slice(name);
    batch.extend_from_slice(b" renamed.txt\n");
    let o = r.batch(&s.key, batch);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(work.path().join("back.txt")).expect("got"),
        b"sjis"
    );
    assert!(s.site.path("renamed.txt").exists());
}

#[test]
fn big_upload_and_download_round_trip() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let big = work.path().join("big.bin");
    let mut data = vec![0u8; 64 * 1024 * 1024];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&big, &data).expect("write");
    let started = Instant::now();
    let o = r.batch_as(
        "demo",
        Some(&s.key),
        format!(
            "put {w}/big.bin big.bin\nget big.bin {w}/back.bin\n",
            w = work.path().display()
        ),
        Duration::from_secs(240),
    );
    assert!(
        o.status.success(),
        "{} (after {:?})",
        text(&o),
        started.elapsed()
    );
    assert!(
        std::fs::read(s.site.path("big.bin")).expect("uploaded") == data,
        "upload differs"
    );
    assert!(
        std::fs::read(work.path().join("back.bin")).expect("downloaded") == data,
        "download differs"
    );
}

#[test]
fn killed_upload_leaves_the_old_file_and_no_temporary() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let target = s.site.file("bbs.cgi", "#!/bin/sh\nold\n", 0o755);
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let big = work.path().join("new.bin");
    filled(&big, b'n', 512);
    let mut child = r.spawn_put(&s.key, &big, "bbs.cgi");
    // Wait until the upload is under way (its temporary file exists), then kill the client.
    let temp = upload_temporary(&s.site.htdocs());
    let temp_url = format!("/{}", temp.file_name().expect("name").to_string_lossy());
    assert_eq!(
        r.server.get(&temp_url).status,
        403,
        "a half-written upload is never served"
    );
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(eventually(|| !temp.exists()), "temporary file left behind");
    assert_eq!(std::fs::read(&target).expect("old"), b"#!/bin/sh\nold\n");
    assert_eq!(mode(&target), 0o755);
}

#[test]
fn quota_refuses_a_write_over_the_limit_and_keeps_the_old_file() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("quota_bytes = 100000\n");
    s.site.file("keep.txt", "keep me", 0o644);
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let big = local(work.path(), "big", &vec![b'x'; 200_000]);
    let o = r.batch(&s.key, format!("put {} keep.txt\n", big.display()));
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(s.site.path("keep.txt")).expect("old"),
        b"keep me"
    );
    let small = local(work.path(), "small", b"fits");
    let o = r.batch(&s.key, format!("put {} small.txt\n", small.display()));
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_root_server_acts_with_the_site_owners_rights_only() {
    if !have("sftp") || !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let s = SftpSite::new("");
    let owner = std::fs::metadata(s.site.htdocs()).expect("stat").uid();
    if owner == 0 {
        return; // the harness could not make an ordinary owner
    }
    // Things in the site that belong to root: the owner may not read or change them.
    let secret = s.site.path("root-only.txt");
    std::fs::write(&secret, "root's").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let locked = s.site.path("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // A file of root's that the owner's supplementary group may read.
    let shared = s.site.path("group-readable.txt");
    std::fs::write(&shared, "for the group").expect("write");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let group = nix::unistd::Group::from_name(crate::support::TEST_GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    if let Some(gid) = group {
        std::os::unix::fs::chown(&shared, Some(0), Some(gid)).expect("chown");
    }
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path().display();
    if group.is_some() {
        let o = r.batch(&s.key, format!("get group-readable.txt {w}/shared\n"));
        assert!(o.status.success(), "the owner's groups count: {}", text(&o));
    }
    let o = r.batch(&s.key, format!("get root-only.txt {w}/got\n"));
    assert!(!o.status.success(), "{}", text(&o));
    let o = r.batch(&s.key, "chmod 644 root-only.txt\n");
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(mode(&secret), 0o600);
    let f = local(work.path(), "f", b"x");
    let o = r.batch(&s.key, format!("put {} locked/f\n", f.display()));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!locked.join("f").exists());
    // What the owner does create is theirs.
    let o = r.batch(&s.key, format!("put {} mine\nmkdir d\n", f.display()));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::metadata(s.site.path("mine")).expect("stat").uid(),
        owner
    );
    assert_eq!(
        std::fs::metadata(s.site.path("d")).expect("stat").uid(),
        owner
    );
}

#[test]
fn a_256_mib_reupload_is_atomic_for_http_readers_and_downloads_back() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("data.bin", vec![b'o'; 1024 * 1024], 0o644);
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let new = work.path().join("new.bin");
    filled(&new, b'n', 256);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = r.server.url("/data.bin");
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let (mut old, mut new) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let resp = ureq::get(&url).call().expect("GET");
                let mut body = Vec::new();
                resp.into_reader().read_to_end(&mut body).expect("body");
                let all = |b: u8| body.iter().all(|&x| x == b);
                if body.len() == 1024 * 1024 && all(b'o') {
                    old += 1;
                } else if body.len() == 256 * 1024 * 1024 && all(b'n') {
                    new += 1;
                } else {
                    panic!("a partial file was served: {} bytes", body.len());
                }
            }
            (old, new)
        })
    };
    let o = r.batch_as(
        "demo",
        Some(&s.key),
        format!(
            "put {w}/new.bin data.bin\nget data.bin {w}/back.bin\n",
            w = work.path().display()
        ),
        Duration::from_secs(400),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (old, new_seen) = reader.join().expect("the HTTP reader saw only whole files");
    assert!(o.status.success(), "{}", text(&o));
    assert!(old > 0, "the reader ran during the upload");
    let _ = new_seen;
    let back = std::fs::read(work.path().join("back.bin")).expect("downloaded");
    assert_eq!(back.len(), 256 * 1024 * 1024);
    assert!(back.iter().all(|&b| b == b'n'), "download differs");
}

#[test]
fn lftp_mirror_reverse_with_a_password() {
    if !have("lftp") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start_with_password("demo", "mirror pw");
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("site");
    std::fs::create_dir_all(src.join("cgi-bin")).expect("mkdir");
    std::fs::write(src.join("index.html"), "<h1>mirrored</h1>").expect("write");
    std::fs::write(src.join("cgi-bin/bbs.cgi"), "#!/bin/sh\n").expect("write");
    let script = format!(
        "set sftp:auto-confirm yes; set net:max-retries 1; set net:timeout 20; \
         set sftp:connect-program 'ssh -a -x -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'; \
         open -u demo,'mirror pw' -p {} sftp://{}; mirror -R {} /; bye",
        r.addr.port(),
        r.addr.ip(),
        src.display()
    );
    let o = Command::new("timeout")
        .args(["120", "lftp", "-c", &script])
        .output()
        .expect("lftp");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(s.site.path("index.html")).expect("mirrored"),
        "<h1>mirrored</h1>"
    );
    assert!(s.site.path("cgi-bin/bbs.cgi").exists());
    assert_eq!(r.server.get("/index.html").text(), "<h1>mirrored</h1>");
}

/// Starts `put` of a `mib` MiB file over `bbs.cgi` (0755, old content) with the stock client,
/// waits until its temporary appears, sends SIGTERM and checks that the server exits 0. Returns
/// the site, the target, the still running client and the directory of the uploaded file.
fn sigterm_during_upload(
    grace_secs: u64,
    mib: usize,
) -> (
    SftpSite,
    std::path::PathBuf,
    std::process::Child,
    tempfile::TempDir,
) {
    let s = SftpSite::new(&format!("[limits]\nshutdown_grace_secs = {grace_secs}\n"));
    let target = s.site.file("bbs.cgi", "#!/bin/sh\nold\n", 0o755);
    let mut r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let big = work.path().join("new.bin");
    filled(&big, b'n', mib);
    let child = r.spawn_put(&s.key, &big, "bbs.cgi");
    upload_temporary(&s.site.htdocs());
    r.server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(r.server.wait_exit(), Some(0));
    (s, target, child, work)
}

#[test]
fn stopping_the_server_mid_upload_keeps_the_old_file_and_leaves_no_temporary() {
    if !have("sftp") {
        return;
    }
    let (s, target, mut child, _work) = sigterm_during_upload(0, 1024);
    let _ = child.kill();
    let _ = child.wait();
    let left: Vec<_> = std::fs::read_dir(s.site.htdocs())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("bbs.cgi")], "{left:?}");
    assert_eq!(std::fs::read(&target).expect("old"), b"#!/bin/sh\nold\n");
    assert_eq!(mode(&target), 0o755);
}

#[test]
fn stopping_the_server_lets_a_running_upload_finish_within_the_grace_period() {
    if !have("sftp") {
        return;
    }
    let (_s, target, mut child, _work) = sigterm_during_upload(60, 128);
    let _ = child.wait();
    let meta = std::fs::metadata(&target).expect("stat");
    assert_eq!(meta.len(), 128 * 1024 * 1024, "the upload finished");
    assert_eq!(mode(&target), 0o755);
}
