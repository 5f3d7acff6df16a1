//! Quotas count the real site: what a CGI script writes there counts once the site has been
//! recounted (`sftp.quota_rescan_secs`), and SFTP uploads are then refused with the limit and
//! the usage; below the limit they go on working.

use std::time::{Duration, Instant};

use crate::support::sftp::{SftpSite, local, text};
use crate::support::{PATIENCE, have};

/// The site may hold this much.
const LIMIT: u64 = 1_000_000;

/// What the script writes: alone it fits, with one more upload it does not.
const SCRIPT_WRITES: u64 = 900_000;

/// A script that fills its site from the web side, where SFTP does not see it.
const FILL: &str = "#!/bin/sh\nhead -c 900000 /dev/zero > ../filled.bin\n\
                    printf 'Content-Type: text/plain\\r\\n\\r\\nfilled\\n'\n";

#[test]
fn files_written_by_scripts_count_after_the_rescan_and_uploads_past_the_quota_are_refused() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new(&format!(
        "quota_bytes = {LIMIT}\n[sftp]\nquota_rescan_secs = 1\n"
    ));
    s.site.file("cgi-bin/fill.cgi", FILL, 0o755);
    let r = s.start();
    let upload = local(s.site.dir.path(), "upload.bin", &[b'u'; 200_000]);
    let put = |name: &str| r.batch(&s.key, format!("put {} {name}\n", upload.display()));

    // Under the quota: the upload works (and the site is counted from now on).
    let o = put("under.bin");
    assert!(
        o.status.success(),
        "an upload under the quota: {}",
        text(&o)
    );
    assert_eq!(file_len(&s, "under.bin"), Some(200_000));
    let o = r.batch(&s.key, "rm under.bin\n");
    assert!(o.status.success(), "{}", text(&o));

    let resp = r.server.get("/cgi-bin/fill.cgi");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(file_len(&s, "filled.bin"), Some(SCRIPT_WRITES));

    // Until the recount has seen the script's file an upload may still pass; each one that
    // does is removed again. Bounded by PATIENCE; only the outcome is asserted.
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let o = put("over.bin");
        if !o.status.success() {
            break o;
        }
        let rm = r.batch(&s.key, "rm over.bin\n");
        assert!(rm.status.success(), "{}", text(&rm));
        assert!(
            Instant::now() < deadline,
            "uploads past the quota were still accepted after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let client = String::from_utf8_lossy(&refused.stderr);
    assert!(
        client.contains("over.bin") && client.contains("Failure"),
        "the client reports the refused upload: {}",
        text(&refused)
    );
    assert_eq!(file_len(&s, "over.bin"), None, "nothing was put in place");
    let used = refused_usage(&r.server.output());
    assert!(
        used >= SCRIPT_WRITES,
        "the refusal counts the script's file (holds {used})"
    );
}

/// The size of `name` in the site, `None` when it is not there.
fn file_len(s: &SftpSite, name: &str) -> Option<u64> {
    std::fs::metadata(s.site.path(name)).ok().map(|m| m.len())
}

/// From the server's log, the usage its quota refusal named ("may hold LIMIT bytes and holds
/// N"); fails when there is no such refusal.
fn refused_usage(log: &str) -> u64 {
    let said = format!("disk quota exceeded: your site may hold {LIMIT} bytes and holds ");
    let line = log
        .lines()
        .find(|l| l.contains("sftp request refused") && l.contains(&said))
        .unwrap_or_else(|| panic!("no refusal naming the limit and the usage:\n{log}"));
    let after = &line[line.find(&said).map_or(0, |i| i + said.len())..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("the usage is a number")
}
