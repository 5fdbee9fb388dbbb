//! Compiling C for the tests with whatever compiler the `cc` crate finds for the target.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn include_dir() -> PathBuf {
    crate_dir().join("include")
}

fn tool(out_dir: &Path) -> cc::Tool {
    cc::Build::new()
        .target(env!("WEBSOCKET_PLUGIN_BUILD_TARGET"))
        .host(env!("WEBSOCKET_PLUGIN_BUILD_HOST"))
        .opt_level(0)
        .debug(false)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .out_dir(out_dir)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .include(include_dir())
        .get_compiler()
}

fn run(mut cmd: Command) {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Compiles `sources` into a program `name` in `dir` and returns its path.
pub fn compile_program(dir: &Path, name: &str, sources: &[PathBuf], extra: &[&str]) -> PathBuf {
    let tool = tool(dir);
    let out = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut cmd = tool.to_command();
    cmd.current_dir(dir).args(sources).args(extra);
    if tool.is_like_msvc() {
        cmd.arg(format!("/Fe{}", out.display()));
    } else {
        cmd.arg("-o").arg(&out);
    }
    run(cmd);
    out
}

/// Compiles `sources` into a shared library `name` in `dir` and returns its path.
pub fn compile_shared(dir: &Path, name: &str, sources: &[PathBuf], extra: &[&str]) -> PathBuf {
    let tool = tool(dir);
    let file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let out = dir.join(file);
    let mut cmd = tool.to_command();
    cmd.current_dir(dir).args(sources);
    if tool.is_like_msvc() {
        cmd.arg("/LD").arg(format!("/Fe{}", out.display())).args(extra);
    } else {
        cmd.args(["-shared", "-fPIC", "-o"]).arg(&out).args(extra);
    }
    run(cmd);
    out
}
