//! Rule sets that real software ships, run as written through the loop the request path
//! runs: a pass, then the new path routed again, until nothing changes.

use super::Outcome;
use super::fake::{Fake, pass, rules};

/// What the request comes to after at most 10 passes, the fake following each rewrite; the
/// environment set on the way.
fn route(
    text: &str,
    dir: &str,
    fake: &mut Fake,
    path: &str,
    query: Option<&str>,
) -> (Outcome, Vec<(String, Option<String>)>) {
    let rw = rules(text);
    let (mut path, mut query) = (path.to_string(), query.map(str::to_string));
    let mut env = Vec::new();
    for _ in 0..10 {
        fake.at(&path);
        let applied = rw.apply(fake, dir, &path, query.as_deref());
        env.extend(applied.env);
        match applied.outcome {
            Outcome::Internal {
                path: p,
                query: q,
                end,
            } => {
                if end {
                    return (
                        Outcome::Internal {
                            path: p,
                            query: q,
                            end,
                        },
                        env,
                    );
                }
                (path, query) = (p, q);
            }
            Outcome::Unchanged => {
                return (
                    Outcome::Internal {
                        path,
                        query,
                        end: false,
                    },
                    env,
                );
            }
            other => return (other, env),
        }
    }
    panic!("{path}: still rewriting after 10 passes");
}

fn served(path: &str, query: Option<&str>) -> Outcome {
    Outcome::Internal {
        path: path.into(),
        query: query.map(str::to_string),
        end: false,
    }
}

const WORDPRESS: &str = "# BEGIN WordPress
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]
RewriteBase /
RewriteRule ^index\\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>
# END WordPress
";

#[test]
fn wordpress_at_the_root() {
    let mut f = Fake::new("/");
    f.file("/index.php")
        .file("/wp-content/style.css")
        .dir("/wp-admin/");
    f.with_header("Authorization", "Bearer t");
    let (got, env) = route(WORDPRESS, "/", &mut f, "/2024/hello-world/", Some("p=1"));
    assert_eq!(got, served("/index.php", Some("p=1")));
    assert!(env.contains(&("HTTP_AUTHORIZATION".into(), Some("Bearer t".into()))));
    for existing in ["/wp-content/style.css", "/wp-admin/", "/index.php", "/"] {
        assert_eq!(
            route(WORDPRESS, "/", &mut f, existing, None).0,
            served(existing, None)
        );
    }
    // The second pass stops at `^index\.php$ - [L]`: one pass for it changes nothing.
    let rw = rules(WORDPRESS);
    f.at("/index.php");
    assert_eq!(pass(&rw, "/", &f, "/index.php", None), Outcome::Unchanged);
}

#[test]
fn wordpress_in_a_subdirectory() {
    let text = WORDPRESS
        .replace("RewriteBase /", "RewriteBase /blog/")
        .replace(" /index.php", " /blog/index.php");
    let mut f = Fake::new("/blog/");
    f.file("/blog/index.php").dir("/blog/");
    assert_eq!(
        route(&text, "/blog/", &mut f, "/blog/about/", None).0,
        served("/blog/index.php", None)
    );
    assert_eq!(
        route(&text, "/blog/", &mut f, "/blog/", None).0,
        served("/blog/", None)
    );
}

const LARAVEL: &str = "<IfModule mod_rewrite.c>
    <IfModule mod_negotiation.c>
        Options -MultiViews -Indexes
    </IfModule>

    RewriteEngine On

    # Handle Authorization Header
    RewriteCond %{HTTP:Authorization} .
    RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]

    # Handle X-XSRF-Token Header
    RewriteCond %{HTTP:x-xsrf-token} .
    RewriteRule .* - [E=HTTP_X_XSRF_TOKEN:%{HTTP:X-XSRF-Token}]

    # Redirect Trailing Slashes If Not A Folder...
    RewriteCond %{REQUEST_FILENAME} !-d
    RewriteCond %{REQUEST_URI} (.+)/$
    RewriteRule ^ %1 [L,R=301]

    # Send Requests To Front Controller...
    RewriteCond %{REQUEST_FILENAME} !-d
    RewriteCond %{REQUEST_FILENAME} !-f
    RewriteRule ^ index.php [L]
</IfModule>
";

#[test]
fn laravel_public() {
    let mut f = Fake::new("/");
    f.file("/index.php").file("/favicon.ico").dir("/css/");
    assert_eq!(
        route(LARAVEL, "/", &mut f, "/users/5", Some("a=1")).0,
        served("/index.php", Some("a=1"))
    );
    assert_eq!(
        route(LARAVEL, "/", &mut f, "/favicon.ico", None).0,
        served("/favicon.ico", None)
    );
    assert_eq!(
        route(LARAVEL, "/", &mut f, "/users/", Some("a=1")).0,
        Outcome::Redirect {
            status: 301,
            location: "http://example.com/users?a=1".into()
        }
    );
    assert_eq!(
        route(LARAVEL, "/", &mut f, "/css/", None).0,
        served("/css/", None)
    );
    // No Authorization header: no variable set (the condition `.` needs a character).
    let (_, env) = route(LARAVEL, "/", &mut f, "/users/5", None);
    assert!(env.is_empty(), "{env:?}");
    f.with_header("Authorization", "Bearer t")
        .with_header("X-XSRF-TOKEN", "x1");
    let (_, env) = route(LARAVEL, "/", &mut f, "/users/5", None);
    assert!(env.contains(&("HTTP_AUTHORIZATION".into(), Some("Bearer t".into()))));
    assert!(env.contains(&("HTTP_X_XSRF_TOKEN".into(), Some("x1".into()))));
}

const CGIT: &str = "RewriteEngine on
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule (.*) /cgit.cgi/$1 [END,QSA]

RewriteCond %{QUERY_STRING} service=git-receive-pack
RewriteRule .* - [END,F]
";

#[test]
fn cgit_pretty_urls() {
    let mut f = Fake::new("/");
    f.file("/cgit.cgi").file("/cgit.css");
    assert_eq!(
        route(CGIT, "/", &mut f, "/repo.git/log/", Some("h=main")).0,
        Outcome::Internal {
            path: "/cgit.cgi/repo.git/log/".into(),
            query: Some("h=main".into()),
            end: true
        }
    );
    assert_eq!(
        route(CGIT, "/", &mut f, "/cgit.css", None).0,
        served("/cgit.css", None)
    );
    assert_eq!(
        route(
            CGIT,
            "/",
            &mut f,
            "/cgit.css",
            Some("service=git-receive-pack")
        )
        .0,
        Outcome::Status(403)
    );
}

#[test]
fn https_and_www_redirects() {
    let https = "RewriteEngine On\nRewriteCond %{HTTPS} off\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]\n";
    let mut f = Fake::new("/a b/");
    assert_eq!(
        route(https, "/", &mut f, "/a b/", Some("x=1")).0,
        Outcome::Redirect {
            status: 301,
            location: "https://example.com/a%20b/?x=1".into()
        }
    );
    f.vars.insert("HTTPS".into(), "on".into());
    assert_eq!(route(https, "/", &mut f, "/a", None).0, served("/a", None));

    let www = "RewriteEngine On\nRewriteCond %{HTTP_HOST} ^www\\.(.+)$ [NC]\nRewriteRule ^(.*)$ http://%1/$1 [R=301,L]\n";
    let mut f = Fake::new("/");
    f.with_header("Host", "WWW.example.org");
    assert_eq!(
        route(www, "/", &mut f, "/page", None).0,
        Outcome::Redirect {
            status: 301,
            location: "http://example.org/page".into()
        }
    );
    let rw = rules(www);
    assert_eq!(
        rw.apply(&f, "/", "/page", None).vary,
        vec!["Host".to_string()]
    );
    f.with_header("Host", "example.org");
    assert_eq!(
        route(www, "/", &mut f, "/page", None).0,
        served("/page", None)
    );
}
