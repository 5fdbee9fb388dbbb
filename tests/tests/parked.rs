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
