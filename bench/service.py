"""Running as a service, a case of bench.py (issue 21):

- Metrics: CGI hello and static 1 KiB at c=64 on two yadokari servers that differ only in the
  admin listener (`yadokari-metrics-on` records every request for /metrics; `-off` has no
  recorder), in the same rounds and rotation. Target: on / off >= 0.99.
- Upgrades: on `yadokari-upgrade`, a static 1 KiB + CGI load (wrk, c=16 each) for a period
  without an upgrade and for one with a SIGUSR2 upgrade in its middle, per round; the longest
  request latency (wrk's Max) and the failed requests of each. Target: no failed request; the
  longest latency during an upgrade is reported beside the normal one.
"""

import os
import re
import signal
import statistics
import subprocess
import threading
import time

import cells

# name, url path, wrk connections, extra wrk args, unit, ceiling
WORKLOADS = [
    ("metrics-cgi-c-ka-c64", "/cgi-bin/hello", 64, [], "req/s", None),
    ("metrics-static-1k-c64", "/1k.bin", 64, [], "req/s", None),
]
TARGETS = ["yadokari-metrics-off", "yadokari-metrics-on"]
UPGRADE = "yadokari-upgrade"
GOAL = 0.99
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def server_settings(name, tmp, port):
    """Lines for `[server]` of server `name`."""
    if name == "yadokari-metrics-on":
        return f'admin = "127.0.0.1:{port}"\n'
    if name == UPGRADE:
        return f'pid_file = "{pid_file(tmp)}"\n'
    return ""


def pid_file(tmp):
    return os.path.join(tmp, UPGRADE, "yadokari.pid")


def check(t, fetch, admin_port):
    """The workloads server `t` answers correctly (and, metrics on, that /metrics counts)."""
    try:
        hello, _ = fetch(t.url("/cgi-bin/hello"))
        page, _ = fetch(t.url("/1k.bin"))
        if t.name == "yadokari-metrics-on":
            metrics, _ = fetch(f"http://127.0.0.1:{admin_port}/metrics")
            if b"yadokari_http_requests_total" not in metrics:
                return set()
    except Exception:  # noqa: BLE001 - any failure marks the workloads unusable
        return set()
    if hello != b"Hello, world!\n" or len(page) != 1024:
        return set()
    return {w[0] for w in WORKLOADS}


def wrk_max(url, seconds, conns=16):
    """wrk on `url`: (the longest latency in ms, requests, failed requests)."""
    cmd = ["wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "--timeout", "10s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\s", out, re.M)
    longest = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1)) if m else 0
    failed = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        failed += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        failed += sum(int(x) for x in m.groups())
    if requests == 0:
        failed = max(failed, 1)
    return longest, requests, failed


def serving_pid(tmp):
    try:
        with open(pid_file(tmp)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def upgrade_rounds(t, tmp, rounds, seconds, log):
    """Per round, a normal period and one with an upgrade in its middle; rows for the report.
    The server the last upgrade left running is stopped here (by the pid in its pid file:
    it left the process group the bench started)."""
    rows = []
    try:
        for rnd in range(rounds):
            for period in ("normal", "upgrade"):
                results = {}

                def load(path, key):
                    results[key] = wrk_max(t.url(path), seconds)

                threads = [threading.Thread(target=load, args=(p, k))
                           for p, k in (("/1k.bin", "static"), ("/cgi-bin/hello", "cgi"))]
                for th in threads:
                    th.start()
                new_pid = None
                if period == "upgrade":
                    time.sleep(seconds / 2)
                    old = serving_pid(tmp)
                    if old:
                        os.kill(old, signal.SIGUSR2)
                        deadline = time.monotonic() + 30
                        while time.monotonic() < deadline:
                            new_pid = serving_pid(tmp)
                            if new_pid and new_pid != old:
                                break
                            time.sleep(0.05)
                for th in threads:
                    th.join()
                for key, (longest, requests, failed) in results.items():
                    w = f"upgrade-{key}-max-ms"
                    rows.append({"round": rnd + 1, "workload": w, "target": f"{UPGRADE}-{period}",
                                 "value": longest, "requests": requests, "errors": failed,
                                 "p99_ms": None})
                    log(f"  {w:22} {period:8} max {longest:8.1f} ms  requests {requests} "
                        f"failed {failed}" + (f"  (new pid {new_pid})" if new_pid else ""))
                time.sleep(1)
    finally:
        pid = serving_pid(tmp)
        if pid and pid not in t.roots():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    return rows


def table(rows, by, fmt):
    """Markdown lines: metrics on against off, and the upgrade periods."""
    out = ["| service (issue 21) | off: req/s | on: req/s | on / off: ratio of medians "
           "| on / off: per-round, median (min-max) | server CPU per request off / on (µs) "
           "| target | verdict |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    on, off = TARGETS[1], TARGETS[0]
    for name, *_rest in WORKLOADS:
        got = cells.on_off(rows, by, name, on, off)
        if got is None:
            continue
        s_on, s_off, ratio, mid, spread = got
        verdict = "-" if mid is None else ("met" if mid >= GOAL else "MISSED")

        def cpu(target):
            v = [r["cpu_us"] for r in rows if r["workload"] == name
                 and r["target"] == target and r.get("cpu_us")]
            return f"{statistics.median(v):.1f}" if v else "-"
        out.append(f"| {name} | {cells.cell(s_off, fmt)} | {cells.cell(s_on, fmt)} | {ratio} "
                   f"| {spread} | {cpu(off)} / {cpu(on)} | >= {GOAL} | {verdict} |")
    ups = [r for r in rows if r["workload"].startswith("upgrade-")]
    if ups:
        out += ["", "| upgrade (issue 21), c=16 each | longest latency, normal: ms median (max) "
                "| longest latency, upgrade: ms median (max) | failed requests normal / upgrade "
                "| verdict (no failure) |", "| --- | --- | --- | --- | --- |"]
        for w in sorted({r["workload"] for r in ups}):
            def of(period):
                return [r for r in ups if r["workload"] == w
                        and r["target"] == f"{UPGRADE}-{period}"]
            n, u = of("normal"), of("upgrade")
            if not n or not u:
                continue

            def lat(rs):
                v = [r["value"] for r in rs]
                return f"{fmt(statistics.median(v))} ({fmt(max(v))})"
            fn, fu = sum(r["errors"] for r in n), sum(r["errors"] for r in u)
            out.append(f"| {w} | {lat(n)} | {lat(u)} | {fn} / {fu} "
                       f"| {'met' if fu == 0 else 'MISSED'} |")
    return out
