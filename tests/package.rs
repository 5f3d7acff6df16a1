//! The Debian package (issue 21): `scripts/package` builds it (scripts/test does, before the
//! tests); here it is checked with Debian's own tools. `lintian` finds no error, and every
//! warning it gives is one docs/packaging.md names and justifies; `dpkg-deb --contents` lists
//! the files an operator expects; installed into a throwaway root (`dpkg --root`, the maintainer
//! scripts run chrootless under `DPKG_ROOT`) the conffiles and directories have their owners
//! and modes, the installed binary loads the installed configuration, `systemd-analyze verify`
//! accepts the installed units, and `remove` keeps the state where `purge` removes it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::have;

/// The package scripts/package built, or `None` (a skip, which fails under CI=true).
fn package() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let version = env!("CARGO_PKG_VERSION");
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries.flatten().map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("yadokari_{version}-")) && n.ends_with(".deb")
            })
        })
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no package in {}: scripts/test builds it with scripts/package under CI=true",
            dir.display()
        );
        eprintln!(
            "skipping: no package in {} (run scripts/package)",
            dir.display()
        );
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn lintian_finds_no_error_and_every_warning_is_justified() {
    let Some(deb) = package() else { return };
    if !have("lintian") {
        return;
    }
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("lintian");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lintian reports errors:\n{said}");
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/packaging.md"))
            .expect("docs/packaging.md");
    for line in said.lines().filter(|l| l.starts_with("W: ")) {
        let tag = line.split_whitespace().nth(2).unwrap_or(line);
        assert!(
            docs.contains(&format!("`{tag}`")),
            "lintian warns `{line}`, which docs/packaging.md does not justify"
        );
    }
}

#[test]
fn the_package_holds_the_binary_configuration_units_and_docs() {
    let Some(deb) = package() else { return };
    let out = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let listing = String::from_utf8_lossy(&out.stdout);
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for want in [
        "./usr/bin/yadokari",
        "./etc/yadokari/yadokari.toml",
        "./etc/logrotate.d/yadokari",
        "./lib/systemd/system/yadokari.service",
        "./lib/systemd/system/yadokari.socket",
        "./lib/systemd/system/yadokari-sftp.socket",
        "./usr/share/man/man1/yadokari.1.gz",
        "./usr/share/bash-completion/completions/yadokari",
        "./usr/share/zsh/vendor-completions/_yadokari",
        "./usr/share/fish/vendor_completions.d/yadokari.fish",
        "./usr/share/yadokari/htdocs/index.html",
        "./usr/share/yadokari/htdocs/cgi-bin/hello.cgi",
        "./usr/share/doc/yadokari/copyright",
        "./usr/share/doc/yadokari/changelog.Debian.gz",
    ] {
        assert!(
            files.contains(&want),
            "{want} is not in the package:\n{listing}"
        );
    }
    let out = run(Command::new("dpkg-deb").args(["--info"]).arg(&deb));
    let info = String::from_utf8_lossy(&out.stdout);
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        assert!(info.contains(script), "no {script} in the package:\n{info}");
    }
}

/// An empty dpkg database at `root`.
fn throwaway_root(root: &Path) {
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
}

fn dpkg(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        // The maintainer scripts run here, acting under $DPKG_ROOT (they are written for it);
        // the throwaway root has no libc6 to satisfy the dependency with.
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ]);
    cmd
}

/// `(mode, uid, gid)` of `path`.
fn owner_mode(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn installed_into_a_throwaway_root_it_has_its_modes_and_purge_removes_its_state() {
    let Some(deb) = package() else { return };
    if !crate::support::host::as_root() || !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    throwaway_root(root);
    run(dpkg(root).arg("--install").arg(&deb));

    // Directories made by postinst and the files' modes: homes entered by their owners only,
    // logs and the configuration (password hashes) not world-readable.
    for (path, want) in [
        ("var/lib/yadokari", 0o755),
        ("var/lib/yadokari/homes", 0o711),
        ("var/log/yadokari", 0o750),
        ("etc/yadokari", 0o755),
        ("etc/yadokari/yadokari.toml", 0o640),
        ("etc/logrotate.d/yadokari", 0o644),
        ("usr/bin/yadokari", 0o755),
        ("usr/share/yadokari/htdocs/cgi-bin/hello.cgi", 0o755),
    ] {
        assert_eq!(owner_mode(&root.join(path)), (want, 0, 0), "{path}");
    }
    let conffiles = std::fs::read_to_string(root.join("var/lib/dpkg/info/yadokari.conffiles"))
        .expect("conffiles");
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/yadokari/yadokari.toml", "/etc/logrotate.d/yadokari"]
    );

    // The installed binary reads the installed configuration (its paths are the installed
    // ones: only the document root is pointed into the throwaway root).
    let out = run(Command::new(root.join("usr/bin/yadokari"))
        .arg("explain")
        .arg("--config")
        .arg(root.join("etc/yadokari/yadokari.toml"))
        .arg("--root")
        .arg(root.join("usr/share/yadokari/htdocs"))
        .arg("/cgi-bin/hello.cgi"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("verdict: runs"), "{said}");
    let man = run(Command::new("zcat").arg(root.join("usr/share/man/man1/yadokari.1.gz")));
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.contains(".TH yadokari") && man.contains("upgrade"),
        "{man}"
    );

    // The units, as systemd reads them in that root (with the host's own targets and kill,
    // which a real root has; the man: link is looked up in the root's pages).
    let units = root.join("lib/systemd/system");
    copy_tree(Path::new("/lib/systemd/system"), &units);
    std::fs::create_dir_all(root.join("bin")).expect("bin");
    std::fs::copy("/bin/kill", root.join("bin/kill")).expect("kill");
    let mut verify = Command::new("systemd-analyze");
    verify
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--man={}", crate::support::on_path("man")))
        .env("MANPATH", root.join("usr/share/man"));
    for unit in [
        "yadokari.service",
        "yadokari.socket",
        "yadokari-sftp.socket",
    ] {
        verify.arg(units.join(unit));
    }
    let out = verify.output().expect("systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // remove keeps the state and the configuration; purge takes them.
    std::fs::write(root.join("var/lib/yadokari/homes/marker"), "kept").expect("marker");
    run(dpkg(root).args(["--remove", "yadokari"]));
    assert!(!root.join("usr/bin/yadokari").exists());
    assert!(root.join("var/lib/yadokari/homes/marker").exists());
    assert!(root.join("etc/yadokari/yadokari.toml").exists());
    run(dpkg(root).args(["--purge", "yadokari"]));
    for gone in ["var/lib/yadokari", "var/log/yadokari", "etc/yadokari"] {
        assert!(!root.join(gone).exists(), "{gone} survived the purge");
    }
}

/// Copies the files of `from` into `to`, leaving those already there.
fn copy_tree(from: &Path, to: &Path) {
    run(Command::new("cp")
        .arg("-rn")
        .arg(format!("{}/.", from.display()))
        .arg(to));
}
