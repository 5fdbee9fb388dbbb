//! The load client of `cargo xtask bench`.
//!
//! It drives one case against one server: `conns` connections, each keeping
//! `inflight` messages of `size` bytes outstanding, for a warm-up and then a
//! measured window. It writes raw frames (templates masked once, large
//! payloads written from them without copying), verifies every byte of every
//! echo (any difference aborts the run with an error), and reports msgs/s,
//! MiB/s, round-trip p50/p99 and the server's CPU time per message, read
//! from /proc for every process in the server's process groups over exactly
//! the measured window. `--raw` speaks plain bytes (for Apache's mod_echo).
//! `--h2` opens each connection as an RFC 8441 stream (extended CONNECT) on
//! an h2c connection of its own, prior knowledge, as a browser does over
//! HTTP/2 (see [`link`]).
//!
//! It runs on one thread (a tokio current-thread runtime): pinned to a core
//! of its own, it costs far less per message than any of the servers.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub mod conn;
pub mod fanout;
pub mod link;
pub mod payload;
pub mod procfs;
pub mod scale;
pub mod wire;
pub mod words;

use conn::{Conn, ConnStats, Phase, Variant, Workload};
use link::Link;
use payload::{Content, MASK_KEY, TAG_LEN};

/// Precompressed messages the deflate case cycles through.
const DEFLATE_VARIANTS: u64 = 64;

/// One case against one server.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub path: String,
    /// Plain bytes instead of WebSocket frames (mod_echo).
    pub raw: bool,
    /// WebSockets over HTTP/2 (RFC 8441, h2c with prior knowledge).
    pub h2: bool,
    pub size: usize,
    pub conns: usize,
    pub inflight: usize,
    pub content: Content,
    /// Offer permessage-deflate and send compressed messages (it must be accepted).
    pub deflate: bool,
    pub warmup: Duration,
    pub duration: Duration,
    /// Process groups whose CPU time (or memory) is the server's.
    pub server_pgids: Vec<u32>,
    /// Instead of load: open `conns` connections, exchange one message on
    /// each, and report the servers' resident memory per idle connection.
    pub idle: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            addr: ([127, 0, 0, 1], 80).into(),
            path: "/echo".into(),
            raw: false,
            h2: false,
            size: 16,
            conns: 1,
            inflight: 1,
            content: Content::Binary,
            deflate: false,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            server_pgids: Vec::new(),
            idle: false,
        }
    }
}

/// Runs the case; the result is one JSON object.
pub fn run(opts: &Options) -> Result<serde_json::Value, String> {
    if !opts.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", opts.addr));
    }
    if opts.size < TAG_LEN || opts.conns == 0 || opts.inflight == 0 {
        return Err(format!(
            "size must be at least {TAG_LEN} bytes, conns and inflight at least 1"
        ));
    }
    if opts.deflate && opts.raw {
        return Err("--deflate needs WebSocket framing".into());
    }
    if opts.h2 && opts.raw {
        return Err("--h2 carries WebSockets, not raw bytes".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        if opts.idle {
            idle(opts).await
        } else {
            load(opts).await
        }
    })
}

fn workload(opts: &Options, inflight: usize) -> Workload {
    let opcode = if opts.content == Content::Binary {
        wire::OP_BINARY
    } else {
        wire::OP_TEXT
    };
    let mut template = payload::template(opts.content, opts.size, 1);
    if opts.raw {
        // mod_echo echoes line by line (and an unfinished line only once
        // 8 KiB of it arrived): one message is one line.
        for b in template.iter_mut().filter(|b| **b == b'\n') {
            *b = b' ';
        }
        *template.last_mut().expect("size >= TAG_LEN") = b'\n';
    }
    let mut premasked = template.clone();
    if !opts.raw {
        payload::mask(&mut premasked, MASK_KEY, 0);
    }
    let variants = if opts.deflate {
        (0..DEFLATE_VARIANTS)
            .map(|v| {
                let mut plain = payload::template(opts.content, opts.size, 100 + v);
                plain[..TAG_LEN].copy_from_slice(&payload::tag(v));
                let mut body = payload::deflate_message(&plain);
                payload::mask(&mut body, MASK_KEY, 0);
                Variant {
                    plain,
                    masked_body: Rc::new(body),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Workload {
        raw: opts.raw,
        size: opts.size,
        inflight,
        opcode,
        template,
        premasked: Rc::new(premasked),
        variants,
    }
}

/// Connects (and shakes hands) connection `i`.
async fn connect(opts: &Options, i: usize) -> Result<(Link, Vec<u8>), String> {
    if opts.h2 {
        let answer = link::connect_h2(opts.addr, &opts.path, opts.deflate)
            .await
            .map_err(|e| format!("connection {i}: {e}"))?;
        let deflate = answer
            .extensions
            .as_deref()
            .is_some_and(|e| e.trim_start().starts_with("permessage-deflate"));
        if opts.deflate && !deflate {
            return Err(format!(
                "connection {i}: the server did not accept permessage-deflate"
            ));
        }
        return Ok((Link::H2(answer.link), Vec::new()));
    }
    let mut stream = TcpStream::connect(opts.addr)
        .await
        .map_err(|e| format!("connection {i}: cannot connect to {}: {e}", opts.addr))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("connection {i}: TCP_NODELAY: {e}"))?;
    if opts.raw {
        return Ok((Link::Tcp(stream), Vec::new()));
    }
    let host = opts.addr.to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = now.as_nanos() as u64 ^ ((i as u64) << 32) ^ std::process::id() as u64;
    let (deflate, leftover) = wire::handshake(&mut stream, &host, &opts.path, opts.deflate, seed)
        .await
        .map_err(|e| format!("connection {i}: {e}"))?;
    if opts.deflate && !deflate {
        return Err(format!(
            "connection {i}: the server did not accept permessage-deflate"
        ));
    }
    Ok((Link::Tcp(stream), leftover))
}

type Task = JoinHandle<Result<(ConnStats, Option<Conn>), String>>;

/// Sleeps `d`, failing early if a connection task ends (with its error).
async fn watch(d: Duration, tasks: &mut [Task]) -> Result<(), String> {
    let until = tokio::time::Instant::now() + d;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return Ok(());
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(50))).await;
        for t in tasks.iter_mut() {
            if t.is_finished() {
                return match t.await {
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(_)) => Err("a connection ended before the run did".into()),
                    Err(e) => Err(format!("a connection task failed: {e}")),
                };
            }
        }
    }
}

async fn load(opts: &Options) -> Result<serde_json::Value, String> {
    let work = Rc::new(workload(opts, opts.inflight));
    let phase = Rc::new(Cell::new(Phase::Warmup));
    let clk_tck = procfs::getconf("CLK_TCK")?;
    let mut tasks: Vec<Task> = Vec::with_capacity(opts.conns);
    for i in 0..opts.conns {
        let (stream, leftover) = connect(opts, i).await?;
        let conn = Conn::new(
            i,
            stream,
            leftover,
            work.clone(),
            phase.clone(),
            opts.deflate,
            None,
            false,
        );
        tasks.push(tokio::task::spawn_local(conn.drive()));
    }
    watch(opts.warmup, &mut tasks).await?;
    let before = procfs::processes(&opts.server_pgids);
    let client_before = procfs::own_ticks();
    let t0 = Instant::now();
    phase.set(Phase::Measure);
    watch(opts.duration, &mut tasks).await?;
    phase.set(Phase::Stop);
    let elapsed = t0.elapsed().as_secs_f64();
    let after = procfs::processes(&opts.server_pgids);
    let client_ticks = procfs::own_ticks() - client_before;

    let mut measured = 0u64;
    let mut latencies: Vec<u32> = Vec::new();
    let mut wire_bytes = 0u64;
    for t in tasks {
        let (stats, _) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .map_err(|_| "connections did not drain and close within 60 s".to_string())?
            .map_err(|e| format!("a connection task failed: {e}"))??;
        measured += stats.measured;
        latencies.extend_from_slice(&stats.latencies_ns);
        wire_bytes += stats.wire_bytes;
    }
    if measured == 0 {
        return Err("no message completed in the measured window".into());
    }
    let ticks = procfs::ticks_between(&before, &after);
    let cpu_us = ticks as f64 * 1e6 / clk_tck as f64;
    let msgs_per_sec = measured as f64 / elapsed;
    Ok(json!({
        "messages": measured,
        "seconds": elapsed,
        "msgs_per_sec": msgs_per_sec,
        "mib_per_sec": msgs_per_sec * opts.size as f64 / (1024.0 * 1024.0),
        "p50_us": percentile_us(&mut latencies, 0.50),
        "p99_us": percentile_us(&mut latencies, 0.99),
        "server_cpu_ticks": ticks,
        "clk_tck": clk_tck,
        "server_cpu_us_per_msg": if opts.server_pgids.is_empty() { serde_json::Value::Null } else { json!(cpu_us / measured as f64) },
        "server_processes": after.len(),
        // How busy the load client itself was (1.0 = a whole CPU): near 1,
        // the client limits msgs/s (not the server CPU per message).
        "client_cpu_share": client_ticks as f64 / clk_tck as f64 / elapsed,
        "deflate": opts.deflate,
        // Echo payload bytes on the wire per message (WebSocket only; less
        // than `size` when compressed).
        "wire_bytes_per_msg": if opts.raw { serde_json::Value::Null } else { json!(wire_bytes as f64 / measured as f64) },
    }))
}

/// The `q` quantile (nearest rank) in microseconds.
pub fn percentile_us(ns: &mut [u32], q: f64) -> f64 {
    if ns.is_empty() {
        return 0.0;
    }
    let rank = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
    let (_, v, _) = ns.select_nth_unstable(rank);
    *v as f64 / 1000.0
}

/// Opens `conns` connections that each exchange one message, then idle.
async fn open_idle(
    opts: &Options,
    work: &Rc<Workload>,
    phase: &Rc<Cell<Phase>>,
) -> Result<Vec<Conn>, String> {
    let mut open = Vec::with_capacity(opts.conns);
    for i in 0..opts.conns {
        let (stream, leftover) = connect(opts, i).await?;
        let conn = Conn::new(
            i,
            stream,
            leftover,
            work.clone(),
            phase.clone(),
            opts.deflate,
            Some(1),
            true,
        );
        let (_, conn) = tokio::time::timeout(Duration::from_secs(10), conn.drive())
            .await
            .map_err(|_| format!("connection {i}: no echo within 10 s"))??;
        open.extend(conn);
    }
    Ok(open)
}

async fn idle(opts: &Options) -> Result<serde_json::Value, String> {
    if opts.server_pgids.is_empty() {
        return Err("--idle needs --server-pgid".into());
    }
    let page = procfs::getconf("PAGESIZE")?;
    let work = Rc::new(workload(opts, 1));
    let phase = Rc::new(Cell::new(Phase::Warmup));
    let settle = Duration::from_millis(500);
    // A first round lets the server's threads and allocators reach their
    // steady size, so the second measures what connections hold.
    drop(open_idle(opts, &work, &phase).await?);
    tokio::time::sleep(settle).await;
    let before = procfs::rss_bytes(&opts.server_pgids, page);
    let open = open_idle(opts, &work, &phase).await?;
    tokio::time::sleep(settle).await;
    let after = procfs::rss_bytes(&opts.server_pgids, page);
    drop(open);
    let growth = procfs::rss_growth(&before, &after);
    let per_conn = growth as f64 / opts.conns as f64 / 1024.0;
    let processes = after.len();
    Ok(json!({
        "idle_connections": opts.conns,
        "rss_before_kib": before.values().sum::<u64>() / 1024,
        "rss_after_kib": after.values().sum::<u64>() / 1024,
        "rss_kib_per_conn": per_conn,
        "server_processes": processes,
        "deflate": opts.deflate,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_us(&mut v, 0.50), 50.0);
        assert_eq!(percentile_us(&mut v, 0.99), 99.0);
        let mut one = vec![7000];
        assert_eq!(percentile_us(&mut one, 0.99), 7.0);
        assert_eq!(percentile_us(&mut [], 0.5), 0.0);
    }
}
