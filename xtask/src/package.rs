//! `cargo xtask package deb|msi` and `cargo xtask install --homebrew|--system`:
//! installable artifacts made from the `target/apache/` stage.
//!
//! - [`deb`]: `libapache2-mod-websocket` and `libapache2-mod-websocket-examples`
//!   with cargo-deb, and the install test that `cargo xtask test` runs.
//! - [`msi`]: the WiX installer in `windows/` (cargo-wix on Windows; on Linux a
//!   layout check built with msitools' `wixl`).
//! - [`macos`]: copying into Homebrew's or the system Apache's module dir and
//!   editing `LoadModule` lines.
//! - [`conf`]: the configuration snippets with each platform's paths.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::stage::Stage;
use crate::util::{check_args, describe};

pub mod conf;
pub mod deb;
pub mod macos;
pub mod msi;
mod wsclient;

pub fn cmd_package(args: &[String]) -> Result<(), String> {
    let Some((kind, rest)) = args.split_first() else {
        return Err("package needs a kind: deb or msi".into());
    };
    match kind.as_str() {
        "deb" => deb::cmd_package_deb(rest),
        "msi" => msi::cmd_package_msi(rest),
        other => Err(format!("unknown package kind '{other}' (deb or msi)")),
    }
}

pub fn cmd_install(args: &[String]) -> Result<(), String> {
    macos::cmd_install(args)
}

/// What `cargo xtask test` runs after the other tests: the Debian install
/// test on the system Apache, then the MSI layout check.
pub fn install_test(stage: &Stage) -> Result<(), String> {
    deb::install_test(stage)?;
    msi::layout_check(stage).map(|_| ())
}

/// `cargo xtask package deb|msi` takes no options yet.
fn no_options(args: &[String]) -> Result<(), String> {
    check_args(args, &[], &[])
}

/// Runs a command, waiting at most `limit`; returns its exit status (killed
/// and an error past the limit). Output is inherited.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<std::process::ExitStatus, String> {
    eprintln!("+ {}", describe(cmd));
    let mut child = cmd
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not finish within {}s",
                describe(cmd),
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`run_bounded`] where anything but success is an error.
fn run_ok(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let status = run_bounded(cmd, limit)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

/// Runs a command for its output (stdout and stderr together), at most `limit`.
fn output_bounded(cmd: &mut Command, limit: Duration) -> Result<(std::process::ExitStatus, String), String> {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not finish within {}s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = out_reader.join().unwrap_or_default();
    text.push_str(&err_reader.join().unwrap_or_default());
    Ok((status, text))
}

/// Whether `program` is on PATH.
fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    /// What `cargo xtask test` runs last, on whatever `target/apache/` holds
    /// (run `cargo xtask build` first): `cargo test -p xtask -- --ignored`.
    /// Installs packages into this machine's Apache: root on Debian only.
    #[test]
    #[ignore = "installs .debs into the system Apache; run by cargo xtask test"]
    fn install_test_on_this_machine() {
        let stage = crate::stage::Stage {
            dir: crate::stage::stage_dir(),
        };
        super::install_test(&stage).unwrap();
    }
}
