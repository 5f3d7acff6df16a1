//! Real CGI software, unchanged: Perl CGI.pm, Python, php-cgi through a handler, and
//! `git-http-backend` serving `git clone` and accepting `git push`.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::{Site, have};

#[test]
fn perl_cgi_pm_multipart_upload() {
    if !have("perl")
        || !Command::new("perl")
            .args(["-MCGI", "-e", "1"])
            .status()
            .is_ok_and(|s| s.success())
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CGI.pm is required under CI=true"
        );
        eprintln!("skipping: CGI.pm is not installed");
        return;
    }
    let site = Site::new();
    site.file(
        "cgi-bin/upload.cgi",
        r#"#!/usr/bin/perl
use strict;
use warnings;
use CGI;
use Digest::SHA qw(sha256_hex);
my $q = CGI->new;
my $fh = $q->upload('file') or die "no file";
binmode $fh;
local $/;
my $data = <$fh>;
print $q->header(-type => 'text/plain', -charset => 'utf-8');
print "name=", scalar $q->param('name'), "\n";
print "filename=", scalar $q->param('file'), "\n";
print "size=", length($data), "\n";
print "sha256=", sha256_hex($data), "\n";
"#,
        0o755,
    );
    let server = site.start();
    let file: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let boundary = "----yadokari-boundary-1234";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nhermit crab\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"shell.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let r = server.send(
        "POST",
        "/cgi-bin/upload.cgi",
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let digest: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.text(),
        format!("name=hermit crab\nfilename=shell.bin\nsize=300000\nsha256={digest}\n")
    );
}

#[test]
fn python_script() {
    if !have("/usr/bin/python3") {
        return;
    }
    let site = Site::new();
    site.file(
        "cgi-bin/py.cgi",
        "#!/usr/bin/python3\nimport os, sys\nsys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n')\nsys.stdout.write('python says ' + os.environ['QUERY_STRING'] + '\\n')\n",
        0o755,
    );
    let server = site.start();
    let r = server.get("/cgi-bin/py.cgi?hello");
    assert_eq!((r.status, r.text().as_str()), (200, "python says hello\n"));
}

#[test]
fn php_cgi_through_a_handler() {
    if !have("/usr/bin/php-cgi") {
        return;
    }
    let site = Site::new().config("[cgi]\nhandlers = { \".php\" = \"/usr/bin/php-cgi\" }");
    // A handler file needs no execute bit.
    site.file(
        "info.php",
        "<?php header('X-Php: yes'); echo 'php ', $_GET['n'] * 2, ' ', $_SERVER['SCRIPT_NAME'], \"\\n\";",
        0o644,
    );
    site.file("bad.php", "<?php echo 1;", 0o664);
    let server = site.start();
    let r = server.get("/info.php?n=21");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-php"), Some("yes"));
    assert_eq!(r.text(), "php 42 /info.php\n");
    let r = server.get("/bad.php");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("the group can write it"), "{}", r.text());
}

#[test]
fn git_http_backend_clone_and_push() {
    let backend = "/usr/lib/git-core/git-http-backend";
    if !have("git") || !have(backend) {
        return;
    }
    let site = Site::new();
    let repos = site.dir.path().join("repos");
    std::fs::create_dir(&repos).expect("mkdir");
    let bare = repos.join("shell.git");
    let git = |dir: &std::path::Path, args: &[&str]| {
        let out = Command::new("git")
            .current_dir(dir)
            .args(["-c", "safe.directory=*"])
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.test")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.test")
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&repos, &["init", "-q", "--bare", "-b", "main", "shell.git"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let seed = site.dir.path().join("seed");
    std::fs::create_dir(&seed).expect("mkdir");
    git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("README"), "hello\n").expect("write");
    git(&seed, &["add", "README"]);
    git(&seed, &["commit", "-q", "-m", "first"]);
    git(
        &seed,
        &["push", "-q", bare.to_str().expect("utf-8"), "main"],
    );
    // The repository belongs to the site's user, who runs the backend.
    if let Some((uid, gid)) = site.owner {
        let status = Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(&repos)
            .status()
            .expect("chown");
        assert!(status.success());
    }
    site.file(
        "cgi-bin/git.cgi",
        format!(
            "#!/bin/sh\nexport GIT_PROJECT_ROOT={}\nexport GIT_HTTP_EXPORT_ALL=1\nexec {backend}\n",
            repos.display()
        ),
        0o755,
    );
    let server = site.start();
    let url = server.url("/cgi-bin/git.cgi/shell.git");

    let work = site.dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    git(&work, &["clone", "-q", &url, "clone"]);
    let clone = work.join("clone");
    assert_eq!(
        std::fs::read_to_string(clone.join("README")).expect("README"),
        "hello\n"
    );

    std::fs::write(clone.join("NEWS"), "pushed over CGI\n").expect("write");
    git(&clone, &["add", "NEWS"]);
    git(&clone, &["commit", "-q", "-m", "second"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(log, "second\nfirst\n");
}
