"""One summary cell of a results table, as every table of the benchmark writes it."""

import statistics


def cell(s, fmt):
    """`median (min-max)`, then ` p99 N` for HTTP figures and ` !` when requests failed;
    `-` when there is no summary `s`. `fmt` formats a number (bench.py's `fmt`)."""
    if not s:
        return "-"
    c = f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"
    if s["p99_ms"] != "":
        c += f" p99 {fmt(s['p99_ms'])}"
    return c + (" !" if s["errors"] else "")


def paired(rows, name, on, off, key):
    """Per round, `key` of the server `on` over that of `off` (the two ran in the same round)."""
    got = {}
    for r in rows:
        if r["workload"] == name and r["target"] in (on, off) and r.get(key):
            got.setdefault(r["round"], {})[r["target"]] = r[key]
    return [g[on] / g[off] for g in got.values() if g.get(off) and on in g]


def on_off(rows, by, name, on, off):
    """Workload `name` on target `on` against `off`: (summary on, summary off, the ratio of
    medians as text, the median of per-round ratios or None, that median with its range as
    text); None when either target lacks the workload."""
    s_on, s_off = by.get((name, on)), by.get((name, off))
    if not s_on or not s_off:
        return None
    ratio = f"{s_on['median'] / s_off['median']:.3f}" if s_off["median"] else "-"
    per = paired(rows, name, on, off, "value")
    mid = statistics.median(per) if per else None
    spread = f"{mid:.3f} ({min(per):.3f}-{max(per):.3f})" if per else "-"
    return s_on, s_off, ratio, mid, spread
