//! `cargo xtask demo` ended by a signal to the demo process alone (not to
//! a terminal's process group) leaves no Apache behind: the demo is started
//! on a free 127.0.0.1 port from the stage as it is (`--no-build`), sent
//! SIGTERM once it serves, and then neither Apache's parent nor any process
//! of its group may remain, nor anything on the port.
//!
//! Needs Apache and a built stage (`cargo xtask build`, or
//! `WEBSOCKET_STAGE_DIR`); without them it says so and passes, like the
//! other tests that need a real server.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long each step may take: starting Apache, then stopping it.
const STEP: Duration = Duration::from_secs(30);

fn stage_dir() -> PathBuf {
    std::env::var_os("WEBSOCKET_STAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
            target.join("apache")
        })
}

/// Live processes whose process group is `pgid` (zombies run nothing and
/// hold no port; an init that does not reap can leave them).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let mut fields = s[s.rfind(')')? + 1..].split_whitespace();
                    let state = fields.next()?;
                    let group = fields.nth(1)?.parse::<u32>().ok()?;
                    Some(state != "Z" && group == pgid)
                })
                == Some(true)
        })
        .collect()
}

fn kill(args: &[&str]) {
    let _ = Command::new("kill").args(args).stderr(Stdio::null()).status();
}

/// Kills what a failed run left, so that a failure does not leak servers.
struct Cleanup {
    demo: u32,
    apache: Option<u32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        kill(&["-KILL", &self.demo.to_string()]);
        if let Some(pgid) = self.apache {
            if !group_members(pgid).is_empty() {
                kill(&["-KILL", "--", &format!("-{pgid}")]);
            }
        }
    }
}

#[test]
fn sigterm_to_the_demo_alone_stops_its_apache() {
    let stage = stage_dir();
    if !stage.join("modules/mod_websocket.so").is_file() || httpd_runner::find_httpd().is_none() {
        eprintln!(
            "no Apache or no stage in {} (cargo xtask build); skipped",
            stage.display()
        );
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--no-build", "--port", &port.to_string()])
        .env("WEBSOCKET_STAGE_DIR", &stage)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup {
        demo: demo.id(),
        apache: None,
    };

    // The runner names Apache's pid on stderr: "httpd-runner: … (pid N) on …".
    let (tx, rx) = mpsc::channel();
    let stderr = demo.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("demo: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + STEP;
    let apache = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the demo names Apache's pid in time");
        if let Some(rest) = line.split_once("(pid ").map(|(_, r)| r) {
            break rest
                .split(')')
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .expect("a pid");
        }
    };
    cleanup.apache = Some(apache);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "Apache never served on {addr}");
        assert!(demo.try_wait().unwrap().is_none(), "the demo exited early");
        sleep(Duration::from_millis(100));
    }
    assert!(
        !group_members(apache).is_empty(),
        "Apache's process group {apache} is running"
    );

    // The demo process only: no group, no terminal.
    kill(&["-TERM", &demo.id().to_string()]);
    let deadline = Instant::now() + STEP;
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not exit after SIGTERM");
        sleep(Duration::from_millis(50));
    };
    // Workers may take a moment after their parent.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_members(apache).is_empty() && Instant::now() < deadline {
        sleep(Duration::from_millis(50));
    }
    assert_eq!(
        group_members(apache),
        Vec::<u32>::new(),
        "processes of Apache's group {apache} outlived the demo"
    );
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "something still listens on {addr}"
    );
    assert!(status.success(), "the demo exited with {status}");
}
