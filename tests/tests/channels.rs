//! Channels inside one Apache: subscribers spread over every child process
//! (prefork with at least four children, and event with small children)
//! get each publish exactly once and in order, whether it came from a
//! WebSocket client (the C test plugin's `pub:` command) or from an HTTP
//! POST to `SetHandler websocket-publish`; and bad input: channel names,
//! sizes, methods, access control, and a subscriber that never reads.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use integration_tests::tungstenite::Message;
use integration_tests::*;

/// alice / s3cret.
const ALICE: &str = "Basic YWxpY2U6czNjcmV0";

fn server(name: &str, mpm: Mpm) -> RunningServer {
    let users = htpasswd_file(
        &httpd_runner::scratch_dir(&format!("channels-users-{name}-{mpm}")),
        &[("alice", "s3cret")],
    );
    let config = format!(
        // Small children, so that a dozen WebSockets (each holding a
        // worker) need several of them.
        "<IfModule mpm_prefork_module>\n    StartServers 4\n    MinSpareServers 4\n</IfModule>\n\
         <IfModule mpm_event_module>\n    StartServers 3\n    ThreadsPerChild 5\n    MinSpareThreads 5\n    \
         MaxSpareThreads 30\n    MaxRequestWorkers 30\n</IfModule>\n\
         {c}\
         <Location /publish>\n    SetHandler websocket-publish\n    MaxMessageSize 1K\n</Location>\n\
         <Location /publish-denied>\n    SetHandler websocket-publish\n    Require all denied\n</Location>\n\
         <Location /publish-auth>\n    SetHandler websocket-publish\n    AuthType Basic\n    AuthName \"publishers\"\n    \
         AuthUserFile \"{users}\"\n    Require valid-user\n</Location>\n",
        c = plugin_location("/ch", c_plugin(), "test_plugin_init", ""),
        users = users.display(),
    );
    let config = server_config(name, mpm, &config);
    start(with_system_modules(
        config,
        &["auth_basic", "authn_core", "authn_file", "authz_user"],
    ))
}

fn ask(client: &mut Client, command: &str) -> String {
    client.send(Message::text(command)).unwrap();
    next_text(client)
}

/// A client of the C test plugin subscribed to `channel`; and its child's pid.
fn subscriber(server: &RunningServer, channel: &str) -> (Client, u32) {
    let mut c = ws_connect(server, "/ch");
    assert_eq!(ask(&mut c, &format!("sub:{channel}")), "subscribed");
    let pid = ask(&mut c, "pid").parse().expect("a pid");
    (c, pid)
}

fn post(server: &RunningServer, path: &str, content_type: &str, body: &[u8]) -> HttpResponse {
    http(
        server,
        "POST",
        path,
        &[&format!("Content-Type: {content_type}")],
        body,
    )
}

/// Nothing else was delivered: the next answer is the one to `pid`.
fn assert_nothing_more(client: &mut Client, pid: u32) {
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        ask(client, "pid"),
        pid.to_string(),
        "a message arrived twice or late"
    );
}

fn fan_out(mpm: Mpm, min_children: usize) {
    let server = server(&format!("channels-fan-out-{mpm}"), mpm);
    let count = 12;
    let mut subs: Vec<(Client, u32)> = (0..count).map(|_| subscriber(&server, "room")).collect();
    let pids: HashSet<u32> = subs.iter().map(|(_, pid)| *pid).collect();
    let children: HashSet<u32> = worker_pids(&server).into_iter().collect();
    assert!(
        pids.is_subset(&children),
        "{pids:?} are not all children of {children:?}"
    );
    assert!(
        pids.len() >= min_children,
        "{count} subscribers in only {} children: {pids:?}",
        pids.len()
    );
    // A connection on another channel, in whichever child.
    let (mut other, other_pid) = subscriber(&server, "other");

    // From a WebSocket client: every subscriber, the publisher included.
    subs[0]
        .0
        .send(Message::text("pub:room:hello from a client"))
        .unwrap();
    for (c, _) in subs.iter_mut() {
        assert_eq!(next_text(c), "hello from a client");
    }
    // From HTTP: text for text/*, binary otherwise.
    let r = post(
        &server,
        "/publish/room",
        "text/plain; charset=utf-8",
        "hello from HTTP".as_bytes(),
    );
    assert_eq!(r.status, 204, "{r:?}");
    let r = post(
        &server,
        "/publish/room",
        "application/octet-stream",
        &[0, 1, 2, 255],
    );
    assert_eq!(r.status, 204, "{r:?}");
    for (c, _) in subs.iter_mut() {
        assert_eq!(next_text(c), "hello from HTTP");
        assert_eq!(next_message(c), Message::binary(vec![0u8, 1, 2, 255]));
    }
    // Order: each publisher's messages arrive in its order everywhere, two
    // publishers (in two children, one through a NULL server) interleaved.
    for i in 0..50 {
        subs[0].0.send(Message::text(format!("pub:room:a{i}"))).unwrap();
        subs[count - 1]
            .0
            .send(Message::text(format!("pub-detached:room:b{i}")))
            .unwrap();
    }
    for (k, (c, _)) in subs.iter_mut().enumerate() {
        let got: Vec<String> = (0..100).map(|_| next_text(c)).collect();
        for prefix in ["a", "b"] {
            let mine: Vec<&String> = got.iter().filter(|m| m.starts_with(prefix)).collect();
            let want: Vec<String> = (0..50).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(
                mine,
                want.iter().collect::<Vec<_>>(),
                "subscriber {k}, publisher {prefix}"
            );
        }
    }
    for (c, pid) in subs.iter_mut() {
        assert_nothing_more(c, *pid);
    }
    assert_nothing_more(&mut other, other_pid);

    // Unsubscribed, a connection gets nothing more; the others still do.
    assert_eq!(ask(&mut subs[1].0, "unsub:room"), "unsubscribed");
    assert_eq!(ask(&mut subs[1].0, "unsub:room"), "unsubscribe refused");
    assert_eq!(post(&server, "/publish/room", "text/plain", b"after").status, 204);
    assert_eq!(next_text(&mut subs[0].0), "after");
    let pid1 = subs[1].1;
    assert_nothing_more(&mut subs[1].0, pid1);

    // The end of a connection ends its subscriptions (nothing is sent to a
    // closed connection, nothing crashes), and the rest go on.
    for (c, _) in subs.drain(2..) {
        close_client(c);
    }
    assert_eq!(post(&server, "/publish/room", "text/plain", b"last").status, 204);
    assert_eq!(next_text(&mut subs[0].0), "last");
    for (c, _) in subs {
        close_client(c);
    }
    close_client(other);
    finish(server);
}

#[test]
fn fan_out_over_prefork_children() {
    fan_out(Mpm::Prefork, 4);
}

#[test]
fn fan_out_over_event_children() {
    fan_out(Mpm::Event, 3);
}

/// A graceful restart keeps the channels: the new generation maps the same
/// ring, its subscribers get publishes from HTTP and from each other, and
/// the old generation's subscriber ends without a crash.
#[test]
fn channels_survive_graceful_restart() {
    let mut server = server("channels-graceful", Mpm::Event);
    let (mut old, _) = subscriber(&server, "room");
    assert_eq!(
        post(&server, "/publish/room", "text/plain", b"before").status,
        204
    );
    assert_eq!(next_text(&mut old), "before");
    server
        .graceful()
        .unwrap_or_else(|e| panic!("graceful restart failed: {e}"));
    assert!(server.is_running(), "httpd exited:\n{}", server.logs());
    let (mut a, _) = subscriber(&server, "room");
    let (mut b, _) = subscriber(&server, "room");
    assert_eq!(post(&server, "/publish/room", "text/plain", b"after").status, 204);
    a.send(Message::text("pub:room:from a new child")).unwrap();
    for c in [&mut a, &mut b] {
        assert_eq!(next_text(c), "after");
        assert_eq!(next_text(c), "from a new child");
    }
    drop(old);
    close_client(a);
    close_client(b);
    finish(server);
}

#[test]
fn bad_input() {
    let server = server("channels-bad-input", Mpm::Event);
    let (mut sub, pid) = subscriber(&server, "room");

    // Channel names, over HTTP: 400 with the reason in the page.
    let long = format!("/publish/{}", "x".repeat(129));
    for path in [
        "/publish",
        "/publish/",
        "/publish/a%20b",
        "/publish/a/b",
        "/publish/caf%C3%A9",
        long.as_str(),
    ] {
        let r = post(&server, path, "text/plain", b"x");
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    let r = post(&server, "/publish/a%3Ab", "text/plain", b"x");
    assert!(String::from_utf8_lossy(&r.body).contains("allowed: A-Z"), "{r:?}");
    // Only POST.
    for method in ["GET", "PUT", "DELETE"] {
        let r = http(&server, method, "/publish/room", &[], b"");
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert!(r.header("Allow").is_some_and(|a| a.contains("POST")), "{r:?}");
    }
    // Over MaxMessageSize (1K here): 413, declared or chunked.
    assert_eq!(
        post(&server, "/publish/room", "text/plain", &[b'a'; 1024]).status,
        204
    );
    assert_eq!(next_text(&mut sub), "a".repeat(1024));
    assert_eq!(
        post(&server, "/publish/room", "text/plain", &[b'a'; 1025]).status,
        413
    );
    let chunked = format!("401\r\n{}\r\n0\r\n\r\n", "b".repeat(0x401));
    let r = http(
        &server,
        "POST",
        "/publish/room",
        &["Content-Type: text/plain", "Transfer-Encoding: chunked"],
        chunked.as_bytes(),
    );
    assert_eq!(r.status, 413, "{r:?}");
    // Text that is not UTF-8.
    assert_eq!(
        post(&server, "/publish/room", "application/json", b"\xff\xfe").status,
        400
    );
    // Apache's access control runs first.
    assert_eq!(
        post(&server, "/publish-denied/room", "text/plain", b"x").status,
        403
    );
    assert_eq!(
        post(&server, "/publish-auth/room", "text/plain", b"x").status,
        401
    );
    let r = http(
        &server,
        "POST",
        "/publish-auth/room",
        &["Content-Type: text/plain", &format!("Authorization: {ALICE}")],
        b"authorized",
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(next_text(&mut sub), "authorized");
    // None of the refused ones reached the subscriber.
    assert_nothing_more(&mut sub, pid);

    // Over the ABI: bad names and too many subscriptions are refused.
    for bad in ["sub:", "sub:a b", "sub:a/b", "unsub:never"] {
        let answer = ask(&mut sub, bad);
        assert!(answer.ends_with("refused"), "{bad}: {answer}");
    }
    assert_eq!(ask(&mut sub, "pub:bad name:x"), "publish refused");
    for i in 1..64 {
        assert_eq!(ask(&mut sub, &format!("sub:c{i}")), "subscribed");
    }
    assert_eq!(ask(&mut sub, "sub:c64"), "subscribe refused", "65 subscriptions");
    assert_eq!(ask(&mut sub, "sub:c1"), "subscribed", "again is fine");
    close_client(sub);
    finish(server);
}

#[test]
fn a_subscriber_that_never_reads_is_closed_and_slows_nobody() {
    let server = server("channels-slow", Mpm::Event);
    // The slow one subscribes and then reads nothing.
    let mut slow = Handshake::new("/ch").open(&server);
    slow.send_text("sub:news");
    assert_eq!(slow.read_text(), "subscribed");
    let (mut fast, _) = subscriber(&server, "news");
    let publisher = ws_connect(&server, "/ch");
    let mut publisher = publisher;
    // Far more than the slow one's queue (1 MiB) and the loopback buffers.
    let chunk = "n".repeat(60 * 1024);
    let total = 300;
    let started = Instant::now();
    for i in 0..total {
        publisher
            .send(Message::text(format!("pub:news:{i:04}{chunk}")))
            .unwrap();
        // The fast subscriber keeps up, message by message.
        let got = next_text(&mut fast);
        assert_eq!(&got[..4], format!("{i:04}"), "fast subscriber");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // The slow one now reads: some of the messages, in order, then 1013.
    let mut seen = 0;
    let code = loop {
        let frame = slow.frame();
        match frame.opcode {
            1 => {
                assert_eq!(&frame.payload[..4], format!("{seen:04}").as_bytes());
                seen += 1;
            }
            8 => break frame.close_code(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, Some(1013), "after {seen} messages");
    assert!(seen < total, "the slow subscriber got everything ({seen})");
    close_client(fast);
    close_client(publisher);
    let log = wait_for_log(&server, "1013", Duration::from_secs(5));
    assert!(log.contains("1013"), "{log}");
    finish(server);
}
