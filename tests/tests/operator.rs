//! What an operator sees: the warnings `apachectl configtest` and the error
//! log give for configurations Apache accepts but that cannot work, the
//! startup line with the module's version and plugins, the log lines of a
//! connection's life, refused origins, and the access log line of a
//! WebSocket.

use std::time::{Duration, Instant};

use integration_tests::*;

/// The configuration of the warnings test: each location has one mistake
/// (and `/fine` none).
fn mistakes() -> String {
    let echo = stage().echo_plugin();
    let handler = format!("    WebSocketHandler \"{}\" echo_init\n", echo.display());
    let blocks: Vec<(&'static str, String)> = vec![
        ("/no-sethandler", handler.clone()),
        (
            "/underscore",
            format!("    SetHandler websocket_handler\n{handler}"),
        ),
        ("/no-plugin", "    SetHandler websocket-handler\n".to_owned()),
        (
            "/trusted",
            format!("    SetHandler websocket-handler\n{handler}    WebSocketOriginCheck Trusted\n"),
        ),
        (
            "/fine",
            format!(
                "    SetHandler websocket-handler\n{handler}    WebSocketOriginCheck Trusted\n    \
                 WebSocketTrustedOrigin https://app.example\n"
            ),
        ),
    ];
    blocks
        .iter()
        .map(|(path, body)| format!("<Location {path}>\n{body}</Location>\n"))
        .collect()
}

/// The line numbers of `<Location path>` in the written httpd.conf.
fn line_of(conf: &str, path: &str) -> usize {
    conf.lines()
        .position(|l| l.trim() == format!("<Location {path}>"))
        .unwrap_or_else(|| panic!("no <Location {path}> in\n{conf}"))
        + 1
}

fn assert_warnings(out: &str, conf_path: &str, conf: &str, what: &str) {
    let expect = [
        ("/no-sethandler", "WebSocketHandler is set, but no SetHandler websocket-handler is in effect"),
        (
            "/underscore",
            "WebSocketHandler is set, but the handler in effect is \"websocket_handler\", not websocket-handler",
        ),
        ("/no-plugin", "SetHandler websocket-handler, but no WebSocketHandler is in effect"),
        ("/trusted", "WebSocketOriginCheck Trusted, but no WebSocketTrustedOrigin is in effect"),
    ];
    for (path, text) in expect {
        let at = format!("{conf_path}:{}: <Location {path}>: {text}", line_of(conf, path));
        let line = out
            .lines()
            .find(|l| l.contains(&at))
            .unwrap_or_else(|| panic!("{what} has no warning {at:?}:\n{out}"));
        assert!(line.contains("[websocket:warn]"), "{what}: not a warning: {line}");
    }
    assert!(
        !out.lines()
            .any(|l| l.contains("<Location /fine>") && l.contains(":warn]")),
        "{what} warns about /fine:\n{out}"
    );
}

#[test]
fn startup_warnings_name_the_location_and_directive() {
    let mut config = server_config("op-warnings", Mpm::Event, &mistakes());
    let out = config
        .configtest()
        .unwrap_or_else(|e| panic!("the configuration must pass configtest:\n{e}"));
    let conf_path = config.config_path().display().to_string();
    let conf = std::fs::read_to_string(config.config_path()).unwrap();
    assert_warnings(&out, &conf_path, &conf, "apachectl configtest");
    assert!(out.contains("Syntax OK"), "{out}");

    // The same warnings in the error log when the server starts, once, and
    // the line that says which build is loaded with which plugins.
    let server = start(config);
    let log = wait_for_log(&server, "loaded; plugins:", Duration::from_secs(5));
    assert_warnings(&log, &conf_path, &conf, "the error log");
    let once = log
        .matches("<Location /no-plugin>: SetHandler websocket-handler")
        .count();
    assert_eq!(once, 1, "each warning once per start:\n{log}");
    let loaded = log
        .lines()
        .find(|l| l.contains("loaded; plugins:"))
        .expect("the startup line");
    assert!(loaded.contains("[websocket:notice]"), "{loaded}");
    assert!(
        loaded.contains(&format!("mod_websocket {} loaded", embedded_version())),
        "{loaded}"
    );
    assert!(
        loaded.contains(&format!("{} (echo_init)", stage().echo_plugin().display())),
        "{loaded}"
    );

    // What the warnings announce is what happens.
    let status = |path: &str| Handshake::new(path).response(&server).status;
    assert_eq!(status("/no-sethandler"), 404);
    assert_eq!(status("/underscore"), 404);
    assert_eq!(status("/no-plugin"), 500);
    let browser = |path: &str| {
        Handshake::new(path)
            .header("Origin", "https://app.example")
            .response(&server)
            .status
    };
    assert_eq!(browser("/trusted"), 403);
    assert_eq!(browser("/fine"), 101);
    finish(server);
}

/// The version string the staged module carries: `0.1.0 (git <commit>)`,
/// found in the file as `strings` would.
fn embedded_version() -> String {
    let bytes = std::fs::read(stage().module()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let version = env!("CARGO_PKG_VERSION");
    [format!("{version} (git "), format!("{version} (no git commit")]
        .iter()
        .find_map(|want| {
            let start = text.find(want.as_str())?;
            let end = text[start..].find(')')?;
            Some(text[start..=start + end].to_owned())
        })
        .expect("the module carries its version and commit")
}

#[test]
fn the_module_embeds_its_version() {
    let v = embedded_version();
    assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
}

#[test]
fn a_missing_plugin_is_named_once() {
    let missing = "/nonexistent/websocket/plugin_that_is_not_there.so";
    let directives = format!("    WebSocketHandler {missing} echo_init");
    let config = handler_location_config("op-missing-plugin", &directives);
    let out = assert_configtest_fails(
        config,
        &directives,
        &["WebSocketHandler", "No such file or directory"],
    );
    assert_eq!(out.matches(missing).count(), 1, "the path once:\n{out}");
}

#[test]
fn a_plain_get_gets_426_unless_a_file_answers_it() {
    let mut config = server_config("op-426", Mpm::Event, "");
    let docroot = config.docroot();
    std::fs::create_dir_all(docroot.join("wsdir")).unwrap();
    std::fs::write(docroot.join("wsdir/page.html"), "a page\n").unwrap();
    config = config
        .extra_config(&echo_location("/echo", ""))
        .extra_config(&format!(
            "<Directory \"{}\">\n    SetHandler websocket-handler\n    WebSocketHandler \"{}\" echo_init\n</Directory>\n",
            docroot.join("wsdir").display(),
            stage().echo_plugin().display()
        ));
    let server = start(config);
    let plain = |path: &str, method: &str| {
        Handshake::new(path)
            .method(method)
            .without("Upgrade")
            .without("Connection")
            .without("Sec-WebSocket-Key")
            .without("Sec-WebSocket-Version")
            .response(&server)
    };
    let r = plain("/echo", "GET");
    assert_eq!(r.status, 426, "{r:?}");
    assert_eq!(r.header("Upgrade"), Some("websocket"), "{r:?}");
    wait_for_log(
        &server,
        "answering GET /echo with 426: not a WebSocket handshake (it has no Upgrade: websocket header)",
        Duration::from_secs(5),
    );
    assert_eq!(plain("/echo", "HEAD").status, 426);
    // A file in a WebSocket directory is still served to plain requests.
    let r = plain("/wsdir/page.html", "GET");
    assert_eq!(r.status, 200, "{r:?}");
    wait_for_log(&server, "declining GET /wsdir/page.html", Duration::from_secs(5));
    // And handshakes still work there.
    RawClient::open(&server, "/wsdir/page.html").close_normally();
    finish(server);
}

#[test]
fn a_405_allows_get_alone() {
    let server = start_server("op-405", Mpm::Event, &echo_location("/echo", ""));
    for method in ["POST", "PUT", "DELETE"] {
        let r = Handshake::new("/echo").method(method).response(&server);
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(r.header("Allow"), Some("GET"), "{method}: {r:?}");
    }
    finish(server);
}

#[test]
fn log_lines_are_written_for_operators() {
    let server = start_server("op-log", Mpm::Event, &echo_location("/echo", ""));
    let mut c = RawClient::open(&server, "/echo");
    c.send_text("one");
    assert_eq!(c.read_text(), "one");
    c.send_text("two!");
    assert_eq!(c.read_text(), "two!");
    c.send_close(1000, "done");
    assert_eq!(c.expect_close(), Some(1000));
    c.expect_eof(Duration::from_secs(5));
    let log = wait_for_log(&server, "closed after", Duration::from_secs(5));
    let closed = log.lines().find(|l| l.contains("closed after")).unwrap();
    for want in [
        "WebSocket version 13 for /echo closed after ",
        " s: the client closed it with 1000; ",
        "received 2 messages (",
        "sent 2 messages (",
    ] {
        assert!(closed.contains(want), "{want:?} missing from {closed}");
    }
    // Two masked frames of 3 and 4 bytes and a close with 4 bytes of
    // reason in (6 bytes of header each); the echoes and the close reply
    // (2 bytes of header each) out.
    assert!(closed.contains("received 2 messages (31 bytes)"), "{closed}");
    assert!(closed.contains("sent 2 messages (15 bytes)"), "{closed}");
    wait_for_log(
        &server,
        "close frame from the client: code 1000, reason \"done\"",
        Duration::from_secs(1),
    );
    // Dropping the TCP connection is said in words, not an APR number.
    let mut c = RawClient::open(&server, "/echo");
    c.send_text("x");
    assert_eq!(c.read_text(), "x");
    drop(c);
    let log = wait_for_log(
        &server,
        "the client closed the TCP connection, without a closing handshake",
        Duration::from_secs(5),
    );
    for line in log.lines().filter(|l| l.contains("[websocket:")) {
        assert!(!line.contains("mod_websocket(0)"), "{line}");
        assert!(!line.contains("Some("), "Rust debug output: {line}");
        assert!(!line.contains("status 700"), "a raw APR status: {line}");
        if line.contains("[websocket:debug]") {
            // Where the line comes from, as C modules show it.
            assert!(line.contains(".rs("), "{line}");
        }
    }
    // The filter chains are for tracing, not for debug.
    assert!(!log.contains("input filters:"), "{log}");
    finish(server);
}

#[test]
fn a_refused_origin_is_a_warning_naming_both_origins() {
    let config = server_config("op-origin", Mpm::Event, &echo_location("/echo", "")).log_level("warn");
    let server = start(config);
    let evil = "http://evil.example";
    for _ in 0..3 {
        let r = Handshake::new("/echo").header("Origin", evil).response(&server);
        assert_eq!(r.status, 403);
    }
    let log = wait_for_log(&server, "refusing WebSocket handshake", Duration::from_secs(5));
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refusing WebSocket handshake"))
        .collect();
    // At most one warning per child process in 10 s, so a hostile page
    // cannot flood the log; the rest are at info. The event MPM here runs
    // two children.
    assert!((1..=2).contains(&lines.len()), "{log}");
    let line = lines[0];
    assert!(line.contains("[websocket:warn]"), "{line}");
    assert!(line.contains("for /echo with 403"), "{line}");
    assert!(
        line.contains("origin \"http://evil.example\" is not allowed"),
        "{line}"
    );
    assert!(
        line.contains(&format!("expected http://127.0.0.1:{}", server.port())),
        "{line}"
    );
    finish(server);
}

/// Behind a proxy that ends TLS, Apache sees http; `ServerName https://...`
/// makes `Same` compare browsers' https origins with the public name.
#[test]
fn same_origin_behind_a_tls_proxy() {
    let config = server_config(
        "op-tls-proxy",
        Mpm::Event,
        &format!(
            "ServerName https://app.example:443\n{}",
            echo_location("/echo", "")
        ),
    );
    let server = start(config);
    let through_proxy = |origin: &str| {
        Handshake::new("/echo")
            .header("Host", "app.example")
            .header("Origin", origin)
            .response(&server)
            .status
    };
    assert_eq!(through_proxy("https://app.example"), 101);
    assert_eq!(through_proxy("http://app.example"), 403);
    assert_eq!(through_proxy("https://app.example:8443"), 403);
    finish(server);
}

/// The access log has one line per WebSocket, written when it ends: status
/// 101, the whole session's bytes in `%I`/`%O` and its duration in `%D`;
/// `%b` (a response body) has nothing to count.
#[test]
fn the_access_log_line_of_a_websocket() {
    let log = "logs/ws.log";
    let config = format!(
        "{}\nLogFormat \"%r|%>s|%D|%I|%O|%b\" ws\nCustomLog \"{log}\" ws\n",
        echo_location("/echo", "")
    );
    let server = start_server("op-access", Mpm::Event, &config);
    let path = server.root().join(log);
    let lines = || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("GET /echo"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let started = Instant::now();
    let mut c = RawClient::open(&server, "/echo");
    c.send_text("hello");
    assert_eq!(c.read_text(), "hello");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(lines().is_empty(), "logged before the end: {:?}", lines());
    c.send_close(1000, "");
    assert_eq!(c.expect_close(), Some(1000));
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no access log line:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let all = lines();
    assert_eq!(all.len(), 1, "{all:?}");
    let fields: Vec<&str> = all[0].split('|').collect();
    assert_eq!(fields[1], "101", "{all:?}");
    let micros: u64 = fields[2].parse().unwrap();
    assert!(
        micros >= 1_200_000 && u128::from(micros) <= started.elapsed().as_micros(),
        "%D = {micros}: {all:?}"
    );
    let (bytes_in, bytes_out): (u64, u64) = (fields[3].parse().unwrap(), fields[4].parse().unwrap());
    // The handshake plus the frames.
    assert!(bytes_in > 11 + 6, "%I = {bytes_in}");
    assert!(bytes_out > 7 + 2, "%O = {bytes_out}");
    assert_eq!(fields[5], "-", "%b: {all:?}");
    finish(server);
}
