//! The harness: a site in a temporary directory, the real `yadokari` binary started on port 0,
//! its printed address read back, and clients (ureq, and raw bytes over a socket) to talk to it.
//! The SFTP clients and the sites with SFTP users are in [`sftp`]; a host with many customers
//! (`yadokari user add`) is in [`host`].

#![allow(dead_code)]

pub mod host;
pub mod pki;
pub mod sftp;

pub use host::{Host, as_root, get};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The binary under test: the one cargo built, or `YADOKARI_BIN` when given (scripts/swarm-test
/// runs these tests inside a container of the image, against the image's binary).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("YADOKARI_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_yadokari").into())
    })
}

/// How long any single wait in a test may take before the test fails (never a timing assertion:
/// only a bound so that a hang fails instead of blocking CI).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A site on disk: `root/htdocs` (mode 0755) and `root/yadokari.toml`.
pub struct Site {
    pub dir: tempfile::TempDir,
    config_extra: String,
    /// Who owns the site's files: an ordinary test user when the tests run as root (as on a
    /// rental server, where the account owns its files), else whoever runs the tests.
    pub owner: Option<(u32, u32)>,
}

/// The name of the ordinary account the tests use when they run as root.
pub const TEST_USER: &str = "yadokari-test";
/// A supplementary group of [`TEST_USER`].
pub const TEST_GROUP: &str = "yadokari-grp";

/// The test user's (uid, gid), created on first use (root only).
pub fn test_user() -> Option<(u32, u32)> {
    static USER: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    *USER.get_or_init(|| {
        if !nix::unistd::Uid::effective().is_root() {
            return None;
        }
        let lookup = || nix::unistd::User::from_name(TEST_USER).ok().flatten();
        if lookup().is_none() {
            let _ = Command::new("groupadd").arg(TEST_GROUP).status();
            let _ = Command::new("useradd")
                .args([
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    "-G",
                    TEST_GROUP,
                    TEST_USER,
                ])
                .status();
        }
        let user = lookup().expect("the test user could not be created (useradd)");
        assert!(
            user.uid.as_raw() >= 1000,
            "{TEST_USER} must be an ordinary user"
        );
        Some((user.uid.as_raw(), user.gid.as_raw()))
    })
}

/// Gives `path` and everything below it to the test user when running as root (a customer's
/// SFTP site must belong to an ordinary user); does nothing otherwise.
pub fn give_to_test_user(path: &Path) {
    let Some((uid, gid)) = test_user() else {
        return;
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).expect("readdir") {
            give_to_test_user(&entry.expect("entry").path());
        }
    }
}

impl Site {
    /// An empty site with the test defaults (explained errors on, port 0), owned by the test
    /// user when running as root.
    pub fn new() -> Site {
        Site::owned_by(test_user())
    }

    /// An empty site owned by `owner` (`None`: by whoever runs the tests, e.g. root).
    pub fn owned_by(owner: Option<(u32, u32)>) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let site = Site {
            dir,
            config_extra: String::new(),
            owner,
        };
        std::fs::create_dir(site.htdocs()).expect("mkdir htdocs");
        site.chmod("", 0o755);
        site.own(&site.htdocs());
        site
    }

    /// Gives `path` to the site's owner (no-op when the owner is whoever runs the tests).
    pub fn own(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
        }
    }

    /// The document root.
    pub fn htdocs(&self) -> PathBuf {
        self.dir.path().join("htdocs")
    }

    /// The path of `rel` in the document root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.htdocs().join(rel)
    }

    /// Writes a file with a mode, creating its directories (0755).
    pub fn file(&self, rel: &str, content: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            self.mkdirs(parent);
        }
        std::fs::write(&path, content).expect("write");
        self.own(&path);
        self.chmod(rel, mode);
        path
    }

    /// A directory with a mode.
    pub fn dir(&self, rel: &str, mode: u32) -> PathBuf {
        let path = self.path(rel);
        self.mkdirs(&path);
        self.chmod(rel, mode);
        path
    }

    fn mkdirs(&self, path: &Path) {
        if !path.exists() {
            if let Some(parent) = path.parent() {
                self.mkdirs(parent);
            }
            std::fs::create_dir(path).expect("mkdir");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            self.own(path);
        }
    }

    /// `chmod mode rel`.
    pub fn chmod(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }

    /// Adds TOML to the configuration (sections and keys; see conf/yadokari.toml).
    pub fn config(mut self, toml: &str) -> Site {
        self.config_extra.push_str(toml);
        self.config_extra.push('\n');
        self
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("yadokari.toml")
    }

    /// Writes the configuration file: the test defaults with the added TOML merged in.
    pub fn write_config(&self) {
        std::fs::write(self.config_path(), merged_config(&self.config_extra))
            .expect("write config");
    }

    /// Starts the server on this site.
    pub fn start(&self) -> Server {
        self.write_config();
        self.start_as_written()
    }

    /// Starts the server on the configuration file as it is, without writing it first (after a
    /// `yadokari user ...` edit, or for a second start).
    pub fn start_as_written(&self) -> Server {
        Server::spawn(&["--config", self.config_path().to_str().expect("utf-8 path")])
    }

    /// Starts the server with extra arguments.
    pub fn start_with(&self, args: &[&str]) -> Server {
        self.write_config();
        let config = self.config_path();
        let mut all = vec!["--config", config.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        Server::spawn(&all)
    }
}

/// The test defaults, with `extra` (whole `[section]` blocks) overriding keys of the same
/// section: sections in `extra` are merged by appending their keys to the default section;
/// each `[[array]]` header starts an entry of its own.
fn merged_config(extra: &str) -> String {
    let mut sections: Vec<(String, Vec<String>)> = vec![
        (
            "[server]".into(),
            vec![
                "document_root = \"htdocs\"".into(),
                "http = \"127.0.0.1:0\"".into(),
                "sftp = \"127.0.0.1:0\"".into(),
                "explain_errors = true".into(),
            ],
        ),
        ("[limits]".into(), vec![]),
        ("[cgi]".into(), vec![]),
    ];
    let mut current: Option<usize> = None;
    for line in extra.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            // An array of tables (`[[users]]`) gets a new entry each time it is named.
            let found = match t.starts_with("[[") {
                true => None,
                false => sections.iter().position(|(s, _)| s == t),
            };
            current = Some(match found {
                Some(i) => i,
                None => {
                    sections.push((t.to_string(), vec![]));
                    sections.len() - 1
                }
            });
        } else if !t.is_empty() {
            let i = current.expect("config lines must follow a [section]");
            let key = t.split('=').next().unwrap_or("").trim().to_string();
            sections[i]
                .1
                .retain(|l| l.split('=').next().unwrap_or("").trim() != key);
            sections[i].1.push(t.to_string());
        }
    }
    let mut out = String::new();
    for (head, lines) in sections {
        out.push_str(&head);
        out.push('\n');
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    pub http: SocketAddr,
    output: Arc<(Mutex<String>, Condvar)>,
}

impl Server {
    /// Runs the binary with `args` and waits for its `listening http=` line.
    pub fn spawn(args: &[&str]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        Server::spawn_command(cmd)
    }

    /// Runs `cmd` (which ends by running the binary, e.g. through `sh -c '... exec bin()'`) and
    /// waits for its `listening http=` line.
    pub fn spawn_command(mut cmd: Command) -> Server {
        let mut child = cmd
            .env("YADOKARI_TEST_SERVER_SECRET", "leaked")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start yadokari");
        let output = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        drain(stdout, output.clone());
        drain(stderr, output.clone());
        let mut server = Server {
            child: Some(child),
            http: "0.0.0.0:0".parse().expect("addr"),
            output,
        };
        let line = server.wait_for("listening http=");
        let addr = line.trim().trim_start_matches("listening http=");
        server.http = addr
            .parse()
            .unwrap_or_else(|_| panic!("bad address line {line:?}"));
        server
    }

    /// Waits until the server printed a line containing `needle`; returns that line.
    pub fn wait_for(&self, needle: &str) -> String {
        let (lock, cv) = &*self.output;
        let deadline = Instant::now() + PATIENCE;
        let mut out = lock.lock().expect("lock");
        loop {
            if let Some(line) = out.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "server never printed {needle:?}; output:\n{out}"
            );
            out = cv.wait_timeout(out, deadline - now).expect("wait").0;
        }
    }

    /// Everything the server printed so far.
    pub fn output(&self) -> String {
        self.output.0.lock().expect("lock").clone()
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).expect("kill");
    }

    /// Waits for the server to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not exit; output:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET with the HTTP client.
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[])
    }

    /// A request with the HTTP client (redirects not followed).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        Resp::from(self.prepare(method, path, headers).call())
    }

    /// A request with a body.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        Resp::from(self.prepare(method, path, headers).send_bytes(body))
    }

    /// A request whose body is sent chunked (no Content-Length).
    pub fn send_chunked(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        Resp::from(
            self.prepare(method, path, &[])
                .send(std::io::Cursor::new(body.to_vec())),
        )
    }

    /// A client request with headers, redirects not followed, bounded by [`PATIENCE`].
    fn prepare(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> ureq::Request {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(PATIENCE)
            .build();
        headers
            .iter()
            .fold(agent.request(method, &self.url(path)), |req, (k, v)| {
                req.set(k, v)
            })
    }

    /// Sends raw bytes on a new connection and reads until the server closes it.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(bytes).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// A new connection, with a read timeout of [`PATIENCE`].
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.http).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn drain(pipe: impl Read + Send + 'static, output: Arc<(Mutex<String>, Condvar)>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader
            .read_until(b'\n', &mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            let (lock, cv) = &*output;
            lock.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&line));
            cv.notify_all();
            line.clear();
        }
    });
}

/// A response, as the HTTP client saw it.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl From<Result<ureq::Response, ureq::Error>> for Resp {
    fn from(r: Result<ureq::Response, ureq::Error>) -> Resp {
        let resp = match r {
            Ok(resp) => resp,
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(e) => panic!("request failed: {e}"),
        };
        let status = resp.status();
        let mut names = resp.headers_names();
        names.dedup();
        let headers = names
            .iter()
            .flat_map(|n| {
                resp.all(n)
                    .into_iter()
                    .map(|v| (n.clone(), v.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 31)
            .read_to_end(&mut body)
            .expect("read body");
        Resp {
            status,
            headers,
            body,
        }
    }
}

/// The status code of a raw HTTP response.
pub fn raw_status(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// The body of a raw HTTP response (everything after the blank line).
pub fn raw_body(response: &[u8]) -> &[u8] {
    match response.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &response[i + 4..],
        None => &[],
    }
}

/// Whether an optional tool is on this machine. Missing, the calling test skips, except under
/// `CI=true`, where a skip would hide a missing install step: there it fails.
pub fn have(tool: &str) -> bool {
    let found = Path::new(tool).is_absolute() && Path::new(tool).exists() || on_path(tool);
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true (scripts/test installs it)"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// Whether `tool` is on the PATH (without [`have`]'s rule that CI must have it).
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// Whether the process `pid` is gone (or a zombie, which no longer runs).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// The pids of the live processes whose command line (its words joined by spaces) contains
/// `marker`, such as `sleep 301.7`: how a test finds what a script left behind when the script
/// only knew its pids inside a pid namespace. Zombies have no command line, so they do not count.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| {
                let words: Vec<u8> = line
                    .iter()
                    .map(|&b| if b == 0 { b' ' } else { b })
                    .collect();
                String::from_utf8_lossy(&words).contains(marker)
            })
        })
        .collect()
}

/// Waits (bounded by [`PATIENCE`]) until `check` holds; false if it never did.
pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits (bounded) until `path` exists and returns its content.
pub fn wait_file(path: &Path) -> String {
    assert!(
        eventually(|| path.exists()),
        "{} never appeared",
        path.display()
    );
    let mut text = String::new();
    assert!(
        eventually(|| {
            text = std::fs::read_to_string(path).unwrap_or_default();
            text.ends_with('\n')
        }),
        "{} was never completed",
        path.display()
    );
    text
}

/// What `curl` saw: the status, the header block and the body of the last response.
pub struct Curled {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Curled {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Runs the real `curl` (`-s -i`, bounded by [`PATIENCE`]) with `args` against `path` on
/// `server`.
pub fn curl(server: &Server, args: &[&str], path: &str) -> Curled {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time"])
        .arg(PATIENCE.as_secs().to_string())
        .args(args)
        .arg(server.url(path))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?} {path} failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    Curled {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}
