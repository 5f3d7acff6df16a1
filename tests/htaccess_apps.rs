//! Real software's `.htaccess` files, unchanged: WordPress's stock rewrite block in front of a
//! PHP front controller under php-cgi (at the site's root and in a subdirectory), cgit's
//! pretty URLs with Debian's `cgit.cgi`, and a Perl CGI app whose data folder is closed to
//! the web by `Deny from all` / `Require all denied` while the app still reads it.

use std::path::Path;
use std::process::Command;

use crate::support::{Site, give_to_test_user, have};

/// WordPress's block, as WordPress 5.x and later write it (`# BEGIN WordPress`).
const WORDPRESS: &str = r#"# BEGIN WordPress
# The directives (lines) between "BEGIN WordPress" and "END WordPress" are
# dynamically generated, and should only be modified via WordPress filters.
# Any changes to the directives between these markers will be overwritten.
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]
RewriteBase /
RewriteRule ^index\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>

# END WordPress
"#;

/// A front controller: what WordPress's `index.php` reads to route a request.
const FRONT: &str = r#"<?php
header('Content-Type: text/plain');
header('X-Front: index.php');
echo "front controller\n";
echo "REQUEST_URI=", $_SERVER['REQUEST_URI'], "\n";
echo "SCRIPT_NAME=", $_SERVER['SCRIPT_NAME'], "\n";
echo "QUERY_STRING=", $_SERVER['QUERY_STRING'], "\n";
echo "replytocom=", isset($_GET['replytocom']) ? $_GET['replytocom'] : '', "\n";
"#;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn php_site() -> Site {
    Site::new().config("[cgi]\nhandlers = { \".php\" = \"/usr/bin/php-cgi\" }")
}

/// A WordPress in `dir` ("" for the site's root) with its theme's stylesheet and an upload.
fn wordpress(site: &Site, dir: &str, htaccess: &str) {
    site.file(&format!("{dir}index.php"), FRONT, 0o644);
    site.file(&format!("{dir}.htaccess"), htaccess, 0o644);
    site.file(
        &format!("{dir}wp-content/themes/twentyten/style.css"),
        "body { color: #333 }\n",
        0o644,
    );
    site.file(
        &format!("{dir}wp-content/uploads/2024/01/pixel.png"),
        PNG,
        0o644,
    );
}

#[test]
fn htaccess_wordpress_pretty_urls_reach_the_front_controller() {
    if !have("/usr/bin/php-cgi") {
        return;
    }
    let site = php_site();
    wordpress(&site, "", WORDPRESS);
    let server = site.start();

    for (path, query) in [
        ("/2024/01/hello-world/", ""),
        ("/2024/01/hello-world/?replytocom=5", "replytocom=5"),
        ("/category/news/", ""),
        ("/wp-content/uploads/missing.png", ""),
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("x-front"), Some("index.php"), "{path}");
        let body = r.text();
        assert!(body.contains(&format!("REQUEST_URI={path}\n")), "{body}");
        assert!(body.contains("SCRIPT_NAME=/index.php\n"), "{body}");
        assert!(body.contains(&format!("QUERY_STRING={query}\n")), "{body}");
    }
    assert!(
        server
            .get("/2024/01/hello-world/?replytocom=5")
            .text()
            .contains("replytocom=5\n")
    );

    // Existing files are served as they are, not through PHP.
    let r = server.get("/wp-content/themes/twentyten/style.css");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "body { color: #333 }\n");
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/css")
    );
    assert_eq!(r.header("x-front"), None);
    let r = server.get("/wp-content/uploads/2024/01/pixel.png");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PNG);
    assert_eq!(r.header("content-type"), Some("image/png"));
    // index.php itself, asked for by name.
    let r = server.get("/index.php?p=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("REQUEST_URI=/index.php?p=1\n"),
        "{}",
        r.text()
    );
    // The .htaccess itself stays private.
    assert_eq!(server.get("/.htaccess").status, 403);
}

#[test]
fn htaccess_wordpress_in_a_subdirectory() {
    if !have("/usr/bin/php-cgi") {
        return;
    }
    let site = php_site();
    let blog = WORDPRESS
        .replace("RewriteBase /", "RewriteBase /blog/")
        .replace("RewriteRule . /index.php", "RewriteRule . /blog/index.php");
    wordpress(&site, "blog/", &blog);
    site.file("index.html", "the host's own page\n", 0o644);
    let server = site.start();

    let r = server.get("/blog/2024/01/hello-world/?replytocom=7");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert!(
        body.contains("REQUEST_URI=/blog/2024/01/hello-world/?replytocom=7\n"),
        "{body}"
    );
    assert!(body.contains("SCRIPT_NAME=/blog/index.php\n"), "{body}");
    assert!(body.contains("replytocom=7\n"), "{body}");
    let r = server.get("/blog/wp-content/themes/twentyten/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body { color: #333 }\n");
    // Outside the blog, its rules do not apply.
    assert_eq!(server.get("/").text(), "the host's own page\n");
    assert_eq!(server.get("/2024/01/hello-world/").status, 404);
}

/// cgit's pretty URLs as its documentation and the distributions write them for Apache.
const CGIT_RULES: &str = "DirectoryIndex cgit.cgi\n\
RewriteEngine on\n\
RewriteCond %{REQUEST_FILENAME} !-f\n\
RewriteCond %{REQUEST_FILENAME} !-d\n\
RewriteRule (.*) /cgit.cgi/$1 [END,QSA]\n";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn htaccess_cgit_pretty_urls() {
    if !have("/usr/lib/cgit/cgit.cgi") || !have("git") {
        return;
    }
    let site = Site::new();
    // A small repository, outside the web root, owned like the site (the script runs as its
    // owner, and git refuses repositories of other users).
    let work = site.dir.path().join("repos/hello");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("README"), "hello from the test repository\n").expect("write");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "README"]);
    git(
        &work,
        &["commit", "-q", "-m", "A first commit for cgit to show"],
    );
    give_to_test_user(&site.dir.path().join("repos"));

    let cgitrc = site.dir.path().join("cgitrc");
    std::fs::write(
        &cgitrc,
        format!(
            "css=/cgit.css\nlogo=/cgit.png\nvirtual-root=/\ncache-size=0\nroot-title=Test repositories\n\
             repo.url=hello\nrepo.path={}/.git\nrepo.desc=the test repository\n",
            work.display()
        ),
    )
    .expect("cgitrc");
    let cgi = std::fs::read("/usr/lib/cgit/cgit.cgi").expect("read cgit.cgi");
    site.file("cgit.cgi", cgi, 0o755);
    let css = std::fs::read("/usr/share/cgit/cgit.css").expect("read cgit.css");
    site.file("cgit.css", &css, 0o644);
    site.file(
        ".htaccess",
        format!("SetEnv CGIT_CONFIG {}\n{CGIT_RULES}", cgitrc.display()),
        0o644,
    );
    let server = site.start();

    let r = server.get("/");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    // The SetEnv reached cgit: it read our cgitrc (its title and repository).
    assert!(body.contains("Test repositories"), "{body}");
    assert!(body.contains("the test repository"), "{body}");
    assert!(body.contains("href='/hello/'"), "{body}");

    let r = server.get("/hello/log/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("A first commit for cgit to show"),
        "{}",
        r.text()
    );
    let r = server.get("/hello/tree/README");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("hello from the test repository"),
        "{}",
        r.text()
    );
    // A query string is kept (QSA).
    let r = server.get("/hello/log/?showmsg=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("A first commit for cgit to show"));

    let r = server.get("/cgit.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, css);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/css")
    );
}

/// A Perl guestbook reading its entries from `data/`.
const BBS: &str = r#"#!/usr/bin/perl
use strict;
use warnings;
print "Content-Type: text/plain\n\n";
open(my $fh, '<', 'data/entries.txt') or die "cannot open data/entries.txt: $!";
print "entries:\n";
print while <$fh>;
"#;

#[test]
fn htaccess_closes_a_perl_apps_data_folder() {
    if !have("perl") {
        return;
    }
    for closing in [
        "Deny from all\n",
        "Order deny,allow\nDeny from all\n",
        "Require all denied\n",
    ] {
        let site = Site::new();
        site.file("bbs/bbs.cgi", BBS, 0o755);
        site.file("bbs/data/entries.txt", "alice: hello\nbob: hi\n", 0o644);
        site.file("bbs/data/.htaccess", closing, 0o644);
        let server = site.start();
        for path in ["/bbs/data/entries.txt", "/bbs/data/", "/bbs/data/.htaccess"] {
            let r = server.get(path);
            assert_eq!(r.status, 403, "{closing:?} {path}: {}", r.text());
            assert!(!r.text().contains("alice: hello"), "{closing:?}");
        }
        let r = server.get("/bbs/bbs.cgi");
        assert_eq!(r.status, 200, "{closing:?}: {}", r.text());
        assert_eq!(r.text(), "entries:\nalice: hello\nbob: hi\n");
    }
}

/// Laravel's `public/.htaccess`, as `laravel new` writes it.
const LARAVEL: &str = r#"<IfModule mod_rewrite.c>
    <IfModule mod_negotiation.c>
        Options -MultiViews -Indexes
    </IfModule>

    RewriteEngine On

    # Handle Authorization Header
    RewriteCond %{HTTP:Authorization} .
    RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]

    # Redirect Trailing Slashes If Not A Folder...
    RewriteCond %{REQUEST_FILENAME} !-d
    RewriteCond %{REQUEST_URI} (.+)/$
    RewriteRule ^ %1 [L,R=301]

    # Send Requests To Front Controller...
    RewriteCond %{REQUEST_FILENAME} !-d
    RewriteCond %{REQUEST_FILENAME} !-f
    RewriteRule ^ index.php [L]
</IfModule>
"#;

#[test]
fn htaccess_laravel_front_controller() {
    if !have("/usr/bin/php-cgi") {
        return;
    }
    let site = php_site();
    site.file("index.php", FRONT, 0o644);
    site.file(".htaccess", LARAVEL, 0o644);
    site.file("css/app.css", "main {}\n", 0o644);
    let server = site.start();
    let r = server.get("/users/5?tab=posts");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert!(body.contains("REQUEST_URI=/users/5?tab=posts\n"), "{body}");
    assert!(body.contains("QUERY_STRING=tab=posts\n"), "{body}");
    // Trailing slashes are redirected away, as Laravel wants.
    let r = server.get("/users/5/");
    assert_eq!(r.status, 301, "{}", r.text());
    let at = r.header("location").unwrap_or("");
    assert!(at == "/users/5" || at == server.url("/users/5"), "{at}");
    assert_eq!(server.get("/css/app.css").text(), "main {}\n");
    // A form posted to a pretty URL reaches the controller with its body.
    site.file(
        "index.php",
        "<?php echo $_SERVER['REQUEST_METHOD'], ' ', $_SERVER['REQUEST_URI'], ' ', file_get_contents('php://input');",
        0o644,
    );
    let r = server.send(
        "POST",
        "/comments",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"text=hello",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "POST /comments text=hello");
}

/// A customer's WordPress reached at `/~alice/`, as WordPress writes its block there.
#[test]
fn htaccess_wordpress_in_a_user_directory() {
    if !have("/usr/bin/php-cgi") {
        return;
    }
    let site = php_site()
        .config("[[users]]\nname = \"alice\"\nhome = \"alice\"\ndomains = [\"alice.example\"]");
    let home = site.dir.path().join("alice/public_html");
    std::fs::create_dir_all(&home).expect("mkdir");
    let blog = WORDPRESS
        .replace("RewriteBase /", "RewriteBase /~alice/")
        .replace(
            "RewriteRule . /index.php",
            "RewriteRule . /~alice/index.php",
        );
    std::fs::write(home.join("index.php"), FRONT).expect("write");
    std::fs::write(home.join(".htaccess"), blog).expect("write");
    std::fs::write(home.join("style.css"), "body {}\n").expect("write");
    give_to_test_user(&site.dir.path().join("alice"));
    let server = site.start();
    let r = server.get("/~alice/2024/01/hello-world/");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert!(
        body.contains("REQUEST_URI=/~alice/2024/01/hello-world/\n"),
        "{body}"
    );
    assert!(body.contains("SCRIPT_NAME=/~alice/index.php\n"), "{body}");
    assert_eq!(server.get("/~alice/style.css").text(), "body {}\n");
}
