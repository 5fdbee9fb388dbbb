//! Records which commit the modules are built from, so that the startup log
//! line (and `strings mod_websocket.so`) tells an operator which build is
//! loaded after an upgrade.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=WEBSOCKET_BUILD_ID");
    let build = match std::env::var("WEBSOCKET_BUILD_ID") {
        // Packagers building outside a checkout can name their build.
        Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => match git(&["rev-parse", "--short=12", "HEAD"]) {
            Some(commit) => format!("git {commit}"),
            None => "no git commit".to_owned(),
        },
    };
    // A new commit changes HEAD or the branch it names.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = PathBuf::from(dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(name) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let loose = dir.join(&name);
            let watched = if loose.exists() {
                loose
            } else {
                dir.join("packed-refs")
            };
            println!("cargo:rerun-if-changed={}", watched.display());
        }
    }
    println!("cargo:rustc-env=WEBSOCKET_BUILD={build}");
}
