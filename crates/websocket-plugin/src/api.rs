//! The safe side of the plugin ABI: what a Rust plugin implements and what it is handed.

use std::ffi::{c_int, CStr, CString};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use crate::ffi::{self, server_fn, WebSocketServer, MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};

/// A WebSocket application, loaded by mod_websocket through [`export_plugin!`](crate::export_plugin).
///
/// One value serves every connection of the `WebSocketHandler` directives that name its
/// init function, concurrently on many threads; per-connection state lives in
/// [`Plugin::Session`]. The value is dropped when the last configuration that uses it is
/// torn down and its last connection has ended.
pub trait Plugin: Send + Sync + 'static {
    /// Per-connection state. It must be `Send` because the server may run the callbacks
    /// of one connection on different threads (never two at once).
    type Session: Send + 'static;

    /// Called during the opening handshake, before the 101 response.
    ///
    /// The 101 names a subprotocol only if this calls [`Connection::set_protocol`]
    /// (with one of [`Connection::protocols`]); the server never picks one itself. Returning `None` (or panicking) refuses
    /// the connection with 403 Forbidden, and then no other callback runs for it.
    fn on_connect(&self, conn: &Connection<'_>) -> Option<Self::Session>;

    /// Called on the connection's thread for each complete text or binary message.
    ///
    /// A panic is caught, written to the error log and otherwise ignored.
    fn on_message(&self, session: &mut Self::Session, msg: Message<'_>, sender: &Sender);

    /// Called exactly once when a connection that [`Plugin::on_connect`] accepted has ended.
    ///
    /// Every [`Sender`] of the connection is already closed when this runs, so threads
    /// that use one fail fast and can be joined here.
    fn on_disconnect(&self, session: Self::Session) {
        drop(session);
    }
}

/// A complete message received from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload, whatever the type.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// The ABI's `MESSAGE_TYPE_*` value for this message.
    pub fn message_type(&self) -> c_int {
        match self {
            Message::Text(_) => MESSAGE_TYPE_TEXT,
            Message::Binary(_) => MESSAGE_TYPE_BINARY,
        }
    }
}

/// The status code of a Close frame (RFC 6455 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// May a server send this code? The registered 1000-1003 and 1007-1014, and
    /// 3000-4999 for libraries and applications; 1004-1006 and 1015 never go on the
    /// wire, and the rest is reserved.
    pub fn may_be_sent(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest close reason: a control frame's 125 bytes less the code's 2.
pub const MAX_CLOSE_REASON: usize = 123;

/// A string given to the server contained a byte it cannot carry (NUL, CR or LF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidString;

impl fmt::Display for InvalidString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string contains NUL, CR or LF")
    }
}

impl std::error::Error for InvalidString {}

/// Converts a string for the server, refusing bytes that would end it early or let it
/// inject further header lines.
fn to_c_string(s: &str) -> Result<CString, InvalidString> {
    if s.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(InvalidString);
    }
    CString::new(s).map_err(|_| InvalidString)
}

/// The handshake of one connection, as [`Plugin::on_connect`] sees it.
///
/// It borrows the server's per-connection struct and is therefore neither `Send` nor
/// usable after `on_connect` returns; keep a [`Sender`] instead.
pub struct Connection<'a> {
    server: &'a WebSocketServer,
    sender: &'a Sender,
}

impl<'a> Connection<'a> {
    pub(crate) fn new(server: &'a WebSocketServer, sender: &'a Sender) -> Self {
        Connection { server, sender }
    }

    /// A request header, or `None` if it is absent or not UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.header_raw(name)?.to_str().ok()
    }

    /// A request header as the client sent it.
    pub fn header_raw(&self, name: &str) -> Option<&'a CStr> {
        let get = server_fn!(self.server, header_get)?;
        let key = CString::new(name).ok()?;
        // SAFETY: the server struct is valid for 'a (the duration of on_connect) and the
        // key is NUL-terminated; the header contract says the returned string is owned by
        // the server and valid at least as long as the server struct.
        let value = unsafe { get(self.server, key.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: non-NULL strings from header_get are NUL-terminated and outlive 'a (see above).
        Some(unsafe { CStr::from_ptr(value) })
    }

    /// Sets a response header of the 101 response.
    pub fn set_header(&self, name: &str, value: &str) -> Result<(), InvalidString> {
        let (name, value) = (to_c_string(name)?, to_c_string(value)?);
        if let Some(set) = server_fn!(self.server, header_set) {
            // SAFETY: valid server struct during on_connect; both strings are NUL-terminated
            // and the server copies them.
            unsafe { set(self.server, name.as_ptr(), value.as_ptr()) };
        }
        Ok(())
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> Protocols<'a> {
        let count = match server_fn!(self.server, protocol_count) {
            // SAFETY: valid server struct during on_connect.
            Some(count) => unsafe { count(self.server) },
            None => 0,
        };
        Protocols {
            server: self.server,
            next: 0,
            count,
        }
    }

    /// Chooses the subprotocol named in the 101 response; without a call, it names none.
    pub fn set_protocol(&self, protocol: &str) -> Result<(), InvalidString> {
        let protocol = to_c_string(protocol)?;
        if let Some(set) = server_fn!(self.server, protocol_set) {
            // SAFETY: valid server struct during on_connect; the server copies the string.
            unsafe { set(self.server, protocol.as_ptr()) };
        }
        Ok(())
    }

    /// A value of the request through one of the appended server functions: `None`
    /// when the server predates them, the request has no such value, or it is not UTF-8.
    fn value(&self, f: ffi::WS_Request_Value) -> Option<&'a str> {
        // SAFETY: valid server struct during on_connect; the returned string is owned by
        // the server for the whole connection, longer than 'a.
        unsafe { borrowed_str(f?(self.server)) }
    }

    fn lookup(&self, f: ffi::WS_Request_Lookup, name: &str) -> Option<&'a str> {
        let f = f?;
        let name = CString::new(name).ok()?;
        // SAFETY: as for value; the name is NUL-terminated.
        unsafe { borrowed_str(f(self.server, name.as_ptr())) }
    }

    /// The decoded path the request's `<Location>` matched (`/chat/café` for
    /// `/chat/caf%C3%A9`).
    pub fn path(&self) -> Option<&'a str> {
        self.value(server_fn!(self.server, uri_path))
    }

    /// The query string after `?`, as the client sent it (still %-encoded); `None` when
    /// the URL has none.
    pub fn query(&self) -> Option<&'a str> {
        self.value(server_fn!(self.server, query_string))
    }

    /// The client's address and port, as mod_remoteip determined them (the peer's own
    /// otherwise). The port is 0 when unknown: mod_remoteip took the address from a
    /// header such as `X-Forwarded-For`, which carries none.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.value(server_fn!(self.server, remote_ip))?.parse().ok()?;
        let port = server_fn!(self.server, remote_port)?;
        // SAFETY: valid server struct during on_connect.
        let port = u16::try_from(unsafe { port(self.server) }).ok()?;
        Some(SocketAddr::new(ip, port))
    }

    /// The user Apache authenticated (`Require valid-user` and friends ran before
    /// `on_connect`); `None` for an anonymous request.
    pub fn user(&self) -> Option<&'a str> {
        self.value(server_fn!(self.server, user))
    }

    /// The authentication scheme that authenticated [`Connection::user`] (`Basic`, ...).
    pub fn auth_type(&self) -> Option<&'a str> {
        self.value(server_fn!(self.server, auth_type))
    }

    /// A variable of the request's environment: what `SetEnv`, `SetEnvIf`,
    /// `RewriteRule [E=]` and mod_ssl's `SSLOptions +StdEnvVars` (`SSL_CLIENT_S_DN`, ...)
    /// put there.
    pub fn env(&self, name: &str) -> Option<&'a str> {
        self.lookup(server_fn!(self.server, env_get), name)
    }

    /// The value of the first cookie called `name`, as sent (quotes removed, not
    /// %-decoded).
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.lookup(server_fn!(self.server, cookie_get), name)
    }

    /// Whether the connection is TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        self.number(server_fn!(self.server, is_tls)) == Some(1)
    }

    /// The HTTP version of the handshake: `(1, 1)`, or `(2, 0)` over HTTP/2.
    pub fn http_version(&self) -> Option<(u32, u32)> {
        let n = self.number(server_fn!(self.server, http_version))?;
        (n != 0).then_some((n / 1000, n % 1000))
    }

    fn number(&self, f: ffi::WS_Request_Number) -> Option<u32> {
        // SAFETY: valid server struct during on_connect.
        f.map(|f| unsafe { f(self.server) })
    }

    /// All of the above but environment and cookies, owned, to keep in the session.
    pub fn client(&self) -> ClientInfo {
        ClientInfo {
            path: self.path().map(str::to_owned),
            query: self.query().map(str::to_owned),
            remote_addr: self.remote_addr(),
            user: self.user().map(str::to_owned),
            auth_type: self.auth_type().map(str::to_owned),
            is_tls: self.is_tls(),
            http_version: self.http_version(),
        }
    }

    /// Apache's `request_rec` of the handshake (NULL if the server does not provide it),
    /// for plugins that need more than this API offers. Dereferencing it is up to the
    /// caller, and only during `on_connect`.
    pub fn request(&self) -> *mut ffi::request_rec {
        match server_fn!(self.server, request) {
            // SAFETY: valid server struct during on_connect.
            Some(request) => unsafe { request(self.server) },
            None => std::ptr::null_mut(),
        }
    }

    /// Subscribes this connection to `channel`: every message published to it from
    /// now on is sent to this client (see [`Sender::subscribe`]).
    pub fn subscribe(&self, channel: &str) -> Result<(), ChannelError> {
        self.sender.subscribe(channel)
    }

    /// A handle for publishing to channels from any thread, even after this connection
    /// has ended; `None` if the server has no channels.
    pub fn publisher(&self) -> Option<Publisher> {
        Publisher::of(self.server)
    }

    /// A handle for sending on this connection, from any thread, for as long as it is open.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The raw server struct, valid until `on_connect` returns.
    pub fn as_raw(&self) -> *const WebSocketServer {
        self.server
    }
}

/// A string the server owns for the whole connection, as `&str` (`None` for NULL or
/// non-UTF-8).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for `'a`.
unsafe fn borrowed_str<'a>(p: *const std::ffi::c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// Who a connection's client is, copied out of the handshake so that a plugin can keep
/// it in its session ([`Connection::client`]). Fields the request does not have, or
/// that a server older than these functions cannot tell, are `None` (`false`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientInfo {
    pub path: Option<String>,
    pub query: Option<String>,
    pub remote_addr: Option<SocketAddr>,
    pub user: Option<String>,
    pub auth_type: Option<String>,
    pub is_tls: bool,
    pub http_version: Option<(u32, u32)>,
}

/// The subprotocols offered by the client; see [`Connection::protocols`].
pub struct Protocols<'a> {
    server: &'a WebSocketServer,
    next: usize,
    count: usize,
}

impl<'a> Iterator for Protocols<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let index = server_fn!(self.server, protocol_index)?;
        while self.next < self.count {
            let i = self.next;
            self.next += 1;
            // SAFETY: valid server struct during on_connect, index below protocol_count.
            let p = unsafe { index(self.server, i) };
            if p.is_null() {
                continue;
            }
            // SAFETY: non-NULL strings from protocol_index are NUL-terminated and owned by
            // the server for at least as long as the server struct.
            if let Ok(s) = unsafe { CStr::from_ptr(p) }.to_str() {
                return Some(s);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.count - self.next))
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection has ended; nothing was handed to the server.
    Closed,
    /// The server did not accept the message (it is closing the connection or failed,
    /// or, for [`Sender::close_with`], the code or reason cannot be sent, or the server
    /// predates `close_with`).
    Rejected,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "the WebSocket connection is closed",
            SendError::Rejected => "the server did not accept the message",
        })
    }
}

impl std::error::Error for SendError {}

/// Why a channel operation did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelError {
    /// The connection has ended.
    Closed,
    /// The server refused: an invalid channel name (1 to 128 bytes of `A-Z a-z 0-9 - . _ ~`),
    /// too many subscriptions, or a message it cannot carry.
    Rejected,
    /// The server predates channels.
    Unsupported,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChannelError::Closed => "the WebSocket connection is closed",
            ChannelError::Rejected => "the server refused the channel operation",
            ChannelError::Unsupported => "the server has no channels",
        })
    }
}

impl std::error::Error for ChannelError {}

fn channel_result(done: c_int) -> Result<(), ChannelError> {
    if done != 0 {
        Ok(())
    } else {
        Err(ChannelError::Rejected)
    }
}

/// Publishes to channels from any thread, for as long as the plugin is loaded: it does
/// not belong to a connection (the server's `publish` is called without one), so a
/// plugin's own threads can keep one after the connection they got it from ended.
#[derive(Clone, Copy)]
pub struct Publisher {
    publish: unsafe extern "system" fn(
        *const WebSocketServer,
        *const std::ffi::c_char,
        usize,
        c_int,
        *const u8,
        usize,
    ) -> c_int,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    fn of(server: &WebSocketServer) -> Option<Publisher> {
        server_fn!(server, publish).map(|publish| Publisher { publish })
    }

    /// Sends `msg` to every connection subscribed to `channel`, on every child process
    /// (and every server sharing the broker). Subscribers get it at most once, in the
    /// order this thread published.
    pub fn publish(&self, channel: &str, msg: Message<'_>) -> Result<(), ChannelError> {
        let data = msg.as_bytes();
        // SAFETY: the header lets publish be called with a NULL server from any thread
        // while the plugin is loaded; both buffers are valid for their lengths and are
        // copied before it returns.
        channel_result(unsafe {
            (self.publish)(
                std::ptr::null(),
                channel.as_ptr().cast(),
                channel.len(),
                msg.message_type(),
                data.as_ptr(),
                data.len(),
            )
        })
    }
}

/// The server struct of a live connection, or NULL once it has ended.
#[derive(Clone, Copy)]
struct ServerPtr(*const WebSocketServer);

// SAFETY: the pointer is only dereferenced under the read lock of `SenderShared::server`,
// while the connection is live, and the plugin contract lets `send` and `close` be called
// from any thread; the other callbacks are never reached through a Sender.
unsafe impl Send for ServerPtr {}
// SAFETY: as above; sharing the pointer only allows the same thread-safe calls.
unsafe impl Sync for ServerPtr {}

struct SenderShared {
    server: RwLock<ServerPtr>,
}

/// Sends on one connection, from any thread, even after the connection is gone.
///
/// Sends take a read lock for the duration of the server's `send`; when the connection
/// ends, the plugin glue takes the write lock and forgets the server pointer before
/// `on_disconnect`, so a send that races with the end of the connection either completes
/// before the server struct is released or returns [`SendError::Closed`] without touching it.
#[derive(Clone)]
pub struct Sender {
    shared: Arc<SenderShared>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Sender {
    pub(crate) fn new(server: *const WebSocketServer) -> Self {
        Sender {
            shared: Arc::new(SenderShared {
                server: RwLock::new(ServerPtr(server)),
            }),
        }
    }

    /// Forgets the server pointer. Waits for sends in progress, which is why the server
    /// must have made them return before calling `on_disconnect`.
    pub(crate) fn disconnect(&self) {
        let mut server = self.shared.server.write().unwrap_or_else(PoisonError::into_inner);
        *server = ServerPtr(std::ptr::null());
    }

    /// Whether the connection has ended; a `false` can be stale by the time it is read.
    pub fn is_closed(&self) -> bool {
        self.shared
            .server
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .is_null()
    }

    /// Sends a text message; returns the number of payload bytes accepted.
    pub fn send_text(&self, text: &str) -> Result<usize, SendError> {
        self.send_raw(MESSAGE_TYPE_TEXT, text.as_bytes())
    }

    /// Sends a binary message; returns the number of payload bytes accepted.
    pub fn send_binary(&self, data: &[u8]) -> Result<usize, SendError> {
        self.send_raw(MESSAGE_TYPE_BINARY, data)
    }

    /// Sends a message of the same type as `msg` (handy for echoing).
    pub fn send(&self, msg: Message<'_>) -> Result<usize, SendError> {
        self.send_raw(msg.message_type(), msg.as_bytes())
    }

    fn send_raw(&self, message_type: c_int, data: &[u8]) -> Result<usize, SendError> {
        let guard = self.shared.server.read().unwrap_or_else(PoisonError::into_inner);
        let server = guard.0;
        if server.is_null() {
            return Err(SendError::Closed);
        }
        // SAFETY: non-NULL under the read lock means on_disconnect has not yet been
        // entered, so the server struct is still valid (see the header's contract).
        let send = server_fn!(unsafe { &*server }, send).ok_or(SendError::Rejected)?;
        // SAFETY: as above; send may be called from any thread and copies the buffer.
        let accepted = unsafe { send(server, message_type, data.as_ptr(), data.len()) };
        drop(guard);
        if accepted == 0 && !data.is_empty() {
            Err(SendError::Rejected)
        } else {
            Ok(accepted)
        }
    }

    /// Runs `f` with the live server struct, or fails with `Closed`.
    fn with_server<R>(
        &self,
        f: impl FnOnce(*const WebSocketServer, &WebSocketServer) -> Result<R, ChannelError>,
    ) -> Result<R, ChannelError> {
        let guard = self.shared.server.read().unwrap_or_else(PoisonError::into_inner);
        let server = guard.0;
        if server.is_null() {
            return Err(ChannelError::Closed);
        }
        // SAFETY: non-NULL under the read lock means on_disconnect has not yet been
        // entered, so the server struct is still valid.
        f(server, unsafe { &*server })
    }

    /// Subscribes this connection to `channel`: every message published to it from now
    /// on is sent to this client, until [`Sender::unsubscribe`] or the end of the
    /// connection. Subscribing twice is the same as once; a connection may hold 64.
    pub fn subscribe(&self, channel: &str) -> Result<(), ChannelError> {
        self.with_server(|server, raw| {
            let subscribe = server_fn!(raw, subscribe).ok_or(ChannelError::Unsupported)?;
            // SAFETY: live server (with_server); the name is valid for its length and
            // copied.
            channel_result(unsafe { subscribe(server, channel.as_ptr().cast(), channel.len()) })
        })
    }

    /// Ends this connection's subscription to `channel`; `Rejected` if it had none.
    pub fn unsubscribe(&self, channel: &str) -> Result<(), ChannelError> {
        self.with_server(|server, raw| {
            let unsubscribe = server_fn!(raw, unsubscribe).ok_or(ChannelError::Unsupported)?;
            // SAFETY: as for subscribe.
            channel_result(unsafe { unsubscribe(server, channel.as_ptr().cast(), channel.len()) })
        })
    }

    /// Publishes `msg` to `channel` (see [`Publisher::publish`]); this connection gets
    /// it too if it is subscribed.
    pub fn publish(&self, channel: &str, msg: Message<'_>) -> Result<(), ChannelError> {
        self.with_server(|server, raw| {
            let publish = server_fn!(raw, publish).ok_or(ChannelError::Unsupported)?;
            let data = msg.as_bytes();
            // SAFETY: live server; both buffers are valid for their lengths and copied.
            channel_result(unsafe {
                publish(
                    server,
                    channel.as_ptr().cast(),
                    channel.len(),
                    msg.message_type(),
                    data.as_ptr(),
                    data.len(),
                )
            })
        })
    }

    /// A [`Publisher`] that outlives this connection; `Closed` once it has ended,
    /// `Unsupported` from a server without channels.
    pub fn publisher(&self) -> Result<Publisher, ChannelError> {
        self.with_server(|_, raw| Publisher::of(raw).ok_or(ChannelError::Unsupported))
    }

    /// Starts the closing handshake with 1000 (normal closure). A server that predates
    /// `close_with` sends its Close frame without a status code.
    pub fn close(&self) -> Result<(), SendError> {
        let guard = self.shared.server.read().unwrap_or_else(PoisonError::into_inner);
        let server = guard.0;
        if server.is_null() {
            return Err(SendError::Closed);
        }
        // SAFETY: non-NULL under the read lock: the server struct is still valid.
        let raw = unsafe { &*server };
        if let Some(close_with) = server_fn!(raw, close_with) {
            // SAFETY: as above; close_with may be called from any thread, and an empty
            // reason needs no buffer.
            let started = unsafe { close_with(server, CloseCode::NORMAL.0, std::ptr::null(), 0) };
            return if started != 0 {
                Ok(())
            } else {
                Err(SendError::Rejected)
            };
        }
        let close = server_fn!(raw, close).ok_or(SendError::Rejected)?;
        // SAFETY: as above; close may be called from any thread.
        unsafe { close(server) };
        Ok(())
    }

    /// Starts the closing handshake with a status code and a reason. The code must be
    /// one a server may send ([`CloseCode::may_be_sent`]) and the reason at most
    /// [`MAX_CLOSE_REASON`] bytes; otherwise nothing is sent and the result is
    /// [`SendError::Rejected`], as it is from a server that predates `close_with`.
    pub fn close_with(&self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.may_be_sent() || reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::Rejected);
        }
        let guard = self.shared.server.read().unwrap_or_else(PoisonError::into_inner);
        let server = guard.0;
        if server.is_null() {
            return Err(SendError::Closed);
        }
        // SAFETY: non-NULL under the read lock: the server struct is still valid.
        let close_with = server_fn!(unsafe { &*server }, close_with).ok_or(SendError::Rejected)?;
        // SAFETY: as above; the server reads reason_size bytes of the reason and copies them.
        let started = unsafe { close_with(server, code.0, reason.as_ptr().cast(), reason.len()) };
        if started != 0 {
            Ok(())
        } else {
            Err(SendError::Rejected)
        }
    }
}
