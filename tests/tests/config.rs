//! Configuration edge cases, checked by behaviour: nested `<Location>`s,
//! `.htaccess`, the keep-alive directives (idle timeout, pings), reserved
//! close codes, the per-child connection limit, and values or plugins that
//! must stop `apachectl configtest`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use httpd_runner::Install;
use integration_tests::tungstenite::Message;
use integration_tests::*;
use websocket_proto::Opcode;

const EVIL: &str = "http://evil.example";

/// Sends `size` bytes of text and expects the echo, or (`None`) a close
/// with 1009.
fn message_of(c: &mut RawClient, size: usize, echoed: bool, what: &str) {
    let text = "s".repeat(size);
    c.send_text(&text);
    if echoed {
        assert_eq!(c.read_text().len(), size, "{what}");
    } else {
        assert_eq!(c.expect_close(), Some(1009), "{what}: {size} bytes");
    }
}

fn status(server: &RunningServer, h: Handshake) -> u16 {
    h.response(server).status
}

// ---------------------------------------------------------------------------
// Merging and .htaccess

#[test]
fn nested_locations_and_htaccess() {
    let echo = stage().echo_plugin();
    let name = "config-merge";
    let mut config = server_config(name, Mpm::Event, "");
    let docroot = config.docroot();
    let outer = format!(
        "<Location /nest>\n    SetHandler websocket-handler\n    WebSocketHandler \"{}\" echo_init\n    \
         MaxMessageSize 1000\n    WebSocketOriginCheck Same\n</Location>\n\
         <Location /nest/open>\n    WebSocketOriginCheck Off\n</Location>\n\
         <Location /nest/bigger>\n    MaxMessageSize 5000\n</Location>\n",
        echo.display()
    );
    let dirs = ["ht", "htbad", "htnone"]
        .iter()
        .map(|d| {
            let allow = if *d == "htnone" { "None" } else { "AuthConfig" };
            format!(
                "<Directory \"{}\">\n    AllowOverride {allow}\n    SetHandler websocket-handler\n    \
                 WebSocketHandler \"{}\" echo_init\n</Directory>\n",
                docroot.join(d).display(),
                echo.display()
            )
        })
        .collect::<String>();
    config = config.extra_config(&outer).extra_config(&dirs);
    for (dir, htaccess) in [
        ("ht", "MaxMessageSize 1000\nWebSocketOriginCheck Off\n".to_owned()),
        (
            "htbad",
            format!("WebSocketHandler \"{}\" echo_init\n", echo.display()),
        ),
        ("htnone", "MaxMessageSize 1000\n".to_owned()),
    ] {
        std::fs::create_dir_all(docroot.join(dir)).unwrap();
        std::fs::write(docroot.join(dir).join(".htaccess"), htaccess).unwrap();
    }
    let server = start(config);
    let port = server.port();
    let same = format!("http://127.0.0.1:{port}");

    // The outer block: limit 1000, same origin only.
    assert_eq!(
        status(&server, Handshake::new("/nest").header("Origin", EVIL)),
        403
    );
    // Refusals are logged with the origin.
    wait_for_log(
        &server,
        "origin \"http://evil.example\" is not allowed",
        Duration::from_secs(5),
    );
    let mut c = Handshake::new("/nest").header("Origin", &same).open(&server);
    message_of(&mut c, 1000, true, "/nest");
    message_of(&mut c, 1001, false, "/nest");

    // An inner block that only turns the origin check off keeps the handler
    // and the limit.
    let mut c = Handshake::new("/nest/open").header("Origin", EVIL).open(&server);
    message_of(&mut c, 1000, true, "/nest/open");
    message_of(&mut c, 1001, false, "/nest/open inherits MaxMessageSize 1000");
    // A location below it, not configured itself, inherits both.
    let mut c = Handshake::new("/nest/open/deeper")
        .header("Origin", EVIL)
        .open(&server);
    message_of(&mut c, 1001, false, "/nest/open/deeper");

    // One that only raises the limit keeps the origin policy.
    assert_eq!(
        status(&server, Handshake::new("/nest/bigger").header("Origin", EVIL)),
        403,
        "/nest/bigger inherits WebSocketOriginCheck Same"
    );
    let mut c = Handshake::new("/nest/bigger")
        .header("Origin", &same)
        .open(&server);
    message_of(&mut c, 5000, true, "/nest/bigger");
    message_of(&mut c, 5001, false, "/nest/bigger");

    // .htaccess where AllowOverride AuthConfig permits it.
    let mut c = Handshake::new("/ht/socket").header("Origin", EVIL).open(&server);
    message_of(&mut c, 1000, true, ".htaccess");
    message_of(&mut c, 1001, false, ".htaccess MaxMessageSize 1000");
    // ... and not where AllowOverride None: the default limit stands.
    assert_eq!(
        status(&server, Handshake::new("/htnone/socket").header("Origin", EVIL)),
        403
    );
    let mut c = Handshake::new("/htnone/socket").open(&server);
    message_of(&mut c, 5000, true, "AllowOverride None ignores .htaccess");
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));

    // WebSocketHandler is not an .htaccess directive: 500, and the log says why.
    let r = Handshake::new("/htbad/socket").response(&server);
    assert_eq!(r.status, 500, "{r:?}");
    let log = wait_for_log(&server, "not allowed here", Duration::from_secs(5));
    assert!(
        log.lines()
            .any(|l| l.contains("WebSocketHandler not allowed here") && l.contains(".htaccess")),
        "{log}"
    );
    finish(server);
}

// ---------------------------------------------------------------------------
// Timeouts and keep-alive

/// The next frame, waiting at most `within`.
fn frame_within(c: &mut RawClient, within: Duration) -> Frame {
    c.stream.set_read_timeout(Some(within)).unwrap();
    c.frame()
}

#[test]
fn idle_timeout_and_pings() {
    let install = Install::discover().expect("find the installed httpd");
    let reqtimeout = install.module_path("reqtimeout");
    assert!(reqtimeout.is_file(), "{} is missing", reqtimeout.display());
    let config = [
        "RequestReadTimeout header=2 body=2\n".to_owned(),
        echo_location("/idle", "    WebSocketIdleTimeout 2"),
        echo_location("/ping", "    WebSocketPingInterval 1"),
        echo_location("/forever", ""),
        echo_location("/off", "    WebSocketIdleTimeout 0\n    WebSocketPingInterval 0"),
    ]
    .concat();
    let server = start(
        server_config("config-timeouts", Mpm::Event, &config).load_module("reqtimeout_module", &reqtimeout),
    );

    let started = server;
    let server = &started;
    thread::scope(|s| {
        // Idle for 2 s: closed with 1001.
        s.spawn(|| {
            let mut c = RawClient::open(server, "/idle");
            let opened = Instant::now();
            assert_eq!(c.expect_close(), Some(1001), "idle timeout");
            let after = opened.elapsed();
            assert!(
                after >= Duration::from_millis(1800) && after < Duration::from_secs(5),
                "closed after {after:?}, expected ~2 s"
            );
            c.send_close(1001, "");
            c.expect_eof(Duration::from_secs(5));
        });
        // Traffic keeps it open; the clock restarts with each message.
        s.spawn(|| {
            let mut c = RawClient::open(server, "/idle");
            for i in 0..4 {
                thread::sleep(Duration::from_millis(1000));
                c.send_text(&format!("keep-alive {i}"));
                assert_eq!(c.read_text(), format!("keep-alive {i}"));
            }
            let last = Instant::now();
            assert_eq!(c.expect_close(), Some(1001), "idle after traffic");
            let after = last.elapsed();
            assert!(
                after >= Duration::from_millis(1800) && after < Duration::from_secs(5),
                "closed {after:?} after the last message"
            );
        });
        // Pings after 1 s idle; no pong within 1 s: 1001.
        s.spawn(|| {
            let mut c = RawClient::open(server, "/ping");
            let opened = Instant::now();
            let ping = c.frame();
            assert_eq!(ping.opcode, Opcode::Ping as u8, "{ping:?}");
            let pinged = opened.elapsed();
            assert!(
                pinged >= Duration::from_millis(900) && pinged < Duration::from_secs(3),
                "pinged after {pinged:?}"
            );
            assert_eq!(c.expect_close(), Some(1001), "no pong");
            let closed = opened.elapsed();
            assert!(
                closed >= Duration::from_millis(1800) && closed < Duration::from_secs(5),
                "closed after {closed:?}"
            );
        });
        // Answering the pings keeps it open.
        s.spawn(|| {
            let mut c = RawClient::open(server, "/ping");
            let until = Instant::now() + Duration::from_millis(4500);
            let mut pings = 0;
            while Instant::now() < until {
                let f = frame_within(&mut c, Duration::from_secs(3));
                assert_eq!(f.opcode, Opcode::Ping as u8, "{f:?}");
                pings += 1;
                c.send_frame(Opcode::Pong, true, &f.payload);
            }
            assert!(pings >= 2, "only {pings} pings in 4.5 s");
            c.send_text("still open");
            assert_eq!(c.read_text(), "still open");
            c.send_close(1000, "");
            assert_eq!(c.expect_close(), Some(1000));
        });
        // A client that keeps reading (tungstenite answers pings as it
        // reads): open for 4 s.
        s.spawn(|| {
            let mut c = ws_connect(server, "/ping");
            c.get_mut()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let until = Instant::now() + Duration::from_secs(4);
            let mut pings = 0;
            while Instant::now() < until {
                match c.read() {
                    Ok(Message::Ping(_)) => pings += 1,
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    other => panic!("while idle with pings: {other:?}"),
                }
            }
            assert!(pings >= 2, "only {pings} pings in 4 s");
            c.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            assert_echo(&mut c, Message::text("after 4 s with pings"));
            close_client(c);
        });
        // Without the directives (or with 0) idle connections stay, past
        // mod_reqtimeout's body=2.
        for path in ["/forever", "/off"] {
            s.spawn(move || {
                let mut c = RawClient::open(server, path);
                c.stream.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
                let mut byte = [0u8; 1];
                match c.stream.read(&mut byte) {
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    other => panic!("{path}: the server sent or closed while idle: {other:?}"),
                }
                c.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                c.send_text("after 4 s idle");
                assert_eq!(c.read_text(), "after 4 s idle");
                c.send_close(1000, "");
                assert_eq!(c.expect_close(), Some(1000));
            });
        }
        // A handshake that never completes is dropped by Apache (reqtimeout
        // header=2).
        s.spawn(|| {
            let started = Instant::now();
            let mut stream = connect(server);
            let text = Handshake::new("/forever").text(server.port());
            stream.write_all(&text.as_bytes()[..40]).unwrap();
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
                "the incomplete handshake was dropped after {took:?}"
            );
            let answer = String::from_utf8_lossy(&rest);
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "{answer:?}"
            );
        });
    });
    assert_log_clean(server);
    finish(started);
}

// ---------------------------------------------------------------------------
// Close codes

#[test]
fn reserved_close_codes() {
    let config = [
        echo_location("/on", "    WebSocketAllowReservedStatusCodes On"),
        echo_location("/off", "    WebSocketAllowReservedStatusCodes Off"),
        echo_location("/default", ""),
    ]
    .concat();
    let server = start_server("config-close-codes", Mpm::Event, &config);
    let answer = |path: &str, code: u16| -> Option<u16> {
        let mut c = RawClient::open(&server, path);
        c.send_close(code, "reserved?");
        let got = c.expect_close();
        c.expect_eof(Duration::from_secs(5));
        got
    };
    for code in [1016, 2000, 2999] {
        assert_eq!(answer("/on", code), Some(code), "{code} with On is echoed");
        assert_eq!(answer("/off", code), Some(1002), "{code} with Off");
        assert_eq!(answer("/default", code), Some(1002), "{code} by default");
    }
    for code in [1005, 1006, 1015, 999, 0, 5000, 65535] {
        for path in ["/on", "/off"] {
            assert_eq!(answer(path, code), Some(1002), "{code} on {path} is never valid");
        }
    }
    // Codes valid anyway are echoed either way.
    for code in [1000, 1001, 1003, 1011, 3000, 4999] {
        for path in ["/on", "/off"] {
            assert_eq!(answer(path, code), Some(code), "{code} on {path}");
        }
    }
    finish(server);
}

// ---------------------------------------------------------------------------
// The connection limit

#[test]
fn max_connections_per_child() {
    // One worker child, so the per-child limit is the server's limit.
    let config = [
        "<IfModule mpm_worker_module>\n    ServerLimit 1\n    StartServers 1\n    MinSpareThreads 1\n    \
         MaxSpareThreads 50\n    ThreadsPerChild 25\n    MaxRequestWorkers 25\n</IfModule>\n"
            .to_owned(),
        echo_location("/limited", "    WebSocketMaxConnections 2"),
    ]
    .concat();
    let config = server_config("config-maxconn", Mpm::Worker, &config);
    std::fs::create_dir_all(config.docroot()).unwrap();
    std::fs::write(config.docroot().join("index.html"), "plain\n").unwrap();
    let server = start(config);
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker_pids(&server).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "not one child: {:?}",
            worker_pids(&server)
        );
        thread::sleep(Duration::from_millis(50));
    }

    let mut first = RawClient::open(&server, "/limited");
    let mut second = RawClient::open(&server, "/limited");
    let refused = Handshake::new("/limited").response(&server);
    assert_eq!(refused.status, 503, "a third connection: {refused:?}");
    let log = wait_for_log(&server, "WebSocketMaxConnections", Duration::from_secs(5));
    assert!(log.contains("(2)"), "{log}");
    // Plain HTTP is still served.
    let mut http = connect(&server);
    http.write_all(
        format!(
            "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            server.port()
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_response(&mut http).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    // The open ones work; closing one frees its slot.
    first.send_text("one");
    assert_eq!(first.read_text(), "one");
    second.send_close(1000, "");
    assert_eq!(second.expect_close(), Some(1000));
    second.expect_eof(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut third = loop {
        let c = Handshake::new("/limited").send(&server);
        if c.response.status == 101 {
            break c;
        }
        assert_eq!(c.response.status, 503);
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot was not freed"
        );
        thread::sleep(Duration::from_millis(100));
    };
    third.send_text("three");
    assert_eq!(third.read_text(), "three");
    assert_eq!(Handshake::new("/limited").response(&server).status, 503);
    for mut c in [first, third] {
        c.send_close(1000, "");
        assert_eq!(c.expect_close(), Some(1000));
    }
    finish(server);
}

// ---------------------------------------------------------------------------
// Startup errors

/// C fixtures for bad plugins, compiled once per process.
fn bad_plugins() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = httpd_runner::scratch_dir("config-bad-plugins");
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("bad_plugins.c");
        std::fs::write(
            &source,
            r#"#include <stddef.h>
#include "websocket_plugin.h"

static size_t CALLBACK on_message(void *p, const WebSocketServer *s, const int t,
                                  unsigned char *b, const size_t n)
{
    (void)p; (void)s; (void)t; (void)b; (void)n;
    return 0;
}

static WebSocketPlugin wrong_version = {
    sizeof(WebSocketPlugin), 7, NULL, NULL, on_message, NULL
};
static WebSocketPlugin too_small = {
    8, WEBSOCKET_PLUGIN_VERSION_0, NULL, NULL, on_message, NULL
};
static WebSocketPlugin no_on_message = {
    sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, NULL, NULL, NULL, NULL
};

EXPORT WebSocketPlugin *CALLBACK null_init(void) { return NULL; }
EXPORT WebSocketPlugin *CALLBACK wrong_version_init(void) { return &wrong_version; }
EXPORT WebSocketPlugin *CALLBACK too_small_init(void) { return &too_small; }
EXPORT WebSocketPlugin *CALLBACK no_on_message_init(void) { return &no_on_message; }
"#,
        )
        .unwrap();
        let out = dir.join("bad_plugins.so");
        compile_c_plugin(&source, &out);
        out
    })
}

/// As [`rejected`], with mod_websocket_draft76 loaded too.
fn rejected_with_draft76(name: &str, directives: &str, expected: &[&str]) {
    let config = handler_location_config(name, directives).load_module(
        "websocket_draft76_module",
        stage().dir.join("modules/mod_websocket_draft76.so"),
    );
    assert_configtest_fails(config, directives, expected);
}

#[test]
fn invalid_values_fail_configtest() {
    // The control: every new directive with a good value, both modules.
    let mut good = server_config(
        "config-new-good",
        Mpm::Event,
        &echo_location(
            "/ws",
            "    WebSocketIdleTimeout 30\n    WebSocketPingInterval 10\n    \
             WebSocketAllowReservedStatusCodes On\n    WebSocketMaxConnections 100\n    SupportDraft75 Off",
        ),
    )
    .load_module(
        "websocket_draft76_module",
        stage().dir.join("modules/mod_websocket_draft76.so"),
    );
    if let Err(out) = good.configtest() {
        panic!("a good configuration was rejected:\n{out}");
    }

    let cases: &[(&str, &[&str])] = &[
        ("WebSocketIdleTimeout -1", &["WebSocketIdleTimeout", "'-1'"]),
        ("WebSocketIdleTimeout soon", &["WebSocketIdleTimeout", "soon"]),
        ("WebSocketIdleTimeout 1.5", &["WebSocketIdleTimeout", "1.5"]),
        ("WebSocketIdleTimeout 86401", &["WebSocketIdleTimeout", "86401"]),
        ("WebSocketPingInterval often", &["WebSocketPingInterval", "often"]),
        ("WebSocketPingInterval -5", &["WebSocketPingInterval", "-5"]),
        ("WebSocketMaxConnections -3", &["WebSocketMaxConnections", "-3"]),
        (
            "WebSocketMaxConnections lots",
            &["WebSocketMaxConnections", "lots"],
        ),
        (
            "WebSocketMaxConnections 99999999999",
            &["WebSocketMaxConnections", "99999999999"],
        ),
        (
            "WebSocketAllowReservedStatusCodes maybe",
            &["WebSocketAllowReservedStatusCodes", "On or Off"],
        ),
        (
            "WebSocketTrustedOrigin not-an-origin",
            &["WebSocketTrustedOrigin", "not-an-origin"],
        ),
    ];
    for (i, (directive, expected)) in cases.iter().enumerate() {
        rejected(&format!("config-bad-{i}"), &format!("    {directive}"), expected);
    }
    rejected_with_draft76(
        "config-bad-draft75",
        "    SupportDraft75 sometimes",
        &["SupportDraft75", "On or Off"],
    );

    // Plugins that load but are not usable.
    let lib = bad_plugins();
    let handler = |init: &str| format!("    WebSocketHandler \"{}\" {init}", lib.display());
    rejected(
        "config-null-init",
        &handler("null_init"),
        &["WebSocketHandler", "null_init", "returned NULL"],
    );
    rejected(
        "config-wrong-version",
        &handler("wrong_version_init"),
        &["WebSocketHandler", "wrong_version_init", "version 7"],
    );
    rejected(
        "config-too-small",
        &handler("too_small_init"),
        &["WebSocketHandler", "too_small_init", "size of 8 bytes"],
    );
    rejected(
        "config-no-on-message",
        &handler("no_on_message_init"),
        &["WebSocketHandler", "no_on_message_init", "on_message"],
    );
    // The same with both modules loaded (each parses WebSocketHandler).
    rejected_with_draft76(
        "config-null-init-76",
        &handler("null_init"),
        &["WebSocketHandler", "returned NULL"],
    );
}

#[test]
fn channel_directives_fail_configtest_when_wrong() {
    let mut good = server_config(
        "config-channels-good",
        Mpm::Event,
        "WebSocketBroker redis://127.0.0.1:6379/0 site1:\nWebSocketChannelBuffer 4M\n\
         <Location /publish>\n    SetHandler websocket-publish\n</Location>\n",
    )
    .load_module(
        "websocket_draft76_module",
        stage().dir.join("modules/mod_websocket_draft76.so"),
    );
    if let Err(out) = good.configtest() {
        panic!("a good configuration was rejected:\n{out}");
    }
    let port = free_port_for_config();
    let cases: &[(&str, &[&str])] = &[
        (
            "WebSocketBroker http://cache:6379",
            &["WebSocketBroker", "'http://cache:6379'"],
        ),
        ("WebSocketBroker cache:6379", &["WebSocketBroker", "'cache:6379'"]),
        (
            "WebSocketBroker redis://cache \"a b\"",
            &["WebSocketBroker", "'a b'"],
        ),
        (
            "WebSocketBroker redis://cache news*",
            &["WebSocketBroker", "'news*'"],
        ),
        (
            "WebSocketChannelBuffer 1K",
            &["WebSocketChannelBuffer", "'1K'", "64K to 1G"],
        ),
        (
            "WebSocketChannelBuffer lots",
            &["WebSocketChannelBuffer", "'lots'"],
        ),
        (
            &format!("<VirtualHost 127.0.0.1:{port}>\n    WebSocketBroker redis://cache\n</VirtualHost>"),
            &["WebSocketBroker", "main server configuration"],
        ),
        (
            "<Location /x>\n    WebSocketBroker redis://cache\n</Location>",
            &["WebSocketBroker not allowed in <Location> context"],
        ),
    ];
    for (i, (directives, expected)) in cases.iter().enumerate() {
        let config = server_config(&format!("config-channels-bad-{i}"), Mpm::Event, directives);
        assert_configtest_fails(config, directives, expected);
    }
}

fn free_port_for_config() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
