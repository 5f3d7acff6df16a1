"""The nginx configuration every nginx of the benchmark runs (bench.py's nginx + fcgiwrap and
bench/tls.py's TLS servers): two workers as nobody, no access log, sendfile, long keep-alive,
its temporary directories under its own directory `d`; only the `server` block differs."""


def conf(d, error_log, server):
    """The whole nginx.conf, with `server` (a `server { ... }` block) inside `http`."""
    return f"""daemon off;
master_process on;
worker_processes 2;
user nobody nogroup;
pid {d}/nginx.pid;
error_log {error_log} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 30s;
    client_max_body_size 100m;
    client_body_temp_path {d}/client_body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ application/octet-stream bin; text/html html; }}
    default_type application/octet-stream;
{server}
}}
"""
