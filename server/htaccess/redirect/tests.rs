//! mod_alias redirects: prefixes by segment, statuses, RedirectMatch, the query, merging, and
//! the problems a line can have.

use super::super::rewrite::Outcome;
use super::super::rewrite::fake::Fake;
use super::super::syntax::{Node, parse};
use super::*;

fn compile(text: &str) -> Result<Redirects, (usize, Problem)> {
    let mut r = Redirects::default();
    for node in parse(text).expect("splits") {
        if let Node::Directive(line) = node {
            r.directive(&line).map_err(|p| (line.number, p))?;
        }
    }
    Ok(r)
}

fn run(text: &str, path: &str, query: Option<&str>) -> Option<(Outcome, usize)> {
    let r = compile(text).unwrap_or_else(|(l, p)| panic!("line {l}: {p:?}"));
    r.apply(&Fake::new(path), path, query)
        .map(|r| (r.outcome, r.line))
}

fn to(status: u16, location: &str) -> Option<Outcome> {
    Some(Outcome::Redirect {
        status,
        location: location.into(),
    })
}

#[test]
fn redirect_by_prefix_and_status() {
    let cases = [
        (
            "Redirect /old https://new.example",
            "/old/a b.html",
            to(302, "https://new.example/a%20b.html"),
        ),
        // As in Apache: a target ending in `/` under a prefix without one doubles the slash.
        (
            "Redirect /old https://new.example/",
            "/old/a",
            to(302, "https://new.example//a"),
        ),
        (
            "Redirect /old https://new.example",
            "/old",
            to(302, "https://new.example"),
        ),
        ("Redirect /old https://new.example", "/older", None),
        (
            "Redirect /old/ /new/",
            "/old//x",
            to(302, "http://example.com/new/x"),
        ),
        (
            "Redirect permanent /a /b",
            "/a",
            to(301, "http://example.com/b"),
        ),
        (
            "Redirect 308 /a /b",
            "/a/c",
            to(308, "http://example.com/b/c"),
        ),
        (
            "Redirect seeother /a /b",
            "/a",
            to(303, "http://example.com/b"),
        ),
        (
            "RedirectPermanent /a /b",
            "/a",
            to(301, "http://example.com/b"),
        ),
        ("RedirectTemp /a /b", "/a", to(302, "http://example.com/b")),
        ("Redirect gone /a", "/a/x", Some(Outcome::Status(410))),
        ("Redirect 404 /a", "/a", Some(Outcome::Status(404))),
        (
            "RedirectMatch ^/p/(\\d+)$ /post?id=$1",
            "/p/42",
            to(302, "http://example.com/post?id=42"),
        ),
        (
            "RedirectMatch 301 (.*)\\.gif$ https://img.example$1.png",
            "/a b.gif",
            to(301, "https://img.example/a%20b.png"),
        ),
        (
            "RedirectMatch 410 ^/tmp/",
            "/tmp/x",
            Some(Outcome::Status(410)),
        ),
        (
            "RedirectMatch ^/x$ \"/y#frag ment\"",
            "/x",
            to(302, "http://example.com/y#frag ment"),
        ),
    ];
    for (text, path, want) in cases {
        assert_eq!(run(text, path, None).map(|r| r.0), want, "{text} {path}");
    }
    // The request's query goes along unless the target has one.
    assert_eq!(
        run("Redirect /a /b", "/a", Some("x=1")).map(|r| r.0),
        to(302, "http://example.com/b?x=1")
    );
    assert_eq!(
        run("Redirect /a /b?y", "/a", Some("x=1")).map(|r| r.0),
        to(302, "http://example.com/b?y")
    );
    let got = run("RedirectMatch ^/(.*)$ $1", "/x", None).map(|r| r.0);
    assert!(
        matches!(got, Some(Outcome::Refused { status: 500, .. })),
        "{got:?}"
    );
}

#[test]
fn the_deeper_file_wins_and_the_first_entry_wins() {
    let parent = compile("Redirect /a /parent").expect("compiles");
    let child =
        compile("Redirect /b /x\nRedirect /a /child\nRedirect /a /second").expect("compiles");
    let merged = Redirects::merge(&parent, &child);
    let got = merged.apply(&Fake::new("/a"), "/a", None).expect("matches");
    assert_eq!(
        (got.outcome, got.line),
        (to(302, "http://example.com/child").expect("some"), 2)
    );
    let empty = Redirects::merge(&parent, &Redirects::default());
    assert!(!empty.is_empty());
}

#[test]
fn problems() {
    for (text, says) in [
        ("Redirect old.html /new.html", "never match"),
        ("Redirect /old new.html", "not a URL"),
        ("Redirect 301 https://example.com/", "whole directory"),
        ("Redirect 305 /a /b", "status 305"),
        ("Redirect 410 /a /b", "takes no URL"),
        ("Redirect bogus /a /b", "takes [status]"),
        ("Redirect /a", "takes [status]"),
        ("RedirectPermanent 301 /a /b", "takes a URL path"),
        ("RedirectMatch ^/(a)\\1 /b", "does not compile"),
        ("Redirect 30x /a /b", "not a status"),
    ] {
        let (line, p) = compile(text).expect_err(text);
        assert_eq!(line, 1);
        assert!(p.problem.contains(says), "{text}: {}", p.problem);
    }
}
