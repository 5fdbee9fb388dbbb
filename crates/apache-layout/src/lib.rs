//! Finds an Apache httpd 2.4 installation: where its headers, import
//! libraries, modules and configuration live, and which module ABI (MMN) and
//! version it has.
//!
//! Every platform has its own search function on [`Probe`], so each can be
//! tested against a synthetic tree: a `Probe` carries the environment
//! variables, the `PATH` used to find helper programs and an optional root
//! that stands in for `/` (or for the drive on Windows).
//!
//! ```no_run
//! let layout = apache_layout::discover().unwrap();
//! println!("headers in {:?}", layout.include_dirs);
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod headers;
mod linux;
mod macos;
mod windows;

pub use headers::{read_httpd_version, read_mmn};

/// Environment variables that influence discovery; a build script should
/// emit `cargo:rerun-if-env-changed` for each.
pub const ENV_VARS: &[&str] = &[
    "APACHE_INCLUDE_DIR",
    "APR_INCLUDE_DIR",
    "APU_INCLUDE_DIR",
    "APXS",
    "APACHE_ROOT",
    "HOMEBREW_PREFIX",
];

/// Which kind of installation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Linux/Unix packages queried through `apxs`/`apr-1-config` or env
    /// overrides (Debian `apache2-dev`, RHEL `httpd-devel`).
    Linux,
    /// Homebrew's `httpd`, `apr` and `apr-util` formulas.
    Homebrew,
    /// The Apache that ships with macOS, headers from the Xcode SDK.
    MacSystem,
    /// An ApacheLounge binary distribution on Windows.
    ApacheLounge,
}

/// The platform family to search for; decides which searches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOs {
    Linux,
    MacOs,
    Windows,
}

impl TargetOs {
    /// The OS this code was compiled for.
    pub fn host() -> TargetOs {
        if cfg!(target_os = "windows") {
            TargetOs::Windows
        } else if cfg!(target_os = "macos") {
            TargetOs::MacOs
        } else {
            TargetOs::Linux
        }
    }

    /// The OS of a target triple such as Cargo's `$TARGET`
    /// (`x86_64-pc-windows-msvc`, `aarch64-apple-darwin`, ...). Anything that
    /// is neither Windows nor Apple is searched like Linux.
    pub fn from_triple(triple: &str) -> TargetOs {
        if triple.contains("windows") {
            TargetOs::Windows
        } else if triple.contains("apple") || triple.contains("darwin") {
            TargetOs::MacOs
        } else {
            TargetOs::Linux
        }
    }
}

/// What was found. Paths are absolute as the installation reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApacheLayout {
    /// httpd's include dir first, then APR's, then APR-util's (duplicates
    /// removed).
    pub include_dirs: Vec<PathBuf>,
    /// Where import libraries live (Windows; keg-only APR on Homebrew).
    pub lib_dirs: Vec<PathBuf>,
    /// Libraries a module must link against, as `rustc-link-lib` names
    /// without extension (`libhttpd` for `libhttpd.lib`). Empty where the
    /// server provides the symbols at load time.
    pub import_libs: Vec<String>,
    /// Where `mod_*.so` files go.
    pub modules_dir: PathBuf,
    /// Where configuration snippets go (Windows: `conf\extra`).
    pub conf_dir: PathBuf,
    /// Module magic number major, e.g. `20120211`.
    pub mmn: Option<String>,
    /// `major.minor.patch` from `ap_release.h`, e.g. `2.4.71`.
    pub httpd_version: Option<String>,
    /// The server binary, when it could be located.
    pub httpd_binary: Option<PathBuf>,
    pub flavor: Flavor,
}

/// No usable installation was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub target: TargetOs,
    /// Every place that was looked at, with what was missing there.
    pub searched: Vec<String>,
}

impl Error {
    /// What to install to fix it.
    pub fn hint(&self) -> &'static str {
        match self.target {
            TargetOs::Linux => {
                "install the Apache development files (Debian/Ubuntu: `apt-get install apache2-dev`; \
                 Fedora/RHEL: `dnf install httpd-devel apr-devel apr-util-devel`), \
                 or set APACHE_INCLUDE_DIR and APR_INCLUDE_DIR (or APXS)"
            }
            TargetOs::MacOs => {
                "install Homebrew's Apache: `brew install httpd apr apr-util` \
                 (or install Xcode's command line tools for the system Apache's headers)"
            }
            TargetOs::Windows => {
                "unzip the ApacheLounge httpd 2.4 distribution to C:\\Apache24, \
                 or set APACHE_ROOT to where it is"
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = match self.target {
            TargetOs::Linux => "Linux",
            TargetOs::MacOs => "macOS",
            TargetOs::Windows => "Windows",
        };
        writeln!(f, "no Apache httpd 2.4 installation found for {os}; searched:")?;
        for place in &self.searched {
            writeln!(f, "  - {place}")?;
        }
        write!(f, "To fix: {}", self.hint())
    }
}

impl std::error::Error for Error {}

/// Discovers the installation for the host OS, from the real environment.
pub fn discover() -> Result<ApacheLayout, Error> {
    Probe::system().discover(TargetOs::host())
}

/// Discovers the installation for a target triple (a build script passes
/// `$TARGET`), from the real environment.
pub fn discover_for_target(triple: &str) -> Result<ApacheLayout, Error> {
    Probe::system().discover(TargetOs::from_triple(triple))
}

/// The inputs of a search: environment, program search path and a root that
/// stands in for the filesystem root. `Probe::system()` is the real machine;
/// tests build a `Probe` over a temporary tree.
#[derive(Debug, Clone)]
pub struct Probe {
    vars: HashMap<String, OsString>,
    path: Vec<PathBuf>,
    root: Option<PathBuf>,
}

impl Probe {
    /// The real environment, `PATH` and filesystem.
    pub fn system() -> Probe {
        let vars = ENV_VARS
            .iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (k.to_string(), v)))
            .collect();
        let path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        Probe {
            vars,
            path,
            root: None,
        }
    }

    /// An empty environment over `root`: absolute system paths such as
    /// `/usr/include/apache2` or `C:\Apache24` are looked up under it, and no
    /// program is found until [`Probe::path`] adds directories.
    pub fn with_root(root: impl Into<PathBuf>) -> Probe {
        Probe {
            vars: HashMap::new(),
            path: Vec::new(),
            root: Some(root.into()),
        }
    }

    /// Sets an environment variable seen by the search.
    pub fn var(mut self, key: &str, value: impl Into<OsString>) -> Probe {
        self.vars.insert(key.to_string(), value.into());
        self
    }

    /// Appends a directory to the program search path.
    pub fn path(mut self, dir: impl Into<PathBuf>) -> Probe {
        self.path.push(dir.into());
        self
    }

    /// Runs the searches for `target`, in order of preference.
    pub fn discover(&self, target: TargetOs) -> Result<ApacheLayout, Error> {
        match target {
            TargetOs::Linux => self.linux(),
            TargetOs::Windows => self.apache_lounge(),
            TargetOs::MacOs => self.homebrew().or_else(|brew| {
                self.mac_system().map_err(|mut sys| {
                    let mut searched = brew.searched;
                    searched.append(&mut sys.searched);
                    sys.searched = searched;
                    sys
                })
            }),
        }
    }

    fn env(&self, key: &str) -> Option<PathBuf> {
        self.vars.get(key).filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// Maps an absolute system path (`/usr/include`, `C:\Apache24`) into the
    /// probe's root.
    fn sys(&self, path: &str) -> PathBuf {
        match &self.root {
            None => PathBuf::from(path),
            Some(root) => {
                let rel: String = path
                    .trim_start_matches(['/', '\\'])
                    .replace(':', "")
                    .replace('\\', "/");
                root.join(rel)
            }
        }
    }

    fn which(&self, name: &str) -> Option<PathBuf> {
        self.path.iter().find_map(|dir| {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
            if cfg!(windows) {
                let exe = dir.join(format!("{name}.exe"));
                if exe.is_file() {
                    return Some(exe);
                }
            }
            None
        })
    }

    /// Runs `program args` and returns its trimmed stdout, or `None` when it
    /// cannot run, fails or prints nothing.
    fn query(&self, program: &Path, args: &[&str]) -> Option<String> {
        // A tool being written at this moment (a package upgrade, or a
        // test creating it while another thread forks) fails with "text
        // file busy" for a few milliseconds; that is not "not installed".
        let mut busy_retries = 20;
        let out = loop {
            match Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && busy_retries > 0 => {
                    busy_retries -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.ok()?,
            }
        };
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }
}

/// A directory to try and how we came to it (for the error text).
type Candidate = (PathBuf, String);

impl Probe {
    /// The env override alone if set, else the first candidate holding
    /// `header`.
    fn pick_dir(
        &self,
        var: Option<&str>,
        header: &str,
        candidates: Vec<Candidate>,
        searched: &mut Vec<String>,
    ) -> Option<PathBuf> {
        if let Some((var, dir)) = var.and_then(|v| Some((v, self.env(v)?))) {
            // An override that is wrong must fail loudly rather than quietly
            // pick some other installation.
            return has_header(&dir, header, searched, var).then_some(dir);
        }
        if candidates.is_empty() {
            searched.push(format!("nowhere to look for {header}"));
        }
        candidates
            .into_iter()
            .find(|(dir, how)| has_header(dir, header, searched, how))
            .map(|(dir, _)| dir)
    }
}

/// Pushes `dir` unless it is already there.
fn push_unique(dirs: &mut Vec<PathBuf>, dir: PathBuf) {
    if !dirs.contains(&dir) {
        dirs.push(dir);
    }
}

/// Checks that `dir` holds `header`; records the miss otherwise.
fn has_header(dir: &Path, header: &str, searched: &mut Vec<String>, how: &str) -> bool {
    if dir.join(header).is_file() {
        true
    } else {
        searched.push(format!("{} ({how}): no {header}", dir.display()));
        false
    }
}

/// Builders of synthetic installation trees, for tests here and in the xtask.
#[cfg(any(test, feature = "testutil"))]
pub mod testutil {
    use std::fs;
    use std::path::Path;

    pub fn touch(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Writes the headers discovery checks for and parses.
    pub fn httpd_headers(dir: &Path) {
        touch(&dir.join("httpd.h"), "");
        touch(
            &dir.join("ap_release.h"),
            "#define AP_SERVER_MAJORVERSION_NUMBER 2\n\
             #define AP_SERVER_MINORVERSION_NUMBER 4\n\
             #define AP_SERVER_PATCHLEVEL_NUMBER   62\n",
        );
        touch(
            &dir.join("ap_mmn.h"),
            "#ifndef MODULE_MAGIC_NUMBER_MAJOR\n\
             #define MODULE_MAGIC_NUMBER_MAJOR 20120211\n#endif\n",
        );
    }

    pub fn apr_headers(dir: &Path) {
        touch(&dir.join("apr.h"), "");
    }

    pub fn apu_headers(dir: &Path) {
        touch(&dir.join("apu.h"), "");
        touch(&dir.join("apr_buckets.h"), "");
    }

    /// Debian's apache2-dev headers under `root` (no apxs: the standard dirs).
    pub fn debian_tree(root: &Path) {
        httpd_headers(&root.join("usr/include/apache2"));
        apr_headers(&root.join("usr/include/apr-1.0"));
        apu_headers(&root.join("usr/include/apr-1.0"));
    }

    /// macOS's own Apache under `root`: headers in the SDK at `root/sdk`, the
    /// server and its modules dir, and an `xcrun` in `root/bin` naming the SDK.
    /// Returns the SDK path.
    #[cfg(unix)]
    pub fn mac_system_tree(root: &Path, sdk: &str) -> std::path::PathBuf {
        let sdk = root.join(sdk);
        httpd_headers(&sdk.join("usr/include/apache2"));
        apr_headers(&sdk.join("usr/include/apr-1"));
        apu_headers(&sdk.join("usr/include/apr-1"));
        fs::create_dir_all(root.join("usr/libexec/apache2")).unwrap();
        touch(&root.join("usr/sbin/httpd"), "");
        fake_tool(
            &root.join("bin/xcrun"),
            &[("--show-sdk-path", sdk.to_str().unwrap())],
        );
        sdk
    }

    /// A shell script that answers `-q NAME` / `--includedir` from a table.
    #[cfg(unix)]
    pub fn fake_tool(path: &Path, answers: &[(&str, &str)]) {
        use std::os::unix::fs::PermissionsExt;
        let mut script =
            String::from("#!/bin/sh\nkey=\"$1\"\n[ \"$1\" = -q ] && key=\"$2\"\ncase \"$key\" in\n");
        for (k, v) in answers {
            script.push_str(&format!("  {k}) echo '{v}' ;;\n"));
        }
        script.push_str("  *) echo \"unknown $key\" >&2; exit 1 ;;\nesac\n");
        touch(path, &script);
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triple_selects_os() {
        assert_eq!(TargetOs::from_triple("x86_64-pc-windows-msvc"), TargetOs::Windows);
        assert_eq!(TargetOs::from_triple("aarch64-apple-darwin"), TargetOs::MacOs);
        assert_eq!(TargetOs::from_triple("x86_64-unknown-linux-gnu"), TargetOs::Linux);
        assert_eq!(TargetOs::from_triple("x86_64-unknown-freebsd"), TargetOs::Linux);
    }

    #[test]
    fn sys_maps_into_root() {
        let p = Probe::with_root("/tmp/r");
        assert_eq!(
            p.sys("/usr/include/apache2"),
            Path::new("/tmp/r/usr/include/apache2")
        );
        assert_eq!(p.sys("C:\\Apache24"), Path::new("/tmp/r/C/Apache24"));
        let real = Probe::system();
        assert_eq!(real.sys("/usr/include"), Path::new("/usr/include"));
    }

    #[test]
    fn error_names_places_and_fix() {
        let e = Error {
            target: TargetOs::Linux,
            searched: vec!["/a (x): no httpd.h".into(), "PATH: no apxs".into()],
        };
        let text = e.to_string();
        assert!(text.contains("  - /a (x): no httpd.h\n"), "{text}");
        assert!(text.contains("  - PATH: no apxs\n"), "{text}");
        assert!(text.contains("apt-get install apache2-dev"), "{text}");
    }

    #[test]
    fn macos_error_lists_both_searches() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Probe::with_root(tmp.path())
            .discover(TargetOs::MacOs)
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("opt/homebrew"), "{text}");
        assert!(text.contains("usr/local"), "{text}");
        assert!(text.contains("xcrun"), "{text}");
        assert!(text.contains("brew install httpd apr apr-util"), "{text}");
    }

    /// The machine this runs on: on a developer box or CI with the Apache
    /// development files installed, discovery must succeed.
    #[test]
    fn host_discovery_is_consistent() {
        match discover() {
            Ok(layout) => {
                assert!(layout.include_dirs[0].join("httpd.h").is_file());
                assert!(layout.include_dirs.iter().any(|d| d.join("apr.h").is_file()));
            }
            Err(e) => eprintln!("no Apache on this machine (fine for this test): {e}"),
        }
    }
}
