//! The SFTP half of the harness: a site with an SFTP user and its client key, the server's
//! `listening sftp=` address read back, and the clients the SFTP tests drive: the stock OpenSSH
//! `sftp` in batch mode (with a key, or with a password through `sshpass`), paramiko, and
//! `yadokari user ...`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{PATIENCE, Server, Site, bin};

/// A site with one SFTP user `demo` (site: the document root) and a client key for it.
pub struct SftpSite {
    pub site: Site,
    pub key: PathBuf,
}

impl SftpSite {
    /// `extra` is added to the configuration (after the `[[users]]` entry).
    pub fn new(extra: &str) -> SftpSite {
        let site = Site::new();
        let key = client_key(site.dir.path(), "id_demo");
        let pubkey = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        std::fs::write(site.dir.path().join("authorized_keys"), pubkey).expect("write");
        let site = site.config(&format!(
            "[[users]]\nname = \"demo\"\nauthorized_keys = \"authorized_keys\"\n{extra}"
        ));
        SftpSite { site, key }
    }

    /// Starts the server on this site.
    pub fn start(&self) -> Running {
        Running::of(self.site.start())
    }

    /// Writes the configuration, sets `user`'s password with `yadokari user passwd`, and starts
    /// the server on the edited file.
    pub fn start_with_password(&self, user: &str, password: &str) -> Running {
        self.site.write_config();
        let o = user_cmd(
            &self.site.config_path(),
            &["passwd", user],
            &format!("{password}\n{password}\n"),
        );
        assert!(o.status.success(), "{}", text(&o));
        Running::of(self.site.start_as_written())
    }
}

/// A client key pair made with `ssh-keygen`.
pub fn client_key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    key
}

/// The address from `listening sftp=ADDR`.
pub fn sftp_addr(server: &Server) -> std::net::SocketAddr {
    let line = server.wait_for("listening sftp=");
    line.trim()
        .trim_start_matches("listening sftp=")
        .parse()
        .unwrap_or_else(|_| panic!("bad line {line:?}"))
}

/// A running server and its SFTP address.
pub struct Running {
    pub server: Server,
    pub addr: std::net::SocketAddr,
}

impl Running {
    /// The SFTP side of `server`.
    pub fn of(server: Server) -> Running {
        Running {
            addr: sftp_addr(&server),
            server,
        }
    }

    /// Runs `sftp -b -` with `batch` as user `user` with `key`, under a timeout.
    pub fn batch_as(
        &self,
        user: &str,
        key: Option<&Path>,
        batch: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg(timeout.as_secs().to_string()).arg("sftp");
        cmd.args(ssh_options(self.addr.port()));
        match key {
            Some(k) => {
                cmd.arg("-i").arg(k);
                cmd.args(["-o", "BatchMode=yes"]);
            }
            None => {
                cmd.args(["-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no"]);
            }
        }
        cmd.args(["-b", "-"])
            .arg(format!("{user}@{}", self.addr.ip()));
        run_with_input(cmd, batch)
    }

    /// `sftp -b -` as demo with its key.
    pub fn batch(&self, key: &Path, batch: impl AsRef<[u8]>) -> Output {
        self.batch_as("demo", Some(key), batch, PATIENCE)
    }

    /// `sftp -b -` with a password through sshpass.
    pub fn batch_password(&self, user: &str, password: &str, batch: &str) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "sshpass", "-p", password, "sftp"])
            .args(ssh_options(self.addr.port()))
            .args(password_options(1))
            .arg(format!("{user}@{}", self.addr.ip()));
        run_with_input(cmd, batch)
    }

    /// `sftp -b -` as demo with `key`, left running: the test writes the batch to its stdin
    /// (the session stays open until stdin is closed); its output is discarded.
    pub fn spawn_batch(&self, key: &Path) -> Child {
        Command::new("sftp")
            .args(ssh_options(self.addr.port()))
            .arg("-i")
            .arg(key)
            .args(["-o", "BatchMode=yes", "-b", "-"])
            .arg(format!("demo@{}", self.addr.ip()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sftp")
    }

    /// Starts `put local remote` as demo with `key`; returns the running client, which exits
    /// once the upload is over (its batch ends there).
    pub fn spawn_put(&self, key: &Path, local: &Path, remote: &str) -> Child {
        use std::io::Write;
        let mut child = self.spawn_batch(key);
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "put {} {remote}", local.display()).expect("batch");
        child
    }
}

/// Options every client run uses: no user config, no host key checks, quiet.
pub fn ssh_options(port: u16) -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=20",
        "-P",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([port.to_string()])
    .collect()
}

/// Options for a password login in batch mode, with `prompts` attempts, then `-b -`.
pub fn password_options(prompts: u32) -> Vec<String> {
    let prompts = format!("NumberOfPasswordPrompts={prompts}");
    [
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        &prompts,
        // sftp -b turns BatchMode on, which forbids passwords; the first value wins.
        "-o",
        "BatchMode=no",
        "-b",
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs `cmd` with `input` on its stdin; returns what it printed and how it ended.
pub fn run_with_input(mut cmd: Command, input: impl AsRef<[u8]>) -> Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_ref())
        .expect("write batch");
    child.wait_with_output().expect("wait client")
}

/// A client's exit status and output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `yadokari user ...` against `config`, with `stdin`.
/// The real `git` client in `dir`, over SSH with `key` to the endpoint (no known hosts, no
/// agent); its output, whatever its status.
pub fn git(key: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -o BatchMode=yes -i {}",
                key.display()
            ),
        )
        .output()
        .expect("git")
}

pub fn user_cmd(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("user").args(args).arg("--config").arg(config);
    run_with_input(cmd, stdin)
}

/// Python with paramiko (Debian's python3-paramiko), or None to skip.
pub fn paramiko() -> Option<&'static str> {
    const PY: &str = "/usr/bin/python3";
    let ok = Command::new(PY)
        .args(["-c", "import paramiko"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3-paramiko is required under CI=true"
        );
        eprintln!("skipping: python3-paramiko is not installed");
        return None;
    }
    Some(PY)
}

/// The start of every paramiko script: connects to argv[1]:argv[2] as demo with the key in
/// argv[3], as Transport `t`.
pub const PRELUDE: &str = r#"
import sys, socket, struct, hashlib, paramiko, time
host, port, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = paramiko.Ed25519Key.from_private_key_file(keyfile)
t = paramiko.Transport(socket.create_connection((host, port)))
t.start_client(timeout=30)
t.auth_publickey("demo", key)
"#;

impl Running {
    /// Runs [`PRELUDE`] then `body` with paramiko (`py`) against this server as demo with
    /// `key`; `extra` follows the three prelude arguments.
    pub fn paramiko(&self, py: &str, key: &Path, body: &str, extra: &[&str]) -> Output {
        let (host, port) = (self.addr.ip().to_string(), self.addr.port().to_string());
        let key = key.to_str().expect("utf-8");
        let mut args = vec![host.as_str(), port.as_str(), key];
        args.extend_from_slice(extra);
        python(py, &format!("{PRELUDE}{body}"), &args)
    }
}

/// Runs a Python script with arguments, under a timeout.
pub fn python(py: &str, script: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", py, "-c", script]).args(args);
    run_with_input(cmd, "")
}

/// Waits (bounded by [`PATIENCE`]) until an upload into `dir` is under way: its temporary file
/// exists and has data. Returns the temporary's path.
pub fn upload_temporary(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = std::fs::read_dir(dir).expect("ls").flatten().find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".ht-yadokari-upload-")
        });
        if let Some(e) = found
            && e.metadata().map(|m| m.len() > 0).unwrap_or(false)
        {
            return e.path();
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The permission bits (with set-id and sticky) of `path`.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// A file of `mib` MiB of `byte`, written in pieces (never the whole file in memory).
pub fn filled(path: &Path, byte: u8, mib: usize) {
    use std::io::Write;
    let chunk = vec![byte; 1024 * 1024];
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for _ in 0..mib {
        f.write_all(&chunk).expect("write");
    }
    f.flush().expect("flush");
}

/// A local file `dir/name` with `content`, to upload.
pub fn local(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write local file");
    p
}
