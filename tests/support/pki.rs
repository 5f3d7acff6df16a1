//! A test certificate authority made with the `openssl` CLI (ECDSA P-256), for the HTTPS
//! tests and the ACME server the ACME test starts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn write(path: &Path, content: impl AsRef<[u8]>, mode: u32) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A test CA and the certificates it signs.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: PathBuf) -> Pki {
        std::fs::create_dir_all(&dir).expect("mkdir");
        let pki = Pki { dir };
        pki.key("ca.key");
        run(Command::new("openssl")
            .current_dir(&pki.dir)
            .args(["req", "-x509", "-new", "-key", "ca.key", "-days", "2"])
            .args(["-subj", "/CN=yadokari test CA", "-out", "ca.pem"]));
        pki
    }

    fn key(&self, name: &str) {
        run(Command::new("openssl")
            .current_dir(&self.dir)
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-out", name]));
    }

    pub fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// A certificate for the DNS name `name` with subject `subject`, written as `cert` and
    /// `key`.
    pub fn issue(&self, name: &str, subject: &str, cert: &Path, key: &Path) {
        self.issue_for(
            &name.replace('*', "_"),
            subject,
            &format!("DNS:{name}"),
            cert,
            key,
        );
    }

    /// A certificate with subject `subject` for the subjectAltName list `san` (`IP:127.0.0.1,
    /// DNS:localhost`), its working files named after `stem`, written as `cert` and `key`.
    pub fn issue_for(&self, stem: &str, subject: &str, san: &str, cert: &Path, key: &Path) {
        let (k, csr, ext, pem) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.ext"),
            format!("{stem}.pem"),
        );
        self.key(&k);
        write(
            &self.dir.join(&ext),
            format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
            0o600,
        );
        run(Command::new("openssl")
            .current_dir(&self.dir)
            .args(["req", "-new", "-key", &k, "-subj", subject, "-out", &csr]));
        run(Command::new("openssl")
            .current_dir(&self.dir)
            .args([
                "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            ])
            .args([
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ]));
        // Renamed into place, as an ACME client or certbot replaces them.
        for (from, to) in [(&pem, cert), (&k, key)] {
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            let tmp = to.with_extension("new");
            std::fs::copy(self.dir.join(from), &tmp).expect("copy");
            std::fs::rename(&tmp, to).expect("rename");
        }
    }
}
