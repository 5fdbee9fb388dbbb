//! `cargo xtask bench --fanout N`: N subscribers of one channel, one
//! publisher; publishes per second with all N receiving, and the delay from
//! a publish to its last subscriber (p50/p99), for the embedded bus (one
//! Apache, subscribers over its children) and for Redis (subscribers on a
//! second Apache that shares a `redis-server` with the publisher's).
//!
//! Subscribers and publisher are clients of the C test plugin
//! (`tests/c-plugin/test_plugin.c`: `sub:` and `pub:` commands). Idle
//! subscribers park (they hold no worker thread), so the servers run
//! Debian's stock event MPM settings plus an `AsyncRequestWorkerFactor`
//! with which the two children those settings start hold all N (one child
//! per core: more children only add threads competing for the two cores).

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use httpd_runner::{Mpm, RunningServer, ServerConfig};
use serde_json::{json, Value};

use crate::stage::Stage;
use crate::util::{root, target_dir};

fn c_plugin(stage: &Stage) -> Result<PathBuf, String> {
    let out = target_dir().join("bench/fanout/test_plugin.so");
    std::fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-Wall", "-Werror"])
        .arg("-I")
        .arg(stage.dir.join("include"))
        .arg(root().join("tests/c-plugin/test_plugin.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !status.success() {
        return Err("gcc could not build the C test plugin".into());
    }
    Ok(out)
}

fn server(
    stage: &Stage,
    plugin: &Path,
    name: &str,
    n: usize,
    broker: Option<u16>,
) -> Result<RunningServer, String> {
    let broker = broker.map_or(String::new(), |p| {
        format!("WebSocketBroker redis://127.0.0.1:{p}\n")
    });
    let config = format!(
        "{broker}{}<Location /ch>\n    SetHandler websocket-handler\n    WebSocketHandler \"{}\" test_plugin_init\n</Location>\n",
        // factor_for sizes six children; three times N fills two.
        super::scale::stock_event(super::scale::factor_for(3 * n)),
        plugin.display()
    );
    let root = httpd_runner::scratch_dir(&format!("bench-fanout-{name}"));
    ServerConfig::new(root)
        .mpm(Mpm::Event)
        .load_module("websocket_module", stage.module("mod_websocket.so"))
        .log_level("warn")
        .extra_config(&config)
        .start()
        .map_err(|e| format!("cannot start Apache ({name}): {e}"))
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(port: u16) -> Result<Redis, String> {
    let dir = httpd_runner::scratch_dir("bench-fanout-redis");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server (Debian: redis-server): {e}"))?;
    let redis = Redis(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(redis)
}

fn measure(
    client: &Path,
    n: usize,
    sub: &RunningServer,
    publisher: &RunningServer,
    seconds: u64,
) -> Result<Value, String> {
    let out = Command::new(client)
        .args(["fanout", "--subscribers", &n.to_string()])
        .args([
            "--sub-addr",
            &sub.addr().to_string(),
            "--pub-addr",
            &publisher.addr().to_string(),
        ])
        .args(["--seconds", &seconds.to_string(), "--window", "4"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", client.display()))?;
    if !out.status.success() {
        return Err("the fanout client failed; see its message above".into());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the fanout client's report: {e}"))
}

/// Runs both setups and reports.
pub fn run(stage: &Stage, client: &Path, n: usize, seconds: u64) -> Result<(), String> {
    let plugin = c_plugin(stage)?;
    super::scale::raise_descriptor_limit(n + 64);
    eprintln!("xtask: fanout: {n} subscribers, embedded bus");
    let embedded = {
        let s = server(stage, &plugin, "embedded", n, None)?;
        let r = measure(client, n, &s, &s, seconds);
        let _ = s.stop();
        r?
    };
    eprintln!("xtask: fanout: {n} subscribers on a second Apache, through Redis");
    let through_redis = {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let _redis = redis(port)?;
        let publisher = server(stage, &plugin, "redis-publisher", 16, Some(port))?;
        let subscribers = server(stage, &plugin, "redis-subscribers", n, Some(port))?;
        let r = measure(client, n, &subscribers, &publisher, seconds);
        let _ = subscribers.stop();
        let _ = publisher.stop();
        r?
    };
    let mut table = String::new();
    let _ = writeln!(
        table,
        "fanout: {n} subscribers, one publisher (throughput with 4 publishes in flight; delay at a fifth of that rate, at most 50/s)"
    );
    let _ = writeln!(
        table,
        "{:<10} {:>14} {:>14} {:>8} {:>10} {:>10} {:>10} {:>12}",
        "bus", "publishes/s", "deliveries/s", "rate/s", "p50 ms", "p99 ms", "max ms", "first p50 ms"
    );
    for (name, r) in [("embedded", &embedded), ("redis", &through_redis)] {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            table,
            "{name:<10} {:>14.0} {:>14.0} {:>8.0} {:>10.2} {:>10.2} {:>10.2} {:>12.2}",
            f("publishes_per_second"),
            f("deliveries_per_second"),
            f("rate"),
            f("delay_p50_ms"),
            f("delay_p99_ms"),
            f("delay_max_ms"),
            f("first_p50_ms"),
        );
    }
    println!("\n{table}");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("fanout.json");
    let report = json!({ "subscribers": n, "embedded": embedded, "redis": through_redis });
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask: results in {}", path.display());
    Ok(())
}
