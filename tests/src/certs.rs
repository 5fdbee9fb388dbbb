//! A throwaway test CA and certificates it signs, made with the `openssl`
//! command (apache2-dev depends on it) once per test process: a server
//! certificate for IP 127.0.0.1 (Apache's mod_ssl, redis-server's TLS port)
//! and a client certificate with a non-ASCII subject.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate by the same CA, with a non-ASCII subject.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// The client certificate's subject, as mod_ssl's SSL_CLIENT_S_DN gives it.
pub const CLIENT_DN: &str = "CN=Zoë Client,O=Example WebSockets";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (Debian: apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate `<name>.key`/`<name>.pem` for `subject` (UTF-8),
/// signed by the test CA in `dir` with the extensions `ext`.
fn issue(dir: &Path, name: &str, subject: &str, ext: &str, serial: &str) {
    let (key, csr, ext_file, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-utf8",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ],
    );
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            &pem,
        ],
    );
}

/// A throwaway CA with a server and a client certificate signed by it, once
/// per process.
/// The key stays private to the user running the tests: Apache reads it in
/// its parent process, before dropping privileges.
pub fn test_certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = httpd_runner::scratch_dir("tls-certs");
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca_args = vec!["req", "-x509"];
        ca_args.extend(ec);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mod_websocket test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &ca_args);
        issue(
            &dir,
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
            "2",
        );
        issue(
            &dir,
            "client",
            "/O=Example WebSockets/CN=Zoë Client",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
            "3",
        );
        Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            dir,
        }
    })
}
