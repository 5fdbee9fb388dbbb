//! The Redis bridge: publishes go to Redis pub/sub as well as to this
//! server's ring, and what other servers publish comes back from Redis to
//! this process's subscribers.
//!
//! Each child process that uses channels holds two connections: one that
//! publishes (a thread fed by a bounded queue, so a worker never waits for
//! Redis) and one that pattern-subscribes to `<prefix>*` (a thread that
//! delivers to the local registry). A message carries the ring's origin,
//! so a server ignores its own publishes when Redis echoes them: those
//! already reached every local subscriber through the ring.
//!
//! While Redis is unreachable, both threads retry with a growing delay
//! (0.1 s to 5 s; the publishing one with the first publish after it);
//! publishes meanwhile are dropped, and so are those a
//! broken connection took without answering: delivery is at most once. The
//! outage is logged once per process when it starts and once when it ends.
//!
//! On the wire, the Redis channel is `<prefix><channel>` and the message is
//! `MWS1`, the type (1 text, 2 binary), the origin (8 bytes, little endian)
//! and the payload. A message without that header, say from
//! `redis-cli PUBLISH mod_websocket:lobby hello`, is delivered as text when
//! it is valid UTF-8 and as binary otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::registry::Registry;
use crate::{ChannelName, Kind};

/// The Redis channel prefix when the configuration names none.
pub const DEFAULT_PREFIX: &str = "mod_websocket:";

const MAGIC: &[u8; 4] = b"MWS1";
/// Publishes waiting for the Redis thread, beyond which they are dropped.
const QUEUE: usize = 4096;
/// How often the threads look at the stop flag while they wait.
const TICK: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A publishing connection idle for longer is pinged before use, so that a
/// connection that broke meanwhile (Redis restarted) does not swallow the
/// next message.
const STALE: Duration = Duration::from_secs(1);

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Debug,
}

/// Where the threads log (the error log, from the module).
pub type Log = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// `WebSocketBroker`'s value, checked when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub url: String,
    pub prefix: String,
}

impl BrokerConfig {
    /// Checks the URL (`redis://host[:port][/db]`, `unix:///path`) the way the
    /// client will use it, without connecting.
    pub fn new(url: &str, prefix: Option<&str>) -> Result<BrokerConfig, String> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
            return Err(format!(
                "invalid broker URL '{url}' (expected redis://host[:port][/db] or unix:///path)"
            ));
        }
        redis::Client::open(url).map_err(|e| format!("invalid broker URL '{url}': {e}"))?;
        let prefix = prefix.unwrap_or(DEFAULT_PREFIX);
        if prefix.is_empty()
            || prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b == b'*' || b == b'?' || b == b'[')
        {
            return Err(format!(
                "invalid channel prefix '{prefix}' (no spaces or pattern characters * ? [)"
            ));
        }
        Ok(BrokerConfig {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The URL without a password, for logs.
    pub fn shown(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://…@{}", &self.url[..scheme], &self.url[at + 1..])
            }
            _ => self.url.clone(),
        }
    }
}

/// The message Redis carries for one publish.
fn encode(origin: u64, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(kind.to_byte());
    out.extend_from_slice(&origin.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a message from Redis is: its origin (`None` from another tool),
/// type and payload.
fn decode(message: &[u8]) -> (Option<u64>, Kind, &[u8]) {
    if message.len() >= 13 && message.starts_with(MAGIC) {
        if let Some(kind) = Kind::from_byte(message[4]) {
            let origin = u64::from_le_bytes(message[5..13].try_into().unwrap_or_default());
            return (Some(origin), kind, &message[13..]);
        }
    }
    let kind = if std::str::from_utf8(message).is_ok() {
        Kind::Text
    } else {
        Kind::Binary
    };
    (None, kind, message)
}

/// Whether Redis is reachable, as this process last saw it; logs the
/// changes once.
struct Health {
    down: AtomicBool,
    log: Log,
    shown: String,
}

impl Health {
    fn failed(&self, what: &str, e: &redis::RedisError) {
        if !self.down.swap(true, Ordering::AcqRel) {
            (self.log)(
                Level::Error,
                &format!(
                    "channels: Redis at {} is unreachable ({what}: {e}); retrying, and publishes to other servers are dropped until it is back",
                    self.shown
                ),
            );
        }
    }

    fn ok(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            (self.log)(
                Level::Notice,
                &format!("channels: Redis at {} is reachable again", self.shown),
            );
        }
    }
}

struct Outgoing {
    channel: ChannelName,
    message: Vec<u8>,
}

/// The bridge of one process.
pub struct Broker {
    config: BrokerConfig,
    origin: u64,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
    queue: Mutex<Option<SyncSender<Outgoing>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The subscribing thread runs (started with the first subscription).
    listening: AtomicBool,
    full_logged: AtomicBool,
}

impl Broker {
    pub fn new(config: BrokerConfig, origin: u64, log: Log) -> Broker {
        Broker {
            health: Arc::new(Health {
                down: AtomicBool::new(false),
                log,
                shown: config.shown(),
            }),
            config,
            origin,
            stop: Arc::new(AtomicBool::new(false)),
            queue: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            listening: AtomicBool::new(false),
            full_logged: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Hands a publish to the publishing thread (started on first use);
    /// never waits. False if it was dropped (the queue is full).
    pub fn publish(&self, channel: &ChannelName, kind: Kind, payload: &[u8]) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stop.load(Ordering::Acquire) {
            return false;
        }
        let sender = queue.get_or_insert_with(|| {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            self.spawn("publish", {
                let config = self.config.clone();
                let health = self.health.clone();
                let stop = self.stop.clone();
                move || publisher(&config, &health, &stop, &rx)
            });
            tx
        });
        let item = Outgoing {
            channel: channel.clone(),
            message: encode(self.origin, kind, payload),
        };
        match sender.try_send(item) {
            Ok(()) => {
                self.full_logged.store(false, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if !self.full_logged.swap(true, Ordering::Relaxed) {
                    (self.health.log)(
                        Level::Warning,
                        &format!("channels: {QUEUE} publishes wait for Redis; dropping new ones until it catches up"),
                    );
                }
                false
            }
        }
    }

    /// Starts delivering what other servers publish to `registry` (once).
    pub fn listen(&self, registry: Arc<Registry>) {
        if self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let config = self.config.clone();
        let health = self.health.clone();
        let stop = self.stop.clone();
        let origin = self.origin;
        self.spawn("subscribe", move || {
            subscriber(&config, &health, &stop, origin, &registry)
        });
    }

    fn spawn(&self, what: &str, f: impl FnOnce() + Send + 'static) {
        match std::thread::Builder::new()
            .name(format!("ws-redis-{what}"))
            .spawn(f)
        {
            Ok(t) => self
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(t),
            Err(e) => (self.health.log)(
                Level::Error,
                &format!("channels: cannot start the Redis {what} thread: {e}"),
            ),
        }
    }

    /// Stops both threads and waits for them (at most about one tick each,
    /// or a connection attempt).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sleeps `delay` in ticks; false if told to stop meanwhile.
fn pause(stop: &AtomicBool, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
    }
    !stop.load(Ordering::Acquire)
}

struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d
    }
}

/// A connection whose reads and writes give up after [`CONNECT_TIMEOUT`], so
/// that a Redis that hangs cannot hold a thread (or the child's exit) for long.
fn connect(config: &BrokerConfig) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(config.url.as_str())?;
    let conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    conn.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    conn.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    Ok(conn)
}

fn publisher(config: &BrokerConfig, health: &Health, stop: &AtomicBool, queue: &Receiver<Outgoing>) {
    let mut conn: Option<(redis::Connection, Instant)> = None;
    let mut backoff = Backoff::new();
    // While Redis is down, the next connection attempt is not before this.
    // Publishes that come sooner are dropped at once, so nothing published
    // during an outage is delivered late once Redis is back (at most once),
    // and the first publish after the delay tries again at once.
    let mut retry_at = Instant::now();
    loop {
        let item = match queue.recv_timeout(TICK) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Acquire) => continue,
            Err(_) => return,
        };
        if conn.is_none() {
            if Instant::now() < retry_at {
                continue;
            }
            match connect(config) {
                Ok(c) => {
                    backoff = Backoff::new();
                    conn = Some((c, Instant::now()));
                }
                Err(e) => {
                    health.failed("connect", &e);
                    retry_at = Instant::now() + backoff.next();
                    continue;
                }
            }
        }
        let Some((c, last)) = conn.as_mut() else {
            continue;
        };
        // The message was not sent on a connection that fails its PING: try
        // it on a new one. A connection that died in an outage the
        // subscribing thread already saw end is no new outage: only a
        // failed reconnection is.
        if last.elapsed() > STALE && redis::cmd("PING").query::<String>(c).is_err() {
            conn = None;
            match connect(config) {
                Ok(c) => conn = Some((c, Instant::now())),
                Err(e) => {
                    health.failed("connect", &e);
                    retry_at = Instant::now() + backoff.next();
                    continue;
                }
            }
        }
        let Some((c, _)) = conn.as_mut() else {
            continue;
        };
        let channel = format!("{}{}", config.prefix, item.channel);
        let publish = |c: &mut redis::Connection| {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&item.message)
                .query::<i64>(c)
        };
        let mut sent = publish(c);
        if sent
            .as_ref()
            .is_err_and(|e| e.is_connection_dropped() || e.is_io_error())
        {
            // Dropped by an outage that may be over already (used again
            // sooner than STALE): once more on a new connection, and only
            // if that fails is Redis down.
            conn = None;
            match connect(config) {
                Ok(mut fresh) => {
                    sent = publish(&mut fresh);
                    conn = Some((fresh, Instant::now()));
                }
                Err(e) => {
                    health.failed("connect", &e);
                    retry_at = Instant::now() + backoff.next();
                    continue;
                }
            }
        }
        match sent {
            Ok(_) => {
                if let Some((_, last)) = conn.as_mut() {
                    *last = Instant::now();
                }
                health.ok();
            }
            Err(e) => {
                health.failed("publish", &e);
                conn = None;
            }
        }
    }
}

fn subscriber(config: &BrokerConfig, health: &Health, stop: &AtomicBool, origin: u64, registry: &Registry) {
    let pattern = format!("{}*", config.prefix);
    let mut backoff = Backoff::new();
    while !stop.load(Ordering::Acquire) {
        let mut conn = match connect(config) {
            Ok(c) => c,
            Err(e) => {
                health.failed("connect", &e);
                if !pause(stop, backoff.next()) {
                    return;
                }
                continue;
            }
        };
        let mut pubsub = conn.as_pubsub();
        if let Err(e) = pubsub
            .psubscribe(&pattern)
            .and_then(|()| pubsub.set_read_timeout(Some(TICK)))
        {
            health.failed("subscribe", &e);
            if !pause(stop, backoff.next()) {
                return;
            }
            continue;
        }
        backoff = Backoff::new();
        health.ok();
        while !stop.load(Ordering::Acquire) {
            match pubsub.get_message() {
                Ok(msg) => {
                    let Some(name) = msg.get_channel_name().strip_prefix(config.prefix.as_str()) else {
                        continue;
                    };
                    let (from, kind, payload) = decode(msg.get_payload_bytes());
                    if from == Some(origin) {
                        continue;
                    }
                    if ChannelName::new(name.as_bytes()).is_ok() {
                        registry.deliver(name, kind, payload);
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    health.failed("subscription", &e);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_foreign_ones_are_typed_by_content() {
        let m = encode(42, Kind::Binary, b"\x00\x01");
        assert_eq!(decode(&m), (Some(42), Kind::Binary, &b"\x00\x01"[..]));
        assert_eq!(
            decode(&encode(7, Kind::Text, b"")),
            (Some(7), Kind::Text, &b""[..])
        );
        assert_eq!(decode(b"hello"), (None, Kind::Text, &b"hello"[..]));
        assert_eq!(decode(b"\xff\x00"), (None, Kind::Binary, &b"\xff\x00"[..]));
        // A foreign message that merely starts like ours but has no valid type.
        assert_eq!(decode(b"MWS1\x09abcdefgh-rest").0, None);
    }

    #[test]
    fn configuration_is_checked() {
        let c = BrokerConfig::new("redis://127.0.0.1:6379/2", None).unwrap();
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert!(BrokerConfig::new("unix:///run/redis.sock", Some("site1:")).is_ok());
        assert!(BrokerConfig::new("rediss://cache:6380/1", None).is_ok(), "TLS");
        for bad in ["127.0.0.1:6379", "http://x", "redis://", ""] {
            assert!(BrokerConfig::new(bad, None).is_err(), "{bad}");
        }
        assert!(BrokerConfig::new("redis://h", Some("a b")).is_err());
        assert!(BrokerConfig::new("redis://h", Some("x*")).is_err());
        let secret = BrokerConfig::new("redis://user:pw@cache:6379", None).unwrap();
        assert_eq!(secret.shown(), "redis://…@cache:6379");
    }
}
