//! `cargo xtask install --homebrew [--prefix P] | --system --sign IDENTITY`:
//! copies the modules and plugins of a release build into an Apache's module
//! directory on macOS and adds (or updates) their `LoadModule` lines in its
//! httpd.conf. Running it again changes nothing unless a path changed.
//!
//! - Homebrew: the httpd found by apache-layout under `--prefix`,
//!   `$HOMEBREW_PREFIX`, `/opt/homebrew` or `/usr/local`; modules go to its
//!   `lib/httpd/modules`, lines to its `etc/httpd/httpd.conf`.
//! - The system Apache (macOS 12 and later): its own modules are in
//!   `/usr/libexec/apache2`, on the sealed read-only system volume, so ours go
//!   to `/usr/local/libexec/apache2`. It loads a third-party module only if the
//!   module is signed with a real identity and the `LoadModule` line names
//!   that identity's certificate: `LoadModule name path "Authority"`, the
//!   Authority being the first `Authority=` line of `codesign -dv`. With
//!   `--sign "Developer ID Application: Name (TEAMID)"` the xtask signs each
//!   file with `codesign` and writes that string.
//!
//! `--prefix` also lets the tests point at a synthetic tree (for `--system`
//! it stands in for `/`). When httpd.conf is not writable, the build and the
//! signing (which needs the user's keychain) run as the user and only the
//! copy-and-edit step runs again under `sudo`, as this same program with
//! `--no-build --authority <what codesign reported>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use apache_layout::Probe;

use crate::stage::{build, stage_dir, Stage};
use crate::util::{check_args, flag, is_root, option};

/// What gets installed: (file in the stage's modules/, LoadModule name if
/// it is an Apache module).
const FILES: &[(&str, Option<&str>)] = &[
    ("mod_websocket.so", Some("websocket_module")),
    ("mod_websocket_draft76.so", Some("websocket_draft76_module")),
    ("mod_websocket_echo.so", None),
    ("mod_websocket_dumb_increment.so", None),
];

/// Where an install goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub modules_dir: PathBuf,
    pub httpd_conf: PathBuf,
}

/// What an install changed in httpd.conf, per module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Unchanged,
}

pub fn cmd_install(args: &[String]) -> Result<(), String> {
    check_args(
        args,
        &["--homebrew", "--system", "--draft76", "--no-build"],
        &["--prefix", "--sign", "--authority"],
    )?;
    let prefix = option(args, "--prefix")?.map(PathBuf::from);
    let sign = option(args, "--sign")?;
    let given_authority = option(args, "--authority")?;
    let draft76 = flag(args, "--draft76");
    let (target, system) = match (flag(args, "--homebrew"), flag(args, "--system")) {
        (true, false) => (homebrew_target(prefix.as_deref())?, false),
        (false, true) => (system_target(prefix.as_deref())?, true),
        _ => return Err("install needs exactly one of --homebrew and --system".into()),
    };
    if sign.is_some() && given_authority.is_some() {
        return Err("--sign and --authority exclude each other".into());
    }
    if system && sign.is_none() && given_authority.is_none() {
        return Err(SYSTEM_NEEDS_SIGNING.into());
    }
    let stage = if flag(args, "--no-build") {
        Stage { dir: stage_dir() }
    } else {
        build(true)?
    };
    let authority = match (sign, given_authority) {
        // Signing uses the user's keychain, so it happens here, before any sudo.
        (Some(identity), _) => Some(sign_stage(&stage, identity)?),
        (None, Some(a)) => Some(a.to_owned()),
        (None, None) => None,
    };
    if !writable(&target.httpd_conf) && !is_root() {
        return rerun_with_sudo(args, prefix.as_deref(), authority.as_deref(), system, draft76);
    }
    let changes = install(&stage.modules(), &target, authority.as_deref(), draft76)?;
    for (module, change) in &changes {
        eprintln!(
            "xtask: {}: LoadModule {module}: {change:?}",
            target.httpd_conf.display()
        );
    }
    eprintln!(
        "xtask: installed into {}\n\
         Next: `apachectl configtest`, then restart Apache ({}). To serve the examples, add e.g.\n\
         <Location /echo>\n    SetHandler websocket-handler\n    WebSocketHandler {}/mod_websocket_echo.so echo_init\n</Location>",
        target.modules_dir.display(),
        if system { "sudo apachectl restart" } else { "brew services restart httpd" },
        target.modules_dir.display(),
    );
    Ok(())
}

fn writable(path: &Path) -> bool {
    fs::OpenOptions::new().append(true).open(path).is_ok()
}

/// The copy-and-edit step again, as root, by this same program (no cargo
/// or keychain needed under sudo): built and signed already.
fn rerun_with_sudo(
    args: &[String],
    prefix: Option<&Path>,
    authority: Option<&str>,
    system: bool,
    draft76: bool,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = Command::new("sudo");
    cmd.arg(exe)
        .arg("install")
        .arg(if system { "--system" } else { "--homebrew" })
        .arg("--no-build");
    if let Some(p) = prefix {
        cmd.arg("--prefix").arg(p);
    }
    if let Some(a) = authority {
        cmd.args(["--authority", a]);
    }
    if draft76 {
        cmd.arg("--draft76");
    }
    eprintln!(
        "xtask: the Apache configuration is not writable by this user; running the install step with sudo \
         (was: {})",
        args.join(" ")
    );
    crate::util::run(&mut cmd)
}

const SYSTEM_NEEDS_SIGNING: &str = "\
the macOS system Apache (12 Monterey and later) loads a third-party module only if it is
code-signed with a real identity (not ad hoc) and its LoadModule line names the certificate:
    LoadModule websocket_module /usr/local/libexec/apache2/mod_websocket.so \"Developer ID Application: Name (TEAMID)\"
Give the identity to sign with (see `security find-identity -v -p codesigning`):
    cargo xtask install --system --sign \"Developer ID Application: Name (TEAMID)\"
(or, for modules you signed yourself, --authority with that Authority string),
or use Homebrew's httpd, which needs no signature: cargo xtask install --homebrew";

/// Homebrew's httpd via apache-layout; with a prefix, only that prefix.
pub fn homebrew_target(prefix: Option<&Path>) -> Result<Target, String> {
    let mut probe = Probe::system();
    if let Some(p) = prefix {
        probe = probe.var("HOMEBREW_PREFIX", p);
    }
    let layout = probe.homebrew().map_err(|e| e.to_string())?;
    if let Some(p) = prefix {
        if !layout.modules_dir.starts_with(p) {
            return Err(format!(
                "no Homebrew httpd under {}; found the one at {}",
                p.display(),
                layout.modules_dir.display()
            ));
        }
    }
    let httpd_conf = layout.conf_dir.join("httpd.conf");
    if !httpd_conf.is_file() {
        return Err(format!("Homebrew's httpd has no {}", httpd_conf.display()));
    }
    Ok(Target {
        modules_dir: layout.modules_dir,
        httpd_conf,
    })
}

/// The system Apache: `/etc/apache2/httpd.conf`, modules to
/// `/usr/local/libexec/apache2`, both under `root` if given.
pub fn system_target(root: Option<&Path>) -> Result<Target, String> {
    if root.is_none() && !cfg!(target_os = "macos") {
        return Err("--system installs into macOS's own Apache; this is not macOS".into());
    }
    let root = root.unwrap_or(Path::new("/"));
    let httpd_conf = root.join("etc/apache2/httpd.conf");
    if !httpd_conf.is_file() {
        return Err(format!(
            "no system Apache configuration at {}",
            httpd_conf.display()
        ));
    }
    Ok(Target {
        modules_dir: root.join("usr/local/libexec/apache2"),
        httpd_conf,
    })
}

/// Signs the staged files with `identity`; returns the Authority to name
/// in LoadModule lines.
fn sign_stage(stage: &Stage, identity: &str) -> Result<String, String> {
    let mut authority = None;
    for (name, _) in FILES {
        let file = stage.module(name);
        crate::util::run(
            Command::new("codesign")
                .args(["--force", "--timestamp", "--sign", identity])
                .arg(&file),
        )?;
        let out = Command::new("codesign")
            .args(["-d", "--verbose=4"])
            .arg(&file)
            .output()
            .map_err(|e| format!("cannot run codesign: {e}"))?;
        // codesign -d writes its report to stderr.
        let report = String::from_utf8_lossy(&out.stderr);
        let found = parse_authority(&report).ok_or_else(|| {
            format!(
                "codesign reports no Authority for {} (ad hoc signature?)",
                file.display()
            )
        })?;
        authority.get_or_insert(found);
    }
    authority.ok_or_else(|| "nothing to sign".into())
}

/// The first (leaf certificate) `Authority=` line of `codesign -dv --verbose=4`.
pub fn parse_authority(report: &str) -> Option<String> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Authority="))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
}

/// Copies the modules from `modules` (a stage's modules/) into the target
/// and sets the `LoadModule` lines: mod_websocket always, the legacy module
/// only with `draft76`, and any line that exists already is kept up to date.
pub fn install(
    modules: &Path,
    target: &Target,
    authority: Option<&str>,
    draft76: bool,
) -> Result<Vec<(&'static str, Change)>, String> {
    fs::create_dir_all(&target.modules_dir)
        .map_err(|e| format!("cannot create {}: {e}", target.modules_dir.display()))?;
    for (name, _) in FILES {
        let from = modules.join(name);
        let to = target.modules_dir.join(name);
        // Through a temporary name: a running httpd may have the old file mapped.
        let tmp = to.with_extension("so.new");
        fs::copy(&from, &tmp)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), tmp.display()))?;
        fs::rename(&tmp, &to)
            .map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), to.display()))?;
    }
    let original = fs::read_to_string(&target.httpd_conf)
        .map_err(|e| format!("cannot read {}: {e}", target.httpd_conf.display()))?;
    let mut text = original.clone();
    let mut changes = Vec::new();
    for (file, module) in FILES {
        let Some(module) = module else { continue };
        let wanted = *module == "websocket_module" || draft76;
        if !wanted && find_load_module(&text, module).is_empty() {
            continue;
        }
        let line = load_module_line(module, &target.modules_dir.join(file), authority);
        let (new_text, change) = set_load_module(&text, module, &line);
        text = new_text;
        changes.push((*module, change));
    }
    if text != original {
        let backup = target.httpd_conf.with_extension("conf.before-mod_websocket");
        if !backup.exists() {
            fs::write(&backup, &original).map_err(|e| format!("cannot write {}: {e}", backup.display()))?;
        }
        let tmp = target.httpd_conf.with_extension("conf.new");
        fs::write(&tmp, &text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        fs::rename(&tmp, &target.httpd_conf).map_err(|e| e.to_string())?;
    }
    Ok(changes)
}

/// `LoadModule name path ["Authority"]`, the path quoted when it has spaces.
pub fn load_module_line(module: &str, path: &Path, authority: Option<&str>) -> String {
    let path = path.to_string_lossy();
    let mut line = if path.contains(char::is_whitespace) {
        format!("LoadModule {module} \"{path}\"")
    } else {
        format!("LoadModule {module} {path}")
    };
    if let Some(a) = authority {
        line.push_str(&format!(" \"{a}\""));
    }
    line
}

/// Indexes of the active (uncommented) `LoadModule <module>` lines.
fn find_load_module(text: &str, module: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let mut words = l.split_whitespace();
            words.next().is_some_and(|w| w.eq_ignore_ascii_case("LoadModule")) && words.next() == Some(module)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Makes `line` the one active `LoadModule <module>` line of `text`: the
/// first existing one is replaced, later duplicates dropped; without one,
/// the line goes after the last LoadModule line (or at the end). Commented
/// lines are left alone.
pub fn set_load_module(text: &str, module: &str, line: &str) -> (String, Change) {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let existing = find_load_module(text, module);
    let change = if let Some((&first, rest)) = existing.split_first() {
        let indent: String = lines[first].chars().take_while(|c| c.is_whitespace()).collect();
        let new = format!("{indent}{line}");
        let mut changed = !rest.is_empty();
        if lines[first] != new {
            lines[first] = new;
            changed = true;
        }
        for &i in rest.iter().rev() {
            lines.remove(i);
        }
        if changed {
            Change::Updated
        } else {
            Change::Unchanged
        }
    } else {
        let last_load = lines.iter().rposition(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("LoadModule"))
        });
        let insert = [
            format!("# {module}: added by cargo xtask install (mod_websocket)"),
            line.to_owned(),
        ];
        match last_load {
            Some(i) => {
                lines.splice(i + 1..i + 1, insert);
            }
            None => lines.extend(insert),
        }
        Change::Added
    };
    let mut out = lines.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        out.push('\n');
    }
    (out, change)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTPD_CONF: &str = "ServerRoot \"/opt/homebrew/opt/httpd\"\n\
        Listen 8080\n\
        LoadModule mpm_prefork_module lib/httpd/modules/mod_mpm_prefork.so\n\
        #LoadModule websocket_module old/commented/mod_websocket.so\n\
        LoadModule authz_core_module lib/httpd/modules/mod_authz_core.so\n\
        \n\
        <IfModule unixd_module>\n\
        User _www\n\
        </IfModule>\n";

    #[test]
    fn adds_after_the_last_load_module_line() {
        let (text, change) = set_load_module(
            HTTPD_CONF,
            "websocket_module",
            "LoadModule websocket_module /m/a.so",
        );
        assert_eq!(change, Change::Added);
        let lines: Vec<&str> = text.lines().collect();
        let i = lines
            .iter()
            .position(|l| *l == "LoadModule websocket_module /m/a.so")
            .unwrap();
        assert_eq!(
            lines[i - 2],
            "LoadModule authz_core_module lib/httpd/modules/mod_authz_core.so"
        );
        assert!(lines[i - 1].starts_with("# websocket_module: added by cargo xtask install"));
        // The commented line is untouched.
        assert!(text.contains("#LoadModule websocket_module old/commented/mod_websocket.so\n"));
        assert!(text.ends_with("</IfModule>\n"));
    }

    #[test]
    fn idempotent_and_updates_paths() {
        let line = "LoadModule websocket_module /m/a.so";
        let (once, _) = set_load_module(HTTPD_CONF, "websocket_module", line);
        let (twice, change) = set_load_module(&once, "websocket_module", line);
        assert_eq!(change, Change::Unchanged);
        assert_eq!(once, twice);
        let moved = "LoadModule websocket_module /elsewhere/a.so \"Developer ID Application: X (T)\"";
        let (updated, change) = set_load_module(&twice, "websocket_module", moved);
        assert_eq!(change, Change::Updated);
        assert_eq!(find_load_module(&updated, "websocket_module").len(), 1);
        assert!(updated.contains(&format!("\n{moved}\n")));
        assert!(!updated.contains("/m/a.so"));
    }

    #[test]
    fn duplicates_collapse_and_indent_is_kept() {
        let conf = "<IfDefine X>\n  LoadModule websocket_module /a.so\n</IfDefine>\nloadmodule websocket_module /b.so\n";
        let (text, change) = set_load_module(conf, "websocket_module", "LoadModule websocket_module /c.so");
        assert_eq!(change, Change::Updated);
        assert_eq!(
            text,
            "<IfDefine X>\n  LoadModule websocket_module /c.so\n</IfDefine>\n"
        );
    }

    #[test]
    fn empty_conf_gets_the_line() {
        let (text, change) = set_load_module("", "websocket_module", "LoadModule websocket_module /a.so");
        assert_eq!(change, Change::Added);
        assert!(text.ends_with("LoadModule websocket_module /a.so\n"), "{text:?}");
    }

    #[test]
    fn load_module_lines() {
        assert_eq!(
            load_module_line(
                "websocket_module",
                Path::new("/usr/local/libexec/apache2/mod_websocket.so"),
                None
            ),
            "LoadModule websocket_module /usr/local/libexec/apache2/mod_websocket.so"
        );
        assert_eq!(
            load_module_line(
                "websocket_module",
                Path::new("/Users/me/My Apache/mod_websocket.so"),
                Some("Developer ID Application: Jane Doe (AB12CD34EF)")
            ),
            "LoadModule websocket_module \"/Users/me/My Apache/mod_websocket.so\" \
             \"Developer ID Application: Jane Doe (AB12CD34EF)\""
        );
    }

    #[test]
    fn authority_is_the_leaf_certificate() {
        let report = "Executable=/x/mod_websocket.so\nIdentifier=mod_websocket\n\
            Authority=Developer ID Application: Jane Doe (AB12CD34EF)\n\
            Authority=Developer ID Certification Authority\nAuthority=Apple Root CA\nTeamIdentifier=AB12CD34EF\n";
        assert_eq!(
            parse_authority(report).as_deref(),
            Some("Developer ID Application: Jane Doe (AB12CD34EF)")
        );
        assert_eq!(parse_authority("Signature=adhoc\n"), None);
    }

    fn touch(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A Homebrew prefix as apache-layout finds it (headers of the httpd,
    /// apr and apr-util kegs), with an httpd.conf, and a stage.
    fn synthetic(dir: &Path) -> (PathBuf, PathBuf) {
        let prefix = dir.join("homebrew");
        touch(&prefix.join("opt/httpd/include/httpd/httpd.h"), "");
        touch(
            &prefix.join("opt/httpd/include/httpd/ap_mmn.h"),
            "#define MODULE_MAGIC_NUMBER_MAJOR 20120211\n",
        );
        touch(&prefix.join("opt/apr/include/apr-1/apr.h"), "");
        touch(&prefix.join("opt/apr-util/include/apr-1/apu.h"), "");
        touch(&prefix.join("etc/httpd/httpd.conf"), HTTPD_CONF);
        let modules = dir.join("stage/modules");
        for (name, _) in FILES {
            touch(&modules.join(name), name);
        }
        (prefix, modules)
    }

    #[test]
    fn homebrew_install_into_a_synthetic_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let (prefix, modules) = synthetic(tmp.path());
        let target = homebrew_target(Some(&prefix)).unwrap();
        assert_eq!(target.modules_dir, prefix.join("lib/httpd/modules"));
        assert_eq!(target.httpd_conf, prefix.join("etc/httpd/httpd.conf"));

        let changes = install(&modules, &target, None, false).unwrap();
        assert_eq!(changes, [("websocket_module", Change::Added)]);
        for (name, _) in FILES {
            assert_eq!(fs::read_to_string(target.modules_dir.join(name)).unwrap(), *name);
        }
        let conf = fs::read_to_string(&target.httpd_conf).unwrap();
        let line = format!(
            "LoadModule websocket_module {}",
            prefix.join("lib/httpd/modules/mod_websocket.so").display()
        );
        assert_eq!(conf.matches(&line).count(), 1, "{conf}");
        assert!(!conf.contains("LoadModule websocket_draft76_module"));
        let backup = prefix.join("etc/httpd/httpd.conf.before-mod_websocket");
        assert_eq!(fs::read_to_string(&backup).unwrap(), HTTPD_CONF);

        // Again: nothing changes, nothing is duplicated.
        let changes = install(&modules, &target, None, false).unwrap();
        assert_eq!(changes, [("websocket_module", Change::Unchanged)]);
        assert_eq!(fs::read_to_string(&target.httpd_conf).unwrap(), conf);

        // With the legacy module: its line is added, the other one stays.
        let changes = install(&modules, &target, None, true).unwrap();
        assert_eq!(
            changes,
            [
                ("websocket_module", Change::Unchanged),
                ("websocket_draft76_module", Change::Added)
            ]
        );
        // And then kept up to date even without --draft76.
        let changes = install(&modules, &target, None, false).unwrap();
        assert_eq!(changes[1], ("websocket_draft76_module", Change::Unchanged));
        // The first backup is kept.
        assert_eq!(fs::read_to_string(&backup).unwrap(), HTTPD_CONF);
    }

    #[test]
    fn homebrew_prefix_without_httpd_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = homebrew_target(Some(&tmp.path().join("nothing"))).unwrap_err();
        assert!(err.contains("brew install httpd"), "{err}");
    }

    #[test]
    fn system_install_writes_the_authority() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, modules) = synthetic(tmp.path());
        let root = tmp.path().join("mac");
        touch(
            &root.join("etc/apache2/httpd.conf"),
            "LoadModule mpm_prefork_module libexec/apache2/mod_mpm_prefork.so\n",
        );
        let target = system_target(Some(&root)).unwrap();
        assert_eq!(target.modules_dir, root.join("usr/local/libexec/apache2"));
        let authority = "Developer ID Application: Jane Doe (AB12CD34EF)";
        install(&modules, &target, Some(authority), false).unwrap();
        let conf = fs::read_to_string(&target.httpd_conf).unwrap();
        assert!(conf.contains(&format!(
            "LoadModule websocket_module {} \"{authority}\"\n",
            root.join("usr/local/libexec/apache2/mod_websocket.so").display()
        )));
        assert!(system_target(Some(&tmp.path().join("none"))).is_err());
    }
}
