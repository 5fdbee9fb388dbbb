//! `wss://` through mod_ssl under load, under each MPM: many clients sending
//! small and large messages while plugin threads send on other connections
//! and on the same ones (the C module crashed here, with two threads inside
//! mod_ssl's brigades). Every message must arrive intact, no child may crash
//! and the error log must stay clean. Also the origin policy behind TLS.
//!
//! The certificates are the test CA's (`integration_tests::certs`); the
//! client verifies the server against that CA with rustls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use httpd_runner::Install;
use integration_tests::tungstenite::{self, Message};
use integration_tests::wss::*;
use integration_tests::*;
use rustls::ClientConfig;

/// How long the load runs under each MPM.
const SOAK: Duration = Duration::from_secs(10);
/// Echo clients during the soak.
const ECHO_CLIENTS: usize = 30;
/// dumb-increment connections (a plugin thread sends every 50 ms on each).
const COUNTER_CLIENTS: usize = 4;
/// Connections running the C plugin's `threads:n:m` batches.
const THREAD_CLIENTS: usize = 2;
/// The largest message a client sends.
const LARGE: usize = 1 << 20;

fn server(name: &str, mpm: Mpm) -> RunningServer {
    server_with(name, mpm, "")
}

/// [`server`] with `directives` at the server level.
fn server_with(name: &str, mpm: Mpm, directives: &str) -> RunningServer {
    let install = Install::discover().expect("find the installed httpd");
    let modules: Vec<(&str, PathBuf)> = ["ssl", "socache_shmcb", "env"]
        .iter()
        .map(|m| {
            let p = install.module_path(m);
            assert!(
                p.is_file(),
                "{} is missing (Debian's apache2 ships it)",
                p.display()
            );
            (*m, p)
        })
        .collect();
    let certs = test_certs();
    let root = httpd_runner::scratch_dir(&format!("it-{name}-{mpm}"));
    // Client certificates are asked for in the TLS handshake (TLS 1.3 has no
    // renegotiation for a per-location request), optional so the soak's
    // clients need none; StdEnvVars hands the subject to plugins.
    let tls = format!(
        "SSLEngine on\nSSLCertificateFile \"{}\"\nSSLCertificateKeyFile \"{}\"\n\
         SSLCACertificateFile \"{}\"\nSSLVerifyClient optional\nSSLVerifyDepth 1\n\
         SSLOptions +StdEnvVars\n\
         SSLSessionCache \"shmcb:{}(512000)\"\n\
         # Enough prefork children for every connection of the soak at once.\n\
         <IfModule mpm_prefork_module>\n    StartServers 45\n    MinSpareServers 10\n    \
         MaxSpareServers 60\n</IfModule>\n",
        certs.cert.display(),
        certs.key.display(),
        certs.ca.display(),
        root.join("run/ssl_scache").display()
    );
    let locations = [
        tls,
        directives.to_owned(),
        echo_location("/echo", ""),
        dumb_increment_location("/inc"),
        plugin_location("/c", c_plugin(), "test_plugin_init", ""),
        plugin_location(
            "/whoami",
            &stage().whoami_plugin(),
            "whoami_init",
            "    SetEnv WHOAMI_ENV \"SSL_CLIENT_S_DN, SSL_CLIENT_VERIFY\"",
        ),
    ]
    .concat();
    let mut config = server_config(name, mpm, &locations).log_level("warn websocket:info");
    for (m, p) in modules {
        config = config.load_module(&format!("{m}_module"), p);
    }
    start(config.startup_timeout(Duration::from_secs(20)))
}

fn next_data(ws: &mut TlsClient, what: &str) -> Message {
    loop {
        match ws.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(m) => return m,
            Err(e) => panic!("{what}: reading failed: {e}"),
        }
    }
}

fn close_tls(mut ws: TlsClient, what: &str) {
    ws.close(None).unwrap_or_else(|e| panic!("{what}: close: {e}"));
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("{what}: closing failed: {e}"),
        }
    }
}

/// Echo client `id`: small texts and binaries, and now and then a large one
/// (up to 1 MiB), each checked. Returns (messages, bytes) echoed.
fn echo_client(server_port: u16, ws: &mut TlsClient, id: usize, until: Instant) -> (u64, u64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) * 0x1000_0001));
    let (mut count, mut bytes) = (0u64, 0u64);
    while Instant::now() < until || count < 4 {
        let message = match count % 6 {
            // A large binary message early on, then every sixth.
            1 => Message::binary(rng.sized(LARGE / 2, LARGE / 2)),
            3 => Message::binary(rng.sized(0, 4096)),
            5 => {
                let len = rng.below(60_000) as usize;
                Message::text(
                    "ü€ client text 🎉 "
                        .chars()
                        .cycle()
                        .take(len / 3)
                        .collect::<String>(),
                )
            }
            _ => Message::text(format!("client {id} message {count} on port {server_port}")),
        };
        let len = message.len() as u64;
        ws.send(message.clone())
            .unwrap_or_else(|e| panic!("client {id}: send {count}: {e}"));
        let reply = next_data(ws, &format!("client {id}"));
        assert!(
            reply == message,
            "client {id}: message {count} ({len} bytes) came back different ({} bytes)",
            reply.len()
        );
        count += 1;
        bytes += len;
    }
    (count, bytes)
}

/// A dumb-increment connection: the plugin's thread sends a number every
/// 50 ms while this client keeps sending (so the owner thread reads while
/// the plugin thread's sends are queued). Returns how many numbers came.
fn counter_client(ws: &mut TlsClient, id: usize, until: Instant) -> u64 {
    let mut previous: Option<u64> = None;
    let mut count = 0;
    let mut last_noise = Instant::now();
    while Instant::now() < until {
        if last_noise.elapsed() >= Duration::from_millis(20) {
            // Ignored by the plugin (only "reset" means something).
            ws.send(Message::text(format!("noise from counter client {id}")))
                .unwrap_or_else(|e| panic!("counter client {id}: send: {e}"));
            last_noise = Instant::now();
        }
        let text = match next_data(ws, &format!("counter client {id}")) {
            Message::Text(t) => t.as_str().to_owned(),
            other => panic!("counter client {id}: expected a number, got {other:?}"),
        };
        let n: u64 = text
            .parse()
            .unwrap_or_else(|_| panic!("counter client {id}: mangled number {text:?}"));
        if let Some(p) = previous {
            assert_eq!(n, p + 1, "counter client {id}: the counter skipped");
        }
        previous = Some(n);
        count += 1;
    }
    count
}

/// The C plugin's `threads:4:250` (four plugin threads sending at once) while
/// this client sends binary messages on the same connection; every thread's
/// messages arrive whole and in order, and every echo intact. The plugin
/// keeps at most 16 batches per connection, so a new connection is opened
/// every 10 rounds. Returns the rounds done.
fn threads_client(server: &RunningServer, mut ws: TlsClient, id: usize, until: Instant) -> u64 {
    let mut rng = Rng(0xDEAD_BEEF ^ id as u64);
    let mut rounds = 0;
    while Instant::now() < until || rounds == 0 {
        if rounds > 0 && rounds % 10 == 0 {
            close_tls(ws, &format!("threads client {id}"));
            ws = wss(server, wss_request(server, "/c"));
        }
        ws.send(Message::text("threads:4:250"))
            .unwrap_or_else(|e| panic!("threads client {id}: {e}"));
        let echoes: Vec<Vec<u8>> = (0..3).map(|_| rng.sized(1000, 200_000)).collect();
        for e in &echoes {
            ws.send(Message::binary(e.clone()))
                .unwrap_or_else(|e| panic!("threads client {id}: {e}"));
        }
        let mut next: HashMap<u64, u64> = HashMap::new();
        let mut echoed = 0;
        let mut done = false;
        while !done || echoed < echoes.len() {
            match next_data(&mut ws, &format!("threads client {id}")) {
                Message::Binary(b) => {
                    assert!(echoed < echoes.len(), "threads client {id}: an extra echo");
                    assert!(
                        b[..] == echoes[echoed][..],
                        "threads client {id}: echo {echoed} differs"
                    );
                    echoed += 1;
                }
                Message::Text(t) if t.as_str() == "threads-done" => {
                    assert!(!done, "threads client {id}: two threads-done");
                    done = true;
                }
                Message::Text(t) => {
                    let (thread, k) = t
                        .strip_prefix('t')
                        .and_then(|t| t.split_once(':'))
                        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                        .unwrap_or_else(|| panic!("threads client {id}: mangled message {t:?}"));
                    let expected = next.entry(thread).or_insert(0);
                    assert_eq!(k, *expected, "threads client {id}: thread {thread} out of order");
                    *expected += 1;
                }
                other => panic!("threads client {id}: unexpected {other:?}"),
            }
        }
        assert_eq!(next.len(), 4, "threads client {id}: {next:?}");
        assert!(next.values().all(|&n| n == 250), "threads client {id}: {next:?}");
        rounds += 1;
    }
    close_tls(ws, &format!("threads client {id}"));
    rounds
}

fn soak(mpm: Mpm) {
    soak_on(server("tls-soak", mpm));
}

fn soak_on(server: RunningServer) {
    let port = server.port();
    let started = Instant::now();

    // Every connection is open before the clock starts.
    let echo: Vec<TlsClient> = (0..ECHO_CLIENTS)
        .map(|_| wss(&server, wss_request(&server, "/echo")))
        .collect();
    let counters: Vec<TlsClient> = (0..COUNTER_CLIENTS)
        .map(|_| {
            wss(
                &server,
                with_header(
                    wss_request(&server, "/inc"),
                    "Sec-WebSocket-Protocol",
                    "dumb-increment-protocol",
                ),
            )
        })
        .collect();
    let threaded: Vec<TlsClient> = (0..THREAD_CLIENTS)
        .map(|_| wss(&server, wss_request(&server, "/c")))
        .collect();
    let until = Instant::now() + SOAK;
    let barrier = Barrier::new(ECHO_CLIENTS + COUNTER_CLIENTS + THREAD_CLIENTS);

    let results: Vec<String> = thread::scope(|scope| {
        let (server, barrier) = (&server, &barrier);
        let mut handles = Vec::new();
        for (id, mut ws) in echo.into_iter().enumerate() {
            handles.push(scope.spawn(move || {
                barrier.wait();
                let (n, bytes) = echo_client(port, &mut ws, id, until);
                close_tls(ws, &format!("client {id}"));
                format!("echo:{n}:{bytes}")
            }));
        }
        for (id, mut ws) in counters.into_iter().enumerate() {
            handles.push(scope.spawn(move || {
                barrier.wait();
                let n = counter_client(&mut ws, id, until);
                close_tls(ws, &format!("counter client {id}"));
                format!("counter:{n}")
            }));
        }
        for (id, ws) in threaded.into_iter().enumerate() {
            handles.push(scope.spawn(move || {
                barrier.wait();
                format!("threads:{}", threads_client(server, ws, id, until))
            }));
        }
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e),
            })
            .collect()
    });

    let (mut messages, mut bytes, mut numbers, mut rounds) = (0u64, 0u64, 0u64, 0u64);
    for r in &results {
        let parts: Vec<&str> = r.split(':').collect();
        match parts[0] {
            "echo" => {
                messages += parts[1].parse::<u64>().unwrap();
                bytes += parts[2].parse::<u64>().unwrap();
            }
            "counter" => {
                let n: u64 = parts[1].parse().unwrap();
                // 10 s at one number per 50 ms is ~200; allow for a slow machine.
                assert!(
                    n >= 50,
                    "a dumb-increment connection got only {n} numbers in {SOAK:?}"
                );
                numbers += n;
            }
            _ => rounds += parts[1].parse::<u64>().unwrap(),
        }
    }
    eprintln!(
        "tls soak ({}): {messages} echoes ({} MiB), {numbers} counter numbers, \
         {rounds} thread rounds in {:?}",
        server.root().display(),
        bytes >> 20,
        started.elapsed()
    );
    assert!(messages >= ECHO_CLIENTS as u64 * 4, "too few echoes: {messages}");

    // Still serving afterwards, over TLS.
    let mut c = wss(&server, wss_request(&server, "/echo"));
    c.send(Message::text("after the soak")).unwrap();
    assert_eq!(next_data(&mut c, "after"), Message::text("after the soak"));
    close_tls(c, "after");
    assert_log_clean(&server);
    finish(server);
}

#[test]
fn tls_soak_event() {
    soak(Mpm::Event);
}

/// The same with the parked driver: TLS connections park between
/// messages, and plugin threads write to them through mod_ssl while they
/// are parked.
#[test]
fn tls_soak_event_parked() {
    soak_on(server_with("tls-soak-parked", Mpm::Event, "WebSocketAsync On\n"));
}

#[test]
fn tls_soak_worker() {
    soak(Mpm::Worker);
}

#[test]
fn tls_soak_prefork() {
    soak(Mpm::Prefork);
}

/// `WebSocketOriginCheck Same` behind TLS: the origin's scheme is https.
#[test]
fn origin_policy_behind_tls() {
    let server = server("tls-origin", Mpm::Event);
    let port = server.port();
    let same = format!("https://127.0.0.1:{port}");
    let mut c = wss(
        &server,
        with_header(wss_request(&server, "/echo"), "Origin", &same),
    );
    c.send(Message::text("same origin over TLS")).unwrap();
    assert_eq!(next_data(&mut c, "same"), Message::text("same origin over TLS"));
    close_tls(c, "same origin");

    for refused in [
        format!("http://127.0.0.1:{port}"),
        "https://127.0.0.1".to_owned(),
        format!("https://evil.example:{port}"),
    ] {
        match try_wss(
            &server,
            with_header(wss_request(&server, "/echo"), "Origin", &refused),
        ) {
            Err(e) => assert_eq!(e, "HTTP 403", "Origin {refused}"),
            Ok(_) => panic!("Origin {refused} was accepted behind TLS"),
        }
    }
    // No Origin (a non-browser client) is allowed.
    let mut c = wss(&server, wss_request(&server, "/echo"));
    c.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert_eq!(next_data(&mut c, "no origin"), Message::binary(vec![1u8, 2, 3]));
    close_tls(c, "no origin");
    assert_log_clean(&server);
    finish(server);
}

/// What mod_ssl knows of the client reaches plugins through the request
/// context: TLS, and with `SSLOptions +StdEnvVars` the client certificate's
/// subject (`SSL_CLIENT_S_DN`), for the C test plugin and the Rust whoami.
#[test]
fn client_certificate_reaches_plugins() {
    let server = server("tls-client-cert", Mpm::Event);
    let ask = |ws: &mut TlsClient, command: &str| -> String {
        ws.send(Message::text(command)).unwrap();
        match next_data(ws, command) {
            Message::Text(t) => t.to_string(),
            other => panic!("{command}: {other:?}"),
        }
    };
    let open = |path: &str, config: Arc<ClientConfig>| -> TlsClient {
        let request = wss_request(&server, path);
        match tungstenite::client(request, tls_stream_with(&server, config)) {
            Ok((ws, _)) => ws,
            Err(e) => panic!("wss to {path} failed: {e:?}\n{}", server.logs()),
        }
    };

    let mut c = open("/c", client_config_with_cert());
    assert_eq!(ask(&mut c, "info:tls"), "1");
    assert_eq!(ask(&mut c, "info:version"), "1001");
    assert_eq!(ask(&mut c, "env:SSL_CLIENT_S_DN"), CLIENT_DN);
    assert_eq!(ask(&mut c, "env:SSL_CLIENT_VERIFY"), "SUCCESS");
    close_tls(c, "C plugin with a certificate");
    let mut c = open("/c", client_config());
    assert_eq!(ask(&mut c, "info:tls"), "1");
    assert_eq!(ask(&mut c, "env:SSL_CLIENT_S_DN"), "(none)");
    assert_eq!(ask(&mut c, "env:SSL_CLIENT_VERIFY"), "NONE");
    close_tls(c, "C plugin without a certificate");

    let mut w = open("/whoami", client_config_with_cert());
    let who: serde_json::Value = match next_data(&mut w, "whoami") {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("whoami: {other:?}"),
    };
    assert_eq!(who["tls"], serde_json::json!(true), "{who}");
    assert_eq!(who["http_version"], serde_json::json!("1.1"), "{who}");
    assert_eq!(
        ask(&mut w, "env SSL_CLIENT_S_DN"),
        serde_json::json!(CLIENT_DN).to_string()
    );
    close_tls(w, "whoami with a certificate");
    assert_log_clean(&server);
    finish(server);
}
