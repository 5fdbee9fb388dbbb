//! `cargo xtask package deb`: `libapache2-mod-websocket` and
//! `libapache2-mod-websocket-examples`, made with cargo-deb from the
//! `target/apache/` stage into `target/debian/`.
//!
//! cargo-deb makes one package per Cargo package and wants to build it
//! itself; ours are made from the stage instead. So for each .deb the xtask
//! writes a small carrier manifest (`target/debian-build/<package>/Cargo.toml`,
//! an empty library plus `[package.metadata.deb]` with absolute asset paths)
//! and runs `cargo deb --no-build` on it. The metadata is generated, not kept
//! in a crate's Cargo.toml, because part of it is only known at package
//! time: the `apache2-api-<MMN>` dependency (from `apxs2 -q HTTPD_MMN`) and
//! the shared-library dependencies (from `dpkg-shlibdeps` on the modules).
//!
//! Hand-written parts live in `debian/`: the maintainer scripts (as
//! dh_apache2 would generate them), `copyright`, `changelog.in` and the
//! README.Debian files.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::conf::Platform;
use super::wsclient::{self, Client};
use super::{copy_file, have, output_bounded, run_ok};
use crate::stage::{build, Stage};
use crate::util::{cargo, check_args, flag, is_root, root, run, target_dir};

pub const MAIN: &str = "libapache2-mod-websocket";
pub const EXAMPLES: &str = super::conf::DEBIAN_EXAMPLES_PACKAGE;
const MAINTAINER: &str = "apache-websocket-rs developers <apache-websocket-rs@users.noreply.github.com>";
const HOMEPAGE: &str = "https://github.com/apache-websocket/apache-websocket-rs";
/// The Debian revision appended to the crate version.
const REVISION: &str = "1";

/// The oldest Apache the modules run on, as a dependency; the same release
/// as `httpd::version::MINIMUM` (a test below reads it from there).
const APACHE_FLOOR: &str = "apache2-bin (>= 2.4.58)";

/// The cargo-deb major version whose metadata format this module writes.
const CARGO_DEB_VERSION: &str = "^3";

/// One file in a package: where it comes from, where it goes, its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub src: PathBuf,
    /// Relative to `/`, as cargo-deb wants it.
    pub dest: String,
    pub mode: &'static str,
}

/// Everything a package's control data and contents come from.
#[derive(Debug, Clone)]
pub struct DebSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub depends: Vec<String>,
    pub recommends: Vec<String>,
    pub assets: Vec<Asset>,
    /// The directory with postinst/prerm/postrm.
    pub scripts: PathBuf,
}

/// The Debian version of the packages, e.g. `0.1.0-1`.
pub fn deb_version() -> String {
    format!("{}-{REVISION}", env!("CARGO_PKG_VERSION"))
}

/// The two packages, with their files taken from `files` (a prepared copy of
/// the stage, see [`prepare_files`]).
pub fn specs(files: &Path, mmn: &str, shlibs: &[String]) -> Vec<DebSpec> {
    let debian = root().join("debian");
    let asset = |src: &str, dest: &str| Asset {
        src: files.join(src),
        dest: dest.to_owned(),
        mode: "644",
    };
    let modules = Platform::Debian.modules_dir();
    let plugins = Platform::Debian.plugins_dir();
    let htdocs = Platform::Debian.examples_htdocs();
    let doc = |pkg: &str, name: &str| format!("usr/share/doc/{pkg}/{name}");
    let rel = |abs: &str| abs.trim_start_matches('/').to_owned();

    // The API number says which headers the modules were built against; the
    // floor says which releases have every function they call
    // (httpd::version::MINIMUM, ap_get_pollfd_from_conn).
    let mut main_depends = vec![format!("apache2-api-{mmn}"), APACHE_FLOOR.to_owned()];
    main_depends.extend(shlibs.iter().cloned());
    let mut examples_depends = vec![format!("{MAIN} (= {})", deb_version())];
    examples_depends.extend(shlibs.iter().cloned());

    vec![
        DebSpec {
            name: MAIN,
            summary: "WebSocket (RFC 6455) module for Apache httpd, served by plugins",
            description: "mod_websocket serves WebSocket connections (RFC 6455, protocol \
                versions 13, 8 and 7) inside Apache httpd 2.4 and hands the messages to \
                plugins: shared libraries with a small C ABI, compatible with plugins \
                written for the original apache-websocket module.\n\
                This package also has mod_websocket_draft76 for legacy draft-76 and \
                draft-75 clients (not enabled by default) and the C plugin header.",
            depends: main_depends,
            recommends: Vec::new(),
            assets: vec![
                asset(
                    "modules/mod_websocket.so",
                    &rel(&format!("{modules}/mod_websocket.so")),
                ),
                asset(
                    "modules/mod_websocket_draft76.so",
                    &rel(&format!("{modules}/mod_websocket_draft76.so")),
                ),
                asset("conf/websocket.load", "etc/apache2/mods-available/websocket.load"),
                asset("conf/websocket.conf", "etc/apache2/mods-available/websocket.conf"),
                asset(
                    "conf/websocket_draft76.load",
                    "etc/apache2/mods-available/websocket_draft76.load",
                ),
                asset(
                    "include/websocket_plugin.h",
                    "usr/include/mod_websocket/websocket_plugin.h",
                ),
                asset("doc/README.md.gz", &doc(MAIN, "README.md.gz")),
                Asset {
                    src: debian.join(MAIN).join("README.Debian"),
                    dest: doc(MAIN, "README.Debian"),
                    mode: "644",
                },
                Asset {
                    src: debian.join(MAIN).join("lintian-overrides"),
                    dest: format!("usr/share/lintian/overrides/{MAIN}"),
                    mode: "644",
                },
            ],
            scripts: debian.join(MAIN),
        },
        DebSpec {
            name: EXAMPLES,
            summary: "example plugins for the Apache WebSocket module",
            description: "The echo and dumb-increment-protocol plugins of mod_websocket, \
                two browser pages that use them, and the configuration \
                websocket-examples (enable it with \"a2enconf websocket-examples\") \
                serving /echo, /dumb-increment and the pages under /websocket-examples/.",
            depends: examples_depends,
            recommends: vec!["apache2".into()],
            assets: vec![
                asset(
                    "modules/mod_websocket_echo.so",
                    &rel(&format!("{plugins}/mod_websocket_echo.so")),
                ),
                asset(
                    "modules/mod_websocket_dumb_increment.so",
                    &rel(&format!("{plugins}/mod_websocket_dumb_increment.so")),
                ),
                asset("htdocs/index.html", &rel(&format!("{htdocs}/index.html"))),
                asset("htdocs/client.html", &rel(&format!("{htdocs}/client.html"))),
                asset("htdocs/increment.html", &rel(&format!("{htdocs}/increment.html"))),
                asset(
                    "conf/websocket-examples.conf",
                    "etc/apache2/conf-available/websocket-examples.conf",
                ),
                Asset {
                    src: debian.join(EXAMPLES).join("README.Debian"),
                    dest: doc(EXAMPLES, "README.Debian"),
                    mode: "644",
                },
                Asset {
                    src: debian.join(EXAMPLES).join("lintian-overrides"),
                    dest: format!("usr/share/lintian/overrides/{EXAMPLES}"),
                    mode: "644",
                },
            ],
            scripts: debian.join(EXAMPLES),
        },
    ]
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The carrier manifest cargo-deb reads for `spec`.
pub fn manifest(spec: &DebSpec, changelog: &Path) -> String {
    let path = |p: &Path| toml_str(&p.to_string_lossy());
    let mut m = String::new();
    m.push_str(
        "# Generated by `cargo xtask package deb`; cargo-deb reads the metadata below.\n\
         # The library is empty: the package's files come from the xtask stage.\n",
    );
    m.push_str("[package]\n");
    m.push_str(&format!("name = {}\n", toml_str(spec.name)));
    m.push_str(&format!("version = {}\n", toml_str(env!("CARGO_PKG_VERSION"))));
    m.push_str("edition = \"2021\"\n");
    m.push_str(&format!("description = {}\n", toml_str(spec.summary)));
    m.push_str("license = \"Apache-2.0\"\n");
    m.push_str(&format!("homepage = {}\n", toml_str(HOMEPAGE)));
    m.push_str("publish = false\n\n[lib]\npath = \"lib.rs\"\n\n");
    m.push_str("# Not part of the apache-websocket workspace.\n[workspace]\n\n");
    m.push_str("[package.metadata.deb]\n");
    m.push_str(&format!("name = {}\n", toml_str(spec.name)));
    m.push_str(&format!("maintainer = {}\n", toml_str(MAINTAINER)));
    m.push_str(&format!(
        "license-file = [{}, \"0\"]\n",
        path(&root().join("debian/copyright"))
    ));
    m.push_str(&format!(
        "extended-description = {}\n",
        toml_str(spec.description)
    ));
    m.push_str(&format!("depends = {}\n", toml_str(&spec.depends.join(", "))));
    if !spec.recommends.is_empty() {
        m.push_str(&format!(
            "recommends = {}\n",
            toml_str(&spec.recommends.join(", "))
        ));
    }
    m.push_str("section = \"httpd\"\npriority = \"optional\"\n");
    m.push_str(&format!("revision = {}\n", toml_str(REVISION)));
    m.push_str(&format!("changelog = {}\n", path(changelog)));
    m.push_str(&format!("maintainer-scripts = {}\n", path(&spec.scripts)));
    m.push_str("assets = [\n");
    for a in &spec.assets {
        m.push_str(&format!(
            "    [{}, {}, {}],\n",
            path(&a.src),
            toml_str(&a.dest),
            toml_str(a.mode)
        ));
    }
    m.push_str("]\n");
    m
}

/// `debian/changelog.in` for one package.
pub fn changelog(package: &str) -> Result<String, String> {
    let path = root().join("debian/changelog.in");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    super::conf::substitute(
        &text,
        &[
            ("PACKAGE", package),
            ("VERSION", &deb_version()),
            ("MAINTAINER", MAINTAINER),
        ],
    )
}

pub fn cmd_package_deb(args: &[String]) -> Result<(), String> {
    check_args(args, &["--install-test"], &[])?;
    let stage = build(true)?;
    if flag(args, "--install-test") {
        // Builds the packages itself, installs, exercises, removes, purges.
        return install_test(&stage);
    }
    let debs = make_debs(&stage)?;
    lintian(&debs);
    for deb in &debs {
        eprintln!("xtask: built {}", deb.display());
    }
    Ok(())
}

/// Makes sure `cargo deb` runs, installing cargo-deb from crates.io if not.
fn ensure_cargo_deb() -> Result<(), String> {
    let works = cargo()
        .args(["deb", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if works {
        return Ok(());
    }
    eprintln!(
        "xtask: cargo-deb is not installed; installing it from crates.io \
         (cargo install cargo-deb --locked --version {CARGO_DEB_VERSION})"
    );
    run(cargo().args(["install", "cargo-deb", "--locked", "--version", CARGO_DEB_VERSION]))
}

/// Copies the stage's files for the packages into `dir`, stripping the
/// shared objects of their debug information and compressing the README.
fn prepare_files(stage: &Stage, dir: &Path) -> Result<(), String> {
    for (_, _, name) in crate::stage::MODULES {
        let dest = dir.join("modules").join(name);
        fs::create_dir_all(dest.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        run(Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
                "-o",
            ])
            .arg(&dest)
            .arg(stage.module(name)))?;
    }
    let conf = stage.dir.join("conf").join(Platform::Debian.dir_name());
    for name in [
        "websocket.load",
        "websocket.conf",
        "websocket_draft76.load",
        "websocket-examples.conf",
    ] {
        copy_file(&conf.join(name), &dir.join("conf").join(name))?;
    }
    copy_file(
        &stage.dir.join("include/websocket_plugin.h"),
        &dir.join("include/websocket_plugin.h"),
    )?;
    for page in crate::stage::PAGES {
        copy_file(&stage.htdocs().join(page), &dir.join("htdocs").join(page))?;
    }
    fs::create_dir_all(dir.join("doc")).map_err(|e| e.to_string())?;
    let readme = fs::File::create(dir.join("doc/README.md.gz")).map_err(|e| e.to_string())?;
    let status = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(root().join("README.md"))
        .stdout(readme)
        .status()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    if !status.success() {
        return Err(format!("gzip README.md failed ({status})"));
    }
    Ok(())
}

/// `Depends` entries for the shared libraries the objects link, from
/// dpkg-shlibdeps (it wants a debian/control in its working directory).
fn shlib_depends(work: &Path, objects: &[PathBuf]) -> Result<Vec<String>, String> {
    let dir = work.join("shlibdeps");
    fs::create_dir_all(dir.join("debian")).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("debian/control"),
        format!("Source: {MAIN}\n\nPackage: {MAIN}\nArchitecture: any\n"),
    )
    .map_err(|e| e.to_string())?;
    let out = Command::new("dpkg-shlibdeps")
        .args(["-O", "--warnings=0"])
        .args(objects)
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("cannot run dpkg-shlibdeps (install dpkg-dev): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dpkg-shlibdeps failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or_default();
    Ok(value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// The Apache module ABI version the packages are built for.
fn mmn() -> Result<String, String> {
    let layout = apache_layout::discover().map_err(|e| e.to_string())?;
    layout
        .mmn
        .ok_or_else(|| "apxs2 -q HTTPD_MMN gave no module magic number".to_owned())
}

/// Builds both packages from `stage`; returns the .deb paths.
pub fn make_debs(stage: &Stage) -> Result<Vec<PathBuf>, String> {
    crate::deps::ensure(&[crate::deps::BUILD, &["dpkg-dev", "binutils"]])?;
    ensure_cargo_deb()?;
    let mmn = mmn()?;
    let work = target_dir().join("debian-build");
    if work.exists() {
        fs::remove_dir_all(&work).map_err(|e| format!("cannot clean {}: {e}", work.display()))?;
    }
    let files = work.join("files");
    prepare_files(stage, &files)?;
    let out_dir = target_dir().join("debian");
    fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let objects: Vec<PathBuf> = crate::stage::MODULES
        .iter()
        .map(|(_, _, name)| files.join("modules").join(name))
        .collect();
    let shlibs = shlib_depends(&work, &objects)?;
    let mut debs = Vec::new();
    // Asset paths relative to the carrier manifests (cargo-deb resolves them
    // from there), so that cargo-deb does not take them for its own
    // target/ outputs and warn about each.
    for spec in specs(Path::new("../files"), &mmn, &shlibs) {
        let carrier = work.join(spec.name);
        fs::create_dir_all(&carrier).map_err(|e| e.to_string())?;
        let changelog_path = carrier.join("changelog");
        fs::write(&changelog_path, changelog(spec.name)?).map_err(|e| e.to_string())?;
        fs::write(carrier.join("lib.rs"), "").map_err(|e| e.to_string())?;
        fs::write(carrier.join("Cargo.toml"), manifest(&spec, &changelog_path)).map_err(|e| e.to_string())?;
        // Old builds of this package would be installed too by `apt install ./target/debian/*.deb`.
        for entry in fs::read_dir(&out_dir).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with(&format!("{}_", spec.name)) && name.ends_with(".deb") {
                fs::remove_file(&path).map_err(|e| e.to_string())?;
            }
        }
        run(cargo()
            .args(["deb", "--no-build", "--no-strip", "--manifest-path"])
            .arg(carrier.join("Cargo.toml"))
            .arg("--output")
            .arg(&out_dir)
            .env("CARGO_TARGET_DIR", work.join("cargo-target")))?;
        let deb = fs::read_dir(&out_dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&format!("{}_{}_", spec.name, deb_version())) && name.ends_with(".deb")
            })
            .ok_or_else(|| format!("cargo deb made no {} package in {}", spec.name, out_dir.display()))?;
        debs.push(deb);
    }
    Ok(debs)
}

/// Runs lintian on the packages when it is installed, and shows what it says.
fn lintian(debs: &[PathBuf]) {
    if !have("lintian") {
        eprintln!("xtask: lintian is not installed (apt-get install lintian); packages not checked");
        return;
    }
    let mut cmd = Command::new("lintian");
    cmd.arg("--display-info").args(debs);
    match output_bounded(&mut cmd, Duration::from_secs(300)) {
        Ok((_, text)) if text.trim().is_empty() => eprintln!("xtask: lintian: no complaints"),
        Ok((_, text)) => eprintln!("xtask: lintian says:\n{}", text.trim_end()),
        Err(e) => eprintln!("xtask: lintian: {e}"),
    }
}

// ---------------------------------------------------------------------------
// The install test.

const APT_TIMEOUT: Duration = Duration::from_secs(600);
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

fn http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 80))
}

fn port_open() -> bool {
    TcpStream::connect_timeout(&http_addr(), Duration::from_millis(500)).is_ok()
}

fn wait_port(open: bool, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    while port_open() != open {
        if start.elapsed() > limit {
            return Err(format!(
                "127.0.0.1:80 still {} after {}s",
                if open { "closed" } else { "open" },
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn apt_get(args: &[&str], extra: &[PathBuf]) -> Result<(), String> {
    run_ok(
        Command::new("apt-get")
            .args(["-y", "-q", "-o", "DPkg::Lock::Timeout=120"])
            .args(args)
            .args(extra)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        APT_TIMEOUT,
    )
}

/// `a2query -m <module>`: (exit code, output).
fn a2query(switch: &str, name: &str) -> Result<(i32, String), String> {
    let (status, text) = output_bounded(Command::new("a2query").args([switch, name]), CTL_TIMEOUT)?;
    Ok((status.code().unwrap_or(-1), text.trim().to_owned()))
}

fn configtest() -> Result<(), String> {
    let (status, text) = output_bounded(Command::new("apache2ctl").arg("configtest"), CTL_TIMEOUT)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apache2ctl configtest failed:\n{text}"))
    }
}

/// Installs both packages into this machine's Apache, enables the
/// examples, starts the system Apache and talks to it on 127.0.0.1:80, then
/// stops it, removes and purges the packages and checks Apache's
/// configuration is still valid. Needs root on Debian; skipped otherwise.
pub fn install_test(stage: &Stage) -> Result<(), String> {
    if !Path::new("/usr/bin/dpkg").exists() || !Path::new("/usr/sbin/apache2ctl").exists() {
        eprintln!("xtask: deb install test skipped: not a Debian machine with apache2");
        return Ok(());
    }
    if !is_root() {
        eprintln!("xtask: deb install test skipped: it installs packages, which needs root");
        return Ok(());
    }
    if port_open() {
        return Err(
            "deb install test: something already listens on 127.0.0.1:80; stop it first \
             (the test starts the system Apache there)"
                .into(),
        );
    }
    eprintln!("xtask: deb install test: building the packages");
    let debs = make_debs(stage)?;
    let result = install_and_exercise(&debs);
    // Whatever happened: stop Apache, remove and purge, check the config.
    let cleanup = remove_and_check();
    match (result, cleanup) {
        (Ok(()), Ok(())) => {
            eprintln!("xtask: deb install test passed");
            Ok(())
        }
        (Err(e), Ok(())) => Err(format!("deb install test: {e}")),
        (Ok(()), Err(c)) => Err(format!("deb install test cleanup: {c}")),
        (Err(e), Err(c)) => Err(format!("deb install test: {e}; and its cleanup: {c}")),
    }
}

fn install_and_exercise(debs: &[PathBuf]) -> Result<(), String> {
    apt_get(&["install", "--no-install-recommends"], debs)?;
    let (code, text) = a2query("-m", "websocket")?;
    if code != 0 || !text.contains("enabled") {
        return Err(format!(
            "after install, a2query -m websocket says ({code}): {text}"
        ));
    }
    let (code, text) = a2query("-m", "websocket_draft76")?;
    if code == 0 {
        return Err(format!(
            "websocket_draft76 should not be enabled by default: {text}"
        ));
    }
    run_ok(Command::new("a2enconf").arg("websocket-examples"), CTL_TIMEOUT)?;
    configtest()?;
    // Where invoke-rc.d may act (no policy-rc.d), the maintainer script's
    // restart may have started Apache already, without the examples.
    let verb = if port_open() { "restart" } else { "start" };
    run_ok(Command::new("apache2ctl").arg(verb), CTL_TIMEOUT)?;
    wait_port(true, Duration::from_secs(30))?;

    // Echo (retried briefly: a restart serves the new configuration a moment later).
    let start = Instant::now();
    let (mut ws, _) = loop {
        match Client::connect(http_addr(), "/echo", None) {
            Ok(ok) => break ok,
            Err(e) if start.elapsed() > Duration::from_secs(15) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    for text in ["hello from the deb install test", "ünïcødé ✓"] {
        ws.send_text(text)?;
        let back = ws.read_text()?;
        if back != text {
            return Err(format!("/echo answered {back:?} to {text:?}"));
        }
    }
    ws.close()?;
    eprintln!("xtask: ws://127.0.0.1/echo echoes");

    // dumb-increment: the counter counts up.
    let (mut ws, head) = Client::connect(http_addr(), "/dumb-increment", Some("dumb-increment-protocol"))?;
    if head.header("sec-websocket-protocol") != Some("dumb-increment-protocol") {
        return Err(format!(
            "/dumb-increment chose subprotocol {:?}",
            head.header("sec-websocket-protocol")
        ));
    }
    let first: u64 = ws.read_text()?.parse().map_err(|e| format!("counter: {e}"))?;
    let second: u64 = ws.read_text()?.parse().map_err(|e| format!("counter: {e}"))?;
    if second != first + 1 {
        return Err(format!("dumb-increment sent {first} then {second}"));
    }
    ws.close()?;
    eprintln!("xtask: ws://127.0.0.1/dumb-increment counts");

    // The pages.
    let installed = Path::new(&Platform::Debian.examples_htdocs()).join("client.html");
    let want = fs::read(&installed).map_err(|e| format!("cannot read {}: {e}", installed.display()))?;
    let (head, body) = wsclient::http_get(http_addr(), "/websocket-examples/client.html")?;
    if head.status != 200 || body != want {
        return Err(format!(
            "GET /websocket-examples/client.html: status {}, {} bytes (want 200, {} bytes)",
            head.status,
            body.len(),
            want.len()
        ));
    }
    eprintln!("xtask: http://127.0.0.1/websocket-examples/client.html served");
    exercise_readme_snippet()
}

/// The marker comments around the README's Debian snippet.
const SNIPPET_BEGIN: &str = "<!-- debian-vhost-snippet: begin -->";
const SNIPPET_END: &str = "<!-- debian-vhost-snippet: end -->";

/// The site the install test puts the README's snippet in.
const SNIPPET_SITE: &str = "websocket-readme-test";

fn snippet_site_path() -> PathBuf {
    Path::new("/etc/apache2/sites-available").join(format!("{SNIPPET_SITE}.conf"))
}

/// The code block between the Debian snippet's markers in `readme`: what
/// the README tells a Debian admin to put in a virtual host.
pub fn readme_snippet(readme: &str) -> Result<String, String> {
    let start = readme
        .find(SNIPPET_BEGIN)
        .ok_or_else(|| format!("README.md has no {SNIPPET_BEGIN}"))?;
    let rest = &readme[start + SNIPPET_BEGIN.len()..];
    let end = rest
        .find(SNIPPET_END)
        .ok_or_else(|| format!("README.md has no {SNIPPET_END}"))?;
    let mut lines = rest[..end].lines().skip_while(|l| !l.starts_with("```"));
    if lines.next().is_none() {
        return Err("README.md: no code block between the Debian snippet's markers".into());
    }
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    if body.is_empty() {
        return Err("README.md: the Debian snippet is empty".into());
    }
    Ok(body.join("\n") + "\n")
}

/// Puts the README's Debian snippet, verbatim, in a virtual host of its own
/// for 127.0.0.1:80, with the examples' configuration off so that only the
/// snippet can serve /echo, and talks to it.
fn exercise_readme_snippet() -> Result<(), String> {
    let readme = fs::read_to_string(root().join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let snippet = readme_snippet(&readme)?;
    run_ok(Command::new("a2disconf").arg("websocket-examples"), CTL_TIMEOUT)?;
    let site = format!(
        "# Written by cargo xtask package deb --install-test, which removes it.\n\
         # The README's Debian snippet, as an admin would copy it into a virtual host.\n\
         <VirtualHost 127.0.0.1:80>\n    ServerName {SNIPPET_SITE}.invalid\n    DocumentRoot /var/www/html\n\n\
         {snippet}</VirtualHost>\n"
    );
    fs::write(snippet_site_path(), site)
        .map_err(|e| format!("cannot write {}: {e}", snippet_site_path().display()))?;
    run_ok(Command::new("a2ensite").arg(SNIPPET_SITE), CTL_TIMEOUT)?;
    configtest().map_err(|e| format!("with the README's snippet: {e}"))?;
    run_ok(Command::new("apache2ctl").arg("graceful"), CTL_TIMEOUT)?;
    wait_port(true, Duration::from_secs(30))?;
    let start = Instant::now();
    let (mut ws, _) = loop {
        match Client::connect(http_addr(), "/echo", None) {
            Ok(ok) => break ok,
            Err(e) if start.elapsed() > Duration::from_secs(15) => {
                return Err(format!("/echo from the README's snippet: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    ws.send_text("from the README")?;
    let back = ws.read_text()?;
    if back != "from the README" {
        return Err(format!("/echo from the README's snippet answered {back:?}"));
    }
    ws.close()?;
    // The examples' configuration is off: nothing but the snippet serves
    // WebSockets now.
    if Client::connect(http_addr(), "/dumb-increment", Some("dumb-increment-protocol")).is_ok() {
        return Err("/dumb-increment still answers with websocket-examples disabled".into());
    }
    eprintln!("xtask: the README's Debian snippet serves ws://127.0.0.1/echo");
    Ok(())
}

/// Takes the snippet's site away again (after the removal was checked with
/// it in place).
fn remove_snippet_site() -> Result<(), String> {
    let path = snippet_site_path();
    if !path.exists() {
        return Ok(());
    }
    let enabled = Path::new("/etc/apache2/sites-enabled").join(format!("{SNIPPET_SITE}.conf"));
    if enabled.symlink_metadata().is_ok() {
        run_ok(Command::new("a2dissite").arg(SNIPPET_SITE), CTL_TIMEOUT)?;
    }
    fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

fn remove_and_check() -> Result<(), String> {
    let mut problems = Vec::new();
    if port_open() {
        if let Err(e) = run_ok(Command::new("apache2ctl").arg("stop"), CTL_TIMEOUT) {
            problems.push(e);
        }
        if let Err(e) = wait_port(false, Duration::from_secs(30)) {
            problems.push(e);
        }
    }
    let installed = |pkg: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", pkg])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
            .unwrap_or(false)
    };
    if installed(MAIN) || installed(EXAMPLES) {
        if let Err(e) = apt_get(&["remove"], &[MAIN.into(), EXAMPLES.into()]) {
            problems.push(e);
        }
        match a2query("-m", "websocket") {
            Ok((0, text)) => problems.push(format!("after remove, websocket is still enabled: {text}")),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        match a2query("-c", "websocket-examples") {
            Ok((0, text)) => problems.push(format!(
                "after remove, websocket-examples is still enabled: {text}"
            )),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        for link in [
            "/etc/apache2/mods-enabled/websocket.load",
            "/etc/apache2/conf-enabled/websocket-examples.conf",
        ] {
            if Path::new(link).symlink_metadata().is_ok() {
                problems.push(format!("after remove, {link} is still there"));
            }
        }
        // With the README's snippet still in its virtual host: the
        // <IfModule> around it keeps the configuration valid.
        if let Err(e) = configtest() {
            problems.push(format!("after remove: {e}"));
        }
    }
    if let Err(e) = apt_get(&["purge"], &[MAIN.into(), EXAMPLES.into()]) {
        problems.push(e);
    }
    for gone in [
        "/etc/apache2/mods-available/websocket.load",
        "/etc/apache2/conf-available/websocket-examples.conf",
        "/usr/lib/apache2/modules/mod_websocket.so",
    ] {
        if Path::new(gone).exists() {
            problems.push(format!("after purge, {gone} is still there"));
        }
    }
    if let Err(e) = configtest() {
        problems.push(format!("after purge: {e}"));
    }
    if let Err(e) = remove_snippet_site() {
        problems.push(e);
    }
    // The maintainer scripts restart Apache where invoke-rc.d may act; the
    // test leaves it stopped, as it found it.
    if port_open() {
        if let Err(e) = run_ok(Command::new("apache2ctl").arg("stop"), CTL_TIMEOUT) {
            problems.push(e);
        }
        if let Err(e) = wait_port(false, Duration::from_secs(30)) {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        eprintln!("xtask: removed and purged; Apache's configuration still passes configtest");
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_specs() -> Vec<DebSpec> {
        specs(
            Path::new("/stage"),
            "20120211",
            &["libc6 (>= 2.34)".into(), "libgcc-s1 (>= 4.2)".into()],
        )
    }

    fn dests(spec: &DebSpec) -> Vec<&str> {
        spec.assets.iter().map(|a| a.dest.as_str()).collect()
    }

    #[test]
    fn the_dependency_floor_is_the_modules_floor() {
        let source = std::fs::read_to_string(crate::util::root().join("crates/httpd/src/version.rs"))
            .expect("crates/httpd/src/version.rs");
        let line = source
            .lines()
            .find(|l| l.starts_with("pub const MINIMUM: Version = Version::new("))
            .expect("MINIMUM's definition");
        let numbers: Vec<&str> = line
            .trim_start_matches("pub const MINIMUM: Version = Version::new(")
            .trim_end_matches(");")
            .split(", ")
            .collect();
        assert_eq!(APACHE_FLOOR, format!("apache2-bin (>= {})", numbers.join(".")));
    }

    #[test]
    fn main_package_contents_and_dependencies() {
        let specs = sample_specs();
        let main = &specs[0];
        assert_eq!(main.name, "libapache2-mod-websocket");
        assert_eq!(
            main.depends,
            [
                "apache2-api-20120211",
                "apache2-bin (>= 2.4.58)",
                "libc6 (>= 2.34)",
                "libgcc-s1 (>= 4.2)"
            ]
        );
        let d = dests(main);
        for want in [
            "usr/lib/apache2/modules/mod_websocket.so",
            "usr/lib/apache2/modules/mod_websocket_draft76.so",
            "etc/apache2/mods-available/websocket.load",
            "etc/apache2/mods-available/websocket.conf",
            "etc/apache2/mods-available/websocket_draft76.load",
            "usr/include/mod_websocket/websocket_plugin.h",
            "usr/share/doc/libapache2-mod-websocket/README.md.gz",
            "usr/share/doc/libapache2-mod-websocket/README.Debian",
        ] {
            assert!(d.contains(&want), "{want} missing from {d:?}");
        }
        assert!(main.assets.iter().all(|a| a.mode == "644"));
        assert!(main.scripts.join("postinst").is_file());
    }

    #[test]
    fn examples_package_contents_and_dependencies() {
        let specs = sample_specs();
        let ex = &specs[1];
        assert_eq!(ex.name, "libapache2-mod-websocket-examples");
        assert_eq!(
            ex.depends[0],
            format!("libapache2-mod-websocket (= {})", deb_version())
        );
        let d = dests(ex);
        for want in [
            "usr/lib/apache2/websocket-plugins/mod_websocket_echo.so",
            "usr/lib/apache2/websocket-plugins/mod_websocket_dumb_increment.so",
            "usr/share/libapache2-mod-websocket-examples/htdocs/index.html",
            "usr/share/libapache2-mod-websocket-examples/htdocs/client.html",
            "usr/share/libapache2-mod-websocket-examples/htdocs/increment.html",
            "etc/apache2/conf-available/websocket-examples.conf",
        ] {
            assert!(d.contains(&want), "{want} missing from {d:?}");
        }
        // No plugin in Apache's modules directory: a2enmod and lintian would
        // take it for a module without a .load file.
        assert!(
            !d.iter().any(|p| p.starts_with("usr/lib/apache2/modules/")),
            "{d:?}"
        );
        // The pages are where the conf's Alias points.
        let conf = Platform::Debian.render().unwrap();
        let examples_conf = &conf
            .iter()
            .find(|(n, _)| *n == "websocket-examples.conf")
            .unwrap()
            .1;
        assert!(examples_conf.contains("\"/usr/share/libapache2-mod-websocket-examples/htdocs\""));
        assert!(examples_conf.contains("/usr/lib/apache2/websocket-plugins/mod_websocket_echo.so"));
    }

    #[test]
    fn manifest_carries_the_control_fields() {
        let specs = sample_specs();
        let m = manifest(&specs[0], Path::new("/w/changelog"));
        for want in [
            "[workspace]\n",
            "[package.metadata.deb]\n",
            "name = \"libapache2-mod-websocket\"\n",
            "depends = \"apache2-api-20120211, apache2-bin (>= 2.4.58), libc6 (>= 2.34), libgcc-s1 (>= 4.2)\"\n",
            "section = \"httpd\"\n",
            "priority = \"optional\"\n",
            "revision = \"1\"\n",
            "changelog = \"/w/changelog\"\n",
            "[\"/stage/modules/mod_websocket.so\", \"usr/lib/apache2/modules/mod_websocket.so\", \"644\"],\n",
        ] {
            assert!(m.contains(want), "{want:?} missing from\n{m}");
        }
        assert!(m.contains(&format!(
            "maintainer-scripts = {}\n",
            toml_str(&root().join("debian/libapache2-mod-websocket").to_string_lossy())
        )));
        let ex = manifest(&specs[1], Path::new("/w/changelog"));
        assert!(ex.contains("recommends = \"apache2\"\n"), "{ex}");
        assert!(!m.contains("recommends"), "{m}");
    }

    /// The install test copies this very block into a virtual host.
    #[test]
    fn readme_has_the_debian_snippet() {
        let readme = fs::read_to_string(root().join("README.md")).unwrap();
        let snippet = readme_snippet(&readme).unwrap();
        let lines: Vec<&str> = snippet.lines().map(str::trim).collect();
        assert_eq!(lines.first(), Some(&"<IfModule websocket_module>"), "{snippet}");
        assert_eq!(lines.last(), Some(&"</IfModule>"), "{snippet}");
        assert!(lines.contains(&"SetHandler websocket-handler"), "{snippet}");
        let echo = format!(
            "WebSocketHandler {}/mod_websocket_echo.so echo_init",
            Platform::Debian.plugins_dir()
        );
        assert!(lines.contains(&echo.as_str()), "{snippet}");
        assert!(readme_snippet("no markers").is_err());
        assert!(readme_snippet(&format!("{SNIPPET_BEGIN}\ntext\n{SNIPPET_END}")).is_err());
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }

    #[test]
    fn changelog_names_package_and_version() {
        let text = changelog(EXAMPLES).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                "libapache2-mod-websocket-examples ({}) unstable; urgency=medium",
                deb_version()
            )
        );
        assert!(text.contains(&format!(" -- {MAINTAINER}  ")), "{text}");
    }

    /// The maintainer scripts use Apache's helper only when it exists, enable
    /// the module on configure and disable on remove and purge.
    #[test]
    fn maintainer_scripts_follow_dh_apache2() {
        let dir = root().join("debian");
        let read = |pkg: &str, script: &str| fs::read_to_string(dir.join(pkg).join(script)).unwrap();
        for (pkg, script, action) in [
            (MAIN, "postinst", "apache2_invoke enmod websocket"),
            (MAIN, "prerm", "apache2_invoke dismod \"$module\""),
            (MAIN, "postrm", "apache2_invoke dismod \"$module\""),
            (EXAMPLES, "prerm", "apache2_invoke disconf websocket-examples"),
            (EXAMPLES, "postrm", "apache2_invoke disconf websocket-examples"),
        ] {
            let text = read(pkg, script);
            assert!(text.starts_with("#!/bin/sh\n"), "{pkg}/{script}");
            assert!(text.contains("\nset -e\n"), "{pkg}/{script}");
            assert!(
                text.contains("if [ -e /usr/share/apache2/apache2-maintscript-helper ]; then"),
                "{pkg}/{script}"
            );
            assert!(text.contains(action), "{pkg}/{script}: no {action}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(dir.join(pkg).join(script))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o111, 0o111, "{pkg}/{script} is not executable");
            }
        }
        assert!(read(MAIN, "postinst").contains("if [ \"$1\" = \"configure\" ]; then"));
        assert!(read(MAIN, "postrm").contains("if [ \"$1\" = \"purge\" ]; then"));
        assert!(read(MAIN, "prerm").contains("if [ \"$1\" = \"remove\" ]"));
        // The examples' configuration is left for the admin to enable.
        assert!(!dir.join(EXAMPLES).join("postinst").exists());
    }
}
