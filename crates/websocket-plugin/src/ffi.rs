//! The raw plugin ABI, field for field as `include/websocket_plugin.h` lays it out.
//!
//! The names mirror the C header (hence the non-Rust casing of a few items) so that
//! reading one next to the other is easy. Every callback is `extern "system"`: that is
//! `__stdcall` on 32-bit Windows, where the header's `CALLBACK` macro expands to
//! `__stdcall`, and the C convention everywhere else.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_ushort, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// Not a real message type: what a server reports for something it could not classify.
pub const MESSAGE_TYPE_INVALID: c_int = -1;
/// A complete text message (valid UTF-8).
pub const MESSAGE_TYPE_TEXT: c_int = 0;
/// A complete binary message.
pub const MESSAGE_TYPE_BINARY: c_int = 128;
/// A close frame.
pub const MESSAGE_TYPE_CLOSE: c_int = 255;
/// A ping frame.
pub const MESSAGE_TYPE_PING: c_int = 256;
/// A pong frame.
pub const MESSAGE_TYPE_PONG: c_int = 257;

/// The only `WebSocketServer` version there is.
pub const WEBSOCKET_SERVER_VERSION_1: c_uint = 1;
/// The only `WebSocketPlugin` version there is.
pub const WEBSOCKET_PLUGIN_VERSION_0: c_uint = 0;

/// Apache's `request_rec`, opaque here so this crate does not depend on httpd's headers.
///
/// Modules that have real bindings cast between the two pointer types.
#[repr(C)]
pub struct request_rec {
    _opaque: [u8; 0],
    // Opaque FFI types must be neither Send, Sync nor Unpin.
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// The server's private per-connection state (`struct _WebSocketState`); plugins never look inside.
#[repr(C)]
pub struct WebSocketState {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct request_rec *(CALLBACK *)(const WebSocketServer *server)`
pub type WS_Request = Option<unsafe extern "system" fn(server: *const WebSocketServer) -> *mut request_rec>;
/// `const char *(CALLBACK *)(const WebSocketServer *server, const char *key)`
pub type WS_Header_Get =
    Option<unsafe extern "system" fn(server: *const WebSocketServer, key: *const c_char) -> *const c_char>;
/// `void (CALLBACK *)(const WebSocketServer *server, const char *key, const char *value)`
pub type WS_Header_Set = Option<
    unsafe extern "system" fn(server: *const WebSocketServer, key: *const c_char, value: *const c_char),
>;
/// `size_t (CALLBACK *)(const WebSocketServer *server)`
pub type WS_Protocol_Count = Option<unsafe extern "system" fn(server: *const WebSocketServer) -> usize>;
/// `const char *(CALLBACK *)(const WebSocketServer *server, const size_t index)`
pub type WS_Protocol_Index =
    Option<unsafe extern "system" fn(server: *const WebSocketServer, index: usize) -> *const c_char>;
/// `void (CALLBACK *)(const WebSocketServer *server, const char *protocol)`
pub type WS_Protocol_Set =
    Option<unsafe extern "system" fn(server: *const WebSocketServer, protocol: *const c_char)>;
/// `size_t (CALLBACK *)(const WebSocketServer *server, const int type,
/// const unsigned char *buffer, const size_t buffer_size)`
pub type WS_Send = Option<
    unsafe extern "system" fn(
        server: *const WebSocketServer,
        message_type: c_int,
        buffer: *const u8,
        buffer_size: usize,
    ) -> usize,
>;
/// `void (CALLBACK *)(const WebSocketServer *server)`
pub type WS_Close = Option<unsafe extern "system" fn(server: *const WebSocketServer)>;
/// `int (CALLBACK *)(const WebSocketServer *server, const unsigned short code,
/// const char *reason, const size_t reason_size)`; 1 if the close was started.
pub type WS_Close_With = Option<
    unsafe extern "system" fn(
        server: *const WebSocketServer,
        code: c_ushort,
        reason: *const c_char,
        reason_size: usize,
    ) -> c_int,
>;

/// `const char *(CALLBACK *)(const WebSocketServer *server)`: one value of the request
/// (NULL when it has none).
pub type WS_Request_Value =
    Option<unsafe extern "system" fn(server: *const WebSocketServer) -> *const c_char>;
/// `const char *(CALLBACK *)(const WebSocketServer *server, const char *name)`: a named
/// value of the request (NULL when it has none).
pub type WS_Request_Lookup =
    Option<unsafe extern "system" fn(server: *const WebSocketServer, name: *const c_char) -> *const c_char>;
/// `unsigned int (CALLBACK *)(const WebSocketServer *server)`
pub type WS_Request_Number = Option<unsafe extern "system" fn(server: *const WebSocketServer) -> c_uint>;

/// `int (CALLBACK *)(const WebSocketServer *server, const char *channel,
/// const size_t channel_size)`: subscribe or unsubscribe; 1 if done.
pub type WS_Subscribe = Option<
    unsafe extern "system" fn(
        server: *const WebSocketServer,
        channel: *const c_char,
        channel_size: usize,
    ) -> c_int,
>;
/// `int (CALLBACK *)(const WebSocketServer *server, const char *channel,
/// const size_t channel_size, const int type, const unsigned char *buffer,
/// const size_t buffer_size)`: 1 if the message was accepted for delivery.
/// `server` may be NULL.
pub type WS_Publish = Option<
    unsafe extern "system" fn(
        server: *const WebSocketServer,
        channel: *const c_char,
        channel_size: usize,
        message_type: c_int,
        buffer: *const u8,
        buffer_size: usize,
    ) -> c_int,
>;

/// What the server hands a plugin for one connection (`struct _WebSocketServer`, version 1).
///
/// Fields after `close` were appended later; a server declares through `size` which it
/// has, and [`server_fn!`] reads a field only when `size` covers it.
#[repr(C)]
pub struct WebSocketServer {
    pub size: c_uint,
    pub version: c_uint,
    pub state: *mut WebSocketState,
    pub request: WS_Request,
    pub header_get: WS_Header_Get,
    pub header_set: WS_Header_Set,
    pub protocol_count: WS_Protocol_Count,
    pub protocol_index: WS_Protocol_Index,
    pub protocol_set: WS_Protocol_Set,
    pub send: WS_Send,
    pub close: WS_Close,
    // Appended after the original layout: present only when `size` covers them.
    pub close_with: WS_Close_With,
    pub uri_path: WS_Request_Value,
    pub query_string: WS_Request_Value,
    pub remote_ip: WS_Request_Value,
    pub remote_port: WS_Request_Number,
    pub user: WS_Request_Value,
    pub auth_type: WS_Request_Value,
    pub env_get: WS_Request_Lookup,
    pub cookie_get: WS_Request_Lookup,
    pub is_tls: WS_Request_Number,
    pub http_version: WS_Request_Number,
    pub subscribe: WS_Subscribe,
    pub unsubscribe: WS_Subscribe,
    pub publish: WS_Publish,
}

/// The size of the server struct as the original C module's header declares it: a
/// server (or fake) that declares this size has none of the appended functions.
pub const ORIGINAL_SERVER_SIZE: usize = std::mem::offset_of!(WebSocketServer, close_with);

/// `struct _WebSocketPlugin *(CALLBACK *)(void)`: the function a `WebSocketHandler` names.
pub type WS_Init = Option<unsafe extern "system" fn() -> *mut WebSocketPlugin>;
/// `void (CALLBACK *)(WebSocketPlugin *plugin)`
pub type WS_Destroy = Option<unsafe extern "system" fn(plugin: *mut WebSocketPlugin)>;
/// `void *(CALLBACK *)(const WebSocketServer *server)`; returns `plugin_private`, NULL refuses.
pub type WS_OnConnect = Option<unsafe extern "system" fn(server: *const WebSocketServer) -> *mut c_void>;
/// `size_t (CALLBACK *)(void *plugin_private, const WebSocketServer *server, const int type,
/// unsigned char *buffer, const size_t buffer_size)`
pub type WS_OnMessage = Option<
    unsafe extern "system" fn(
        plugin_private: *mut c_void,
        server: *const WebSocketServer,
        message_type: c_int,
        buffer: *mut u8,
        buffer_size: usize,
    ) -> usize,
>;
/// `void (CALLBACK *)(void *plugin_private, const WebSocketServer *server)`
pub type WS_OnDisconnect =
    Option<unsafe extern "system" fn(plugin_private: *mut c_void, server: *const WebSocketServer)>;

/// What a plugin's init function returns (`struct _WebSocketPlugin`, version 0).
#[repr(C)]
pub struct WebSocketPlugin {
    pub size: c_uint,
    pub version: c_uint,
    pub destroy: WS_Destroy,
    pub on_connect: WS_OnConnect,
    pub on_message: WS_OnMessage,
    pub on_disconnect: WS_OnDisconnect,
}

/// Whether a server struct that declares `size` bytes is large enough to hold the field
/// that ends at `field_end`.
///
/// Callers check this before reading a callback so that a server built against an
/// older, shorter layout is never read past its end.
pub(crate) fn server_has(server: &WebSocketServer, field_end: usize) -> bool {
    server.size as usize >= field_end
}

/// Reads one callback out of a server struct, or `None` if the server's declared size
/// does not cover it or it is NULL.
macro_rules! server_fn {
    ($server:expr, $field:ident) => {{
        let server: &$crate::ffi::WebSocketServer = $server;
        let end = ::std::mem::offset_of!($crate::ffi::WebSocketServer, $field)
            + ::std::mem::size_of_val(&server.$field);
        if $crate::ffi::server_has(server, end) {
            server.$field
        } else {
            None
        }
    }};
}
pub(crate) use server_fn;
