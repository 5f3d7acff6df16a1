#!/usr/bin/env python3
"""The container stack, measured (issue 18): `sudo python3 bench/swarm.py [--rounds 3]`.

In one run, on the private swarm of scripts/swarmlab.py (its own dockerd and registry, torn
down at the end):
- requests per second through the front (HAProxy, 2 replicas) against straight to one
  container of the same image published on 127.0.0.1, static 1 KiB and CGI hello, wrk c=64,
  medians of --rounds runs of --duration seconds, alternating which goes first;
- the rollout time of 2 replicas (`docker service update --image`, v1 <-> v2) and the failures
  seen by the load of scripts/swarm-test during each of --rollouts rollouts in a row
  (target: 0 in every one);
- cold start to healthy: `docker run` of the image until its /healthz answers 200;
- the image's size.
Targets: through the front >= 0.8x of straight for CGI; 0 failures in every rollout.
"""

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import swarmlab  # noqa: E402
from swarmlab import Customer, Lab, Load, get, log, put_site, wait_for  # noqa: E402

CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
        "SETUID", "SYS_ADMIN", "SYS_CHROOT"]


def wrk(port, path, duration, conns=64):
    r = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{duration}s",
                        f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                       timeout=duration + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if errors:
        log(f"wrk {path}: {errors.group(1)} non-2xx answers")
    return float(m.group(1)) if m else 0.0


def run_straight(lab, image, name, http_port, admin_port=None):
    ports = ["-p", f"127.0.0.1:{http_port}:8080"]
    if admin_port:
        ports += ["-p", f"127.0.0.1:{admin_port}:9180"]
    caps = sum((["--cap-add", c] for c in CAPS), ["--cap-drop", "ALL"])
    lab.docker("run", "-d", "--name", name, *caps, *ports, image)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rollouts", type=int, default=5)
    args = ap.parse_args()
    rows = []
    with Lab() as lab:
        lab.deploy("v1")
        lab.wait_ready()
        image = lab.image_of_service()
        size = int(lab.docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())

        # Cold start: a fresh container until /healthz answers.
        colds = []
        for i in range(args.rounds):
            admin = swarmlab.free_port()
            t0 = time.monotonic()
            run_straight(lab, image, f"cold{i}", swarmlab.free_port(), admin)
            wait_for("cold start", lambda: get(admin, "/healthz", timeout=2)[0] == 200, 60, 0.02)
            colds.append(time.monotonic() - t0)
            lab.docker("rm", "-f", f"cold{i}")

        # Front against straight, the same image and files.
        straight = swarmlab.free_port()
        run_straight(lab, image, "straight", straight)
        # Straight means no front: the container takes connections without a PROXY header
        # (it re-reads its configuration within 2 s of the change).
        wait_for("the straight container's configuration",
                 lambda: lab.exec("straight", "sed", "-i",
                                  "s/^proxy_protocol = true/proxy_protocol = false/",
                                  "/var/lib/yadokari/yadokari.toml").returncode == 0, 30)
        wait_for("the straight container", lambda: get(straight, "/")[0] == 200, 60)
        one_k = "x" * 1023 + "\n"
        for c in [lab.replicas()[0], "straight"]:
            lab.exec(c, "sh", "-c", "cat > /var/lib/yadokari/htdocs/1k.txt", input=one_k)
        for name, path in [("static 1 KiB", "/1k.txt"), ("CGI hello", "/cgi-bin/hello.cgi")]:
            front, direct = [], []
            for i in range(args.rounds):
                order = [(front, lab.http_port), (direct, straight)]
                for into, port in (order if i % 2 == 0 else order[::-1]):
                    into.append(wrk(port, path, args.duration))
            f, d = statistics.median(front), statistics.median(direct)
            rows.append((f"{name}, c=64: through the front", f"{f:,.0f} req/s",
                         f"{f / d:.2f}x of straight ({d:,.0f} req/s)"))
        lab.docker("rm", "-f", "straight")

        # Rollouts under load, alternating versions.
        lab.script("image", "v2", "--tag-prefix", f"{lab.registry}/")
        lab.docker("push", "-q", f"{lab.registry}/yadokari:v2")
        customer = Customer(lab)
        customer.create(lab.replicas()[0])
        wait_for("the customer on every replica",
                 lambda: all(lab.fetch_in(r, f"/~{customer.name}/")[0] != 404
                             for r in lab.replicas()), 30)
        put_site(customer, lab.dir)
        times, failures = [], []
        for i in range(args.rollouts):
            version = "v2" if i % 2 == 0 else "v1"
            with Load(lab, customer, f"bench{i}") as load:
                time.sleep(3)
                t0 = time.monotonic()
                lab.docker("service", "update", "--quiet", "--image",
                           f"{lab.registry}/yadokari:{version}", swarmlab.SERVICE)
                times.append(time.monotonic() - t0)
                time.sleep(5)
            total, failed, parts = load.summary()
            failures.append(failed)
            log(f"rollout {i + 1} to {version}: {times[-1]:.1f} s, {total} requests and "
                f"transfers, {failed} failed ({parts})")
            lab.wait_ready()
    rows.append(("rollout of 2 replicas under load (start-first, monitor 8 s)",
                 f"{statistics.median(times):.1f} s median",
                 f"{min(times):.1f}-{max(times):.1f} s over {len(times)}"))
    rows.append(("failed requests + transfers per rollout", " ".join(map(str, failures)),
                 "target 0 in every one"))
    rows.append(("cold start to healthy (docker run -> /healthz 200)",
                 f"{statistics.median(colds):.2f} s median", f"{min(colds):.2f}-{max(colds):.2f} s"))
    rows.append(("image size", f"{size / 1048576:.0f} MiB", "Debian 12 minbase + perl, php-cgi, "
                 "python3, git"))
    print("\n| measure | median | note |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
