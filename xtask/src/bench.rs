//! `cargo xtask bench`: mod_websocket against the setups an operator would
//! otherwise pick, on real servers, measured by the same load client.
//!
//! Servers (all on 127.0.0.1, event MPM, pinned to CPU 0 when there are two
//! or more CPUs; the load client gets CPU 1):
//! - `ours`: Apache with mod_websocket and the echo plugin on /echo
//!   (permessage-deflate on, as by default; a client that does not offer it
//!   gets plain frames);
//! - `proxy`: Apache with mod_proxy_wstunnel tunnelling /echo to the
//!   standalone server below;
//! - `standalone`: `bench-echo-server` (tokio-tungstenite) alone;
//! - `mod_echo`: Apache's mod_echo (`ProtocolEcho On`), the raw byte path
//!   without any WebSocket framing;
//! - `baseline`, with `--baseline REV`: this repository's module at another
//!   revision, built into its own stage (see `bench/baseline.rs`) and
//!   configured exactly as `ours`; it runs right after `ours` in every
//!   round, so the two alternate, and a comparison table follows;
//! - `c_module`, with `--c-module DIR`: the C apache-websocket module this
//!   project replaces, with its own echo plugin, from a checkout of it
//!   (built here with apxs) or a directory holding the two built `.so`s.
//!   Its source is not part of this repository.
//!
//! Each (case, server) pair runs `runs` times for `seconds`; the table shows
//! the median of each column. Server CPU counts every process of the
//! instance (Apache's parent and children; for the proxy also the backend).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use httpd_runner::{Install, Mpm, RunningServer, ServerConfig};
use serde_json::{json, Value};

mod baseline;
mod c_module;
mod fanout;
mod scale;

use crate::stage::Stage;
use crate::util::{cargo, check_args, flag, option, run, target_dir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ours,
    Baseline,
    Proxy,
    Standalone,
    ModEcho,
    CModule,
    /// Ours over HTTP/2 (h2c, `H2WebSockets on`), each of the load client's
    /// connections an RFC 8441 stream (`--h2`).
    OursH2,
    /// The baseline's module the same way (with `--baseline`).
    BaselineH2,
    /// The C module the same way.
    CModuleH2,
}

impl Server {
    const ALL: [Server; 9] = [
        Server::Ours,
        Server::Baseline,
        Server::OursH2,
        Server::BaselineH2,
        Server::CModule,
        Server::CModuleH2,
        Server::Proxy,
        Server::Standalone,
        Server::ModEcho,
    ];

    /// Served by the C module (which needs `--c-module`).
    fn is_c_module(self) -> bool {
        matches!(self, Server::CModule | Server::CModuleH2)
    }

    /// Served by the baseline's module (which needs `--baseline`).
    fn is_baseline(self) -> bool {
        matches!(self, Server::Baseline | Server::BaselineH2)
    }

    /// The baseline's counterpart of this server, run right after it.
    fn baseline(self) -> Option<Server> {
        match self {
            Server::Ours => Some(Server::Baseline),
            Server::OursH2 => Some(Server::BaselineH2),
            _ => None,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Server::Ours => "ours",
            Server::Baseline => "baseline",
            Server::Proxy => "proxy",
            Server::Standalone => "standalone",
            Server::ModEcho => "mod_echo",
            Server::CModule => "c_module",
            Server::OursH2 => "ours_h2",
            Server::BaselineH2 => "baseline_h2",
            Server::CModuleH2 => "c_module_h2",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Server::Ours => "mod_websocket (this run)",
            Server::Baseline => "mod_websocket at the baseline revision",
            Server::Proxy => "Apache mod_proxy_wstunnel → tokio-tungstenite",
            Server::Standalone => "tokio-tungstenite alone",
            Server::ModEcho => "Apache mod_echo (raw bytes)",
            Server::CModule => "C apache-websocket module + its echo plugin",
            Server::OursH2 => "mod_websocket over HTTP/2 (h2c, RFC 8441 streams)",
            Server::BaselineH2 => {
                "mod_websocket at the baseline revision over HTTP/2 (h2c, RFC 8441 streams)"
            }
            Server::CModuleH2 => "the C module over HTTP/2 (h2c, RFC 8441 streams)",
        }
    }

    /// Short form for the progress lines.
    fn short(self) -> &'static str {
        match self {
            Server::Ours => "mod_websocket",
            Server::Baseline => "baseline",
            Server::Proxy => "proxy",
            Server::Standalone => "standalone",
            Server::ModEcho => "mod_echo",
            Server::CModule => "C module",
            Server::OursH2 => "mod_websocket over h2",
            Server::BaselineH2 => "baseline over h2",
            Server::CModuleH2 => "C module over h2",
        }
    }
}

/// What the issue measured for the C module (issue 8's table), shown when
/// the C module is not measured in the same run (no `--c-module`).
#[derive(Debug, Clone, Copy)]
struct CFigures {
    cpu_us: Option<f64>,
    mib_s: Option<f64>,
    p50_us: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Load,
    /// Resident memory per idle connection instead of load.
    Idle,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    id: &'static str,
    label: &'static str,
    kind: Kind,
    size: usize,
    conns: usize,
    inflight: usize,
    /// `binary`, `text` (mixed multi-byte UTF-8) or `compressible`.
    content: &'static str,
    deflate: bool,
    /// Client on the servers' core (the latency case, as the issue measured it).
    same_core: bool,
    /// Another location of our server than /echo.
    path: Option<&'static str>,
    servers: &'static [Server],
    c_module: Option<CFigures>,
    /// The target for our server CPU µs per message.
    target_cpu_us: Option<f64>,
}

/// A location of our server with zlib's default level instead of ours.
const LEVEL6_PATH: &str = "/echo-level6";

/// Every server that can run the case over HTTP/1.1 (the C module only
/// with `--c-module`).
const ALL_SERVERS: &[Server] = &[
    Server::Ours,
    Server::CModule,
    Server::Proxy,
    Server::Standalone,
    Server::ModEcho,
];
/// The load cases that also run over HTTP/2.
const ALL_AND_H2: &[Server] = &Server::ALL;
/// WebSocket servers (text with UTF-8 checking means nothing to mod_echo).
const WS_SERVERS: &[Server] = &[Server::Ours, Server::CModule, Server::Proxy, Server::Standalone];

const CASES: &[Case] = &[
    Case {
        id: "16b",
        label: "16 B binary, 1 conn × 64 in flight",
        kind: Kind::Load,
        size: 16,
        conns: 1,
        inflight: 64,
        content: "binary",
        deflate: false,
        same_core: false,
        path: None,
        servers: ALL_AND_H2,
        c_module: Some(CFigures {
            cpu_us: Some(6.9),
            mib_s: None,
            p50_us: None,
        }),
        target_cpu_us: Some(1.0),
    },
    Case {
        id: "4k",
        label: "4 KiB binary, 8 conns × 8 in flight",
        kind: Kind::Load,
        size: 4096,
        conns: 8,
        inflight: 8,
        content: "binary",
        deflate: false,
        same_core: false,
        path: None,
        servers: ALL_AND_H2,
        c_module: Some(CFigures {
            cpu_us: Some(13.4),
            mib_s: None,
            p50_us: None,
        }),
        target_cpu_us: Some(4.0),
    },
    Case {
        id: "1m",
        label: "1 MiB binary, 2 conns × 2 in flight",
        kind: Kind::Load,
        size: 1 << 20,
        conns: 2,
        inflight: 2,
        content: "binary",
        deflate: false,
        same_core: false,
        path: None,
        servers: ALL_AND_H2,
        c_module: Some(CFigures {
            cpu_us: Some(2359.0),
            mib_s: Some(423.0),
            p50_us: None,
        }),
        target_cpu_us: Some(600.0),
    },
    Case {
        id: "1m-text",
        label: "1 MiB text (mixed UTF-8), 2 × 2",
        kind: Kind::Load,
        size: 1 << 20,
        conns: 2,
        inflight: 2,
        content: "text",
        deflate: false,
        same_core: false,
        path: None,
        servers: WS_SERVERS,
        c_module: Some(CFigures {
            cpu_us: Some(3692.0),
            mib_s: Some(271.0),
            p50_us: None,
        }),
        target_cpu_us: Some(900.0),
    },
    Case {
        id: "latency",
        label: "16 B, 1 in flight, client on the server core",
        kind: Kind::Load,
        size: 16,
        conns: 1,
        inflight: 1,
        content: "binary",
        deflate: false,
        same_core: true,
        path: None,
        servers: ALL_SERVERS,
        c_module: Some(CFigures {
            cpu_us: None,
            mib_s: None,
            p50_us: Some(22.0),
        }),
        target_cpu_us: None,
    },
    Case {
        id: "deflate",
        label: "16 KiB text, permessage-deflate, 4 × 4",
        kind: Kind::Load,
        size: 16 * 1024,
        conns: 4,
        inflight: 4,
        content: "compressible",
        deflate: true,
        same_core: false,
        path: None,
        // Neither mod_echo nor tungstenite has permessage-deflate; the C
        // module never had it (Autobahn sections 12-13 UNIMPLEMENTED).
        servers: &[Server::Ours],
        c_module: None,
        target_cpu_us: None,
    },
    Case {
        id: "deflate-l6",
        label: "the same, WebSocketCompressionLevel 6",
        kind: Kind::Load,
        size: 16 * 1024,
        conns: 4,
        inflight: 4,
        content: "compressible",
        deflate: true,
        same_core: false,
        path: Some(LEVEL6_PATH),
        servers: &[Server::Ours],
        c_module: None,
        target_cpu_us: None,
    },
    Case {
        id: "idle",
        label: "idle connections (16 open, one 16 B message each)",
        kind: Kind::Idle,
        size: 16,
        conns: 16,
        inflight: 1,
        content: "binary",
        deflate: false,
        same_core: false,
        path: None,
        servers: ALL_SERVERS,
        c_module: None,
        target_cpu_us: None,
    },
    Case {
        id: "idle-deflate",
        label: "idle connections, permessage-deflate negotiated",
        kind: Kind::Idle,
        size: 16,
        conns: 16,
        inflight: 1,
        content: "binary",
        deflate: true,
        same_core: false,
        path: None,
        servers: &[Server::Ours],
        c_module: None,
        target_cpu_us: None,
    },
];

impl Case {
    /// The servers that run the case: its own list, with the baseline
    /// right after ours wherever ours runs (and nowhere else).
    fn servers(&self) -> Vec<Server> {
        self.servers
            .iter()
            .filter(|s| !s.is_baseline())
            .flat_map(|&s| std::iter::once(s).chain(s.baseline()))
            .collect()
    }
}

const USAGE_CASES: &str = "16b, 4k, 1m, 1m-text, latency, deflate, deflate-l6, idle, idle-deflate";

/// Builds the load client and the standalone server; their directory.
fn build_bench_binaries() -> Result<PathBuf, String> {
    run(cargo()
        .args([
            "build",
            "--release",
            "-p",
            "bench-load-client",
            "-p",
            "bench-echo-server",
        ])
        .arg("--quiet"))?;
    Ok(target_dir().join("release"))
}

pub fn cmd_bench(args: &[String]) -> Result<(), String> {
    check_args(
        args,
        &["--quick"],
        &[
            "--seconds",
            "--cases",
            "--servers",
            "--c-module",
            "--baseline",
            "--fanout",
            "--scale",
            "--increments",
        ],
    )?;
    if let Some(n) = option(args, "--scale")? {
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--scale must be a number of connections, not '{n}'"))?;
        let increments = match option(args, "--increments")? {
            Some(m) => m
                .parse()
                .map_err(|_| format!("--increments must be a number of connections, not '{m}'"))?,
            None => n.min(1000),
        };
        let seconds = match option(args, "--seconds")? {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .ok_or_else(|| format!("--seconds must be a positive number, not '{s}'"))?,
            None => 5.0,
        };
        crate::deps::ensure(&[crate::deps::BUILD, crate::deps::RUN, &["openssl"]])?;
        let stage = crate::stage::build(true)?;
        let bin = build_bench_binaries()?;
        let servers = option(args, "--servers")?;
        let setups = scale::setups(servers)?;
        return scale::run(&stage, &bin, n, increments, seconds, &setups);
    }
    if let Some(n) = option(args, "--fanout")? {
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--fanout must be a number of subscribers, not '{n}'"))?;
        let stage = crate::stage::build(true)?;
        run(cargo()
            .args(["build", "--release", "-p", "bench-load-client"])
            .arg("--quiet"))?;
        let seconds = option(args, "--seconds")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        return fanout::run(
            &stage,
            &target_dir().join("release/bench-load-client"),
            n,
            seconds,
        );
    }
    let quick = flag(args, "--quick");
    let seconds: f64 = match option(args, "--seconds")? {
        Some(s) => s
            .parse()
            .ok()
            .filter(|s: &f64| *s > 0.0)
            .ok_or_else(|| format!("--seconds must be a positive number, not '{s}'"))?,
        None if quick => 2.0,
        None => 10.0,
    };
    let runs = if quick { 1 } else { 3 };
    let warmup = if quick { 0.5 } else { 1.0 };
    let cases: Vec<Case> = match option(args, "--cases")? {
        None => CASES.to_vec(),
        Some(list) => list
            .split(',')
            .map(|id| {
                CASES
                    .iter()
                    .find(|c| c.id == id.trim())
                    .copied()
                    .ok_or_else(|| format!("unknown case '{id}' (cases: {USAGE_CASES})"))
            })
            .collect::<Result<_, _>>()?,
    };
    let c_module_dir = option(args, "--c-module")?.map(PathBuf::from);
    let baseline_rev = option(args, "--baseline")?;
    let mut servers: Vec<Server> = match option(args, "--servers")? {
        // Against a baseline the question is ours then and now.
        None if baseline_rev.is_some() => vec![Server::Ours, Server::Baseline],
        None => Server::ALL
            .into_iter()
            .filter(|s| !s.is_c_module() || c_module_dir.is_some())
            .filter(|s| *s != Server::Baseline)
            .collect(),
        Some(list) => list
            .split(',')
            .map(|id| {
                Server::ALL
                    .into_iter()
                    .find(|s| s.id() == id.trim())
                    .ok_or_else(|| {
                        format!(
                            "unknown server '{id}' (ours, baseline, ours_h2, baseline_h2, c_module, \
                             c_module_h2, proxy, standalone, mod_echo)"
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    if baseline_rev.is_some() && !servers.contains(&Server::Baseline) {
        servers.push(Server::Baseline);
    }
    if baseline_rev.is_some() && servers.contains(&Server::OursH2) && !servers.contains(&Server::BaselineH2) {
        servers.push(Server::BaselineH2);
    }
    if servers.iter().any(|s| s.is_baseline()) && baseline_rev.is_none() {
        return Err("the baseline servers need --baseline REV (a commit, branch or tag)".into());
    }
    if servers.iter().any(|s| s.is_c_module()) && c_module_dir.is_none() {
        return Err(
            "the c_module server needs --c-module DIR (a checkout of the C apache-websocket \
                    module, or a directory with its built mod_websocket.so and mod_websocket_echo.so)"
                .into(),
        );
    }

    crate::deps::ensure(&[crate::deps::BUILD, crate::deps::RUN])?;
    let c_module = match (&c_module_dir, servers.iter().any(|s| s.is_c_module())) {
        (Some(dir), true) => Some(c_module::locate_or_build(dir)?),
        _ => None,
    };
    let stage = crate::stage::build(true)?;
    // After ours: a baseline that fails to build says so once ours is known good.
    let baseline = match baseline_rev {
        Some(rev) if cases.iter().any(|c| c.servers().iter().any(|s| s.is_baseline())) => {
            Some(baseline::prepare(rev)?)
        }
        _ => None,
    };
    let bin = build_bench_binaries()?;
    let client = bin.join("bench-load-client");

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinning = cpus >= 2 && Command::new("taskset").arg("-V").output().is_ok();
    if !pinning {
        eprintln!("xtask: not pinning (needs 2 or more CPUs and taskset): servers and client share the CPUs");
    }

    let needed = |s: Server| {
        servers.contains(&s)
            && cases.iter().any(|c| c.servers().contains(&s))
            // The proxy needs the standalone server as its backend.
            || s == Server::Standalone
                && servers.contains(&Server::Proxy)
                && cases.iter().any(|c| c.servers().contains(&Server::Proxy))
    };
    let fleet = Fleet::start(
        &stage,
        &bin,
        pinning,
        c_module.as_ref(),
        baseline.as_ref().map(|b| &b.stage),
        needed,
    )?;

    let plan: Vec<(Case, Server)> = cases
        .iter()
        .flat_map(|c| {
            c.servers()
                .into_iter()
                .filter(|s| servers.contains(s))
                .map(move |s| (*c, s))
        })
        .collect();
    let steps = plan.len() * runs;
    let mut step = 0;
    let mut results: Vec<Outcome> = plan
        .iter()
        .map(|(case, server)| Outcome {
            case: *case,
            server: *server,
            runs: Vec::new(),
        })
        .collect();
    let started = Instant::now();
    for case in &cases {
        for r in 0..runs {
            for outcome in results.iter_mut().filter(|o| o.case.id == case.id) {
                step += 1;
                let server = outcome.server;
                eprint!(
                    "[{step}/{steps}] {} via {}{}… ",
                    case.label,
                    server.short(),
                    if runs > 1 {
                        format!(" (run {}/{runs})", r + 1)
                    } else {
                        String::new()
                    }
                );
                let _ = std::io::stderr().flush();
                fleet.repin()?;
                let report = match run_client(&client, &fleet, case, server, pinning, warmup, seconds) {
                    Ok(r) => r,
                    // The C module may not serve WebSockets over HTTP/2 at
                    // all: that is a result to report, not a broken run.
                    Err(e) if server == Server::CModuleH2 => json!({ "error": e }),
                    Err(e) => return Err(e),
                };
                eprintln!("{}", progress_summary(case, &report));
                outcome.runs.push(report);
            }
        }
    }
    let elapsed = started.elapsed();
    drop(fleet);

    let table = render(&results, runs, seconds);
    println!("\n{table}");
    if let Some(b) = &baseline {
        println!("{}", render_baseline(&results, b));
    }
    let mut json = results_json(&results, runs, seconds, quick, pinning, cpus, elapsed);
    if let Some(b) = &baseline {
        json["baseline"] = baseline_json(&results, b);
    }
    if let Some(c) = &c_module {
        json["c_module"] = json!({
            "module": c.module.display().to_string(),
            "echo_plugin": c.echo_plugin.display().to_string(),
        });
    }
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("results.json");
    let text = serde_json::to_string_pretty(&json).expect("JSON values serialize");
    std::fs::write(&path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask: results in {}", path.display());
    Ok(())
}

/// The servers of one benchmark session.
struct Fleet {
    ours: Option<RunningServer>,
    baseline: Option<RunningServer>,
    proxy: Option<RunningServer>,
    mod_echo: Option<RunningServer>,
    c_module: Option<RunningServer>,
    ours_h2: Option<RunningServer>,
    baseline_h2: Option<RunningServer>,
    c_module_h2: Option<RunningServer>,
    standalone: Option<Standalone>,
    pinning: bool,
}

/// What makes a server of ours or the C module's serve WebSockets over
/// cleartext HTTP/2.
const H2C: &str = "Protocols h2c http/1.1\nH2WebSockets on\n";

struct Standalone {
    child: Child,
    addr: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fleet {
    fn start(
        stage: &Stage,
        bin: &Path,
        pinning: bool,
        c_module: Option<&c_module::Build>,
        baseline: Option<&Stage>,
        needed: impl Fn(Server) -> bool,
    ) -> Result<Fleet, String> {
        let root = target_dir().join("bench").join("servers");
        let install = Install::discover().map_err(|e| e.to_string())?;
        let mut fleet = Fleet {
            ours: None,
            baseline: None,
            proxy: None,
            mod_echo: None,
            c_module: None,
            ours_h2: None,
            baseline_h2: None,
            c_module_h2: None,
            standalone: None,
            pinning,
        };
        if needed(Server::Standalone) {
            fleet.standalone = Some(start_standalone(bin, pinning)?);
        }
        if needed(Server::Ours) {
            let config = ours_config(stage, &root.join("ours"));
            fleet.ours = Some(start_apache(config, "mod_websocket")?);
        }
        if needed(Server::OursH2) {
            let config = ours_config(stage, &root.join("ours_h2"))
                .load_module("http2_module", install.module_path("http2"))
                .extra_config(H2C);
            fleet.ours_h2 = Some(start_apache(config, "mod_websocket over HTTP/2")?);
        }
        if let (true, Some(b)) = (needed(Server::Baseline), baseline) {
            let config = ours_config(b, &root.join("baseline"));
            fleet.baseline = Some(start_apache(config, "the baseline's mod_websocket")?);
        }
        if let (true, Some(b)) = (needed(Server::BaselineH2), baseline) {
            let config = ours_config(b, &root.join("baseline_h2"))
                .load_module("http2_module", install.module_path("http2"))
                .extra_config(H2C);
            fleet.baseline_h2 = Some(start_apache(config, "the baseline's mod_websocket over HTTP/2")?);
        }
        if let (true, Some(c)) = (needed(Server::CModule), c_module) {
            // Same MPM settings and location as ours; the C module's
            // MaxMessageSize default (32 MiB) is ours too.
            let config = ServerConfig::new(root.join("c_module"))
                .mpm(Mpm::Event)
                .load_module("websocket_module", &c.module)
                .log_level("warn")
                .extra_config(&format!(
                    "<Location /echo>\n    SetHandler websocket-handler\n    \
                     WebSocketHandler \"{}\" echo_init\n</Location>\n",
                    c.echo_plugin.display()
                ));
            fleet.c_module = Some(start_apache(config, "the C apache-websocket module")?);
        }
        if let (true, Some(c)) = (needed(Server::CModuleH2), c_module) {
            let config = ServerConfig::new(root.join("c_module_h2"))
                .mpm(Mpm::Event)
                .load_module("websocket_module", &c.module)
                .load_module("http2_module", install.module_path("http2"))
                .log_level("warn")
                .extra_config(&format!(
                    "{H2C}<Location /echo>\n    SetHandler websocket-handler\n    \
                     WebSocketHandler \"{}\" echo_init\n</Location>\n",
                    c.echo_plugin.display()
                ));
            fleet.c_module_h2 = Some(start_apache(config, "the C module over HTTP/2")?);
        }
        if needed(Server::ModEcho) {
            let config = ServerConfig::new(root.join("mod_echo"))
                .mpm(Mpm::Event)
                .load_module("echo_module", install.module_path("echo"))
                .log_level("warn")
                .extra_config("ProtocolEcho On\n");
            fleet.mod_echo = Some(start_apache(config, "mod_echo")?);
        }
        if needed(Server::Proxy) {
            let backend = &fleet
                .standalone
                .as_ref()
                .expect("the proxy's backend was started")
                .addr;
            let config = ServerConfig::new(root.join("proxy"))
                .mpm(Mpm::Event)
                .load_module("proxy_module", install.module_path("proxy"))
                .load_module("proxy_wstunnel_module", install.module_path("proxy_wstunnel"))
                .log_level("warn")
                .extra_config(&format!("ProxyPass \"/echo\" \"ws://{backend}/echo\"\n"));
            fleet.proxy = Some(start_apache(config, "mod_proxy_wstunnel")?);
        }
        fleet.repin()?;
        Ok(fleet)
    }

    /// Pins every server process (and all its threads) to CPU 0. Children
    /// Apache forks later inherit the parent's affinity; this catches any
    /// that exist already.
    fn repin(&self) -> Result<(), String> {
        if !self.pinning {
            return Ok(());
        }
        for pgid in self.all_pgids() {
            for pid in group_members(pgid) {
                let out = Command::new("taskset")
                    .args(["-a", "-p", "-c", "0", &pid.to_string()])
                    .output()
                    .map_err(|e| format!("cannot run taskset: {e}"))?;
                // A process that just exited is not an error.
                if !out.status.success() && Path::new(&format!("/proc/{pid}")).exists() {
                    return Err(format!(
                        "taskset -a -p -c 0 {pid} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
        Ok(())
    }

    fn all_pgids(&self) -> Vec<u32> {
        [
            &self.ours,
            &self.baseline,
            &self.proxy,
            &self.mod_echo,
            &self.c_module,
            &self.ours_h2,
            &self.baseline_h2,
            &self.c_module_h2,
        ]
        .into_iter()
        .flatten()
        .map(RunningServer::pid)
        .chain(self.standalone.as_ref().map(|s| s.child.id()))
        .collect()
    }

    /// Address, path, and the process groups whose CPU is the server's.
    fn target(&self, server: Server) -> (String, &'static str, Vec<u32>) {
        let apache = |s: &Option<RunningServer>| {
            let s = s.as_ref().expect("server started");
            (s.addr().to_string(), s.pid())
        };
        let standalone = self.standalone.as_ref().map(|s| (s.addr.clone(), s.child.id()));
        match server {
            Server::Ours => {
                let (addr, pid) = apache(&self.ours);
                (addr, "/echo", vec![pid])
            }
            Server::Baseline => {
                let (addr, pid) = apache(&self.baseline);
                (addr, "/echo", vec![pid])
            }
            Server::ModEcho => {
                let (addr, pid) = apache(&self.mod_echo);
                (addr, "/", vec![pid])
            }
            Server::CModule => {
                let (addr, pid) = apache(&self.c_module);
                (addr, "/echo", vec![pid])
            }
            Server::Proxy => {
                let (addr, pid) = apache(&self.proxy);
                let backend = standalone.expect("backend started").1;
                (addr, "/echo", vec![pid, backend])
            }
            Server::Standalone => {
                let (addr, pid) = standalone.expect("server started");
                (addr, "/echo", vec![pid])
            }
            Server::OursH2 | Server::BaselineH2 | Server::CModuleH2 => {
                let h2 = match server {
                    Server::OursH2 => &self.ours_h2,
                    Server::BaselineH2 => &self.baseline_h2,
                    _ => &self.c_module_h2,
                };
                let (addr, pid) = apache(h2);
                (addr, "/echo", vec![pid])
            }
        }
    }
}

/// Our module from `stage` with the example locations and the level-6
/// deflate location; the same for the working tree and the baseline.
fn ours_config(stage: &Stage, root: &Path) -> ServerConfig {
    stage
        .server(root, Mpm::Event)
        .log_level("warn")
        .extra_config(&format!(
        "<Location {LEVEL6_PATH}>\n    SetHandler websocket-handler\n    WebSocketHandler {} echo_init\n    \
             WebSocketCompressionLevel 6\n</Location>\n",
        stage.module("mod_websocket_echo.so").display()
    ))
}

fn start_apache(config: ServerConfig, what: &str) -> Result<RunningServer, String> {
    config
        .start()
        .map_err(|e| format!("cannot start Apache with {what}: {e}"))
}

fn start_standalone(bin: &Path, pinning: bool) -> Result<Standalone, String> {
    let exe = bin.join("bench-echo-server");
    let mut cmd = if pinning {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, counted like an Apache instance's.
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("bench-echo-server: {e}"))?;
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("bench-echo-server did not start: {line:?}"));
    };
    Ok(Standalone {
        addr: addr.to_owned(),
        child,
    })
}

/// Processes whose group is `pgid`.
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
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

fn run_client(
    client: &Path,
    fleet: &Fleet,
    case: &Case,
    server: Server,
    pinning: bool,
    warmup: f64,
    seconds: f64,
) -> Result<Value, String> {
    let (addr, path, pgids) = fleet.target(server);
    let path = case.path.unwrap_or(path);
    let mut cmd = if pinning {
        let mut c = Command::new("taskset");
        c.args(["-c", if case.same_core { "0" } else { "1" }]).arg(client);
        c
    } else {
        Command::new(client)
    };
    cmd.args(["--addr", &addr, "--path", path])
        .args(["--size", &case.size.to_string()])
        .args(["--conns", &case.conns.to_string()])
        .args(["--inflight", &case.inflight.to_string()])
        .args(["--content", case.content])
        .args(["--warmup", &warmup.to_string(), "--seconds", &seconds.to_string()])
        .args([
            "--server-pgid",
            &pgids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        ]);
    if server == Server::ModEcho {
        cmd.arg("--raw");
    }
    if matches!(server, Server::OursH2 | Server::BaselineH2 | Server::CModuleH2) {
        cmd.arg("--h2");
    }
    if case.deflate {
        cmd.arg("--deflate");
    }
    if case.kind == Kind::Idle {
        cmd.arg("--idle");
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", client.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the load client failed for {} via {} ({}); see its message above",
            case.label,
            server.short(),
            out.status
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "unreadable load client output ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn progress_summary(case: &Case, r: &Value) -> String {
    if let Some(e) = r.get("error").and_then(Value::as_str) {
        return format!("failed: {e}");
    }
    if case.kind == Kind::Idle {
        return format!(
            "{:.1} KiB per connection",
            num(r, "rss_kib_per_conn").unwrap_or(f64::NAN)
        );
    }
    let mut s = format!(
        "{:.0} msg/s, {:.1} MiB/s, p50 {:.1} µs",
        num(r, "msgs_per_sec").unwrap_or(0.0),
        num(r, "mib_per_sec").unwrap_or(0.0),
        num(r, "p50_us").unwrap_or(0.0)
    );
    if let Some(cpu) = num(r, "server_cpu_us_per_msg") {
        let _ = write!(s, ", server CPU {cpu:.2} µs/msg");
    }
    s
}

struct Outcome {
    case: Case,
    server: Server,
    runs: Vec<Value>,
}

impl Outcome {
    /// The median over runs of one field.
    fn median(&self, key: &str) -> Option<f64> {
        let mut v: Vec<f64> = self.runs.iter().filter_map(|r| num(r, key)).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v >= 1000.0 => format!("{v:.0}"),
        Some(v) if v >= 100.0 => format!("{v:.1}"),
        Some(v) if v >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

fn c_reference(case: &Case, ours: Option<&Outcome>) -> String {
    let Some(c) = case.c_module else {
        return "—".into();
    };
    let mut parts = Vec::new();
    if let Some(cpu) = c.cpu_us {
        let mut s = format!("{} µs/msg", fmt_num(Some(cpu)));
        if let Some(o) = ours.and_then(|o| o.median("server_cpu_us_per_msg")) {
            let _ = write!(s, " ({:.1}× ours)", cpu / o);
        }
        parts.push(s);
    }
    if let Some(m) = c.mib_s {
        parts.push(format!("{m:.0} MiB/s"));
    }
    if let Some(p) = c.p50_us {
        parts.push(format!("p50 {p:.0} µs"));
    }
    parts.join(", ")
}

/// The results as Markdown tables (load, then idle memory), then the
/// issue's targets against this run.
fn render(results: &[Outcome], runs: usize, seconds: f64) -> String {
    let mut t = String::new();
    let c_measured = results.iter().any(|o| o.server == Server::CModule);
    let _ = writeln!(
        t,
        "Median of {runs} run(s) × {seconds} s. Server CPU = utime+stime of every server process over the \
         measured window ÷ messages echoed.\n{}\n",
        if c_measured {
            "The C module ran in this run (--c-module); the last column is issue 8's figures for it, from \
             another machine."
        } else {
            "The last column is issue 8's figures for the C module, from another run (run with --c-module \
             DIR to measure it here)."
        }
    );
    let _ = writeln!(
        t,
        "| case | server | msgs/s | MiB/s | p50 µs | p99 µs | server CPU µs/msg | CPU ÷ ours | msgs/s ÷ ours | \
         C module (issue 8 figures) |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let find = |case: &str, server: Server| results.iter().find(|o| o.case.id == case && o.server == server);
    for o in results.iter().filter(|o| o.case.kind == Kind::Load) {
        let ours = find(o.case.id, Server::Ours);
        let is_ours = o.server == Server::Ours;
        let cpu = o.median("server_cpu_us_per_msg");
        let rate = o.median("msgs_per_sec");
        let mut label = o.server.label().to_owned();
        if o.case.deflate {
            if let (Some(wire), true) = (o.median("wire_bytes_per_msg"), is_ours) {
                let _ = write!(
                    label,
                    "; echoes {:.0}% of their size on the wire",
                    100.0 * wire / o.case.size as f64
                );
            }
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.case.label,
            label,
            fmt_num(rate),
            fmt_num(o.median("mib_per_sec")),
            fmt_num(o.median("p50_us")),
            fmt_num(o.median("p99_us")),
            fmt_num(cpu),
            if is_ours {
                "1".into()
            } else {
                ratio(cpu, ours.and_then(|u| u.median("server_cpu_us_per_msg")))
            },
            if is_ours {
                "1".into()
            } else {
                ratio(rate, ours.and_then(|u| u.median("msgs_per_sec")))
            },
            if is_ours {
                c_reference(&o.case, ours)
            } else {
                String::new()
            },
        );
    }
    let idle: Vec<&Outcome> = results.iter().filter(|o| o.case.kind == Kind::Idle).collect();
    if !idle.is_empty() {
        let _ = writeln!(
            t,
            "\n| idle connections | server | resident memory per connection (KiB) |\n|---|---|---:|"
        );
        for o in &idle {
            let _ = writeln!(
                t,
                "| {} | {} | {} |",
                o.case.label,
                o.server.label(),
                fmt_num(o.median("rss_kib_per_conn"))
            );
        }
    }
    let _ = writeln!(t, "\nIssue 8 targets, this run:");
    for line in targets(results) {
        let _ = writeln!(t, "- {line}");
    }
    t
}

/// What the baseline comparison shows per case kind: (JSON key, label),
/// the key figure first.
const LOAD_MEASURES: &[(&str, &str)] = &[
    ("server_cpu_us_per_msg", "server CPU µs/msg"),
    ("msgs_per_sec", "msgs/s"),
    ("p50_us", "p50 µs"),
    ("p99_us", "p99 µs"),
];
const IDLE_MEASURES: &[(&str, &str)] = &[("rss_kib_per_conn", "resident KiB per connection")];

/// One measure of one case that the working tree and the baseline both ran
/// on the same transport.
struct Comparison<'a> {
    case: &'a Case,
    /// The working tree's server: `Ours` (HTTP/1.1) or `OursH2`.
    server: Server,
    key: &'static str,
    label: &'static str,
    ours: Option<f64>,
    base: Option<f64>,
}

impl Comparison<'_> {
    fn case_label(&self) -> String {
        match self.server {
            Server::OursH2 => format!("{}, over HTTP/2", self.case.label),
            _ => self.case.label.to_owned(),
        }
    }

    fn transport(&self) -> &'static str {
        match self.server {
            Server::OursH2 => "h2",
            _ => "http/1.1",
        }
    }
}

fn comparisons(results: &[Outcome]) -> Vec<Comparison<'_>> {
    let mut rows = Vec::new();
    for ours in results {
        let Some(counterpart) = ours.server.baseline() else {
            continue;
        };
        let Some(base) = results
            .iter()
            .find(|o| o.server == counterpart && o.case.id == ours.case.id)
        else {
            continue;
        };
        let measures = match ours.case.kind {
            Kind::Load => LOAD_MEASURES,
            Kind::Idle => IDLE_MEASURES,
        };
        for &(key, label) in measures {
            rows.push(Comparison {
                case: &ours.case,
                server: ours.server,
                key,
                label,
                ours: ours.median(key),
                base: base.median(key),
            });
        }
    }
    rows
}

/// The working tree against the baseline, case by case.
fn render_baseline(results: &[Outcome], b: &baseline::Baseline) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Working tree against the baseline {} ({}), medians; ratio = working tree ÷ baseline \
         (for CPU, latency and memory below 1 is better, for msgs/s above 1). The two ran \
         alternately, ours first, in each round.\n",
        b.rev,
        b.short()
    );
    let _ = writeln!(
        t,
        "| case | measure | working tree | baseline | ratio |\n|---|---|---:|---:|---:|"
    );
    for c in comparisons(results) {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            c.case_label(),
            c.label,
            fmt_num(c.ours),
            fmt_num(c.base),
            ratio(c.ours, c.base)
        );
    }
    t
}

fn baseline_json(results: &[Outcome], b: &baseline::Baseline) -> Value {
    let rows: Vec<Value> = comparisons(results)
        .into_iter()
        .map(|c| {
            json!({
                "case": c.case.id,
                "transport": c.transport(),
                "measure": c.key,
                "working_tree": c.ours,
                "baseline": c.base,
                "ratio": match (c.ours, c.base) {
                    (Some(o), Some(b)) if b > 0.0 => json!(o / b),
                    _ => Value::Null,
                },
            })
        })
        .collect();
    json!({
        "rev": b.rev,
        "commit": b.commit,
        "source": baseline::source_dir(b).display().to_string(),
        "stage": b.stage.dir.display().to_string(),
        "note": "the baseline's rows are also in results, as server \"baseline\"",
        "comparison": rows,
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn targets(results: &[Outcome]) -> Vec<String> {
    let find = |case: &str, server: Server| results.iter().find(|o| o.case.id == case && o.server == server);
    let mut lines = Vec::new();
    for case in CASES {
        let (Some(target), Some(o)) = (case.target_cpu_us, find(case.id, Server::Ours)) else {
            continue;
        };
        if let Some(cpu) = o.median("server_cpu_us_per_msg") {
            lines.push(format!(
                "{}: server CPU ≤ {target} µs/msg: {} ({})",
                case.label,
                fmt_num(Some(cpu)),
                verdict(cpu <= target)
            ));
        }
    }
    if let Some(o) = find("1m", Server::Ours) {
        if let Some(mib) = o.median("mib_per_sec") {
            let gbs = mib * 1024.0 * 1024.0 / 1e9;
            lines.push(format!(
                "1 MiB binary: ≥ 1.7 GB/s: {gbs:.2} GB/s ({}; on a 2-core machine with the load client on \
                 the other core)",
                verdict(gbs >= 1.7)
            ));
        }
    }
    for case in CASES.iter().filter(|c| c.kind == Kind::Load) {
        let cpu = |s| find(case.id, s).and_then(|o| o.median("server_cpu_us_per_msg"));
        if let (Some(ours), Some(c)) = (cpu(Server::Ours), cpu(Server::CModule)) {
            lines.push(format!(
                "{}: the C module needs {:.1}× our server CPU per message",
                case.label,
                c / ours
            ));
        }
        if let (Some(ours), Some(h2)) = (cpu(Server::Ours), cpu(Server::OursH2)) {
            lines.push(format!(
                "{} over HTTP/2: server CPU ≤ 1.5× ours over HTTP/1.1: {:.2}× ({})",
                case.label,
                h2 / ours,
                verdict(h2 <= 1.5 * ours)
            ));
        }
        if let (Some(h2), Some(c)) = (cpu(Server::OursH2), cpu(Server::CModuleH2)) {
            lines.push(format!(
                "{} over HTTP/2: the C module needs {:.1}× our server CPU per message",
                case.label,
                c / h2
            ));
        }
    }
    if let Some(p50) = find("latency", Server::Ours).and_then(|o| o.median("p50_us")) {
        let others: Vec<(Server, f64)> = [Server::ModEcho, Server::Standalone]
            .into_iter()
            .filter_map(|s| Some((s, find("latency", s)?.median("p50_us")?)))
            .collect();
        let ok = p50 <= 20.0 && others.iter().all(|(_, p)| p50 <= *p);
        let vs: Vec<String> = others
            .iter()
            .map(|(s, p)| format!("{} {}", s.short(), fmt_num(Some(*p))))
            .collect();
        lines.push(format!(
            "latency p50 ≤ 20 µs and ≤ mod_echo's and the standalone server's: {} µs (vs {}) ({})",
            fmt_num(Some(p50)),
            if vs.is_empty() {
                "—".into()
            } else {
                vs.join(", ")
            },
            verdict(ok)
        ));
    }
    if let Some(kib) = find("idle", Server::Ours).and_then(|o| o.median("rss_kib_per_conn")) {
        let echo = find("idle", Server::ModEcho).and_then(|o| o.median("rss_kib_per_conn"));
        let beyond = echo.map(|e| kib - e);
        lines.push(format!(
            "idle connection ≤ 64 KiB beyond Apache's own per-connection cost: {} KiB{} ({})",
            fmt_num(Some(kib)),
            match beyond {
                Some(b) => format!(", {} KiB more than mod_echo's", fmt_num(Some(b))),
                None => String::new(),
            },
            verdict(beyond.unwrap_or(kib) <= 64.0)
        ));
    }
    lines
}

fn results_json(
    results: &[Outcome],
    runs: usize,
    seconds: f64,
    quick: bool,
    pinning: bool,
    cpus: usize,
    elapsed: Duration,
) -> Value {
    const FIELDS: &[&str] = &[
        "msgs_per_sec",
        "mib_per_sec",
        "p50_us",
        "p99_us",
        "server_cpu_us_per_msg",
        "wire_bytes_per_msg",
        "rss_kib_per_conn",
    ];
    let rows: Vec<Value> = results
        .iter()
        .map(|o| {
            let median: serde_json::Map<String, Value> = FIELDS
                .iter()
                .filter_map(|f| Some((f.to_string(), json!(o.median(f)?))))
                .collect();
            json!({
                "case": o.case.id,
                "case_label": o.case.label,
                "server": o.server.id(),
                "server_label": o.server.label(),
                "size": o.case.size,
                "conns": o.case.conns,
                "inflight": o.case.inflight,
                "content": o.case.content,
                "deflate": o.case.deflate,
                "client_on_server_core": o.case.same_core,
                "median": median,
                "runs": o.runs,
            })
        })
        .collect();
    let c_module: Vec<Value> = CASES
        .iter()
        .filter_map(|c| {
            let f = c.c_module?;
            Some(json!({"case": c.id, "server_cpu_us_per_msg": f.cpu_us, "mib_per_sec": f.mib_s, "p50_us": f.p50_us}))
        })
        .collect();
    json!({
        "machine": machine_info(cpus),
        "settings": {
            "runs": runs,
            "seconds": seconds,
            "quick": quick,
            "pinned": pinning,
            "servers_cpu": if pinning { json!(0) } else { Value::Null },
            "client_cpu": if pinning { json!(1) } else { Value::Null },
            "mpm": "event",
            "elapsed_seconds": elapsed.as_secs_f64(),
        },
        "results": rows,
        "c_module_reference": {
            "note": "issue 8's figures from another run; the C module is not built or measured here",
            "figures": c_module,
        },
        "targets": targets(results),
    })
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next()?.trim().to_owned())
}

fn machine_info(cpus: usize) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")?
            .split_once(':')
            .map(|(_, m)| m.trim().to_owned())
    });
    let httpd = httpd_runner::find_httpd().unwrap_or_else(|| PathBuf::from("apache2"));
    json!({
        "cpu_model": model,
        "cores": cpus,
        "kernel": command_line("uname", &["-sr"]),
        "httpd": command_line(&httpd.to_string_lossy(), &["-v"]),
        "rustc": command_line("rustc", &["--version"]),
        "git_revision": command_line("git", &["-C", &crate::util::root().to_string_lossy(), "rev-parse", "--short", "HEAD"]),
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, server: Server, runs: &[(f64, f64)]) -> Outcome {
        Outcome {
            case: *CASES.iter().find(|c| c.id == id).unwrap(),
            server,
            runs: runs
                .iter()
                .map(|&(cpu, rate)| json!({"server_cpu_us_per_msg": cpu, "msgs_per_sec": rate}))
                .collect(),
        }
    }

    /// The baseline follows ours in every case ours runs, so the two
    /// alternate in each round.
    #[test]
    fn the_baseline_runs_right_after_ours() {
        for case in CASES {
            let servers = case.servers();
            for s in Server::ALL {
                assert!(
                    servers.iter().filter(|&&t| t == s).count() <= 1,
                    "{}: {s:?} twice in {servers:?}",
                    case.id
                );
            }
            for (ours, base) in [
                (Server::Ours, Server::Baseline),
                (Server::OursH2, Server::BaselineH2),
            ] {
                if let Some(i) = servers.iter().position(|&s| s == ours) {
                    assert_eq!(servers.get(i + 1), Some(&base), "{}", case.id);
                } else {
                    assert!(!servers.contains(&base), "{}", case.id);
                }
            }
        }
    }

    #[test]
    fn the_comparison_has_both_values_and_the_ratio() {
        let results = [
            outcome("16b", Server::Ours, &[(1.0, 100.0), (3.0, 300.0), (2.0, 200.0)]),
            outcome(
                "16b",
                Server::Baseline,
                &[(4.0, 100.0), (4.0, 100.0), (4.0, 100.0)],
            ),
            outcome("4k", Server::Ours, &[(1.0, 1.0)]),
        ];
        let rows = comparisons(&results);
        // 16b only (4k has no baseline), one row per load measure.
        assert_eq!(rows.len(), LOAD_MEASURES.len());
        let first = &rows[0];
        assert_eq!((first.case.id, first.key), ("16b", "server_cpu_us_per_msg"));
        assert_eq!((first.ours, first.base), (Some(2.0), Some(4.0)));
        let b = baseline::Baseline {
            rev: "HEAD~1".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            stage: Stage {
                dir: "/nowhere".into(),
            },
        };
        let table = render_baseline(&results, &b);
        assert!(table.contains("baseline HEAD~1 (0123456789ab)"), "{table}");
        assert!(
            table.contains(
                "| 16 B binary, 1 conn × 64 in flight | server CPU µs/msg | 2.000 | 4.000 | 0.50× |"
            ),
            "{table}"
        );
        assert!(table.contains("| msgs/s | 200.0 | 100.0 | 2.00× |"), "{table}");
        let json = baseline_json(&results, &b);
        assert_eq!(json["commit"], b.commit);
        assert_eq!(json["comparison"][0]["ratio"], 0.5);
        assert_eq!(json["comparison"][0]["working_tree"], 2.0);
    }
}
