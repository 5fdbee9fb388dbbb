//! Runs a real Apache httpd (Debian's `apache2`, or any 2.4 `httpd`) with a
//! configuration generated into a private server root, for the demo and the
//! integration tests.
//!
//! ```no_run
//! use httpd_runner::{Mpm, ServerConfig};
//!
//! let root = httpd_runner::scratch_dir("example");
//! let mut config = ServerConfig::new(&root).mpm(Mpm::Event);
//! std::fs::create_dir_all(config.docroot()).unwrap();
//! std::fs::write(config.docroot().join("index.html"), "hi").unwrap();
//! let server = config.start().unwrap();
//! println!("serving {}", server.url("/"));
//! // Dropping `server` stops it.
//! ```
//!
//! The server runs as a child process started with `-DFOREGROUND`, in its
//! own process group, so stopping it never depends on a daemon's pid file
//! alone and a crashed test cannot leave it running once the group is
//! killed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

mod config;
mod install;
mod server;
#[cfg(unix)]
mod unix;

pub use config::{Mpm, ServerConfig};
pub use install::{find_httpd, Install};
pub use server::{Foreground, RunningServer};

/// Why a server could not be configured, started or stopped.
#[derive(Debug)]
pub enum Error {
    /// No `apache2`/`httpd` binary was found.
    NoServer(String),
    /// The requested setup is impossible with this installation (a module
    /// file missing, a compiled-in MPM that differs from the one asked for).
    Setup(String),
    /// `apache2 -t` rejected the configuration; its output.
    ConfigTest(String),
    /// The server exited while starting; its status and logs.
    Exited {
        status: ExitStatus,
        log: String,
    },
    /// The server did not accept connections in time; its logs.
    Timeout {
        waited: std::time::Duration,
        log: String,
    },
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoServer(why) => write!(f, "no Apache httpd binary: {why}"),
            Error::Setup(why) => write!(f, "cannot set up httpd: {why}"),
            Error::ConfigTest(out) => write!(f, "httpd rejected the configuration:\n{out}"),
            Error::Exited { status, log } => {
                write!(f, "httpd exited while starting ({status}); log:\n{log}")
            }
            Error::Timeout { waited, log } => write!(
                f,
                "httpd did not accept connections within {waited:?}; log:\n{log}"
            ),
            Error::Io(e) => write!(f, "httpd runner I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// A fresh directory for a server root: `<cargo target dir>/httpd-runner/<name>`
/// (found from `CARGO_TARGET_DIR` or the running executable's location),
/// falling back to the system temp dir. Any previous content is removed.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(target_dir_of_exe)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join("httpd-runner").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Cargo marks its target directory with a CACHEDIR.TAG file.
fn target_dir_of_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}
