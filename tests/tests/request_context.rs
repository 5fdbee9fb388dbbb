//! Who the client is, as plugins see it without Apache's headers: the
//! decoded path and raw query, the address after mod_remoteip, the user
//! Basic authentication established, `SetEnv` values and cookies, TLS and
//! the HTTP version. Checked with the C test plugin (and its build against
//! the original header, which must still load and simply not see the new
//! functions) and the Rust whoami example plugin. (The client certificate's
//! subject through `SSL_CLIENT_S_DN` is in tls.rs, which has the certificates.)

use integration_tests::*;
use serde_json::{json, Value};

/// Basic credentials: alice / s3cret and zoë / pässwörd (UTF-8).
const ALICE: &str = "Basic YWxpY2U6czNjcmV0";
const ZOE: &str = "Basic em/Dqzpww6Rzc3fDtnJk";

fn server(mpm: Mpm) -> RunningServer {
    let users = htpasswd_file(
        &httpd_runner::scratch_dir(&format!("request-context-users-{mpm}")),
        &[("alice", "s3cret"), ("zoë", "pässwörd")],
    );
    let auth = format!(
        "    AuthType Basic\n    AuthName \"WebSockets\"\n    AuthUserFile \"{}\"\n    Require valid-user\n",
        users.display()
    );
    let env = "    SetEnv GREETING \"héllo wörld\"\n    SetEnv WHOAMI_ENV \"GREETING, UNSET_VAR\"\n    \
               SetEnv WHOAMI_COOKIES \"session, room, missing\"\n";
    let c = c_plugin();
    let old = c_plugin_original_header();
    let whoami = stage().whoami_plugin();
    let config = [
        // Requests from the loopback proxy carry the real client in X-Forwarded-For.
        "RemoteIPHeader X-Forwarded-For\nRemoteIPInternalProxy 127.0.0.1\n".to_string(),
        plugin_location("/c", c, "test_plugin_init", env),
        plugin_location("/c-auth", c, "test_plugin_init", &format!("{auth}{env}")),
        plugin_location("/c-old", old, "test_plugin_init", &format!("{auth}{env}")),
        plugin_location("/w", &whoami, "whoami_init", env),
        plugin_location("/w-auth", &whoami, "whoami_init", &format!("{auth}{env}")),
        echo_location(
            "/echo-log",
            &format!("{auth}    SetEnv ECHO_LOG_CONNECTIONS on\n"),
        ),
    ]
    .concat();
    let config = server_config("request-context", mpm, &config);
    start(with_system_modules(
        config,
        &[
            "auth_basic",
            "authn_core",
            "authn_file",
            "authz_user",
            "env",
            "remoteip",
        ],
    ))
}

/// A handshake as a logged-in browser behind the loopback proxy would send it.
fn browser(path: &str, credentials: &str, cookie: &str) -> Handshake {
    Handshake::new(path)
        .header("Authorization", credentials)
        .header("Cookie", cookie)
        .header("X-Forwarded-For", "203.0.113.9")
}

fn c_plugin_sees_the_client(server: &RunningServer) {
    // Apache authenticates before the upgrade.
    assert_eq!(Handshake::new("/c-auth").response(server).status, 401);
    let wrong = Handshake::new("/c-auth").header("Authorization", "Basic YWxpY2U6bm9wZQ==");
    assert_eq!(wrong.response(server).status, 401);

    let mut c = browser(
        "/c-auth/caf%C3%A9/r%20oom?q=caf%C3%A9&x=%20y+z",
        ALICE,
        "session=\"tok 1\"; room=caf%C3%A9",
    )
    .also("Cookie", "late=1")
    .open(server);
    assert_eq!(c.ask("info:path"), "/c-auth/café/r oom");
    assert_eq!(c.ask("info:query"), "q=caf%C3%A9&x=%20y+z");
    assert_eq!(c.ask("info:ip"), "203.0.113.9", "after mod_remoteip");
    // The header names no port: unknown.
    assert_eq!(c.ask("info:port"), "0");
    assert_eq!(c.ask("info:user"), "alice");
    assert_eq!(c.ask("info:auth"), "Basic");
    assert_eq!(c.ask("info:tls"), "0");
    assert_eq!(c.ask("info:version"), "1001");
    assert_eq!(c.ask("env:GREETING"), "héllo wörld");
    assert_eq!(c.ask("env:UNSET_VAR"), "(none)");
    assert_eq!(c.ask("cookie:session"), "tok 1");
    assert_eq!(c.ask("cookie:room"), "caf%C3%A9");
    assert_eq!(c.ask("cookie:late"), "1", "a second Cookie line");
    assert_eq!(c.ask("cookie:missing"), "(none)");

    // A second connection open at the same time sees only its own values.
    let mut other = browser("/c-auth/other", ZOE, "session=zoe")
        .without("X-Forwarded-For")
        .open(server);
    assert_eq!(other.ask("info:user"), "zoë");
    assert_eq!(other.ask("cookie:session"), "zoe");
    assert_eq!(other.ask("info:ip"), "127.0.0.1");
    let port = other.stream.local_addr().unwrap().port();
    assert_eq!(other.ask("info:port"), port.to_string());
    assert_eq!(other.ask("info:query"), "(none)");
    assert_eq!(other.ask("info:path"), "/c-auth/other");
    assert_eq!(c.ask("info:user"), "alice");
    assert_eq!(c.ask("cookie:session"), "tok 1");
    other.close_normally();
    c.close_normally();

    // Anonymous, no cookies: every value absent, nothing left from before.
    let mut c = RawClient::open(server, "/c");
    for (what, expected) in [
        ("info:user", "(none)"),
        ("info:auth", "(none)"),
        ("info:query", "(none)"),
        ("cookie:session", "(none)"),
        ("info:path", "/c"),
        ("info:ip", "127.0.0.1"),
    ] {
        assert_eq!(c.ask(what), expected, "{what}");
    }
    c.close_normally();

    // Built against the original header: it cannot see the new functions, and works.
    let mut c = browser("/c-old", ALICE, "session=x").open(server);
    assert_eq!(c.ask("info:user"), "(unsupported)");
    assert_eq!(c.ask("protocols"), "");
    assert_eq!(c.ask("header:Cookie"), "session=x");
    c.close_normally();
}

fn json_text(c: &mut RawClient) -> Value {
    let text = c.read_text();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON: {text:?}: {e}"))
}

fn rust_plugin_sees_the_client(server: &RunningServer) {
    assert_eq!(Handshake::new("/w-auth").response(server).status, 401);
    let mut c = browser(
        "/w-auth/r%C3%B6%C3%B6m?a=%C3%A9",
        ZOE,
        "room=caf%C3%A9; session=\"z 2\"",
    )
    .open(server);
    assert_eq!(
        json_text(&mut c),
        json!({
            "path": "/w-auth/rööm",
            "query": "a=%C3%A9",
            "remote": "203.0.113.9:0",
            "user": "zoë",
            "auth_type": "Basic",
            "tls": false,
            "http_version": "1.1",
        })
    );
    c.send_text("env GREETING");
    assert_eq!(json_text(&mut c), json!("héllo wörld"));
    c.send_text("env UNSET_VAR");
    assert_eq!(json_text(&mut c), Value::Null);
    c.send_text("cookie session");
    assert_eq!(json_text(&mut c), json!("z 2"));
    c.send_text("cookie missing");
    assert_eq!(json_text(&mut c), Value::Null);
    c.close_normally();

    let mut c = Handshake::new("/w").open(server);
    let port = c.stream.local_addr().unwrap().port();
    let who = json_text(&mut c);
    assert_eq!(who["user"], Value::Null);
    assert_eq!(who["auth_type"], Value::Null);
    assert_eq!(who["query"], Value::Null);
    assert_eq!(who["path"], json!("/w"));
    assert_eq!(who["remote"], json!(format!("127.0.0.1:{port}")));
    c.send_text("cookie session");
    assert_eq!(json_text(&mut c), Value::Null);
    c.close_normally();
}

/// The echo example logs who connected when asked to.
fn echo_logs_the_user(server: &RunningServer) {
    let mut c = browser("/echo-log/room", ALICE, "").open(server);
    assert_eq!(c.ask("hello"), "hello");
    c.close_normally();
    wait_for_log(
        server,
        "echo: alice connected from 203.0.113.9:0 to /echo-log/room",
        std::time::Duration::from_secs(5),
    );
}

fn request_context(mpm: Mpm) {
    let server = server(mpm);
    c_plugin_sees_the_client(&server);
    rust_plugin_sees_the_client(&server);
    echo_logs_the_user(&server);
    finish(server);
}

#[test]
fn request_context_event() {
    request_context(Mpm::Event);
}

#[test]
fn request_context_prefork() {
    request_context(Mpm::Prefork);
}
