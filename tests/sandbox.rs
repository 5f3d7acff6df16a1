//! Each customer's scripts run in a shell of their own (issue 14): the system read-only, their
//! home read-write, a private `/tmp`, and nothing of any other customer's nor of the server's;
//! a fresh pid namespace per request, so that everything a request started ends with it; a
//! cgroup per customer, so that a fork bomb or a memory hog stops at that site's limits (with
//! an explained 500) while the others are served; optionally no network. Started as an
//! ordinary user, the server says what it cannot isolate and still runs scripts.
//!
//! The tests about isolation need root to set up customers' identities; they skip without it.
//! Only customers' sites are sandboxed, so every script here is requested as `/~name/...`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    Host, PATIENCE, Server, as_root, bin, eventually, get, give_to_test_user, have, process_gone,
    processes_with, raw_status, test_user,
};

/// The issue's "gone within a second of the response", with a second of slack for a loaded
/// two-core machine. The one timing bound in these tests, because the issue asks for it.
const AT_ONCE: Duration = Duration::from_secs(2);

/// Waits until `check` holds, for at most `bound`; false if it never did.
fn within(bound: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host whose customers `names` (added with `user add`) get identities and homes of their
/// own; `sandbox` holds `[sandbox]` keys, `extra` further sections.
fn host(sandbox: &str, extra: &str, names: &[&str]) -> Host {
    let h = Host::new(&format!(
        "[hosting]\nhomes = \"homes\"\nuid_range = [24000, 24999]\n[sandbox]\n{sandbox}\n{extra}"
    ));
    for name in names {
        h.user(&["add", name]);
    }
    h
}

const HELLO: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello\\n'\n";

/// A shell script's head: the header block, then `probe WHAT CMD...`, which prints
/// `WHAT: ok OUTPUT` or `WHAT: failed: ERROR`.
const PROBE: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\n\n'
probe() {
  what=$1; shift
  if out=$("$@" 2>&1); then echo "$what: ok $out"; else echo "$what: failed: $out"; fi
}
"#;

/// What `probe` said for `what` (the rest of its line).
fn verdict<'a>(body: &'a str, what: &str) -> &'a str {
    let prefix = format!("{what}: ");
    body.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("the script said nothing about {what}: {body}"))
}

/// Asserts that the probe `what` failed because the path does not exist at all.
fn absent(body: &str, what: &str) {
    let said = verdict(body, what);
    assert!(
        said.starts_with("failed") && said.contains("No such file or directory"),
        "{what} should find nothing there (ENOENT): {body}"
    );
}

/// Asserts that the probe `what` failed (for any reason).
fn failed(body: &str, what: &str) {
    assert!(
        verdict(body, what).starts_with("failed"),
        "{what} should fail: {body}"
    );
}

/// Asserts that the probe `what` worked.
fn ok(body: &str, what: &str) {
    assert!(
        verdict(body, what).starts_with("ok"),
        "{what} should work: {body}"
    );
}

#[test]
fn a_customer_sees_the_system_read_only_their_home_and_nothing_of_anyone_else() {
    if !as_root() {
        return;
    }
    let h = host("", "", &["alice", "bob"]);
    let (root, alice, bob) = (h.root.clone(), h.home("alice"), h.home("bob"));
    const SECRET: &str = "bob-db-password-4711";
    h.site_file(
        "bob",
        "config.php",
        format!("<?php $pw = '{SECRET}';\n"),
        0o644,
    );
    // A world-writable place outside every home: without a sandbox, alice could write there.
    let drop = root.join("drop");
    std::fs::create_dir(&drop).expect("mkdir");
    std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // Names no other run of this test uses, for the marks in the private temporary places.
    let tag = root
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let tag = tag.trim_start_matches('.');
    let (b, r, a) = (bob.display(), root.display(), alice.display());
    h.site_file(
        "alice",
        "cgi-bin/probe.cgi",
        format!(
            "{PROBE}probe read-bob cat {b}/public_html/config.php
probe list-bob ls {b}/public_html
probe stat-bob stat {b}/public_html/config.php
probe list-bob-home ls -a {b}
probe read-config cat {r}/y.toml
probe read-docroot cat {r}/htdocs/index.html
probe write-etc touch /etc/yadokari-probe-{tag}
probe write-usr touch /usr/yadokari-probe-{tag}
probe write-outside touch {r}/drop/from-alice
probe read-share ls /usr/share
probe write-home sh -c 'echo mine > {a}/public_html/written.txt'
probe write-tmp sh -c 'echo a > /tmp/mark-{tag} && echo a > /var/tmp/mark-{tag} && echo a > /dev/shm/mark-{tag}'
"
        ),
        0o755,
    );
    h.site_file(
        "bob",
        "cgi-bin/probe.cgi",
        format!(
            "{PROBE}probe read-own cat {b}/public_html/config.php
probe alice-tmp cat /tmp/mark-{tag}
probe alice-var-tmp cat /var/tmp/mark-{tag}
probe alice-shm cat /dev/shm/mark-{tag}
"
        ),
        0o755,
    );
    let s = h.start();

    let (status, body) = get(&s.server, "localhost", "/~alice/cgi-bin/probe.cgi");
    assert_eq!(status, 200, "{body}");
    for what in ["read-bob", "list-bob", "stat-bob", "list-bob-home"] {
        absent(&body, what);
    }
    assert!(!body.contains(SECRET), "alice read bob's secret: {body}");
    for what in [
        "read-config",
        "read-docroot",
        "write-etc",
        "write-usr",
        "write-outside",
    ] {
        failed(&body, what);
    }
    assert!(
        !drop.join("from-alice").exists(),
        "alice wrote outside her home"
    );
    for made in ["/etc", "/usr"] {
        assert!(
            !Path::new(made)
                .join(format!("yadokari-probe-{tag}"))
                .exists()
        );
    }
    ok(&body, "read-share");
    ok(&body, "write-home");
    assert_eq!(
        std::fs::read_to_string(alice.join("public_html/written.txt"))
            .ok()
            .as_deref(),
        Some("mine\n"),
        "her home is hers to write, at its real place: {body}"
    );
    ok(&body, "write-tmp");
    for place in ["/tmp", "/var/tmp", "/dev/shm"] {
        let mark = Path::new(place).join(format!("mark-{tag}"));
        assert!(
            !mark.exists(),
            "{} is the host's, not alice's private one",
            mark.display()
        );
    }

    let (status, body) = get(&s.server, "localhost", "/~bob/cgi-bin/probe.cgi");
    assert_eq!(status, 200, "{body}");
    assert!(
        verdict(&body, "read-own").contains(SECRET),
        "bob reads his own file: {body}"
    );
    for what in ["alice-tmp", "alice-var-tmp", "alice-shm"] {
        absent(&body, what);
    }
}

#[test]
fn perl_python_php_and_git_run_in_a_customers_sandbox() {
    if !as_root() {
        return;
    }
    let php = have("/usr/bin/php-cgi");
    let handlers = match php {
        true => "[cgi]\nhandlers = { \".php\" = \"/usr/bin/php-cgi\" }\n",
        false => "",
    };
    let h = host("", handlers, &["alice"]);
    let home = h.home("alice");
    let mut checks: Vec<(&str, String)> = Vec::new();
    if have("perl") {
        h.site_file(
            "alice",
            "cgi-bin/hello.pl",
            "#!/usr/bin/perl\nuse strict;\nuse POSIX ();\nprint \"Content-Type: text/plain\\n\\nperl says \", 6 * 7, \"\\n\";\n",
            0o755,
        );
        checks.push(("/~alice/cgi-bin/hello.pl", "perl says 42\n".into()));
    }
    if have("/usr/bin/python3") {
        h.site_file(
            "alice",
            "cgi-bin/hello.py",
            "#!/usr/bin/python3\nimport json, os\nprint('Content-Type: text/plain')\nprint()\nprint('python says', json.dumps({'q': os.environ['QUERY_STRING']}))\n",
            0o755,
        );
        checks.push((
            "/~alice/cgi-bin/hello.py?x",
            "python says {\"q\": \"x\"}\n".into(),
        ));
    }
    if php {
        h.site_file(
            "alice",
            "info.php",
            "<?php echo 'php says ', 6 * 7, \"\\n\";",
            0o644,
        );
        checks.push(("/~alice/info.php", "php says 42\n".into()));
    }
    let git = have("git");
    if git {
        h.site_file(
            "alice",
            "cgi-bin/git.cgi",
            format!(
                "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ngit --version\nHOME={home} git init -q {home}/repo && echo initialised\n",
                home = home.display()
            ),
            0o755,
        );
    }
    let s = h.start();
    for (path, expected) in &checks {
        let (status, body) = get(&s.server, "localhost", path);
        assert_eq!((status, body.as_str()), (200, expected.as_str()), "{path}");
    }
    if git {
        let (status, body) = get(&s.server, "localhost", "/~alice/cgi-bin/git.cgi");
        assert_eq!(status, 200, "{body}");
        assert!(
            body.starts_with("git version") && body.contains("initialised"),
            "{body}"
        );
        assert!(
            home.join("repo/.git/HEAD").exists(),
            "git init wrote in her home"
        );
    }
}

/// A shell script that says its pid (`$$`) and its host pid, starts a daemon with `start`
/// (which must write the daemon's host pid to `NAME.pid` in the script's directory), waits
/// until the daemon runs and says `daemon=PID`, then does `rest`.
fn daemon_script(name: &str, start: &str, rest: &str) -> String {
    format!(
        r#"#!/bin/sh
printf 'Content-Type: text/plain\n\n'
read host _ </proc/self/stat
echo "script pid=$$ host=$host"
{start}
i=0
while [ ! -s {name}.pid ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
echo "daemon=$(cat {name}.pid)"
{rest}
"#
    )
}

/// `setsid`, a daemon that ends by running `sleep MARKER`, its host pid in `NAME.pid`; then
/// the script itself does `rest`.
fn setsid_daemon(name: &str, marker: &str, rest: &str) -> String {
    daemon_script(
        name,
        &format!(
            "setsid sh -c 'read p _ </proc/self/stat; echo $p > {name}.pid; exec sleep {marker}' </dev/null >/dev/null 2>&1 &"
        ),
        rest,
    )
}

/// Reads a response until its script has said `daemon=`; the connection stays open.
fn read_until_daemon(stream: std::net::TcpStream) -> BufReader<std::net::TcpStream> {
    let mut reader = BufReader::new(stream);
    let mut seen = String::new();
    while !seen.contains("daemon=") {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
    }
    reader
}

/// The `daemon=PID` a script said.
fn daemon_pid(body: &str) -> i32 {
    body.lines()
        .find_map(|l| l.strip_prefix("daemon=")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("the script did not see its daemon start: {body}"))
}

#[test]
fn everything_a_request_started_is_gone_within_a_second_of_its_response() {
    if !as_root() {
        return;
    }
    let h = host("", "", &["alice"]);
    h.site_file(
        "alice",
        "cgi-bin/setsid.cgi",
        setsid_daemon("setsid", "301.7101", ""),
        0o755,
    );
    h.site_file(
        "alice",
        "cgi-bin/trap.cgi",
        daemon_script(
            "trap",
            r#"setsid sh -c 'trap "" TERM HUP INT; read p _ </proc/self/stat; echo $p > trap.pid; while :; do sleep 301.7103; done' </dev/null >/dev/null 2>&1 &"#,
            "",
        ),
        0o755,
    );
    let mut daemons = vec![("setsid", "301.7101"), ("trap", "301.7103")];
    if have("/usr/bin/python3") {
        h.site_file(
            "alice",
            "cgi-bin/double.cgi",
            r#"#!/usr/bin/python3
import os, sys
sys.stdout.write('Content-Type: text/plain\n\n')
sys.stdout.flush()
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.write(w, open('/proc/self/stat').read().split()[0].encode())
        os.close(w)
        null = os.open('/dev/null', os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execvp('sleep', ['sleep', '301.7102'])
    os._exit(0)
os.close(w)
print('daemon=' + os.read(r, 32).decode())
"#,
            0o755,
        );
        daemons.push(("double", "301.7102"));
    }
    let s = h.start();
    for (name, marker) in daemons {
        let (status, body) = get(
            &s.server,
            "localhost",
            &format!("/~alice/cgi-bin/{name}.cgi"),
        );
        assert_eq!(status, 200, "{name}: {body}");
        let pid = daemon_pid(&body);
        assert!(
            within(AT_ONCE, || process_gone(pid)
                && processes_with(marker).is_empty()),
            "{name}: the daemon {pid} outlived its request by more than {AT_ONCE:?}: {:?}",
            processes_with(marker)
        );
        if name != "double" {
            // The script is its pid namespace's first process; its /proc shows host pids.
            let line = body.lines().next().unwrap_or_default();
            assert!(line.starts_with("script pid=1 host="), "{body}");
            assert!(!line.ends_with("host=1") && pid != 1, "{body}");
        }
    }
}

#[test]
fn the_run_timeout_kills_everything_the_request_started() {
    if !as_root() {
        return;
    }
    let h = host("", "[cgi]\nrun_timeout_secs = 2\n", &["alice"]);
    let stuck = setsid_daemon("stuck", "301.7104", "sleep 301.7104");
    h.site_file("alice", "cgi-bin/stuck.cgi", stuck, 0o755);
    let s = h.start();
    // Past the run limit, the response is cut: that is the moment everything is killed.
    let (_, body) = get(&s.server, "localhost", "/~alice/cgi-bin/stuck.cgi");
    let pid = daemon_pid(&body);
    assert!(
        within(AT_ONCE, || process_gone(pid)
            && processes_with("301.7104").is_empty()),
        "the script or its daemon outlived the run limit: {:?}",
        processes_with("301.7104")
    );
}

#[test]
fn a_client_leaving_kills_everything_its_request_started() {
    if !as_root() {
        return;
    }
    let h = host("", "", &["alice"]);
    let held = setsid_daemon("held", "301.7105", "sleep 301.7105");
    h.site_file("alice", "cgi-bin/held.cgi", held, 0o755);
    let s = h.start();
    let mut stream = s.server.connect();
    stream
        .write_all(b"GET /~alice/cgi-bin/held.cgi HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    drop(read_until_daemon(stream));
    assert!(
        eventually(|| processes_with("301.7105").is_empty()),
        "the script or its daemon outlived the client: {:?}",
        processes_with("301.7105")
    );
}

/// Forks sleepers (`sleep 301.7107`) until a fork fails (at most 200: bounded, should the
/// limit not hold), says how far it got in `bomb.held`, waits for `bomb.release`, then ends
/// without a header block.
const BOMB: &str = r#"#!/usr/bin/python3
import os, time
forked, error = 0, 'none'
for _ in range(200):
    try:
        if os.fork() == 0:
            try:
                os.execvp('sleep', ['sleep', '301.7107'])
            finally:
                os._exit(0)
        forked += 1
    except OSError as e:
        error = e.strerror
        break
with open('bomb.held', 'w') as f:
    f.write('forked %d, then %s\n' % (forked, error))
for _ in range(600):
    if os.path.exists('bomb.release'):
        break
    time.sleep(0.05)
os._exit(1)
"#;

#[test]
fn a_fork_bomb_stops_at_its_sites_process_limit_while_other_sites_are_served() {
    if !as_root() || !have("/usr/bin/python3") {
        return;
    }
    let h = host("", "", &["alice", "bob"]);
    h.set_user("alice", "sandbox_processes", 50i64);
    let bomb = h.site_file("alice", "cgi-bin/bomb.cgi", BOMB, 0o755);
    h.site_file("bob", "cgi-bin/hello.cgi", HELLO, 0o755);
    let s = h.start();
    let request = {
        let stream = s.server.connect();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut stream = stream;
            stream
                .write_all(b"GET /~alice/cgi-bin/bomb.cgi HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .expect("send");
            let mut out = Vec::new();
            let _ = stream.read_to_end(&mut out);
            out
        })
    };
    let bin = bomb.parent().expect("cgi-bin");
    let held = crate::support::wait_file(&bin.join("bomb.held"));
    assert!(
        !held.contains("then none"),
        "every fork succeeded: the process limit of 50 did not hold ({held})"
    );
    // Alice's site is at its limit; bob's is not alice's.
    for _ in 0..5 {
        let (status, body) = get(&s.server, "localhost", "/~bob/cgi-bin/hello.cgi");
        assert_eq!(
            (status, body.as_str()),
            (200, "hello\n"),
            "bob during the bomb"
        );
    }
    std::fs::write(bin.join("bomb.release"), "").expect("release");
    let raw = request.join().expect("request");
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(raw_status(&raw), 500, "{text}");
    assert!(text.contains("process limit of this site"), "{text}");
    assert!(
        within(AT_ONCE, || processes_with("301.7107").is_empty()),
        "the bomb's sleepers outlived it: {:?}",
        processes_with("301.7107")
    );
}

#[test]
fn a_memory_hog_is_stopped_at_its_sites_memory_limit_and_told_why() {
    if !as_root() || !have("/usr/bin/python3") {
        return;
    }
    // cgi.limit_memory_bytes (RLIMIT_AS, 1 GiB) stays above the hog: the cgroup stops it.
    let h = host("", "", &["alice", "bob"]);
    h.set_user("alice", "sandbox_memory_bytes", 64 * 1024 * 1024i64);
    // Each chunk is written, so its pages are really used.
    h.site_file(
        "alice",
        "cgi-bin/hog.cgi",
        "#!/usr/bin/python3\nchunks = [b'x' * (1 << 20) for _ in range(200)]\nprint('Content-Type: text/plain')\nprint()\nprint('allocated', len(chunks), 'MiB')\n",
        0o755,
    );
    h.site_file("bob", "cgi-bin/hello.cgi", HELLO, 0o755);
    let s = h.start();
    let (status, body) = get(&s.server, "localhost", "/~alice/cgi-bin/hog.cgi");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("64 MiB") && body.contains("memory limit of this site"),
        "{body}"
    );
    let log = h.home("alice").join("logs/error.log");
    let mut text = String::new();
    assert!(
        eventually(|| {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("memory limit of this site")
        }),
        "alice's error log does not say why: {text:?}"
    );
    let (status, body) = get(&s.server, "localhost", "/~bob/cgi-bin/hello.cgi");
    assert_eq!((status, body.as_str()), (200, "hello\n"));
}

#[test]
fn with_network_none_a_script_cannot_reach_the_hosts_loopback() {
    if !as_root() || !have("/usr/bin/python3") {
        return;
    }
    let h = host("network = \"none\"\n", "", &["alice", "bob"]);
    h.set_user("bob", "sandbox_network", "host");
    let connect = "#!/usr/bin/python3
import os, socket
print('Content-Type: text/plain')
print()
try:
    socket.create_connection(('127.0.0.1', int(os.environ['QUERY_STRING'])), timeout=10).close()
    print('connected')
except OSError as e:
    print('failed:', e)
";
    for name in ["alice", "bob"] {
        h.site_file(name, "cgi-bin/connect.cgi", connect, 0o755);
    }
    let s = h.start();
    let port = s.server.http.port();
    let (status, body) = get(
        &s.server,
        "localhost",
        &format!("/~alice/cgi-bin/connect.cgi?{port}"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("failed"), "network none: {body}");
    let (status, body) = get(
        &s.server,
        "localhost",
        &format!("/~bob/cgi-bin/connect.cgi?{port}"),
    );
    assert_eq!(
        (status, body.as_str()),
        (200, "connected\n"),
        "network host"
    );
}

/// The banner line that says what isolation is in force (it starts with `sandbox `).
fn sandbox_line(server: &Server) -> String {
    let mut line = None;
    eventually(|| {
        line = server
            .output()
            .lines()
            .find(|l| l.starts_with("sandbox "))
            .map(str::to_string);
        line.is_some()
    });
    line.unwrap_or_else(|| panic!("no `sandbox ` line: {}", server.output()))
}

#[test]
fn as_root_with_required_the_server_starts_and_says_everything_is_in_force() {
    if !as_root() {
        return;
    }
    let h = host("required = true\n", "", &["alice"]);
    h.site_file("alice", "cgi-bin/hello.cgi", HELLO, 0o755);
    let s = h.start();
    let line = sandbox_line(&s.server);
    assert!(!line.contains("missing:"), "{line}");
    for part in [
        "files=namespace",
        "processes=pid-namespace",
        "limits=cgroup-v",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    let (status, body) = get(&s.server, "localhost", "/~alice/cgi-bin/hello.cgi");
    assert_eq!((status, body.as_str()), (200, "hello\n"));
}

/// A host for a server run as the ordinary test user: a default site and customer `carol`
/// (her site a directory of the host's), with hello scripts, all owned by that user.
fn ordinary_host(sandbox: &str) -> Host {
    let h = Host::new(&format!(
        "[sandbox]\n{sandbox}\n[[users]]\nname = \"carol\"\nsite = \"carol\"\ndomains = [\"carol.example\"]\n"
    ));
    let files = [
        ("htdocs/cgi-bin/hello.cgi", HELLO.to_string()),
        ("carol/cgi-bin/hello.cgi", HELLO.to_string()),
        (
            "carol/cgi-bin/hello.pl",
            "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\n\\nperl says hello\\n\";\n".into(),
        ),
        (
            "carol/cgi-bin/daemon.cgi",
            setsid_daemon("daemon", "301.7106", ""),
        ),
    ];
    for (rel, text) in &files {
        let path = h.root.join(rel);
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
    let dirs = ["htdocs/cgi-bin", "carol", "carol/cgi-bin"];
    for rel in files.iter().map(|(rel, _)| *rel).chain(dirs) {
        std::fs::set_permissions(h.root.join(rel), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    // The server's user owns the whole host, so it can read its configuration and write its
    // host key, and every site is its own.
    give_to_test_user(&h.root);
    h
}

/// `program args...` run as the ordinary test user.
fn as_test_user(program: &str, args: &[&std::ffi::OsStr]) -> Command {
    let (uid, gid) = test_user().expect("root has a test user");
    let mut cmd = Command::new(program);
    cmd.args(args).uid(uid).gid(gid);
    cmd
}

#[test]
fn started_as_an_ordinary_user_the_server_says_what_is_missing_and_scripts_still_run() {
    if !as_root() {
        return;
    }
    let h = ordinary_host("");
    let config = h.config();
    let server =
        Server::spawn_command(as_test_user(bin(), &["--config".as_ref(), config.as_ref()]));
    let line = sandbox_line(&server);
    assert!(
        line.contains("missing:") && line.contains("namespace") && line.contains("cgroup"),
        "an unprivileged server names what it cannot isolate: {line}"
    );
    let (status, body) = get(&server, "localhost", "/cgi-bin/hello.cgi");
    assert_eq!(
        (status, body.as_str()),
        (200, "hello\n"),
        "the default site"
    );
    let (status, body) = get(&server, "carol.example", "/cgi-bin/hello.cgi");
    assert_eq!(
        (status, body.as_str()),
        (200, "hello\n"),
        "a customer's site"
    );
    if have("perl") {
        let (status, body) = get(&server, "carol.example", "/cgi-bin/hello.pl");
        assert_eq!((status, body.as_str()), (200, "perl says hello\n"));
    }
    // Without a pid namespace, the reaper still ends a setsid daemon (in about 2 s).
    let (status, body) = get(&server, "carol.example", "/cgi-bin/daemon.cgi");
    assert_eq!(status, 200, "{body}");
    let pid = daemon_pid(&body);
    assert!(
        eventually(|| process_gone(pid) && processes_with("301.7106").is_empty()),
        "the daemon {pid} outlived its request"
    );
}

#[test]
fn started_as_an_ordinary_user_with_required_the_server_refuses_to_start() {
    if !as_root() {
        return;
    }
    let h = ordinary_host("required = true\n");
    let (config, secs) = (h.config(), PATIENCE.as_secs().to_string());
    // Bounded: a server that started anyway is stopped by `timeout` (exit 124).
    let out = as_test_user(
        "timeout",
        &[
            secs.as_ref(),
            bin().as_ref(),
            "--config".as_ref(),
            config.as_ref(),
        ],
    )
    .output()
    .expect("run");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "sandbox.required without root must stop the start: {:?} {said}",
        out.status
    );
    assert!(
        said.contains("namespace") && said.contains("cgroup"),
        "the refusal names what is missing: {said}"
    );
    assert!(!said.contains("listening http="), "{said}");
}

#[test]
fn removing_a_customer_ends_their_running_scripts_and_explain_names_their_sandbox() {
    if !as_root() {
        return;
    }
    let h = host("", "", &["alice", "bob"]);
    let held = setsid_daemon("gone", "301.7109", "sleep 301.7109");
    h.site_file("alice", "cgi-bin/gone.cgi", held, 0o755);
    let explained = Command::new(bin())
        .args(["explain", "--config"])
        .arg(h.root.join("y.toml"))
        .arg(h.home("alice").join("public_html/cgi-bin/gone.cgi"))
        .output()
        .expect("explain");
    let said = String::from_utf8_lossy(&explained.stdout);
    assert!(
        said.contains("sandbox: customer alice: files: its own mount namespace")
            && said.contains("processes: a pid namespace per request")
            && said.contains("limits: cgroup v"),
        "explain names the isolation her scripts get: {said}"
    );
    let s = h.start();
    let mut stream = s.server.connect();
    stream
        .write_all(b"GET /~alice/cgi-bin/gone.cgi HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let _held = read_until_daemon(stream); // open: only the removal may end it
    assert!(!processes_with("301.7109").is_empty(), "her script runs");
    h.user(&["remove", "alice"]);
    assert!(
        eventually(|| processes_with("301.7109").is_empty()),
        "a removed customer's scripts are ended: {:?}",
        processes_with("301.7109")
    );
    assert_eq!(
        get(&s.server, "localhost", "/~bob/").0,
        200,
        "bob is still served"
    );
}
