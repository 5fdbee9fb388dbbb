//! The Rust structs against the shipped header, as a C compiler lays it out.

mod common;

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use websocket_plugin::ffi::*;

/// (offset, size) of every field, in declaration order, as Rust lays them out.
macro_rules! fields {
    ($t:ident: $($f:ident),* $(,)?) => {{
        vec![$((concat!(stringify!($t), ".", stringify!($f)), offset_of!($t, $f), size_of_field(|v: &$t| &v.$f))),*]
    }};
}

/// The size of a field's type, named through a projection that is never called.
fn size_of_field<T, F>(_: impl Fn(&T) -> &F) -> usize {
    size_of::<F>()
}

fn server_fields() -> Vec<(&'static str, usize, usize)> {
    fields!(WebSocketServer: size, version, state, request, header_get, header_set,
        protocol_count, protocol_index, protocol_set, send, close, close_with, uri_path,
        query_string, remote_ip, remote_port, user, auth_type, env_get, cookie_get, is_tls,
        http_version, subscribe, unsubscribe, publish)
}

fn plugin_fields() -> Vec<(&'static str, usize, usize)> {
    fields!(WebSocketPlugin: size, version, destroy, on_connect, on_message, on_disconnect)
}

#[test]
fn fields_are_packed_in_declaration_order() {
    let p = size_of::<usize>();
    let expect_server = [
        ("WebSocketServer.size", 0, 4),
        ("WebSocketServer.version", 4, 4),
        ("WebSocketServer.state", 8, p),
        ("WebSocketServer.request", 8 + p, p),
        ("WebSocketServer.header_get", 8 + 2 * p, p),
        ("WebSocketServer.header_set", 8 + 3 * p, p),
        ("WebSocketServer.protocol_count", 8 + 4 * p, p),
        ("WebSocketServer.protocol_index", 8 + 5 * p, p),
        ("WebSocketServer.protocol_set", 8 + 6 * p, p),
        ("WebSocketServer.send", 8 + 7 * p, p),
        ("WebSocketServer.close", 8 + 8 * p, p),
        // Appended: the original layout ends before it.
        ("WebSocketServer.close_with", 8 + 9 * p, p),
        ("WebSocketServer.uri_path", 8 + 10 * p, p),
        ("WebSocketServer.query_string", 8 + 11 * p, p),
        ("WebSocketServer.remote_ip", 8 + 12 * p, p),
        ("WebSocketServer.remote_port", 8 + 13 * p, p),
        ("WebSocketServer.user", 8 + 14 * p, p),
        ("WebSocketServer.auth_type", 8 + 15 * p, p),
        ("WebSocketServer.env_get", 8 + 16 * p, p),
        ("WebSocketServer.cookie_get", 8 + 17 * p, p),
        ("WebSocketServer.is_tls", 8 + 18 * p, p),
        ("WebSocketServer.http_version", 8 + 19 * p, p),
        ("WebSocketServer.subscribe", 8 + 20 * p, p),
        ("WebSocketServer.unsubscribe", 8 + 21 * p, p),
        ("WebSocketServer.publish", 8 + 22 * p, p),
    ];
    assert_eq!(server_fields(), expect_server);
    assert_eq!(size_of::<WebSocketServer>(), 8 + 23 * p);
    assert_eq!(ORIGINAL_SERVER_SIZE, 8 + 9 * p);
    let expect_plugin = [
        ("WebSocketPlugin.size", 0, 4),
        ("WebSocketPlugin.version", 4, 4),
        ("WebSocketPlugin.destroy", 8, p),
        ("WebSocketPlugin.on_connect", 8 + p, p),
        ("WebSocketPlugin.on_message", 8 + 2 * p, p),
        ("WebSocketPlugin.on_disconnect", 8 + 3 * p, p),
    ];
    assert_eq!(plugin_fields(), expect_plugin);
    assert_eq!(size_of::<WebSocketPlugin>(), 8 + 4 * p);
    // Option<fn> must be a plain, nullable function pointer.
    assert_eq!(size_of::<WS_Send>(), p);
    assert_eq!(size_of::<WS_Init>(), p);
}

fn rust_layout() -> HashMap<String, String> {
    let mut map = HashMap::new();
    map.insert(
        "sizeof WebSocketServer".into(),
        size_of::<WebSocketServer>().to_string(),
    );
    map.insert(
        "sizeof WebSocketPlugin".into(),
        size_of::<WebSocketPlugin>().to_string(),
    );
    for (name, offset, size) in server_fields().into_iter().chain(plugin_fields()) {
        map.insert(format!("field {name}"), format!("{offset} {size}"));
    }
    for (name, value) in [
        ("MESSAGE_TYPE_INVALID", MESSAGE_TYPE_INVALID as i64),
        ("MESSAGE_TYPE_TEXT", MESSAGE_TYPE_TEXT as i64),
        ("MESSAGE_TYPE_BINARY", MESSAGE_TYPE_BINARY as i64),
        ("MESSAGE_TYPE_CLOSE", MESSAGE_TYPE_CLOSE as i64),
        ("MESSAGE_TYPE_PING", MESSAGE_TYPE_PING as i64),
        ("MESSAGE_TYPE_PONG", MESSAGE_TYPE_PONG as i64),
        ("WEBSOCKET_SERVER_VERSION_1", WEBSOCKET_SERVER_VERSION_1 as i64),
        ("WEBSOCKET_PLUGIN_VERSION_0", WEBSOCKET_PLUGIN_VERSION_0 as i64),
    ] {
        map.insert(format!("macro {name}"), value.to_string());
    }
    map
}

fn c_layout(language_flags: &[&str]) -> HashMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let source = common::crate_dir().join("tests/c/layout_probe.c");
    let exe = common::compile_program(dir.path(), "layout_probe", &[source], language_flags);
    let output = Command::new(&exe).output().expect("run the layout probe");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            // "kind name rest..."
            let mut parts = line.splitn(3, ' ');
            let (kind, name, rest) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            (format!("{kind} {name}"), rest.to_owned())
        })
        .collect()
}

#[test]
fn c_compiler_agrees_with_rust() {
    let flags: &[&str] = if cfg!(target_env = "msvc") {
        &[]
    } else {
        &["-std=c99", "-pedantic"]
    };
    assert_eq!(c_layout(flags), rust_layout());
}

#[test]
fn header_is_c89_clean() {
    if cfg!(target_env = "msvc") {
        return;
    }
    // Old plugins may still be built as C89; the header alone must allow that.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("c89.c");
    std::fs::write(
        &source,
        "#include \"websocket_plugin.h\"\nint main(void) { WebSocketPlugin p; p.size = sizeof p; return (int)p.size - (int)sizeof(WebSocketPlugin); }\n",
    )
    .unwrap();
    let exe = common::compile_program(dir.path(), "c89", &[source], &["-std=c89", "-pedantic"]);
    assert!(Command::new(exe).status().unwrap().success());
}

#[test]
fn cplusplus_agrees_with_rust() {
    let flags: &[&str] = if cfg!(target_env = "msvc") {
        &["/TP"]
    } else {
        &["-x", "c++"]
    };
    assert_eq!(c_layout(flags), rust_layout());
}
