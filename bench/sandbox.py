"""The sandbox's cost, a case of bench.py (issue 14): the C hello of a customer's site, run by
three yadokari servers that differ only in `[sandbox]`, in the same rounds and rotation:

- `yadokari-sb-off`: `enabled = false`, a plain spawn (the customer's identity, rlimits).
- `yadokari-sb-ns`: files and processes isolated: the customer's prebuilt mount and IPC
  namespaces joined with `setns`, their Landlock ruleset, a fresh pid namespace per request;
  no cgroup (`limits = false`).
- `yadokari-sb-full`: all of that and the customer's cgroup (memory, pids, cpu) joined per
  request through open `cgroup.procs` descriptors.

Issue 14's targets, on against off, same run: at least 0.9x with file and process isolation;
with the cgroup limits too, 0.9x on cgroup v2 and 0.8x on cgroup v1 (this machine kind).

The site belongs to an ordinary account (the customer), as a customer's does: scripts run as
its owner, and only customers' sites are sandboxed. The verdict is read from throughput (the
median of per-round ratios): the sandbox's work happens in the child between clone and exec,
which the server's own CPU figure does not count. The children's CPU (the server's cutime +
cstime) is reported beside it.
"""

import os
import shutil
import statistics

import cells

URL = "/~sb/cgi-bin/hello"
# name, url path, wrk connections, extra wrk args, unit, ceiling
WORKLOADS = [
    ("sandbox-cgi-c-ka-c1", URL, 1, [], "req/s", None),
    ("sandbox-cgi-c-ka-c64", URL, 64, [], "req/s", None),
]
MODES = ("off", "ns", "full")
TARGETS = [f"yadokari-sb-{m}" for m in MODES]
SETTINGS = {
    "off": "enabled = false",
    "ns": "enabled = true\nlimits = false",
    "full": "enabled = true\nlimits = true",
}


def cgroup_version():
    """2 when the unified hierarchy has controllers, else 1."""
    for path in ("/sys/fs/cgroup/cgroup.controllers",
                 "/sys/fs/cgroup/unified/cgroup.controllers"):
        try:
            with open(path) as f:
                if "memory" in f.read().split():
                    return 2
        except OSError:
            pass
    return 1


def goals():
    return {"ns": 0.9, "full": 0.9 if cgroup_version() == 2 else 0.8}


def build_site(tmp, docroot, uid, gid):
    """The customer's site: cgi-bin/hello (the C hello), owned by uid:gid."""
    site = os.path.join(tmp, "sb-site")
    os.makedirs(os.path.join(site, "cgi-bin"), mode=0o755)
    shutil.copy(os.path.join(docroot, "cgi-bin", "hello"), os.path.join(site, "cgi-bin", "hello"))
    for rel, mode in (("", 0o755), ("cgi-bin", 0o755), ("cgi-bin/hello", 0o755)):
        path = os.path.join(site, rel)
        os.chmod(path, mode)
        os.chown(path, uid, gid)
    return site


def settings(name, site):
    """The customer's entry and the `[sandbox]` section of server `name`."""
    mode = name.rsplit("-", 1)[1]
    return (f'\n[[users]]\nname = "sb"\nsite = "{site}"\n'
            f"\n[sandbox]\n{SETTINGS[mode]}\n")


def check(t, fetch):
    """The sandbox workloads server `t` answers correctly."""
    try:
        body, _ = fetch(t.url(URL))
    except Exception:  # noqa: BLE001 - any failure marks the workloads unusable
        return set()
    return {w[0] for w in WORKLOADS} if body == b"Hello, world!\n" else set()




def table(rows, by, fmt):
    """Markdown lines: each mode against off, throughput ratios and the children's CPU."""
    out = ["| sandbox (issue 14) | off: req/s | isolated: req/s | on / off: ratio of medians "
           "| on / off: per-round, median (min-max) | scripts' CPU per request off / on (µs) "
           "| target | verdict |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    want = goals()
    off = "yadokari-sb-off"
    for name, *_rest in WORKLOADS:
        for mode in ("ns", "full"):
            on = f"yadokari-sb-{mode}"
            got = cells.on_off(rows, by, name, on, off)
            if got is None:
                continue
            s_on, s_off, ratio, mid, spread = got

            def child(target):
                v = [r["child_us"] for r in rows if r["workload"] == name
                     and r["target"] == target and r.get("child_us")]
                return f"{statistics.median(v):.0f}" if v else "-"

            goal = want[mode]
            verdict = "-" if mid is None else ("met" if mid >= goal else "MISSED")
            out.append(f"| {name} ({mode}) | {cells.cell(s_off, fmt)} | {cells.cell(s_on, fmt)} "
                       f"| {ratio} | {spread} | {child(off)} / {child(on)} | >= {goal} "
                       f"| {verdict} |")
    return out
