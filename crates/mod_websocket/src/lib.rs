//! mod_websocket: RFC 6455 WebSockets (protocol versions 7, 8 and 13) inside
//! Apache httpd 2.4, handed to plugins through the apache-websocket C ABI.
//!
//! `LoadModule websocket_module modules/mod_websocket.so`, then in a
//! `<Location>`: `SetHandler websocket-handler` and
//! `WebSocketHandler <library> <init function>`.

mod handler;

websocket_engine::declare_module!(websocket_module, c"mod_websocket.c", handler::handle, []);
