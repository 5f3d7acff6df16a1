//! Resolution over a real temporary site, with a configuration built by the same loader as
//! production: PATH_INFO, a slash after a file, the added slash, index files (static and
//! `index.cgi`), handler files, a symlinked script, and a property that whatever resolves
//! stays inside the site.

use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::config::Overrides;

struct TestSite {
    dir: tempfile::TempDir,
    config: Config,
    jail: Jail,
}

impl TestSite {
    fn new() -> TestSite {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("site");
        let file = |rel: &str, body: &str, mode: u32| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, body).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        file("page.html", "page", 0o644);
        file("dir/index.html", "index", 0o644);
        file("app/index.cgi", "#!/bin/sh\n", 0o755);
        file("cgi-bin/x.cgi", "#!/bin/sh\n", 0o755);
        file("t.php", "<?php ?>", 0o644);
        file("secret.html", "no", 0o600);
        std::fs::create_dir(root.join("empty")).expect("mkdir");
        symlink("x.cgi", root.join("cgi-bin/link.cgi")).expect("symlink");
        symlink("page.html", root.join("alias.html")).expect("symlink");
        symlink("/etc", root.join("out")).expect("symlink");
        for d in ["", "dir", "app", "cgi-bin", "empty"] {
            let p = root.join(d);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let conf = dir.path().join("y.toml");
        std::fs::write(
            &conf,
            "[server]\ndocument_root = \"site\"\n[cgi.handlers]\n\".php\" = \"/usr/bin/php-cgi\"\n",
        )
        .expect("write");
        let config = Config::load(Some(&conf), &Overrides::default()).expect("config");
        let jail = Jail::open(&config.document_root).expect("jail");
        TestSite { dir, config, jail }
    }

    fn resolve(&self, path: &str) -> Resolution {
        let url = crate::url::parse(path).expect("url");
        resolve(&self.jail, &url, &self.config)
    }
}

fn script(r: Resolution) -> Script {
    match r {
        Resolution::Script(s) => *s,
        other => panic!("not a script: {other:?}"),
    }
}

fn body(r: Resolution) -> (PathBuf, String) {
    match r {
        Resolution::Static(mut f) => {
            let mut text = String::new();
            f.file.read_to_string(&mut text).expect("read");
            (f.rel, text)
        }
        other => panic!("not static: {other:?}"),
    }
}

#[test]
fn path_info_follows_the_script() {
    let s = TestSite::new();
    let x = script(s.resolve("/cgi-bin/x.cgi/more/path/"));
    assert_eq!(x.rel, Path::new("cgi-bin/x.cgi"));
    assert_eq!(x.script_name, b"/cgi-bin/x.cgi");
    assert_eq!(x.path_info, b"/more/path/");
    assert!(x.interpreter.is_none());
    let x = script(s.resolve("/cgi-bin/x.cgi"));
    assert!(x.path_info.is_empty());
}

#[test]
fn a_static_file_takes_no_path_info_not_even_a_slash() {
    let s = TestSite::new();
    assert!(matches!(s.resolve("/page.html/"), Resolution::NotFound));
    assert!(matches!(s.resolve("/page.html/x"), Resolution::NotFound));
    assert_eq!(body(s.resolve("/page.html")).1, "page");
}

#[test]
fn a_directory_without_its_slash_is_redirected_and_with_it_gets_its_index() {
    let s = TestSite::new();
    assert!(matches!(s.resolve("/dir"), Resolution::AddSlash));
    // The index file comes open, judged on its own descriptor.
    let (rel, text) = body(s.resolve("/dir/"));
    assert_eq!(rel, Path::new("dir/index.html"));
    assert_eq!(text, "index");
    let app = script(s.resolve("/app/"));
    assert_eq!(app.rel, Path::new("app/index.cgi"));
    assert_eq!(app.script_name, b"/app/index.cgi");
    assert!(matches!(
        s.resolve("/empty/"),
        Resolution::Denied {
            denial: Denial::NoIndex,
            ..
        }
    ));
}

#[test]
fn handler_files_run_through_their_interpreter_without_an_execute_bit() {
    let s = TestSite::new();
    let php = script(s.resolve("/t.php"));
    assert_eq!(
        php.interpreter.as_deref(),
        Some(Path::new("/usr/bin/php-cgi"))
    );
}

#[test]
fn links_and_unreadable_files_are_judged() {
    let s = TestSite::new();
    assert!(matches!(
        s.resolve("/cgi-bin/link.cgi"),
        Resolution::Denied {
            denial: Denial::ScriptSymlink,
            ..
        }
    ));
    // A static link inside the site is served: the file it names, opened.
    assert_eq!(body(s.resolve("/alias.html")).1, "page");
    assert!(matches!(
        s.resolve("/out/passwd"),
        Resolution::Denied {
            denial: Denial::OutsideSite,
            ..
        }
    ));
    assert!(matches!(
        s.resolve("/secret.html"),
        Resolution::Denied {
            denial: Denial::NotReadable { .. },
            ..
        }
    ));
    assert!(matches!(s.resolve("/nope.html"), Resolution::NotFound));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever segments reach the resolver (`..` included, which the URL parser would have
    /// refused), nothing it serves or runs lies outside the site.
    #[test]
    fn a_resolved_path_never_climbs(
        segments in proptest::collection::vec(
            prop::sample::select(vec![
                "..", ".", "dir", "app", "cgi-bin", "x.cgi", "page.html", "alias.html", "out",
                "etc", "passwd", "site", "index.html", "link.cgi", "empty",
            ]),
            0..6,
        ),
        trailing_slash in any::<bool>(),
    ) {
        let s = TestSite::new();
        let url = UrlPath {
            segments: segments.iter().map(|s| s.as_bytes().to_vec()).collect(),
            trailing_slash,
        };
        let rel = match resolve(&s.jail, &url, &s.config) {
            Resolution::Static(f) => Some(f.rel),
            Resolution::Script(x) => Some(x.rel),
            _ => None,
        };
        if let Some(rel) = rel {
            let root = &s.config.document_root;
            let real = std::fs::canonicalize(root.join(&rel)).expect("resolved file exists");
            prop_assert!(real.starts_with(root), "{rel:?} -> {real:?}");
        }
        drop(s.dir);
    }
}
