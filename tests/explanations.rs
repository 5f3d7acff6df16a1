//! Explanations fit who reads them (a customer with SFTP, not a shell), and one verdict holds
//! everywhere: `yadokari explain` (by file or URL path), the request, and the transfer log run
//! the same checks, the account a script runs as included.

use std::process::Command;

use crate::support::{Site, TEST_GROUP, bin, test_user};

fn explain(site: &Site, what: &str) -> String {
    site.write_config();
    let out = Command::new(bin())
        .args(["explain", "--config"])
        .arg(site.config_path())
        .arg(what)
        .output()
        .expect("explain");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn explain_takes_a_url_path_and_fixes_speak_of_sftp() {
    let site = Site::new();
    site.file("cgi-bin/not-yet.cgi", "#!/bin/sh\necho\n", 0o644);
    let said = explain(&site, "/cgi-bin/not-yet.cgi");
    assert!(said.contains("refused (500)"), "{said}");
    assert!(said.contains("chmod 755 cgi-bin/not-yet.cgi"), "{said}");
    assert!(said.contains("over SFTP"), "{said}");
    let said = explain(&site, "/no/such/page.html");
    assert!(said.contains("not found"), "{said}");
}

#[test]
fn the_index_refusal_names_the_configured_index_files() {
    let site = Site::new().config("[server]\nindex_files = [\"home.html\", \"start.cgi\"]");
    site.dir("empty", 0o755);
    let server = site.start();
    let r = server.get("/empty/");
    assert_eq!(r.status, 403);
    let text = r.text();
    assert!(text.contains("no home.html or start.cgi"), "{text}");
    assert!(!text.contains("index.htm"), "{text}");
    assert!(
        text.contains("Upload an home.html") || text.contains("home.html into"),
        "{text}"
    );
}

#[test]
fn a_script_whose_owner_has_no_account_is_refused_by_explain_too() {
    if test_user().is_none() {
        eprintln!("skipping: needs root to give a site to an unknown uid");
        return;
    }
    // The site and the script belong to uid 4242, which has no account: the gate is content
    // (owner matches, 0755), but there is nobody to run it as.
    let site = Site::owned_by(Some((4242, 4242)));
    site.dir("cgi-bin", 0o755);
    site.file("cgi-bin/orphan.cgi", "#!/bin/sh\necho\n", 0o755);
    let server = site.start();
    let r = server.get("/cgi-bin/orphan.cgi");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("no account"), "{}", r.text());
    let said = explain(&site, "/cgi-bin/orphan.cgi");
    assert!(said.contains("no account"), "{said}");
    assert!(said.contains("will fail (500)"), "{said}");
}

#[test]
fn a_directory_the_scripts_user_cannot_enter_is_named_with_its_fix() {
    let Some(owner) = test_user() else {
        eprintln!("skipping: needs root to run scripts as another user");
        return;
    };
    let site = Site::owned_by(Some(owner));
    site.dir("cgi-bin", 0o755);
    // Others may enter it (the gate is content), but the script's user is in the directory's
    // group, which may not.
    let dir = site.dir("cgi-bin/locked", 0o705);
    let group = nix::unistd::Group::from_name(TEST_GROUP)
        .expect("group")
        .expect("the test group");
    std::os::unix::fs::chown(&dir, Some(0), Some(group.gid.as_raw())).expect("chown");
    site.file(
        "cgi-bin/locked/s.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran'\n",
        0o755,
    );
    let server = site.start();
    let r = server.get("/cgi-bin/locked/s.cgi");
    let text = r.text();
    assert_eq!(r.status, 500, "{text}");
    assert!(
        text.contains("may not enter the directory `cgi-bin/locked`"),
        "{text}"
    );
    assert!(text.contains("chmod 715 cgi-bin/locked"), "{text}");
    let said = explain(&site, "/cgi-bin/locked/s.cgi");
    assert!(
        said.contains("may not enter the directory `cgi-bin/locked`"),
        "{said}"
    );
}
