//! One integration-test target: each module starts the real binary and talks to it.

mod support;

mod accounts;
mod acme;
mod banner;
mod cgi;
mod cgi_isolation;
mod cgi_programs;
mod compression;
mod customer_logs;
mod customers;
mod descriptors;
mod explain_htaccess;
mod explanations;
mod h2c;
mod htaccess;
mod htaccess_apps;
mod htaccess_auth;
mod htaccess_changes;
mod htaccess_files;
mod lifecycle;
mod listings;
mod reload;
mod sandbox;
mod sftp;
mod sftp_auth;
mod sftp_protocol;
mod sftp_quota;
mod sftp_rules;
mod sftp_sessions;
mod sites;
mod static_files;
mod systemd;
mod tls;
mod traversal;
mod wire;
