//! `cargo xtask demo`: Apache in the foreground with the module, the echo and
//! dumb-increment plugins, and their browser pages. SIGINT, SIGTERM or
//! SIGHUP to the demo (a terminal's Ctrl-C, or `kill` of this process
//! alone) stops Apache before the demo exits. `--h2` serves it all over
//! TLS with HTTP/2 and `H2WebSockets on`, with a certificate made for it.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::stage::{build, parse_mpm, stage_dir, Stage, DEMO_PAGES, PAGES};
use crate::util::{check_args, flag, is_root, option, run, target_dir};

/// Where the demo keeps its server root and pages when run as root: Apache's
/// workers then run as www-data, which often cannot read the checkout
/// (under /root, mode 700 on Debian). /run is root's, so no one else can
/// have put anything there.
const ROOT_DEMO_DIR: &str = "/run/mod_websocket-demo";

pub fn cmd_demo(args: &[String]) -> Result<(), String> {
    check_args(args, &["--release", "--no-build", "--h2"], &["--port", "--mpm"])?;
    let h2 = flag(args, "--h2");
    let port: u16 = match option(args, "--port")? {
        Some(p) => p
            .parse()
            .map_err(|_| format!("--port must be a port number, not '{p}'"))?,
        None => 8080,
    };
    let mpm = parse_mpm(option(args, "--mpm")?)?;
    let extra: &[&str] = if h2 { H2_PACKAGES } else { &[] };
    let stage = if flag(args, "--no-build") {
        crate::deps::ensure(&[crate::deps::RUN, extra])?;
        built_stage()?
    } else {
        crate::deps::ensure(&[crate::deps::BUILD, crate::deps::RUN, extra])?;
        build(flag(args, "--release"))?
    };
    // Before anything is printed: Apache would only say so after the URLs.
    if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
        return Err(format!(
            "127.0.0.1:{port} is not available ({e}); stop what listens there or choose \
             another port with --port N"
        ));
    }
    let (root, docroot) = demo_dirs(&stage)?;
    let tls = if h2 { Some(demo_certificate(&root)?) } else { None };
    let config = demo_config(&stage, &root, &docroot, mpm, port, tls.as_ref());
    if let Err(out) = config.clone().configtest() {
        return Err(format!("Apache refuses the demo's configuration:\n{out}"));
    }
    let (http, ws, curl) = if h2 {
        ("https", "wss", "curl -k")
    } else {
        ("http", "ws", "curl")
    };
    let over = if h2 { ", HTTP/2 with TLS" } else { "" };
    println!("mod_websocket demo ({mpm} MPM{over}), Ctrl-C to stop:");
    println!("  {http}://127.0.0.1:{port}/                 index of the examples");
    println!("  {http}://127.0.0.1:{port}/client.html      echo client  -> {ws}://127.0.0.1:{port}/echo");
    println!(
        "  {http}://127.0.0.1:{port}/increment.html   counter      -> {ws}://127.0.0.1:{port}/dumb-increment"
    );
    println!(
        "  {http}://127.0.0.1:{port}/chat.html        chat rooms   -> {ws}://127.0.0.1:{port}/chat/<room>"
    );
    println!("  {curl} -d hello {http}://127.0.0.1:{port}/publish/lobby   publishes to the room 'lobby'");
    if let Some(tls) = &tls {
        println!(
            "  The certificate ({}) is self-signed: accept it in the browser once. WebSockets opened\n  \
             from these pages go over the page's HTTP/2 connection (the access log shows HTTP/2.0).",
            tls.cert.display()
        );
    }
    let run = config.foreground().map_err(|e| e.to_string())?;
    if let Some(signal) = run.signal {
        eprintln!(
            "xtask: {} received; Apache stopped ({})",
            signal_name(signal),
            run.status
        );
        return Ok(());
    }
    if run.status.success() {
        Ok(())
    } else {
        Err(format!("apache exited with {}", run.status))
    }
}

/// The stage as it is, for `--no-build`: `WEBSOCKET_STAGE_DIR` (as the
/// integration tests take it) or `target/apache/`.
fn built_stage() -> Result<Stage, String> {
    let dir = std::env::var_os("WEBSOCKET_STAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(stage_dir);
    let stage = Stage { dir };
    if !stage.module("mod_websocket.so").is_file() {
        return Err(format!(
            "--no-build: no staged module in {} (run `cargo xtask build` first)",
            stage.dir.display()
        ));
    }
    Ok(stage)
}

fn signal_name(signal: i32) -> String {
    match signal {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// What `--h2` needs beyond Apache: the command that makes the certificate.
const H2_PACKAGES: &[&str] = &["openssl"];

/// The demo's TLS certificate and key.
struct DemoTls {
    cert: PathBuf,
    key: PathBuf,
}

/// A self-signed certificate for 127.0.0.1 and localhost under `root`,
/// made once (kept while it exists).
fn demo_certificate(root: &Path) -> Result<DemoTls, String> {
    let dir = root.join("tls");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tls = DemoTls {
        cert: dir.join("demo-cert.pem"),
        key: dir.join("demo-key.pem"),
    };
    if tls.cert.is_file() && tls.key.is_file() {
        return Ok(tls);
    }
    run(std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=mod_websocket demo"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"])
        .arg("-keyout")
        .arg(&tls.key)
        .arg("-out")
        .arg(&tls.cert))?;
    Ok(tls)
}

/// `--h2`: TLS, HTTP/2 and its WebSockets. A long keep-alive, since
/// browsers open WebSockets over HTTP/2 only on a connection they already
/// have (the page's), and the echo page connects when asked.
fn h2_config(root: &Path, tls: &DemoTls) -> String {
    format!(
        "Protocols h2 http/1.1\nH2WebSockets on\nKeepAliveTimeout 60\n\
         SSLEngine on\nSSLCertificateFile \"{}\"\nSSLCertificateKeyFile \"{}\"\n\
         SSLSessionCache \"shmcb:{}(512000)\"\n",
        tls.cert.display(),
        tls.key.display(),
        root.join("run/ssl_scache").display()
    )
}

/// The demo's server: the stage's module and examples, the pages in
/// `docroot`; over TLS and HTTP/2 with `tls`.
fn demo_config(
    stage: &Stage,
    root: &Path,
    docroot: &Path,
    mpm: httpd_runner::Mpm,
    port: u16,
    tls: Option<&DemoTls>,
) -> httpd_runner::ServerConfig {
    let mut config = stage
        .server(root, mpm)
        .document_root(docroot)
        .port(port)
        .log_level("warn websocket:info");
    // mod_status's page with its WebSockets section, and the Prometheus
    // endpoint, for this machine only.
    let h2_modules: &[&str] = if tls.is_some() {
        &["http2", "ssl", "socache_shmcb"]
    } else {
        &[]
    };
    if let Ok(install) = httpd_runner::Install::discover() {
        for name in ["status", "authz_host"].iter().chain(h2_modules) {
            let path = install.module_path(name);
            if path.is_file() {
                config = config.load_module(&format!("{name}_module"), path);
            }
        }
    }
    if let Some(tls) = tls {
        config = config.extra_config(&h2_config(root, tls));
    }
    config.extra_config(MONITORING)
}

/// The demo's `/server-status`, `/metrics` and `/publish`, local only.
const MONITORING: &str = "\
<IfModule status_module>
<Location /server-status>
    SetHandler server-status
    <IfModule authz_host_module>
        Require ip 127.0.0.1 ::1
    </IfModule>
</Location>
</IfModule>
<Location /metrics>
    SetHandler websocket-metrics
    <IfModule authz_host_module>
        Require ip 127.0.0.1 ::1
    </IfModule>
</Location>
<Location /publish>
    SetHandler websocket-publish
    MaxMessageSize 64K
    <IfModule authz_host_module>
        Require ip 127.0.0.1 ::1
    </IfModule>
</Location>
";

/// The server root and document root. As root, a copy of the pages and
/// the server root go where the workers can read them.
fn demo_dirs(stage: &Stage) -> Result<(PathBuf, PathBuf), String> {
    if !is_root() || !Path::new("/run").is_dir() {
        return Ok((target_dir().join("demo"), stage.htdocs()));
    }
    let base = Path::new(ROOT_DEMO_DIR);
    if base.exists() {
        fs::remove_dir_all(base).map_err(|e| format!("cannot clear {}: {e}", base.display()))?;
    }
    let docroot = base.join("htdocs");
    readable_dir(base)?;
    readable_dir(&docroot)?;
    for page in PAGES.iter().chain(DEMO_PAGES) {
        let to = docroot.join(page);
        fs::copy(stage.htdocs().join(page), &to).map_err(|e| format!("cannot copy {page}: {e}"))?;
        set_mode(&to, 0o644)?;
    }
    eprintln!(
        "xtask: running as root, so Apache's workers run as an unprivileged user: the pages \
         and the server root are in {ROOT_DEMO_DIR}, where it can read them"
    );
    Ok((base.join("server"), docroot))
}

fn readable_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    set_mode(dir, 0o755)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated configuration says everything once (the runner writes
    /// DirectoryIndex itself) and serves the examples from the stage.
    #[test]
    fn demo_configuration() {
        if httpd_runner::Install::discover().is_err() {
            eprintln!("no Apache here; skipped");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let stage = Stage {
            dir: tmp.path().join("stage"),
        };
        let docroot = tmp.path().join("htdocs");
        let mut config = demo_config(
            &stage,
            &tmp.path().join("root"),
            &docroot,
            httpd_runner::Mpm::Event,
            8123,
            None,
        );
        let text = fs::read_to_string(config.write_config().unwrap()).unwrap();
        assert_eq!(text.matches("DirectoryIndex").count(), 1, "{text}");
        assert!(
            text.contains(&format!("DocumentRoot \"{}\"", docroot.display())),
            "{text}"
        );
        assert!(
            text.contains("<Location /echo>")
                && text.contains("<Location /dumb-increment>")
                && text.contains("<Location /chat>"),
            "{text}"
        );
        assert!(text.contains("Listen 127.0.0.1:8123"), "{text}");
        assert!(
            text.contains("<Location /metrics>\n    SetHandler websocket-metrics"),
            "{text}"
        );
        assert!(
            text.contains("<Location /publish>\n    SetHandler websocket-publish"),
            "{text}"
        );
        assert!(!text.contains("H2WebSockets"), "{text}");
    }

    /// `--h2`: the certificate is made, and the configuration serves TLS,
    /// HTTP/2 and its WebSockets, and passes Apache's own check.
    #[test]
    fn h2_demo_configuration() {
        if httpd_runner::Install::discover().is_err()
            || std::process::Command::new("openssl")
                .arg("version")
                .output()
                .is_err()
        {
            eprintln!("no Apache or openssl here; skipped");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let tls = demo_certificate(&root).unwrap();
        assert!(fs::read_to_string(&tls.cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        let stage = Stage {
            dir: tmp.path().join("stage"),
        };
        let mut config = demo_config(
            &stage,
            &root,
            &tmp.path().join("htdocs"),
            httpd_runner::Mpm::Event,
            8124,
            Some(&tls),
        );
        let text = fs::read_to_string(config.write_config().unwrap()).unwrap();
        for line in [
            "Protocols h2 http/1.1",
            "H2WebSockets on",
            "SSLEngine on",
            "http2_module",
            "ssl_module",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        // Made once: a second call keeps it.
        let before = fs::read(&tls.cert).unwrap();
        demo_certificate(&root).unwrap();
        assert_eq!(fs::read(&tls.cert).unwrap(), before);
    }
}
