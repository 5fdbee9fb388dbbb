//! Channels across servers: two Apaches share a real `redis-server`
//! (Debian's, started here on its own 127.0.0.1 port) through
//! `WebSocketBroker`. A publish on either reaches the subscribers of both,
//! once each; Redis stopped mid-test costs the other server's subscribers
//! what is published meanwhile (at most once), nothing crashes, the outage
//! is logged, and after Redis is back publishes cross again.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::tungstenite::Message;
use integration_tests::*;

const REDIS: &str = "/usr/bin/redis-server";

/// A redis-server of the test's own.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(port: u16, dir: &Path) -> Redis {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("redis.log")).unwrap();
        let child = Command::new(REDIS)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REDIS}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    fn stop(mut self) -> (u16, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.dir.clone())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_available() -> bool {
    if Path::new(REDIS).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("WEBSOCKET_REQUIRE_REDIS").is_none(),
        "{REDIS} is missing (Debian: redis-server) and WEBSOCKET_REQUIRE_REDIS is set"
    );
    eprintln!("skipped: {REDIS} is missing (Debian: redis-server)");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server(name: &str, redis_port: u16) -> RunningServer {
    let config = format!(
        "WebSocketBroker redis://127.0.0.1:{redis_port}\n{}\
         <Location /publish>\n    SetHandler websocket-publish\n</Location>\n",
        plugin_location("/ch", c_plugin(), "test_plugin_init", ""),
    );
    start_server(name, Mpm::Event, &config)
}

fn ask(client: &mut Client, command: &str) -> String {
    client.send(Message::text(command)).unwrap();
    next_text(client)
}

fn subscriber(server: &RunningServer) -> Client {
    let mut c = ws_connect(server, "/ch");
    assert_eq!(ask(&mut c, "sub:news"), "subscribed");
    c
}

fn publish(server: &RunningServer, text: &str) {
    let r = http(
        server,
        "POST",
        "/publish/news",
        &["Content-Type: text/plain"],
        text.as_bytes(),
    );
    assert_eq!(r.status, 204, "{r:?}");
}

/// Nothing else arrived: the next answer is the one to `pid`.
fn assert_nothing_more(client: &mut Client) {
    std::thread::sleep(Duration::from_millis(200));
    let answer = ask(client, "pid");
    assert!(answer.parse::<u32>().is_ok(), "an extra message: {answer}");
}

#[test]
fn publishes_cross_servers_through_redis_and_survive_its_restart() {
    if !redis_available() {
        return;
    }
    let port = free_port();
    let redis = Redis::start(port, &httpd_runner::scratch_dir("it-channels-redis-data"));
    let a = server("channels-redis-a", port);
    let b = server("channels-redis-b", port);
    let mut on_a = subscriber(&a);
    let mut on_b = subscriber(&b);
    // The subscription to Redis is made when the first connection
    // subscribes; give it a moment before relying on it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publish(&a, "ready?");
        assert_eq!(next_text(&mut on_a), "ready?");
        // B's subscriber is known once something crosses.
        on_b.get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let crossed = matches!(on_b.read(), Ok(Message::Text(t)) if t.as_str() == "ready?");
        on_b.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        if crossed {
            break;
        }
        assert!(Instant::now() < deadline, "nothing crossed Redis:\n{}", b.logs());
    }

    // Each way, once each: A's own publish does not come back from Redis.
    publish(&a, "from A");
    assert_eq!(next_text(&mut on_a), "from A");
    assert_eq!(next_text(&mut on_b), "from A");
    on_b.send(Message::text("pub:news:from B")).unwrap();
    assert_eq!(next_text(&mut on_b), "from B");
    assert_eq!(next_text(&mut on_a), "from B");
    assert_nothing_more(&mut on_a);
    assert_nothing_more(&mut on_b);

    // Redis goes away: publishing never blocks, this server's own
    // subscribers still get what is published here, and both servers log
    // the outage.
    let (port, dir) = redis.stop();
    let started = Instant::now();
    publish(&a, "during the outage");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a publish waited for Redis"
    );
    assert_eq!(next_text(&mut on_a), "during the outage");
    wait_for_log(&b, "is unreachable", Duration::from_secs(10));
    publish(&a, "still down");
    assert_eq!(next_text(&mut on_a), "still down");
    wait_for_log(&a, "is unreachable", Duration::from_secs(10));

    // Back: B resubscribes, and publishes cross again.
    let _redis = Redis::start(port, &dir);
    wait_for_log(&b, "is reachable again", Duration::from_secs(20));
    publish(&a, "after the restart");
    assert_eq!(next_text(&mut on_a), "after the restart");
    let got = next_text(&mut on_b);
    // What was published during the outage is lost to B, not late.
    assert_eq!(got, "after the restart");
    assert_nothing_more(&mut on_a);
    assert_nothing_more(&mut on_b);
    // Once per outage in each process that uses Redis, not at every retry.
    for server in [&a, &b] {
        let log = server.error_log();
        let lines = log.matches("is unreachable").count();
        assert!(lines <= worker_pids(server).len(), "{lines} outage lines:\n{log}");
    }
    close_client(on_a);
    close_client(on_b);
    finish(a);
    finish(b);
}
