//! `LoadedPlugin` against real shared libraries compiled from C for the test.

mod common;

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use websocket_plugin::ffi::{MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};
use websocket_plugin::testing::{FakeServer, PluginUnderTest};
use websocket_plugin::{LoadError, LoadedPlugin};

fn fixtures(dir: &Path) -> PathBuf {
    let source = common::crate_dir().join("tests/c/fixtures.c");
    common::compile_shared(dir, "fixtures", &[source], &[])
}

/// What the fixture library's destroy calls recorded.
fn fixture_log(library: &libloading::Library) -> String {
    // SAFETY: fixture_log is `const char *fixture_log(void)` returning a static buffer.
    unsafe {
        let f = library
            .get::<unsafe extern "C" fn() -> *const c_char>(b"fixture_log")
            .unwrap();
        CStr::from_ptr(f()).to_string_lossy().into_owned()
    }
}

#[test]
fn loaded_plugin_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LoadedPlugin>();
}

#[test]
fn good_plugin_loads_runs_and_is_destroyed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures(dir.path());
    // A second reference keeps the library mapped after the LoadedPlugin unloads it, so
    // the log can be read.
    // SAFETY: the fixture library has no initialisers.
    let witness = unsafe { libloading::Library::new(&path) }.unwrap();

    let plugin = LoadedPlugin::load(&path, "good_init").unwrap();
    assert_eq!(plugin.init_symbol(), "good_init");
    assert_eq!(plugin.path(), path);
    assert!(plugin.plugin().on_connect.is_none());

    let server = FakeServer::new();
    // SAFETY: the fake server outlives the connection, which ends with on_disconnect.
    unsafe {
        let private = plugin.on_connect(server.as_ptr()).expect("no on_connect accepts");
        assert!(private.is_null());
        plugin.on_message(private, server.as_ptr(), MESSAGE_TYPE_BINARY, &mut [1, 2]);
        plugin.on_disconnect(private, server.as_ptr());
    }
    assert_eq!(server.sent(), [(MESSAGE_TYPE_BINARY, vec![1, 2])]);

    assert_eq!(fixture_log(&witness), "init;");
    drop(plugin);
    assert_eq!(fixture_log(&witness), "init;destroy;");
}

#[test]
fn stdcall_spellings_are_tried() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures(dir.path());
    let plugin = LoadedPlugin::load(&path, "_good_init@0").unwrap();
    assert_eq!(plugin.init_symbol(), "good_init");
}

#[test]
fn missing_init_lists_the_names_tried() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures(dir.path());
    let err = LoadedPlugin::load(&path, "missing_init").unwrap_err();
    match &err {
        LoadError::InitNotFound { tried, .. } => {
            assert_eq!(tried, &["missing_init", "_missing_init@0"])
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "WebSocket plugin library {} exports no init function named missing_init or _missing_init@0",
            path.display()
        )
    );
}

#[test]
fn invalid_plugins_are_rejected_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures(dir.path());
    // SAFETY: the fixture library has no initialisers.
    let witness = unsafe { libloading::Library::new(&path) }.unwrap();
    let p = path.display();
    let size = std::mem::size_of::<websocket_plugin::ffi::WebSocketPlugin>();

    let err = LoadedPlugin::load(&path, "null_init").unwrap_err();
    assert!(matches!(err, LoadError::InitReturnedNull { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("init function null_init of WebSocket plugin {p} returned NULL")
    );

    let err = LoadedPlugin::load(&path, "version_init").unwrap_err();
    assert!(
        matches!(err, LoadError::WrongVersion { version: 7, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("WebSocket plugin {p} (version_init) has version 7, but only version 0 is supported")
    );

    let err = LoadedPlugin::load(&path, "small_init").unwrap_err();
    assert!(matches!(err, LoadError::SizeTooSmall { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "WebSocket plugin {p} (small_init) declares a size of {} bytes, less than the {size} \
             bytes of WebSocketPlugin version 0",
            size - 1
        )
    );

    let err = LoadedPlugin::load(&path, "no_message_init").unwrap_err();
    assert!(matches!(err, LoadError::NoOnMessage { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("WebSocket plugin {p} (no_message_init) has no on_message callback")
    );
    // A complete version-0 struct is destroyed even when rejected.
    assert_eq!(fixture_log(&witness), "destroy-no-message;");
}

#[cfg(unix)]
mod c_test_plugin {
    use super::*;

    fn load(dir: &Path) -> LoadedPlugin {
        let source = common::crate_dir().join("../../tests/c-plugin/test_plugin.c");
        let path = common::compile_shared(
            dir,
            "test_plugin",
            &[source],
            &["-std=c99", "-pedantic", "-lpthread"],
        );
        LoadedPlugin::load(&path, "test_plugin_init").unwrap()
    }

    #[test]
    fn handshake_callbacks() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(dir.path());
        // SAFETY: `loaded` outlives the driver.
        let plugin = unsafe { PluginUnderTest::from_raw(loaded.as_ptr()) };

        let refused = FakeServer::new().header("x-refuse", "");
        assert!(plugin.connect(&refused).is_none());

        let server = FakeServer::new()
            .header("X-Echo-Header", "ping")
            .header("X-Other", "other value")
            .protocols(&["chat.v1", "chat.v2", "x"]);
        let mut session = plugin.connect(&server).expect("accepted");
        assert_eq!(server.chosen_protocol().as_deref(), Some("chat.v2"));
        assert_eq!(
            server.response_headers(),
            [("X-Echo-Header-Reply".to_owned(), "ping".to_owned())]
        );
        session.text("protocols");
        session.text("request");
        session.text("header:x-other");
        session.text("header:X-Missing");
        session.text("hello");
        session.binary(&[0, 159, 255]);
        session.text("close");
        session.disconnect();
        assert_eq!(
            server.sent(),
            [
                (MESSAGE_TYPE_TEXT, b"chat.v1,chat.v2,x".to_vec()),
                (MESSAGE_TYPE_TEXT, b"yes".to_vec()),
                (MESSAGE_TYPE_TEXT, b"other value".to_vec()),
                (MESSAGE_TYPE_TEXT, b"(null)".to_vec()),
                (MESSAGE_TYPE_TEXT, b"hello".to_vec()),
                (MESSAGE_TYPE_BINARY, vec![0, 159, 255]),
            ]
        );
        assert_eq!(server.close_calls(), 1);
        assert_eq!(server.late_calls(), 0);

        let plain = FakeServer::new();
        let mut session = plugin.connect(&plain).unwrap();
        session.text("protocols");
        drop(session);
        assert_eq!(plain.sent_texts(), [""]);
        assert_eq!(plain.chosen_protocol(), None);
        assert!(plain.response_headers().is_empty());
    }

    #[test]
    fn threads_send_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(dir.path());
        // SAFETY: `loaded` outlives the driver.
        let plugin = unsafe { PluginUnderTest::from_raw(loaded.as_ptr()) };
        let server = FakeServer::new();
        let mut session = plugin.connect(&server).unwrap();
        session.text("threads:4:50");
        assert!(server.wait_for_sent(Duration::from_secs(10), |sent| {
            sent.iter().any(|(_, d)| d == b"threads-done")
        }));
        let texts = server.sent_texts();
        assert_eq!(texts.last().map(String::as_str), Some("threads-done"));
        for t in 0..4 {
            let prefix = format!("t{t}:");
            let mine: Vec<&str> = texts.iter().filter_map(|s| s.strip_prefix(&prefix)).collect();
            let expected: Vec<String> = (0..50).map(|k| k.to_string()).collect();
            assert_eq!(mine, expected, "thread {t}");
        }
        assert_eq!(texts.len(), 4 * 50 + 1);

        // A batch still running at disconnect is joined by on_disconnect.
        session.text("threads:2:100000");
        session.disconnect();
        assert_eq!(server.late_calls(), 0);
        assert_eq!(server.sends_in_flight(), 0);
    }
}

/// Loads a Rust plugin built with `export_plugin!`: the echo example from
/// the stage `cargo xtask build` makes (`WEBSOCKET_STAGE_DIR`, as `cargo
/// xtask test` sets it, or `target/apache`), or the library named by
/// `WEBSOCKET_PLUGIN_ECHO`.
#[test]
fn rust_echo_plugin_through_dlopen() {
    let path = match std::env::var_os("WEBSOCKET_PLUGIN_ECHO") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::var_os("WEBSOCKET_STAGE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/apache"))
            .join("modules/mod_websocket_echo.so"),
    };
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build` first",
        path.display()
    );
    let loaded = LoadedPlugin::load(Path::new(&path), "_echo_init@0").unwrap();
    // SAFETY: `loaded` outlives the driver.
    let plugin = unsafe { PluginUnderTest::from_raw(loaded.as_ptr()) };
    let server = FakeServer::new();
    let mut session = plugin.connect(&server).unwrap();
    session.text("hi");
    session.binary(b"\x00");
    session.disconnect();
    assert_eq!(
        server.sent(),
        [
            (MESSAGE_TYPE_TEXT, b"hi".to_vec()),
            (MESSAGE_TYPE_BINARY, vec![0])
        ]
    );
    drop(plugin);
    drop(loaded);
}
