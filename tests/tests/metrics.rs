//! Observability: known numbers of connections, refusals and messages, under
//! prefork (several children) and event, must show exactly in mod_status's
//! `server-status?auto`, in `SetHandler websocket-metrics` (which
//! `promtool check metrics` accepts) and in the access log's notes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use integration_tests::tungstenite::Message;
use integration_tests::*;

/// A plain GET with `Connection: close`: status and body.
fn get(server: &RunningServer, path: &str) -> (u16, String) {
    let mut stream = connect(server);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        server.port()
    )
    .expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (status, body.to_owned());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return (status, body.to_owned());
        };
        if n == 0 {
            break;
        }
        out.push_str(&after[..n.min(after.len())]);
        rest = after.get(n + 2..).unwrap_or("");
    }
    (status, out)
}

/// `name{labels} value` lines of the Prometheus text as a map.
fn samples(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn auto_lines(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn metric(map: &HashMap<String, u64>, key: &str) -> u64 {
    *map.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in the metrics:\n{map:#?}"))
}

fn observe(mpm: Mpm) {
    let log_dir = httpd_runner::scratch_dir(&format!("it-metrics-log-{mpm}"));
    std::fs::create_dir_all(&log_dir).expect("the log directory");
    let ws_log = log_dir.join("ws.log");
    let _ = std::fs::remove_file(&ws_log);
    let config = format!(
        "<IfModule mpm_prefork_module>\n    StartServers 4\n    MinSpareServers 4\n</IfModule>\n\
         LogFormat \"%r %>s close=%{{websocket-close-code}}n by=%{{websocket-closed-by}}n \
         in=%{{websocket-messages-in}}n out=%{{websocket-messages-out}}n\" websocket\n\
         CustomLog \"{}\" websocket\n\
         <Location /server-status>\n    SetHandler server-status\n</Location>\n\
         <Location /metrics>\n    SetHandler websocket-metrics\n</Location>\n{}{}{}",
        ws_log.display(),
        echo_location("/echo", ""),
        echo_location("/limited", "    WebSocketMaxConnections 1"),
        plugin_location("/c", c_plugin(), "test_plugin_init", ""),
    );
    let config = with_system_modules(server_config("metrics", mpm, &config), &["status"]);
    let mut server = start(config);

    // Before anything: the configured locations are there, at zero.
    let (status, text) = get(&server, "/metrics");
    assert_eq!(status, 200, "{text}");
    let m = samples(&text);
    assert_eq!(
        metric(&m, "mod_websocket_connections_total{location=\"/echo\"}"),
        0
    );
    assert_eq!(
        metric(&m, "mod_websocket_connections_total{location=\"/limited\"}"),
        0
    );

    // Six clients, three messages each, closed by the client with 1000.
    let mut payload_bytes = 0u64;
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = ws_connect(&server, "/echo");
        for j in 0..3 {
            let text = format!("client {i} message {j}");
            payload_bytes += text.len() as u64;
            assert_echo(&mut c, Message::text(text));
        }
        clients.push(c);
    }
    // While they are open.
    let mut open_seen = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        open_seen = metric(
            &samples(&get(&server, "/metrics").1),
            "mod_websocket_connections_open{location=\"/echo\"}",
        );
        if open_seen == 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(open_seen, 6, "open connections");
    let (status, text) = get(&server, "/server-status?auto");
    let auto = auto_lines(&text);
    assert_eq!(
        auto.get("WebSocketsOpen").map(String::as_str),
        Some("6"),
        "{status}:\n{text}"
    );
    for c in clients {
        close_client(c);
    }

    // Refusals, one kind at a time.
    let refused = |h: Handshake, status: u16| {
        let response = h.response(&server);
        assert_eq!(response.status, status, "{}", response.status_line);
    };
    refused(Handshake::new("/echo").without("Sec-WebSocket-Key"), 400);
    refused(Handshake::new("/echo").without("Sec-WebSocket-Key"), 400);
    refused(Handshake::new("/echo").header("Sec-WebSocket-Version", "9"), 400);
    refused(
        Handshake::new("/echo").header("Origin", "http://evil.example"),
        403,
    );
    refused(Handshake::new("/c").header("X-Refuse", "1"), 403);
    // The connection limit is per child: hold connections open until one
    // is refused (prefork's children each serve one connection, so there
    // it takes none, and none is refused).
    let mut held = Vec::new();
    let mut limited_refused = 0;
    if mpm.is_threaded() {
        for _ in 0..8 {
            let response = Handshake::new("/limited").send(&server);
            match response.response.status {
                101 => held.push(response),
                503 => {
                    limited_refused += 1;
                    break;
                }
                other => panic!("/limited answered {other}"),
            }
        }
        assert_eq!(limited_refused, 1, "no connection was refused at the limit");
    }
    let limited_accepted = held.len() as u64;
    for mut c in held {
        c.send_close(1000, "");
        assert_eq!(c.expect_close(), Some(1000));
    }

    // Everything has ended: the counters settle.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut m = samples(&get(&server, "/metrics").1);
    while Instant::now() < deadline
        && (metric(&m, "mod_websocket_connections_open{location=\"/echo\"}") != 0
            || metric(&m, "mod_websocket_connections_open{location=\"/limited\"}") != 0)
    {
        std::thread::sleep(Duration::from_millis(50));
        m = samples(&get(&server, "/metrics").1);
    }
    let echo = |name: &str| metric(&m, &format!("{name}{{location=\"/echo\"}}"));
    assert_eq!(echo("mod_websocket_connections_open"), 0);
    assert_eq!(echo("mod_websocket_connections_total"), 6);
    assert_eq!(echo("mod_websocket_messages_received_total"), 18);
    assert_eq!(echo("mod_websocket_messages_sent_total"), 18);
    assert_eq!(echo("mod_websocket_bytes_received_total"), payload_bytes);
    assert_eq!(echo("mod_websocket_bytes_sent_total"), payload_bytes);
    let reason = |loc: &str, r: &str| {
        metric(
            &m,
            &format!("mod_websocket_handshakes_refused_total{{location=\"{loc}\",reason=\"{r}\"}}"),
        )
    };
    assert_eq!(reason("/echo", "bad_request"), 2);
    assert_eq!(reason("/echo", "unsupported_version"), 1);
    assert_eq!(reason("/echo", "origin"), 1);
    assert_eq!(reason("/echo", "plugin_refused"), 0);
    assert_eq!(reason("/c", "plugin_refused"), 1);
    assert_eq!(reason("/limited", "connection_limit"), limited_refused);
    assert_eq!(
        metric(&m, "mod_websocket_closes_total{location=\"/echo\",code=\"1000\"}"),
        6
    );
    assert_eq!(
        metric(
            &m,
            "mod_websocket_connections_ended_total{location=\"/echo\",by=\"client\"}"
        ),
        6
    );
    assert_eq!(
        metric(&m, "mod_websocket_connections_total{location=\"/limited\"}"),
        limited_accepted
    );

    // mod_status's machine-readable lines say the same.
    let (status, text) = get(&server, "/server-status?auto");
    assert_eq!(status, 200);
    let auto = auto_lines(&text);
    let total = 6 + limited_accepted;
    for (key, want) in [
        ("WebSocketsOpen", "0".to_owned()),
        ("WebSocketsTotal", total.to_string()),
        ("WebSocketMessagesIn", "18".to_owned()),
        ("WebSocketMessagesOut", "18".to_owned()),
        ("WebSocketBytesIn", payload_bytes.to_string()),
        ("WebSocketBytesOut", payload_bytes.to_string()),
    ] {
        assert_eq!(auto.get(key), Some(&want), "{key} in:\n{text}");
    }
    let echo_index = (0..10)
        .find(|i| auto.get(&format!("WebSocketLocation{i}Path")).map(String::as_str) == Some("/echo"))
        .unwrap_or_else(|| panic!("no /echo location in:\n{text}"));
    assert_eq!(
        auto.get(&format!("WebSocketLocation{echo_index}Open"))
            .map(String::as_str),
        Some("0")
    );
    let (_, html) = get(&server, "/server-status");
    assert!(html.contains("<h2>WebSockets</h2>"), "{html}");

    // promtool accepts the exposition.
    check_with_promtool(&get(&server, "/metrics").1);

    // A graceful restart replaces the children, not the counters.
    server.graceful().expect("graceful restart");
    let after = samples(&get(&server, "/metrics").1);
    assert_eq!(
        metric(&after, "mod_websocket_connections_total{location=\"/echo\"}"),
        6,
        "the counters after a graceful restart"
    );
    assert_eq!(
        metric(
            &after,
            "mod_websocket_messages_received_total{location=\"/echo\"}"
        ),
        18
    );

    // One access log line per WebSocket, with its counts and close code.
    finish(server);
    let log = std::fs::read_to_string(&ws_log).unwrap_or_default();
    let echo_lines: Vec<&str> = log.lines().filter(|l| l.starts_with("GET /echo ")).collect();
    let closed: Vec<&&str> = echo_lines
        .iter()
        .filter(|l| l.contains(" 101 close=1000 by=client in=3 out=3"))
        .collect();
    assert_eq!(closed.len(), 6, "the access log:\n{log}");
}

/// `promtool check metrics` on `text`: Debian's prometheus package,
/// `PROMTOOL` or on the PATH. `cargo xtask test` provides it and sets
/// `WEBSOCKET_REQUIRE_PROMTOOL`; elsewhere a missing promtool is said, not
/// failed.
fn check_with_promtool(text: &str) {
    let tool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let child = std::process::Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("WEBSOCKET_REQUIRE_PROMTOOL").is_none(),
                "cannot run {tool}: {e}"
            );
            eprintln!("metrics: {tool} not found ({e}); the exposition was not checked with it");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn counters_under_prefork() {
    observe(Mpm::Prefork);
}

#[test]
fn counters_under_event() {
    observe(Mpm::Event);
}
