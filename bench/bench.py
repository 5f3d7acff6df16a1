#!/usr/bin/env python3
"""yadokari's benchmark suite: yadokari side by side with Apache, lighttpd and nginx+fcgiwrap.

Called by `bench/run` (which installs the packages and builds the binary). Python 3 stdlib only.

One temporary directory holds one document root shared by every target, each server's own
config, logs and sockets. Every server is started from its own config on 127.0.0.1, CGIs run as
`nobody` everywhere, and each server is stopped by the pid this script started (its process
group, which it leads). Workloads run round by round with the order of the targets rotated each
round (A B C D, B C D A, ...), so drift on a shared machine hits all of them alike. The result is
a table of medians with min-max, the ratios yadokari / best anchor and yadokari / ceiling,
saved as CSV under bench/results/.
"""

import argparse
import csv
import ctypes
import datetime
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import cells  # one table cell (bench/cells.py)
import htaccess  # the .htaccess case (bench/htaccess.py, next to this file)
import deploy
import sandbox
import service  # the sandbox case (bench/sandbox.py)
import many  # the many-customers case (bench/many.py, next to this file)
import nginx_conf  # the nginx.conf all nginx servers share (bench/nginx_conf.py)
import tls  # HTTPS against nginx (bench/tls.py, next to this file)

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
SSH_USER = "ydkbench"  # throwaway account for the private OpenSSH sshd
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

HELLO_C = r"""
#include <unistd.h>
int main(void) {
    static const char m[] = "Content-Type: text/plain\r\n\r\nHello, world!\n";
    return write(1, m, sizeof m - 1) == sizeof m - 1 ? 0 : 1;
}
"""
COUNT_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    static char buf[1 << 16];
    unsigned long long n = 0;
    ssize_t r;
    while ((r = read(0, buf, sizeof buf)) != 0) {
        if (r < 0) return 1;
        n += (unsigned long long)r;
    }
    printf("Content-Type: text/plain\r\n\r\n%llu\n", n);
    return 0;
}
"""
HELLO_SH = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nHello, world!\\n'\n"
HELLO_PL = "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\r\\n\\r\\nHello, world!\\n\";\n"

# name, url path, wrk connections, extra wrk args, kind of figure, ceiling program
WORKLOADS = [
    ("cgi-c-ka-c1", "/cgi-bin/hello", 1, [], "req/s", ("hello", 1)),
    ("cgi-c-ka-c8", "/cgi-bin/hello", 8, [], "req/s", ("hello", 2)),
    ("cgi-c-ka-c64", "/cgi-bin/hello", 64, [], "req/s", ("hello", 2)),
    ("cgi-c-close-c64", "/cgi-bin/hello", 64, ["-H", "Connection: close"], "req/s", ("hello", 2)),
    ("cgi-sh-c1", "/cgi-bin/hello.sh", 1, [], "req/s", ("hello.sh", 1)),
    ("cgi-sh-c64", "/cgi-bin/hello.sh", 64, [], "req/s", ("hello.sh", 2)),
    ("cgi-pl-c1", "/cgi-bin/hello.pl", 1, [], "req/s", ("hello.pl", 1)),
    ("cgi-pl-c64", "/cgi-bin/hello.pl", 64, [], "req/s", ("hello.pl", 2)),
    ("static-1k-c64", "/1k.bin", 64, [], "req/s", None),
    ("static-1m-c64", "/1m.bin", 64, [], "MB/s", None),
    ("post-10m-c1", "/cgi-bin/count", 1, ["post"], "MB/s", None),
]
BYTES_PER_REQ = {"static-1m-c64": MIB, "post-10m-c1": 10 * MIB, **tls.BYTES_PER_REQ}
MEMORY_UNDER = "cgi-c-ka-c64"  # PSS is sampled while this workload runs


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, check=True, timeout=timeout, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


# ---------------------------------------------------------------- memory (PSS of a process tree)

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


KCMP = {"x86_64": 312, "aarch64": 272}.get(platform.machine())
LIBC = ctypes.CDLL(None, use_errno=True)


def same_memory(pid, other):
    """Whether two processes share one address space (kcmp KCMP_VM): a vfork-style child
    between clone and exec, whose smaps would count its parent's memory a second time."""
    if KCMP is None or other is None:
        return False
    return LIBC.syscall(KCMP, pid, other, 1, 0, 0) == 0


def tree_memory(roots):
    """(PSS KiB, RSS KiB, processes) summed over the roots and all their descendants."""
    kids = children_map()
    todo, seen = [(r, None) for r in roots], set()
    pss = rss = 0
    while todo:
        pid, parent = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend((k, pid) for k in kids.get(pid, []))
        if same_memory(pid, parent):
            continue
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            pass  # gone meanwhile (a finished CGI) or a kernel thread
    return pss, rss, len(seen)


class Sampler(threading.Thread):
    """Samples a target's tree PSS every 0.5 s while a load runs."""

    def __init__(self, roots, delay):
        super().__init__(daemon=True)
        self.roots, self.delay, self.samples = roots, delay, []
        self.done = threading.Event()

    def run(self):
        if self.done.wait(self.delay):
            return
        while not self.done.is_set():
            self.samples.append(tree_memory(self.roots))
            self.done.wait(0.5)


# ---------------------------------------------------------------- targets

class Target:
    name = "?"
    anchor = True

    def __init__(self, tmp, docroot):
        self.tmp, self.docroot = tmp, docroot
        self.dir = os.path.join(tmp, self.name)
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        self.port = free_port()
        self.procs = []

    def spawn(self, cmd, logname, env=None):
        out = open(os.path.join(self.tmp, "logs", logname), "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        out.close()
        self.procs.append(p)
        return p

    def roots(self):
        return [p.pid for p in self.procs]

    def cpu_ticks(self):
        """utime + stime of the server's own process, in clock ticks; None for the anchors,
        whose work is spread over processes that come and go."""
        return None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        # Stop by the pid we started; its process group (it leads a session we created) is
        # then swept so that no worker outlives it. Nothing else is signalled.
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


class Yadokari(Target):
    name = "yadokari"
    anchor = False

    def __init__(self, tmp, docroot, binary, sftp_site, pubkey, name="yadokari", users="",
                 extra="", server=""):
        """`users`: more `[[users]]` entries for the config (the many-customers server);
        `extra`: more sections (the .htaccess servers' `[htaccess]`); `server`: more lines
        for `[server]` (the admin listener, a pid file)."""
        self.name = name
        super().__init__(tmp, docroot)
        self.binary, self.sftp_port = binary, free_port()
        keys = os.path.join(self.dir, "authorized_keys")
        shutil.copy(pubkey, keys)
        self.conf = os.path.join(self.dir, "yadokari.toml")
        with open(self.conf, "w") as f:
            f.write(f"""[server]
document_root = "{docroot}"
http = "127.0.0.1:{self.port}"
sftp = "127.0.0.1:{self.sftp_port}"
explain_errors = false
access_log = "off"
error_log = "{tmp}/logs/{name}-error.log"
log_level = "warn"
{server}
[limits]
max_connections = 4096
keep_alive_timeout_secs = 30

[cgi]
max_concurrent = 256
queue_wait_ms = 10000
# RLIMIT_NPROC counts every task of the script's user, and here Apache's, nginx's and
# fcgiwrap's workers run as nobody too: the default 256 would refuse forks that have nothing
# to do with yadokari.
limit_processes = 16384

[sftp]
host_key = "{self.dir}/ssh_host_ed25519_key"

[[users]]
name = "bench"
site = "{sftp_site}"
authorized_keys = "{keys}"
{users}{extra}""")

    def start(self):
        p = self.spawn([self.binary, "--config", self.conf], f"{self.name}.out")
        return wait_port(self.port, p) and wait_port(self.sftp_port, p)

    def cpu_ticks(self):
        # One process (its threads are counted in it); scripts are children it reaps, whose
        # time goes to cutime/cstime, not counted: this is the server's own work.
        fields = self._stat()
        return int(fields[11]) + int(fields[12]) if fields else None  # utime, stime (14, 15)

    def child_ticks(self):
        """cutime + cstime: the reaped scripts' CPU, their time between clone and exec (where
        the sandbox is joined) included."""
        fields = self._stat()
        return int(fields[13]) + int(fields[14]) if fields else None  # fields 16 and 17

    def _stat(self):
        try:
            with open(f"/proc/{self.procs[0].pid}/stat") as f:
                stat = f.read()
        except (OSError, IndexError):
            return None
        return stat[stat.rfind(")") + 2:].split()


class Apache(Target):
    name = "apache"

    def start(self):
        mods = "/usr/lib/apache2/modules"
        conf = os.path.join(self.dir, "httpd.conf")
        with open(conf, "w") as f:
            f.write(f"""ServerRoot "{self.dir}"
DefaultRuntimeDir "{self.dir}"
PidFile "{self.dir}/httpd.pid"
Mutex file:{self.dir}
ErrorLog "{self.tmp}/logs/apache-error.log"
LogLevel warn
Listen 127.0.0.1:{self.port}
ServerName 127.0.0.1
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule alias_module {mods}/mod_alias.so
LoadModule cgid_module {mods}/mod_cgid.so
User nobody
Group nogroup
TypesConfig /etc/mime.types
DocumentRoot "{self.docroot}"
ScriptAlias /cgi-bin/ "{self.docroot}/cgi-bin/"
ScriptSock "{self.dir}/cgid.sock"
<Directory />
    AllowOverride None
    Require all granted
</Directory>
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
EnableSendfile On
LimitRequestBody 0
""")
        p = self.spawn(["/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"], "apache.out",
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
        return wait_port(self.port, p)


class Lighttpd(Target):
    name = "lighttpd"

    def start(self):
        # lighttpd opens its error log and upload dir after dropping to nobody.
        nobody = pwd.getpwnam("nobody")
        errlog = os.path.join(self.tmp, "logs", "lighttpd-error.log")
        open(errlog, "a").close()
        for path in (errlog, self.dir):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        conf = os.path.join(self.dir, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(f"""server.document-root = "{self.docroot}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.username = "nobody"
server.groupname = "nogroup"
server.errorlog = "{self.tmp}/logs/lighttpd-error.log"
server.modules = ( "mod_cgi" )
server.max-keep-alive-requests = 65535
server.max-keep-alive-idle = 30
server.max-connections = 4096
server.upload-dirs = ( "{self.dir}" )
mimetype.assign = ( ".bin" => "application/octet-stream", ".html" => "text/html" )
$HTTP["url"] =~ "^/cgi-bin/" {{
    cgi.assign = ( "" => "" )
}}
""")
        p = self.spawn(["/usr/sbin/lighttpd", "-D", "-f", conf], "lighttpd.out")
        return wait_port(self.port, p)


class Nginx(Target):
    name = "nginx"

    def __init__(self, tmp, docroot, fcgi_children):
        super().__init__(tmp, docroot)
        self.fcgi_children = fcgi_children

    def start(self):
        sock = os.path.join(self.dir, "fcgiwrap.sock")
        fcgi = self.spawn(["/usr/bin/spawn-fcgi", "-n", "-s", sock, "-M", "0660",
                           "-U", "nobody", "-G", "nogroup", "-u", "nobody", "-g", "nogroup",
                           "--", "/usr/sbin/fcgiwrap", "-c", str(self.fcgi_children)],
                          "fcgiwrap.out")
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline and fcgi.poll() is None:
            time.sleep(0.05)
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write(nginx_conf.conf(d, f"{self.tmp}/logs/nginx-error.log", f"""    server {{
        listen 127.0.0.1:{self.port};
        root {self.docroot};
        location /cgi-bin/ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{sock};
        }}
    }}"""))

        p = self.spawn(["/usr/sbin/nginx", "-p", d, "-e", f"{self.tmp}/logs/nginx-error.log",
                        "-c", conf], "nginx.out")
        return fcgi.poll() is None and wait_port(self.port, p)


class Sshd:
    """A private OpenSSH sshd: own config and host key, internal-sftp, one throwaway user."""

    name = "openssh"

    def __init__(self, tmp, home, pubkey):
        self.tmp, self.home = tmp, home
        self.dir = os.path.join(tmp, "sshd")
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        self.port = free_port()
        self.proc = None
        key = os.path.join(self.dir, "ssh_host_ed25519_key")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
        keys = os.path.join(self.dir, "authorized_keys")
        shutil.copy(pubkey, keys)
        os.chmod(keys, 0o644)
        self.conf = os.path.join(self.dir, "sshd_config")
        with open(self.conf, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {key}
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {keys}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {SSH_USER}
X11Forwarding no
AllowTcpForwarding no
Subsystem sftp internal-sftp
""")

    def start(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        out = open(os.path.join(self.tmp, "logs", "sshd.out"), "ab")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", self.conf], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()
        return wait_port(self.port, self.proc)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=5)
        self.proc = None


# ---------------------------------------------------------------- measurements

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


class YadokariTls(Yadokari):
    """yadokari with its HTTPS listener (`--https`) and `[tls]` certificate; wrk is pointed
    at the HTTPS port."""

    def __init__(self, tmp, docroot, binary, sftp_site, pubkey, cert, key):
        super().__init__(tmp, docroot, binary, sftp_site, pubkey, name=tls.YADOKARI,
                         extra=tls.yadokari_extra(cert, key))
        self.https_port = free_port()

    def start(self):
        p = self.spawn([self.binary, "--config", self.conf,
                        "--https", f"127.0.0.1:{self.https_port}"], f"{self.name}.out")
        return wait_port(self.port, p) and wait_port(self.https_port, p)

    def url(self, path):
        return f"https://127.0.0.1:{self.https_port}{path}"


class NginxTls(Target):
    """nginx serving the document root over TLS only (static files; no fcgiwrap)."""
    name = tls.NGINX

    def __init__(self, tmp, docroot, cert, key, tls13=False):
        self.name = tls.NGINX13 if tls13 else tls.NGINX
        super().__init__(tmp, docroot)
        self.cert, self.key, self.tls13 = cert, key, tls13

    def start(self):
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(tls.nginx_conf(self.dir, self.tmp, self.docroot, self.port, self.cert,
                                   self.key, self.tls13))
        p = self.spawn(["/usr/sbin/nginx", "-p", self.dir, "-e",
                        f"{self.tmp}/logs/{self.name}-error.log", "-c", conf],
                       f"{self.name}.out")
        return wait_port(self.port, p)

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"


def parse_wrk(out):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    r["p99_ms"] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    errors, detail = 0, []
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
        detail.append(f"non2xx={m.group(1)}")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
        detail.append("socket=" + "/".join(m.groups()))
    r["errors"], r["error_detail"] = errors, " ".join(detail)
    return r


def wrk(target, wl, seconds, tmp):
    name, path, conns, extra = wl[:4]
    threads = 1 if conns == 1 else 2
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency",
           "--timeout", "10s"]
    if extra == ["post"]:
        cmd += ["-s", os.path.join(tmp, "post.lua")]
    elif extra == ["many"]:
        cmd += ["-s", os.path.join(tmp, "many.lua")]
    else:
        cmd += extra
    cmd.append(target.url(path))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    r = parse_wrk(p.stdout)
    if p.returncode != 0 or r["requests"] == 0:
        r["errors"] = max(r["errors"], 1)
        log(f"  wrk failed for {target.name} {name}: {p.stdout[-300:]} {p.stderr[-300:]}")
    r["value"] = r["rps"] * BYTES_PER_REQ[name] / 1e6 if name in BYTES_PER_REQ else r["rps"]
    return r


def ceiling(binary, program, threads, seconds):
    out = run([binary, program, str(threads), str(seconds)], timeout=seconds + 60,
              capture_output=True, text=True).stdout
    return float(re.search(r"spawns_per_sec=([\d.]+)", out).group(1))


# `--sftp-cipher`: the cipher the client asks for (None: the client's default order, which
# picks chacha20-poly1305 with every server here).
SFTP_CIPHER = None


def sftp_transfer(port, user, key, batch, timeout=600, verbose=False):
    cipher = ["-c", SFTP_CIPHER] if SFTP_CIPHER else []
    cmd = ["sftp", "-v" if verbose else "-q", *cipher, "-b", batch, "-i", key, "-P", str(port),
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{user}@127.0.0.1"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"sftp failed: {p.stdout[-300:]} {p.stderr[-300:]}")
    if verbose:
        m = re.search(r"kex: server->client cipher: (\S+) MAC: (\S+)", p.stderr)
        return dt, f"{m.group(1)} {m.group(2)}" if m else "?"
    return dt


# ---------------------------------------------------------------- setup

def build_docroot(tmp):
    doc = os.path.join(tmp, "htdocs")
    cgi = os.path.join(doc, "cgi-bin")
    os.makedirs(cgi, mode=0o755)
    os.chmod(doc, 0o755)
    os.chmod(cgi, 0o755)
    src = os.path.join(tmp, "src")
    os.makedirs(src)
    for name, code in (("hello", HELLO_C), ("count", COUNT_C)):
        c = os.path.join(src, name + ".c")
        with open(c, "w") as f:
            f.write(code)
        run(["gcc", "-O2", "-static", "-o", os.path.join(cgi, name), c])
    for name, code in (("hello.sh", HELLO_SH), ("hello.pl", HELLO_PL)):
        with open(os.path.join(cgi, name), "w") as f:
            f.write(code)
    for name in os.listdir(cgi):
        os.chmod(os.path.join(cgi, name), 0o755)
    for name, size in (("1k.bin", 1024), ("1m.bin", MIB)):
        with open(os.path.join(doc, name), "wb") as f:
            f.write(os.urandom(size))
        os.chmod(os.path.join(doc, name), 0o644)
    with open(os.path.join(doc, "index.html"), "w") as f:
        f.write("<!doctype html><title>bench</title>\n")
    os.chmod(os.path.join(doc, "index.html"), 0o644)
    with open(os.path.join(tmp, "post.lua"), "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.body = string.rep("y", 10 * 1024 * 1024)\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n')
    return doc


def check_target(t):
    """Which workloads this target answers correctly (a real request each, checked)."""
    ok = set()
    for wl in WORKLOADS:
        name, path = wl[0], wl[1]
        try:
            if name.startswith("post"):
                body = b"z" * MIB
                req = urllib.request.Request(t.url(path), data=body, method="POST",
                                             headers={"Content-Type": "application/octet-stream"})
                got = urllib.request.urlopen(req, timeout=20).read()
                good = got.strip() == str(MIB).encode()
            elif path.startswith("/cgi-bin/"):
                good = urllib.request.urlopen(t.url(path), timeout=20).read() == b"Hello, world!\n"
            else:
                with open(os.path.join(t.docroot, path.lstrip("/")), "rb") as f:
                    good = urllib.request.urlopen(t.url(path), timeout=20).read() == f.read()
        except Exception as e:  # noqa: BLE001 - any failure marks the workload unusable
            log(f"  {t.name}: {path} failed: {e}")
            good = False
        if good:
            ok.add(name)
        else:
            log(f"  {t.name}: {name} answered wrongly; skipped for this target")
    return ok


def fetch(url):
    """The body and headers of a GET."""
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read(), r.headers


def get_with_host(url, host):
    req = urllib.request.Request(url, headers={"Host": host})
    return urllib.request.urlopen(req, timeout=20).read()


def ensure_ssh_user(home):
    """Create the throwaway account for sshd (returns True when this run created it)."""
    try:
        pwd.getpwnam(SSH_USER)
        created = False
        run(["usermod", "-d", home, SSH_USER])
    except KeyError:
        # An ordinary account (not --system): yadokari refuses SFTP sites of system accounts.
        run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh",
             "--user-group", SSH_USER])
        created = True
    run(["usermod", "-p", "*", SSH_USER])  # not locked ('!'), which sshd without PAM refuses
    pw = pwd.getpwnam(SSH_USER)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    return created


# ---------------------------------------------------------------- statistics and output

def summarize(rows, units):
    """rows: dicts with workload, target, value, p99_ms, errors → summary dicts."""
    groups = {}
    for r in rows:
        groups.setdefault((r["workload"], r["target"]), []).append(r)
    out = []
    for (w, t), rs in groups.items():
        vals = [r["value"] for r in rs]
        p99 = [r["p99_ms"] for r in rs if r.get("p99_ms") == r.get("p99_ms") and r.get("p99_ms") is not None]
        out.append({"workload": w, "target": t, "unit": units.get(w, ""),
                    "median": statistics.median(vals), "min": min(vals), "max": max(vals),
                    "n": len(vals), "p99_ms": statistics.median(p99) if p99 else "",
                    "errors": sum(int(r.get("errors", 0)) for r in rs)})
    return out


def fmt(x):
    if x == "" or x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yadokari", required=True, help="the yadokari binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run / ceiling run")
    ap.add_argument("--sftp-mib", type=int, default=256, help="size of the SFTP file")
    ap.add_argument("--sftp-cipher", default=None,
                    help="the cipher the sftp client asks for (default: its own order)")
    ap.add_argument("--fcgiwrap-children", type=int, default=2 * os.cpu_count())
    ap.add_argument("--only", default="", help="comma-separated workload names (or prefixes); "
                    "also 'ceiling', 'sftp', 'memory', 'many' (1,000 customers), "
                    "'htaccess' (.htaccess support on against off), 'tls' (HTTPS against nginx), "
                    "'sandbox' (the per-customer sandbox against none), 'metrics' (the admin "
                    "listener on against off), 'upgrade' (the longest latency during upgrades), 'rsync' "
                    "(a 256 MiB push deploy against OpenSSH's sshd)")
    ap.add_argument("--targets", default="yadokari,apache,lighttpd,nginx")
    ap.add_argument("--results", default=os.path.join(BENCH, "results"))
    ap.add_argument("--max-minutes", type=int, default=60,
                    help="stop (and stop every server) after this long")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    global SFTP_CIPHER
    SFTP_CIPHER = a.sftp_cipher
    if os.geteuid() != 0:
        sys.exit("bench.py must run as root (servers drop to nobody; sshd needs root)")
    if (not 1 <= a.rounds <= 50 or not 1 <= a.duration <= 600 or not 1 <= a.sftp_mib <= 4096
            or not 1 <= a.max_minutes <= 24 * 60):
        sys.exit("--rounds 1..50, --duration 1..600, --sftp-mib 1..4096, --max-minutes 1..1440")
    only = [x for x in a.only.split(",") if x]
    try:  # the source the binary was just built from (bench/run builds right before)
        a.rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                               capture_output=True, text=True, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        a.rev = "?"

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM, SIGHUP and the overall deadline unwind like ^C, so the servers started here
    # are always stopped.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    signal.signal(signal.SIGALRM, interrupted)
    signal.alarm(a.max_minutes * 60)

    def wanted(name):
        return not only or any(name.startswith(o) for o in only)

    every = (WORKLOADS + many.WORKLOADS + htaccess.WORKLOADS + tls.WORKLOADS
             + sandbox.WORKLOADS + service.WORKLOADS)
    workloads = [w for w in every if wanted(w[0])]
    units = {w[0]: w[4] for w in every}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    nproc, kernel = os.cpu_count(), platform.release()
    tmp = tempfile.mkdtemp(prefix="yadokari-bench.")
    os.chmod(tmp, 0o755)
    os.makedirs(os.path.join(tmp, "logs"))
    log(f"work dir {tmp}; nproc={nproc} kernel={kernel}")
    targets, sshd, created_user, rows, ciphers = [], None, False, [], {}
    started = time.monotonic()
    try:
        doc = build_docroot(tmp)
        ceil_bin = os.path.join(tmp, "ceiling")
        run(["gcc", "-O2", "-pthread", "-o", ceil_bin, os.path.join(BENCH, "ceiling.c")])
        key = os.path.join(tmp, "client_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])

        # SFTP sites: one per server, each with the file to download.
        sftp_y = os.path.join(tmp, "sftp-yadokari")
        sftp_o = os.path.join(tmp, "sftp-openssh")
        payload = os.path.join(tmp, "payload.bin")
        for d in (sftp_y, sftp_o):
            os.makedirs(d, mode=0o755)
        if wanted("sftp"):
            with open(payload, "wb") as f:
                for _ in range(a.sftp_mib):
                    f.write(os.urandom(MIB))
            for d in (sftp_y, sftp_o):
                shutil.copy(payload, os.path.join(d, "down.bin"))
                os.chmod(os.path.join(d, "down.bin"), 0o644)

        # One ordinary account owns both SFTP sites and the many customers' sites: OpenSSH's
        # sessions run as it, and yadokari (started as root) acts with its site owner's rights
        # (and runs a customer's scripts as that owner) and refuses a site that belongs to root
        # or a system account.
        customers = None
        # `--only many` or any of its workloads (`--only many-static`).
        many_wanted = any(wanted(w[0]) for w in many.WORKLOADS)
        sb_wanted = any(wanted(w[0]) for w in sandbox.WORKLOADS)
        sb_site = None
        if wanted("sftp") or wanted("rsync") or many_wanted or sb_wanted:
            created_user = ensure_ssh_user(sftp_o)
            pw = pwd.getpwnam(SSH_USER)
            for d in (sftp_y, sftp_o):
                os.chown(d, pw.pw_uid, pw.pw_gid)
                if wanted("sftp"):
                    os.chown(os.path.join(d, "down.bin"), pw.pw_uid, pw.pw_gid)
            if many_wanted:
                customers = many.build_sites(tmp, doc, pw.pw_uid, pw.pw_gid)
                many.write_lua(os.path.join(tmp, "many.lua"))
            if sb_wanted:
                sb_site = sandbox.build_site(tmp, doc, pw.pw_uid, pw.pw_gid)

        # `--only htaccess` or any of its workloads (`--only htaccess-tree-static`).
        ht_wanted = any(wanted(w[0]) for w in htaccess.WORKLOADS)
        trees = htaccess.build_trees(tmp, doc) if ht_wanted else {}
        # `--only tls` or any of its workloads: the same certificate for both servers.
        tls_wanted = any(wanted(w[0]) for w in tls.WORKLOADS)
        cert, cert_key = tls.make_certificate(tmp) if tls_wanted else (None, None)
        chosen = [x for x in a.targets.split(",") if x]
        makers = {
            "yadokari": lambda: Yadokari(tmp, doc, a.yadokari, sftp_y, key + ".pub"),
            "apache": lambda: Apache(tmp, doc),
            "lighttpd": lambda: Lighttpd(tmp, doc),
            "nginx": lambda: Nginx(tmp, doc, a.fcgiwrap_children),
            # Its default site is empty, so a request that missed its customer gets a 404,
            # which wrk counts as an error, instead of a file of the shared document root.
            many.TARGET: lambda: Yadokari(tmp, many.empty_root(tmp), a.yadokari, sftp_y,
                                          key + ".pub", name=many.TARGET,
                                          users=many.users_toml(customers)),
        }
        makers[tls.YADOKARI] = lambda: YadokariTls(tmp, doc, a.yadokari, sftp_y, key + ".pub",
                                                   cert, cert_key)
        makers[tls.NGINX] = lambda: NginxTls(tmp, doc, cert, cert_key)
        makers[tls.NGINX13] = lambda: NginxTls(tmp, doc, cert, cert_key, tls13=True)
        for n in htaccess.TARGETS:
            makers[n] = (lambda n=n: Yadokari(tmp, trees[htaccess.tree_of(n)], a.yadokari,
                                              sftp_y, key + ".pub", name=n,
                                              extra=htaccess.settings(n)))
        for n in sandbox.TARGETS:
            makers[n] = (lambda n=n: Yadokari(tmp, doc, a.yadokari, sftp_y, key + ".pub",
                                              name=n, extra=sandbox.settings(n, sb_site)))
        # `--only metrics` (or one of its workloads) and `--only upgrade`.
        svc_wanted = any(wanted(w[0]) for w in service.WORKLOADS)
        admin_port = free_port()
        for n in service.TARGETS + [service.UPGRADE]:
            makers[n] = (lambda n=n: Yadokari(tmp, doc, a.yadokari, sftp_y, key + ".pub",
                                              name=n,
                                              server=service.server_settings(n, tmp, admin_port)))
        if customers and "yadokari" in chosen:
            chosen.append(many.TARGET)
        if sb_site and "yadokari" in chosen:
            chosen += sandbox.TARGETS
        if svc_wanted and "yadokari" in chosen:
            chosen += service.TARGETS
        if wanted("upgrade") and "yadokari" in chosen:
            chosen.append(service.UPGRADE)
        if trees and "yadokari" in chosen:
            chosen += htaccess.TARGETS
        if tls_wanted:
            chosen += [t for plain, t in (("yadokari", tls.YADOKARI), ("nginx", tls.NGINX),
                                          ("nginx", tls.NGINX13)) if plain in chosen]
        usable = {}
        for n in chosen:
            t = makers[n]()
            log(f"starting {n} on 127.0.0.1:{t.port}")
            targets.append(t)
            if not t.start():
                log(f"  {n} did not start; see {tmp}/logs/")
                t.stop()
                continue
            if n in tls.TARGETS:
                usable[n] = tls.check(t, cert)
                for w in tls.WORKLOADS:
                    if w[0] not in usable[n]:
                        log(f"  {n}: {w[0]} answered wrongly; skipped")
                continue
            if n in service.TARGETS:
                usable[n] = service.check(t, fetch, admin_port)
                if not usable[n]:
                    log(f"  {n}: the CGI hello or the 1 KiB file answered wrongly; skipped")
                continue
            if n == service.UPGRADE:
                usable[n] = set()
                continue
            if n in sandbox.TARGETS:
                usable[n] = sandbox.check(t, fetch)
                if not usable[n]:
                    log(f"  {n}: the customer's hello answered wrongly; skipped")
                continue
            if n in htaccess.TARGETS:
                usable[n] = htaccess.check(t, fetch)
                for w in htaccess.WORKLOADS:
                    if w[6] == htaccess.tree_of(n) and w[0] not in usable[n]:
                        log(f"  {n}: {w[0]} answered wrongly; skipped")
                continue
            usable[n] = set() if n == many.TARGET else check_target(t)
            if customers and n in ("yadokari", many.TARGET):
                usable[n] |= many.check(t, doc, get_with_host)
                for w in many.WORKLOADS:
                    if w[0] not in usable[n]:
                        log(f"  {n}: {w[0]} answered wrongly on a customer's domain; skipped")
        live = [t for t in targets if t.name in usable]

        if wanted("sftp") or wanted("rsync"):
            home = sftp_o
            sshd = Sshd(tmp, home, key + ".pub")
            log(f"starting openssh sshd on 127.0.0.1:{sshd.port}")
            if not sshd.start():
                log(f"  sshd did not start; see {tmp}/logs/sshd.out")
                sshd.stop()
                sshd = None

        def memory_row(workload, roots, name, rnd):
            pss, rss, n = tree_memory(roots)
            rows.append({"round": rnd, "workload": workload, "target": name,
                         "value": pss / 1024, "p99_ms": None, "errors": 0,
                         "rss_mib": rss / 1024, "processes": n})
            units[workload] = "MiB"

        # Memory at rest: each tree after start-up and one checked request per workload.
        time.sleep(1)
        if wanted("memory"):
            for t in live:
                memory_row("mem-idle-pss", t.roots(), t.name, 0)

        for rnd in range(a.rounds):
            log(f"round {rnd + 1}/{a.rounds}")
            for wl in workloads:
                # The ceiling of a CGI workload takes its turn in the rotation like a target,
                # so that it is measured under the same drift as the servers.
                # Only the targets that run it take seats, so that a pair (the .htaccess
                # servers) alternates which goes first.
                seats = ([t for t in live if wl[0] in usable[t.name]]
                         + (["ceiling"] if wl[5] else []))
                k = rnd % len(seats) if seats else 0
                order = seats[k:] + seats[:k]
                for t in order:
                    if t == "ceiling":
                        prog, th = wl[5]
                        v = ceiling(ceil_bin, os.path.join(doc, "cgi-bin", prog), th, a.duration)
                        rows.append({"round": rnd + 1, "workload": wl[0], "target": "ceiling",
                                     "value": v, "p99_ms": None, "errors": 0,
                                     "ceiling": f"ceiling-{prog.replace('.', '-')}-{th}t"})
                        log(f"  {wl[0]:16} {'ceiling':9} {fmt(v):>9} spawns/s ({prog}, {th} thread(s))")
                        time.sleep(0.5)
                        continue
                    if wl[0] not in usable[t.name]:
                        continue
                    sampler = None
                    if wl[0] == MEMORY_UNDER and wanted("memory"):
                        sampler = Sampler(t.roots(), min(1.0, a.duration / 3))
                        sampler.start()
                    ticks = t.cpu_ticks()
                    kids = t.child_ticks() if hasattr(t, "child_ticks") else None
                    r = wrk(t, wl, a.duration, tmp)
                    after = t.cpu_ticks()
                    kids_after = t.child_ticks() if kids is not None else None
                    if kids is not None and kids_after is not None and r["requests"]:
                        r["child_us"] = (kids_after - kids) / CLK_TCK * 1e6 / r["requests"]
                    if ticks is not None and after is not None and r["requests"]:
                        r["cpu_us"] = (after - ticks) / CLK_TCK * 1e6 / r["requests"]
                    rows.append({"round": rnd + 1, "workload": wl[0], "target": t.name, **r})
                    cpu = f"  cpu {r['cpu_us']:.1f} us/req" if r.get("cpu_us") else ""
                    log(f"  {wl[0]:16} {t.name:9} {fmt(r['value']):>9} {wl[4]:6} "
                        f"p99 {fmt(r['p99_ms'])} ms  errors {r['errors']} {r['error_detail']}"
                        f"{cpu}")
                    if sampler:
                        sampler.done.set()
                        sampler.join()
                        if sampler.samples:
                            pss = [s[0] / 1024 for s in sampler.samples]
                            rss = [s[1] / 1024 for s in sampler.samples]
                            rows.append({"round": rnd + 1, "workload": "mem-load-pss",
                                         "target": t.name, "value": statistics.median(pss),
                                         "peak_mib": max(pss), "rss_mib": max(rss),
                                         "p99_ms": None, "errors": 0})
                            units["mem-load-pss"] = "MiB"
                    time.sleep(0.5)
        up = next((t for t in live if t.name == service.UPGRADE), None)
        if up:
            log("upgrade rounds")
            rows += service.upgrade_rounds(up, tmp, a.rounds, max(a.duration, 4), log)
            units.update({r["workload"]: "ms" for r in rows
                          if r["workload"].startswith("upgrade-")})
        # Memory after the HTTP rounds (what the allocator kept), before any SFTP transfer.
        if wanted("memory"):
            for t in live:
                memory_row("mem-after-http-pss", t.roots(), t.name, a.rounds)

        # SFTP rounds come after the HTTP ones, so that buffers kept from a 256 MiB transfer
        # do not count in the HTTP memory figures; they are measured on their own below.
        for rnd in range(a.rounds if wanted("sftp") and sshd and "yadokari" in usable else 0):
            log(f"sftp round {rnd + 1}/{a.rounds}")
            if True:
                ends = [("yadokari", next(t for t in live if t.name == "yadokari").sftp_port,
                         "bench", sftp_y), ("openssh", sshd.port, SSH_USER, sftp_o)]
                if rnd % 2:
                    ends.reverse()
                for name, port, user, site in ends:
                    # The handshake alone (a `pwd`), so the transfer figures can be read net
                    # of it; they are end to end, handshake included, as a user sees them.
                    batch = os.path.join(tmp, "batch-connect")
                    with open(batch, "w") as f:
                        f.write("pwd\n")
                    try:
                        dt, cipher = sftp_transfer(port, user, key, batch, verbose=True)
                        ciphers[name] = cipher
                        rows.append({"round": rnd + 1, "workload": "sftp-connect", "target": name,
                                     "value": dt * 1000, "p99_ms": None, "errors": 0})
                        units["sftp-connect"] = "ms"
                        log(f"  {'sftp-connect':16} {name:9} {dt * 1000:9.0f} ms ({cipher})")
                    except Exception as e:  # noqa: BLE001
                        log(f"  sftp connect {name} failed: {e}")
                    for direction in ("upload", "download"):
                        batch = os.path.join(tmp, f"batch-{direction}")
                        dl = os.path.join(tmp, "downloaded.bin")
                        with open(batch, "w") as f:
                            f.write(f"put {payload} up.bin\n" if direction == "upload"
                                    else f"get down.bin {dl}\n")
                        for f_ in (os.path.join(site, "up.bin"), dl):
                            if os.path.exists(f_):
                                os.unlink(f_)
                        try:
                            dt = sftp_transfer(port, user, key, batch)
                            got = os.path.join(site, "up.bin") if direction == "upload" else dl
                            size = os.path.getsize(got)
                            if size != a.sftp_mib * MIB:
                                raise RuntimeError(f"{got} has {size} bytes")
                            v, err = a.sftp_mib * MIB / dt / 1e6, 0
                        except Exception as e:  # noqa: BLE001
                            log(f"  sftp {direction} {name} failed: {e}")
                            v, err = 0.0, 1
                        w = f"sftp-{direction}-{a.sftp_mib}m"
                        units[w] = "MB/s"
                        rows.append({"round": rnd + 1, "workload": w, "target": name,
                                     "value": v, "p99_ms": None, "errors": err})
                        log(f"  {w:16} {name:9} {fmt(v):>9} MB/s")
        if wanted("rsync") and sshd and "yadokari" in usable:
            log("rsync rounds")
            tree = deploy.build_tree(tmp)
            y = next(t for t in live if t.name == "yadokari")
            ends = [("yadokari", y.sftp_port, "bench", sftp_y, "/rsync-dest"),
                    ("openssh", sshd.port, SSH_USER, sftp_o, "rsync-dest")]
            rows += deploy.rounds(ends, tree, key, a.rounds, log)
            units[deploy.WORKLOAD] = "MB/s"
        if wanted("memory") and wanted("sftp") and sshd:
            for t in live:
                if t.name == "yadokari":
                    memory_row("mem-after-sftp-pss", t.roots(), t.name, a.rounds)
            memory_row("mem-after-sftp-pss", [sshd.proc.pid], "openssh", a.rounds)
    finally:
        for t in targets:
            t.stop()
        if sshd:
            sshd.stop()
        if created_user:
            subprocess.run(["userdel", SSH_USER], timeout=30)
        if a.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report(rows, units, a, stamp, nproc, kernel, time.monotonic() - started, ciphers)


def targets_table(rows, by):
    """Issue 5's targets, each with what this run measured and whether yadokari meets it."""

    def med(w, t="yadokari"):
        s = by.get((w, t))
        return s["median"] if s else None

    def best(w, names=("apache", "lighttpd", "nginx")):
        got = [(by[(w, n)]["median"], n) for n in names if (w, n) in by]
        return max(got) if got else (None, None)

    def rss(w):
        v = [r["rss_mib"] for r in rows if r["workload"] == w and r["target"] == "yadokari"
             and r.get("rss_mib") is not None]
        return statistics.median(v) if v else None

    out = ["| issue 5 target | measured | verdict |", "| --- | --- | --- |"]

    def check(label, value, goal, text):
        """Met when value >= goal; a negative goal means value <= -goal (an upper bound)."""
        ok = value >= goal if goal >= 0 else value <= -goal
        out.append(f"| {label} | {text} | {'met' if ok else 'MISSED'} |")

    y, (b, bn) = med("cgi-c-ka-c64"), best("cgi-c-ka-c64")
    c = med("cgi-c-ka-c64", "ceiling")
    if y and b:
        check("CGI C c=64: >= 1.3x best anchor", y / b, 1.3, f"{y / b:.2f}x {bn}")
    if y and c:
        check("CGI C c=64: >= 65% of the 2-thread ceiling", y / c, 0.65, f"{y / c:.0%}")
    if y and bn:
        yp, bp = by[("cgi-c-ka-c64", "yadokari")]["p99_ms"], by[("cgi-c-ka-c64", bn)]["p99_ms"]
        if yp != "" and bp != "":
            check("CGI C c=64: p99 <= best anchor's", bp - yp, 0,
                  f"{yp:.1f} ms vs {bn} {bp:.1f} ms")
    y, c = med("cgi-c-ka-c1"), med("cgi-c-ka-c1", "ceiling")
    if y and c:
        check("CGI C c=1: >= 60% of the 1-thread ceiling", y / c, 0.60, f"{y / c:.0%}")
    y, k = med("cgi-c-close-c64"), med("cgi-c-ka-c64")
    if y and k:
        check("CGI C Connection: close c=64: within 10% of keep-alive", y / k, 0.90,
              f"{y / k:.0%} of keep-alive")
    for w, label in (("cgi-sh-c64", "sh"), ("cgi-pl-c64", "Perl")):
        y, c = med(w), med(w, "ceiling")
        if y and c:
            check(f"{label} hello c=64: >= 80% of its ceiling", y / c, 0.80, f"{y / c:.0%}")
    y, n, l = med("static-1k-c64"), med("static-1k-c64", "nginx"), med("static-1k-c64", "lighttpd")
    if y and n:
        check("static 1 KiB c=64: >= nginx", y / n, 1.0, f"{y / n:.2f}x nginx")
    if y and l:
        check("static 1 KiB c=64: >= lighttpd (stretch)", y / l, 1.0, f"{y / l:.2f}x lighttpd")
    y, (b, bn) = med("static-1m-c64"), best("static-1m-c64")
    if y and b:
        check("static 1 MiB c=64: >= 0.95x best anchor", y / b, 0.95, f"{y / b:.2f}x {bn}")
    y, l = med("post-10m-c1"), med("post-10m-c1", "lighttpd")
    if y and l:
        check("POST 10 MiB c=1: >= 1.0x lighttpd", y / l, 1.0, f"{y / l:.2f}x lighttpd")
    for d, goal in (("upload", 1.2), ("download", 1.5)):
        w = next((x for (x, t) in by if x.startswith(f"sftp-{d}-") and t == "yadokari"), None)
        if w and med(w, "openssh"):
            r = med(w) / med(w, "openssh")
            check(f"SFTP {d}: >= {goal}x OpenSSH", r, goal, f"{r:.2f}x")
    if med(deploy.WORKLOAD) and med(deploy.WORKLOAD, "openssh"):
        r = med(deploy.WORKLOAD) / med(deploy.WORKLOAD, "openssh")
        check("rsync upload of 256 MiB (issue 19): >= 1.0x OpenSSH", r, 1.0, f"{r:.2f}x")
    v = rss("mem-idle-pss")
    if v is not None:
        check("memory idle: RSS <= 8 MiB", v, -8, f"RSS {v:.1f} MiB (PSS {med('mem-idle-pss'):.1f})")
    v = rss("mem-load-pss")
    if v is not None:
        check("memory under c=64 CGI load: RSS <= 16 MiB", v, -16,
              f"RSS {v:.1f} MiB peak (PSS {med('mem-load-pss'):.1f} median)")
    return out


def report(rows, units, a, stamp, nproc, kernel, elapsed, ciphers):
    summary = summarize(rows, units)
    by = {(s["workload"], s["target"]): s for s in summary}
    order = [w[0] for w in WORKLOADS] + sorted({s["workload"] for s in summary
                                                if s["workload"].startswith("sftp-")},
                                               key=lambda w: (w != "sftp-connect", w))
    order += [deploy.WORKLOAD]
    order += ["mem-idle-pss", "mem-load-pss", "mem-after-http-pss", "mem-after-sftp-pss"]
    names = ["yadokari", "apache", "lighttpd", "nginx", "openssh", "ceiling"]
    lines = [f"yadokari benchmark {stamp}: nproc={nproc} kernel={kernel} rounds={a.rounds} "
             f"duration={a.duration}s elapsed={elapsed / 60:.1f} min, yadokari source at {a.rev}",
             "",
             "Cells: median (min-max) over the rounds, then p99 latency in ms (median over the "
             "rounds) for HTTP; '!' marks a target with failed requests (see the raw CSV). "
             "The ceiling column is bench/ceiling.c spawning the same program (1 thread for "
             "c=1, 2 threads otherwise), measured in the same rotation. Memory is PSS of the "
             "whole process tree (for nginx: nginx + fcgiwrap); lower is better there, as for "
             "sftp-connect (a login and `pwd` with the stock sftp client). SFTP transfer "
             "figures are end to end (handshake included); ciphers negotiated: " +
             (", ".join(f"{k} {v}" for k, v in sorted(ciphers.items())) or "-") + ".", ""]
    ceilings = {}
    for r in rows:
        if r.get("ceiling"):
            ceilings.setdefault(r["ceiling"], []).append(r["value"])
    if ceilings:
        lines += ["| ceiling (pipe + posix_spawn + read + waitpid) | spawns/s median (min-max) |",
                  "| --- | --- |"]
        for w in sorted(ceilings):
            v = ceilings[w]
            lines.append(f"| {w} | {fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))}) |")
        lines.append("")
    head = ("| workload | unit | " + " | ".join(names) +
            " | yadokari / best anchor | yadokari / ceiling |")
    lines += [head, "|" + " --- |" * (len(names) + 4)]
    for w in order:
        row, present = [], False
        for n in names:
            s = by.get((w, n))
            present = present or s is not None
            row.append(cells.cell(s, fmt))
        if not present:
            continue
        y = by.get((w, "yadokari"))
        anchors = [by[(w, n)]["median"] for n in ("apache", "lighttpd", "nginx", "openssh")
                   if (w, n) in by]
        lower = w.startswith("mem-") or w == "sftp-connect"
        best = (min(anchors) if lower else max(anchors)) if anchors else None
        rb = f"{y['median'] / best:.2f}" if y and best else "-"
        c = by.get((w, "ceiling"))
        rc = f"{y['median'] / c['median']:.2f}" if y and c and c["median"] else "-"
        for s in summary:
            if s["workload"] == w:
                s["ratio_best_anchor"], s["ratio_ceiling"] = rb, rc
        lines.append(f"| {w} | {units.get(w, '')} | " + " | ".join(row) + f" | {rb} | {rc} |")
    lines += [""] + targets_table(rows, by)
    many_lines = many.table(rows, by, fmt)
    if len(many_lines) > 2:
        lines += [""] + many_lines
    tls_lines = tls.table(by, fmt)
    if len(tls_lines) > 2:
        lines += [""] + tls_lines
    ht_lines = htaccess.table(rows, by, fmt)
    if len(ht_lines) > 2:
        lines += [""] + ht_lines
    sb_lines = sandbox.table(rows, by, fmt)
    if len(sb_lines) > 2:
        lines += [""] + sb_lines
    svc_lines = service.table(rows, by, fmt)
    if len(svc_lines) > 2:
        lines += [""] + svc_lines
    text = "\n".join(lines)
    print("\n" + text, flush=True)

    os.makedirs(a.results, exist_ok=True)
    base = os.path.join(a.results, stamp)
    fields = ["round", "workload", "target", "value", "rps", "requests", "p99_ms", "errors",
              "error_detail", "ceiling", "peak_mib", "rss_mib", "processes", "cpu_us",
              "child_us"]
    with open(base + "-raw.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["timestamp", "nproc", "kernel"] + fields)
        for r in rows:
            wr.writerow([stamp, nproc, kernel] + ["" if r.get(k) is None else r.get(k)
                                                  for k in fields])
    sf = ["workload", "target", "unit", "median", "min", "max", "n", "p99_ms", "errors",
          "ratio_best_anchor", "ratio_ceiling"]
    with open(base + ".csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["timestamp", "nproc", "kernel"] + sf)
        for s in summary:
            wr.writerow([stamp, nproc, kernel] + [s.get(k, "") for k in sf])
    with open(base + ".md", "w") as f:
        f.write(text + "\n")
    log(f"saved {base}.csv, {base}-raw.csv and {base}.md")


if __name__ == "__main__":
    main()
