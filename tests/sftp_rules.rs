//! The SFTP side's rules where hostile or unlucky clients meet them: names that try to forge
//! log lines, exclusive creates racing from two sessions, quotas counting directories, and
//! refusals logged with their reason.

use crate::support::sftp::{SftpSite, paramiko, text};

/// A name whose second half looks like a log line of its own.
const FORGED: &str = "FORGED 2026-01-01T00:00:00Z  INFO sftp login (key) user=root";

#[test]
fn names_with_line_breaks_cannot_forge_log_lines() {
    let Some(py) = paramiko() else {
        return;
    };
    let s = SftpSite::new("");
    let r = s.start();
    let o = r.paramiko(
        py,
        &s.key,
        r#"
sftp = paramiko.SFTPClient.from_transport(t)
forged = sys.argv[4]
with sftp.open("up\n" + forged, "w") as f:
    f.write(b"x")
sftp.chmod("up\n" + forged, 0o755)
sftp.open("up\n" + forged).read()
sftp.mkdir("dir\r\n" + forged)
sftp.rename("up\n" + forged, "moved\n" + forged)
sftp.remove("moved\n" + forged)
sftp.rmdir("dir\r\n" + forged)
try:
    sftp.symlink("/etc/passwd", "link\n" + forged)
except IOError:
    pass
print("done")
"#,
        &[FORGED],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = r.server.output();
    for op in [
        "upload", "chmod", "download", "mkdir", "rename", "remove", "rmdir",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("op=\"{op}\"")) || l.contains(&format!("op={op}"))),
            "no {op} line:\n{out}"
        );
    }
    for line in out.lines() {
        assert!(
            !line.starts_with("FORGED"),
            "forged line {line:?} in:\n{out}"
        );
    }
    assert!(out.contains("\\nFORGED"), "escaped name missing:\n{out}");
}
