//! `cargo xtask <command>`: the one entry point for building, running and
//! testing the modules (rust-analyzer style: plain Rust, no shell scripts).

use std::process::ExitCode;

mod bench;
mod demo;
mod deps;
mod fuzz;
mod package;
mod stage;
mod test;
mod tidy;
mod util;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--release]                 build the modules and plugins and stage them in target/apache/
  demo [--port N] [--mpm event|worker|prefork] [--h2] [--release] [--no-build]
                                    build, then run Apache in the foreground on 127.0.0.1 with
                                    /echo, /dumb-increment and the example pages; SIGINT, SIGTERM or
                                    SIGHUP to the demo stops Apache too (--no-build: use the stage
                                    in WEBSOCKET_STAGE_DIR or target/apache/ as it is; --h2: TLS
                                    with a self-signed certificate, HTTP/2 and H2WebSockets on)
  tidy                              checks on the tree itself: no raw Apache/APR calls outside
                                    crates/httpd and crates/httpd-sys, a `//!` doc atop every Rust
                                    file, no path in README*.md or docs/*.md that does not exist
  test [--quick]                    tidy, `cargo fmt --all --check` and clippy -D warnings first;
                                    then every test: unit, integration against a real Apache under the
                                    event, worker and prefork MPMs, and the Autobahn suite
                                    (--quick: skip Autobahn; the full run ends with the .deb install
                                    test on the system Apache and the MSI layout check)
  bench [--quick] [--seconds N] [--cases LIST] [--servers LIST] [--baseline REV] [--c-module DIR]
                                    release build, then mod_websocket vs Apache's mod_proxy to a
                                    tokio-tungstenite server, that server alone, and mod_echo, on
                                    pinned CPUs; median of 3 runs x N s (default 10; --quick: 1 x 2 s);
                                    table on stdout, JSON in target/bench/results.json
                                    (cases: 16b,4k,1m,1m-text,latency,deflate,deflate-l6,
                                    idle,idle-deflate; servers: ours,baseline,ours_h2,c_module,
                                    c_module_h2,proxy,standalone,mod_echo; the _h2 ones serve
                                    16b,4k,1m over HTTP/2 through h2-relay). --baseline REV:
                                    also build git revision REV into
                                    target/bench/baseline-<commit>/ and run it alternately
                                    with ours (servers default to ours,baseline), then a table of
                                    working tree, baseline and ratio per case; --c-module DIR: the C
                                    module from a checkout or its built .so files
  bench --fanout N [--seconds S]    channels: N subscribers, one publisher; publishes/s and the delay
                                    to the last subscriber (p50/p99), embedded bus and Redis
                                    (redis-server); JSON in target/bench/fanout.json
  fuzz [--seconds N] [--target NAME]
                                    build the websocket-proto fuzz targets on stable and run each
                                    for N seconds (default 60; `test` runs them for 45 s each)
  package deb [--install-test]      release build, then target/debian/libapache2-mod-websocket*.deb
                                    (cargo-deb, installed if missing; lintian if present);
                                    --install-test: install them into this machine's Apache, test
                                    it on 127.0.0.1:80, remove and purge (root, Debian)
  package msi                       release build, then the WiX installer into target/wix/ (cargo-wix
                                    on Windows; on Linux a wixl-built layout check of the same .wxs)
  install --homebrew [--prefix P] [--draft76] [--no-build]
  install --system (--sign IDENTITY | --authority A) [--prefix ROOT] [--draft76] [--no-build]
                                    macOS: release build, copy the modules into Homebrew's httpd or
                                    /usr/local/libexec/apache2 for the system Apache, and add or
                                    update LoadModule lines in its httpd.conf (--system: codesign with
                                    IDENTITY; the lines carry the \"Authority\" the system Apache
                                    requires; sudo is used for the copy step when needed)
";

/// The part of [`USAGE`] about `command` (for `package`, about the kind
/// named after it, if any): each entry starts two spaces in, its
/// continuation lines further.
fn command_usage(command: &str, rest: &[String]) -> Option<String> {
    let entries = USAGE.split_once("commands:\n")?.1;
    let mut blocks: Vec<String> = Vec::new();
    for line in entries.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") {
            blocks.push(format!("{}\n", line.trim_start()));
        } else if let Some(last) = blocks.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    let kind = rest.iter().find(|a| !a.starts_with('-'));
    let mine: Vec<&String> = blocks
        .iter()
        .filter(|b| b.split_whitespace().next() == Some(command))
        .collect();
    let narrowed: Vec<&String> = mine
        .iter()
        .copied()
        .filter(|b| kind.is_none_or(|k| b.split_whitespace().nth(1) == Some(k.as_str())))
        .collect();
    let chosen = if narrowed.is_empty() { mine } else { narrowed };
    if chosen.is_empty() {
        return None;
    }
    Some(
        chosen
            .iter()
            .map(|b| b.as_str())
            .collect::<Vec<_>>()
            .join("       cargo xtask "),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        return match command_usage(command, rest) {
            Some(usage) => {
                print!("usage: cargo xtask {usage}");
                ExitCode::SUCCESS
            }
            None => {
                eprint!("xtask: unknown command '{command}'\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let result = match command.as_str() {
        "build" => stage::cmd_build(rest),
        "demo" => demo::cmd_demo(rest),
        "test" => test::cmd_test(rest),
        "tidy" => tidy::cmd_tidy(rest),
        "fuzz" => fuzz::cmd_fuzz(rest),
        "bench" => bench::cmd_bench(rest),
        "package" => package::cmd_package(rest),
        "install" => package::cmd_install(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::command_usage;

    fn usage(args: &[&str]) -> Option<String> {
        let rest: Vec<String> = args[1..].iter().map(|s| s.to_string()).collect();
        command_usage(args[0], &rest)
    }

    #[test]
    fn every_command_has_its_usage() {
        let demo = usage(&["demo", "--help"]).unwrap();
        assert!(demo.starts_with("demo [--port N]"), "{demo}");
        assert!(demo.contains("/echo, /dumb-increment"), "{demo}");
        assert!(!demo.contains("bench"), "{demo}");
        for command in ["build", "test", "tidy", "bench", "fuzz", "package", "install"] {
            let u = usage(&[command, "-h"]).unwrap();
            assert!(u.starts_with(command), "{command}: {u}");
        }
        let deb = usage(&["package", "deb", "--help"]).unwrap();
        assert!(deb.starts_with("package deb"), "{deb}");
        assert!(!deb.contains("package msi"), "{deb}");
        let both = usage(&["install", "--help"]).unwrap();
        assert!(both.contains("--homebrew") && both.contains("--system"), "{both}");
        assert_eq!(usage(&["nonsense", "--help"]), None);
    }
}
