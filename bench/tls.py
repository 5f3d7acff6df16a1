"""HTTPS against nginx, a case of bench.py (issue 13): yadokari's TLS listener (rustls with
ring) and nginx's (OpenSSL), each with the same ECDSA P-256 certificate made by this run,
serving the same files to wrk over TLS.

- `tls-static-1k-c64`: GET /1k.bin over 64 keep-alive connections (the record layer and the
  request path).
- `tls-static-1m-c64`: GET /1m.bin, the same way (bulk encryption; neither server can use
  `sendfile` through TLS without kernel TLS, which nginx does not turn on by default).
- `tls-handshake-c64`: GET /1k.bin with `Connection: close` over 64 connections: every request
  is a new TCP connection and a full handshake (wrk resumes no sessions), so this is new TLS
  connections per second.

Each server in its default TLS settings, HTTP/1.1 (wrk speaks nothing else), nginx with two
workers as in bench.py's plain nginx. nginx runs twice: as Debian ships it (`nginx-tls`; its
1.22 enables TLS 1.2 and older only, so wrk gets TLS 1.2, ECDHE-ECDSA-AES256-GCM-SHA384, and
resumes a session with an abbreviated handshake: no key exchange at all), and with
`ssl_protocols TLSv1.2 TLSv1.3` (`nginx-tls13`, upstream's default since 1.23.4), the same
protocol yadokari speaks (TLS 1.3: a resumed session still makes an X25519 exchange). wrk
resumes sessions: it keeps each connection's session across its reconnects, so
`tls-handshake-c64` measures returning clients, as a browser's further connections are.

Issue 13's target: yadokari >= 1.0x nginx on each; the table gives the ratio against both
nginx servers. Server CPU per request is recorded for yadokari as for every yadokari run.
"""

import os
import ssl
import subprocess
import urllib.request

import cells
import nginx_conf as nginx_common

# name, url path, wrk connections, extra wrk args, unit, ceiling
WORKLOADS = [
    ("tls-static-1k-c64", "/1k.bin", 64, [], "req/s", None),
    ("tls-static-1m-c64", "/1m.bin", 64, [], "MB/s", None),
    ("tls-handshake-c64", "/1k.bin", 64, ["-H", "Connection: close"], "req/s", None),
]
BYTES_PER_REQ = {"tls-static-1m-c64": 1024 * 1024}
YADOKARI, NGINX, NGINX13 = "yadokari-tls", "nginx-tls", "nginx-tls13"
TARGETS = [YADOKARI, NGINX, NGINX13]
GOAL = 1.0


def make_certificate(tmp):
    """An ECDSA P-256 certificate for 127.0.0.1 and localhost, self-signed (the check below
    trusts exactly it). Returns (certificate, key) paths."""
    d = os.path.join(tmp, "tls")
    os.makedirs(d, mode=0o755)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)  # both servers read it after dropping to their users
    return cert, key


def yadokari_extra(cert, key):
    """The `[tls]` section of the yadokari TLS server."""
    return f'\n[tls]\ncertificate = "{cert}"\nkey = "{key}"\n'


def nginx_conf(d, tmp, docroot, port, cert, key, tls13):
    """nginx serving `docroot` over TLS only, otherwise as bench.py's plain nginx; `tls13`
    enables TLS 1.3 beside 1.2."""
    protocols = "\n        ssl_protocols TLSv1.2 TLSv1.3;" if tls13 else ""
    return nginx_common.conf(d, f"{tmp}/logs/{os.path.basename(d)}-error.log", f"""    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};{protocols}
        root {docroot};
    }}""")


def check(t, cert):
    """The TLS workloads server `t` answers correctly over TLS, its certificate verified."""
    context = ssl.create_default_context(cafile=cert)
    ok = set()
    for name, path, *_rest in WORKLOADS:
        try:
            with open(os.path.join(t.docroot, path.lstrip("/")), "rb") as f:
                want = f.read()
            with urllib.request.urlopen(t.url(path), timeout=20, context=context) as r:
                good = r.read() == want
        except Exception:  # noqa: BLE001 - any failure marks the workload unusable
            good = False
        if good:
            ok.add(name)
    return ok


def table(by, fmt):
    """Markdown lines: each workload, the three servers, the ratios and the verdicts."""
    out = ["| HTTPS (issue 13) | unit | yadokari (TLS 1.3) | nginx as shipped (TLS 1.2) | "
           "nginx with TLS 1.3 | yadokari / nginx as shipped | yadokari / nginx TLS 1.3 | "
           "target |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(s):
        return cells.cell(s, fmt)

    def ratio(y, n):
        if not y or not n or not n["median"]:
            return "-"
        r = y["median"] / n["median"]
        return f"{r:.2f} {'met' if r >= GOAL else 'MISSED'}"

    for name, _path, _c, _extra, unit, _ceil in WORKLOADS:
        y, n, n13 = (by.get((name, t)) for t in (YADOKARI, NGINX, NGINX13))
        if not y and not n and not n13:
            continue
        out.append(f"| {name} | {unit} | {cell(y)} | {cell(n)} | {cell(n13)} | {ratio(y, n)} | "
                   f"{ratio(y, n13)} | >= {GOAL} |")
    return out
