//! `cargo xtask test`: everything. First the checks that need no server
//! (tidy, rustfmt, clippy), then unit tests, the integration tests (which
//! start a real Apache under each MPM), then the Autobahn|Testsuite against
//! /echo under each MPM.

use std::path::{Path, PathBuf};
use std::process::Command;

use httpd_runner::Mpm;

use crate::stage::build;
use crate::util::{cargo, check_args, flag, is_root, root, run, target_dir};

pub fn cmd_test(args: &[String]) -> Result<(), String> {
    check_args(args, &["--quick"], &[])?;
    let quick = flag(args, "--quick");
    // The cheap checks first, so that an untidy or unformatted tree fails
    // in seconds rather than after the modules are built.
    crate::tidy::cmd_tidy(&[])?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    crate::deps::ensure(&[crate::deps::BUILD, crate::deps::RUN, crate::deps::TEST])?;
    // Every target, benches and tests included; it needs Apache's headers
    // (bindgen), hence after the packages.
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let autobahn = if quick { None } else { Some(autobahn_dir()?) };
    if let Some(dir) = &autobahn {
        install_autobahn(dir)?;
    }
    // Release modules: Autobahn's compression sections and the soak tests
    // measure the code operators run, and the debug build's deflate is
    // too slow for them.
    let stage = build(true)?;
    let promtool = promtool()?;
    run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("WEBSOCKET_STAGE_DIR", &stage.dir)
        .env("PROMTOOL", &promtool)
        .env("WEBSOCKET_REQUIRE_PROMTOOL", "1")
        // Installed by the TEST packages: their tests may not skip here.
        .env("WEBSOCKET_REQUIRE_REDIS", "1")
        .env("WEBSOCKET_REQUIRE_CHROMIUM", "1"))?;
    let Some(autobahn) = autobahn else {
        eprintln!("xtask: --quick: Autobahn, packages and fuzzing skipped");
        return Ok(());
    };
    let mut failures = Vec::new();
    // The full suite over HTTP/2 too, through the relay, beside the event
    // MPM's full run: both are mostly the Python client's CPU, and on two
    // cores they overlap well.
    run(cargo().args(["build", "--release", "-p", "h2-relay"]))?;
    let over_h2 = {
        let stage = stage.clone();
        let autobahn = autobahn.clone();
        std::thread::spawn(move || run_autobahn_h2(&stage, &autobahn))
    };
    for mpm in Mpm::ALL {
        // The full suite (517 cases, compression included, ~6 minutes because
        // the Python client is slow at deflate) under the event MPM; the
        // session engine is the same under the others, whose threading
        // differs, so they run the uncompressed sections 1-10.
        let cases = if mpm == Mpm::Event {
            "*"
        } else {
            UNCOMPRESSED_CASES
        };
        if let Err(e) = run_autobahn(&stage, &autobahn, mpm, cases) {
            eprintln!("xtask: Autobahn under {mpm}: {e}");
            failures.push(format!("{mpm}: {e}"));
        }
    }
    match over_h2.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("xtask: Autobahn over HTTP/2: {e}");
            failures.push(format!("HTTP/2: {e}"));
        }
        Err(_) => failures.push("HTTP/2: the run panicked".into()),
    }
    crate::package::install_test(&stage)?;
    crate::fuzz::run(crate::fuzz::TARGETS, 45)?;
    if failures.is_empty() {
        eprintln!("xtask: all tests passed");
        Ok(())
    } else {
        Err(format!("Autobahn failed: {}", failures.join("; ")))
    }
}

/// Debian's `promtool` (package prometheus), for the metrics test: the one
/// on the PATH, or the binary taken out of the package (downloaded, not
/// installed, so no Prometheus server is set up) under target/tools/.
fn promtool() -> Result<PathBuf, String> {
    if Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(PathBuf::from("promtool"));
    }
    let dir = target_dir().join("tools/prometheus");
    let tool = dir.join("usr/bin/promtool");
    if tool.is_file() {
        return Ok(tool);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    run(Command::new("apt-get")
        .args(["download", "prometheus"])
        .current_dir(&dir))?;
    let deb = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download prometheus left no .deb in {}", dir.display()))?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    if tool.is_file() {
        Ok(tool)
    } else {
        Err(format!(
            "{} is not in Debian's prometheus package",
            tool.display()
        ))
    }
}

/// The shared Autobahn tooling, beside the checkout (`../shared/autobahn`),
/// or where `AUTOBAHN_DIR` says.
fn autobahn_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("AUTOBAHN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/autobahn"));
    if dir.join("run.sh").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "Autobahn tooling not found at {} (set AUTOBAHN_DIR, or use --quick to skip it)",
            dir.display()
        ))
    }
}

fn install_autobahn(dir: &Path) -> Result<(), String> {
    // install.sh is idempotent and cheap when everything is there.
    if is_root() {
        return run(Command::new("bash").arg(dir.join("install.sh")));
    }
    if Command::new("wstest").arg("--help").output().is_ok() {
        return Ok(());
    }
    Err(format!(
        "wstest is not installed; run: sudo bash {}",
        dir.join("install.sh").display()
    ))
}

/// Autobahn sections 1-10 (11 does not exist).
const UNCOMPRESSED_CASES: &str = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*";

fn run_autobahn(stage: &crate::stage::Stage, dir: &Path, mpm: Mpm, cases: &str) -> Result<(), String> {
    let root = target_dir().join(format!("autobahn-server-{mpm}"));
    let server = stage
        .server(&root, mpm)
        .log_level("warn")
        .start()
        .map_err(|e| format!("cannot start Apache: {e}"))?;
    let report = target_dir().join("autobahn").join(mpm.name());
    let status = Command::new("bash")
        .arg(dir.join("run.sh"))
        .arg(server.ws_url("/echo"))
        .arg(&report)
        .arg(cases)
        .env("AB_AGENT", format!("mod_websocket-{mpm}"))
        .status()
        .map_err(|e| format!("cannot run run.sh: {e}"))?;
    let log = server.error_log();
    drop(server);
    judge(status, &report, &log)
}

/// A run.sh run's verdict: its exit status, the summary's verdicts, and
/// no crashed child in the server's error log.
fn judge(status: std::process::ExitStatus, report: &Path, log: &str) -> Result<(), String> {
    if !status.success() {
        return Err(format!(
            "run.sh reported failures ({status}); report in {}",
            report.display()
        ));
    }
    check_summary(&report.join("summary.json"))?;
    if let Some(line) = log
        .lines()
        .find(|l| l.contains("AH00052") || l.contains("Segmentation fault"))
    {
        return Err(format!("a child crashed during the run: {line}"));
    }
    Ok(())
}

/// All 517 cases over HTTP/2: Apache (event MPM) with mod_http2 and
/// `H2WebSockets on`, wstest through `h2-relay`, which carries each of its
/// connections as an RFC 8441 stream. The access log must show the
/// WebSockets as HTTP/2.0, so that a relay that fell back to anything
/// else could not pass.
fn run_autobahn_h2(stage: &crate::stage::Stage, dir: &Path) -> Result<(), String> {
    let install = httpd_runner::Install::discover().map_err(|e| e.to_string())?;
    let root = target_dir().join("autobahn-server-event-h2");
    let server = stage
        .server(&root, Mpm::Event)
        .load_module("http2_module", install.module_path("http2"))
        .extra_config("Protocols h2c http/1.1\nH2WebSockets on\n")
        .log_level("warn")
        .start()
        .map_err(|e| format!("cannot start Apache: {e}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let relay_log = std::fs::File::create(root.join("h2-relay.log")).map_err(|e| e.to_string())?;
    let mut relay = Command::new(target_dir().join("release/h2-relay"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &server.addr().to_string()])
        .stderr(relay_log)
        .spawn()
        .map_err(|e| format!("cannot start h2-relay: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            let _ = relay.kill();
            return Err("h2-relay did not listen".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = target_dir().join("autobahn").join("event-h2");
    let status = Command::new("bash")
        .arg(dir.join("run.sh"))
        .arg(format!("ws://127.0.0.1:{port}/echo"))
        .arg(&report)
        .arg("*")
        .env("AB_AGENT", "mod_websocket-event-h2")
        .status();
    let _ = relay.kill();
    let _ = relay.wait();
    let status = status.map_err(|e| format!("cannot run run.sh: {e}"))?;
    let log = server.error_log();
    let access = std::fs::read_to_string(root.join("logs/access.log")).unwrap_or_default();
    drop(server);
    judge(status, &report, &log)?;
    let over_h2 = access.matches("\"GET /echo HTTP/2.0\" 101").count();
    if over_h2 < 517 {
        return Err(format!(
            "only {over_h2} of the suite's WebSockets were HTTP/2 streams (see {})",
            root.join("logs/access.log").display()
        ));
    }
    Ok(())
}

/// Every case OK (INFORMATIONAL is the suite's "no verdict" for 3 close
/// cases): nothing FAILED, NON-STRICT or UNIMPLEMENTED.
fn check_summary(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("bad {}: {e}", path.display()))?;
    let agent = &json[0];
    let mut problems = Vec::new();
    if let Some(sections) = agent["sections"].as_object() {
        for (section, counts) in sections {
            for (verdict, n) in counts.as_object().into_iter().flatten() {
                let allowed = matches!(verdict.as_str(), "OK" | "INFORMATIONAL");
                if !allowed && n.as_u64().unwrap_or(0) > 0 {
                    problems.push(format!("section {section}: {n} {verdict}"));
                }
            }
        }
    } else {
        problems.push("no sections in summary".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}
