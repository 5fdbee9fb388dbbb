//! The configuration builder and the httpd.conf it writes.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Error, Install};

/// Which multi-processing module the server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Event, Mpm::Worker, Mpm::Prefork];

    /// `event`, `worker` or `prefork`, as in `mod_mpm_<name>.so`.
    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }

    pub fn is_threaded(self) -> bool {
        self != Mpm::Prefork
    }
}

impl std::fmt::Display for Mpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who the worker processes run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// As root: `www-data` (or `nobody`/`daemon`); otherwise no directive.
    Auto,
    Named {
        user: String,
        group: String,
    },
}

/// A server to run: a root directory, a port and what to load. Every path in
/// the generated configuration is absolute, so nothing depends on the
/// compiled-in ServerRoot or on /etc/apache2.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) root: PathBuf,
    pub(crate) port: u16,
    pub(crate) auto_port: bool,
    pub(crate) mpm: Mpm,
    pub(crate) modules: Vec<(String, PathBuf)>,
    pub(crate) docroot: Option<PathBuf>,
    pub(crate) extra: String,
    pub(crate) log_level: String,
    pub(crate) identity: Identity,
    pub(crate) install: Option<Install>,
    pub(crate) startup_timeout: Duration,
    /// Environment variables for httpd (and so its children), beyond ours.
    pub(crate) env: Vec<(String, std::ffi::OsString)>,
}

impl ServerConfig {
    /// A server rooted at `root` (created if missing): event MPM, a free
    /// port, `LogLevel warn`, DocumentRoot `<root>/htdocs`.
    pub fn new(root: impl AsRef<Path>) -> ServerConfig {
        let root = root.as_ref();
        // Apache wants absolute paths; a relative root is taken from the
        // current directory, as a shell user would expect.
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        ServerConfig {
            root,
            port: 0,
            auto_port: true,
            mpm: Mpm::Event,
            modules: Vec::new(),
            docroot: None,
            extra: String::new(),
            log_level: "warn".into(),
            identity: Identity::Auto,
            install: None,
            startup_timeout: Duration::from_secs(10),
            env: Vec::new(),
        }
    }

    /// Listens on 127.0.0.1:`port`; 0 (the default) picks a free port.
    pub fn port(mut self, port: u16) -> ServerConfig {
        self.port = port;
        self.auto_port = port == 0;
        self
    }

    pub fn mpm(mut self, mpm: Mpm) -> ServerConfig {
        self.mpm = mpm;
        self
    }

    /// Adds `LoadModule <name> <path>` (e.g. `websocket_module`).
    pub fn load_module(mut self, name: &str, path: impl Into<PathBuf>) -> ServerConfig {
        self.modules.push((name.to_string(), path.into()));
        self
    }

    pub fn document_root(mut self, dir: impl Into<PathBuf>) -> ServerConfig {
        self.docroot = Some(dir.into());
        self
    }

    /// Appends configuration text (`<Location>` blocks and the like) after
    /// everything generated.
    pub fn extra_config(mut self, text: &str) -> ServerConfig {
        self.extra.push_str(text);
        if !self.extra.ends_with('\n') {
            self.extra.push('\n');
        }
        self
    }

    /// The `LogLevel` argument, e.g. `warn websocket:debug`. It is written
    /// after the LoadModule lines so per-module levels resolve.
    pub fn log_level(mut self, level: &str) -> ServerConfig {
        self.log_level = level.to_string();
        self
    }

    /// Runs the workers as `user`/`group` when started as root (instead of
    /// the default choice of `www-data`).
    pub fn user(mut self, user: &str, group: &str) -> ServerConfig {
        self.identity = Identity::Named {
            user: user.into(),
            group: group.into(),
        };
        self
    }

    /// Uses this binary and modules directory instead of discovering them.
    pub fn install(mut self, install: Install) -> ServerConfig {
        self.install = Some(install);
        self
    }

    /// Sets an environment variable for httpd and its children (as
    /// Debian's `/etc/apache2/envvars` would), e.g. `SSL_CERT_FILE`.
    pub fn env(mut self, name: &str, value: impl Into<std::ffi::OsString>) -> ServerConfig {
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// How long `start` waits for the port to accept connections (10 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> ServerConfig {
        self.startup_timeout = timeout;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The DocumentRoot: as set, or `<root>/htdocs`.
    pub fn docroot(&self) -> PathBuf {
        self.docroot.clone().unwrap_or_else(|| self.root.join("htdocs"))
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("conf").join("httpd.conf")
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.root.join("logs").join("error.log")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.root.join("run").join("httpd.pid")
    }

    /// The port, once chosen (0 before the first `write_config`).
    pub fn current_port(&self) -> u16 {
        self.port
    }

    pub(crate) fn install_or_discover(&mut self) -> Result<Install, Error> {
        if self.install.is_none() {
            self.install = Some(Install::discover()?);
        }
        Ok(self.install.clone().expect("set above"))
    }

    /// Creates the server root, picks the port if needed and writes
    /// `<root>/conf/httpd.conf`; returns its path.
    pub fn write_config(&mut self) -> Result<PathBuf, Error> {
        let install = self.install_or_discover()?;
        if self.port == 0 {
            self.port = pick_free_port()?;
        }
        for dir in ["conf", "logs", "run"] {
            fs::create_dir_all(self.root.join(dir))?;
        }
        fs::create_dir_all(self.docroot())?;
        fs::write(self.root.join("conf/mime.types"), MIME_TYPES)?;
        let identity = self.resolve_identity();
        let text = self.render(&install, identity.as_ref().map(|i| (&*i.0, &*i.1)))?;
        let path = self.config_path();
        fs::write(&path, text)?;
        #[cfg(unix)]
        if let Some((_, _, uid, gid)) = &identity {
            self.hand_over(*uid, *gid)?;
        }
        Ok(path)
    }

    /// Runs `httpd -t` on the written configuration: `Ok(output)` when it
    /// passes, `Err(output)` when not.
    pub fn configtest(&mut self) -> Result<String, String> {
        let conf = self.write_config().map_err(|e| e.to_string())?;
        let install = self.install_or_discover().map_err(|e| e.to_string())?;
        let out = Command::new(install.binary())
            .arg("-t")
            .arg("-f")
            .arg(&conf)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", install.binary().display()))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// (user, group, uid, gid) for the `User`/`Group` directives, only when
    /// running as root: Apache refuses to serve as root, and as anyone else
    /// it cannot switch users.
    fn resolve_identity(&self) -> Option<(String, String, u32, u32)> {
        #[cfg(unix)]
        {
            if !crate::unix::is_root() {
                return None;
            }
            match &self.identity {
                Identity::Named { user, group } => {
                    let (uid, _) = crate::unix::lookup_user(user)?;
                    let gid = crate::unix::lookup_group(group)?;
                    Some((user.clone(), group.clone(), uid, gid))
                }
                Identity::Auto => ["www-data", "nobody", "daemon"].iter().find_map(|u| {
                    let (uid, gid) = crate::unix::lookup_user(u)?;
                    let group = crate::unix::group_name(gid)?;
                    Some((u.to_string(), group, uid, gid))
                }),
            }
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// Gives the unprivileged workers the directories they read or write.
    #[cfg(unix)]
    fn hand_over(&self, uid: u32, gid: u32) -> Result<(), Error> {
        let mut dirs = vec![
            self.root.clone(),
            self.root.join("conf"),
            self.root.join("logs"),
            self.root.join("run"),
        ];
        if self.docroot.is_none() {
            dirs.push(self.docroot());
        }
        for dir in dirs {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// The configuration text.
    pub(crate) fn render(&self, install: &Install, identity: Option<(&str, &str)>) -> Result<String, Error> {
        let q = |p: &Path| format!("\"{}\"", p.display());
        let root = &self.root;
        let mut c = String::new();
        let w = &mut c;
        let _ = writeln!(w, "# Generated by httpd-runner; edits are overwritten.");
        let _ = writeln!(w, "ServerRoot {}", q(root));
        let _ = writeln!(w, "ServerName 127.0.0.1");
        let _ = writeln!(w, "Listen 127.0.0.1:{}", self.port);
        let _ = writeln!(w, "PidFile {}", q(&self.pid_file()));
        let _ = writeln!(w, "DefaultRuntimeDir {}", q(&root.join("run")));
        // The quotes go around the whole `file:<dir>` word.
        let _ = writeln!(w, "Mutex \"file:{}\" default", root.join("run").display());
        let _ = writeln!(w, "ErrorLog {}", q(&self.error_log_path()));
        let _ = writeln!(w);

        // The MPM: either the one compiled in (which must match) or a
        // shared module.
        let builtin_mpm = Mpm::ALL
            .into_iter()
            .find(|m| install.has_builtin(&format!("{}.c", m.name())));
        match builtin_mpm {
            Some(m) if m == self.mpm => {}
            Some(m) => {
                return Err(Error::Setup(format!(
                    "this httpd has the {m} MPM compiled in; {} is not available",
                    self.mpm
                )))
            }
            None => {
                let path = install.require_module(&format!("mpm_{}", self.mpm.name()))?;
                let _ = writeln!(w, "LoadModule mpm_{}_module {}", self.mpm.name(), q(&path));
            }
        }
        for name in BASE_MODULES {
            if !install.has_builtin(&format!("mod_{name}.c")) {
                let path = install.require_module(name)?;
                let _ = writeln!(w, "LoadModule {name}_module {}", q(&path));
            }
        }
        for (name, path) in &self.modules {
            let _ = writeln!(w, "LoadModule {name} {}", q(path));
        }
        let _ = writeln!(w);

        if let Some((user, group)) = identity {
            let _ = writeln!(w, "User {user}\nGroup {group}");
        }
        let _ = writeln!(w, "LogLevel {}", self.log_level);
        let _ = writeln!(
            w,
            "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b\" common\nCustomLog {} common",
            q(&root.join("logs/access.log"))
        );
        // Small pools: the test machine has two cores and several servers
        // may run at once.
        let _ = w.write_str(
            "Timeout 30\nKeepAlive On\nGracefulShutdownTimeout 5\n\
             <IfModule mpm_event_module>\n    StartServers 2\n    ServerLimit 6\n    \
             ThreadsPerChild 25\n    MinSpareThreads 25\n    MaxSpareThreads 75\n    \
             MaxRequestWorkers 150\n</IfModule>\n\
             <IfModule mpm_worker_module>\n    StartServers 2\n    ServerLimit 6\n    \
             ThreadsPerChild 25\n    MinSpareThreads 25\n    MaxSpareThreads 75\n    \
             MaxRequestWorkers 150\n</IfModule>\n\
             <IfModule mpm_prefork_module>\n    StartServers 2\n    MinSpareServers 2\n    \
             MaxSpareServers 8\n    ServerLimit 64\n    MaxRequestWorkers 64\n</IfModule>\n",
        );
        let _ = writeln!(w, "TypesConfig {}", q(&root.join("conf/mime.types")));
        let _ = writeln!(w, "DirectoryIndex index.html");
        let docroot = self.docroot();
        let _ = writeln!(w, "DocumentRoot {}", q(&docroot));
        let _ = writeln!(
            w,
            "<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n\
             <Directory {}>\n    Require all granted\n</Directory>",
            q(&docroot)
        );
        if !self.extra.is_empty() {
            let _ = writeln!(w, "\n{}", self.extra);
        }
        Ok(c)
    }
}

/// Modules every generated configuration needs: `Require`, content types,
/// `DirectoryIndex`, and the privilege drop (built in on Debian).
const BASE_MODULES: &[&str] = &["unixd", "authz_core", "mime", "dir", "log_config"];

/// Enough of mime.types for the pages the demo serves; a private copy keeps
/// the server independent of /etc.
const MIME_TYPES: &str = "text/html\thtml htm\ntext/plain\ttxt\ntext/css\tcss\n\
application/javascript\tjs\napplication/json\tjson\nimage/png\tpng\nimage/svg+xml\tsvg\n";

/// A port that was free a moment ago. Another process may take it before
/// httpd binds; `start` retries with a new one when that happens.
pub(crate) fn pick_free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_install(compiled_in: &[&str], modules: &[&str]) -> (tempfile::TempDir, Install) {
        let tmp = tempfile::tempdir().unwrap();
        for m in modules {
            fs::write(tmp.path().join(format!("mod_{m}.so")), "").unwrap();
        }
        let install = Install {
            binary: "/nonexistent/apache2".into(),
            modules_dir: tmp.path().to_path_buf(),
            compiled_in: compiled_in.iter().map(|s| s.to_string()).collect(),
        };
        (tmp, install)
    }

    const DEBIAN_BUILTINS: &[&str] = &[
        "core.c",
        "mod_so.c",
        "http_core.c",
        "mod_log_config.c",
        "mod_unixd.c",
    ];

    #[test]
    fn debian_layout_loads_shared_mpm_and_base_modules() {
        let (_tmp, install) = fake_install(
            DEBIAN_BUILTINS,
            &[
                "mpm_event",
                "mpm_worker",
                "mpm_prefork",
                "authz_core",
                "mime",
                "dir",
            ],
        );
        let mut cfg = ServerConfig::new("/srv/t")
            .port(8123)
            .mpm(Mpm::Worker)
            .load_module("websocket_module", "/x/mod_websocket.so")
            .log_level("warn websocket:debug")
            .extra_config("<Location /echo>\n    SetHandler websocket-handler\n</Location>");
        cfg.install = Some(install.clone());
        let text = cfg.render(&install, Some(("www-data", "www-data"))).unwrap();
        let has = |line: &str| text.lines().any(|l| l.trim() == line);
        assert!(has("Listen 127.0.0.1:8123"), "{text}");
        assert!(has("ServerRoot \"/srv/t\""), "{text}");
        assert!(has("PidFile \"/srv/t/run/httpd.pid\""), "{text}");
        assert!(has("Mutex \"file:/srv/t/run\" default"), "{text}");
        assert!(has("DefaultRuntimeDir \"/srv/t/run\""), "{text}");
        assert!(has("ErrorLog \"/srv/t/logs/error.log\""), "{text}");
        let mpm = format!(
            "LoadModule mpm_worker_module \"{}\"",
            install.module_path("mpm_worker").display()
        );
        assert!(has(&mpm), "{text}");
        assert!(!text.contains("mpm_event_module \""), "{text}");
        assert!(!text.contains("unixd_module"), "built in: {text}");
        assert!(!text.contains("log_config_module"), "built in: {text}");
        assert!(text.contains("LoadModule authz_core_module"), "{text}");
        assert!(
            has("LoadModule websocket_module \"/x/mod_websocket.so\""),
            "{text}"
        );
        assert!(has("User www-data") && has("Group www-data"), "{text}");
        assert!(has("DocumentRoot \"/srv/t/htdocs\""), "{text}");
        assert!(has("SetHandler websocket-handler"), "{text}");
        // LogLevel must follow the module it names.
        let load = text.find("websocket_module").unwrap();
        let level = text.find("LogLevel warn websocket:debug").unwrap();
        assert!(load < level, "{text}");
    }

    #[test]
    fn no_user_directives_without_identity() {
        let (_tmp, install) = fake_install(DEBIAN_BUILTINS, &["mpm_prefork", "authz_core", "mime", "dir"]);
        let cfg = ServerConfig::new("/srv/t").port(1).mpm(Mpm::Prefork);
        let text = cfg.render(&install, None).unwrap();
        assert!(!text.contains("\nUser "), "{text}");
        assert!(text.contains("LoadModule mpm_prefork_module"), "{text}");
    }

    #[test]
    fn unixd_loaded_when_not_builtin() {
        let (_tmp, install) = fake_install(
            &["core.c", "mod_so.c", "http_core.c"],
            &["mpm_event", "unixd", "authz_core", "mime", "dir", "log_config"],
        );
        let text = ServerConfig::new("/r").port(1).render(&install, None).unwrap();
        assert!(text.contains("LoadModule unixd_module"), "{text}");
        assert!(text.contains("LoadModule log_config_module"), "{text}");
    }

    #[test]
    fn builtin_mpm_must_match() {
        let (_tmp, install) = fake_install(
            &["core.c", "prefork.c", "mod_unixd.c", "mod_log_config.c"],
            &["authz_core", "mime", "dir"],
        );
        let ok = ServerConfig::new("/r").port(1).mpm(Mpm::Prefork);
        let text = ok.render(&install, None).unwrap();
        assert!(!text.contains("LoadModule mpm_"), "built in: {text}");
        let err = ServerConfig::new("/r")
            .port(1)
            .mpm(Mpm::Event)
            .render(&install, None)
            .unwrap_err();
        assert!(err.to_string().contains("prefork MPM compiled in"), "{err}");
    }

    #[test]
    fn missing_module_is_named() {
        let (_tmp, install) = fake_install(DEBIAN_BUILTINS, &["mpm_event", "authz_core", "dir"]);
        let err = ServerConfig::new("/r")
            .port(1)
            .render(&install, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mod_mime.so is missing"), "{err}");
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(pick_free_port().unwrap(), 0);
    }
}
