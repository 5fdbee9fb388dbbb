//! `scale`: many idle WebSockets at once, and what the server does while
//! they are open. Opens `conns` connections (plain or TLS), each after its
//! handshake silent, then, with all of them open: plain HTTP GET latency
//! (one new connection per request, as a visitor's browser would), the
//! servers' resident memory and threads against the empty server, one
//! echo on every connection, and `increments` dumb-increment connections
//! whose ticks (every 50 ms) are timed: the gap between two ticks of one
//! connection, p50/p99/max over all of them.
//!
//! Connections that the server does not upgrade within the handshake
//! timeout count as failed; after a batch in which all failed, the rest
//! are not tried (a server whose workers are all held answers none).
//!
//! More idle connections than one process may hold (its descriptor limit,
//! and the ephemeral ports towards one server port) are held by helper
//! processes of this binary (`scale-hold`), each towards its own port of
//! the server (`--ws-addr` lists them), which open their share, report,
//! echo on each when told, and close them when their standard input ends.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procfs;
use crate::wire::{client_header, handshake_on, parse_server_header, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// What a scale run needs.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Where the WebSockets connect (the TLS port with `tls`).
    pub ws_addr: SocketAddr,
    /// Further ports of the same server, for the helper processes.
    pub more_ws_addrs: Vec<SocketAddr>,
    /// TLS with this CA certificate (PEM) to check the server's against.
    pub tls: Option<PathBuf>,
    /// Where the plain GETs go.
    pub http_addr: SocketAddr,
    pub conns: usize,
    pub echo_path: String,
    pub increment_path: String,
    pub increments: usize,
    pub get_path: String,
    pub gets: usize,
    /// How long the ticks are timed.
    pub tick_window: Duration,
    pub server_pgids: Vec<u32>,
    /// Handshakes in flight at once.
    pub batch: usize,
    /// Instead of WebSockets, idle HTTP keep-alive connections that each
    /// GET this path once: what Apache itself keeps for an idle connection.
    pub keepalive_path: Option<String>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const ECHO_TIMEOUT: Duration = Duration::from_secs(20);
const INCREMENT_PROTOCOL: &str = "dumb-increment-protocol";

/// A plain or TLS stream.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

struct Ws {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

/// Memory and threads of the server processes now.
struct Footprint {
    rss_kib: u64,
    threads: usize,
    processes: usize,
}

fn footprint(pgids: &[u32], page: u64) -> Footprint {
    let rss = procfs::rss_bytes(pgids, page);
    Footprint {
        rss_kib: rss.values().sum::<u64>() / 1024,
        threads: procfs::threads(pgids),
        processes: rss.len(),
    }
}

fn tls_connector(ca: &PathBuf) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        roots
            .add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn open(
    opts: &ScaleOptions,
    tls: Option<&tokio_rustls::TlsConnector>,
    path: &str,
    protocol: Option<&str>,
    seed: u64,
) -> Result<Ws, String> {
    let tcp = TcpStream::connect(opts.ws_addr)
        .await
        .map_err(|e| format!("connect {}: {e}", opts.ws_addr))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(connector) => {
            let name = rustls::pki_types::ServerName::IpAddress(opts.ws_addr.ip().into());
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?,
            )
        }
    };
    let host = opts.ws_addr.to_string();
    if let Some(page) = &opts.keepalive_path {
        keepalive_get(&mut io, &host, page).await?;
        return Ok(Ws { io, buf: Vec::new() });
    }
    let (_, buf) = handshake_on(&mut io, &host, path, false, protocol, seed).await?;
    Ok(Ws { io, buf })
}

/// One GET of `path` on a connection that stays open after it: the whole
/// response (its `Content-Length`) is read, so the server holds nothing
/// more to send.
async fn keepalive_get(io: &mut Box<dyn Io>, host: &str, path: &str) -> Result<(), String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    io.flush().await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(format!("GET {path}: {:?}", head.lines().next().unwrap_or("")));
            }
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("GET {path}: no Content-Length"))?;
            if answer.len() >= end + 4 + length {
                return Ok(());
            }
        }
        let n = io.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("GET {path}: the server closed the connection"));
        }
        answer.extend_from_slice(&chunk[..n]);
    }
}

/// Opens `n` connections to `path`, `batch` handshakes at a time; the
/// open ones and the number that failed (with the first error).
async fn open_many(
    opts: &ScaleOptions,
    tls: Option<&tokio_rustls::TlsConnector>,
    n: usize,
    path: &str,
    protocol: Option<&'static str>,
    seed: u64,
) -> (Vec<Ws>, usize, Option<String>) {
    let mut open_ones = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first_error = None;
    let mut i = 0;
    while i < n {
        let end = (i + opts.batch).min(n);
        let mut tasks = Vec::with_capacity(end - i);
        for k in i..end {
            let opts = opts.clone();
            let tls = tls.cloned();
            let path = path.to_owned();
            tasks.push(tokio::task::spawn_local(async move {
                tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    open(&opts, tls.as_ref(), &path, protocol, seed + k as u64),
                )
                .await
                .unwrap_or_else(|_| Err(format!("no upgrade within {} s", HANDSHAKE_TIMEOUT.as_secs())))
            }));
        }
        let mut batch_ok = 0;
        for t in tasks {
            match t.await.unwrap_or_else(|e| Err(e.to_string())) {
                Ok(ws) => {
                    open_ones.push(ws);
                    batch_ok += 1;
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        i = end;
        if batch_ok == 0 {
            failed += n - end;
            break;
        }
    }
    (open_ones, failed, first_error)
}

fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x5a, 0x17, 0xc3, 0x09];
    let mut out = Vec::with_capacity(payload.len() + 14);
    client_header(&mut out, opcode, false, payload.len(), key);
    let start = out.len();
    out.extend_from_slice(payload);
    crate::payload::mask(&mut out[start..], key, 0);
    out
}

impl Ws {
    /// The next text message, answering pings on the way.
    async fn next_text(&mut self) -> Result<Vec<u8>, String> {
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(h) = parse_server_header(&self.buf)? {
                let end = h.header_len + h.len as usize;
                if self.buf.len() < end {
                    break;
                }
                let payload = self.buf[h.header_len..end].to_vec();
                self.buf.drain(..end);
                match h.opcode {
                    OP_TEXT => return Ok(payload),
                    OP_PING => {
                        let pong = masked_frame(OP_PONG, &payload);
                        self.io.write_all(&pong).await.map_err(|e| e.to_string())?;
                        self.io.flush().await.map_err(|e| e.to_string())?;
                    }
                    OP_CLOSE => {
                        let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                        return Err(format!("the server closed the connection ({code:?})"));
                    }
                    _ => {}
                }
            }
            let n = self.io.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server ended the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn echo(&mut self, i: usize) -> Result<(), String> {
        let text = format!("scale {i:08}");
        self.io
            .write_all(&masked_frame(OP_TEXT, text.as_bytes()))
            .await
            .map_err(|e| e.to_string())?;
        // A TLS stream may keep records until flushed.
        self.io.flush().await.map_err(|e| e.to_string())?;
        let got = self.next_text().await?;
        if got != text.as_bytes() {
            return Err(format!(
                "echo of {text:?} was {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
        Ok(())
    }
}

/// One GET on a new connection: its time to the whole response.
async fn get(addr: SocketAddr, path: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&answer[..answer.len().min(80)]).into_owned();
        return Err(format!("GET {path}: {head:?}"));
    }
    Ok(started.elapsed())
}

fn quantile_ms(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[rank].as_secs_f64() * 1000.0)
}

/// One echo on each of `conns` (numbered from `first`), a batch at a time;
/// how many answered, and the first failure. A keep-alive connection
/// answers a second GET instead: it proves the server kept it, since the
/// event MPM closes idle keep-alive connections early when its workers get
/// busy.
async fn answer_all(opts: &ScaleOptions, conns: &mut [Ws], first: usize) -> (usize, Option<String>) {
    let mut answered = 0;
    let mut first_failure = None;
    let mut k = first;
    for chunk in conns.chunks_mut(opts.batch) {
        let results = futures_util::future::join_all(chunk.iter_mut().map(|ws| {
            k += 1;
            let i = k;
            let host = opts.ws_addr.to_string();
            let page = opts.keepalive_path.as_deref();
            async move {
                let answer = async {
                    match page {
                        Some(page) => keepalive_get(&mut ws.io, &host, page).await,
                        None => ws.echo(i).await,
                    }
                };
                tokio::time::timeout(ECHO_TIMEOUT, answer)
                    .await
                    .unwrap_or_else(|_| Err("no answer in time".into()))
            }
        }))
        .await;
        for r in results {
            match r {
                Ok(()) => answered += 1,
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
    }
    (answered, first_failure)
}

/// Descriptors a process keeps for everything but idle connections.
const RESERVED_DESCRIPTORS: usize = 1024;
/// Connections one process opens towards one server port: Linux's default
/// ephemeral range (32768-60999) has 28,232 ports per destination.
const PER_DESTINATION: usize = 25_000;

/// How many idle connections one process can hold.
fn holder_capacity() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the local struct only.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur as usize
    } else {
        RESERVED_DESCRIPTORS * 2
    };
    soft.saturating_sub(RESERVED_DESCRIPTORS)
        .clamp(1, PER_DESTINATION)
}

/// The idle connections' shares among helper processes (destination,
/// count), or none when this process holds them all with the rest.
fn shares(opts: &ScaleOptions) -> Vec<(SocketAddr, usize)> {
    let capacity = holder_capacity();
    if opts.conns + opts.increments <= capacity {
        return Vec::new();
    }
    let holders = opts.conns.div_ceil(capacity);
    let destinations: Vec<SocketAddr> = std::iter::once(opts.ws_addr)
        .chain(opts.more_ws_addrs.iter().copied())
        .collect();
    (0..holders)
        .map(|i| {
            let count = opts.conns / holders + usize::from(i < opts.conns % holders);
            (destinations[i % destinations.len()], count)
        })
        .collect()
}

/// A helper process holding a share of the idle connections.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn spawn(opts: &ScaleOptions, addr: SocketAddr, count: usize, seed: u64) -> Result<Holder, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg("scale-hold")
            .args(["--ws-addr", &addr.to_string(), "--conns", &count.to_string()])
            .args(["--batch", &opts.batch.to_string(), "--seed", &seed.to_string()])
            .args(["--echo-path", &opts.echo_path]);
        if let Some(ca) = &opts.tls {
            cmd.arg("--tls").arg(ca);
        }
        if let Some(page) = &opts.keepalive_path {
            cmd.args(["--keepalive-path", page]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a holder: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Holder { child, stdin, stdout })
    }

    fn tell(&mut self, what: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().expect("open until dropped");
        writeln!(stdin, "{what}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("a holder is gone: {e}"))
    }

    /// Its next report, one JSON line.
    fn report(&mut self) -> Result<serde_json::Value, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => Err("a holder ended without its report; see its message above".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("a holder's report: {e}")),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Its standard input ends: it closes its connections and exits.
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// `scale-hold`: opens `opts.conns` idle connections, reports them on
/// standard output, and at each `echo` line on standard input echoes on
/// each and reports; closes them when standard input ends.
pub fn hold(opts: &ScaleOptions, seed: u64) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let tls = opts.tls.as_ref().map(tls_connector).transpose()?;
        let (mut conns, failed, first_error) =
            open_many(opts, tls.as_ref(), opts.conns, &opts.echo_path, None, seed).await;
        let say = |report: serde_json::Value| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{report}")
                .and_then(|()| out.flush())
                .map_err(|e| e.to_string())
        };
        say(json!({ "opened": conns.len(), "failed": failed, "first_failure": first_error }))?;
        // Blocking reads: this process has nothing else to do meanwhile.
        for line in std::io::stdin().lock().lines() {
            match line.map_err(|e| e.to_string())?.trim() {
                "echo" => {
                    let (answered, first_failure) = answer_all(opts, &mut conns, seed as usize).await;
                    say(json!({ "answered": answered, "first_failure": first_failure }))?;
                }
                other => return Err(format!("scale-hold: unexpected command {other:?}")),
            }
        }
        Ok(())
    })
}

/// Runs the scale measurement; the result is one JSON object.
pub fn run(opts: &ScaleOptions) -> Result<serde_json::Value, String> {
    if !opts.ws_addr.ip().is_loopback() || !opts.http_addr.ip().is_loopback() {
        return Err("scale only talks to loopback addresses".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, measure(opts))
}

async fn measure(opts: &ScaleOptions) -> Result<serde_json::Value, String> {
    let page = procfs::getconf("PAGESIZE")?;
    let tls = opts.tls.as_ref().map(tls_connector).transpose()?;
    // A warm server: its children and their first allocations exist.
    for _ in 0..10 {
        get(opts.http_addr, &opts.get_path).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let empty = footprint(&opts.server_pgids, page);

    let started = Instant::now();
    let shares = shares(opts);
    let mut holders = Vec::with_capacity(shares.len());
    let mut seed = 1;
    for &(addr, count) in &shares {
        holders.push(Holder::spawn(opts, addr, count, seed)?);
        seed += count as u64;
    }
    let own = if holders.is_empty() { opts.conns } else { 0 };
    let (mut idle, mut failed, mut first_error) =
        open_many(opts, tls.as_ref(), own, &opts.echo_path, None, 1).await;
    let mut opened = idle.len();
    for h in &mut holders {
        let report = h.report()?;
        opened += report["opened"].as_u64().unwrap_or(0) as usize;
        failed += report["failed"].as_u64().unwrap_or(0) as usize;
        if let Some(e) = report["first_failure"].as_str() {
            first_error.get_or_insert_with(|| e.to_owned());
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "scale: {opened} of {} {} open in {open_seconds:.1} s{}{}",
        opts.conns,
        if opts.keepalive_path.is_some() {
            "keep-alive connections"
        } else {
            "WebSockets"
        },
        if holders.is_empty() {
            String::new()
        } else {
            format!(" by {} processes", holders.len())
        },
        first_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (first failure: {e})"))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = footprint(&opts.server_pgids, page);

    // Plain HTTP while they are open.
    let mut gets = Vec::with_capacity(opts.gets);
    let mut get_failures = 0;
    let mut get_error = None;
    let mut failing = 0;
    for _ in 0..opts.gets {
        // A server that answers none would take 10 s for each.
        if failing == 3 {
            get_failures += opts.gets - gets.len() - get_failures;
            break;
        }
        failing += 1;
        match tokio::time::timeout(Duration::from_secs(10), get(opts.http_addr, &opts.get_path)).await {
            Ok(Ok(t)) => {
                gets.push(t);
                failing = 0;
            }
            Ok(Err(e)) => {
                get_failures += 1;
                get_error.get_or_insert(e);
            }
            Err(_) => {
                get_failures += 1;
                get_error.get_or_insert_with(|| "no answer within 10 s".to_owned());
            }
        }
    }
    gets.sort_unstable();
    let keepalive = opts.keepalive_path.is_some();

    // One echo on every open WebSocket (or a second GET on every
    // keep-alive connection), here and in the holders at once.
    let started = Instant::now();
    for h in &mut holders {
        h.tell("echo")?;
    }
    let (mut echoed, mut echo_error) = answer_all(opts, &mut idle, 0).await;
    for h in &mut holders {
        let report = h.report()?;
        echoed += report["answered"].as_u64().unwrap_or(0) as usize;
        if let Some(e) = report["first_failure"].as_str() {
            echo_error.get_or_insert_with(|| e.to_owned());
        }
    }
    let echo_seconds = started.elapsed().as_secs_f64();

    // Dumb-increment connections on top, their ticks timed.
    let (ticking, increment_failed, increment_error) = if opts.increments > 0 && !keepalive {
        open_many(
            opts,
            tls.as_ref(),
            opts.increments,
            &opts.increment_path,
            Some(INCREMENT_PROTOCOL),
            1 << 32,
        )
        .await
    } else {
        (Vec::new(), 0, None)
    };
    let window = opts.tick_window;
    let mut readers = Vec::new();
    for mut ws in ticking {
        readers.push(tokio::task::spawn_local(async move {
            let mut gaps = Vec::new();
            let until = Instant::now() + window;
            let mut last: Option<Instant> = None;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match tokio::time::timeout(left, ws.next_text()).await {
                    Err(_) => break,
                    Ok(Err(e)) => return (gaps, Some(e), ws),
                    Ok(Ok(_)) => {
                        let now = Instant::now();
                        if let Some(l) = last {
                            gaps.push(now - l);
                        }
                        last = Some(now);
                    }
                }
            }
            (gaps, None, ws)
        }));
    }
    let mut gaps = Vec::new();
    let mut tick_error = None;
    let mut ticking_conns = 0;
    let mut increment_conns = Vec::new();
    for r in readers {
        let (g, e, ws) = r.await.map_err(|e| e.to_string())?;
        if !g.is_empty() {
            ticking_conns += 1;
        }
        gaps.extend(g);
        if let Some(e) = e {
            tick_error.get_or_insert(e);
        }
        increment_conns.push(ws);
    }
    gaps.sort_unstable();
    let all_open = footprint(&opts.server_pgids, page);
    drop(increment_conns);
    drop(idle);
    drop(holders);

    let open = opts.conns - failed;
    let growth_kib = loaded.rss_kib as f64 - empty.rss_kib as f64;
    let increments = if keepalive { 0 } else { opts.increments };
    Ok(json!({
        "idle": if keepalive { "http-keepalive" } else { "websocket" },
        "tls": opts.tls.is_some(),
        "requested": opts.conns,
        "opened": open,
        "holder_processes": shares.len(),
        "failed": failed,
        "first_failure": first_error,
        "open_seconds": open_seconds,
        "empty": { "rss_kib": empty.rss_kib, "threads": empty.threads, "processes": empty.processes },
        "loaded": { "rss_kib": loaded.rss_kib, "threads": loaded.threads, "processes": loaded.processes },
        "rss_kib_per_conn": if open > 0 { json!(growth_kib / open as f64) } else { serde_json::Value::Null },
        "get": {
            "count": gets.len(),
            "failed": get_failures,
            "first_failure": get_error,
            "p50_ms": quantile_ms(&gets, 0.50),
            "p99_ms": quantile_ms(&gets, 0.99),
            "max_ms": gets.last().map(|d| d.as_secs_f64() * 1000.0),
        },
        "echo": { "answered": echoed, "of": open, "seconds": echo_seconds, "first_failure": echo_error },
        "increment": {
            "requested": increments,
            "opened": increments - increment_failed,
            "first_failure": increment_error.or(tick_error),
            "ticking": ticking_conns,
            "gaps": gaps.len(),
            "gap_p50_ms": quantile_ms(&gaps, 0.50),
            "gap_p99_ms": quantile_ms(&gaps, 0.99),
            "gap_max_ms": gaps.last().map(|d| d.as_secs_f64() * 1000.0),
            "window_seconds": window.as_secs_f64(),
        },
        "with_everything_open": { "rss_kib": all_open.rss_kib, "threads": all_open.threads, "processes": all_open.processes },
    }))
}
