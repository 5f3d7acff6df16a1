//! The configuration's loading and checks, key by key.
use super::*;

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("htdocs")).expect("mkdir");
    let file = dir.path().join("y.toml");
    std::fs::write(&file, text).expect("write");
    Config::load(Some(&file), &Overrides::default())
}

#[test]
fn defaults_resolve_relative_to_the_file() {
    let c = load_text("").expect("valid");
    assert!(c.document_root.ends_with("htdocs"));
    assert_eq!(c.http.port(), 8080);
    assert_eq!(c.cgi.directories, vec![vec![b"cgi-bin".to_vec()]]);
}

#[test]
fn unknown_key_is_named() {
    let e = load_text("[limits]\nmax_conections = 3\n")
        .expect_err("invalid")
        .to_string();
    assert!(e.contains("max_conections"), "{e}");
    assert!(e.contains("y.toml"), "{e}");
}

#[test]
fn log_levels_and_the_fallback_user_are_checked() {
    for level in ["info", "DEBUG", "warn,hyper=debug", "off"] {
        let c = load_text(&format!("[server]\nlog_level = \"{level}\"\n")).expect(level);
        assert_eq!(c.log_level, level);
    }
    for level in ["verbose", "warning", "debg", "info,=debug"] {
        let e = load_text(&format!("[server]\nlog_level = \"{level}\"\n"))
            .expect_err(level)
            .to_string();
        assert!(e.contains("server.log_level"), "{e}");
        assert!(e.contains("error, warn, info, debug, trace"), "{e}");
    }
    let e = load_text("[cgi]\nfallback_user = \"no-such-user-here\"\n")
        .expect_err("no such user")
        .to_string();
    assert!(
        e.contains("cgi.fallback_user") && e.contains("no-such-user-here"),
        "{e}"
    );
}

#[test]
fn customer_log_rotation_has_defaults_and_bounds() {
    let c = load_text("").expect("valid");
    assert_eq!(c.customer_logs.max_bytes, 10_485_760);
    assert_eq!(c.customer_logs.generations, 5);
    let c = load_text("[hosting]\nlog_max_bytes = 1000\nlog_generations = 2\n").expect("valid");
    assert_eq!(
        (c.customer_logs.max_bytes, c.customer_logs.generations),
        (1000, 2)
    );
    for (text, key) in [
        ("log_generations = 0", "hosting.log_generations"),
        ("log_generations = 1000", "hosting.log_generations"),
        ("log_max_bytes = 0", "hosting.log_max_bytes"),
    ] {
        let e = load_text(&format!("[hosting]\n{text}\n"))
            .expect_err(text)
            .to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn a_missing_handler_is_a_warning() {
    let c = load_text("[cgi.handlers]\n\".xyz\" = \"/no/such/interpreter\"\n").expect("valid");
    let w = c.warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("/no/such/interpreter"), "{w:?}");
}

#[test]
fn bad_value_names_key() {
    let e = load_text("[server]\nhttp = \"nope\"\n")
        .expect_err("invalid")
        .to_string();
    assert!(e.contains("key `server.http`"), "{e}");
    let e = load_text("[limits]\nmax_connections = 0\n")
        .expect_err("invalid")
        .to_string();
    assert!(
        e.contains("key `limits.max_connections`: must be greater than 0"),
        "{e}"
    );
}

#[test]
fn static_files_are_compressed_by_default_and_scripts_are_not() {
    let c = load_text("").expect("valid");
    assert!(c.compression.static_files);
    assert!(!c.compression.cgi);
    let c = load_text("[server]\ncompress = false\ncompress_cgi = true\n").expect("valid");
    assert!(!c.compression.static_files);
    assert!(c.compression.cgi);
    let e = load_text("[server]\ncompress = \"yes\"\n")
        .expect_err("invalid")
        .to_string();
    assert!(e.contains("compress"), "{e}");
}

#[test]
fn https_and_tls_keys_are_checked() {
    let c = load_text("").expect("valid");
    assert_eq!((c.https, c.tls.default.is_none()), (None, true));
    let c = load_text(
        "[server]\nhttps = \"127.0.0.1:0\"\n[tls]\ncertificate = \"a.pem\"\nkey = \"a.key\"\ndirectory = \"live\"\nhsts_max_age = 60\n",
    )
    .expect("valid");
    assert_eq!(c.https.map(|a| a.port()), Some(0));
    let default = c.tls.default.expect("default pair");
    assert!(default.certificate.is_absolute() && default.key.ends_with("a.key"));
    assert!(c.tls.directory.expect("directory").ends_with("live"));
    assert_eq!(c.tls.hsts_max_age, Some(60));
    let e = load_text("[tls]\ncertificate = \"a.pem\"\n").expect_err("half a pair");
    assert_eq!(e.key.as_deref(), Some("tls.key"));
    let e = load_text("[server]\nhttps = \"nowhere\"\n").expect_err("bad address");
    assert_eq!(e.key.as_deref(), Some("server.https"));
    let e = load_text("[[users]]\nname = \"a\"\nsite = \"htdocs\"\ntls_key = \"k\"\n")
        .expect_err("half a pair");
    assert_eq!(e.key.as_deref(), Some("users.tls_certificate"));
}
