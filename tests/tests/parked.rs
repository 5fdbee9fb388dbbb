//! `WebSocketAsync On` under the event MPM: idle WebSockets give their
//! worker thread back, so far more of them stay open than the server has
//! threads, and plain HTTP keeps being answered; output from plugin
//! threads (dumb-increment's ticks) reaches parked connections; a stop
//! closes them with 1001.

use std::time::{Duration, Instant};

use integration_tests::tungstenite::protocol::frame::coding::CloseCode;
use integration_tests::tungstenite::Message;
use integration_tests::*;

/// Ten threads in one child: every WebSocket past the tenth would wait
/// for a thread without parking.
const FEW_THREADS: &str = "StartServers 1\nServerLimit 1\nThreadsPerChild 10\nMaxRequestWorkers 10\n\
                           MinSpareThreads 1\nMaxSpareThreads 10\nThreadLimit 10\n\
                           AsyncRequestWorkerFactor 1000\n";

const PROTOCOL: &str = "dumb-increment-protocol";

fn parked_server(name: &str) -> RunningServer {
    let config = format!(
        "{FEW_THREADS}{}{}",
        echo_location("/echo", "    WebSocketAsync On"),
        plugin_location(
            "/increment",
            &stage().dumb_increment_plugin(),
            "dumb_increment_init",
            "    WebSocketAsync On"
        ),
    );
    start_server(name, Mpm::Event, &config)
}

fn get_index(server: &RunningServer) {
    let started = Instant::now();
    let answer = http(server, "GET", "/", &[], b"");
    assert!(
        answer.status < 500,
        "GET / with the WebSockets open: {}",
        answer.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "GET / took {:?}",
        started.elapsed()
    );
}

#[test]
fn many_idle_websockets_on_ten_threads() {
    let server = parked_server("parked-many");
    let mut clients: Vec<Client> = (0..200).map(|_| ws_connect(&server, "/echo")).collect();
    get_index(&server);
    for (i, c) in clients.iter_mut().enumerate() {
        assert_echo(c, Message::text(format!("hello {i}")));
    }
    get_index(&server);
    // Again, in the other order: every one was parked again after its echo.
    for (i, c) in clients.iter_mut().enumerate().rev() {
        assert_echo(c, Message::binary(vec![i as u8; 1000]));
    }
    let log = server.error_log();
    assert!(log.contains("parked driver"), "{log}");
    for c in clients {
        close_client(c);
    }
    finish(server);
}

#[test]
fn ticks_reach_parked_connections_and_a_stop_closes_them() {
    let server = parked_server("parked-ticks");
    let mut tickers: Vec<Client> = (0..30)
        .map(|_| {
            let request = with_header(
                client_request(&server, "/increment"),
                "Sec-WebSocket-Protocol",
                PROTOCOL,
            );
            ws_connect_request(&server, request).0
        })
        .collect();
    for c in &mut tickers {
        let first: u64 = next_text(c).trim().parse().unwrap();
        let second: u64 = next_text(c).trim().parse().unwrap();
        assert!(second > first, "{first} then {second}");
    }
    get_index(&server);
    // Idle echo connections too.
    let mut idle: Vec<Client> = (0..30).map(|_| ws_connect(&server, "/echo")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let stopping = std::thread::spawn(move || finish(server));
    for c in tickers.iter_mut().chain(idle.iter_mut()) {
        loop {
            match c.read() {
                Ok(Message::Text(_)) | Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
                Ok(Message::Close(frame)) => {
                    assert_eq!(frame.map(|f| f.code), Some(CloseCode::Away));
                    break;
                }
                other => panic!("expected the 1001 of the stop, got {other:?}"),
            }
        }
    }
    stopping.join().unwrap();
}

/// Apache's `Timeout` (2 s here) closes a parked connection that stays
/// silent, but the server's pings (at half of it, since the location sets
/// no WebSocketPingInterval) wake it with the client's pong first.
#[test]
fn apache_timeout_does_not_cut_a_parked_websocket() {
    let config = format!(
        "Timeout 2\n{FEW_THREADS}{}",
        echo_location("/echo", "    WebSocketAsync On")
    );
    let server = start_server("parked-timeout", Mpm::Event, &config);
    let mut c = ws_connect(&server, "/echo");
    c.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let mut pings = 0;
    while Instant::now() < until {
        match c.read() {
            Ok(Message::Ping(_)) => {
                pings += 1;
                c.flush().unwrap();
            }
            Err(integration_tests::tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("while idle: {other:?}\n{}", server.logs()),
        }
    }
    assert!(pings >= 3, "{pings} pings in 5 s");
    c.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_echo(&mut c, Message::text("still open after 5 s"));
    close_client(c);
    finish(server);
}

/// A graceful restart with parked connections open: the old child closes
/// them with 1001 at once, and the new generation parks new ones.
#[test]
fn graceful_restart_with_parked_connections() {
    let mut server = parked_server("parked-restart");
    let mut old: Vec<Client> = (0..50).map(|_| ws_connect(&server, "/echo")).collect();
    for c in &mut old {
        assert_echo(c, Message::text("before"));
    }
    server
        .graceful()
        .unwrap_or_else(|e| panic!("graceful restart failed: {e}"));
    for c in &mut old {
        match next_message(c) {
            Message::Close(frame) => assert_eq!(frame.map(|f| f.code), Some(CloseCode::Away)),
            other => panic!("expected 1001 after the restart, got {other:?}"),
        }
    }
    drop(old);
    let mut fresh: Vec<Client> = (0..50).map(|_| ws_connect(&server, "/echo")).collect();
    for c in &mut fresh {
        assert_echo(c, Message::text("after"));
    }
    get_index(&server);
    for c in fresh {
        close_client(c);
    }
    finish(server);
}

/// Lets this process and the Apache it starts (which inherits the limit)
/// hold `n` descriptors.
fn raise_fd_limit(n: u64) {
    // SAFETY: plain getrlimit/setrlimit calls on a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur >= n {
            return;
        }
        limit.rlim_max = limit.rlim_max.max(n);
        limit.rlim_cur = n;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
            0,
            "cannot raise the descriptor limit to {n}"
        );
    }
}

/// 2,000 idle WebSockets on a child with ten threads: all upgrade, all
/// echo, plain HTTP keeps answering while they are open.
#[test]
fn two_thousand_idle_websockets() {
    raise_fd_limit(8192);
    let server = parked_server("parked-2000");
    let rss = || -> u64 { worker_pids(&server).into_iter().filter_map(rss_kib).sum() };
    let mut first = vec![ws_connect(&server, "/echo")];
    assert_echo(&mut first[0], Message::text("warm"));
    let empty = rss();
    let mut clients: Vec<Client> = first
        .into_iter()
        .chain((1..2000).map(|_| ws_connect(&server, "/echo")))
        .collect();
    get_index(&server);
    for (i, c) in clients.iter_mut().enumerate() {
        assert_echo(c, Message::text(format!("{i}")));
    }
    get_index(&server);
    let full = rss();
    // A figure for the record, not a check (benchmarks measure it).
    eprintln!(
        "2000 parked WebSockets: children's RSS {empty} KiB -> {full} KiB, {:.1} KiB per connection",
        full.saturating_sub(empty) as f64 / 1999.0
    );
    for c in clients {
        close_client(c);
    }
    finish(server);
}

/// 500 over TLS: mod_ssl's connections park too.
#[test]
fn five_hundred_idle_websockets_over_tls() {
    use integration_tests::wss::{wss, wss_request};
    raise_fd_limit(8192);
    let certs = test_certs();
    let root = httpd_runner::scratch_dir("it-parked-tls-event");
    let config = format!(
        "SSLEngine on\nSSLCertificateFile \"{}\"\nSSLCertificateKeyFile \"{}\"\n\
         SSLSessionCache \"shmcb:{}(512000)\"\n{FEW_THREADS}{}",
        certs.cert.display(),
        certs.key.display(),
        root.join("run/ssl_scache").display(),
        echo_location("/echo", "    WebSocketAsync On"),
    );
    let config = with_system_modules(
        server_config("parked-tls", Mpm::Event, &config),
        &["ssl", "socache_shmcb"],
    );
    let server = start(config);
    let mut clients: Vec<_> = (0..500)
        .map(|_| wss(&server, wss_request(&server, "/echo")))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let text = format!("tls {i}");
        c.send(Message::text(text.clone())).unwrap();
        loop {
            match c.read() {
                Ok(Message::Text(t)) => {
                    assert_eq!(t.as_str(), text);
                    break;
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("tls echo {i}: {other:?}"),
            }
        }
    }
    let log = server.error_log();
    assert!(log.contains("over HTTP/1.1 with TLS, parked driver"), "{log}");
    for mut c in clients {
        c.close(None).unwrap();
        while c.read().is_ok() {}
    }
    finish(server);
}

/// A child the MPM retires while its siblings serve on (here after
/// `MaxConnectionsPerChild` connections; stock settings do it for idle
/// threads above `MaxSpareThreads`, which parked connections leave idle)
/// finishes its connections as Apache lets it: its WebSockets stay open
/// and answer, and only the server's stop closes them, with 1001.
#[test]
fn a_child_the_mpm_retires_keeps_its_websockets() {
    let config = format!(
        "StartServers 2\nServerLimit 6\nThreadsPerChild 10\nMaxRequestWorkers 60\nThreadLimit 10\n\
         MinSpareThreads 1\nMaxSpareThreads 60\nAsyncRequestWorkerFactor 100\nMaxConnectionsPerChild 5\n{}",
        echo_location("/echo", "    WebSocketAsync On")
    );
    let server = start_server("parked-retired", Mpm::Event, &config);
    let mut clients: Vec<Client> = (0..12).map(|_| ws_connect(&server, "/echo")).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert_echo(c, Message::text(format!("first {i}")));
    }
    let noticed = Instant::now() + Duration::from_secs(10);
    while !server.error_log().contains("is retired by the MPM") {
        assert!(
            Instant::now() < noticed,
            "no child was retired:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past the wait for a replacement child and a few stop checks.
    std::thread::sleep(Duration::from_secs(4));
    for (i, c) in clients.iter_mut().enumerate() {
        assert_echo(c, Message::text(format!("after the retirement {i}")));
    }
    get_index(&server);
    let stopping = std::thread::spawn(move || finish(server));
    for c in &mut clients {
        match next_message(c) {
            Message::Close(frame) => assert_eq!(frame.map(|f| f.code), Some(CloseCode::Away)),
            other => panic!("expected the 1001 of the stop, got {other:?}"),
        }
    }
    stopping.join().unwrap();
}
