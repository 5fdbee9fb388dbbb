//! `cargo xtask build`: compile the modules and plugins, then lay them out in
//! `target/apache/` the way an installation wants them. Every package and
//! the demo are made from that stage.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{cargo, check_args, flag, root, run, target_dir};

/// The cdylibs we build: (cargo package, file cargo writes, staged name).
pub const MODULES: &[(&str, &str, &str)] = &[
    ("mod_websocket", "libmod_websocket.so", "mod_websocket.so"),
    (
        "mod_websocket_draft76",
        "libmod_websocket_draft76.so",
        "mod_websocket_draft76.so",
    ),
    (
        "websocket-echo",
        "libmod_websocket_echo.so",
        "mod_websocket_echo.so",
    ),
    (
        "websocket-dumb-increment",
        "libmod_websocket_dumb_increment.so",
        "mod_websocket_dumb_increment.so",
    ),
    // Staged for the demo (channels); not packaged.
    (
        "websocket-chat",
        "libmod_websocket_chat.so",
        "mod_websocket_chat.so",
    ),
    // Staged for the request-context tests and as an example; not packaged.
    (
        "websocket-whoami",
        "libmod_websocket_whoami.so",
        "mod_websocket_whoami.so",
    ),
];

/// The example pages in `conf/htdocs/`, staged in `target/apache/htdocs/`.
pub const PAGES: &[&str] = &["index.html", "client.html", "increment.html"];
/// Pages staged for the demo only, as their plugins are not packaged.
pub const DEMO_PAGES: &[&str] = &["chat.html"];

#[derive(Clone)]
pub struct Stage {
    pub dir: PathBuf,
}

impl Stage {
    pub fn modules(&self) -> PathBuf {
        self.dir.join("modules")
    }
    pub fn module(&self, name: &str) -> PathBuf {
        self.modules().join(name)
    }
    pub fn htdocs(&self) -> PathBuf {
        self.dir.join("htdocs")
    }
}

pub fn stage_dir() -> PathBuf {
    target_dir().join("apache")
}

pub fn cmd_build(args: &[String]) -> Result<(), String> {
    check_args(args, &["--release"], &[])?;
    build(flag(args, "--release")).map(|s| eprintln!("xtask: staged in {}", s.dir.display()))
}

/// Builds and stages; returns the stage.
pub fn build(release: bool) -> Result<Stage, String> {
    crate::deps::ensure(&[crate::deps::BUILD])?;
    let mut cmd = cargo();
    cmd.arg("build");
    for (package, _, _) in MODULES {
        cmd.args(["-p", package]);
    }
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    let profile_dir = target_dir().join(if release { "release" } else { "debug" });
    let stage = Stage { dir: stage_dir() };
    for sub in ["modules", "include", "conf", "htdocs"] {
        fs::create_dir_all(stage.dir.join(sub))
            .map_err(|e| format!("cannot create {}: {e}", stage.dir.join(sub).display()))?;
    }
    for (_, built, staged) in MODULES {
        copy(&profile_dir.join(host_artifact(built)), &stage.module(staged))?;
    }
    copy(
        &root().join("crates/websocket-plugin/include/websocket_plugin.h"),
        &stage.dir.join("include/websocket_plugin.h"),
    )?;
    for page in PAGES.iter().chain(DEMO_PAGES) {
        copy(&root().join("conf/htdocs").join(page), &stage.htdocs().join(page))?;
    }
    // The staged .load/.conf point at the modules directory of the Apache
    // found on this machine, where `make install`-style copying puts them.
    let modules_dir = apache_layout::discover()
        .map(|l| l.modules_dir)
        .unwrap_or_else(|_| PathBuf::from("/usr/lib/apache2/modules"));
    // The example plugins sit beside the modules there.
    let modules_dir = modules_dir.display().to_string();
    let vars = [
        ("MODULES_DIR", modules_dir.as_str()),
        ("PLUGINS_DIR", modules_dir.as_str()),
    ];
    for template in ["websocket.load", "websocket.conf", "websocket_draft76.load"] {
        let text = crate::package::conf::render_template(template, &vars)?;
        write(&stage.dir.join("conf").join(template), &text)?;
    }
    // And the same files with each platform's paths, for the packages.
    crate::package::conf::emit_all(&stage.dir.join("conf"))?;
    Ok(stage)
}

/// The name cargo gives a cdylib on the host, from its Linux name in
/// [`MODULES`]: `libX.so` on Linux, `libX.dylib` on macOS, `X.dll` on
/// Windows. The staged name stays `X.so` everywhere, as Apache's modules are
/// named on every platform (ApacheLounge and Homebrew included).
pub fn host_artifact(linux_name: &str) -> String {
    let stem = linux_name.strip_suffix(".so").unwrap_or(linux_name);
    if cfg!(target_os = "windows") {
        format!("{}.dll", stem.strip_prefix("lib").unwrap_or(stem))
    } else if cfg!(target_os = "macos") {
        format!("{stem}.dylib")
    } else {
        linux_name.to_owned()
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    // Copy through a temporary name so a running Apache that has the old
    // file mapped never sees it truncated.
    let tmp = to.with_extension("tmp");
    fs::copy(from, &tmp).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), tmp.display()))?;
    fs::rename(&tmp, to).map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), to.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Stage {
    /// `<Location>` blocks serving the example plugins from this stage.
    pub fn example_locations(&self) -> String {
        format!(
            "<Location /echo>\n    SetHandler websocket-handler\n    WebSocketHandler {echo} echo_init\n</Location>\n\
             <Location /dumb-increment>\n    SetHandler websocket-handler\n    WebSocketHandler {inc} dumb_increment_init\n</Location>\n\
             <Location /chat>\n    SetHandler websocket-handler\n    WebSocketHandler {chat} chat_init\n</Location>\n",
            echo = self.module("mod_websocket_echo.so").display(),
            inc = self.module("mod_websocket_dumb_increment.so").display(),
            chat = self.module("mod_websocket_chat.so").display(),
        )
    }

    /// A server configuration with mod_websocket and the examples loaded.
    pub fn server(&self, root: &Path, mpm: httpd_runner::Mpm) -> httpd_runner::ServerConfig {
        httpd_runner::ServerConfig::new(root)
            .mpm(mpm)
            .load_module("websocket_module", self.module("mod_websocket.so"))
            .document_root(self.htdocs())
            .extra_config(&self.example_locations())
    }
}

/// Parses `--mpm`.
pub fn parse_mpm(value: Option<&str>) -> Result<httpd_runner::Mpm, String> {
    match value.unwrap_or("event") {
        "event" => Ok(httpd_runner::Mpm::Event),
        "worker" => Ok(httpd_runner::Mpm::Worker),
        "prefork" => Ok(httpd_runner::Mpm::Prefork),
        other => Err(format!("--mpm must be event, worker or prefork, not '{other}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The staged .load of the legacy module says what it needs, as the
    /// .deb's copy does (a2enmod reads the line).
    #[test]
    fn draft76_load_depends_on_websocket() {
        let text = fs::read_to_string(root().join("conf/websocket_draft76.load.in")).unwrap();
        assert!(text.starts_with("# Depends: websocket\n"), "{text}");
    }

    #[test]
    fn every_page_is_there() {
        for page in PAGES.iter().chain(DEMO_PAGES) {
            assert!(root().join("conf/htdocs").join(page).is_file(), "{page}");
        }
    }

    #[test]
    fn host_artifact_names() {
        let name = host_artifact("libmod_websocket.so");
        if cfg!(target_os = "windows") {
            assert_eq!(name, "mod_websocket.dll");
        } else if cfg!(target_os = "macos") {
            assert_eq!(name, "libmod_websocket.dylib");
        } else {
            assert_eq!(name, "libmod_websocket.so");
        }
    }
}
