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
        Redis::start_with(port, dir, &["--port".into(), port.to_string()])
    }

    /// TLS only, on `port`, with the test CA's server certificate.
    fn start_tls(port: u16, dir: &Path) -> Redis {
        let certs = test_certs();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let args = [
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&certs.cert),
            "--tls-key-file".into(),
            path(&certs.key),
            "--tls-ca-cert-file".into(),
            path(&certs.ca),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        Redis::start_with(port, dir, &args)
    }

    fn start_with(port: u16, dir: &Path, listen: &[String]) -> Redis {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("redis.log")).unwrap();
        let child = Command::new(REDIS)
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
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
    start(broker_config(name, &format!("redis://127.0.0.1:{redis_port}")))
}

fn broker_config(name: &str, url: &str) -> ServerConfig {
    let config = format!(
        "WebSocketBroker {url}\n{}\
         <Location /publish>\n    SetHandler websocket-publish\n</Location>\n",
        plugin_location("/ch", c_plugin(), "test_plugin_init", ""),
    );
    server_config(name, Mpm::Event, &config)
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

/// The subscription to Redis is made when the first connection subscribes;
/// waits until publishes on `a` reach `on_b` before relying on it.
fn wait_until_crossing(a: &RunningServer, on_a: &mut Client, b: &RunningServer, on_b: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publish(a, "ready?");
        assert_eq!(next_text(on_a), "ready?");
        on_b.get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let crossed = matches!(on_b.read(), Ok(Message::Text(t)) if t.as_str() == "ready?");
        on_b.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        if crossed {
            return;
        }
        assert!(Instant::now() < deadline, "nothing crossed Redis:\n{}", b.logs());
    }
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
    wait_until_crossing(&a, &mut on_a, &b, &mut on_b);

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
    // A's publishing connection comes back with the first publish after
    // its retry delay: publish until one crosses. What was published
    // during the outage is lost to B, not late: the first thing B gets
    // is one of these.
    let deadline = Instant::now() + Duration::from_secs(15);
    on_b.get_mut()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut sent = 0;
    let crossed = loop {
        let text = format!("after the restart {sent}");
        publish(&a, &text);
        assert_eq!(next_text(&mut on_a), text);
        sent += 1;
        match on_b.read() {
            Ok(Message::Text(t)) => break t.as_str().to_owned(),
            Ok(other) => panic!("B got {other:?}"),
            Err(_) => assert!(
                Instant::now() < deadline,
                "nothing crossed after the restart:\n{}",
                a.logs()
            ),
        }
    };
    on_b.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(crossed.starts_with("after the restart "), "B got {crossed:?}");
    let first: usize = crossed["after the restart ".len()..].parse().unwrap();
    for later in first + 1..sent {
        assert_eq!(next_text(&mut on_b), format!("after the restart {later}"));
    }
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

/// `rediss://`: the broker speaks TLS to a redis-server that listens only
/// with TLS, trusting the CA that `SSL_CERT_FILE` names (as an operator
/// would set it in /etc/apache2/envvars) besides the system's. A server
/// that does not trust the certificate says why in its log and still
/// serves its own subscribers.
#[test]
fn publishes_cross_servers_through_redis_over_tls() {
    if !redis_available() {
        return;
    }
    let port = free_port();
    let _redis = Redis::start_tls(port, &httpd_runner::scratch_dir("it-channels-rediss-data"));
    let url = format!("rediss://127.0.0.1:{port}");
    let ca = &test_certs().ca;
    let a = start(broker_config("channels-rediss-a", &url).env("SSL_CERT_FILE", ca));
    let b = start(broker_config("channels-rediss-b", &url).env("SSL_CERT_FILE", ca));
    let untrusting = start(broker_config("channels-rediss-untrusting", &url));
    let mut on_a = subscriber(&a);
    let mut on_b = subscriber(&b);
    let mut on_untrusting = subscriber(&untrusting);
    wait_until_crossing(&a, &mut on_a, &b, &mut on_b);

    on_b.send(Message::text("pub:news:over TLS")).unwrap();
    assert_eq!(next_text(&mut on_b), "over TLS");
    assert_eq!(next_text(&mut on_a), "over TLS");
    publish(&untrusting, "kept at home");
    assert_eq!(next_text(&mut on_untrusting), "kept at home");
    let log = wait_for_log(&untrusting, "is unreachable", Duration::from_secs(10));
    assert!(
        log.to_ascii_lowercase().contains("certificate"),
        "the outage line does not say the certificate is the problem:\n{log}"
    );
    assert_nothing_more(&mut on_a);
    assert_nothing_more(&mut on_b);
    assert_nothing_more(&mut on_untrusting);
    for c in [on_a, on_b, on_untrusting] {
        close_client(c);
    }
    finish(a);
    finish(b);
    finish(untrusting);
}
