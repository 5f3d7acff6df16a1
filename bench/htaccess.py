""".htaccess support's cost, a case of bench.py (issue 12): yadokari with `[htaccess] enabled =
true` against `enabled = false`, on the same tree, in the same rounds and rotation.

Two trees, each served by two yadokari servers (support on and off), so that each pair differs
only by that setting:

- `htaccess-none-*`, tree `ht-none`: no `.htaccess` anywhere. What every request of a site
  without one pays for the support: looking for the files on the way (`/1k.bin` at the root,
  `/a/b/c/1k.bin` three directories deep, and the same for the C hello as `hello.cgi`).
- `htaccess-tree-*`, tree `ht-tree`: the root, `a`, `a/b` and `a/b/c` each hold a realistic
  `.htaccess` (the one below: options, index, charset, type, a header, a `<FilesMatch>`
  denial, an error document, expiry), so a request for `/a/b/c/...` merges four files.

Issue 12's targets: at least 0.95x of support off with no `.htaccess`, and 0.85x with the
three-level tree. Each pair is reported as the ratio of medians (on / off) and as the median of
the per-round ratios, and, because throughput on a shared 2-core machine moves by tens of
percent from run to run, as **server CPU per request** too: utime + stime of the server's
process (`/proc/PID/stat`) over each wrk run, divided by the requests it made (bench.py records
it for every yadokari run). The verdict is read from the CPU figure, as off / on (the
throughput the CPU cost alone would allow, comparable with the targets).

The trees belong to root, as the shared document root does: the servers (started as root) run
the scripts as their `fallback_user`, `nobody`, as for `/cgi-bin/hello`.
"""

import os
import shutil
import statistics

import cells

# name, url path, wrk connections, extra wrk args, unit, ceiling, tree
WORKLOADS = [
    ("htaccess-none-static-root-c64", "/1k.bin", 64, [], "req/s", None, "none"),
    ("htaccess-none-static-deep-c64", "/a/b/c/1k.bin", 64, [], "req/s", None, "none"),
    ("htaccess-none-cgi-root-c64", "/hello.cgi", 64, [], "req/s", None, "none"),
    ("htaccess-none-cgi-deep-c64", "/a/b/c/hello.cgi", 64, [], "req/s", None, "none"),
    ("htaccess-tree-static-deep-c64", "/a/b/c/1k.bin", 64, [], "req/s", None, "tree"),
    ("htaccess-tree-cgi-deep-c64", "/a/b/c/hello.cgi", 64, [], "req/s", None, "tree"),
]
GOALS = {"none": 0.95, "tree": 0.85}


def target(tree, on):
    """The name of the server of `tree` with support `on` or off."""
    return f"yadokari-ht-{tree}-{'on' if on else 'off'}"


TARGETS = [target(tree, on) for tree in ("none", "tree") for on in (False, True)]

# Each directory's file: what a customer's site typically carries (ten directives, one of
# them a three-line section). The header names the level, so the check can see that the
# deepest file applied.
HTACCESS = """Options -Indexes
DirectoryIndex index.html index.php
AddDefaultCharset UTF-8
AddType application/octet-stream .bin
Header set X-Htaccess-Level {level}
<FilesMatch "\\.(bak|sql|inc|log)$">
    Require all denied
</FilesMatch>
ErrorDocument 404 /404.html
ExpiresActive On
ExpiresByType application/octet-stream "access plus 1 day"
"""


def settings(name):
    """The `[htaccess]` section of the server `name`."""
    on = name.endswith("-on")
    return f"\n[htaccess]\nenabled = {'true' if on else 'false'}\n"


def tree_of(name):
    return name.split("-")[2]


def build_trees(tmp, docroot):
    """The two trees under tmp: `ht-none` and `ht-tree`, each with 1k.bin and hello.cgi (the
    C hello) at the root and in a/b/c, a 404.html, and for `ht-tree` a .htaccess on each of
    the four levels. Returns {tree: path}."""
    trees = {}
    for tree in ("none", "tree"):
        root = os.path.join(tmp, f"ht-{tree}")
        deep = os.path.join(root, "a", "b", "c")
        os.makedirs(deep, mode=0o755)
        for level, d in (("root", root), ("a", os.path.join(root, "a")),
                         ("b", os.path.join(root, "a", "b")), ("c", deep)):
            os.chmod(d, 0o755)
            for name, src, mode in (("1k.bin", "1k.bin", 0o644),
                                    ("hello.cgi", "cgi-bin/hello", 0o755)):
                shutil.copy(os.path.join(docroot, src), os.path.join(d, name))
                os.chmod(os.path.join(d, name), mode)
            if tree == "tree":
                with open(os.path.join(d, ".htaccess"), "w") as f:
                    f.write(HTACCESS.format(level=level))
                os.chmod(os.path.join(d, ".htaccess"), 0o644)
        with open(os.path.join(root, "404.html"), "w") as f:
            f.write("<!doctype html><title>not here</title>\n")
        os.chmod(os.path.join(root, "404.html"), 0o644)
        trees[tree] = root
    return trees


def check(t, fetch):
    """The htaccess workloads server `t` answers correctly. `fetch(url)` returns (body,
    headers). Support on over the tree must show the deepest file's header; off must not."""
    with open(os.path.join(t.docroot, "1k.bin"), "rb") as f:
        small = f.read()
    ok = set()
    for name, path, *_rest, tree in WORKLOADS:
        if tree != tree_of(t.name):
            continue
        want = small if path.endswith("1k.bin") else b"Hello, world!\n"
        try:
            body, headers = fetch(t.url(path))
            good = body == want
            level = headers.get("X-Htaccess-Level")
            if tree == "tree":
                good = good and (level == "c" if t.name.endswith("-on") else level is None)
        except Exception:  # noqa: BLE001 - any failure marks the workload unusable
            good = False
        if good:
            ok.add(name)
    return ok




def table(rows, by, fmt):
    """Markdown lines: each pair side by side, its throughput and CPU-per-request ratios."""
    out = ["| .htaccess (issue 12) | support off: req/s | support on: req/s | on / off: "
           "ratio of medians | on / off: per-round, median (min-max) | server CPU per request "
           "off / on (µs) | CPU: off / on, per-round median (min-max) | target | verdict (CPU) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(key):
        return cells.cell(by.get(key), fmt)

    def spread(values):
        if not values:
            return None, "-"
        mid = statistics.median(values)
        return mid, f"{mid:.3f} ({min(values):.3f}-{max(values):.3f})"

    for name, *_rest, tree in WORKLOADS:
        on, off = target(tree, True), target(tree, False)
        s_on, s_off = by.get((name, on)), by.get((name, off))
        if not s_on and not s_off:
            continue
        ratio = (f"{s_on['median'] / s_off['median']:.3f}"
                 if s_on and s_off and s_off["median"] else "-")
        _, rps = spread(cells.paired(rows, name, on, off, "value"))
        # CPU: off over on, so that it reads like the throughput ratio (higher is better).
        cpu = cells.paired(rows, name, off, on, "cpu_us")
        mid, cpu_spread = spread(cpu)
        cpu_on = [r["cpu_us"] for r in rows if r["workload"] == name and r["target"] == on
                  and r.get("cpu_us")]
        cpu_off = [r["cpu_us"] for r in rows if r["workload"] == name and r["target"] == off
                   and r.get("cpu_us")]
        cpus = (f"{statistics.median(cpu_off):.1f} / {statistics.median(cpu_on):.1f}"
                if cpu_on and cpu_off else "-")
        goal = GOALS[tree]
        verdict = "-" if mid is None else ("met" if mid >= goal else "MISSED")
        out.append(f"| {name} | {cell((name, off))} | {cell((name, on))} | {ratio} | {rps} | "
                   f"{cpus} | {cpu_spread} | >= {goal} | {verdict} |")
    return out
