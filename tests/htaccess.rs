//! `.htaccess` directives as a customer writes them, through the real binary: mod_alias
//! redirects, `ErrorDocument`, `DirectoryIndex`, `AddHandler cgi-script` under the permission
//! gate, `Options -ExecCGI`, `Header`, `<FilesMatch>` denials, and `php_value` lines skipped
//! with a warning.

use crate::support::{Site, have};

const HELLO: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho hello from a script\n";

#[test]
fn htaccess_redirects_answer_with_their_status_and_target() {
    let site = Site::new();
    site.file(
        ".htaccess",
        "Redirect /old.html /new.html\n\
         Redirect permanent /moved https://example.com/elsewhere\n\
         Redirect 410 /gone.html\n\
         Redirect gone /retired\n\
         RedirectPermanent /perm /p2\n\
         RedirectTemp /temp /t2\n\
         RedirectMatch 301 ^/archives/(\\d+)$ /posts/$1\n\
         RedirectMatch ^/tmp/.*\\.txt$ http://example.com/texts/\n\
         Redirect 303 /see /other\n",
        0o644,
    );
    site.file("new.html", "new\n", 0o644);
    let server = site.start();
    let location = |path: &str| {
        let r = server.get(path);
        (r.status, r.header("location").map(str::to_string))
    };
    let local = |status: u16, path: &str| (status, Some(server.url(path)));
    let (status, at) = location("/old.html");
    assert_eq!(status, 302);
    let at = at.expect("Location");
    assert!(at == "/new.html" || at == server.url("/new.html"), "{at}");
    assert_eq!(
        location("/moved"),
        (301, Some("https://example.com/elsewhere".into()))
    );
    // mod_alias keeps what follows the matched prefix, and the query string.
    assert_eq!(
        location("/moved/a/b.html?x=1"),
        (
            301,
            Some("https://example.com/elsewhere/a/b.html?x=1".into())
        )
    );
    // Only whole segments match: /movedaway is not under /moved.
    assert_eq!(server.get("/movedaway").status, 404);
    assert_eq!(server.get("/gone.html").status, 410);
    assert_eq!(server.get("/retired/x").status, 410);
    let perm = location("/perm");
    assert!(
        perm == (301, Some("/p2".into())) || perm == local(301, "/p2"),
        "{perm:?}"
    );
    let temp = location("/temp");
    assert!(
        temp == (302, Some("/t2".into())) || temp == local(302, "/t2"),
        "{temp:?}"
    );
    let m = location("/archives/42");
    assert!(
        m == (301, Some("/posts/42".into())) || m == local(301, "/posts/42"),
        "{m:?}"
    );
    assert_eq!(server.get("/archives/x").status, 404);
    assert_eq!(
        location("/tmp/notes.txt"),
        (302, Some("http://example.com/texts/".into()))
    );
    assert_eq!(location("/see").0, 303);
    assert_eq!(server.get("/new.html").text(), "new\n");
}

#[test]
fn htaccess_error_documents_keep_the_status() {
    let site = Site::new();
    site.file(
        ".htaccess",
        "ErrorDocument 404 /404.html\nErrorDocument 403 \"Not for your eyes\"\n",
        0o644,
    );
    site.file("404.html", "<h1>Our own not-found page</h1>\n", 0o644);
    site.file("private.txt", "secret\n", 0o600);
    site.file(
        "sub/.htaccess",
        "Require all denied\nHeader always set X-Refused-By sub\n",
        0o644,
    );
    site.file("sub/x.html", "x\n", 0o644);
    site.file(
        "docs/.htaccess",
        "ErrorDocument 404 /docs/missing.html\n",
        0o644,
    );
    site.file("docs/missing.html", "docs: no such page\n", 0o644);
    let server = site.start();

    let r = server.get("/no/such/page.html");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "<h1>Our own not-found page</h1>\n");
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    // The page itself, asked for, is a 200.
    assert_eq!(server.get("/404.html").status, 200);
    // A deeper file's ErrorDocument overrides.
    let r = server.get("/docs/nothing");
    assert_eq!((r.status, r.text()), (404, "docs: no such page\n".into()));

    // 403 from the gate (mode 0600) and from a Require: the customer's text.
    let r = server.get("/private.txt");
    assert_eq!((r.status, r.text()), (403, "Not for your eyes".into()));
    let r = server.get("/sub/x.html");
    assert_eq!((r.status, r.text()), (403, "Not for your eyes".into()));
    assert_eq!(r.header("x-refused-by"), Some("sub"));
}

#[test]
fn htaccess_directory_index_runs_php() {
    if !have("/usr/bin/php-cgi") {
        return;
    }
    let site = Site::new().config("[cgi]\nhandlers = { \".php\" = \"/usr/bin/php-cgi\" }");
    site.file("app/.htaccess", "DirectoryIndex index.php\n", 0o644);
    site.file(
        "app/index.php",
        "<?php echo 'php index at ', $_SERVER['SCRIPT_NAME'], ' for ', $_SERVER['REQUEST_URI'], \"\\n\";",
        0o644,
    );
    site.file("app/index.html", "the html index\n", 0o644);
    site.file("other/index.html", "plain\n", 0o644);
    site.file("other/index.php", "<?php echo 'no';", 0o644);
    let server = site.start();
    let r = server.get("/app/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "php index at /app/index.php for /app/\n");
    let r = server.get("/app/?q=1");
    assert_eq!(r.text(), "php index at /app/index.php for /app/?q=1\n");
    // Where no .htaccess says so, the server's index list stands.
    assert_eq!(server.get("/other/").text(), "plain\n");
    assert_eq!(server.get("/app").status, 301);
}

#[test]
fn htaccess_add_handler_goes_through_the_gate() {
    let site = Site::new();
    site.file("perl/.htaccess", "AddHandler cgi-script .pl\n", 0o644);
    site.file("perl/run.pl", HELLO, 0o755);
    site.file("perl/plain.pl", HELLO, 0o644);
    site.file("perl/open.pl", HELLO, 0o777);
    site.file("elsewhere/run.pl", HELLO, 0o755);
    let server = site.start();
    let r = server.get("/perl/run.pl");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from a script\n");
    let r = server.get("/perl/plain.pl");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("chmod 755"), "{}", r.text());
    assert!(!r.text().contains("hello from a script"));
    let r = server.get("/perl/open.pl");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("writ"), "{}", r.text());
    // Without the AddHandler, a .pl is a file like any other (as on Apache).
    let r = server.get("/elsewhere/run.pl");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO);
}

#[test]
fn htaccess_options_no_exec_cgi_stops_scripts() {
    let site = Site::new();
    site.file("uploads/.htaccess", "Options -ExecCGI\n", 0o644);
    site.file("uploads/evil.cgi", HELLO, 0o755);
    site.file("uploads/cgi-bin-like/deeper.cgi", HELLO, 0o755);
    site.file("uploads/photo.txt", "a photo\n", 0o644);
    site.file("ok.cgi", HELLO, 0o755);
    let server = site.start();
    for path in ["/uploads/evil.cgi", "/uploads/cgi-bin-like/deeper.cgi"] {
        let r = server.get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("ExecCGI"), "{path}: {}", r.text());
        assert!(!r.text().contains("hello from a script"));
    }
    assert_eq!(server.get("/uploads/photo.txt").text(), "a photo\n");
    assert_eq!(server.get("/ok.cgi").text(), "hello from a script\n");
    // The error log names it too (waited for: the log line may follow the response).
    server.wait_for("ExecCGI");
}

#[test]
fn htaccess_header_set_and_always() {
    let site = Site::new();
    site.file(
        ".htaccess",
        "Header set X-Foo bar\nHeader always set X-Always \"on errors too\"\nHeader append Cache-Control no-transform\n",
        0o644,
    );
    site.file("page.html", "page\n", 0o644);
    site.file("hello.cgi", HELLO, 0o755);
    let server = site.start();
    let r = server.get("/page.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-foo"), Some("bar"));
    assert_eq!(r.header("x-always"), Some("on errors too"));
    let r = server.get("/hello.cgi");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-foo"), Some("bar"));
    let r = server.get("/missing.html");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-always"), Some("on errors too"));
    assert_eq!(
        r.header("x-foo"),
        None,
        "plain `Header set` is for successes"
    );
}

#[test]
fn htaccess_php_value_is_skipped_with_a_warning() {
    let site = Site::new();
    site.file(
        ".htaccess",
        "php_value upload_max_filesize 64M\nphp_flag display_errors off\nHeader set X-Read yes\n",
        0o644,
    );
    site.file("page.html", "page\n", 0o644);
    let server = site.start();
    let r = server.get("/page.html");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-read"), Some("yes"));
    let line = server.wait_for("upload_max_filesize");
    assert!(line.contains(".user.ini"), "{line}");
    assert!(line.contains(".htaccess"), "{line}");
    server.wait_for("display_errors");
}

#[test]
fn htaccess_files_match_denies_backups_and_dumps() {
    let site = Site::new();
    site.file(
        ".htaccess",
        "<FilesMatch \"\\.(bak|sql)$\">\n    Require all denied\n</FilesMatch>\n",
        0o644,
    );
    site.file("config.php.bak", "password=hunter2\n", 0o644);
    site.file("db/dump.sql", "INSERT INTO users\n", 0o644);
    site.file("db/readme.txt", "readme\n", 0o644);
    site.file("sql.html", "about sql\n", 0o644);
    let server = site.start();
    for path in ["/config.php.bak", "/db/dump.sql"] {
        let r = server.get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(!r.text().contains("hunter2") && !r.text().contains("INSERT"));
    }
    assert_eq!(server.get("/db/readme.txt").text(), "readme\n");
    assert_eq!(server.get("/sql.html").text(), "about sql\n");
}

#[test]
fn htaccess_access_by_address_and_satisfy_any() {
    let site = Site::new();
    let cases = [
        ("local", "Require ip 127.0.0.1\n", 200),
        ("local-net", "Require ip 127.0.0.0/8 ::1\n", 200),
        ("elsewhere", "Require ip 10.0.0.0/8 192.168.1.1\n", 403),
        // Apache refuses a lone negative Require (it would let everyone else in): 500.
        (
            "not-local",
            "Require all granted\nRequire not ip 127.0.0.1\n",
            500,
        ),
        (
            "all-not-local",
            "<RequireAll>\nRequire all granted\nRequire not ip 127.0.0.1\n</RequireAll>\n",
            403,
        ),
        (
            "compat",
            "Order deny,allow\nDeny from all\nAllow from 127.0.0.1\n",
            200,
        ),
        (
            "compat-other",
            "Order allow,deny\nAllow from 10.1.2.3\n",
            403,
        ),
        // Local visitors need no password; others would (Apache 2.2's classic form).
        (
            "satisfy",
            "AuthType Basic\nAuthName x\nAuthUserFile .htpasswd\nRequire valid-user\nOrder deny,allow\nDeny from all\nAllow from 127.0.0.1\nSatisfy Any\n",
            200,
        ),
        (
            "satisfy-all",
            "AuthType Basic\nAuthName x\nAuthUserFile .htpasswd\nRequire valid-user\nOrder deny,allow\nDeny from all\nAllow from 127.0.0.1\nSatisfy All\n",
            401,
        ),
        ("limit", "<Limit POST>\nRequire all denied\n</Limit>\n", 200),
        (
            "limit-except",
            "<LimitExcept POST>\nRequire all denied\n</LimitExcept>\n",
            403,
        ),
    ];
    site.file(
        ".htpasswd",
        "alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n",
        0o644,
    );
    for (dir, rules, _) in cases {
        site.file(&format!("{dir}/.htaccess"), rules, 0o644);
        site.file(&format!("{dir}/page.html"), "page\n", 0o644);
    }
    let server = site.start();
    for (dir, rules, status) in cases {
        let r = server.get(&format!("/{dir}/page.html"));
        assert_eq!(r.status, status, "{dir}: {rules}\n{}", r.text());
    }
    let r = server.send("POST", "/limit/page.html", &[], b"x");
    assert_eq!(r.status, 403, "{}", r.text());
}

/// Ways around a denial a client might try: other spellings of the path, extra path after a
/// script (`<Files>` names the script, not what follows it), a directory's index.
#[test]
fn htaccess_denials_cannot_be_walked_around() {
    let site = Site::new();
    site.file("data/.htaccess", "Require all denied\n", 0o644);
    site.file("data/entries.txt", "secret entries\n", 0o644);
    site.file(
        ".htaccess",
        "<Files \"admin.cgi\">\nRequire all denied\n</Files>\n<Files \"index.html\">\nRequire all denied\n</Files>\n",
        0o644,
    );
    site.file("admin.cgi", HELLO, 0o755);
    site.file("public.cgi", HELLO, 0o755);
    site.file("closed/index.html", "closed index\n", 0o644);
    let server = site.start();
    for path in [
        "/data/entries.txt",
        "//data/entries.txt",
        "/./data/entries.txt",
        "/x/../data/entries.txt",
        "/dat%61/entries.txt",
        "/%64ata/%65ntries.txt",
        "/data//entries.txt",
        "/data/./entries.txt",
        "/admin.cgi",
        "/admin.cgi/extra/path",
        "/admin.cgi/",
        "/closed/",
        "/closed/index.html",
    ] {
        let raw = server
            .raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let status = crate::support::raw_status(&raw);
        let text = String::from_utf8_lossy(&raw);
        assert!(
            status == 403 || status == 404 || status == 400,
            "{path}: {status}\n{text}"
        );
        assert!(!text.contains("secret entries"), "{path}: {text}");
        assert!(!text.contains("hello from a script"), "{path}: {text}");
        assert!(!text.contains("closed index"), "{path}: {text}");
    }
    assert_eq!(
        server.get("/public.cgi/extra").text(),
        "hello from a script\n"
    );
}

/// The rewrite forms hosts' FAQs hand out: canonical host, force HTTPS, forbidden and gone
/// URLs; and a loop that is cut off with an explanation instead of spinning.
#[test]
fn htaccess_common_rewrite_recipes() {
    let site = Site::new();
    site.file(
        ".htaccess",
        "RewriteEngine On\n\
         RewriteCond %{HTTP_HOST} ^www\\.(.+)$ [NC]\n\
         RewriteRule ^(.*)$ http://%1/$1 [R=301,L]\n\
         RewriteRule ^secret/ - [F]\n\
         RewriteRule ^old-shop/ - [G]\n\
         RewriteRule ^loop/(.*)$ /loop/x$1\n\
         RewriteCond %{QUERY_STRING} (^|&)id=(\\d+)\n\
         RewriteRule ^item\\.php$ /items/%2.html? [R=302,L]\n",
        0o644,
    );
    site.file("secure/.htaccess", "RewriteEngine On\nRewriteCond %{HTTPS} off\nRewriteRule ^(.*)$ https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]\n", 0o644);
    site.file("secret/x.html", "x\n", 0o644);
    site.file("page.html", "page\n", 0o644);
    let server = site.start();
    let get = |host: &str, path: &str| {
        let raw = server.raw(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        String::from_utf8_lossy(&raw).into_owned()
    };
    let r = get("www.example.com", "/page.html?a=1");
    assert!(r.starts_with("HTTP/1.1 301"), "{r}");
    assert!(
        r.contains("location: http://example.com/page.html?a=1\r\n"),
        "{r}"
    );
    let r = get("example.com", "/page.html");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(get("example.com", "/secret/x.html").starts_with("HTTP/1.1 403"));
    assert!(get("example.com", "/old-shop/cart").starts_with("HTTP/1.1 410"));
    let r = get("example.com", "/loop/a");
    assert!(r.starts_with("HTTP/1.1 500"), "{r}");
    let r = get("example.com", "/item.php?id=42&x=y");
    assert!(r.starts_with("HTTP/1.1 302"), "{r}");
    assert!(
        r.contains("location: http://example.com/items/42.html\r\n"),
        "{r}"
    );
    let r = get("example.com", "/secure/login?next=/");
    assert!(r.starts_with("HTTP/1.1 301"), "{r}");
    assert!(
        r.contains("location: https://example.com/secure/login?next=/\r\n"),
        "{r}"
    );
    // HEAD through the same rules.
    let r = server
        .raw(b"HEAD /page.html HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&r).starts_with("HTTP/1.1 301"));
}

#[test]
fn htaccess_types_handlers_and_expiry() {
    let site = Site::new();
    site.file(
        ".htaccess",
        "AddType application/x-yadokari-test .ydk\n\
         AddDefaultCharset UTF-8\n\
         ExpiresActive On\n\
         ExpiresByType text/css \"access plus 1 day\"\n",
        0o644,
    );
    site.file("a.ydk", "ydk\n", 0o644);
    site.file("page.html", "page\n", 0o644);
    site.file("style.css", "b {}\n", 0o644);
    site.file("raw/.htaccess", "ForceType text/plain\n", 0o644);
    site.file("raw/page.html", "<b>shown as text</b>\n", 0o644);
    site.file("run/.htaccess", "SetHandler cgi-script\n", 0o644);
    site.file("run/anything", HELLO, 0o755);
    let server = site.start();
    assert_eq!(
        server.get("/a.ydk").header("content-type"),
        Some("application/x-yadokari-test")
    );
    assert_eq!(
        server.get("/page.html").header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    let r = server.get("/style.css");
    assert_eq!(r.header("cache-control"), Some("max-age=86400"));
    assert!(r.header("expires").is_some());
    assert!(
        server
            .get("/raw/page.html")
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    assert_eq!(server.get("/run/anything").text(), "hello from a script\n");
}

/// A customer's site reached at `/~alice/`: a redirect or `[R]` to a local path stays in the
/// site (the prefix is kept), a `Redirect` may name the path as the client sends it
/// (`/~alice/was`) or as the site's own domain sees it (`/old`), and a full URL is left as it
/// was written. On the site's own domain nothing is prefixed.
#[test]
fn htaccess_redirects_in_a_user_directory_keep_the_prefix() {
    let site = Site::new()
        .config("[[users]]\nname = \"alice\"\nhome = \"alice\"\ndomains = [\"alice.example\"]");
    let home = site.dir.path().join("alice/public_html");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::write(
        home.join(".htaccess"),
        "Redirect /old /new.html\n\
         Redirect 301 /~alice/was /now.html\n\
         RedirectMatch ^/archives/(\\d+)$ /posts/$1\n\
         Redirect /away https://example.com/there\n\
         Redirect /friend /~bob/\n\
         RewriteEngine On\n\
         RewriteRule ^moved$ /target.html [R=301,L]\n\
         RewriteRule ^relative$ target.html [R,L]\n\
         RewriteRule ^spelled$ /~alice/target.html [R,L]\n",
    )
    .expect("write");
    std::fs::write(home.join("target.html"), "target\n").expect("write");
    crate::support::give_to_test_user(&site.dir.path().join("alice"));
    let server = site.start();
    let location = |path: &str, host: Option<&str>| {
        let headers: Vec<(&str, &str)> = host.map(|h| ("Host", h)).into_iter().collect();
        let r = server.request("GET", path, &headers);
        (r.status, r.header("location").unwrap_or("").to_string())
    };
    let at = |path: &str| server.url(path);
    assert_eq!(location("/~alice/old", None), (302, at("/~alice/new.html")));
    assert_eq!(
        location("/~alice/old/page?x=1", None),
        (302, at("/~alice/new.html/page?x=1"))
    );
    assert_eq!(location("/~alice/was", None), (301, at("/~alice/now.html")));
    assert_eq!(
        location("/~alice/archives/7", None),
        (302, at("/~alice/posts/7"))
    );
    assert_eq!(
        location("/~alice/away", None),
        (302, "https://example.com/there".to_string())
    );
    // Another user's directory is named as it is.
    assert_eq!(location("/~alice/friend", None), (302, at("/~bob/")));
    assert_eq!(
        location("/~alice/moved", None),
        (301, at("/~alice/target.html"))
    );
    assert_eq!(
        location("/~alice/relative", None),
        (302, at("/~alice/target.html"))
    );
    // Written with the prefix already: not prefixed twice.
    assert_eq!(
        location("/~alice/spelled", None),
        (302, at("/~alice/target.html"))
    );
    assert_eq!(server.get("/~alice/target.html").text(), "target\n");
    // The default site has no such rules.
    assert_eq!(server.get("/old").status, 404);
    // On the site's own domain: the paths as written.
    assert_eq!(
        location("/old", Some("alice.example")),
        (302, "http://alice.example/new.html".to_string())
    );
    assert_eq!(
        location("/moved", Some("alice.example")),
        (301, "http://alice.example/target.html".to_string())
    );
}
