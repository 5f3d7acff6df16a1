"""Push deploys, a case of bench.py (issue 19): `rsync -a` of a 256 MiB tree (many small files
and one large) over SSH into yadokari's endpoint (rsync run as the customer by the exec
channel) and into OpenSSH's sshd running the same rsync, side by side, each round alternating
which goes first; the destination is emptied before each run, so every run sends everything.
Target: yadokari >= 1.0x OpenSSH's throughput. The figures are end to end, handshake included,
as a user sees them.
"""

import os
import shutil
import subprocess
import time

MIB = 1024 * 1024
WORKLOAD = "rsync-upload-256m"
SMALL_FILES = 2048          # 2,048 files of 32 KiB: 64 MiB
SMALL_BYTES = 32 * 1024
LARGE_MIB = 192


def build_tree(tmp):
    """The tree to send: `small/NNNN/*.bin` and one large file, 256 MiB in all."""
    tree = os.path.join(tmp, "rsync-tree")
    for i in range(SMALL_FILES):
        d = os.path.join(tree, "small", f"{i // 64:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:05d}.bin"), "wb") as f:
            f.write(os.urandom(SMALL_BYTES))
    with open(os.path.join(tree, "large.bin"), "wb") as f:
        for _ in range(LARGE_MIB):
            f.write(os.urandom(MIB))
    return tree


def total_bytes():
    return SMALL_FILES * SMALL_BYTES + LARGE_MIB * MIB


def upload(tree, port, user, key, dest, timeout=900):
    """Seconds for one `rsync -a tree/ user@127.0.0.1:dest/`."""
    shell = (f"ssh -p {port} -i {key} -o StrictHostKeyChecking=no "
             "-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR")
    cmd = ["rsync", "-a", "-e", shell, f"{tree}/", f"{user}@127.0.0.1:{dest}/"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"rsync failed ({p.returncode}): {p.stderr[-300:]}")
    return dt


def rounds(ends, tree, key, n, log):
    """`ends`: (name, port, user, site, dest as the client names it); rows for the report."""
    rows = []
    size = total_bytes()
    for rnd in range(n):
        order = ends if rnd % 2 == 0 else list(reversed(ends))
        for name, port, user, site, dest in order:
            shutil.rmtree(os.path.join(site, "rsync-dest"), ignore_errors=True)
            try:
                dt = upload(tree, port, user, key, dest)
                landed = sum(os.path.getsize(os.path.join(d, f))
                             for d, _, files in os.walk(os.path.join(site, "rsync-dest"))
                             for f in files)
                if landed != size:
                    raise RuntimeError(f"{landed} of {size} bytes landed")
                v, err = size / dt / 1e6, 0
            except Exception as e:  # noqa: BLE001
                log(f"  rsync {name} failed: {e}")
                v, err = 0.0, 1
            rows.append({"round": rnd + 1, "workload": WORKLOAD, "target": name,
                         "value": v, "p99_ms": None, "errors": err})
            log(f"  {WORKLOAD:16} {name:9} {v:9.1f} MB/s")
        time.sleep(1)
    return rows
