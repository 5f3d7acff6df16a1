//! Every way the configuration changes goes through one reload: SIGHUP and an edit of the file
//! by `yadokari user ...` both keep the command line's overrides, and settings that only take
//! effect at restart are named instead of silently ignored.

use nix::sys::signal::Signal;

use crate::support::sftp::{Running, SftpSite, text, user_cmd};
use crate::support::{Site, have};

#[test]
fn a_user_edit_keeps_the_root_given_on_the_command_line() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let root = s.site.dir.path().join("elsewhere");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(root.join("marker.txt"), "here").expect("write");
    crate::support::give_to_test_user(&root);
    let bob_site = s.site.dir.path().join("bobsite");
    std::fs::create_dir(&bob_site).expect("mkdir");
    crate::support::give_to_test_user(&bob_site);
    let server = s
        .site
        .start_with(&["--root", root.to_str().expect("utf-8")]);
    let r = Running::of(server);
    let listing = |r: &Running| {
        let o = r.batch(&s.key, "ls\n");
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(listing(&r).contains("marker.txt"));

    // Editing the users rewrites the file; the running server reloads it by itself.
    let o = user_cmd(
        &s.site.config_path(),
        &["add", "bob", "--site", bob_site.to_str().expect("utf-8")],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    r.server.wait_for("configuration reloaded");

    // demo has no `site` of its own: its site is still the root from the command line, not
    // the file's document_root, and the web side still serves that root too.
    assert!(listing(&r).contains("marker.txt"));
    assert_eq!(r.server.get("/marker.txt").text(), "here");
}

#[test]
fn a_reload_names_the_settings_that_wait_for_a_restart() {
    let site = Site::new().config("[limits]\nmax_connections = 100");
    site.file("a.html", "a", 0o644);
    let server = site.start();
    let config = std::fs::read_to_string(site.config_path()).expect("read");
    std::fs::write(
        site.config_path(),
        config.replace(
            "max_connections = 100",
            "max_connections = 50\nkeep_alive_timeout_secs = 7",
        ),
    )
    .expect("write");
    server.signal(Signal::SIGHUP);
    let line = server.wait_for("only take effect at the next restart");
    assert!(line.contains("limits.max_connections"), "{line}");
    assert!(!line.contains("keep_alive"), "{line}");
    server.wait_for("configuration reloaded");
    assert_eq!(server.get("/a.html").text(), "a");
}

#[test]
fn removing_the_last_user_revokes_their_login() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start();
    assert!(r.batch(&s.key, "pwd\n").status.success());
    let o = user_cmd(&s.site.config_path(), &["remove", "demo"], "");
    assert!(o.status.success(), "{}", text(&o));
    r.server.wait_for("configuration reloaded");
    let o = r.batch(&s.key, "pwd\n");
    assert!(
        !o.status.success(),
        "the removed user still logs in: {}",
        text(&o)
    );
}
