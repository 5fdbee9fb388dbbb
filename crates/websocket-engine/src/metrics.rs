//! Counters of WebSockets per location, shared by every child process and
//! kept across graceful restarts (`httpd::shm`), and what reads them: a
//! section of mod_status's `server-status` (with `Key: value` lines for
//! `?auto`) and the Prometheus text format for `SetHandler
//! websocket-metrics`.
//!
//! A location is the section that holds the `WebSocketHandler` (its path,
//! `/chat` for `<Location /chat>`). Each has a fixed slot of relaxed atomic
//! counters: updating one is a `fetch_add` on shared memory, never a lock.
//! Slots are claimed by path, by the configuration pass (every location it
//! finds) or by the first connection; the table holds [`MAX_LOCATIONS`].

use std::collections::HashMap;
use std::os::raw::c_int;

use httpd::conn::Request;
use httpd::sys;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Locations the shared table has room for; more are counted in the total
/// only (under the last slot, named "(other)").
pub const MAX_LOCATIONS: usize = 64;

/// Bytes of a location's path kept (longer paths are cut).
const PATH_BYTES: usize = 248;
const PATH_WORDS: usize = PATH_BYTES / 8;

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    UnsupportedVersion,
    Origin,
    PluginRefused,
    ConnectionLimit,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::BadRequest,
        Refusal::UnsupportedVersion,
        Refusal::Origin,
        Refusal::PluginRefused,
        Refusal::ConnectionLimit,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::UnsupportedVersion => "unsupported_version",
            Refusal::Origin => "origin",
            Refusal::PluginRefused => "plugin_refused",
            Refusal::ConnectionLimit => "connection_limit",
        }
    }

    fn counter(self) -> Counter {
        match self {
            Refusal::BadRequest => Counter::RefusedBadRequest,
            Refusal::UnsupportedVersion => Counter::RefusedVersion,
            Refusal::Origin => Counter::RefusedOrigin,
            Refusal::PluginRefused => Counter::RefusedPlugin,
            Refusal::ConnectionLimit => Counter::RefusedLimit,
        }
    }
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    Client,
    Server,
    /// Without a closing handshake.
    Dropped,
}

/// The counters of one location, by position in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    Open,
    OpenTls,
    OpenHttp2,
    Accepted,
    RefusedBadRequest,
    RefusedVersion,
    RefusedOrigin,
    RefusedPlugin,
    RefusedLimit,
    MessagesIn,
    MessagesOut,
    BytesIn,
    BytesOut,
    WireBytesIn,
    WireBytesOut,
    /// Of the wire bytes, those of connections that negotiated
    /// permessage-deflate.
    CompressedWireBytesIn,
    CompressedWireBytesOut,
    BackPressure,
    ClosedByClient,
    ClosedByServer,
    Dropped,
    /// Closes without a status code (1005 as the peer reports it).
    CloseNoCode,
    /// 1000 to 1015, then everything else.
    CloseFirst,
}

/// The close codes counted one by one; others are "other".
const CODES: std::ops::RangeInclusive<u16> = 1000..=1015;
const CLOSE_SLOTS: usize = 17;
const COUNTERS: usize = Counter::CloseFirst as usize + CLOSE_SLOTS;

/// A slot: its state (0 free, 1 being claimed, 2 in use), the path's
/// length and bytes, the counters.
const STATE: usize = 0;
const PATH_LEN: usize = 1;
const PATH: usize = 2;
const FIRST_COUNTER: usize = PATH + PATH_WORDS;
const STRIDE: usize = FIRST_COUNTER + COUNTERS;

/// The words the table takes in shared memory.
pub const WORDS: usize = MAX_LOCATIONS * STRIDE;

/// The table in use in this process (set by the configuration pass in the
/// parent, inherited by the children it forks).
static TABLE: OnceLock<&'static [AtomicU64]> = OnceLock::new();

/// Paths to slot numbers, this process's cache of the shared table.
static SLOTS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// Makes `words` (at least [`WORDS`] long, zeroed or a table from an
/// earlier pass) the table, and claims a slot for each of `locations`.
pub fn install(words: &'static [AtomicU64], locations: &[String]) {
    if words.len() < WORDS {
        return;
    }
    let table = *TABLE.get_or_init(|| words);
    for path in locations {
        claim(table, path);
    }
}

/// One location's counters (or nothing, when there is no table: counting
/// is then a no-op).
#[derive(Clone, Copy)]
pub struct Location {
    words: Option<&'static [AtomicU64]>,
}

impl Location {
    /// The counters of the location at `path` (claiming a slot if needed).
    pub fn at(path: &str) -> Location {
        let Some(table) = TABLE.get() else {
            return Location { words: None };
        };
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = slots.get_or_insert_with(HashMap::new);
        let slot = match cache.get(path) {
            Some(&slot) => slot,
            None => {
                let slot = claim(table, path);
                cache.insert(path.to_owned(), slot);
                slot
            }
        };
        Location {
            words: Some(&table[slot * STRIDE..(slot + 1) * STRIDE]),
        }
    }

    /// Counts nothing (benchmarks, tests).
    pub fn none() -> Location {
        Location { words: None }
    }

    pub fn add(&self, counter: Counter, n: u64) {
        if let (Some(words), true) = (self.words, n > 0) {
            words[FIRST_COUNTER + counter as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn sub(&self, counter: Counter, n: u64) {
        if let Some(words) = self.words {
            words[FIRST_COUNTER + counter as usize].fetch_sub(n, Ordering::Relaxed);
        }
    }

    pub fn refused(&self, why: Refusal) {
        self.add(why.counter(), 1);
    }

    /// A connection ended: how, and with which close code (`None`: none).
    pub fn closed(&self, by: ClosedBy, code: Option<u16>) {
        self.add(
            match by {
                ClosedBy::Client => Counter::ClosedByClient,
                ClosedBy::Server => Counter::ClosedByServer,
                ClosedBy::Dropped => Counter::Dropped,
            },
            1,
        );
        if by == ClosedBy::Dropped {
            return;
        }
        let Some(words) = self.words else { return };
        let index = match code {
            None => Counter::CloseNoCode as usize,
            Some(c) if CODES.contains(&c) => Counter::CloseFirst as usize + usize::from(c - CODES.start()),
            Some(_) => Counter::CloseFirst as usize + CLOSE_SLOTS - 1,
        };
        words[FIRST_COUNTER + index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Finds or claims the slot for `path`; the last slot when the table is full.
fn claim(table: &'static [AtomicU64], path: &str) -> usize {
    let bytes = &path.as_bytes()[..path.len().min(PATH_BYTES)];
    for slot in 0..MAX_LOCATIONS {
        let words = &table[slot * STRIDE..(slot + 1) * STRIDE];
        loop {
            match words[STATE].load(Ordering::Acquire) {
                2 => {
                    if slot_path(words) == bytes {
                        return slot;
                    }
                    break;
                }
                0 => {
                    if words[STATE]
                        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        let name = if slot == MAX_LOCATIONS - 1 {
                            b"(other)".as_slice()
                        } else {
                            bytes
                        };
                        write_path(words, name);
                        words[STATE].store(2, Ordering::Release);
                        if name == bytes {
                            return slot;
                        }
                        break;
                    }
                }
                // Another process is writing this slot's path: wait for it.
                _ => std::hint::spin_loop(),
            }
        }
    }
    MAX_LOCATIONS - 1
}

fn write_path(words: &[AtomicU64], path: &[u8]) {
    for (i, chunk) in path.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        words[PATH + i].store(u64::from_le_bytes(word), Ordering::Relaxed);
    }
    words[PATH_LEN].store(path.len() as u64, Ordering::Relaxed);
}

fn slot_path(words: &[AtomicU64]) -> Vec<u8> {
    let len = (words[PATH_LEN].load(Ordering::Relaxed) as usize).min(PATH_BYTES);
    let mut out = Vec::with_capacity(PATH_BYTES);
    for i in 0..PATH_WORDS {
        out.extend_from_slice(&words[PATH + i].load(Ordering::Relaxed).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One location's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub path: String,
    counters: [u64; COUNTERS],
}

impl Snapshot {
    pub fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize]
    }

    /// Closes by code: `None` for closes without one.
    fn closes(&self) -> impl Iterator<Item = (Option<String>, u64)> + '_ {
        let first = Counter::CloseFirst as usize;
        std::iter::once((None, self.get(Counter::CloseNoCode)))
            .chain(CODES.map(move |c| {
                (
                    Some(c.to_string()),
                    self.counters[first + usize::from(c - CODES.start())],
                )
            }))
            .chain(std::iter::once((
                Some("other".to_owned()),
                self.counters[first + CLOSE_SLOTS - 1],
            )))
    }
}

/// Every location in use, in slot order.
pub fn snapshot() -> Vec<Snapshot> {
    let Some(table) = TABLE.get() else {
        return Vec::new();
    };
    (0..MAX_LOCATIONS)
        .filter_map(|slot| {
            let words = &table[slot * STRIDE..(slot + 1) * STRIDE];
            if words[STATE].load(Ordering::Acquire) != 2 {
                return None;
            }
            let mut counters = [0u64; COUNTERS];
            for (i, c) in counters.iter_mut().enumerate() {
                *c = words[FIRST_COUNTER + i].load(Ordering::Relaxed);
            }
            Some(Snapshot {
                path: String::from_utf8_lossy(&slot_path(words)).into_owned(),
                counters,
            })
        })
        .collect()
}

fn total(locations: &[Snapshot], counter: Counter) -> u64 {
    locations.iter().map(|l| l.get(counter)).sum()
}

/// mod_status's `?auto` lines.
pub fn status_auto(locations: &[Snapshot]) -> String {
    let mut out = String::new();
    let t = |c| total(locations, c);
    let _ = writeln!(out, "WebSocketsOpen: {}", t(Counter::Open));
    let _ = writeln!(out, "WebSocketsTotal: {}", t(Counter::Accepted));
    let refused: u64 = Refusal::ALL.iter().map(|r| t(r.counter())).sum();
    let _ = writeln!(out, "WebSocketsRefused: {refused}");
    let _ = writeln!(out, "WebSocketMessagesIn: {}", t(Counter::MessagesIn));
    let _ = writeln!(out, "WebSocketMessagesOut: {}", t(Counter::MessagesOut));
    let _ = writeln!(out, "WebSocketBytesIn: {}", t(Counter::BytesIn));
    let _ = writeln!(out, "WebSocketBytesOut: {}", t(Counter::BytesOut));
    let _ = writeln!(out, "WebSocketLocations: {}", locations.len());
    for (i, l) in locations.iter().enumerate() {
        let _ = writeln!(out, "WebSocketLocation{i}Path: {}", l.path);
        let _ = writeln!(out, "WebSocketLocation{i}Open: {}", l.get(Counter::Open));
        let _ = writeln!(out, "WebSocketLocation{i}Total: {}", l.get(Counter::Accepted));
        let _ = writeln!(
            out,
            "WebSocketLocation{i}MessagesIn: {}",
            l.get(Counter::MessagesIn)
        );
        let _ = writeln!(
            out,
            "WebSocketLocation{i}MessagesOut: {}",
            l.get(Counter::MessagesOut)
        );
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// mod_status's HTML section.
pub fn status_html(locations: &[Snapshot]) -> String {
    let mut out = String::from("<hr />\n<h2>WebSockets</h2>\n");
    if locations.is_empty() {
        out.push_str("<p>No WebSocket location is configured.</p>\n");
        return out;
    }
    out.push_str(
        "<table border=\"0\"><tr><th>Location</th><th>Open</th><th>TLS</th><th>Total</th>\
         <th>Refused</th><th>Messages in</th><th>Messages out</th><th>Bytes in</th>\
         <th>Bytes out</th><th>Closed by client</th><th>Closed by server</th><th>Dropped</th></tr>\n",
    );
    for l in locations {
        let refused: u64 = Refusal::ALL.iter().map(|r| l.get(r.counter())).sum();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{refused}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&l.path),
            l.get(Counter::Open),
            l.get(Counter::OpenTls),
            l.get(Counter::Accepted),
            l.get(Counter::MessagesIn),
            l.get(Counter::MessagesOut),
            l.get(Counter::BytesIn),
            l.get(Counter::BytesOut),
            l.get(Counter::ClosedByClient),
            l.get(Counter::ClosedByServer),
            l.get(Counter::Dropped),
        );
    }
    out.push_str("</table>\n");
    out
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn prometheus(locations: &[Snapshot]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let loc = |l: &Snapshot| format!("location=\"{}\"", label(&l.path));
    let simple = |c: Counter| {
        let rows: Vec<(String, u64)> = locations.iter().map(|l| (loc(l), l.get(c))).collect();
        rows
    };
    family(
        "mod_websocket_connections_open",
        "gauge",
        "WebSocket connections open now.",
        &mut simple(Counter::Open).into_iter(),
    );
    family(
        "mod_websocket_connections_open_tls",
        "gauge",
        "WebSocket connections open now over TLS.",
        &mut simple(Counter::OpenTls).into_iter(),
    );
    family(
        "mod_websocket_connections_open_http2",
        "gauge",
        "WebSocket connections open now over HTTP/2.",
        &mut simple(Counter::OpenHttp2).into_iter(),
    );
    family(
        "mod_websocket_connections_total",
        "counter",
        "WebSocket handshakes accepted.",
        &mut simple(Counter::Accepted).into_iter(),
    );
    let refused: Vec<(String, u64)> = locations
        .iter()
        .flat_map(|l| {
            Refusal::ALL
                .iter()
                .map(move |r| (format!("{},reason=\"{}\"", loc(l), r.label()), l.get(r.counter())))
        })
        .collect();
    family(
        "mod_websocket_handshakes_refused_total",
        "counter",
        "WebSocket handshakes refused, by reason.",
        &mut refused.into_iter(),
    );
    family(
        "mod_websocket_messages_received_total",
        "counter",
        "Data messages received from clients.",
        &mut simple(Counter::MessagesIn).into_iter(),
    );
    family(
        "mod_websocket_messages_sent_total",
        "counter",
        "Data messages sent to clients.",
        &mut simple(Counter::MessagesOut).into_iter(),
    );
    family(
        "mod_websocket_bytes_received_total",
        "counter",
        "Payload bytes of the data messages received (after inflating).",
        &mut simple(Counter::BytesIn).into_iter(),
    );
    family(
        "mod_websocket_bytes_sent_total",
        "counter",
        "Payload bytes of the data messages sent (before compressing).",
        &mut simple(Counter::BytesOut).into_iter(),
    );
    family(
        "mod_websocket_wire_bytes_received_total",
        "counter",
        "Bytes read from clients after the handshake (frames, compressed where negotiated).",
        &mut simple(Counter::WireBytesIn).into_iter(),
    );
    family(
        "mod_websocket_wire_bytes_sent_total",
        "counter",
        "Bytes written to clients after the handshake (frames, compressed where negotiated).",
        &mut simple(Counter::WireBytesOut).into_iter(),
    );
    family(
        "mod_websocket_compressed_wire_bytes_received_total",
        "counter",
        "Of the wire bytes received, those of connections with permessage-deflate.",
        &mut simple(Counter::CompressedWireBytesIn).into_iter(),
    );
    family(
        "mod_websocket_compressed_wire_bytes_sent_total",
        "counter",
        "Of the wire bytes sent, those of connections with permessage-deflate.",
        &mut simple(Counter::CompressedWireBytesOut).into_iter(),
    );
    family(
        "mod_websocket_send_queue_waits_total",
        "counter",
        "Sends from plugin threads that waited for a full send queue.",
        &mut simple(Counter::BackPressure).into_iter(),
    );
    let closes: Vec<(String, u64)> = locations
        .iter()
        .flat_map(|l| {
            l.closes().map(move |(code, n)| {
                let code = code.unwrap_or_else(|| "none".to_owned());
                (format!("{},code=\"{code}\"", loc(l)), n)
            })
        })
        .collect();
    family(
        "mod_websocket_closes_total",
        "counter",
        "Closing handshakes, by close code (none: a close frame without one).",
        &mut closes.into_iter(),
    );
    let by: Vec<(String, u64)> = locations
        .iter()
        .flat_map(|l| {
            [
                ("client", Counter::ClosedByClient),
                ("server", Counter::ClosedByServer),
                ("dropped", Counter::Dropped),
            ]
            .map(|(who, c)| (format!("{},by=\"{who}\"", loc(l)), l.get(c)))
        })
        .collect();
    family(
        "mod_websocket_connections_ended_total",
        "counter",
        "Connections ended, by who closed them (dropped: without a closing handshake).",
        &mut by.into_iter(),
    );
    out
}

/// `SetHandler websocket-metrics`: the Prometheus text format for GET and
/// HEAD (access control is Apache's, with `Require`).
pub fn handler(r: Request<'_>) -> c_int {
    if !matches!(r.method(), "GET" | "HEAD") {
        r.answer_allows_only_get();
        return sys::HTTP_METHOD_NOT_ALLOWED;
    }
    r.set_content_type(c"text/plain; version=0.0.4; charset=utf-8");
    if !r.header_only() {
        r.write(prometheus(&snapshot()).as_bytes());
    }
    sys::OK
}

/// mod_status's hook: our section of `server-status` (`?auto`: its lines).
pub fn status_page(r: Request<'_>, short: bool) {
    let locations = snapshot();
    let text = if short {
        status_auto(&locations)
    } else {
        status_html(&locations)
    };
    r.write(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked_table() -> &'static [AtomicU64] {
        Box::leak(
            (0..WORDS)
                .map(|_| AtomicU64::new(0))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    }

    #[test]
    fn slots_are_claimed_once_per_path_and_counted() {
        let table = leaked_table();
        assert_eq!(claim(table, "/echo"), 0);
        assert_eq!(claim(table, "/chat"), 1);
        assert_eq!(claim(table, "/echo"), 0);
        let echo = Location {
            words: Some(&table[..STRIDE]),
        };
        echo.add(Counter::Open, 2);
        echo.sub(Counter::Open, 1);
        echo.add(Counter::MessagesIn, 5);
        echo.refused(Refusal::Origin);
        echo.closed(ClosedBy::Client, Some(1000));
        echo.closed(ClosedBy::Server, Some(4001));
        echo.closed(ClosedBy::Server, None);
        echo.closed(ClosedBy::Dropped, Some(1006));
        let long = "/x".repeat(200);
        let slot = claim(table, &long);
        assert_eq!(slot, 2);
        assert_eq!(claim(table, &long), 2, "a cut path still finds its slot");
        for i in 3..MAX_LOCATIONS + 5 {
            claim(table, &format!("/l{i}"));
        }
        assert_eq!(claim(table, "/one-too-many"), MAX_LOCATIONS - 1);
        // Read it back as snapshot() would.
        let snap = |slot: usize| {
            let words = &table[slot * STRIDE..(slot + 1) * STRIDE];
            let mut counters = [0u64; COUNTERS];
            for (i, c) in counters.iter_mut().enumerate() {
                *c = words[FIRST_COUNTER + i].load(Ordering::Relaxed);
            }
            Snapshot {
                path: String::from_utf8_lossy(&slot_path(words)).into_owned(),
                counters,
            }
        };
        let e = snap(0);
        assert_eq!(e.path, "/echo");
        assert_eq!(e.get(Counter::Open), 1);
        assert_eq!(e.get(Counter::MessagesIn), 5);
        assert_eq!(e.get(Counter::RefusedOrigin), 1);
        assert_eq!(e.get(Counter::ClosedByServer), 2);
        assert_eq!(e.get(Counter::Dropped), 1);
        let closes: Vec<(Option<String>, u64)> = e.closes().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            closes,
            [
                (None, 1),
                (Some("1000".to_owned()), 1),
                (Some("other".to_owned()), 1)
            ]
        );
        assert_eq!(snap(MAX_LOCATIONS - 1).path, "(other)");
        assert_eq!(snap(2).path.len(), PATH_BYTES);

        let text = prometheus(std::slice::from_ref(&e));
        assert!(text.contains("mod_websocket_connections_open{location=\"/echo\"} 1\n"));
        assert!(
            text.contains("mod_websocket_handshakes_refused_total{location=\"/echo\",reason=\"origin\"} 1\n")
        );
        assert!(text.contains("mod_websocket_closes_total{location=\"/echo\",code=\"1000\"} 1\n"));
        assert!(text.contains("# TYPE mod_websocket_messages_received_total counter\n"));
        let auto = status_auto(&[e]);
        assert!(auto.contains("WebSocketsOpen: 1\n"));
        assert!(auto.contains("WebSocketLocation0Path: /echo\n"));
        assert!(auto.contains("WebSocketMessagesIn: 5\n"));
    }

    #[test]
    fn labels_and_html_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(html_escape("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
