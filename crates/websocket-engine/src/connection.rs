//! The server side of the plugin ABI: the `WebSocketServer` callbacks and
//! the per-connection state behind them.
//!
//! Plugins may call `send` from any thread. Frames are encoded straight into
//! a byte queue shared with the connection's owner thread, which alone
//! touches Apache's filters (DESIGN.md §3). The queue is bounded: a sender on
//! another thread waits while it is full, and every sender gets 0 at once
//! once the session has ended.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uint, c_ushort};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use httpd::sys;
use websocket_plugin::ffi::{
    WebSocketServer, WebSocketState, MESSAGE_TYPE_BINARY, MESSAGE_TYPE_CLOSE, MESSAGE_TYPE_PING,
    MESSAGE_TYPE_PONG, MESSAGE_TYPE_TEXT, WEBSOCKET_SERVER_VERSION_1,
};
use websocket_proto::close::{CloseCode, ClosePayload};
use websocket_proto::deflate::{Deflater, Negotiated};
use websocket_proto::encoder::FrameHeaderBuf;
use websocket_proto::frame::{FrameHeader, MAX_CONTROL_PAYLOAD};
use websocket_proto::Opcode;

use crate::conn_io::ConnIo;

/// Bytes other threads may queue before `send` waits for the owner to
/// write them out. One message larger than this still goes through alone.
pub const QUEUE_LIMIT: usize = 1 << 20;

/// Data messages at least this large that the owner thread sends from inside
/// a plugin callback go to the wire at once, the payload as the plugin
/// handed it, instead of being copied into the queue. Smaller ones are
/// batched: a copy costs less than a write of their own.
pub const DIRECT_MIN: usize = 64 * 1024;

/// The owner's pollset, woken when another thread queues a frame.
struct Waker(*mut sys::apr_pollset_t);

// SAFETY: apr_pollset_wakeup is documented thread-safe; the pointer is only
// used under the outbox lock and removed (under that lock) before the
// pollset is destroyed.
unsafe impl Send for Waker {}

/// How messages are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6455 frames.
    Rfc6455,
    /// draft-75/76: text only, `0x00 text 0xFF`, closed by `0xFF 0x00`.
    Legacy,
}

impl Framing {
    /// Appends one message to `out`; false if this framing cannot carry it.
    fn encode(self, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) -> bool {
        match self {
            Framing::Rfc6455 => {
                let header = FrameHeaderBuf::new(opcode, true, false, payload.len() as u64);
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(payload);
                true
            }
            Framing::Legacy => match opcode {
                Opcode::Text => {
                    websocket_proto::legacy::encode_text(out, payload);
                    true
                }
                Opcode::Close => {
                    out.extend_from_slice(&websocket_proto::legacy::CLOSE_FRAME);
                    true
                }
                _ => false,
            },
        }
    }
}

/// permessage-deflate for what we send, as negotiated in the handshake.
pub struct Compression {
    pub negotiated: Negotiated,
    pub level: u32,
    /// Messages shorter than this go out uncompressed.
    pub min_size: usize,
}

/// The sending half of a connection's compression. The compressor is made
/// on the first message worth compressing: it costs a few hundred KiB.
struct Compressor {
    settings: Compression,
    deflater: Option<Deflater>,
    scratch: Vec<u8>,
}

impl Compressor {
    /// Whether a message is compressed: data messages of at least the
    /// configured size (control frames never are, RFC 7692 §6.1).
    fn wants(&self, opcode: Opcode, len: usize) -> bool {
        len >= self.settings.min_size && matches!(opcode, Opcode::Text | Opcode::Binary)
    }

    /// Appends a compressed data frame, or returns false if the message is
    /// not to be compressed (see `wants`).
    fn encode(&mut self, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if !self.wants(opcode, payload.len()) {
            return false;
        }
        let settings = &self.settings;
        let deflater = self
            .deflater
            .get_or_insert_with(|| Deflater::new(&settings.negotiated, settings.level));
        self.scratch.clear();
        deflater.compress(payload, &mut self.scratch);
        let header = FrameHeaderBuf::new(opcode, true, true, self.scratch.len() as u64);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.scratch);
        if self.scratch.capacity() > 256 * 1024 {
            self.scratch = Vec::new();
        }
        true
    }
}

/// What the session sent the client, for the line that logs its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Data messages, counted as they are encoded.
    pub messages: u64,
    /// The close frame, once one is queued: `Some(None)` when it carries no
    /// code (the ABI's `close()`, or draft-76 framing, which has none).
    pub close: Option<Option<u16>>,
}

struct Queue {
    framing: Framing,
    sent: Sent,
    compressor: Option<Compressor>,
    bytes: Vec<u8>,
    /// A close frame is queued: nothing may follow it on the wire.
    close_queued: bool,
    waker: Option<Waker>,
    /// Senders waiting for space: the owner only signals when there are
    /// any (a condvar notify is a system call even with nobody waiting).
    waiting: usize,
}

/// Encoded frames waiting for the owner thread.
pub struct Outbox {
    queue: Mutex<Queue>,
    space: Condvar,
    /// The session is over: every send fails. Set under the queue's lock,
    /// and read without it too (the owner asks after every batch).
    closed: AtomicBool,
}

impl Outbox {
    pub fn new(framing: Framing, compression: Option<Compression>) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue {
                framing,
                sent: Sent::default(),
                compressor: compression.map(|settings| Compressor {
                    settings,
                    deflater: None,
                    scratch: Vec::new(),
                }),
                bytes: Vec::new(),
                close_queued: false,
                waker: None,
                waiting: 0,
            }),
            space: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A plugin thread that panicked while holding the lock leaves only
        // bytes behind; the queue stays usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What has been queued or written for the client so far.
    pub fn sent(&self) -> Sent {
        self.lock().sent
    }

    /// Senders blocked on a full queue right now.
    #[cfg(test)]
    fn blocked_senders(&self) -> usize {
        self.lock().waiting
    }

    /// Queues one frame. `from_owner` senders never wait (the owner is the
    /// one that would drain the queue). Returns false if nothing can be sent.
    pub fn push(&self, from_owner: bool, opcode: Opcode, payload: &[u8]) -> bool {
        let size = FrameHeader::MAX_LEN + payload.len();
        let mut q = self.lock();
        if !from_owner {
            while !self.is_closed()
                && !q.close_queued
                && !q.bytes.is_empty()
                && q.bytes.len() + size > QUEUE_LIMIT
            {
                q.waiting += 1;
                q = self.space.wait(q).unwrap_or_else(|e| e.into_inner());
                q.waiting -= 1;
            }
        }
        if self.is_closed() || q.close_queued {
            return false;
        }
        let q = &mut *q;
        let compressed = match &mut q.compressor {
            Some(c) => c.encode(opcode, payload, &mut q.bytes),
            None => false,
        };
        if !compressed && !q.framing.encode(opcode, payload, &mut q.bytes) {
            return false;
        }
        match opcode {
            Opcode::Text | Opcode::Binary => q.sent.messages += 1,
            Opcode::Close => {
                q.close_queued = true;
                let code = match (q.framing, payload) {
                    (Framing::Rfc6455, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
                    _ => None,
                };
                q.sent.close = Some(code);
            }
            _ => {}
        }
        if !from_owner {
            if let Some(w) = &q.waker {
                // SAFETY: the pollset is live while it is registered here
                // (see Waker); wakeup is thread-safe.
                unsafe { sys::apr_pollset_wakeup(w.0) };
            }
        }
        true
    }

    /// Sends one data frame without copying `payload`: `write` gets what is
    /// queued, the frame header and the payload, in that order, and writes
    /// them out before returning (false if the connection failed). Only for
    /// the owner thread, which alone writes. `None` when the frame must go
    /// through the queue instead (compressed, or not RFC 6455 framing).
    pub fn push_direct(
        &self,
        opcode: Opcode,
        payload: &[u8],
        write: impl FnOnce(&[&[u8]]) -> bool,
    ) -> Option<bool> {
        let mut q = self.lock();
        if self.is_closed() || q.close_queued {
            return Some(false);
        }
        let compressed = q
            .compressor
            .as_ref()
            .is_some_and(|c| c.wants(opcode, payload.len()));
        if compressed || q.framing != Framing::Rfc6455 || opcode.is_control() {
            return None;
        }
        // Written outside the lock: other threads keep queueing meanwhile,
        // and what they queue goes out after this frame.
        let mut queued = std::mem::take(&mut q.bytes);
        let waiting = q.waiting > 0;
        drop(q);
        if waiting {
            self.space.notify_all();
        }
        let header = FrameHeaderBuf::new(opcode, true, false, payload.len() as u64);
        if !write(&[&queued, header.as_bytes(), payload]) {
            self.close();
            return Some(false);
        }
        let mut q = self.lock();
        q.sent.messages += 1;
        if q.bytes.is_empty() && !self.is_closed() {
            // Keep the queue's allocation.
            queued.clear();
            q.bytes = queued;
        }
        Some(true)
    }

    /// Whether the session has ended for senders (or a direct write failed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues bytes that are not a message (the draft-76 handshake answer).
    pub fn push_raw(&self, bytes: &[u8]) {
        self.lock().bytes.extend_from_slice(bytes);
    }

    /// Moves everything queued to the end of `out`; returns whether a close
    /// frame is among what has been queued so far.
    pub fn take(&self, out: &mut Vec<u8>) -> bool {
        let mut q = self.lock();
        if out.is_empty() {
            std::mem::swap(out, &mut q.bytes);
        } else {
            out.extend_from_slice(&q.bytes);
            q.bytes.clear();
        }
        let close_queued = q.close_queued;
        let waiting = q.waiting > 0;
        drop(q);
        if waiting {
            self.space.notify_all();
        }
        close_queued
    }

    pub fn set_waker(&self, pollset: *mut sys::apr_pollset_t) {
        self.lock().waker = if pollset.is_null() {
            None
        } else {
            Some(Waker(pollset))
        };
    }

    /// Ends the session for senders: pending and future sends return 0.
    pub fn close(&self) {
        let mut q = self.lock();
        self.closed.store(true, Ordering::Release);
        q.waker = None;
        q.bytes = Vec::new();
        drop(q);
        self.space.notify_all();
    }
}

/// Which thread this is, cheaply: the address of a thread-local, distinct
/// for every thread alive at the same time. (The owner thread outlives its
/// connection, so no other thread can carry its mark meanwhile.) `send`
/// asks on every message, where `thread::current()` costs a reference
/// count round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadMark(usize);

impl ThreadMark {
    pub fn current() -> ThreadMark {
        thread_local! {
            static MARK: u8 = const { 0 };
        }
        MARK.with(|m| ThreadMark(m as *const u8 as usize))
    }
}

/// Who the client is, read from the request when the connection starts.
/// The strings are the request's pool strings: they live as long as the
/// request, which outlives `on_disconnect`, and Apache no longer changes
/// them, so any plugin thread may be handed them.
struct ClientContext {
    uri_path: *const c_char,
    query: *const c_char,
    remote_ip: *const c_char,
    remote_port: u16,
    user: *const c_char,
    auth_type: *const c_char,
    is_tls: bool,
    proto_num: i32,
    /// The Cookie header, split into cookies on first use.
    cookie_header: *const c_char,
    cookies: OnceLock<Vec<(CString, CString)>>,
}

fn c_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

impl ClientContext {
    /// # Safety
    /// `r` is NULL (no request, as in benchmarks: nothing to tell) or the
    /// live request of the handshake, on its owner thread.
    unsafe fn read(r: *const sys::request_rec) -> ClientContext {
        use httpd::client;
        if r.is_null() {
            return ClientContext {
                uri_path: std::ptr::null(),
                query: std::ptr::null(),
                remote_ip: std::ptr::null(),
                remote_port: 0,
                user: std::ptr::null(),
                auth_type: std::ptr::null(),
                is_tls: false,
                proto_num: 0,
                cookie_header: std::ptr::null(),
                cookies: OnceLock::new(),
            };
        }
        // SAFETY: live request, per the contract.
        unsafe {
            ClientContext {
                uri_path: c_ptr(client::uri_path(r)),
                query: c_ptr(client::query(r)),
                remote_ip: c_ptr(client::remote_ip(r)),
                remote_port: client::remote_port(r),
                user: c_ptr(client::user(r)),
                auth_type: c_ptr(client::auth_type(r)),
                is_tls: client::is_tls(r),
                proto_num: client::proto_num(r),
                cookie_header: sys::apr_table_get((*r).headers_in, c"Cookie".as_ptr()),
                cookies: OnceLock::new(),
            }
        }
    }

    fn cookie(&self, name: &[u8]) -> *const c_char {
        let cookies = self.cookies.get_or_init(|| {
            if self.cookie_header.is_null() {
                return Vec::new();
            }
            // SAFETY: a pool string of the live request (see the struct).
            let header = unsafe { CStr::from_ptr(self.cookie_header) }.to_bytes();
            parse_cookies(header)
        });
        cookies
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
    }
}

/// The cookies of a `Cookie` header (RFC 6265 §4.2: `name=value` pairs
/// separated by `; `), in order. Apache joins repeated Cookie lines with
/// ", ", which no cookie value may contain unquoted, so a comma separates
/// pairs too. Values lose their surrounding double quotes; pairs without
/// `=` or a name are skipped.
fn parse_cookies(header: &[u8]) -> Vec<(CString, CString)> {
    fn trim(s: &[u8]) -> &[u8] {
        let start = s
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(s.len());
        let end = s
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'))
            .map_or(start, |i| i + 1);
        &s[start..end]
    }
    header
        .split(|&b| b == b';' || b == b',')
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let name = trim(&pair[..eq]);
            let mut value = trim(&pair[eq + 1..]);
            if let [b'"', inner @ .., b'"'] = value {
                value = inner;
            }
            if name.is_empty() {
                return None;
            }
            Some((CString::new(name).ok()?, CString::new(value).ok()?))
        })
        .collect()
}

/// What `WebSocketServer::state` points at.
pub struct ConnState {
    pub r: *mut sys::request_rec,
    client: ClientContext,
    pub protocols: Vec<CString>,
    pub owner: ThreadMark,
    pub outbox: Outbox,
    /// Response headers may only change before the 101 is sent.
    pub handshake_open: AtomicBool,
    /// The session's way to the wire while it runs, for
    /// [`Outbox::push_direct`]; owner thread only.
    pub direct: Cell<Option<*const ConnIo>>,
}

/// The struct handed to plugins, with the state it points at. Boxed so its
/// address stays put for the whole connection.
pub struct Connection {
    pub server: WebSocketServer,
    pub state: ConnState,
}

// SAFETY: plugins use the server from their own threads. Everything they can
// reach from another thread goes through the Mutex'd outbox or reads data
// that is immutable once the session runs (request headers, protocols);
// `direct` is read and written on the owner thread only.
unsafe impl Sync for Connection {}

impl Connection {
    /// # Safety
    /// `r` is the live request of the handshake and this is its owner thread,
    /// or `r` is NULL (benchmarks without Apache; the request functions then
    /// answer NULL).
    pub unsafe fn new(
        r: *mut sys::request_rec,
        protocols: Vec<CString>,
        framing: Framing,
        compression: Option<Compression>,
    ) -> Box<Connection> {
        let mut conn = Box::new(Connection {
            server: WebSocketServer {
                size: std::mem::size_of::<WebSocketServer>() as _,
                version: WEBSOCKET_SERVER_VERSION_1,
                state: std::ptr::null_mut(),
                request: Some(request),
                header_get: Some(header_get),
                header_set: Some(header_set),
                protocol_count: Some(protocol_count),
                protocol_index: Some(protocol_index),
                protocol_set: Some(protocol_set),
                send: Some(send),
                close: Some(close),
                close_with: Some(close_with),
                uri_path: Some(uri_path),
                query_string: Some(query_string),
                remote_ip: Some(remote_ip),
                remote_port: Some(remote_port),
                user: Some(user),
                auth_type: Some(auth_type),
                env_get: Some(env_get),
                cookie_get: Some(cookie_get),
                is_tls: Some(is_tls),
                http_version: Some(http_version),
            },
            state: ConnState {
                r,
                // SAFETY: per this function's contract.
                client: unsafe { ClientContext::read(r) },
                protocols,
                owner: ThreadMark::current(),
                outbox: Outbox::new(framing, compression),
                handshake_open: AtomicBool::new(true),
                direct: Cell::new(None),
            },
        });
        conn.server.state = (&conn.state as *const ConnState)
            .cast_mut()
            .cast::<WebSocketState>();
        conn
    }

    pub fn server_ptr(&self) -> *const WebSocketServer {
        &self.server
    }
}

/// # Safety
/// `server` is NULL or a server made by [`Connection::new`] that is still alive.
unsafe fn state<'a>(server: *const WebSocketServer) -> Option<&'a ConnState> {
    // SAFETY: per the contract; the state pointer was set by Connection::new.
    unsafe {
        server
            .as_ref()
            .and_then(|s| s.state.cast::<ConnState>().cast_const().as_ref())
    }
}

unsafe extern "system" fn request(server: *const WebSocketServer) -> *mut websocket_plugin::ffi::request_rec {
    // SAFETY: the plugin passes back the server it was given.
    unsafe { state(server) }.map_or(std::ptr::null_mut(), |s| s.r.cast())
}

unsafe extern "system" fn header_get(server: *const WebSocketServer, key: *const c_char) -> *const c_char {
    // SAFETY: the plugin passes its server and a C string (or NULL).
    unsafe {
        match state(server) {
            Some(s) if !key.is_null() => sys::apr_table_get((*s.r).headers_in, key),
            _ => std::ptr::null(),
        }
    }
}

unsafe extern "system" fn header_set(
    server: *const WebSocketServer,
    key: *const c_char,
    value: *const c_char,
) {
    // SAFETY: as for header_get. headers_out is only touched on the owner
    // thread before the 101 goes out, which handshake_open enforces.
    unsafe {
        if let Some(s) = state(server) {
            if !key.is_null()
                && !value.is_null()
                && s.handshake_open.load(Ordering::Acquire)
                && s.owner == ThreadMark::current()
            {
                sys::apr_table_set((*s.r).headers_out, key, value);
            }
        }
    }
}

unsafe extern "system" fn protocol_count(server: *const WebSocketServer) -> usize {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(0, |s| s.protocols.len())
}

unsafe extern "system" fn protocol_index(server: *const WebSocketServer, index: usize) -> *const c_char {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }
        .and_then(|s| s.protocols.get(index))
        .map_or(std::ptr::null(), |p| p.as_ptr())
}

unsafe extern "system" fn protocol_set(server: *const WebSocketServer, protocol: *const c_char) {
    if protocol.is_null() {
        return;
    }
    // SAFETY: the plugin passes back its server and a C string.
    unsafe { header_set(server, c"Sec-WebSocket-Protocol".as_ptr(), protocol) }
}

unsafe extern "system" fn send(
    server: *const WebSocketServer,
    message_type: c_int,
    buffer: *const u8,
    size: usize,
) -> usize {
    // SAFETY: the plugin passes back its server.
    let Some(s) = (unsafe { state(server) }) else {
        return 0;
    };
    let payload: &[u8] = if buffer.is_null() || size == 0 {
        &[]
    } else {
        // SAFETY: the plugin promises `size` readable bytes at `buffer`.
        unsafe { std::slice::from_raw_parts(buffer, size) }
    };
    let opcode = match message_type {
        MESSAGE_TYPE_TEXT => {
            // Invalid text would make every conforming client fail the connection.
            if websocket_proto::utf8::validate(payload).is_err() {
                return 0;
            }
            Opcode::Text
        }
        MESSAGE_TYPE_BINARY => Opcode::Binary,
        MESSAGE_TYPE_PING | MESSAGE_TYPE_PONG | MESSAGE_TYPE_CLOSE if payload.len() > MAX_CONTROL_PAYLOAD => {
            return 0
        }
        MESSAGE_TYPE_PING => Opcode::Ping,
        MESSAGE_TYPE_PONG => Opcode::Pong,
        MESSAGE_TYPE_CLOSE => Opcode::Close,
        _ => return 0,
    };
    let from_owner = s.owner == ThreadMark::current();
    if from_owner && payload.len() >= DIRECT_MIN {
        if let Some(io) = s.direct.get() {
            let write = |parts: &[&[u8]]| {
                // SAFETY: `direct` is set by the running session on this, the
                // owner thread, and cleared before its ConnIo goes away.
                unsafe { (*io).write(parts) }.is_ok()
            };
            if let Some(sent) = s.outbox.push_direct(opcode, payload, write) {
                return if sent { payload.len() } else { 0 };
            }
        }
    }
    if s.outbox.push(from_owner, opcode, payload) {
        payload.len()
    } else {
        0
    }
}

/// The original ABI's close: a Close frame without a status code, as the C
/// module sent (the peer reports 1005).
unsafe extern "system" fn close(server: *const WebSocketServer) {
    // SAFETY: the plugin passes back its server.
    if let Some(s) = unsafe { state(server) } {
        let from_owner = s.owner == ThreadMark::current();
        s.outbox.push(from_owner, Opcode::Close, &[]);
    }
}

/// Appended to the ABI: a Close frame with a code a server may send and a
/// UTF-8 reason that fits the frame. 1 if the close was queued.
unsafe extern "system" fn close_with(
    server: *const WebSocketServer,
    code: c_ushort,
    reason: *const c_char,
    reason_size: usize,
) -> c_int {
    // SAFETY: the plugin passes back its server.
    let Some(s) = (unsafe { state(server) }) else {
        return 0;
    };
    let reason: &[u8] = match (reason.is_null(), reason_size) {
        (_, 0) => &[],
        (true, _) => return 0,
        // SAFETY: the plugin promises `reason_size` readable bytes at `reason`.
        (false, n) => unsafe { std::slice::from_raw_parts(reason.cast::<u8>(), n) },
    };
    let Some(payload) = close_with_payload(CloseCode(code), reason) else {
        return 0;
    };
    let from_owner = s.owner == ThreadMark::current();
    c_int::from(s.outbox.push(from_owner, Opcode::Close, payload.as_bytes()))
}

/// The body `close_with` sends, if the code and reason may go on the wire.
fn close_with_payload(code: CloseCode, reason: &[u8]) -> Option<ClosePayload> {
    let reason = std::str::from_utf8(reason).ok()?;
    (code.is_valid_on_wire() && reason.len() <= MAX_CONTROL_PAYLOAD - 2)
        .then(|| ClosePayload::new(code, reason))
}

unsafe extern "system" fn uri_path(server: *const WebSocketServer) -> *const c_char {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(std::ptr::null(), |s| s.client.uri_path)
}

unsafe extern "system" fn query_string(server: *const WebSocketServer) -> *const c_char {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(std::ptr::null(), |s| s.client.query)
}

unsafe extern "system" fn remote_ip(server: *const WebSocketServer) -> *const c_char {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(std::ptr::null(), |s| s.client.remote_ip)
}

unsafe extern "system" fn remote_port(server: *const WebSocketServer) -> c_uint {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(0, |s| c_uint::from(s.client.remote_port))
}

unsafe extern "system" fn user(server: *const WebSocketServer) -> *const c_char {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(std::ptr::null(), |s| s.client.user)
}

unsafe extern "system" fn auth_type(server: *const WebSocketServer) -> *const c_char {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(std::ptr::null(), |s| s.client.auth_type)
}

unsafe extern "system" fn env_get(server: *const WebSocketServer, name: *const c_char) -> *const c_char {
    // SAFETY: the plugin passes back its server and a C string (or NULL).
    let Some(s) = (unsafe { state(server) }) else {
        return std::ptr::null();
    };
    if name.is_null() || s.r.is_null() {
        return std::ptr::null();
    }
    // SAFETY: live request (it outlives the connection); its environment is
    // only read once the handler runs, so any thread may look it up.
    unsafe { c_ptr(httpd::client::env(s.r, CStr::from_ptr(name))) }
}

unsafe extern "system" fn cookie_get(server: *const WebSocketServer, name: *const c_char) -> *const c_char {
    // SAFETY: the plugin passes back its server and a C string (or NULL).
    match (unsafe { state(server) }, name.is_null()) {
        // SAFETY: non-NULL C string from the plugin.
        (Some(s), false) => s.client.cookie(unsafe { CStr::from_ptr(name) }.to_bytes()),
        _ => std::ptr::null(),
    }
}

unsafe extern "system" fn is_tls(server: *const WebSocketServer) -> c_uint {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(0, |s| c_uint::from(s.client.is_tls))
}

unsafe extern "system" fn http_version(server: *const WebSocketServer) -> c_uint {
    // SAFETY: the plugin passes back its server.
    unsafe { state(server) }.map_or(0, |s| c_uint::try_from(s.client.proto_num).unwrap_or(0))
}

/// Owned copies of the offered subprotocols, for `protocol_index`.
pub fn protocol_list(protocols: &[String]) -> Vec<CString> {
    protocols
        .iter()
        .filter_map(|p| CString::new(p.as_str()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn cookies() {
        let parsed = |h: &str| -> Vec<(String, String)> {
            parse_cookies(h.as_bytes())
                .into_iter()
                .map(|(n, v)| (n.into_string().unwrap(), v.into_string().unwrap()))
                .collect()
        };
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(
            parsed("session=abc123; theme=dark"),
            [pair("session", "abc123"), pair("theme", "dark")]
        );
        // Quoted values lose their quotes; %-encoding stays; '=' inside values stays.
        assert_eq!(
            parsed(" a=\"q v\" ;b=caf%C3%A9;c=x=y"),
            [pair("a", "q v"), pair("b", "caf%C3%A9"), pair("c", "x=y")]
        );
        // Two Cookie lines, as Apache joins them; junk pairs are skipped.
        assert_eq!(
            parsed("a=1, b=2; ; =nameless; flag"),
            [pair("a", "1"), pair("b", "2")]
        );
        assert_eq!(parsed("empty="), [pair("empty", "")]);
        assert!(parsed("").is_empty());
    }

    #[test]
    fn close_with_sends_only_what_the_wire_allows() {
        let ok = close_with_payload(CloseCode(4001), "room closed".as_bytes()).unwrap();
        assert_eq!(&ok.as_bytes()[..2], &4001u16.to_be_bytes());
        assert_eq!(&ok.as_bytes()[2..], b"room closed");
        for code in [1000u16, 1003, 1007, 1014, 3000, 4999] {
            assert!(close_with_payload(CloseCode(code), b"").is_some(), "{code}");
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(close_with_payload(CloseCode(code), b"").is_none(), "{code}");
        }
        assert!(close_with_payload(CloseCode::NORMAL, &[b'x'; 123]).is_some());
        assert!(close_with_payload(CloseCode::NORMAL, &[b'x'; 124]).is_none());
        assert!(close_with_payload(CloseCode::NORMAL, &[0xFF]).is_none());
    }

    #[test]
    fn frames_are_encoded_in_order() {
        let outbox = Outbox::new(Framing::Rfc6455, None);
        assert!(outbox.push(true, Opcode::Text, b"hi"));
        assert!(outbox.push(false, Opcode::Binary, &[1, 2]));
        let mut out = Vec::new();
        assert!(!outbox.take(&mut out));
        assert_eq!(out, [0x81, 2, b'h', b'i', 0x82, 2, 1, 2]);
    }

    #[test]
    fn counts_what_was_sent() {
        let outbox = Outbox::new(Framing::Rfc6455, None);
        assert!(outbox.push(true, Opcode::Text, b"a"));
        assert!(outbox.push(false, Opcode::Binary, b"b"));
        assert!(outbox.push(true, Opcode::Pong, b""));
        let mut out = Vec::new();
        assert_eq!(outbox.push_direct(Opcode::Binary, b"c", |_| true), Some(true));
        assert_eq!(
            outbox.sent(),
            Sent {
                messages: 3,
                close: None
            }
        );
        assert!(outbox.push(true, Opcode::Close, &4001u16.to_be_bytes()));
        assert!(!outbox.push(true, Opcode::Text, b"late"));
        outbox.take(&mut out);
        assert_eq!(
            outbox.sent(),
            Sent {
                messages: 3,
                close: Some(Some(4001))
            }
        );
        let plain = Outbox::new(Framing::Rfc6455, None);
        assert!(plain.push(true, Opcode::Close, b""));
        assert_eq!(plain.sent().close, Some(None));
        let legacy = Outbox::new(Framing::Legacy, None);
        assert!(legacy.push(true, Opcode::Text, b"x"));
        assert!(legacy.push(true, Opcode::Close, &1000u16.to_be_bytes()));
        assert_eq!(
            legacy.sent(),
            Sent {
                messages: 1,
                close: Some(None)
            }
        );
    }

    #[test]
    fn nothing_follows_a_close_frame() {
        let outbox = Outbox::new(Framing::Rfc6455, None);
        assert!(outbox.push(true, Opcode::Close, &[0x03, 0xE8]));
        assert!(!outbox.push(true, Opcode::Text, b"late"));
        let mut out = Vec::new();
        assert!(outbox.take(&mut out));
        assert_eq!(out, [0x88, 2, 0x03, 0xE8]);
    }

    #[test]
    fn legacy_framing_carries_text_and_close_only() {
        let outbox = Outbox::new(Framing::Legacy, None);
        outbox.push_raw(b"digest");
        assert!(outbox.push(true, Opcode::Text, "é".as_bytes()));
        assert!(!outbox.push(true, Opcode::Binary, b"x"));
        assert!(!outbox.push(true, Opcode::Ping, b""));
        assert!(outbox.push(true, Opcode::Close, b""));
        let mut out = Vec::new();
        outbox.take(&mut out);
        assert_eq!(out, b"digest\x00\xc3\xa9\xff\xff\x00");
    }

    #[test]
    fn direct_frames_follow_what_is_queued_and_leave_the_payload_alone() {
        let outbox = Outbox::new(Framing::Rfc6455, None);
        assert!(outbox.push(true, Opcode::Pong, b"p"));
        let payload = vec![7u8; 65_000];
        let mut wire = Vec::new();
        let sent = outbox.push_direct(Opcode::Binary, &payload, |parts| {
            assert_eq!(parts.len(), 3);
            assert!(
                std::ptr::eq(parts[2], payload.as_slice()),
                "the payload is not copied"
            );
            parts.iter().for_each(|p| wire.extend_from_slice(p));
            true
        });
        assert_eq!(sent, Some(true));
        assert_eq!(&wire[..3], [0x8A, 1, b'p']);
        assert_eq!(&wire[3..7], [0x82, 126, 0xFD, 0xE8]);
        assert_eq!(wire.len(), 3 + 4 + 65_000);
        let mut out = Vec::new();
        assert!(!outbox.take(&mut out));
        assert!(out.is_empty(), "the queued pong went out with the frame");
    }

    #[test]
    fn direct_frames_are_refused_where_they_cannot_be_written_as_is() {
        let never = |_: &[&[u8]]| -> bool { panic!("nothing may be written") };
        let legacy = Outbox::new(Framing::Legacy, None);
        assert_eq!(legacy.push_direct(Opcode::Text, b"x", never), None);
        let compressing = Outbox::new(
            Framing::Rfc6455,
            Some(Compression {
                negotiated: websocket_proto::deflate::negotiate(
                    &websocket_proto::handshake::parse_extensions("permessage-deflate").unwrap(),
                    &Default::default(),
                )
                .unwrap()
                .unwrap(),
                level: 1,
                min_size: 64,
            }),
        );
        assert_eq!(compressing.push_direct(Opcode::Binary, &[0; 100], never), None);
        assert_eq!(
            compressing.push_direct(Opcode::Binary, &[0; 10], |_| true),
            Some(true),
            "below the compression threshold"
        );
        let closing = Outbox::new(Framing::Rfc6455, None);
        assert!(closing.push(true, Opcode::Close, &[0x03, 0xE8]));
        assert_eq!(closing.push_direct(Opcode::Binary, b"late", never), Some(false));
    }

    #[test]
    fn a_failed_direct_write_ends_the_session_for_senders() {
        let outbox = Outbox::new(Framing::Rfc6455, None);
        assert_eq!(outbox.push_direct(Opcode::Binary, b"x", |_| false), Some(false));
        assert!(outbox.is_closed());
        assert!(!outbox.push(true, Opcode::Text, b"after"));
    }

    #[test]
    fn a_full_queue_blocks_other_threads_until_drained() {
        let outbox = Arc::new(Outbox::new(Framing::Rfc6455, None));
        let big = vec![0u8; QUEUE_LIMIT];
        assert!(
            outbox.push(false, Opcode::Binary, &big),
            "one oversized message passes alone"
        );
        let sender = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.push(false, Opcode::Binary, b"next"))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!sender.is_finished(), "back-pressure holds the sender");
        let mut out = Vec::new();
        outbox.take(&mut out);
        assert!(sender.join().unwrap());
        out.clear();
        outbox.take(&mut out);
        assert_eq!(out, [0x82, 4, b'n', b'e', b'x', b't']);
    }

    #[test]
    fn closing_releases_blocked_senders_with_failure() {
        let outbox = Arc::new(Outbox::new(Framing::Rfc6455, None));
        assert!(outbox.push(false, Opcode::Binary, &vec![0u8; QUEUE_LIMIT]));
        let sender = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.push(false, Opcode::Binary, b"next"))
        };
        // Only a sender that really blocked proves that closing releases it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while outbox.blocked_senders() == 0 {
            assert!(std::time::Instant::now() < deadline, "the sender never blocked");
            std::thread::sleep(Duration::from_millis(1));
        }
        outbox.close();
        assert!(!sender.join().unwrap());
        assert!(!outbox.push(true, Opcode::Text, b"after"));
    }
}
