//! `--fanout N`: one publisher, N subscribers of one channel, through the
//! C test plugin's `sub:`/`pub:` commands. Subscribers may be on another
//! server than the publisher (across a broker). Two measurements:
//!
//! - throughput: the publisher keeps a few publishes in flight (a publish
//!   is done when all N got it) and counts completions per second;
//! - delay: then publishes at a fixed rate below that; for each, the time
//!   from its send to its arrival at the last of the N subscribers
//!   (p50/p99).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{client_header, handshake, parse_server_header, OP_CLOSE, OP_TEXT};

/// What a fanout run needs.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    pub subscribers: usize,
    /// Where subscribers connect, and the publisher.
    pub sub_addr: SocketAddr,
    pub pub_addr: SocketAddr,
    pub path: String,
    /// Publishes per second during the delay measurement; by default a
    /// fifth of the measured throughput, at most 50.
    pub rate: Option<u32>,
    pub duration: Duration,
    /// Publishes in flight during the throughput measurement.
    pub window: u64,
}

const CHANNEL: &str = "fanout";

/// Per publish: when it was sent, how many subscribers have it, when the
/// first and the last did.
#[derive(Default)]
struct Tally {
    sent: Vec<Option<Instant>>,
    got: Vec<usize>,
    first: Vec<Option<Instant>>,
    last: Vec<Option<Instant>>,
    complete: u64,
}

impl Tally {
    fn slot(&mut self, seq: usize) {
        if self.sent.len() <= seq {
            self.sent.resize(seq + 1, None);
            self.got.resize(seq + 1, 0);
            self.first.resize(seq + 1, None);
            self.last.resize(seq + 1, None);
        }
    }
}

fn text_frame(text: &str, key: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 14);
    client_header(&mut out, OP_TEXT, false, text.len(), key);
    let start = out.len();
    out.extend_from_slice(text.as_bytes());
    crate::payload::mask(&mut out[start..], key, 0);
    out
}

async fn open(addr: SocketAddr, path: &str, seed: u64) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (_, leftover) = handshake(&mut stream, &addr.to_string(), path, false, seed).await?;
    Ok((stream, leftover))
}

/// Reads text frames, handing each payload to `on_text` until it says stop.
async fn read_texts(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut on_text: impl FnMut(&[u8]) -> bool,
) -> Result<(), String> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some(h) = parse_server_header(buf)? {
            let end = h.header_len + h.len as usize;
            if buf.len() < end {
                break;
            }
            if h.opcode == OP_CLOSE {
                return Err("the server closed a connection".into());
            }
            let go_on = h.opcode != OP_TEXT || on_text(&buf[h.header_len..end]);
            buf.drain(..end);
            if !go_on {
                return Ok(());
            }
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("a connection was closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn subscribe(opts: &FanoutOptions, i: usize) -> Result<(TcpStream, Vec<u8>), String> {
    let (mut stream, mut buf) = open(opts.sub_addr, &opts.path, i as u64 + 1).await?;
    let frame = text_frame(&format!("sub:{CHANNEL}"), [1, 2, 3, 4]);
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    read_texts(&mut stream, &mut buf, |t| {
        answer = t.to_vec();
        false
    })
    .await?;
    if answer != b"subscribed" {
        return Err(format!(
            "subscribe answered {:?}",
            String::from_utf8_lossy(&answer)
        ));
    }
    Ok((stream, buf))
}

fn percentile_ms(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[rank]
}

/// Runs both measurements; one JSON object.
pub fn run(opts: &FanoutOptions) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run_async(opts.clone()))
}

async fn run_async(opts: FanoutOptions) -> Result<serde_json::Value, String> {
    let tally = Rc::new(RefCell::new(Tally::default()));
    let started = Instant::now();
    let mut readers = Vec::with_capacity(opts.subscribers);
    for i in 0..opts.subscribers {
        let (mut stream, mut buf) = subscribe(&opts, i).await?;
        let tally = tally.clone();
        let n = opts.subscribers;
        readers.push(tokio::task::spawn_local(async move {
            read_texts(&mut stream, &mut buf, |t| {
                let Some(seq) = std::str::from_utf8(t).ok().and_then(|s| s.parse::<usize>().ok()) else {
                    return true;
                };
                let now = Instant::now();
                let mut t = tally.borrow_mut();
                t.slot(seq);
                t.got[seq] += 1;
                t.first[seq].get_or_insert(now);
                t.last[seq] = Some(now);
                if t.got[seq] == n {
                    t.complete += 1;
                }
                true
            })
            .await
        }));
    }
    let subscribed_in = started.elapsed();
    let (mut publisher, _) = open(opts.pub_addr, &opts.path, 0).await?;
    // Subscriptions on another server reach it through the broker: wait
    // until a publish reaches everyone before measuring.
    let mut seq = 0usize;
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        send(&mut publisher, &tally, seq).await?;
        seq += 1;
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline
            && tally.borrow().got.get(seq - 1).copied().unwrap_or(0) < opts.subscribers
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if tally.borrow().got.get(seq - 1).copied().unwrap_or(0) == opts.subscribers {
            break;
        }
        if Instant::now() > ready_by {
            return Err("publishes never reached every subscriber".into());
        }
    }
    // Throughput with a window of publishes in flight.
    let before = tally.borrow().complete;
    let t0 = Instant::now();
    let end = t0 + opts.duration;
    while Instant::now() < end {
        let done = tally.borrow().complete;
        if (seq as u64) < done + opts.window {
            send(&mut publisher, &tally, seq).await?;
            seq += 1;
        } else {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let completed = tally.borrow().complete - before;
    let per_second = completed as f64 / t0.elapsed().as_secs_f64();
    // Delay at a fixed rate, well below what the system just sustained, so
    // that it measures one publish's way to everyone and not a queue.
    let rate = opts
        .rate
        .unwrap_or_else(|| (per_second / 5.0).clamp(1.0, 50.0) as u32);
    let drained_by = Instant::now() + Duration::from_secs(10);
    while tally.borrow().complete < seq as u64 && Instant::now() < drained_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = seq;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let end = Instant::now() + opts.duration;
    let mut next = Instant::now();
    while Instant::now() < end {
        send(&mut publisher, &tally, seq).await?;
        seq += 1;
        next += interval;
        tokio::time::sleep_until(next.into()).await;
    }
    let settle = Instant::now() + Duration::from_secs(10);
    while tally.borrow().complete < seq as u64 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut delays, mut firsts, incomplete) = {
        let t = tally.borrow();
        let (mut d, mut f) = (Vec::new(), Vec::new());
        let mut incomplete = 0;
        for s in first..seq {
            match (t.sent[s], t.first[s], t.last[s], t.got[s] == opts.subscribers) {
                (Some(sent), Some(head), Some(last), true) => {
                    d.push(last.duration_since(sent).as_secs_f64() * 1000.0);
                    f.push(head.duration_since(sent).as_secs_f64() * 1000.0);
                }
                _ => incomplete += 1,
            }
        }
        (d, f, incomplete)
    };
    delays.sort_by(f64::total_cmp);
    firsts.sort_by(f64::total_cmp);
    for r in readers {
        r.abort();
    }
    Ok(json!({
        "subscribers": opts.subscribers,
        "subscribe_seconds": subscribed_in.as_secs_f64(),
        "rate": rate,
        "delay_samples": delays.len(),
        "incomplete": incomplete,
        "delay_p50_ms": percentile_ms(&delays, 0.50),
        "delay_p99_ms": percentile_ms(&delays, 0.99),
        "delay_max_ms": delays.last().copied().unwrap_or(0.0),
        "first_p50_ms": percentile_ms(&firsts, 0.50),
        "first_p99_ms": percentile_ms(&firsts, 0.99),
        "publishes_per_second": per_second,
        "deliveries_per_second": per_second * opts.subscribers as f64,
    }))
}

async fn send(publisher: &mut TcpStream, tally: &Rc<RefCell<Tally>>, seq: usize) -> Result<(), String> {
    let frame = text_frame(&format!("pub:{CHANNEL}:{seq}"), [9, 8, 7, 6]);
    {
        let mut t = tally.borrow_mut();
        t.slot(seq);
        t.sent[seq] = Some(Instant::now());
    }
    publisher.write_all(&frame).await.map_err(|e| e.to_string())
}
