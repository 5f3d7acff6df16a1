"""A private Docker Swarm with a local registry, for scripts/swarm-test and bench/swarm.py.

Everything is started here and torn down here, also on failure: a dockerd of our own (private
--data-root, --exec-root and socket, stopped by its pid), a single-node swarm on 127.0.0.1, a
registry from Debian's `docker-registry` on a free 127.0.0.1 port (stopped by its pid), and the
stack deployed with scripts/deploy. Traffic goes to 127.0.0.1 and the lab's own containers only.
"""

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STACK = "ydklab"
SERVICE = f"{STACK}_yadokari"
PACKAGES = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "haproxy": "haproxy",
    "debootstrap": "debootstrap",
    "sftp": "openssh-client",
    "ssh-keygen": "openssh-client",
    "wrk": "wrk",
}


def log(*args):
    print("[swarm]", *args, flush=True)


def have(tool):
    return shutil.which(tool) or Path("/usr/sbin", tool).exists()


def install_missing(tools):
    """Installs the Debian packages of missing tools (as root); under CI=true a tool still
    missing ends the run with a failure, never a skip."""
    missing = sorted({PACKAGES[t] for t in tools if not have(t)})
    if missing and os.geteuid() == 0:
        log("installing", " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    still = [t for t in tools if not have(t)]
    if still:
        if os.environ.get("CI") == "true":
            sys.exit(f"swarm: missing {', '.join(still)} under CI=true: failing, not skipping")
        log("skipped: missing", ", ".join(still))
        sys.exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=120, every=0.5):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            got = check()
            if got:
                return got
        except Exception as e:  # noqa: BLE001 - reported at the timeout
            last = e
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}" + (f" (last: {last})" if last else ""))


class Lab:
    """The daemon, the swarm, the registry and the stack; a context manager that tears all of
    it down."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="yadokari-swarm.", dir="/var/tmp"))
        self.sock = self.dir / "docker.sock"
        self.docker_bin = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER=self.docker_bin)
        self.env.pop("DOCKER_CONTEXT", None)
        self.procs = []
        self.registry = None
        self.http_port = free_port()
        self.sftp_port = free_port()
        self.env.update(
            YADOKARI_REGISTRY="",  # set once the registry runs
            YADOKARI_STACK=STACK,
            FRONT_HTTP_PORT=str(self.http_port),
            FRONT_SFTP_PORT=str(self.sftp_port),
        )

    # --- running things -------------------------------------------------------------

    def docker(self, *args, check=True, capture=True, input=None, timeout=600):
        r = subprocess.run([self.docker_bin, *args], env=self.env, input=input, timeout=timeout,
                           capture_output=capture, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def script(self, *args, check=True, timeout=1800):
        """Runs scripts/NAME ARGS in a process group of its own, killed whole at the timeout
        (cargo, debootstrap and docker build with it)."""
        log("$", *args)
        p = subprocess.Popen([str(REPO / "scripts" / args[0]), *args[1:]], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
        r = subprocess.CompletedProcess(p.args, p.returncode, out, "")
        out = (out or "").strip()
        if out:
            print("\n".join("    " + line for line in out.splitlines()[-15:]), flush=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({r.returncode})")
        return r

    def start(self):
        # A CI job cancelled (SIGTERM) or interrupted still tears everything down: the signal
        # becomes an exception that unwinds through `with Lab()`.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("swarm: terminated"))
        signal.signal(signal.SIGHUP, lambda *_: sys.exit("swarm: hung up"))
        if os.geteuid() != 0:
            if os.environ.get("CI") == "true":
                sys.exit("swarm: needs root (its own dockerd) under CI=true: failing")
            log("skipped: needs root (it starts its own dockerd)")
            sys.exit(0)
        install_missing(list(PACKAGES))
        log("state in", self.dir)
        dockerd = subprocess.Popen(
            ["dockerd", "--data-root", str(self.dir / "root"), "--exec-root",
             str(self.dir / "exec"), "-H", f"unix://{self.sock}", "--pidfile",
             str(self.dir / "dockerd.pid")],
            stdout=open(self.dir / "dockerd.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.procs.append(dockerd)
        wait_for("dockerd", lambda: self.docker("info", check=False).returncode == 0, 60)
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        port = free_port()
        (self.dir / "registry.yml").write_text(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
            f"{self.dir / 'registry'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n")
        registry = subprocess.Popen(
            ["docker-registry", "serve", str(self.dir / "registry.yml")],
            stdout=open(self.dir / "registry.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.procs.append(registry)
        self.registry = f"127.0.0.1:{port}"
        self.env["YADOKARI_REGISTRY"] = self.registry
        wait_for("the registry", lambda: get(port, "/v2/")[0] == 200, 30)
        return self

    def stop(self):
        with contextlib.suppress(Exception):
            self.docker("stack", "rm", STACK, check=False, timeout=60)
            wait_for("containers gone",
                     lambda: not self.docker("ps", "-q", check=False, timeout=10).stdout.strip(),
                     60)
        with contextlib.suppress(Exception):
            self.docker("swarm", "leave", "--force", check=False, timeout=60)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        # The daemon's mounts are gone with it; what is left is plain files.
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.dir)], check=False)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # --- the stack --------------------------------------------------------------------

    def deploy(self, version, check=True):
        return self.script("deploy", version, check=check)

    def replicas(self):
        """The running yadokari containers' ids."""
        out = self.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}",
                          "--filter", "status=running").stdout
        return out.split()

    def healthy_replicas(self):
        out = self.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}",
                          "--filter", "health=healthy").stdout
        return out.split()

    def image_of_service(self):
        return self.docker("service", "inspect", "-f",
                           "{{.Spec.TaskTemplate.ContainerSpec.Image}}", SERVICE).stdout.strip()

    def update_state(self):
        """The service's last update: `completed: ...`, `rollback_completed: ...`, or ''."""
        return self.docker("service", "inspect", "-f",
                           "{{if .UpdateStatus}}{{.UpdateStatus.State}}: "
                           "{{.UpdateStatus.Message}}{{end}}", SERVICE).stdout.strip()

    def wait_ready(self, replicas=2):
        wait_for(f"{replicas} healthy replicas", lambda: len(self.healthy_replicas()) >= replicas,
                 180)
        wait_for("the front", lambda: get(self.http_port, "/")[0] == 200, 60)

    def exec(self, container, *args, input=None, check=True):
        return self.docker("exec", "-i", container, *args, input=input, check=check)

    def fetch_in(self, container, path, host="localhost"):
        """GET `path` from inside `container`, straight from its own server: (status, body)."""
        code = FETCH + ("st,b=get(sys.argv[1],sys.argv[2])\n"
                        "sys.stdout.write(str(st)+'\\n'+b.decode('utf-8','replace'))\n")
        r = self.exec(container, "python3", "-c", code, path, host, check=False)
        status, _, body = r.stdout.partition("\n")
        return (int(status) if status.isdigit() else 0), body


# Python run inside a replica: `get(path, host)` straight from its own server, as the front
# does it: from the backend network (only its peers may send PROXY headers), with a header
# (UNKNOWN keeps the connection's own address), HTTP/1.0 so the body comes whole.
FETCH = ("import socket,sys,json\n"
         "def get(path,host):\n"
         "  me=socket.gethostbyname(socket.gethostname())\n"
         "  s=socket.create_connection((me,8080),timeout=10)\n"
         "  s.sendall(b'PROXY UNKNOWN\\r\\n'+('GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n'"
         "%(path,host)).encode())\n"
         "  b=b''\n"
         "  while True:\n"
         "    d=s.recv(65536)\n"
         "    if not d: break\n"
         "    b+=d\n"
         "  head,_,body=b.partition(b'\\r\\n\\r\\n')\n"
         "  return (int(head.split()[1]) if head.startswith(b'HTTP/') else 0),body\n")


def get(port, path, host="localhost", method="GET", body=None, timeout=30, headers=None):
    """One request on a fresh connection: (status, body); status 0 when the connection failed."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


class Customer:
    """A hosting customer made through one replica, with an SSH key and a known_hosts file
    pinned at the first connection (a changed host key fails every later transfer)."""

    def __init__(self, lab, name="alice", domain="alice.test"):
        self.lab, self.name, self.domain = lab, name, domain
        self.key = lab.dir / "id_ed25519"
        self.known = lab.dir / "known_hosts"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)],
                       check=True)

    def create(self, container):
        self.lab.exec(container, "yadokari", "user", "add", self.name, "--domain", self.domain)
        self.lab.exec(container, "yadokari", "user", "key", self.name, "/dev/stdin",
                      input=Path(f"{self.key}.pub").read_text())

    def ssh_options(self, strict):
        return ["-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.known}",
                "-o", f"StrictHostKeyChecking={'yes' if strict else 'accept-new'}",
                "-o", "ConnectTimeout=20", "-i", str(self.key), "-P", str(self.lab.sftp_port)]

    def sftp(self, commands, strict=True, timeout=120):
        """Runs an sftp batch; (ok, output)."""
        r = subprocess.run(["sftp", *self.ssh_options(strict), "-b", "-",
                            f"{self.name}@127.0.0.1"], input=commands, text=True,
                           capture_output=True, timeout=timeout)
        return r.returncode == 0, r.stdout + r.stderr

    def fingerprint(self):
        """The host key the front's SFTP port presents now."""
        r = subprocess.run(["ssh-keyscan", "-T", "10", "-t", "ed25519", "-p",
                            str(self.lab.sftp_port), "127.0.0.1"], capture_output=True,
                           text=True, timeout=30)
        line = next((l for l in r.stdout.splitlines() if "ssh-ed25519" in l), "")
        return line.split()[-1] if line else ""


# Scripts the customer's site gets: the version marker, a slow one, and a POST that leaves a
# trace of each run (a POST run twice shows as a repeated id).
SCRIPTS = {
    "version.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$SERVER_SOFTWARE\"\n",
    "slow.cgi": "#!/bin/sh\nsleep 3\nprintf 'Content-Type: text/plain\\n\\nslow %s\\n' "
                "\"$SERVER_SOFTWARE\"\n",
    "post.cgi": "#!/bin/sh\nid=$(cat)\nprintf '%s\\n' \"$id\" >>../posts.log\n"
                "printf 'Content-Type: text/plain\\n\\nposted %s\\n' \"$id\"\n",
    "orphans.cgi": "#!/bin/sh\n(sh -c 'sleep 2 &' &)\n(setsid sh -c 'sleep 3 &' &)\n"
                   "printf 'Content-Type: text/plain\\n\\nforked\\n'\n",
}


def put_site(customer, local_dir):
    """Uploads the scripts into the customer's web root and makes them runnable."""
    for name, text in SCRIPTS.items():
        (local_dir / name).write_text(text)
    batch = "".join(f"put {local_dir / n} public_html/{n}\nchmod 755 public_html/{n}\n"
                    for n in SCRIPTS)
    # The replicas take in the new key with the configuration's next reading (within about 2 s
    # of the edit): until then a login is refused.
    for _ in range(6):
        ok, out = customer.sftp(batch, strict=False)
        if ok:
            return
        time.sleep(1)
    raise RuntimeError(f"uploading the site failed:\n{out}")


class Load:
    """Load through the front, counted by its own clients: static GETs, CGI GETs (short and
    3-second ones), POSTs with a unique id, and an SFTP upload loop (each upload its own
    connection). Runs until stop()."""

    def __init__(self, lab, customer, tag, http_workers=7, sftp_workers=1):
        self.lab, self.customer, self.tag = lab, customer, tag
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []
        self.versions = []  # (time, marker) of version.cgi answers
        self.posted = []
        self.uploaded = []
        self.threads = [threading.Thread(target=self.http_loop, args=(i,), daemon=True)
                        for i in range(http_workers)]
        self.threads += [threading.Thread(target=self.sftp_loop, args=(i,), daemon=True)
                         for i in range(sftp_workers)]

    def count(self, kind, ok, detail=""):
        with self.lock:
            c = self.counts.setdefault(kind, [0, 0])
            c[0] += 1
            if not ok:
                c[1] += 1
                self.failures.append(f"{kind}: {detail}")

    def http_loop(self, worker):
        port, host = self.lab.http_port, self.customer.domain
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            kind = ["static", "cgi", "post"][n % 3] if worker > 1 else "slow"
            try:
                if kind == "static":
                    status, body = get(port, "/", host="localhost")
                    ok = status == 200 and "<html" in body.lower()
                elif kind == "cgi":
                    status, body = get(port, "/version.cgi", host=host)
                    ok = status == 200 and body.startswith("yadokari/")
                    if ok:
                        with self.lock:
                            self.versions.append((time.monotonic(), body.strip()))
                elif kind == "post":
                    pid = f"{self.tag}-{worker}-{n}"
                    status, body = get(port, "/post.cgi", host=host, method="POST", body=pid,
                                       headers={"Content-Type": "text/plain"})
                    ok = status == 200 and body.strip() == f"posted {pid}"
                    if ok:
                        with self.lock:
                            self.posted.append(pid)
                else:
                    status, body = get(port, "/slow.cgi", host=host)
                    ok = status == 200 and body.startswith("slow ")
                self.count(kind, ok, f"{status} {body[:120]!r}")
            except Exception as e:  # noqa: BLE001 - a failed request, counted
                self.count(kind, False, repr(e))

    def sftp_loop(self, worker):
        n = 0
        src = self.lab.dir / f"upload-{self.tag}-{worker}.txt"
        while not self.stop_flag.is_set():
            n += 1
            name = f"up-{self.tag}-{worker}-{n}.txt"
            src.write_text(f"{name}\n" + "x" * 200_000 + "\n")
            try:
                ok, out = self.customer.sftp(f"put {src} public_html/{name}\n")
            except subprocess.TimeoutExpired:
                ok, out = False, "timed out"
            self.count("sftp", ok, out.strip()[-300:])
            if ok:
                with self.lock:
                    self.uploaded.append(name)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(150)

    def summary(self):
        total = sum(c[0] for c in self.counts.values())
        failed = sum(c[1] for c in self.counts.values())
        parts = ", ".join(f"{k} {c[0]}/{c[1]} failed" for k, c in sorted(self.counts.items()))
        return total, failed, parts
