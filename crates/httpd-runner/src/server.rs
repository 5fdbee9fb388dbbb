//! Starting, watching and stopping the server process.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{Error, ServerConfig};

/// How often the start and stop loops look at the process.
const TICK: Duration = Duration::from_millis(50);
/// How long `stop` waits for a clean exit before killing the group.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long `graceful_stop` waits: the generated `GracefulShutdownTimeout`
/// (5 s) and the parent's one-second checks, with room to spare.
const GRACEFUL_STOP_GRACE: Duration = Duration::from_secs(15);
/// Auto-picked ports are retried this often when another process wins the
/// race for them.
const PORT_ATTEMPTS: usize = 5;

/// The log line the parent writes each time it (re)starts its children.
const READY_LINE: &str = "resuming normal operations";

/// How [`ServerConfig::foreground`] ended.
#[derive(Debug, Clone, Copy)]
pub struct Foreground {
    /// The server's exit status.
    pub status: ExitStatus,
    /// The signal this process received that stopped the server; `None`
    /// when the server exited by itself.
    pub signal: Option<i32>,
}

/// A running server, stopped (and waited for) on drop.
#[derive(Debug)]
pub struct RunningServer {
    child: Option<Child>,
    config: ServerConfig,
}

impl ServerConfig {
    /// Writes the configuration and starts the server in the background;
    /// returns once it accepts connections on its port.
    pub fn start(mut self) -> Result<RunningServer, Error> {
        let mut attempt = 1;
        loop {
            let conf = self.write_config()?;
            match self.spawn(&conf) {
                Ok(child) => {
                    return Ok(RunningServer {
                        child: Some(child),
                        config: self,
                    })
                }
                Err(Error::Exited { log, .. })
                    if self.auto_port && attempt < PORT_ATTEMPTS && is_bind_failure(&log) =>
                {
                    attempt += 1;
                    self.port = crate::config::pick_free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs the server in the foreground with inherited stdio until it exits
    /// or this process is asked to stop.
    ///
    /// On Unix the server gets its own process group, and SIGINT, SIGTERM
    /// and SIGHUP sent to this process stop it (SIGTERM to Apache's parent,
    /// then SIGKILL to the group if it has not gone within
    /// [`STOP_GRACE`]): whether the signal is a terminal's Ctrl-C or a
    /// `kill` of this process alone, no server is left behind. After the
    /// server has gone, those signals have their default effect again.
    pub fn foreground(mut self) -> Result<Foreground, Error> {
        let conf = self.write_config()?;
        let install = self.install_or_discover()?;
        let _ = fs::remove_file(self.pid_file());
        let mut cmd = Command::new(&install.binary);
        cmd.arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            .current_dir(&self.root)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        #[cfg(unix)]
        let signals = {
            use std::os::unix::process::CommandExt;
            // Its own group: this process decides when it stops, and the
            // group's SIGKILL cannot reach this process.
            cmd.process_group(0);
            // Before the spawn, so that no signal can fall between the two.
            crate::unix::StopSignals::register()?
        };
        let mut child = cmd.spawn()?;
        eprintln!(
            "httpd-runner: {} (pid {}) on http://127.0.0.1:{}/ (root {}, errors in {}); Ctrl-C stops it",
            install.binary.display(),
            child.id(),
            self.port,
            self.root.display(),
            self.error_log_path().display()
        );
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Foreground { status, signal: None });
            }
            #[cfg(unix)]
            if let Some(signal) = signals.received() {
                let status = terminate(&mut child, STOP_GRACE)?;
                // After a kill the pid file is stale.
                let _ = fs::remove_file(self.pid_file());
                return Ok(Foreground {
                    status,
                    signal: Some(signal),
                });
            }
            sleep(TICK);
        }
    }

    fn spawn(&mut self, conf: &Path) -> Result<Child, Error> {
        let install = self.install_or_discover()?;
        // A fresh run: old logs would confuse readers of error_log(), and a
        // stale pid file makes Apache warn.
        let _ = fs::remove_file(self.pid_file());
        let _ = fs::remove_file(self.error_log_path());
        let stderr = File::create(self.stderr_path())?;

        let mut cmd = Command::new(&install.binary);
        cmd.arg("-f")
            .arg(conf)
            .arg("-DFOREGROUND")
            .current_dir(&self.root)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own group, so stopping can reach every worker and a
            // terminal's Ctrl-C aimed at the test run does not race our stop.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn()?;

        let deadline = Instant::now() + self.startup_timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(Error::Exited {
                    status,
                    log: self.logs(),
                });
            }
            // The pid file proves it is our server that holds the port.
            if self.pid_file().is_file()
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(child);
            }
            if Instant::now() > deadline {
                let _ = terminate(&mut child, Duration::from_secs(2));
                return Err(Error::Timeout {
                    waited: self.startup_timeout,
                    log: self.logs(),
                });
            }
            sleep(TICK);
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.root.join("logs").join("stderr.log")
    }

    /// What the server said on stderr, then its error log.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (label, path) in [
            ("stderr", self.stderr_path()),
            ("error.log", self.error_log_path()),
        ] {
            let text = fs::read_to_string(&path).unwrap_or_default();
            if !text.trim().is_empty() {
                out.push_str(&format!("--- {label} ({})\n{text}", path.display()));
            }
        }
        if out.is_empty() {
            out.push_str("(no output)");
        }
        out
    }
}

fn is_bind_failure(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not bind")
}

/// Asks `child` to stop (SIGTERM: Apache's immediate stop), waits up to
/// `grace`, then kills its whole process group.
fn terminate(child: &mut Child, grace: Duration) -> Result<ExitStatus, Error> {
    #[cfg(unix)]
    return stop_with(child, libc::SIGTERM, grace);
    #[cfg(not(unix))]
    {
        let _ = child.kill();
        Ok(child.wait()?)
    }
}

/// Sends `signal` to the parent, waits up to `grace` for it to exit, then
/// kills its whole process group.
#[cfg(unix)]
fn stop_with(child: &mut Child, signal: libc::c_int, grace: Duration) -> Result<ExitStatus, Error> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let _ = crate::unix::signal(child.id(), signal);
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            #[cfg(unix)]
            // Workers that outlived their parent (should not happen) go too.
            let _ = crate::unix::signal_group(child.id(), libc::SIGKILL);
            return Ok(status);
        }
        if Instant::now() > deadline {
            break;
        }
        sleep(TICK);
    }
    #[cfg(unix)]
    let _ = crate::unix::signal_group(child.id(), libc::SIGKILL);
    let _ = child.kill();
    Ok(child.wait()?)
}

impl RunningServer {
    pub fn port(&self) -> u16 {
        self.config.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.config.port))
    }

    /// `http://127.0.0.1:<port><path>`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.config.port)
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.config.port)
    }

    /// The parent process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn root(&self) -> &Path {
        &self.config.root
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The error log as it is now.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.config.error_log_path()).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        fs::read_to_string(self.config.root.join("logs/access.log")).unwrap_or_default()
    }

    /// stderr and the error log, labelled; for test failure messages.
    pub fn logs(&self) -> String {
        self.config.logs()
    }

    /// Whether the parent process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// A graceful restart (`-k graceful`, SIGUSR1): rereads the
    /// configuration file (rewrite it first with changes) and replaces the
    /// workers; returns once the parent reports it is serving again.
    pub fn graceful(&mut self) -> Result<(), Error> {
        let before = self.error_log().matches(READY_LINE).count();
        let install = self.config.install_or_discover()?;
        let out = Command::new(&install.binary)
            .arg("-f")
            .arg(self.config.config_path())
            .args(["-k", "graceful"])
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .output()?;
        if !out.status.success() {
            return Err(Error::ConfigTest(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let deadline = Instant::now() + self.config.startup_timeout;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(Error::Exited {
                    status,
                    log: self.logs(),
                });
            }
            if self.error_log().matches(READY_LINE).count() > before {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    waited: self.config.startup_timeout,
                    log: self.logs(),
                });
            }
            sleep(TICK);
        }
    }

    /// Stops the server and waits for it (and its pid file) to go.
    pub fn stop(mut self) -> Result<ExitStatus, Error> {
        self.shutdown(false)
    }

    /// `apachectl graceful-stop` (SIGWINCH): children finish their
    /// connections (within `GracefulShutdownTimeout`, 5 s in the generated
    /// config) and exit on their own. Unlike the immediate stop, it never
    /// enters the threaded MPMs' forced close of busy workers' sockets,
    /// which races with a worker finishing its connection and can crash a
    /// child inside Apache itself; a test that checks the log for crashes
    /// after stopping wants this one. Falls back to the immediate stop
    /// where there is no such signal.
    pub fn graceful_stop(mut self) -> Result<ExitStatus, Error> {
        self.shutdown(true)
    }

    fn shutdown(&mut self, graceful: bool) -> Result<ExitStatus, Error> {
        let Some(mut child) = self.child.take() else {
            return Err(Error::Setup("already stopped".into()));
        };
        #[cfg(unix)]
        let status = if graceful {
            // GracefulShutdownTimeout plus time for the parent to notice.
            stop_with(&mut child, libc::SIGWINCH, GRACEFUL_STOP_GRACE)?
        } else {
            terminate(&mut child, STOP_GRACE)?
        };
        #[cfg(not(unix))]
        let status = {
            let _ = graceful;
            terminate(&mut child, STOP_GRACE)?
        };
        // Apache removes its pid file on a clean exit; after a kill it is
        // stale and would only produce a warning next time.
        let pid_file = self.config.pid_file();
        let deadline = Instant::now() + Duration::from_secs(2);
        while pid_file.exists() && Instant::now() < deadline {
            sleep(TICK);
        }
        let _ = fs::remove_file(pid_file);
        Ok(status)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.shutdown(false);
        }
    }
}
