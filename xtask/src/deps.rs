//! The system packages the build and the tests need, installed when we are
//! root on Debian/Ubuntu, or named in the exact command to run otherwise.

use std::path::Path;
use std::process::Command;

use crate::util::{is_root, run};

/// What building the modules needs: Apache's and APR's headers (apxs2) and
/// libclang for bindgen.
pub const BUILD: &[&str] = &["apache2-dev", "libclang-dev", "clang", "pkg-config"];
/// What running them needs.
pub const RUN: &[&str] = &["apache2"];
/// What the tests need beyond that: a C compiler for the C test plugin,
/// python3 for the Autobahn wrapper, a Redis server for the channels'
/// broker and Chromium for the example pages (HTTP checks are in Rust).
pub const TEST: &[&str] = &["gcc", "libc6-dev", "python3", "redis-server", "chromium"];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Makes sure every package in `groups` is installed.
pub fn ensure(groups: &[&[&str]]) -> Result<(), String> {
    if !Path::new("/usr/bin/dpkg-query").exists() {
        // Not Debian: the headers are found by apache-layout, which names
        // what to install if they are missing.
        return Ok(());
    }
    let missing: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.iter().copied())
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        return Err(format!(
            "missing system packages: {list}\nrun: sudo apt-get update && sudo apt-get install -y --no-install-recommends {list}"
        ));
    }
    eprintln!("xtask: installing {list}");
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}
