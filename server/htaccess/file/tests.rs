use super::*;

fn settings() -> Settings {
    Settings {
        allowed: Group::ALL.iter().map(|(_, g)| *g).collect(),
        php: true,
    }
}

fn compile_ok(text: &str) -> Htaccess {
    compile(text, &settings()).unwrap_or_else(|f| panic!("{text}: {f:?}"))
}

#[test]
fn real_files_compile() {
    // A Perl BBS's data folder, in both Apache generations.
    let h = compile_ok(
        "<IfModule mod_authz_core.c>\n  Require all denied\n</IfModule>\n\
         <IfModule !mod_authz_core.c>\n  Order deny,allow\n  Deny from all\n</IfModule>\n",
    );
    assert_eq!(h.rules.require, Some(Require::All(false)));
    assert!(h.rules.compat.is_none());
    // Basic auth with a few files left open.
    let h = compile_ok(
        "AuthType Basic\nAuthName \"Members only\"\nAuthUserFile /home/alice/.htpasswd\n\
         Require valid-user\n<Files \"public.txt\">\n  Require all granted\n</Files>\n\
         <FilesMatch \"\\.(bak|sql)$\">\n  Require all denied\n</FilesMatch>\n\
         php_value upload_max_filesize 10M\n",
    );
    assert_eq!(h.rules.auth_basic, Some(true));
    assert_eq!(h.rules.auth_name.as_deref(), Some("Members only"));
    assert_eq!(h.files.len(), 2);
    assert!(h.files[0].0.matches("public.txt"));
    assert!(h.files[1].0.matches("dump.sql") && !h.files[1].0.matches("sql.txt"));
    assert_eq!(h.warnings.len(), 1);
    assert!(h.warnings[0].contains(".user.ini"), "{:?}", h.warnings);
    // An old <Limit> block.
    let h = compile_ok("<Limit GET POST>\norder deny,allow\ndeny from all\n</Limit>\n");
    assert_eq!(h.limits.len(), 1);
    // Skipped modules are skipped whatever they hold.
    compile_ok("<IfModule mod_deflate.c>\nAddOutputFilterByType DEFLATE text/html\n</IfModule>\n");
    compile_ok("<RequireAll>\nRequire all granted\nRequire not ip 192.0.2.1\n</RequireAll>\n");
}

#[test]
fn what_cannot_be_used_names_the_line() {
    for (text, line, says) in [
        (
            "Require valid-user\nAddOutputFilterByType DEFLATE text/html\n",
            2,
            "not a directive this server implements",
        ),
        ("\n\nRequire host example.org\n", 3, "DNS"),
        (
            "<Directory /x>\n</Directory>\n",
            1,
            "not one a .htaccess may use",
        ),
        (
            "<FilesMatch \"(a)\\1\">\n</FilesMatch>\n",
            1,
            "regular expression",
        ),
        ("AuthType Digest\n", 1, "only Basic"),
        ("Require not ip 10.0.0.1\n", 1, "let everyone else in"),
        (
            "<Limit GET>\nHeader set X y\n</Limit>\n",
            2,
            "only access directives",
        ),
        ("<Files x>\n", 1, "never closed"),
    ] {
        let f = compile(text, &settings()).expect_err(text);
        assert_eq!(f.line, line, "{text}: {f:?}");
        assert!(f.problem.problem.contains(says), "{text}: {f:?}");
    }
}

#[test]
fn allow_override_limits_the_groups() {
    let only_auth = Settings {
        allowed: vec![Group::AuthConfig],
        php: false,
    };
    assert!(compile("Require all denied\n", &only_auth).is_ok());
    let f = compile("Options +Indexes\n", &only_auth).expect_err("Options not allowed");
    assert!(f.problem.problem.contains("Options group"), "{f:?}");
    let f = compile("AddHandler php-script .php\n", &only_auth).expect_err("FileInfo not allowed");
    assert!(f.problem.problem.contains("FileInfo"), "{f:?}");
}

#[test]
fn globs() {
    for (p, n, m) in [
        ("*.txt", "a.txt", true),
        ("*.txt", "a.txt.bak", false),
        ("secret?.db", "secret1.db", true),
        ("[a-c]*", "beta", true),
        ("[!a-c]*", "beta", false),
        ("wp-config.php", "wp-config.php", true),
    ] {
        assert_eq!(glob(p.as_bytes(), n.as_bytes()), m, "{p} {n}");
    }
}
