#!/usr/bin/env python3
"""Writes the packaged /etc/yadokari/yadokari.toml: the shipped conf/yadokari.toml (one source
for every key's comment) with the paths and addresses of an installed server. Each change names
the line it replaces; a line that is no longer there stops the build instead of shipping a
configuration that silently kept the demo's value."""
import sys

CHANGES = [
    ('document_root = "../htdocs"', 'document_root = "/usr/share/yadokari/htdocs"'),
    ('http = "127.0.0.1:8080"', 'http = "[::]:80"'),
    ('sftp = "127.0.0.1:2222"', 'sftp = "[::]:2222"'),
    ('explain_errors = true ', 'explain_errors = false'),
    ('access_log = "-"', 'access_log = "/var/log/yadokari/access.log"'),
    ('error_log = "-"', 'error_log = "/var/log/yadokari/error.log"'),
    ('# admin = "127.0.0.1:9180"', 'admin = "127.0.0.1:9180"'),
    ('# pid_file = "/run/yadokari/yadokari.pid"', 'pid_file = "/run/yadokari/yadokari.pid"'),
    ('homes = "../homes"', 'homes = "/var/lib/yadokari/homes"'),
    ('host_key = "ssh_host_ed25519_key"', 'host_key = "/var/lib/yadokari/ssh_host_ed25519_key"'),
    ('state = "certs"', 'state = "/var/lib/yadokari/certs"'),
    # No customer yet: `yadokari user add NAME` makes the first.
    ('[[users]]\nname = "demo"', '# [[users]]\n# name = "demo"'),
    ('authorized_keys = "authorized_keys"  #', '# authorized_keys = "authorized_keys"  #'),
]

text = open(sys.argv[1]).read()
for old, new in CHANGES:
    if text.count(old) != 1:
        sys.exit(f"packaged-config: `{old}` is not in {sys.argv[1]} exactly once")
    text = text.replace(old, new)
sys.stdout.write(text)
