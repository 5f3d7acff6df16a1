//! The engine's mechanics, each against a fake request: prefix stripping, bases, queries,
//! flags, conditions, escaping, the refusals, merging, and the problems a file can have.

use super::fake::{Fake, compile, pass, rules};
use super::*;

/// The problem `text` has.
fn problem(text: &str) -> (usize, Problem) {
    compile(text).expect_err(text)
}

fn internal(path: &str, query: Option<&str>) -> Outcome {
    Outcome::Internal {
        path: path.into(),
        query: query.map(str::to_string),
        end: false,
    }
}

fn redirect(status: u16, location: &str) -> Outcome {
    Outcome::Redirect {
        status,
        location: location.into(),
    }
}

#[test]
fn prefix_is_stripped_and_put_back_with_the_base() {
    let f = Fake::new("/blog/foo");
    let rw = rules("RewriteEngine On\nRewriteRule ^foo$ bar\n");
    assert_eq!(
        pass(&rw, "/blog/", &f, "/blog/foo", None),
        internal("/blog/bar", None)
    );
    let rw = rules("RewriteEngine On\nRewriteBase /x\nRewriteRule ^foo$ bar\n");
    assert_eq!(
        pass(&rw, "/blog/", &f, "/blog/foo", None),
        internal("/x/bar", None)
    );
    // An absolute path is used as written, without the base.
    let rw = rules("RewriteEngine On\nRewriteBase /x/\nRewriteRule ^foo$ /bar\n");
    assert_eq!(
        pass(&rw, "/blog/", &f, "/blog/foo", None),
        internal("/bar", None)
    );
    // Per-directory patterns never see the leading slash.
    let rw = rules("RewriteEngine On\nRewriteRule ^/blog/foo$ /bar\n");
    assert_eq!(
        pass(&rw, "/blog/", &f, "/blog/foo", None),
        Outcome::Unchanged
    );
}

#[test]
fn engine_off_unset_and_the_directory_without_its_slash() {
    let f = Fake::new("/blog");
    let rw = rules("RewriteRule ^ /x\n");
    assert_eq!(pass(&rw, "/", &f, "/a", None), Outcome::Unchanged);
    let rw = rules("RewriteEngine off\nRewriteRule ^ /x\n");
    assert_eq!(pass(&rw, "/", &f, "/a", None), Outcome::Unchanged);
    let rw = rules("RewriteEngine On\nRewriteRule ^ /x\n");
    assert_eq!(pass(&rw, "/blog/", &f, "/blog", None), Outcome::Unchanged);
    let rw = rules("RewriteEngine On\nRewriteOptions AllowNoSlash\nRewriteRule ^$ /x\n");
    assert_eq!(pass(&rw, "/blog/", &f, "/blog", None), internal("/x", None));
}

#[test]
fn query_strings_replace_append_discard() {
    let f = Fake::new("/a");
    let cases = [
        ("RewriteRule ^a$ /b", Some("/b"), Some("x=1")),
        ("RewriteRule ^a$ /b?y=2", Some("/b"), Some("y=2")),
        ("RewriteRule ^a$ /b?y=2 [QSA]", Some("/b"), Some("y=2&x=1")),
        ("RewriteRule ^a$ /b [QSD]", Some("/b"), None),
        ("RewriteRule ^a$ /b? ", Some("/b"), None),
        ("RewriteRule ^a$ /b?y=2 [QSD,QSA]", Some("/b"), Some("y=2")),
        (
            "RewriteRule ^a$ /b?%{QUERY_STRING}&z",
            Some("/b"),
            Some("x=1&z"),
        ),
    ];
    for (rule, path, query) in cases {
        let rw = rules(&format!("RewriteEngine On\n{rule}\n"));
        let got = pass(&rw, "/", &f, "/a", Some("x=1"));
        assert_eq!(got, internal(path.unwrap_or_default(), query), "{rule}");
    }
    // Rewritten to itself with only the query changed: applied, without another pass.
    let rw = rules("RewriteEngine On\nRewriteRule ^a$ a?y=1\n");
    assert_eq!(
        pass(&rw, "/", &f, "/a", None),
        Outcome::Internal {
            path: "/a".into(),
            query: Some("y=1".into()),
            end: true
        }
    );
}

#[test]
fn redirects_are_qualified_and_escaped() {
    let f = Fake::new("/a b");
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /new/$1 [R=301,L]\n");
    assert_eq!(
        pass(&rw, "/", &f, "/a b", Some("q=%20")),
        redirect(301, "http://example.com/new/a%20b?q=%20")
    );
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /new#$1 [R,NE]\n");
    assert_eq!(
        pass(&rw, "/", &f, "/a b", None),
        redirect(302, "http://example.com/new#a b")
    );
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /new#$1 [R]\n");
    assert_eq!(
        pass(&rw, "/", &f, "/x", None),
        redirect(302, "http://example.com/new%23x")
    );
    // Relative with R: under the base, on the client's host and port.
    let mut f = Fake::new("/d/x");
    f.with_header("Host", "example.com:8080");
    let rw = rules("RewriteEngine On\nRewriteRule ^x$ y [R=308]\n");
    assert_eq!(
        pass(&rw, "/d/", &f, "/d/x", None),
        redirect(308, "http://example.com:8080/d/y")
    );
    // A new query is escaped; an http:// target without R still redirects (302).
    let rw = rules("RewriteEngine On\nRewriteRule ^x$ https://other.example/?q=a\\%20b\n");
    assert_eq!(
        pass(&rw, "/d/", &f, "/d/x", None),
        redirect(302, "https://other.example/?q=a%2520b")
    );
    // Our own host without R is a local rewrite.
    let rw = rules("RewriteEngine On\nRewriteRule ^x$ http://example.com:8080/z\n");
    assert_eq!(pass(&rw, "/d/", &f, "/d/x", None), internal("/z", None));
    // A Host header that is not a plain authority is not trusted.
    f.with_header("Host", "evil.example/x?");
    let rw = rules("RewriteEngine On\nRewriteRule ^x$ /y [R]\n");
    assert_eq!(
        pass(&rw, "/d/", &f, "/d/x", None),
        redirect(302, "http://example.com/y")
    );
}

#[test]
fn statuses_stop_the_rules() {
    let f = Fake::new("/secret");
    for (flags, status) in [("[F]", 403), ("[G]", 410), ("[R=404]", 404), ("[F,L]", 403)] {
        let rw = rules(&format!(
            "RewriteEngine On\nRewriteRule ^secret - {flags}\nRewriteRule ^ /other\n"
        ));
        let a = rw.apply(&f, "/", "/secret", None);
        assert_eq!(a.outcome, Outcome::Status(status), "{flags}");
        assert_eq!(a.line, Some(2));
    }
}

#[test]
fn last_end_chain_and_skip() {
    let f = Fake::new("/a");
    let rw = rules("RewriteEngine On\nRewriteRule ^a$ b [L]\nRewriteRule ^b$ c\n");
    assert_eq!(pass(&rw, "/", &f, "/a", None), internal("/b", None));
    let rw = rules("RewriteEngine On\nRewriteRule ^a$ b\nRewriteRule ^b$ c\n");
    assert_eq!(pass(&rw, "/", &f, "/a", None), internal("/c", None));
    let rw = rules("RewriteEngine On\nRewriteRule ^a$ b [END]\n");
    assert_eq!(
        pass(&rw, "/", &f, "/a", None),
        Outcome::Internal {
            path: "/b".into(),
            query: None,
            end: true
        }
    );
    let rw = rules(
        "RewriteEngine On\nRewriteRule ^z$ - [C]\nRewriteRule ^a$ /chained\nRewriteRule ^a$ /next\n",
    );
    assert_eq!(pass(&rw, "/", &f, "/a", None), internal("/next", None));
    let rw = rules(
        "RewriteEngine On\nRewriteRule ^a$ - [S=1]\nRewriteRule ^a$ /skipped [L]\nRewriteRule ^a$ /after\n",
    );
    assert_eq!(pass(&rw, "/", &f, "/a", None), internal("/after", None));
    let rw = rules("RewriteEngine On\nRewriteRule !^a$ /not-a\n");
    assert_eq!(pass(&rw, "/", &f, "/a", None), Outcome::Unchanged);
    assert_eq!(pass(&rw, "/", &f, "/b", None), internal("/not-a", None));
}

#[test]
fn conditions_and_their_references() {
    let mut f = Fake::new("/p/7");
    f.with_header("User-Agent", "Mozilla Foo");
    f.vars.insert("REMOTE_ADDR".into(), "10.0.0.5".into());
    let cases = [
        ("RewriteCond %{HTTP_USER_AGENT} foo [NC]", true),
        ("RewriteCond %{HTTP_USER_AGENT} foo", false),
        ("RewriteCond %{HTTP:user-agent} !^Moz", false),
        ("RewriteCond %{REMOTE_ADDR} =10.0.0.5", true),
        ("RewriteCond %{REMOTE_ADDR} =10.0.0.50", false),
        ("RewriteCond %{HTTP:X-None} =\"\"", true),
        ("RewriteCond $1 -lt10", true),
        ("RewriteCond $1 -ge10", false),
        ("RewriteCond $1 -ne7", false),
        ("RewriteCond %{REQUEST_METHOD} >HEAD", false),
        ("RewriteCond %{REQUEST_METHOD} <=POST", true),
        ("RewriteCond %{REQUEST_FILENAME} -f", false),
        ("RewriteCond %{REQUEST_FILENAME} !-d", true),
        ("RewriteCond x =y [OR]\nRewriteCond a =a", true),
        ("RewriteCond x =y [OR]\nRewriteCond a =b", false),
        (
            "RewriteCond a =a [OR]\nRewriteCond x =y\nRewriteCond b =b",
            true,
        ),
    ];
    for (conds, holds) in cases {
        let rw = rules(&format!(
            "RewriteEngine On\n{conds}\nRewriteRule ^p/(\\d+)$ /ok\n"
        ));
        let want = if holds {
            internal("/ok", None)
        } else {
            Outcome::Unchanged
        };
        assert_eq!(pass(&rw, "/", &f, "/p/7", None), want, "{conds}");
    }
    // %N comes from the last condition that matched, $N from the rule.
    let rw = rules(
        "RewriteEngine On\nRewriteCond %{HTTP_USER_AGENT} ^(\\w+)\nRewriteCond %{REMOTE_ADDR} ^10\\.(\\d+)\nRewriteRule ^p/(\\d+)$ /r/$1/%1\n",
    );
    assert_eq!(pass(&rw, "/", &f, "/p/7", None), internal("/r/7/0", None));
}

#[test]
fn env_flags_and_vary() {
    let mut f = Fake::new("/x");
    f.with_header("Authorization", "Basic abc");
    f.with_header("Host", "www.example.com");
    let rw = rules(
        "RewriteEngine On\nRewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization},E=EMPTY]\n\
         RewriteRule .* - [E=!EMPTY,E=COPY:%{ENV:HTTP_AUTHORIZATION}]\n\
         RewriteCond %{HTTP_HOST} ^www\\. [NC]\nRewriteCond %{HTTP:Accept} ^$ [NV]\nRewriteRule ^ - [L]\n",
    );
    let a = rw.apply(&f, "/", "/x", None);
    assert_eq!(a.outcome, Outcome::Unchanged);
    let set = |n: &str, v: Option<&str>| (n.to_string(), v.map(str::to_string));
    assert_eq!(
        a.env,
        vec![
            set("HTTP_AUTHORIZATION", Some("Basic abc")),
            set("EMPTY", Some("")),
            set("EMPTY", None),
            set("COPY", Some("Basic abc")),
        ]
    );
    assert_eq!(a.vary, vec!["Host".to_string()]);
}

#[test]
fn question_marks_from_the_request_do_not_split_the_query() {
    let f = Fake::new("/x.php?.txt");
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /files/$1.txt\n");
    let got = pass(&rw, "/", &f, "/x.php?.txt", None);
    assert!(
        matches!(got, Outcome::Refused { status: 403, .. }),
        "{got:?}"
    );
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /files/$1.txt [B]\n");
    assert_eq!(
        pass(&rw, "/", &f, "/x.php?.txt", None),
        internal("/files/x%2ephp%3f%2etxt.txt", None)
    );
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /s?q=$1\n");
    let got = pass(&rw, "/", &f, "/a b", None);
    assert!(
        matches!(got, Outcome::Refused { status: 403, .. }),
        "{got:?}"
    );
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /s?q=$1 [B]\n");
    assert_eq!(
        pass(&rw, "/", &f, "/a b", None),
        internal("/s", Some("q=a+b"))
    );
    let rw = rules("RewriteEngine On\nRewriteRule ^(.*)$ /s?q=$1 \"[B= ?,BNP]\"\n");
    assert_eq!(
        pass(&rw, "/", &f, "/a b/c", None),
        internal("/s", Some("q=a%20b/c"))
    );
}

#[test]
fn slashes_from_back_references_are_merged() {
    let f = Fake::new("/a//b");
    let rw = rules("RewriteEngine On\nRewriteRule ^a(/.*)$ /$1\n");
    assert_eq!(pass(&rw, "/", &f, "/a//b", None), internal("/b", None));
}

#[test]
fn merging_follows_apache() {
    let f = Fake::new("/sub/x");
    let parent = rules("RewriteEngine On\nRewriteRule ^(.*)$ /parent/$1\n");
    // A child that only has rules inherits the engine, not the parent's rules.
    let child = rules("RewriteRule ^y$ /child\n");
    let merged = Rewrites::merge(&parent, &child);
    assert_eq!(
        pass(&merged, "/sub/", &f, "/sub/x", None),
        Outcome::Unchanged
    );
    assert_eq!(
        pass(&merged, "/sub/", &f, "/sub/y", None),
        internal("/child", None)
    );
    // Inherit: the parent's rules run after the child's, with the child's prefix.
    let child = rules("RewriteOptions Inherit\nRewriteRule ^y$ /child [L]\n");
    let merged = Rewrites::merge(&parent, &child);
    assert_eq!(
        pass(&merged, "/sub/", &f, "/sub/x", None),
        internal("/parent/x", None)
    );
    assert_eq!(
        pass(&merged, "/sub/", &f, "/sub/y", None),
        internal("/child", None)
    );
    let child = rules("RewriteOptions InheritBefore\nRewriteRule ^y$ /child [L]\n");
    let merged = Rewrites::merge(&parent, &child);
    assert_eq!(
        pass(&merged, "/sub/", &f, "/sub/y", None),
        internal("/parent/y", None)
    );
    let child = rules("RewriteEngine Off\n");
    assert!(child.is_set() && !Rewrites::default().is_set());
    let merged = Rewrites::merge(&parent, &child);
    assert_eq!(
        pass(&merged, "/sub/", &f, "/sub/x", None),
        Outcome::Unchanged
    );
}

#[test]
fn what_is_not_implemented_is_a_problem() {
    for (text, says, fix) in [
        ("RewriteRule ^ - [QSX]", "[QSX]", "QSA"),
        ("RewriteRule ^ /x [P]", "does not proxy", "L, END"),
        ("RewriteRule ^ /x [N]", "[N]", "L, END"),
        ("RewriteRule ^ /x [T=text/plain]", "ForceType", "L, END"),
        ("RewriteRule ^ /x [R=305]", "[R=305]", "301"),
        ("RewriteRule ^ /x [R=301,F]", "both", "either"),
        ("RewriteRule ^ /x L", "not enclosed", "square brackets"),
        (
            "RewriteCond %{http_host} x\nRewriteRule ^ /x",
            "%{http_host}",
            "%{HTTP_HOST}",
        ),
        (
            "RewriteCond %{TIME_HOUR} x\nRewriteRule ^ /x",
            "not a variable",
            "REQUEST_URI",
        ),
        (
            "RewriteCond %{HTTP_X_FOO} x\nRewriteRule ^ /x",
            "not a variable",
            "%{HTTP:X-FOO}",
        ),
        (
            "RewriteCond %{SSL:SSL_PROTOCOL} x\nRewriteRule ^ /x",
            "lookup",
            "HTTP:",
        ),
        (
            "RewriteRule ^(a)\\1$ /x",
            "does not compile",
            "back-references",
        ),
        ("RewriteRule ^(?!a) /x", "does not compile", "look-around"),
        ("RewriteRule ^ ${map:$1}", "RewriteMap", "rules"),
        ("RewriteRule ^ ftp://example.com/", "`ftp:` URL", "https://"),
        (
            "RewriteCond expr \"true\"\nRewriteRule ^ /x",
            "expr",
            "test string",
        ),
        (
            "RewriteCond %{REQUEST_URI} -U\nRewriteRule ^ /x",
            "sub-request",
            "-f",
        ),
        (
            "RewriteCond a b [NC,XY]\nRewriteRule ^ /x",
            "[XY]",
            "NC, OR",
        ),
        (
            "RewriteCond a b",
            "no RewriteRule after it",
            "put the RewriteRule",
        ),
        ("RewriteMap m txt:/x", "not allowed", "server configuration"),
        ("RewriteEngine maybe", "On` or `Off", "RewriteEngine On"),
        ("RewriteBase blog", "starting with `/`", "RewriteBase /"),
        ("RewriteOptions AllowAnyURI", "AllowAnyURI", "Inherit"),
        ("RewriteRule ^", "1 argument", "RewriteRule ^old$"),
    ] {
        let (line, p) = problem(&format!("RewriteEngine On\n{text}\n"));
        assert!(line >= 2, "{text}");
        assert!(p.problem.contains(says), "{text}: {}", p.problem);
        assert!(p.fix.contains(fix), "{text}: {}", p.fix);
    }
}
