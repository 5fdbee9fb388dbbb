//! Which httpd binary to run and where its modules are.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The server binary, its modules directory and what is compiled into it.
#[derive(Debug, Clone)]
pub struct Install {
    pub binary: PathBuf,
    pub modules_dir: PathBuf,
    /// Source names from `httpd -l` (`core.c`, `mod_unixd.c`, ...).
    pub compiled_in: Vec<String>,
}

/// The httpd binary: the one apache-layout finds, else `apache2` or
/// `httpd` in PATH or /usr/sbin.
pub fn find_httpd() -> Option<PathBuf> {
    apache_layout::discover()
        .ok()
        .and_then(|l| l.httpd_binary)
        .or_else(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
                .flat_map(|d| [d.join("apache2"), d.join("httpd")])
                .find(|p| p.is_file())
        })
}

impl Install {
    /// Finds the installed server.
    pub fn discover() -> Result<Install, Error> {
        let binary = find_httpd().ok_or_else(|| {
            Error::NoServer("neither apache2 nor httpd found (Debian: apt-get install apache2)".into())
        })?;
        let modules_dir = apache_layout::discover()
            .ok()
            .map(|l| l.modules_dir)
            .filter(|d| d.is_dir())
            .or_else(|| {
                [
                    "/usr/lib/apache2/modules",
                    "/usr/lib64/httpd/modules",
                    "/usr/lib/httpd/modules",
                ]
                .iter()
                .map(PathBuf::from)
                .find(|d| d.is_dir())
            })
            .ok_or_else(|| Error::Setup("no httpd modules directory found".into()))?;
        Install::with(binary, modules_dir)
    }

    /// Uses the given binary and modules directory.
    pub fn with(binary: PathBuf, modules_dir: PathBuf) -> Result<Install, Error> {
        let out = Command::new(&binary)
            .arg("-l")
            .output()
            .map_err(|e| Error::NoServer(format!("cannot run {} -l: {e}", binary.display())))?;
        let compiled_in = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.ends_with(".c"))
            .map(String::from)
            .collect();
        Ok(Install {
            binary,
            modules_dir,
            compiled_in,
        })
    }

    /// Whether `mod_<name>.c` (or `<name>.c` for MPMs) is built in.
    pub fn has_builtin(&self, source: &str) -> bool {
        self.compiled_in.iter().any(|c| c == source)
    }

    /// The path of `mod_<name>.so` in the modules directory.
    pub fn module_path(&self, name: &str) -> PathBuf {
        self.modules_dir.join(format!("mod_{name}.so"))
    }

    pub(crate) fn require_module(&self, name: &str) -> Result<PathBuf, Error> {
        let path = self.module_path(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Setup(format!(
                "{} is missing and mod_{name}.c is not compiled in",
                path.display()
            )))
        }
    }

    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }
}
