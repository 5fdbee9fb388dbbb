//! The configuration snippets each platform gets, rendered from the
//! templates in `conf/*.in`: the same `LoadModule` lines and commented
//! directives everywhere, with that platform's paths.
//!
//! `cargo xtask build` writes them to `target/apache/conf/<platform>/`; the
//! Debian packages, the MSI and the macOS install take them from there.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::root;

/// Where an installation puts the module, the plugins and the example pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    /// Debian/Ubuntu packages (`/usr/lib/apache2/modules`).
    Debian,
    /// Homebrew's httpd under a prefix (`/opt/homebrew` or `/usr/local`).
    Homebrew { prefix: PathBuf },
    /// The Apache that ships with macOS. Its own modules live in
    /// `/usr/libexec/apache2`, on the sealed, read-only system volume, so
    /// ours go to `/usr/local/libexec/apache2` and are loaded from there by
    /// absolute path with a code-signing authority.
    MacSystem,
    /// ApacheLounge on Windows: paths relative to `${SRVROOT}`, which
    /// ApacheLounge's httpd.conf defines.
    Windows,
}

/// The Debian package that ships the example plugins and pages.
pub const DEBIAN_EXAMPLES_PACKAGE: &str = "libapache2-mod-websocket-examples";

impl Platform {
    /// Every platform, Homebrew at its Apple-silicon prefix.
    pub fn all() -> Vec<Platform> {
        vec![
            Platform::Debian,
            Platform::Homebrew {
                prefix: PathBuf::from("/opt/homebrew"),
            },
            Platform::MacSystem,
            Platform::Windows,
        ]
    }

    /// The directory under `target/apache/conf/`.
    pub fn dir_name(&self) -> &'static str {
        match self {
            Platform::Debian => "debian",
            Platform::Homebrew { .. } => "homebrew",
            Platform::MacSystem => "macos-system",
            Platform::Windows => "windows",
        }
    }

    /// Where `mod_websocket.so` and `mod_websocket_draft76.so` go.
    pub fn modules_dir(&self) -> String {
        match self {
            Platform::Debian => "/usr/lib/apache2/modules".into(),
            Platform::Homebrew { prefix } => slash(&prefix.join("lib/httpd/modules")),
            Platform::MacSystem => "/usr/local/libexec/apache2".into(),
            Platform::Windows => "${SRVROOT}/modules".into(),
        }
    }

    /// Where the example plugins go. On Debian they are not Apache modules,
    /// so they stay out of the modules directory (whose every `.so` lintian
    /// and a2enmod take for a module).
    pub fn plugins_dir(&self) -> String {
        match self {
            Platform::Debian => "/usr/lib/apache2/websocket-plugins".into(),
            _ => self.modules_dir(),
        }
    }

    /// Where the example pages go.
    pub fn examples_htdocs(&self) -> String {
        match self {
            Platform::Debian => format!("/usr/share/{DEBIAN_EXAMPLES_PACKAGE}/htdocs"),
            Platform::Homebrew { prefix } => slash(&prefix.join("var/www/websocket-examples")),
            Platform::MacSystem => "/Library/WebServer/Documents/websocket-examples".into(),
            Platform::Windows => "${SRVROOT}/htdocs/websocket-examples".into(),
        }
    }

    /// The files of this platform: (file name, text).
    pub fn render(&self) -> Result<Vec<(&'static str, String)>, String> {
        let modules = self.modules_dir();
        let vars = [
            ("MODULES_DIR", modules.as_str()),
            ("PLUGINS_DIR", &self.plugins_dir()),
            ("EXAMPLES_HTDOCS", &self.examples_htdocs()),
        ];
        let load = render_template("websocket.load", &vars)?;
        let conf = render_template("websocket.conf", &vars)?;
        let draft76 = render_template("websocket_draft76.load", &vars)?;
        let examples = render_template("websocket-examples.conf", &vars)?;
        Ok(match self {
            Platform::Debian => vec![
                ("websocket.load", load),
                ("websocket.conf", conf),
                // The template's "# Depends:" line makes a2enmod enable
                // mod_websocket first.
                ("websocket_draft76.load", draft76),
                ("websocket-examples.conf", examples),
            ],
            Platform::Homebrew { .. } | Platform::MacSystem => vec![
                ("websocket.load", load),
                ("websocket.conf", conf),
                ("websocket_draft76.load", draft76),
            ],
            Platform::Windows => {
                let vars = [
                    ("MODULES_DIR", modules.as_str()),
                    ("WEBSOCKET_CONF", conf.trim_end()),
                ];
                vec![
                    (
                        "httpd-websocket.conf",
                        render_template("httpd-websocket.conf", &vars)?,
                    ),
                    ("httpd-websocket-examples.conf", examples),
                ]
            }
        })
    }
}

/// Writes every platform's files to `conf_dir/<platform>/`.
pub fn emit_all(conf_dir: &Path) -> Result<(), String> {
    for platform in Platform::all() {
        let dir = conf_dir.join(platform.dir_name());
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (name, text) in platform.render()? {
            let path = dir.join(name);
            fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Renders `conf/<name>.in`.
pub fn render_template(name: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let path = root().join("conf").join(format!("{name}.in"));
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    substitute(&text, vars).map_err(|e| format!("{}: {e}", path.display()))
}

/// Replaces every `@NAME@`; a placeholder without a value is an error, so a
/// typo in a template cannot reach an installed file.
pub fn substitute(text: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('@') {
            let name = &after[..name_len];
            let value = vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("no value for @{name}@"))?;
            out.push_str(value);
            rest = &after[name_len + 1..];
        } else {
            out.push('@');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A path with forward slashes (Apache accepts them everywhere).
fn slash(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(platform: &Platform, name: &str) -> String {
        platform
            .render()
            .unwrap()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{} has no {name}", platform.dir_name()))
            .1
    }

    fn active_lines(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn substitute_replaces_and_refuses_unknown_names() {
        assert_eq!(
            substitute("a @X@ b @Y@@X@", &[("X", "1"), ("Y", "2")]).unwrap(),
            "a 1 b 21"
        );
        // Not placeholders: an e-mail address, a lone @, lower case.
        assert_eq!(substitute("me@host @ @x@", &[]).unwrap(), "me@host @ @x@");
        assert_eq!(substitute("@NOPE@", &[]).unwrap_err(), "no value for @NOPE@");
    }

    #[test]
    fn debian_paths() {
        let d = Platform::Debian;
        assert_eq!(
            active_lines(&file(&d, "websocket.load")),
            ["LoadModule websocket_module /usr/lib/apache2/modules/mod_websocket.so"]
        );
        let draft76 = file(&d, "websocket_draft76.load");
        assert!(draft76.starts_with("# Depends: websocket\n"), "{draft76}");
        assert_eq!(
            active_lines(&draft76),
            ["LoadModule websocket_draft76_module /usr/lib/apache2/modules/mod_websocket_draft76.so"]
        );
        let conf = file(&d, "websocket.conf");
        assert!(
            active_lines(&conf).is_empty(),
            "websocket.conf must be comments only:\n{conf}"
        );
        // The example plugins where the examples package puts them.
        assert!(conf.contains("/usr/lib/apache2/websocket-plugins/mod_websocket_echo.so echo_init"));
        assert!(!conf.contains("/usr/lib/apache2/modules/mod_websocket_echo.so"));
        assert!(conf.contains("#   <IfModule websocket_module>"));
        assert!(conf.contains("MaxMessageSize 33554432"));
        assert!(conf.contains("WebSocketOriginCheck Same"));
    }

    #[test]
    fn debian_examples_conf() {
        let text = file(&Platform::Debian, "websocket-examples.conf");
        let lines = active_lines(&text);
        for want in [
            "<IfModule websocket_module>",
            "<Location /echo>",
            "SetHandler websocket-handler",
            "WebSocketHandler \"/usr/lib/apache2/websocket-plugins/mod_websocket_echo.so\" echo_init",
            "<Location /dumb-increment>",
            "WebSocketHandler \"/usr/lib/apache2/websocket-plugins/mod_websocket_dumb_increment.so\" \
             dumb_increment_init",
            "Alias /websocket-examples \"/usr/share/libapache2-mod-websocket-examples/htdocs\"",
            "<Directory \"/usr/share/libapache2-mod-websocket-examples/htdocs\">",
            "Require all granted",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        // Every opened section is closed.
        for section in ["IfModule", "Location", "Directory"] {
            let open = lines
                .iter()
                .filter(|l| l.starts_with(&format!("<{section} ")))
                .count();
            let close = lines.iter().filter(|l| **l == format!("</{section}>")).count();
            assert_eq!(open, close, "{section} in\n{text}");
        }
    }

    #[test]
    fn homebrew_paths_follow_the_prefix() {
        for prefix in ["/opt/homebrew", "/usr/local"] {
            let p = Platform::Homebrew {
                prefix: prefix.into(),
            };
            assert_eq!(
                active_lines(&file(&p, "websocket.load")),
                [format!(
                    "LoadModule websocket_module {prefix}/lib/httpd/modules/mod_websocket.so"
                )]
            );
            assert!(file(&p, "websocket.conf").contains(&format!(
                "{prefix}/lib/httpd/modules/mod_websocket_echo.so echo_init"
            )));
            assert_eq!(
                active_lines(&file(&p, "websocket_draft76.load")),
                [format!(
                    "LoadModule websocket_draft76_module {prefix}/lib/httpd/modules/mod_websocket_draft76.so"
                )]
            );
        }
    }

    #[test]
    fn macos_system_paths() {
        let m = Platform::MacSystem;
        assert_eq!(
            active_lines(&file(&m, "websocket.load")),
            ["LoadModule websocket_module /usr/local/libexec/apache2/mod_websocket.so"]
        );
        assert!(file(&m, "websocket.conf").contains("/usr/local/libexec/apache2/mod_websocket_echo.so"));
    }

    #[test]
    fn windows_snippet_uses_srvroot() {
        let w = Platform::Windows;
        let text = file(&w, "httpd-websocket.conf");
        assert_eq!(
            active_lines(&text),
            ["LoadModule websocket_module \"${SRVROOT}/modules/mod_websocket.so\""]
        );
        assert!(text.contains(
            "#LoadModule websocket_draft76_module \"${SRVROOT}/modules/mod_websocket_draft76.so\""
        ));
        assert!(text.contains("Include conf/extra/httpd-websocket.conf"));
        // The directive reference from websocket.conf is part of the snippet.
        assert!(text.contains("${SRVROOT}/modules/mod_websocket_echo.so echo_init"));
        assert!(text.contains("MaxMessageSize 33554432"));
        assert!(!text.contains('@'), "{text}");
        let examples = file(&w, "httpd-websocket-examples.conf");
        assert!(examples.contains("WebSocketHandler \"${SRVROOT}/modules/mod_websocket_echo.so\" echo_init"));
        assert!(examples.contains("Alias /websocket-examples \"${SRVROOT}/htdocs/websocket-examples\""));
    }

    #[test]
    fn emit_all_writes_every_platform() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path();
        emit_all(tmp).unwrap();
        for (dir, name) in [
            ("debian", "websocket.load"),
            ("debian", "websocket-examples.conf"),
            ("homebrew", "websocket.load"),
            ("macos-system", "websocket_draft76.load"),
            ("windows", "httpd-websocket.conf"),
            ("windows", "httpd-websocket-examples.conf"),
        ] {
            assert!(tmp.join(dir).join(name).is_file(), "{dir}/{name}");
        }
    }
}

/// Discovery (crates/apache-layout) on a synthetic tree of each platform the
/// xtask packages for, and where the packaging then puts the modules.
#[cfg(test)]
mod discovery_tests {
    use super::Platform;
    use apache_layout::testutil::{
        apr_headers, apu_headers, debian_tree, httpd_headers, mac_system_tree, touch,
    };
    use apache_layout::{Flavor, Probe, TargetOs};

    #[test]
    fn debian() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        debian_tree(r);
        let layout = Probe::with_root(r).discover(TargetOs::Linux).unwrap();
        assert_eq!(layout.flavor, Flavor::Linux);
        assert_eq!(layout.mmn.as_deref(), Some("20120211"));
        assert_eq!(layout.modules_dir, r.join(&Platform::Debian.modules_dir()[1..]));
    }

    #[test]
    fn homebrew_on_both_prefixes() {
        for prefix in ["opt/homebrew", "usr/local"] {
            let tmp = tempfile::tempdir().unwrap();
            let r = tmp.path();
            let opt = r.join(prefix).join("opt");
            httpd_headers(&opt.join("httpd/include/httpd"));
            apr_headers(&opt.join("apr/include/apr-1"));
            apu_headers(&opt.join("apr-util/include/apr-1"));
            let layout = Probe::with_root(r).discover(TargetOs::MacOs).unwrap();
            assert_eq!(layout.flavor, Flavor::Homebrew, "{prefix}");
            let platform = Platform::Homebrew {
                prefix: std::path::PathBuf::from("/").join(prefix),
            };
            assert_eq!(
                layout.modules_dir,
                r.join(&platform.modules_dir()[1..]),
                "{prefix}"
            );
        }
    }

    #[test]
    fn macos_system_apache() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        mac_system_tree(r, "sdk/MacOSX.sdk");
        let layout = Probe::with_root(r)
            .path(r.join("bin"))
            .discover(TargetOs::MacOs)
            .unwrap();
        assert_eq!(layout.flavor, Flavor::MacSystem);
        // Apple's modules live on the read-only system volume; ours go beside them.
        assert_eq!(layout.modules_dir, r.join("usr/libexec/apache2"));
        assert_eq!(Platform::MacSystem.modules_dir(), "/usr/local/libexec/apache2");
    }

    #[test]
    fn apache_lounge() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("C/Apache24");
        httpd_headers(&root.join("include"));
        apr_headers(&root.join("include"));
        apu_headers(&root.join("include"));
        for lib in ["libhttpd.lib", "libapr-1.lib", "libaprutil-1.lib"] {
            touch(&root.join("lib").join(lib), "");
        }
        let layout = Probe::with_root(tmp.path()).discover(TargetOs::Windows).unwrap();
        assert_eq!(layout.flavor, Flavor::ApacheLounge);
        assert_eq!(layout.import_libs, ["libhttpd", "libapr-1", "libaprutil-1"]);
        assert_eq!(layout.modules_dir, root.join("modules"));
        assert_eq!(Platform::Windows.modules_dir(), "${SRVROOT}/modules");
    }

    #[test]
    fn nothing_installed_names_what_to_install() {
        let tmp = tempfile::tempdir().unwrap();
        for (os, hint) in [
            (TargetOs::Linux, "apache2-dev"),
            (TargetOs::MacOs, "brew install httpd"),
            (TargetOs::Windows, "Apache24"),
        ] {
            let err = Probe::with_root(tmp.path()).discover(os).unwrap_err().to_string();
            assert!(err.contains(hint), "{os:?}: {err}");
        }
    }
}
