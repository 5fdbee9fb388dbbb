//! `cargo xtask bench --baseline REV`: another revision of this repository,
//! built into a stage of its own so that it can run beside the working
//! tree's in the same benchmark.
//!
//! The revision's files come from `git archive` (no worktree is registered
//! in the repository, and the working tree is not touched) into
//! `target/bench/baseline-<commit>/src/`; its own `cargo xtask build
//! --release` then builds and stages it with
//! `target/bench/baseline-<commit>/target/` as its target directory, so
//! that its artifacts never replace ours. Both are kept: a second run
//! against the same commit only rebuilds what cargo finds changed.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::stage::Stage;
use crate::util::{cargo, root, run, target_dir};

/// A built baseline.
pub struct Baseline {
    /// What the user asked for (`HEAD~1`, a branch, a hash).
    pub rev: String,
    /// The full commit hash it names.
    pub commit: String,
    pub stage: Stage,
}

impl Baseline {
    /// The commit's first 12 hex digits, for labels and directory names.
    pub fn short(&self) -> &str {
        short(&self.commit)
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Resolves `rev`, extracts it and builds its stage.
pub fn prepare(rev: &str) -> Result<Baseline, String> {
    let commit = resolve(rev)?;
    let dir = target_dir()
        .join("bench")
        .join(format!("baseline-{}", short(&commit)));
    let src = dir.join("src");
    extract(&commit, &src)?;
    let target = dir.join("target");
    eprintln!(
        "xtask: building the baseline {rev} ({}) in {}",
        short(&commit),
        src.display()
    );
    run(cargo()
        .current_dir(&src)
        .args(["xtask", "build", "--release"])
        .env("CARGO_TARGET_DIR", &target)
        // Ours, not the baseline's, in case the caller set one.
        .env_remove("WEBSOCKET_STAGE_DIR"))
    .map_err(|e| format!("the baseline {rev} does not build: {e}"))?;
    let stage = Stage {
        dir: target.join("apache"),
    };
    if !stage.module("mod_websocket.so").is_file() {
        return Err(format!(
            "the baseline {rev} built, but staged no mod_websocket.so in {}",
            stage.modules().display()
        ));
    }
    Ok(Baseline {
        rev: rev.to_owned(),
        commit,
        stage,
    })
}

/// The commit `rev` names.
fn resolve(rev: &str) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || commit.is_empty() {
        return Err(format!("--baseline {rev}: not a commit in this repository"));
    }
    Ok(commit)
}

/// The name of the file in `src` that says which commit it holds.
const MARKER: &str = ".xtask-baseline-commit";

/// `git archive <commit>` unpacked into `src`, unless it is there already.
fn extract(commit: &str, src: &std::path::Path) -> Result<(), String> {
    let marker = src.join(MARKER);
    if fs::read_to_string(&marker).is_ok_and(|m| m.trim() == commit) {
        return Ok(());
    }
    if src.exists() {
        fs::remove_dir_all(src).map_err(|e| format!("cannot clear {}: {e}", src.display()))?;
    }
    fs::create_dir_all(src).map_err(|e| format!("cannot create {}: {e}", src.display()))?;
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git archive: {e}"))?;
    let tar_in = archive.stdout.take().expect("stdout is piped");
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(src)
        .stdin(tar_in)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let git = archive.wait().map_err(|e| format!("git archive: {e}"))?;
    if !git.success() || !tar.success() {
        return Err(format!(
            "cannot extract {commit} into {} (git archive: {git}, tar: {tar})",
            src.display()
        ));
    }
    fs::write(&marker, format!("{commit}\n")).map_err(|e| format!("cannot write {}: {e}", marker.display()))
}

/// Where [`prepare`] puts a commit's tree, for the JSON.
pub fn source_dir(b: &Baseline) -> PathBuf {
    target_dir()
        .join("bench")
        .join(format!("baseline-{}", b.short()))
        .join("src")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_resolve_or_are_refused() {
        if Command::new("git").arg("--version").output().is_err() || !root().join(".git").exists() {
            eprintln!("no git checkout here; skipped");
            return;
        }
        let head = resolve("HEAD").unwrap();
        assert_eq!(head.len(), 40, "{head}");
        assert!(head.chars().all(|c| c.is_ascii_hexdigit()), "{head}");
        assert_eq!(resolve(&head).unwrap(), head);
        assert_eq!(short(&head).len(), 12);
        let err = resolve("no-such-revision-anywhere").unwrap_err();
        assert!(err.contains("not a commit"), "{err}");
    }
}
