//! `cargo xtask bench --scale N`: N idle WebSockets on one Apache with
//! Debian's stock event MPM settings (plus the `AsyncRequestWorkerFactor`
//! the README's sizing recommends for N), over plain TCP and over TLS, and
//! what the server does while they are open: plain GET latency, memory and
//! threads, an echo on each, dumb-increment tick gaps. The comparison is
//! Apache's mod_proxy_wstunnel in front of the standalone Rust server
//! (`bench-echo-server`, which serves the dumb-increment protocol too).
//!
//! A benchmark, not a test: it reports, and fails only when it cannot run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use httpd_runner::{Install, Mpm, RunningServer, ServerConfig};
use serde_json::{json, Value};

use crate::stage::Stage;
use crate::util::target_dir;

/// Debian's `mods-available/mpm_event.conf` (the runner's defaults differ
/// only in `ServerLimit`), its `Timeout`, and the one line we add.
pub(super) fn stock_event(factor: usize) -> String {
    format!(
        "Timeout 300\n<IfModule mpm_event_module>\n    StartServers 2\n    MinSpareThreads 25\n    \
         MaxSpareThreads 75\n    ThreadLimit 64\n    ThreadsPerChild 25\n    MaxRequestWorkers 150\n    \
         MaxConnectionsPerChild 0\n    ServerLimit 16\n    AsyncRequestWorkerFactor {factor}\n</IfModule>\n"
    )
}

/// The factor the README's sizing gives for `n` connections on the stock
/// 6 × 25 threads. A child that stopped accepting starts again only below
/// `25 + (idle - 1 - 1) × factor` (its listener keeps one idle worker
/// reserved, and the MPM counts the disabled listener against it), so a
/// child holds `25 + 23 × factor` for sure; 5 % to spare.
pub(super) fn factor_for(n: usize) -> usize {
    let per_child = (n * 105 / 100).div_ceil(6);
    per_child.saturating_sub(25).div_ceil(23).max(2)
}

/// How many ports the server listens on for `n` connections: the load
/// client opens at most so many towards one (Linux's ephemeral ports
/// towards one destination are about 28,000).
fn ports_for(n: usize) -> usize {
    n.div_ceil(15_000).max(1)
}

fn listen_lines(ports: &[u16]) -> String {
    ports.iter().map(|p| format!("Listen 127.0.0.1:{p}\n")).collect()
}

fn tls_config(ports: &[u16], cert: &Path, key: &Path) -> String {
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!(
        "{}<VirtualHost {}>\n    SSLEngine on\n    \
         SSLCertificateFile \"{}\"\n    SSLCertificateKeyFile \"{}\"\n</VirtualHost>\n",
        listen_lines(ports),
        addrs.join(" "),
        cert.display(),
        key.display()
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Ours,
    /// The same server holding idle HTTP keep-alive connections instead:
    /// Apache's own cost of an idle connection, the floor for ours.
    Keepalive,
    Proxy,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::Ours, Setup::Keepalive, Setup::Proxy];

    fn label(self) -> &'static str {
        match self {
            Setup::Ours => "mod_websocket",
            Setup::Keepalive => "Apache idle HTTP keep-alive (no WebSocket)",
            Setup::Proxy => "mod_proxy_wstunnel → tokio-tungstenite",
        }
    }
    fn id(self) -> &'static str {
        match self {
            Setup::Ours => "mod_websocket",
            Setup::Keepalive => "keepalive",
            Setup::Proxy => "mod_proxy_wstunnel",
        }
    }
}

struct Run {
    apache: RunningServer,
    config_error_log: PathBuf,
    backend: Option<super::Standalone>,
    /// Where the WebSockets go: the TLS ports, or the plain ones after
    /// Apache's own.
    tls_ports: Vec<u16>,
    more_plain_ports: Vec<u16>,
}

/// `k` distinct free ports (all bound at once while they are picked).
fn free_ports(k: usize) -> Result<Vec<u16>, String> {
    let held = (0..k)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}

fn start(
    stage: &Stage,
    install: &Install,
    bin: &Path,
    setup: Setup,
    tls: Option<&Certificates>,
    n: usize,
    increments: usize,
) -> Result<Run, String> {
    let name = format!(
        "bench-scale-{}-{}",
        setup.id(),
        if tls.is_some() { "tls" } else { "plain" }
    );
    let root = httpd_runner::scratch_dir(&name);
    let mut config = ServerConfig::new(&root).mpm(Mpm::Event).log_level("warn");
    std::fs::create_dir_all(config.docroot()).map_err(|e| e.to_string())?;
    std::fs::write(
        config.docroot().join("index.html"),
        "<!doctype html><title>scale</title><p>plain HTTP\n",
    )
    .map_err(|e| e.to_string())?;
    let mut extra = stock_event(factor_for(n + increments));
    let ports = ports_for(n + increments);
    let (tls_ports, more_plain_ports) = match tls {
        Some(t) => {
            let ports = free_ports(ports)?;
            config = config.load_module("ssl_module", install.module_path("ssl"));
            extra.push_str(&tls_config(&ports, &t.cert, &t.key));
            (ports, Vec::new())
        }
        None => {
            let more = free_ports(ports - 1)?;
            extra.push_str(&listen_lines(&more));
            (Vec::new(), more)
        }
    };
    let mut backend = None;
    match setup {
        Setup::Ours | Setup::Keepalive => {
            if setup == Setup::Keepalive {
                // Stock is 5 s: long enough for no measurement here.
                extra.push_str("KeepAliveTimeout 300\n");
            }
            config = config.load_module("websocket_module", stage.module("mod_websocket.so"));
            let _ = write!(
                extra,
                "<Location /echo>\n    SetHandler websocket-handler\n    WebSocketHandler \"{}\" echo_init\n</Location>\n\
                 <Location /dumb-increment>\n    SetHandler websocket-handler\n    \
                 WebSocketHandler \"{}\" dumb_increment_init\n</Location>\n",
                stage.module("mod_websocket_echo.so").display(),
                stage.module("mod_websocket_dumb_increment.so").display()
            );
        }
        Setup::Proxy => {
            let b = super::start_standalone(bin, false)?;
            config = config
                .load_module("proxy_module", install.module_path("proxy"))
                .load_module("proxy_wstunnel_module", install.module_path("proxy_wstunnel"));
            let _ = write!(
                extra,
                "ProxyPass \"/echo\" \"ws://{0}/echo\"\nProxyPass \"/dumb-increment\" \"ws://{0}/dumb-increment\"\n",
                b.addr
            );
            backend = Some(b);
        }
    }
    let apache = config
        .extra_config(&extra)
        .start()
        .map_err(|e| format!("cannot start Apache ({}): {e}", setup.label()))?;
    Ok(Run {
        config_error_log: apache.config().error_log_path(),
        apache,
        backend,
        tls_ports,
        more_plain_ports,
    })
}

/// A CA (which the load client trusts) and Apache's certificate for
/// 127.0.0.1, signed by it.
struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certificates(dir: &Path) -> Result<Certificates, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let c = Certificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("server-cert.pem"),
        key: dir.join("server-key.pem"),
    };
    let ca_key = dir.join("ca-key.pem");
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "30",
    ];
    crate::util::run(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(new_key)
            .args(["-subj", "/CN=mod_websocket scale bench CA", "-keyout"])
            .arg(&ca_key)
            .arg("-out")
            .arg(&c.ca),
    )?;
    crate::util::run(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(new_key)
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-CA")
            .arg(&c.ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-keyout")
            .arg(&c.key)
            .arg("-out")
            .arg(&c.cert),
    )?;
    Ok(c)
}

/// Descriptors for `n` connections in this process (the load client's
/// and Apache's limits are inherited from it): the soft limit up to the
/// hard one, and the hard one too when we may (root).
#[cfg(not(unix))]
pub(super) fn raise_descriptor_limit(_n: usize) -> u64 {
    0
}

#[cfg(unix)]
pub(super) fn raise_descriptor_limit(n: usize) -> u64 {
    let want = (2 * n + 8192) as u64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_max < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return want;
            }
        }
        limit.rlim_cur = limit.rlim_max.min(want.max(limit.rlim_cur));
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

fn measure(
    client: &Path,
    run: &Run,
    ca: Option<&Path>,
    n: usize,
    increments: usize,
    seconds: f64,
    keepalive: bool,
) -> Result<Value, String> {
    let http = run.apache.addr();
    let ws: Vec<String> = if run.tls_ports.is_empty() {
        std::iter::once(http.port())
            .chain(run.more_plain_ports.iter().copied())
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    } else {
        run.tls_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    };
    let mut pgids = vec![run.apache.pid()];
    pgids.extend(run.backend.as_ref().map(|b| b.child.id()));
    let pgids: Vec<String> = pgids.iter().map(u32::to_string).collect();
    let mut cmd = Command::new(client);
    cmd.arg("scale")
        .args(["--ws-addr", &ws.join(","), "--http-addr", &http.to_string()])
        .args(["--conns", &n.to_string(), "--increments", &increments.to_string()])
        .args(["--tick-seconds", &seconds.to_string()])
        .args(["--server-pgid", &pgids.join(",")]);
    if let Some(ca) = ca {
        cmd.arg("--tls").arg(ca);
    }
    if keepalive {
        cmd.args(["--keepalive-path", "/index.html"]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", client.display()))?;
    if !out.status.success() {
        return Err("the scale client failed; see its message above".into());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the scale client's report: {e}"))
}

/// The setups `--servers` names (all without it).
pub fn setups(list: Option<&str>) -> Result<Vec<Setup>, String> {
    let Some(list) = list else {
        return Ok(Setup::ALL.to_vec());
    };
    list.split(',')
        .map(|id| {
            Setup::ALL.into_iter().find(|s| s.id() == id).ok_or_else(|| {
                let ids: Vec<&str> = Setup::ALL.iter().map(|s| s.id()).collect();
                format!(
                    "--servers with --scale: unknown '{id}' (one of {})",
                    ids.join(", ")
                )
            })
        })
        .collect()
}

/// Runs the setups, each over plain TCP and TLS, and reports.
pub fn run(
    stage: &Stage,
    bin: &Path,
    n: usize,
    increments: usize,
    seconds: f64,
    setups: &[Setup],
) -> Result<(), String> {
    let limit = raise_descriptor_limit(n + increments);
    eprintln!("xtask: scale: descriptor limit {limit}");
    let install = Install::discover().map_err(|e| e.to_string())?;
    let client = bin.join("bench-load-client");
    let tls_dir = target_dir().join("bench/scale");
    let tls = certificates(&tls_dir)?;
    let mut rows = Vec::new();
    for &setup in setups {
        for over_tls in [false, true] {
            let transport = if over_tls { "TLS" } else { "plain" };
            eprintln!(
                "xtask: scale: {} over {transport}, {n} idle + {increments} dumb-increment",
                setup.label()
            );
            let run = start(
                stage,
                &install,
                bin,
                setup,
                over_tls.then_some(&tls),
                n,
                increments,
            )?;
            let result = measure(
                &client,
                &run,
                over_tls.then_some(tls.ca.as_path()),
                n,
                increments,
                seconds,
                setup == Setup::Keepalive,
            );
            // Gracefully: an immediate stop in the middle of the thousands
            // of closes the client left can crash httpd's event MPM itself
            // (docs/security.md, "Prefer graceful-stop").
            let _ = run.apache.graceful_stop();
            let errors = std::fs::read_to_string(run.config_error_log).unwrap_or_default();
            drop(run.backend);
            let mut result = result?;
            // What went wrong on the server's side, in its words.
            let notable: Vec<&str> = errors
                .lines()
                .filter(|l| {
                    l.contains(":error]")
                        || l.contains(":crit]")
                        || l.contains("Segmentation fault")
                        || l.contains("AH00485")
                })
                .take(5)
                .collect();
            result["server"] = json!(setup.id());
            result["server_errors"] = json!(notable);
            rows.push((setup, transport, result));
        }
    }
    let table = render(n, increments, &rows);
    println!("\n{table}");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("scale.json");
    let report = json!({
        "connections": n,
        "increments": increments,
        "async_request_worker_factor": factor_for(n + increments),
        "runs": rows.iter().map(|(_, _, r)| r.clone()).collect::<Vec<_>>(),
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask: results in {}", path.display());
    Ok(())
}

fn render(n: usize, increments: usize, rows: &[(Setup, &str, Value)]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "scale: {n} idle WebSockets, then {increments} dumb-increment ones on top; Debian's stock event MPM \
         (6 × 25 threads) with AsyncRequestWorkerFactor {}",
        factor_for(n + increments)
    );
    let _ = writeln!(
        t,
        "\n| server | transport | open | GET p50 ms | GET p99 ms | GETs failed | RSS empty → open MiB | RSS/conn KiB | threads | echoed | ticking | tick gap p50 ms | p99 ms | max ms |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let num = |v: &Value, d: usize| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.d$}"));
    let count = |v: &Value| v.as_u64().map_or("–".to_owned(), |x| x.to_string());
    for (setup, transport, r) in rows {
        let _ = writeln!(
            t,
            "| {} | {transport} | {}/{} | {} | {} | {} | {:.1} → {:.1} | {} | {} → {} | {}/{} | {}/{} | {} | {} | {} |",
            setup.label(),
            r["opened"],
            r["requested"],
            num(&r["get"]["p50_ms"], 2),
            num(&r["get"]["p99_ms"], 2),
            r["get"]["failed"],
            r["empty"]["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            r["loaded"]["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            num(&r["rss_kib_per_conn"], 1),
            r["empty"]["threads"],
            r["loaded"]["threads"],
            count(&r["echo"]["answered"]),
            count(&r["echo"]["of"]),
            r["increment"]["ticking"],
            r["increment"]["requested"],
            num(&r["increment"]["gap_p50_ms"], 1),
            num(&r["increment"]["gap_p99_ms"], 1),
            num(&r["increment"]["gap_max_ms"], 1),
        );
    }
    for (setup, transport, r) in rows {
        for (what, v) in [
            ("upgrade", &r["first_failure"]),
            ("GET", &r["get"]["first_failure"]),
            ("echo", &r["echo"]["first_failure"]),
            ("dumb-increment", &r["increment"]["first_failure"]),
        ] {
            if let Some(e) = v.as_str() {
                let _ = writeln!(
                    t,
                    "- {} over {transport}: first {what} failure: {e}",
                    setup.label()
                );
            }
        }
        if let Some(errors) = r["server_errors"].as_array().filter(|e| !e.is_empty()) {
            for e in errors {
                let _ = writeln!(
                    t,
                    "- {} over {transport}: error log: {}",
                    setup.label(),
                    e.as_str().unwrap_or("")
                );
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::factor_for;

    #[test]
    fn the_readme_factor_for_ten_thousand() {
        // The README's 80 holds 6 × (25 + 23 × 80) = 11,190.
        let f = factor_for(10_000);
        assert!(f <= 80 && 6 * (25 + 23 * f) >= 10_500, "{f}");
        assert!(6 * (25 + 23 * factor_for(50_000)) >= 52_500);
        assert_eq!(factor_for(10), 2);
    }
}
