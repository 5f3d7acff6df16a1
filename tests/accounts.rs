//! `yadokari user ...` as a careful host expects: the configuration keeps its owner and is
//! 0600 once it holds a password hash (and a looser one is warned about at start), passwords
//! are confirmed and long enough, a private key or a key with options is refused with the
//! reason, and errors name the real configuration file.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::sftp::{SftpSite, client_key, text, user_cmd};
use crate::support::{Site, test_user};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_password_makes_the_config_0600_and_keeps_its_owner() {
    let s = SftpSite::new("");
    s.site.write_config();
    let cfg = s.site.config_path();
    chmod(&cfg, 0o644);
    let owner = test_user();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&cfg, Some(uid), Some(gid)).expect("chown");
    }
    let o = user_cmd(&cfg, &["passwd", "demo"], "long enough\nlong enough\n");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&cfg), 0o600);
    if let Some((uid, gid)) = owner {
        let meta = std::fs::metadata(&cfg).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "the owner changed");
    }
    // No temporary is left beside it.
    let dir = cfg.parent().expect("dir");
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("readdir")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".yadokari.toml.")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_first_start_password_leaves_the_config_0600_and_a_readable_one_is_warned_about() {
    let site = Site::new().config("[[users]]\nname = \"demo\"");
    site.write_config();
    chmod(&site.config_path(), 0o644);
    let server = site.start_as_written();
    server.wait_for("its password is now");
    assert_eq!(mode(&site.config_path()), 0o600);
    drop(server);

    chmod(&site.config_path(), 0o644);
    let server = site.start_as_written();
    let line = server.wait_for("others may read it");
    assert!(line.contains("chmod 600"), "{line}");
}

#[test]
fn passwords_are_confirmed_and_long_enough() {
    let s = SftpSite::new("");
    s.site.write_config();
    let cfg = s.site.config_path();
    let before = std::fs::read_to_string(&cfg).expect("read");
    for (input, says) in [
        ("long enough\nlong enougH\n", "differ"),
        ("long enough\n", "twice"),
        ("short\nshort\n", "at least 8"),
    ] {
        let o = user_cmd(&cfg, &["passwd", "demo"], input);
        assert!(!o.status.success(), "{input:?} was accepted");
        assert!(text(&o).contains(says), "{input:?}: {}", text(&o));
    }
    assert_eq!(std::fs::read_to_string(&cfg).expect("read"), before);
}

#[test]
fn a_private_key_or_a_key_with_options_is_refused_with_the_reason() {
    let s = SftpSite::new("");
    s.site.write_config();
    let cfg = s.site.config_path();
    let dir = s.site.dir.path();
    let private = client_key(dir, "id_private");
    let o = user_cmd(&cfg, &["key", "demo", private.to_str().expect("utf-8")], "");
    assert!(!o.status.success());
    assert!(text(&o).contains("private key"), "{}", text(&o));
    assert!(text(&o).contains(".pub"), "{}", text(&o));

    let public = std::fs::read_to_string(private.with_extension("pub")).expect("read");
    let with_options = dir.join("options.pub");
    std::fs::write(&with_options, format!("from=\"127.0.0.1\" {public}")).expect("write");
    let o = user_cmd(
        &cfg,
        &["key", "demo", with_options.to_str().expect("utf-8")],
        "",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("options"), "{}", text(&o));
}

#[test]
fn an_edit_that_would_not_load_names_the_real_file() {
    let s = SftpSite::new("");
    let gone = s.site.dir.path().join("gone-site");
    std::fs::create_dir(&gone).expect("mkdir");
    s.site.write_config();
    let mut text_now = std::fs::read_to_string(s.site.config_path()).expect("read");
    text_now.push_str("\n[[users]]\nname = \"gone\"\nsite = \"gone-site\"\n");
    std::fs::write(s.site.config_path(), text_now).expect("write");
    // The other user's site vanishes: any edit now makes a file that would not load.
    std::fs::remove_dir(&gone).expect("rmdir");
    let cfg = s.site.config_path();
    let o = user_cmd(&cfg, &["passwd", "demo"], "long enough\nlong enough\n");
    assert!(!o.status.success());
    let said = text(&o);
    assert!(said.contains(&cfg.display().to_string()), "{said}");
    assert!(!said.contains(".yadokari.toml."), "{said}");
}
