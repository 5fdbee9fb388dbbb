//! Connections over time: idle survival with mod_reqtimeout, graceful
//! restarts, and configuration errors caught at startup.

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use httpd_runner::Install;
use integration_tests::tungstenite::protocol::frame::coding::CloseCode;
use integration_tests::tungstenite::Message;
use integration_tests::*;

/// mod_reqtimeout cuts connections whose body does not arrive within 10 s;
/// an idle WebSocket must outlive that (the module removes the filter after
/// the 101).
#[test]
fn idle_connection_survives_reqtimeout() {
    let install = Install::discover().expect("find the installed httpd");
    let reqtimeout = install.module_path("reqtimeout");
    assert!(
        reqtimeout.is_file(),
        "{} is missing (Debian's apache2 ships it)",
        reqtimeout.display()
    );
    let config = server_config(
        "idle",
        Mpm::Event,
        &format!(
            "RequestReadTimeout header=20-40,minrate=500 body=10,minrate=500\n{}",
            echo_location("/echo", "")
        ),
    )
    .load_module("reqtimeout_module", &reqtimeout);
    std::fs::create_dir_all(config.docroot()).unwrap();
    std::fs::write(config.docroot().join("index.html"), "hello\n").unwrap();
    let server = start(config);

    let mut ws = ws_connect(&server, "/echo");
    assert_echo(&mut ws, Message::text("before the pause"));

    // The control: a request whose body never comes is cut after ~10 s.
    let started = Instant::now();
    let mut http = connect(&server);
    http.write_all(
        format!(
            "POST /index.html HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 100\r\n\r\n",
            server.port()
        )
        .as_bytes(),
    )
    .unwrap();
    let control = thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = http.read_to_end(&mut sink);
        (started.elapsed(), String::from_utf8_lossy(&sink).into_owned())
    });

    thread::sleep(Duration::from_secs(12));
    // (A connection reqtimeout ignored would end at IO_TIMEOUT, 15 s.)
    let (cut_after, answer) = control.join().unwrap();
    assert!(
        cut_after >= Duration::from_secs(8) && cut_after < Duration::from_secs(14),
        "the body timeout did not cut the plain request in ~10 s (after {cut_after:?}: {answer:?}); \
         is mod_reqtimeout active?"
    );

    assert_echo(&mut ws, Message::text("after 12 s idle"));
    assert_echo(&mut ws, Message::binary(vec![1u8; 100_000]));
    close_client(ws);
    finish(server);
}

/// What an old connection does after a graceful restart: it either keeps
/// echoing or is closed with a close frame / an orderly end.
fn old_connection_after_graceful(client: &mut Client, i: usize) -> &'static str {
    let text = format!("old connection {i} after the restart");
    match client.send(Message::text(text.clone())) {
        Ok(()) => {}
        Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return "closed",
        Err(e) => panic!("old connection {i}: sending failed uncleanly: {e}"),
    }
    loop {
        match client.read() {
            Ok(Message::Text(t)) => {
                assert_eq!(t.as_str(), text, "old connection {i}");
                return "echoing";
            }
            Ok(Message::Close(_)) => {}
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("old connection {i}: unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => return "closed",
            Err(e) => panic!("old connection {i}: not closed cleanly: {e}"),
        }
    }
}

fn graceful_restart(mpm: Mpm) {
    let mut server = start_server("graceful", mpm, &echo_location("/echo", ""));
    let mut old: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = ws_connect(&server, "/echo");
            assert_echo(&mut c, Message::text(format!("old connection {i}")));
            c
        })
        .collect();

    server
        .graceful()
        .unwrap_or_else(|e| panic!("graceful restart failed: {e}"));
    assert!(server.is_running(), "httpd exited:\n{}", server.logs());

    // New connections are served by the new generation.
    for i in 0..3 {
        let mut c = ws_connect(&server, "/echo");
        assert_echo(&mut c, Message::text(format!("new connection {i}")));
        assert_echo(&mut c, Message::binary(vec![i as u8; 50_000]));
        close_client(c);
    }
    let mut outcomes = Vec::new();
    for (i, c) in old.iter_mut().enumerate() {
        outcomes.push(old_connection_after_graceful(c, i));
    }
    for (i, c) in old.into_iter().enumerate() {
        if outcomes[i] == "echoing" {
            // The old child may be closing it with 1001 as we close.
            close_client_accepting(c, &[CloseCode::Normal, CloseCode::Away]);
        }
    }
    // A second restart with nothing open.
    server
        .graceful()
        .unwrap_or_else(|e| panic!("second graceful restart failed: {e}"));
    let mut c = ws_connect(&server, "/echo");
    assert_echo(&mut c, Message::text("after two restarts"));
    close_client(c);
    assert!(server.is_running(), "httpd exited:\n{}", server.logs());
    eprintln!("{mpm}: old connections after graceful: {outcomes:?}");
    finish(server);
}

#[test]
fn graceful_restart_event() {
    graceful_restart(Mpm::Event);
}

#[test]
fn graceful_restart_worker() {
    graceful_restart(Mpm::Worker);
}

#[test]
fn graceful_restart_prefork() {
    graceful_restart(Mpm::Prefork);
}

#[test]
fn bad_configuration_is_a_startup_error() {
    let echo = stage().echo_plugin();
    let echo = echo.display();

    // The control: the same shape with good values passes.
    let mut good = server_config(
        "config-good",
        Mpm::Event,
        &format!(
            "<Location /ws>\n    SetHandler websocket-handler\n    \
             WebSocketHandler \"{echo}\" echo_init\n    MaxMessageSize 1000\n    \
             WebSocketMaxMessageSize 65536\n    WebSocketOriginCheck Trusted\n    \
             WebSocketTrustedOrigin http://good.example\n</Location>\n"
        ),
    );
    if let Err(out) = good.configtest() {
        panic!("a good configuration was rejected:\n{out}");
    }

    rejected(
        "config-size-abc",
        "    MaxMessageSize abc",
        &["MaxMessageSize", "abc"],
    );
    rejected(
        "config-size-neg",
        "    MaxMessageSize -1",
        &["MaxMessageSize", "-1"],
    );
    rejected(
        "config-size-zero",
        "    MaxMessageSize 0",
        &["MaxMessageSize", "'0'"],
    );
    rejected(
        "config-size-alias",
        "    WebSocketMaxMessageSize lots",
        &["WebSocketMaxMessageSize", "lots"],
    );
    rejected(
        "config-no-library",
        "    WebSocketHandler /nonexistent/libnothing.so echo_init",
        &["WebSocketHandler", "/nonexistent/libnothing.so"],
    );
    rejected(
        "config-no-init",
        &format!("    WebSocketHandler \"{echo}\" no_such_init_function"),
        &["WebSocketHandler", "no_such_init_function"],
    );
    rejected(
        "config-origin",
        "    WebSocketOriginCheck maybe",
        &["WebSocketOriginCheck", "maybe"],
    );
}

/// Stops `server`: its workers (`who`) exit on SIGTERM, without Apache
/// escalating to SIGKILL, and within 4 s.
fn stop_promptly(server: RunningServer, who: &str) {
    let log_path = server.config().error_log_path();
    let started = Instant::now();
    server.stop().expect("stop httpd");
    let took = started.elapsed();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        !log.contains("AH00046") && !log.contains("still did not exit"),
        "{who} did not exit on SIGTERM (took {took:?}):\n{log}"
    );
    assert!(took < Duration::from_secs(4), "stopping took {took:?}:\n{log}");
}

/// Stopping the server with WebSocket connections open: the workers exit
/// promptly instead of Apache escalating to SIGKILL (which skips
/// on_disconnect); a session that still gets to say goodbye says 1001 Going
/// Away (RFC 6455 §7.4.1).
fn stop_with_open_connections(mpm: Mpm) {
    let server = start_server("stop-open", mpm, &echo_location("/echo", ""));
    let mut clients: Vec<RawClient> = (0..2)
        .map(|i| {
            let mut c = RawClient::open(&server, "/echo");
            c.send_text(&format!("client {i}"));
            assert_eq!(c.read_text(), format!("client {i}"));
            c
        })
        .collect();
    stop_promptly(server, "workers with open WebSockets");
    for (i, c) in clients.iter_mut().enumerate() {
        match c.read_frame() {
            Ok(f) => assert_eq!(f.close_code(), Some(1001), "client {i}: {f:?}"),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ),
                "client {i}: the connection did not end: {e}"
            ),
        }
    }
}

/// A client that stopped reading while the server has output for it: the
/// session waits for the socket instead of blocking its worker in a write,
/// so stopping still ends the connection within the stopping server's short
/// drain time, not after Apache's `Timeout` (30 s in the generated config)
/// or the MPM's escalation to SIGKILL.
fn stop_with_a_client_that_reads_nothing(mpm: Mpm) {
    let server = start_server("stop-stalled", mpm, &echo_location("/echo", ""));
    let client = RawClient::open(&server, "/echo");
    let mut stream = client.stream.try_clone().expect("clone the client socket");
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    // Echoes pile up in the server's socket until it stops reading; then our
    // own writes stop too.
    let frame = client_frame(0x2, true, 0, &vec![0x5a; 64 * 1024]);
    let mut stalled = false;
    for _ in 0..2000 {
        if stream.write_all(&frame).is_err() {
            stalled = true;
            break;
        }
    }
    assert!(
        stalled,
        "the server kept reading from a client that reads nothing"
    );
    stop_promptly(server, "a worker with a stalled WebSocket");
    drop(client);
}

#[test]
fn stop_with_a_client_that_reads_nothing_event() {
    stop_with_a_client_that_reads_nothing(Mpm::Event);
}

#[test]
fn stop_with_a_client_that_reads_nothing_prefork() {
    stop_with_a_client_that_reads_nothing(Mpm::Prefork);
}

#[test]
fn stop_with_open_connections_event() {
    stop_with_open_connections(Mpm::Event);
}

#[test]
fn stop_with_open_connections_worker() {
    stop_with_open_connections(Mpm::Worker);
}

#[test]
fn stop_with_open_connections_prefork() {
    stop_with_open_connections(Mpm::Prefork);
}
