"""The many-customers case of bench.py (issue 11): yadokari with 1,000 configured customers.

A second yadokari server runs with 1,000 `[[users]]` entries, each with a site of its own and
one domain (`cN.example`); the requests of a workload are spread over 10 of those domains by a
wrk Lua script that cycles the Host header. The very same script runs against the single-site
yadokari (which has no domains, so every Host reaches its one document root), in the same
rounds and rotation, so the two figures differ only by the server's configuration: the ratio is
what 1,000 customers and routing by Host cost. The plain single-site figures of the same run
(`static-1k-c64`, `cgi-c-ka-c64`, without a Lua script) are shown beside them. The
many-customers server's default site is empty, so a request that reached no customer would be a
404, counted as an error.

Customer sites belong to an ordinary account (bench.py's `ydkbench`): yadokari started as root
refuses a customer site that belongs to root, and runs a customer's scripts as that owner.
Only the 10 customers that get requests have files; the 990 others are empty directories, as
idle customers' sites are to the server (it never reads a site it gets no request for).
"""

import os
import shutil
import statistics

import cells

CUSTOMERS = 1000
HOT = 10  # customers the requests are spread over
TARGET = "yadokari-many"
GOAL = 0.95  # issue 11: within 5% of the single site

# name, url path, wrk connections, extra wrk args, unit, ceiling; the single-site workload
# measured without the Lua script, for reference.
WORKLOADS = [
    ("many-static-1k-c64", "/1k.bin", 64, ["many"], "req/s", None, "static-1k-c64"),
    ("many-cgi-c-ka-c64", "/cgi-bin/hello", 64, ["many"], "req/s", None, "cgi-c-ka-c64"),
]


def hot_names():
    """The customers that get requests: every hundredth, spread over the 1,000."""
    step = CUSTOMERS // HOT
    return [f"c{n}" for n in range(step, CUSTOMERS + 1, step)]


def build_sites(tmp, docroot, uid, gid):
    """1,000 customer sites under tmp/customers, owned by uid:gid; the hot ones with the
    document root's 1k.bin and cgi-bin/hello and a whoami.txt naming their customer."""
    base = os.path.join(tmp, "customers")
    os.makedirs(base, mode=0o755)
    hot = set(hot_names())
    for n in range(1, CUSTOMERS + 1):
        name = f"c{n}"
        site = os.path.join(base, name)
        os.makedirs(site, mode=0o755)
        if name in hot:
            os.makedirs(os.path.join(site, "cgi-bin"), mode=0o755)
            shutil.copy(os.path.join(docroot, "1k.bin"), os.path.join(site, "1k.bin"))
            shutil.copy(os.path.join(docroot, "cgi-bin", "hello"),
                        os.path.join(site, "cgi-bin", "hello"))
            with open(os.path.join(site, "whoami.txt"), "w") as f:
                f.write(name + "\n")
            for rel, mode in (("cgi-bin", 0o755), ("1k.bin", 0o644),
                              ("cgi-bin/hello", 0o755), ("whoami.txt", 0o644)):
                path = os.path.join(site, rel)
                os.chmod(path, mode)
                os.chown(path, uid, gid)
        os.chmod(site, 0o755)
        os.chown(site, uid, gid)
    return base


def empty_root(tmp):
    """The many-customers server's document root: empty, so nothing but a customer's site
    answers 200."""
    root = os.path.join(tmp, "many-default")
    os.makedirs(root, mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)
    return root


def users_toml(base):
    """The 1,000 `[[users]]` entries (no credentials: they are served, never logged in)."""
    return "".join(f'\n[[users]]\nname = "c{n}"\nsite = "{base}/c{n}"\n'
                   f'domains = ["c{n}.example"]\n' for n in range(1, CUSTOMERS + 1))


def write_lua(path):
    """The wrk script: one request per hot domain, formatted once per thread, sent in turn."""
    hosts = ", ".join(f'"{n}.example"' for n in hot_names())
    with open(path, "w") as f:
        f.write(f"""-- Cycles the Host header over {HOT} customers' domains (bench/many.py).
local hosts = {{{hosts}}}
local requests = {{}}
local turn = 0
function init(args)
    for i, host in ipairs(hosts) do
        requests[i] = wrk.format(nil, nil, {{Host = host}})
    end
end
function request()
    turn = turn % #requests + 1
    return requests[turn]
end
""")


def check(target, docroot, get):
    """The many workloads `target` answers correctly on every hot domain. `get(url, host)`
    returns the body. The many-customers server must also route each domain to its own site
    (whoami.txt); the single-site one serves its document root for every Host."""
    with open(os.path.join(docroot, "1k.bin"), "rb") as f:
        small = f.read()
    ok = set()
    for name, path, *_ in WORKLOADS:
        want = small if path == "/1k.bin" else b"Hello, world!\n"
        good = True
        for customer in hot_names():
            host = f"{customer}.example"
            try:
                good = good and get(target.url(path), host) == want
                if target.name == TARGET:
                    good = good and get(target.url("/whoami.txt"), host) == f"{customer}\n".encode()
            except Exception:  # noqa: BLE001 - any failure marks the workload unusable
                good = False
        if good:
            ok.add(name)
    return ok


def paired_ratios(rows, name):
    """Per round, the many-customers figure over the single-site one: the two ran back to back,
    so their ratio is less exposed to drift (other work on the machine) than a ratio of
    medians."""
    got = {}
    for r in rows:
        if r["workload"] == name and r["target"] in ("yadokari", TARGET):
            got.setdefault(r["round"], {})[r["target"]] = r["value"]
    return [g[TARGET] / g["yadokari"] for g in got.values()
            if g.get("yadokari") and TARGET in g]


def table(rows, by, fmt):
    """Markdown lines: each many-customers figure beside the single-site ones, and the ratios."""
    out = [f"| many customers (issue 11) | unit | yadokari, single site | yadokari, single site, "
           f"Host cycled over {HOT} names | yadokari, {CUSTOMERS:,} customers, {HOT} of their "
           f"domains | {CUSTOMERS:,} customers / single site: ratio of medians | per-round "
           f"ratio: median (min-max) | within 5% (per-round median) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(key):
        return cells.cell(by.get(key), fmt)

    for name, _path, _c, _x, unit, _ceil, plain in WORKLOADS:
        single, many = by.get((name, "yadokari")), by.get((name, TARGET))
        if not single and not many:
            continue
        ratio = many["median"] / single["median"] if single and many and single["median"] else None
        paired = paired_ratios(rows, name)
        mid = statistics.median(paired) if paired else None
        spread = f"{mid:.3f} ({min(paired):.3f}-{max(paired):.3f})" if paired else "-"
        verdict = "-" if mid is None else ("met" if mid >= GOAL else "MISSED")
        out.append(f"| {name} | {unit} | {cell((plain, 'yadokari'))} | "
                   f"{cell((name, 'yadokari'))} | {cell((name, TARGET))} | "
                   f"{'-' if ratio is None else f'{ratio:.3f}'} | {spread} | {verdict} |")
    return out
