//! A host with many customers, as `yadokari user add` makes them: a directory holding the
//! configuration (`y.toml`), the default site (`htdocs/`) and, with `[hosting] homes`, the
//! customers' homes; and a request to one of its sites by name.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::sftp::{Running, client_key, text, user_cmd};
use super::{Server, raw_body, raw_status};

/// Whether the tests run as root; says why the calling test skips when not.
pub fn as_root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        eprintln!("skipping: needs root (customers' identities, namespaces, cgroups)");
    }
    root
}

/// A host's directory with a configuration, a document root and (with `extra`) settings.
pub struct Host {
    _dir: tempfile::TempDir,
    /// The directory (canonical): `y.toml`, `htdocs/`, and whatever `extra` puts there.
    pub root: PathBuf,
}

impl Host {
    /// A host whose `y.toml` has the test `[server]` section followed by `extra`.
    pub fn new(extra: &str) -> Host {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir(root.join("htdocs")).expect("mkdir");
        std::fs::write(root.join("htdocs/index.html"), "default").expect("write");
        std::fs::write(
            root.join("y.toml"),
            format!(
                "[server]\ndocument_root = \"htdocs\"\nhttp = \"127.0.0.1:0\"\nsftp = \"127.0.0.1:0\"\nexplain_errors = true\n{extra}"
            ),
        )
        .expect("config");
        Host { _dir: dir, root }
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.root.join("y.toml")
    }

    /// `yadokari user ARGS`, which must succeed; its output.
    pub fn user(&self, args: &[&str]) -> String {
        let o = user_cmd(&self.config(), args, "");
        assert!(o.status.success(), "user {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `yadokari user ARGS`, which must fail; its error.
    pub fn user_refused(&self, args: &[&str]) -> String {
        let o = user_cmd(&self.config(), args, "");
        assert!(
            !o.status.success(),
            "user {args:?} should fail: {}",
            text(&o)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Adds customer `name` with a client key of theirs; returns the key.
    pub fn customer(&self, name: &str, extra: &[&str]) -> PathBuf {
        let mut args = vec!["add", name];
        args.extend_from_slice(extra);
        self.user(&args);
        let key = client_key(&self.root, &format!("id_{name}"));
        let public = key.with_extension("pub");
        self.user(&["key", name, public.to_str().expect("utf-8")]);
        key
    }

    /// Sets `key = value` in customer `name`'s `[[users]]` entry (for settings `user` has no
    /// command for), keeping the rest of the file as it is.
    pub fn set_user(&self, name: &str, key: &str, value: impl Into<toml_edit::Value>) {
        let text = std::fs::read_to_string(self.config()).expect("read config");
        let mut doc: toml_edit::DocumentMut = text.parse().expect("the config is TOML");
        let entry = doc["users"]
            .as_array_of_tables_mut()
            .expect("a [[users]] array")
            .iter_mut()
            .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
            .unwrap_or_else(|| panic!("no [[users]] entry `{name}` in {text}"));
        entry[key] = toml_edit::value(value);
        std::fs::write(self.config(), doc.to_string()).expect("write config");
    }

    /// Starts the server on the configuration as written.
    pub fn start(&self) -> Running {
        Running::of(Server::spawn(&[
            "--config",
            self.config().to_str().expect("utf-8"),
        ]))
    }

    /// Customer `name`'s home (made by `user add` under `[hosting] homes = "homes"`).
    pub fn home(&self, name: &str) -> PathBuf {
        self.root.join("homes").join(name)
    }

    /// Writes `rel` in customer `name`'s web root (`public_html/`) with `mode`, owned (as are
    /// any directories made for it) by whoever owns their home, as their own upload would be.
    pub fn site_file(
        &self,
        name: &str,
        rel: &str,
        content: impl AsRef<[u8]>,
        mode: u32,
    ) -> PathBuf {
        let home = self.home(name);
        let meta = std::fs::metadata(&home).expect("the customer has a home");
        let give = |path: &Path| {
            std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid())).expect("chown");
        };
        let path = home.join("public_html").join(rel);
        let mut missing = Vec::new();
        let mut dir = path.parent().expect("a file in the web root");
        while !dir.exists() {
            missing.push(dir.to_path_buf());
            dir = dir.parent().expect("the web root exists");
        }
        for dir in missing.iter().rev() {
            std::fs::create_dir(dir).expect("mkdir");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            give(dir);
        }
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        give(&path);
        path
    }
}

/// `GET path` with `Host: host` over HTTP/1.0; the status and the body.
pub fn get(server: &Server, host: &str, path: &str) -> (u16, String) {
    let raw = server.raw(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes());
    (
        raw_status(&raw),
        String::from_utf8_lossy(raw_body(&raw)).into_owned(),
    )
}
