//! The server side of the plugin ABI: the `WebSocketServer` callbacks and
//! the per-connection state behind them.
//!
//! Plugins may call `send` from any thread. Frames are encoded straight into
//! the connection's [`Outbox`], which the session writes; only the holder of
//! the connection's [`StepToken`] touches Apache's filters
//! (docs/architecture.md, "Threading").

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::os::raw::c_void;
use std::os::raw::{c_char, c_int, c_uint, c_ushort};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use httpd::conn::Request;
use httpd::sys;
use websocket_plugin::ffi::{
    WebSocketServer, WebSocketState, MESSAGE_TYPE_BINARY, MESSAGE_TYPE_CLOSE, MESSAGE_TYPE_PING,
    MESSAGE_TYPE_PONG, MESSAGE_TYPE_TEXT, WEBSOCKET_SERVER_VERSION_1,
};
use websocket_proto::close::{CloseCode, ClosePayload};
use websocket_proto::connection::{Compression, Family};
use websocket_proto::frame::MAX_CONTROL_PAYLOAD;
use websocket_proto::Opcode;

use crate::config::PluginHandle;
use crate::outbox::Outbox;
use websocket_proto::decoder::MessageKind;

/// Data messages at least this large that the session's thread sends from
/// inside a plugin callback go to the wire at once, the payload as the
/// plugin handed it, instead of being copied into the queue. Smaller ones
/// are batched: a copy costs less than a write of their own.
pub const DIRECT_MIN: usize = 64 * 1024;

/// Where the session lets a callback write a large message at once (see
/// [`DIRECT_MIN`]): it writes what the connection takes now and keeps the
/// rest for the session to write next, in order.
pub trait DirectWrite {
    /// False if the connection failed.
    fn write_now(&self, parts: &[&[u8]]) -> bool;
}

/// A [`DirectWrite`] lent to the plugin ABI for the length of a call, as a
/// pointer and the function that calls it (a thin pointer: the writer's
/// type is the session's, which the ABI does not know).
#[derive(Default)]
pub struct DirectSlot {
    lent: Cell<Option<(*const (), WriteNow)>>,
}

/// `DirectWrite::write_now` of the lent writer's type.
type WriteNow = unsafe fn(*const (), &[&[u8]]) -> bool;

/// Calls `W::write_now` through a type-erased pointer.
///
/// # Safety
/// `writer` points at a live `W`.
unsafe fn call_write_now<W: DirectWrite>(writer: *const (), parts: &[&[u8]]) -> bool {
    // SAFETY: per the contract (DirectSlot::lend keeps it live).
    unsafe { (*writer.cast::<W>()).write_now(parts) }
}

impl DirectSlot {
    /// Lends `writer` for the length of `f`; the loan ends even if `f` unwinds.
    pub fn lend<W: DirectWrite, R>(&self, writer: &W, f: impl FnOnce() -> R) -> R {
        struct Return<'a>(&'a DirectSlot);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                self.0.lent.set(None);
            }
        }
        self.lent
            .set(Some(((writer as *const W).cast::<()>(), call_write_now::<W>)));
        let _back = Return(self);
        f()
    }

    pub fn is_lent(&self) -> bool {
        self.lent.get().is_some()
    }

    /// Writes through the lent writer; false if there is none or it failed.
    pub fn write_now(&self, parts: &[&[u8]]) -> bool {
        match self.lent.get() {
            // SAFETY: the pointer is set only for the length of `lend`, whose
            // borrow keeps the writer alive and in place, and it is read on
            // the thread that lent it (ConnState is only shared through
            // Connection, whose Sync rests on this field being used by the
            // token holder alone).
            Some((writer, call)) => unsafe { call(writer, parts) },
            None => false,
        }
    }
}

thread_local! {
    /// The connection whose session this thread is stepping now, if any.
    static STEPPING: Cell<*const ConnState> = const { Cell::new(std::ptr::null()) };
}

/// The right to step a connection's session: whoever holds it is "the
/// session" for the plugin ABI (its sends never wait, it may set response
/// headers before the 101, it may write large messages directly). One
/// holder at a time, on any thread; dropped at the end of each step.
pub struct StepToken<'a> {
    state: &'a ConnState,
    previous: *const ConnState,
    /// Not Send: the token marks the thread that holds it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl<'a> StepToken<'a> {
    /// Takes the token of `state`. Panics if someone holds it already: two
    /// steppers at once would both write the connection.
    pub fn acquire(state: &'a ConnState) -> StepToken<'a> {
        assert!(
            !state.stepping.swap(true, Ordering::Acquire),
            "a session is stepped by one holder at a time"
        );
        let previous = STEPPING.with(|s| s.replace(state as *const ConnState));
        StepToken {
            state,
            previous,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for StepToken<'_> {
    fn drop(&mut self) {
        STEPPING.with(|s| s.set(self.previous));
        self.state.stepping.store(false, Ordering::Release);
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
    /// The Cookie header (copied: it is parsed later, on any thread),
    /// split into cookies on first use.
    cookie_header: Option<Vec<u8>>,
    cookies: OnceLock<Vec<(CString, CString)>>,
}

fn c_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

impl ClientContext {
    /// What the request tells; nothing without one (benchmarks).
    fn read(r: Option<Request<'_>>) -> ClientContext {
        let Some(r) = r else {
            return ClientContext {
                uri_path: std::ptr::null(),
                query: std::ptr::null(),
                remote_ip: std::ptr::null(),
                remote_port: 0,
                user: std::ptr::null(),
                auth_type: std::ptr::null(),
                is_tls: false,
                proto_num: 0,
                cookie_header: None,
                cookies: OnceLock::new(),
            };
        };
        let client = r.client();
        ClientContext {
            uri_path: c_ptr(client.uri_path),
            query: c_ptr(client.query),
            remote_ip: c_ptr(client.remote_ip),
            remote_port: client.remote_port,
            user: c_ptr(client.user),
            auth_type: c_ptr(client.auth_type),
            is_tls: client.is_tls,
            proto_num: client.proto_num,
            cookie_header: r.headers_in().get_c(c"Cookie").map(|c| c.to_bytes().to_vec()),
            cookies: OnceLock::new(),
        }
    }

    fn cookie(&self, name: &[u8]) -> *const c_char {
        let cookies = self.cookies.get_or_init(|| {
            self.cookie_header
                .as_deref()
                .map(parse_cookies)
                .unwrap_or_default()
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
    /// Someone holds the [`StepToken`].
    stepping: AtomicBool,
    pub outbox: Arc<Outbox>,
    /// The channels it subscribed to, from the first subscription on.
    pub member: OnceLock<websocket_channels::registry::Member>,
    /// Response headers may only change before the 101 is sent.
    pub handshake_open: AtomicBool,
    /// The session's way to the wire while it dispatches messages, for
    /// [`Outbox::push_direct`]; set and used by the token holder only.
    pub direct: DirectSlot,
}

impl ConnState {
    /// Whether the calling thread holds this connection's [`StepToken`].
    pub fn is_stepper(&self) -> bool {
        STEPPING.with(|s| std::ptr::eq(s.get(), self))
    }
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
// `direct` is set and used by the holder of the step token only, on its own
// thread (the ABI checks is_stepper first).
unsafe impl Sync for Connection {}

impl Connection {
    /// The connection of request `r`'s handshake (`None` in benchmarks
    /// without Apache: the request functions then answer NULL).
    pub fn new(
        r: Option<Request<'_>>,
        protocols: Vec<CString>,
        family: &Family,
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
                subscribe: Some(subscribe),
                unsubscribe: Some(unsubscribe),
                publish: Some(crate::channels::publish_abi),
            },
            state: ConnState {
                r: r.map_or(std::ptr::null_mut(), |r| r.as_ptr()),
                client: ClientContext::read(r),
                protocols,
                stepping: AtomicBool::new(false),
                outbox: Arc::new(Outbox::new(family, compression)),
                member: OnceLock::new(),
                handshake_open: AtomicBool::new(true),
                direct: DirectSlot::default(),
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

/// A plugin's side of one connection: the loaded plugin, what its
/// `on_connect` returned, and the server struct it was handed, which lives
/// in here until after `on_disconnect` returned.
pub struct PluginApp {
    plugin: Arc<PluginHandle>,
    private: *mut c_void,
    conn: Box<Connection>,
}

impl PluginApp {
    /// Calls the plugin's `on_connect` with the token held (so that it may
    /// set response headers); `None` if the plugin refused the connection.
    pub fn connect(plugin: Arc<PluginHandle>, conn: Box<Connection>) -> Result<PluginApp, Box<Connection>> {
        let token = StepToken::acquire(&conn.state);
        // SAFETY: the server struct is live and stays so until after
        // on_disconnect (it moves into the PluginApp, which calls that).
        let connected = unsafe { plugin.plugin.on_connect(conn.server_ptr()) };
        drop(token);
        match connected {
            Ok(private) => Ok(PluginApp {
                plugin,
                private,
                conn,
            }),
            Err(_) => {
                crate::channels::leave(&conn.state);
                conn.state.outbox.close();
                Err(conn)
            }
        }
    }
}

impl crate::session::Application for PluginApp {
    fn state(&self) -> &ConnState {
        &self.conn.state
    }

    fn on_message(&self, kind: MessageKind, data: &mut [u8]) {
        let t = match kind {
            MessageKind::Text => MESSAGE_TYPE_TEXT,
            MessageKind::Binary => MESSAGE_TYPE_BINARY,
        };
        // SAFETY: the plugin's private pointer and our server struct are
        // live until on_disconnect, which has not run (the session calls it
        // last, once).
        unsafe {
            self.plugin
                .plugin
                .on_message(self.private, self.conn.server_ptr(), t, data)
        };
    }

    fn on_disconnect(&mut self) {
        crate::channels::leave(&self.conn.state);
        // SAFETY: as for on_message; the session calls this exactly once,
        // after which the server struct is never handed out again.
        unsafe {
            self.plugin
                .plugin
                .on_disconnect(self.private, self.conn.server_ptr())
        };
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
    // SAFETY: the plugin passes its server and a C string (or NULL); the
    // request outlives the connection, and its input headers are only read
    // once the handler runs, so any thread may look them up.
    unsafe {
        match state(server) {
            Some(s) if !key.is_null() && !s.r.is_null() => {
                c_ptr(httpd::table::Table::from_raw((*s.r).headers_in).get_c(CStr::from_ptr(key)))
            }
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
                && s.is_stepper()
                && !s.r.is_null()
            {
                httpd::table::Table::from_raw((*s.r).headers_out)
                    .set_c(CStr::from_ptr(key), CStr::from_ptr(value));
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
    let from_owner = s.is_stepper();
    if from_owner && payload.len() >= DIRECT_MIN && s.direct.is_lent() {
        let write = |parts: &[&[u8]]| s.direct.write_now(parts);
        if let Some(sent) = s.outbox.push_direct(opcode, payload, write) {
            return if sent { payload.len() } else { 0 };
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
        let from_owner = s.is_stepper();
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
    let from_owner = s.is_stepper();
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

unsafe extern "system" fn subscribe(
    server: *const WebSocketServer,
    channel: *const c_char,
    size: usize,
) -> c_int {
    // SAFETY: the plugin passes back its server, and a channel name of
    // `size` bytes.
    unsafe { state(server).map_or(0, |s| crate::channels::subscribe(s, channel, size)) }
}

unsafe extern "system" fn unsubscribe(
    server: *const WebSocketServer,
    channel: *const c_char,
    size: usize,
) -> c_int {
    // SAFETY: as for subscribe.
    unsafe { state(server).map_or(0, |s| crate::channels::unsubscribe(s, channel, size)) }
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
}
