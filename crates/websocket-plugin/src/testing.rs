//! A fake server for testing plugins, Rust or C, without Apache (feature `testing`).
//!
//! [`FakeServer`] implements every `WebSocketServer` callback by recording what the
//! plugin did; [`PluginUnderTest`] drives a plugin struct through a connection's life the
//! way the module does, including making sends fail before `on_disconnect`, and counts
//! any callback into the server that arrives after `on_disconnect` has returned.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uint, c_ushort, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::api::{CloseCode, MAX_CLOSE_REASON};
use crate::ffi::{
    request_rec, WebSocketPlugin, WebSocketServer, WebSocketState, MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT,
    WEBSOCKET_PLUGIN_VERSION_0, WEBSOCKET_SERVER_VERSION_1,
};

struct Inner {
    raw: WebSocketServer,
    request_headers: Vec<(String, CString)>,
    protocols: Vec<CString>,
    response_headers: Mutex<Vec<(String, String)>>,
    chosen_protocol: Mutex<Option<String>>,
    sent: Mutex<VecDeque<(c_int, Vec<u8>)>>,
    sent_changed: Condvar,
    send_delay: Duration,
    close_calls: AtomicUsize,
    closes: Mutex<Vec<Option<(u16, String)>>>,
    send_calls: AtomicUsize,
    in_flight: AtomicUsize,
    closing: AtomicBool,
    gone: AtomicBool,
    late_calls: AtomicUsize,
    request_marker: u8,
    client: FakeClient,
    subscriptions: Mutex<Vec<String>>,
    published: Mutex<Vec<Published>>,
}

/// A message a plugin published through the fake: channel, `MESSAGE_TYPE_*`, payload.
pub type Published = (String, c_int, Vec<u8>);

/// What plugins published with no server (through a [`crate::Publisher`]).
static PUBLISHED_WITHOUT_SERVER: Mutex<Vec<Published>> = Mutex::new(Vec::new());

/// The module's rule for channel names, repeated so that plugin tests see the same
/// refusals: 1 to 128 bytes of `A-Z a-z 0-9 - . _ ~`.
fn fake_channel(channel: *const c_char, size: usize) -> Option<String> {
    if channel.is_null() || size == 0 || size > 128 {
        return None;
    }
    // SAFETY: the plugin passes `size` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(channel.cast::<u8>(), size) };
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b))
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

unsafe extern "system" fn fake_subscribe(
    server: *const WebSocketServer,
    channel: *const c_char,
    size: usize,
) -> c_int {
    // SAFETY: called by the plugin with its server pointer.
    let inner = unsafe { inner(server) };
    let Some(name) = fake_channel(channel, size) else {
        return 0;
    };
    let mut subs = lock(&inner.subscriptions);
    if inner.closing.load(Ordering::SeqCst) || (subs.len() >= 64 && !subs.contains(&name)) {
        return 0;
    }
    if !subs.contains(&name) {
        subs.push(name);
    }
    1
}

unsafe extern "system" fn fake_unsubscribe(
    server: *const WebSocketServer,
    channel: *const c_char,
    size: usize,
) -> c_int {
    // SAFETY: called by the plugin with its server pointer.
    let inner = unsafe { inner(server) };
    let Some(name) = fake_channel(channel, size) else {
        return 0;
    };
    let mut subs = lock(&inner.subscriptions);
    let before = subs.len();
    subs.retain(|s| *s != name);
    c_int::from(subs.len() != before)
}

unsafe extern "system" fn fake_publish(
    server: *const WebSocketServer,
    channel: *const c_char,
    size: usize,
    message_type: c_int,
    buffer: *const u8,
    buffer_size: usize,
) -> c_int {
    let Some(name) = fake_channel(channel, size) else {
        return 0;
    };
    let data = if buffer_size == 0 {
        Vec::new()
    } else if buffer.is_null() {
        return 0;
    } else {
        // SAFETY: the plugin passes buffer_size readable bytes.
        unsafe { std::slice::from_raw_parts(buffer, buffer_size) }.to_vec()
    };
    match message_type {
        MESSAGE_TYPE_TEXT if std::str::from_utf8(&data).is_err() => return 0,
        MESSAGE_TYPE_TEXT | MESSAGE_TYPE_BINARY => {}
        _ => return 0,
    }
    if server.is_null() {
        lock(&PUBLISHED_WITHOUT_SERVER).push((name, message_type, data));
    } else {
        // SAFETY: called by the plugin with its server pointer.
        lock(&unsafe { inner(server) }.published).push((name, message_type, data));
    }
    1
}

/// Takes what plugins published through a [`crate::Publisher`] (no server), in order,
/// from every fake in the process.
pub fn take_published_without_server() -> Vec<Published> {
    std::mem::take(&mut *lock(&PUBLISHED_WITHOUT_SERVER))
}

/// What the fake says about the client (all absent by default, HTTP/1.1, no TLS).
struct FakeClient {
    path: Option<CString>,
    query: Option<CString>,
    remote_ip: Option<CString>,
    remote_port: c_uint,
    user: Option<CString>,
    auth_type: Option<CString>,
    env: Vec<(CString, CString)>,
    cookies: Vec<(CString, CString)>,
    is_tls: bool,
    http_version: c_uint,
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

fn find(list: &[(CString, CString)], name: *const c_char) -> *const c_char {
    if name.is_null() {
        return std::ptr::null();
    }
    // SAFETY: the plugin passes a NUL-terminated name (NULL is handled above).
    let name = unsafe { CStr::from_ptr(name) };
    list.iter()
        .find(|(n, _)| n.as_c_str() == name)
        .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
}

macro_rules! fake_value {
    ($name:ident, $field:ident) => {
        unsafe extern "system" fn $name(server: *const WebSocketServer) -> *const c_char {
            // SAFETY: called by the plugin with its server pointer.
            opt_ptr(&unsafe { inner(server) }.client.$field)
        }
    };
}
fake_value!(fake_uri_path, path);
fake_value!(fake_query_string, query);
fake_value!(fake_remote_ip, remote_ip);
fake_value!(fake_user, user);
fake_value!(fake_auth_type, auth_type);

unsafe extern "system" fn fake_remote_port(server: *const WebSocketServer) -> c_uint {
    // SAFETY: called by the plugin with its server pointer.
    unsafe { inner(server) }.client.remote_port
}

unsafe extern "system" fn fake_env_get(server: *const WebSocketServer, name: *const c_char) -> *const c_char {
    // SAFETY: called by the plugin with its server pointer.
    find(&unsafe { inner(server) }.client.env, name)
}

unsafe extern "system" fn fake_cookie_get(
    server: *const WebSocketServer,
    name: *const c_char,
) -> *const c_char {
    // SAFETY: called by the plugin with its server pointer.
    find(&unsafe { inner(server) }.client.cookies, name)
}

unsafe extern "system" fn fake_is_tls(server: *const WebSocketServer) -> c_uint {
    // SAFETY: called by the plugin with its server pointer.
    c_uint::from(unsafe { inner(server) }.client.is_tls)
}

unsafe extern "system" fn fake_http_version(server: *const WebSocketServer) -> c_uint {
    // SAFETY: called by the plugin with its server pointer.
    unsafe { inner(server) }.client.http_version
}

/// A connection's server side, recording everything the plugin asks of it.
pub struct FakeServer {
    // Boxed so that the server struct and `state` keep their address.
    inner: Box<Inner>,
}

fn c_string(s: &str) -> CString {
    CString::new(s).expect("fake server strings have no NUL")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fake behind a server pointer; counts calls made after the connection ended.
///
/// # Safety
/// `server` must be the `raw` field of a live `Inner` (the plugin contract makes it so).
unsafe fn inner<'a>(server: *const WebSocketServer) -> &'a Inner {
    // SAFETY: `state` points to the Inner that contains `*server` (see FakeServer::new).
    let inner = unsafe { &*((*server).state as *const Inner) };
    if inner.gone.load(Ordering::SeqCst) {
        inner.late_calls.fetch_add(1, Ordering::SeqCst);
    }
    inner
}

unsafe extern "system" fn fake_request(server: *const WebSocketServer) -> *mut request_rec {
    // SAFETY: called by the plugin with the server pointer it was given.
    let inner = unsafe { inner(server) };
    // Any non-NULL pointer will do: plugins under test must not dereference it.
    (&inner.request_marker as *const u8).cast_mut().cast()
}

unsafe extern "system" fn fake_header_get(
    server: *const WebSocketServer,
    key: *const c_char,
) -> *const c_char {
    // SAFETY: called by the plugin with its server pointer and a NUL-terminated key.
    let (inner, key) = unsafe { (inner(server), CStr::from_ptr(key)) };
    let key = key.to_string_lossy();
    inner
        .request_headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&key))
        .map_or(std::ptr::null(), |(_, value)| value.as_ptr())
}

unsafe extern "system" fn fake_header_set(
    server: *const WebSocketServer,
    key: *const c_char,
    value: *const c_char,
) {
    // SAFETY: called by the plugin with its server pointer and NUL-terminated strings.
    let (inner, key, value) = unsafe { (inner(server), CStr::from_ptr(key), CStr::from_ptr(value)) };
    lock(&inner.response_headers).push((
        key.to_string_lossy().into_owned(),
        value.to_string_lossy().into_owned(),
    ));
}

unsafe extern "system" fn fake_protocol_count(server: *const WebSocketServer) -> usize {
    // SAFETY: called by the plugin with its server pointer.
    unsafe { inner(server) }.protocols.len()
}

unsafe extern "system" fn fake_protocol_index(server: *const WebSocketServer, index: usize) -> *const c_char {
    // SAFETY: called by the plugin with its server pointer.
    let inner = unsafe { inner(server) };
    inner
        .protocols
        .get(index)
        .map_or(std::ptr::null(), |p| p.as_ptr())
}

unsafe extern "system" fn fake_protocol_set(server: *const WebSocketServer, protocol: *const c_char) {
    // SAFETY: called by the plugin with its server pointer and a NUL-terminated string.
    let (inner, protocol) = unsafe { (inner(server), CStr::from_ptr(protocol)) };
    *lock(&inner.chosen_protocol) = Some(protocol.to_string_lossy().into_owned());
}

unsafe extern "system" fn fake_send(
    server: *const WebSocketServer,
    message_type: c_int,
    buffer: *const u8,
    buffer_size: usize,
) -> usize {
    // SAFETY: called by the plugin with its server pointer.
    let inner = unsafe { inner(server) };
    inner.send_calls.fetch_add(1, Ordering::SeqCst);
    inner.in_flight.fetch_add(1, Ordering::SeqCst);
    if !inner.send_delay.is_zero() {
        std::thread::sleep(inner.send_delay);
    }
    let accepted = if inner.closing.load(Ordering::SeqCst) {
        0
    } else {
        let data = if buffer_size == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin passes buffer_size readable bytes.
            unsafe { std::slice::from_raw_parts(buffer, buffer_size) }.to_vec()
        };
        lock(&inner.sent).push_back((message_type, data));
        inner.sent_changed.notify_all();
        buffer_size
    };
    // Checked again on the way out: a send still running when on_disconnect returned is
    // as wrong as one that started afterwards.
    if inner.gone.load(Ordering::SeqCst) {
        inner.late_calls.fetch_add(1, Ordering::SeqCst);
    }
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    accepted
}

unsafe extern "system" fn fake_close(server: *const WebSocketServer) {
    // SAFETY: called by the plugin with its server pointer.
    let inner = unsafe { inner(server) };
    inner.close_calls.fetch_add(1, Ordering::SeqCst);
    lock(&inner.closes).push(None);
}

unsafe extern "system" fn fake_close_with(
    server: *const WebSocketServer,
    code: c_ushort,
    reason: *const c_char,
    reason_size: usize,
) -> c_int {
    // SAFETY: called by the plugin with its server pointer.
    let inner = unsafe { inner(server) };
    inner.close_calls.fetch_add(1, Ordering::SeqCst);
    let reason: &[u8] = if reason_size == 0 {
        &[]
    } else if reason.is_null() {
        return 0;
    } else {
        // SAFETY: the plugin passes reason_size readable bytes.
        unsafe { std::slice::from_raw_parts(reason.cast::<u8>(), reason_size) }
    };
    // The same rules as the module's.
    let Ok(reason) = std::str::from_utf8(reason) else {
        return 0;
    };
    if !CloseCode(code).may_be_sent()
        || reason.len() > MAX_CLOSE_REASON
        || inner.closing.load(Ordering::SeqCst)
    {
        return 0;
    }
    lock(&inner.closes).push(Some((code, reason.to_owned())));
    1
}

impl Default for FakeServer {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeServer {
    /// A server with no request headers and no offered subprotocols.
    pub fn new() -> Self {
        let mut inner = Box::new(Inner {
            raw: WebSocketServer {
                size: std::mem::size_of::<WebSocketServer>() as c_uint,
                version: WEBSOCKET_SERVER_VERSION_1,
                state: std::ptr::null_mut(),
                request: Some(fake_request),
                header_get: Some(fake_header_get),
                header_set: Some(fake_header_set),
                protocol_count: Some(fake_protocol_count),
                protocol_index: Some(fake_protocol_index),
                protocol_set: Some(fake_protocol_set),
                send: Some(fake_send),
                close: Some(fake_close),
                close_with: Some(fake_close_with),
                uri_path: Some(fake_uri_path),
                query_string: Some(fake_query_string),
                remote_ip: Some(fake_remote_ip),
                remote_port: Some(fake_remote_port),
                user: Some(fake_user),
                auth_type: Some(fake_auth_type),
                env_get: Some(fake_env_get),
                cookie_get: Some(fake_cookie_get),
                is_tls: Some(fake_is_tls),
                http_version: Some(fake_http_version),
                subscribe: Some(fake_subscribe),
                unsubscribe: Some(fake_unsubscribe),
                publish: Some(fake_publish),
            },
            request_headers: Vec::new(),
            protocols: Vec::new(),
            response_headers: Mutex::new(Vec::new()),
            chosen_protocol: Mutex::new(None),
            sent: Mutex::new(VecDeque::new()),
            sent_changed: Condvar::new(),
            send_delay: Duration::ZERO,
            close_calls: AtomicUsize::new(0),
            closes: Mutex::new(Vec::new()),
            send_calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            late_calls: AtomicUsize::new(0),
            request_marker: 0,
            client: FakeClient {
                path: None,
                query: None,
                remote_ip: None,
                remote_port: 0,
                user: None,
                auth_type: None,
                env: Vec::new(),
                cookies: Vec::new(),
                is_tls: false,
                http_version: 1001,
            },
            subscriptions: Mutex::new(Vec::new()),
            published: Mutex::new(Vec::new()),
        });
        let state: *mut Inner = &mut *inner;
        inner.raw.state = state.cast::<WebSocketState>();
        FakeServer { inner }
    }

    /// Adds a request header (names compare case-insensitively, as in Apache).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let value = CString::new(value).expect("header value without NUL");
        self.inner.request_headers.push((name.to_owned(), value));
        self
    }

    /// The request's decoded path and its raw query string (`None`: no `?`).
    pub fn request_uri(mut self, path: &str, query: Option<&str>) -> Self {
        self.inner.client.path = Some(c_string(path));
        self.inner.client.query = query.map(c_string);
        self
    }

    /// The client's address.
    pub fn remote(mut self, addr: std::net::SocketAddr) -> Self {
        self.inner.client.remote_ip = Some(c_string(&addr.ip().to_string()));
        self.inner.client.remote_port = c_uint::from(addr.port());
        self
    }

    /// The user Apache authenticated, and how.
    pub fn user(mut self, user: &str, auth_type: &str) -> Self {
        self.inner.client.user = Some(c_string(user));
        self.inner.client.auth_type = Some(c_string(auth_type));
        self
    }

    /// A variable of the request's environment.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.inner.client.env.push((c_string(name), c_string(value)));
        self
    }

    /// A cookie the client sent.
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        self.inner.client.cookies.push((c_string(name), c_string(value)));
        self
    }

    /// TLS, and the HTTP version as the server reports it (1001, 2000).
    pub fn transport(mut self, is_tls: bool, http_version: u32) -> Self {
        self.inner.client.is_tls = is_tls;
        self.inner.client.http_version = http_version;
        self
    }

    /// Sets the subprotocols the client offers.
    pub fn protocols(mut self, protocols: &[&str]) -> Self {
        self.inner.protocols = protocols
            .iter()
            .map(|p| CString::new(*p).expect("protocol without NUL"))
            .collect();
        self
    }

    /// Makes every `send` take this long, to widen race windows.
    pub fn send_delay(mut self, delay: Duration) -> Self {
        self.inner.send_delay = delay;
        self
    }

    /// Overrides the size the server struct declares (to test plugins against shorter servers).
    pub fn declared_size(mut self, size: usize) -> Self {
        self.inner.raw.size = size as c_uint;
        self
    }

    /// The pointer to hand to the plugin.
    pub fn as_ptr(&self) -> *const WebSocketServer {
        &self.inner.raw
    }

    /// Messages sent so far, oldest first.
    pub fn sent(&self) -> Vec<(c_int, Vec<u8>)> {
        lock(&self.inner.sent).iter().cloned().collect()
    }

    /// The text messages sent so far, oldest first.
    pub fn sent_texts(&self) -> Vec<String> {
        lock(&self.inner.sent)
            .iter()
            .filter(|(t, _)| *t == MESSAGE_TYPE_TEXT)
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect()
    }

    /// Removes and returns the messages sent so far.
    pub fn take_sent(&self) -> Vec<(c_int, Vec<u8>)> {
        lock(&self.inner.sent).drain(..).collect()
    }

    /// Waits until `pred` holds for the sent messages, or `timeout` passes.
    pub fn wait_for_sent(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[(c_int, Vec<u8>)]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut sent = lock(&self.inner.sent);
        loop {
            if pred(sent.make_contiguous()) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            sent = self
                .inner
                .sent_changed
                .wait_timeout(sent, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Response headers set by the plugin, in order.
    pub fn response_headers(&self) -> Vec<(String, String)> {
        lock(&self.inner.response_headers).clone()
    }

    /// The subprotocol the plugin chose, if it called `protocol_set`.
    pub fn chosen_protocol(&self) -> Option<String> {
        lock(&self.inner.chosen_protocol).clone()
    }

    /// The channels the plugin subscribed this connection to, in order.
    pub fn subscriptions(&self) -> Vec<String> {
        lock(&self.inner.subscriptions).clone()
    }

    /// What the plugin published through this connection's server, in order.
    pub fn published(&self) -> Vec<Published> {
        lock(&self.inner.published).clone()
    }

    /// Calls of `close` and `close_with`, accepted or not.
    pub fn close_calls(&self) -> usize {
        self.inner.close_calls.load(Ordering::SeqCst)
    }

    /// The closes the server accepted, in order: `None` for `close` (no status code),
    /// the code and reason for `close_with`.
    pub fn closes(&self) -> Vec<Option<(u16, String)>> {
        lock(&self.inner.closes).clone()
    }

    pub fn send_calls(&self) -> usize {
        self.inner.send_calls.load(Ordering::SeqCst)
    }

    /// Sends running right now.
    pub fn sends_in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Callbacks into the server made after `on_disconnect` returned (must stay 0).
    pub fn late_calls(&self) -> usize {
        self.inner.late_calls.load(Ordering::SeqCst)
    }

    /// From now on `send` returns 0, as the module's does once the connection is closing.
    pub fn start_closing(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
    }

    fn mark_gone(&self) {
        self.inner.gone.store(true, Ordering::SeqCst);
    }
}

/// A plugin struct driven the way the module drives it.
pub struct PluginUnderTest {
    raw: *mut WebSocketPlugin,
    owned: bool,
}

impl PluginUnderTest {
    /// Calls an init function (as generated by `export_plugin!`) and checks the result the
    /// way the module does; `destroy` runs on drop.
    ///
    /// # Panics
    /// If the plugin struct would be rejected.
    pub fn init(init: extern "system" fn() -> *mut WebSocketPlugin) -> Self {
        let raw = init();
        assert!(!raw.is_null(), "init returned NULL");
        let plugin = PluginUnderTest { raw, owned: true };
        let p = plugin.raw();
        assert_eq!(p.version, WEBSOCKET_PLUGIN_VERSION_0);
        assert!(p.size as usize >= std::mem::size_of::<WebSocketPlugin>());
        assert!(p.on_message.is_some());
        plugin
    }

    /// Drives a plugin struct owned by someone else (e.g. a `LoadedPlugin`); no destroy.
    ///
    /// # Safety
    /// `raw` must be a valid plugin struct that outlives the returned value.
    pub unsafe fn from_raw(raw: *const WebSocketPlugin) -> Self {
        PluginUnderTest {
            raw: raw.cast_mut(),
            owned: false,
        }
    }

    /// The plugin struct.
    pub fn raw(&self) -> &WebSocketPlugin {
        // SAFETY: valid from init (or the from_raw contract) until drop.
        unsafe { &*self.raw }
    }

    /// Runs `on_connect`; `None` means the plugin refused.
    pub fn connect<'p, 's>(&'p self, server: &'s FakeServer) -> Option<TestSession<'p, 's>> {
        let private = match self.raw().on_connect {
            None => std::ptr::null_mut(),
            // SAFETY: the fake server outlives the session, which ends with on_disconnect.
            Some(on_connect) => match unsafe { on_connect(server.as_ptr()) } {
                p if p.is_null() => {
                    server.mark_gone();
                    return None;
                }
                p => p,
            },
        };
        Some(TestSession {
            plugin: self,
            server,
            private,
            ended: false,
        })
    }
}

impl Drop for PluginUnderTest {
    fn drop(&mut self) {
        if self.owned {
            if let Some(destroy) = self.raw().destroy {
                // SAFETY: the pointer init returned, destroyed once.
                unsafe { destroy(self.raw) };
            }
        }
    }
}

/// One accepted connection; ends (with `on_disconnect`) when dropped, if not before.
pub struct TestSession<'p, 's> {
    plugin: &'p PluginUnderTest,
    server: &'s FakeServer,
    private: *mut c_void,
    ended: bool,
}

impl TestSession<'_, '_> {
    /// Delivers a message of any type, as `on_message` would receive it.
    pub fn message(&mut self, message_type: c_int, payload: &[u8]) {
        let mut buffer = payload.to_vec();
        let on_message = self.plugin.raw().on_message.expect("validated in init");
        // SAFETY: private came from on_connect with this server; the buffer is valid for
        // the call; the session's callbacks are never concurrent (&mut self).
        unsafe {
            on_message(
                self.private,
                self.server.as_ptr(),
                message_type,
                buffer.as_mut_ptr(),
                buffer.len(),
            )
        };
    }

    pub fn text(&mut self, text: &str) {
        self.message(MESSAGE_TYPE_TEXT, text.as_bytes());
    }

    pub fn binary(&mut self, data: &[u8]) {
        self.message(MESSAGE_TYPE_BINARY, data);
    }

    /// The plugin_private returned by `on_connect`.
    pub fn private(&self) -> *mut c_void {
        self.private
    }

    /// Ends the connection as the module does: sends start failing, `on_disconnect`
    /// runs, and from then on any call into the server is counted in `late_calls`.
    pub fn disconnect(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.server.start_closing();
        if let Some(on_disconnect) = self.plugin.raw().on_disconnect {
            // SAFETY: exactly once, with the private on_connect returned.
            unsafe { on_disconnect(self.private, self.server.as_ptr()) };
        }
        self.server.mark_gone();
    }
}

impl Drop for TestSession<'_, '_> {
    fn drop(&mut self) {
        self.end();
    }
}
