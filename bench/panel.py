#!/usr/bin/env python3
"""The control panel's figures (issue 15), on their own: the first page of a 10,000-file
directory (median of 30 renders, over a kept-alive connection, as the server answers it), and
a 256 MiB upload through the panel (curl posting the multipart form, as a browser does) beside
the same file over SFTP (OpenSSH's sftp client) to the same server, rounds alternating which
goes first. Targets: the page under 50 ms; the panel upload >= 0.8x SFTP's throughput.

Run as root (customers get identities of their own), with a release build:
    python3 bench/panel.py --yadokari target/release/yadokari [--rounds 3]
"""

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse

MIB = 1024 * 1024


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{cmd}: {p.stderr or p.stdout}")
    return p.stdout


def wait_lines(proc, needles):
    """The server's first line holding each of `needles`, in whatever order it prints them."""
    found, lines = {}, []
    while len(found) < len(needles):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the server ended before printing {needles}: {''.join(lines)}")
        lines.append(line)
        for n in needles:
            if n in line and n not in found:
                found[n] = line.strip()
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--yadokari", default="target/release/yadokari")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    exe = os.path.abspath(args.yadokari)
    tmp = tempfile.mkdtemp(prefix="yadokari-panel-bench-")
    os.chmod(tmp, 0o755)
    server = None
    try:
        os.makedirs(f"{tmp}/htdocs")
        with open(f"{tmp}/y.toml", "w") as f:
            f.write('[server]\ndocument_root = "htdocs"\nhttp = "127.0.0.1:0"\n'
                    'sftp = "127.0.0.1:0"\npanel = "127.0.0.1:0"\naccess_log = "off"\n'
                    '[hosting]\nhomes = "homes"\nuid_range = [29000, 29999]\n')
        cfg = ["--config", f"{tmp}/y.toml"]
        run([exe, "user", "add", "bob", *cfg])
        run([exe, "user", "passwd", "bob", *cfg], input="bench-secret\nbench-secret\n")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/key"])
        run([exe, "user", "key", "bob", f"{tmp}/key.pub", *cfg])
        home = f"{tmp}/homes/bob"
        st = os.stat(home)
        many = f"{home}/public_html/many"
        os.makedirs(many)
        for i in range(10_000):
            p = f"{many}/file{i:05d}.html"
            with open(p, "w") as f:
                f.write("x\n")
            os.chown(p, st.st_uid, st.st_gid)
        os.chown(many, st.st_uid, st.st_gid)
        big = f"{tmp}/big.bin"
        with open(big, "wb") as f:
            for _ in range(256):
                f.write(os.urandom(MIB))

        server = subprocess.Popen([exe, *cfg], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        said = wait_lines(server, ["listening sftp=", "listening panel="])
        sftp_port = int(said["listening sftp="].split(":")[-1])
        panel = said["listening panel="].split("=")[1].strip()
        # The server's further output is drained, so that its pipe never fills.
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        host, port = panel.rsplit(":", 1)

        conn = http.client.HTTPConnection(host, int(port))
        body = urllib.parse.urlencode({"name": "bob", "password": "bench-secret"})
        conn.request("POST", "/login", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie").split(";")[0]
        page = "/files?path=%2Fpublic_html%2Fmany"
        times = []
        for _ in range(31):
            t0 = time.perf_counter()
            conn.request("GET", page, headers={"Cookie": cookie})
            r = conn.getresponse()
            text = r.read().decode()
            times.append((time.perf_counter() - t0) * 1000)
            if r.status != 200 or "file00199.html" not in text:
                raise SystemExit(f"the listing failed: {r.status}")
        render = statistics.median(times[1:])
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', text).group(1)

        def panel_upload():
            dest = f"{home}/public_html/big.bin"
            if os.path.exists(dest):
                os.remove(dest)
            t0 = time.monotonic()
            run(["curl", "-sS", "-o", "/dev/null", "-H", f"Cookie: {cookie}",
                 "-F", f"files=@{big}",
                 f"http://{panel}/upload?csrf={csrf}&dir=%2Fpublic_html"])
            dt = time.monotonic() - t0
            if os.path.getsize(dest) != 256 * MIB:
                raise SystemExit("the panel upload did not land whole")
            return 256 * MIB / dt / 1e6

        def sftp_upload():
            dest = f"{home}/public_html/big.bin"
            if os.path.exists(dest):
                os.remove(dest)
            t0 = time.monotonic()
            run(["sftp", "-q", "-P", str(sftp_port), "-i", f"{tmp}/key",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "BatchMode=yes", "-b", "-", "bob@127.0.0.1"],
                input=f"put {big} /public_html/big.bin\n")
            dt = time.monotonic() - t0
            if os.path.getsize(dest) != 256 * MIB:
                raise SystemExit("the SFTP upload did not land whole")
            return 256 * MIB / dt / 1e6

        ratios, pan, sf = [], [], []
        for rnd in range(args.rounds):
            if rnd % 2 == 0:
                a, b = panel_upload(), sftp_upload()
            else:
                b, a = sftp_upload(), panel_upload()
            pan.append(a)
            sf.append(b)
            ratios.append(a / b)
            print(f"round {rnd + 1}: panel {a:.0f} MB/s, sftp {b:.0f} MB/s, ratio {a / b:.2f}")
        print(f"listing of 10,000 files, first page: median {render:.1f} ms "
              f"(min {min(times[1:]):.1f}, max {max(times[1:]):.1f}); target < 50 ms")
        print(f"256 MiB upload: panel {statistics.median(pan):.0f} MB/s, "
              f"sftp {statistics.median(sf):.0f} MB/s, median ratio "
              f"{statistics.median(ratios):.2f}; target >= 0.8")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
