//! `cargo xtask fuzz [--seconds N] [--target NAME]`: the cargo-fuzz targets
//! of websocket-proto (crates/websocket-proto/fuzz), built and run on the
//! stable toolchain, for a bounded time each.
//!
//! cargo-fuzz wants nightly (for `-Zsanitizer=address`) and a binary CI does
//! not have. The coverage instrumentation libFuzzer needs is plain LLVM
//! (`-Cpasses=sancov-module` and `-Cllvm-args=-sanitizer-coverage-*`), which
//! stable rustc passes through, and libfuzzer-sys compiles libFuzzer itself
//! with the system C++ compiler. What stable cannot add is AddressSanitizer;
//! the targets are safe Rust, so it would mostly catch bugs in
//! dependencies, and `cargo +nightly fuzz run <target>` still works where
//! nightly is installed.
//!
//! Everything lives under `target/fuzz/`: the build (`target/fuzz/build`),
//! the corpus each run grows (`target/fuzz/corpus/<target>`, seeded from
//! `crates/websocket-proto/fuzz/corpus/<target>` when a cargo-fuzz corpus
//! is there), and crash artifacts (`target/fuzz/artifacts/<target>`). Any
//! artifact, or a non-zero exit of the fuzzer, fails the command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{cargo, check_args, describe, option, root, target_dir};

/// The targets of crates/websocket-proto/fuzz/Cargo.toml.
pub const TARGETS: &[&str] = &["decoder", "handshake", "legacy_decoder"];

/// Seconds per target when none are given.
const DEFAULT_SECONDS: u64 = 60;

/// libFuzzer's C++ runtime is compiled by libfuzzer-sys's build script.
const PACKAGES: &[&str] = &["g++"];

/// The flags cargo-fuzz uses for libFuzzer's coverage feedback, minus the
/// nightly-only sanitizer, plus the checks a release build would drop.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
    "-Cforce-frame-pointers",
];

pub fn cmd_fuzz(args: &[String]) -> Result<(), String> {
    check_args(args, &[], &["--seconds", "--target"])?;
    let seconds = match option(args, "--seconds")? {
        None => DEFAULT_SECONDS,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("--seconds wants a positive number, not '{s}'"))?,
    };
    let targets: Vec<&str> = match option(args, "--target")? {
        None => TARGETS.to_vec(),
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => {
            return Err(format!(
                "unknown fuzz target '{t}' (targets: {})",
                TARGETS.join(", ")
            ))
        }
    };
    run(&targets, seconds)
}

/// Builds `targets` and runs each for `seconds`; the entry point for
/// `cargo xtask test` too.
pub fn run(targets: &[&str], seconds: u64) -> Result<(), String> {
    crate::deps::ensure(&[PACKAGES])?;
    let dir = target_dir().join("fuzz");
    let triple = host_triple()?;
    let binaries = build(&dir, &triple, targets)?;
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (target, binary) in targets.iter().zip(&binaries) {
        match run_target(&dir, target, binary, seconds) {
            Ok(execs) => report.push(format!("{target}: {execs} executions in {seconds} s")),
            Err(e) => {
                report.push(format!("{target}: FAILED"));
                failures.push(format!("{target}: {e}"));
            }
        }
    }
    for line in &report {
        eprintln!("xtask: fuzz {line}");
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzzing found problems:\n{}", failures.join("\n")))
    }
}

/// `rustc -vV`'s host line. Building for an explicit `--target` keeps the
/// instrumentation flags away from build scripts and proc macros, which
/// would not link without libFuzzer.
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV printed no host triple".to_owned())
}

fn build(dir: &Path, triple: &str, targets: &[&str]) -> Result<Vec<PathBuf>, String> {
    let manifest = root().join("crates/websocket-proto/fuzz/Cargo.toml");
    let build_dir = dir.join("build");
    let mut cmd = cargo();
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--release")
        .arg("--target")
        .arg(triple)
        .arg("--target-dir")
        .arg(&build_dir);
    for t in targets {
        cmd.args(["--bin", t]);
    }
    // Our flags only: an inherited RUSTFLAGS or CARGO_ENCODED_RUSTFLAGS
    // (cargo sets the latter for build scripts) would replace or mix in.
    cmd.env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        // libfuzzer-sys's C++ compile follows its own flags; keep the debug
        // info small.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only");
    crate::util::run(&mut cmd)?;
    Ok(targets
        .iter()
        .map(|t| build_dir.join(triple).join("release").join(t))
        .collect())
}

/// Runs one target for `seconds`; returns how many inputs it executed.
fn run_target(dir: &Path, target: &str, binary: &Path, seconds: u64) -> Result<u64, String> {
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    fs::create_dir_all(&corpus).map_err(|e| format!("create {}: {e}", corpus.display()))?;
    fs::create_dir_all(&artifacts).map_err(|e| format!("create {}: {e}", artifacts.display()))?;
    let before = list(&artifacts);

    let mut cmd = Command::new(binary);
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048")
        // An input that takes this long is a hang worth failing on.
        .arg("-timeout=20")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus);
    // A cargo-fuzz corpus from earlier local runs, read but not written.
    let seeds = root().join("crates/websocket-proto/fuzz/corpus").join(target);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.stdin(Stdio::null());
    eprintln!("+ {}", describe(&cmd));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let execs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse::<u64>().ok());

    let new: Vec<String> = list(&artifacts)
        .into_iter()
        .filter(|a| !before.contains(a))
        .collect();
    if !out.status.success() || !new.is_empty() || execs.is_none() {
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{} exited with {}; new artifacts: [{}] in {}\n--- last lines of its output:\n{}",
            binary.display(),
            out.status,
            new.join(", "),
            artifacts.display(),
            tail.join("\n")
        ));
    }
    Ok(execs.unwrap_or(0))
}

/// File names in a directory (none if it cannot be read).
fn list(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
