//! Certificates for the TLS tests, made by the `openssl` command in a directory of their own
//! (removed when dropped): a CA, a server certificate it signed for `localhost` and
//! 127.0.0.1, two client certificates it signed (`client` for scraper.test, `stranger` for
//! stranger.test), and a second CA with its own server
//! certificate (for a reload, or a key that matches no certificate). EC P-256: quick to make.

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Certs {
    pub dir: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Certs {
    /// None (after `need`'s skip) without openssl.
    pub fn make(test: &str) -> Option<Certs> {
        if !super::need(test, "openssl", "version", "openssl") {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "blt-certs-{}-{}",
            std::process::id(),
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = Certs { dir };
        c.ca("ca");
        c.leaf(
            "ca",
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        c.leaf(
            "ca",
            "client",
            "subjectAltName=DNS:scraper.test\nextendedKeyUsage=clientAuth",
        );
        c.leaf(
            "ca",
            "stranger",
            "subjectAltName=DNS:stranger.test\nextendedKeyUsage=clientAuth",
        );
        c.ca("ca2");
        c.leaf(
            "ca2",
            "server2",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        Some(c)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca(&self, name: &str) {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        let subj = format!("/CN=backlogctl test {name}");
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
    }

    fn leaf(&self, ca: &str, name: &str, ext: &str) {
        let ext_file = format!("{name}.ext");
        std::fs::write(self.dir.join(&ext_file), format!("{ext}\n")).unwrap();
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subj = format!("/CN={name}");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ]);
    }

    /// Writes `name` in the directory, for a web config file.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A bcrypt hash of `password` as `htpasswd -B` writes it ($2y$), cost 4 to keep tests quick.
pub fn bcrypt_hash(password: &str) -> String {
    let h = bcrypt::hash(password, 4).expect("bcrypt");
    h.replacen("$2b$", "$2y$", 1)
}

/// Runs curl with `args`; (exit status, response headers, body). None without curl (after
/// `need`'s skip).
pub fn curl(test: &str, args: &[&str]) -> Option<(i32, String, Vec<u8>)> {
    if !super::need(test, "curl", "--version", "curl") {
        return None;
    }
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "/dev/stderr"])
        .args(args)
        .output()
        .expect("run curl");
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.stdout,
    ))
}
