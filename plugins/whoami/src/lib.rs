//! The whoami plugin: tells each client what Apache established about it before the
//! upgrade, through the plugin API's request context (no Apache headers, no `unsafe`).
//!
//! ```apache
//! <Location /whoami>
//!     AuthType Basic
//!     AuthName "WebSockets"
//!     AuthUserFile /etc/apache2/websocket.htpasswd
//!     Require valid-user
//!     SetHandler websocket-handler
//!     WebSocketHandler modules/mod_websocket_whoami.so whoami_init
//! </Location>
//! ```
//!
//! On connect it sends one text message, a JSON object: `path`, `query`, `remote`
//! (`ip:port`), `user`, `auth_type`, `tls` and `http_version`, `null` where the request
//! has no such value. Then it answers `env NAME` with the request environment variable
//! `NAME` (`SSL_CLIENT_S_DN` with `SSLOptions +StdEnvVars`, whatever `SetEnv` set) and
//! `cookie NAME` with that cookie, each as a JSON string or `null`. Everything it says
//! was read in `on_connect` and kept in the session.

use serde_json::{json, Value};
use websocket_plugin::{ClientInfo, Connection, Message, Plugin, Sender};

pub struct Whoami;

/// What a connection's later messages may ask about, copied in `on_connect`.
pub struct Session {
    client: ClientInfo,
    env: Vec<(String, Option<String>)>,
    cookies: Vec<(String, Option<String>)>,
}

/// The environment variables and cookies a client may ask about: the ones the
/// configuration names in `WHOAMI_ENV` and `WHOAMI_COOKIES` (comma-separated), so that
/// a client cannot read the whole environment.
fn names(conn: &Connection<'_>, var: &str) -> Vec<String> {
    conn.env(var)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

fn describe(client: &ClientInfo) -> Value {
    json!({
        "path": client.path,
        "query": client.query,
        "remote": client.remote_addr.map(|a| a.to_string()),
        "user": client.user,
        "auth_type": client.auth_type,
        "tls": client.is_tls,
        "http_version": client.http_version.map(|(major, minor)| format!("{major}.{minor}")),
    })
}

fn answer(list: &[(String, Option<String>)], name: &str) -> Value {
    match list.iter().find(|(n, _)| n == name) {
        Some((_, value)) => json!(value),
        None => json!({ "error": format!("{name} is not listed for whoami") }),
    }
}

impl Plugin for Whoami {
    type Session = Session;

    fn on_connect(&self, conn: &Connection<'_>) -> Option<Session> {
        let lookup = |names: Vec<String>, get: &dyn Fn(&str) -> Option<String>| {
            names
                .into_iter()
                .map(|n| {
                    let v = get(&n);
                    (n, v)
                })
                .collect()
        };
        let session = Session {
            client: conn.client(),
            env: lookup(names(conn, "WHOAMI_ENV"), &|n| conn.env(n).map(str::to_owned)),
            cookies: lookup(names(conn, "WHOAMI_COOKIES"), &|n| {
                conn.cookie(n).map(str::to_owned)
            }),
        };
        // Queued now, delivered right after the 101.
        let _ = conn.sender().send_text(&describe(&session.client).to_string());
        Some(session)
    }

    fn on_message(&self, session: &mut Session, msg: Message<'_>, sender: &Sender) {
        let Message::Text(text) = msg else { return };
        let reply = match text.split_once(' ') {
            Some(("env", name)) => answer(&session.env, name),
            Some(("cookie", name)) => answer(&session.cookies, name),
            _ if text == "whoami" => describe(&session.client),
            _ => json!({ "error": "ask \"whoami\", \"env NAME\" or \"cookie NAME\"" }),
        };
        // A failure means the connection is closing.
        let _ = sender.send_text(&reply.to_string());
    }
}

websocket_plugin::export_plugin!(whoami_init, Whoami);

#[cfg(test)]
mod tests {
    use super::*;
    use websocket_plugin::testing::{FakeServer, PluginUnderTest};

    fn replies(server: &FakeServer) -> Vec<Value> {
        server
            .sent_texts()
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }

    #[test]
    fn tells_the_client_what_apache_knows() {
        let plugin = PluginUnderTest::init(whoami_init);
        let server = FakeServer::new()
            .request_uri("/whoami/café", Some("a=%C3%A9"))
            .remote("192.0.2.7:40000".parse().unwrap())
            .user("alice", "Basic")
            .env("WHOAMI_ENV", "SSL_CLIENT_S_DN, UNSET")
            .env("WHOAMI_COOKIES", "session")
            .env("SSL_CLIENT_S_DN", "CN=alice")
            .env("SECRET", "not for clients")
            .cookie("session", "abc")
            .transport(true, 1001);
        let mut session = plugin.connect(&server).unwrap();
        for ask in [
            "env SSL_CLIENT_S_DN",
            "env UNSET",
            "env SECRET",
            "cookie session",
            "whoami",
        ] {
            session.text(ask);
        }
        session.disconnect();
        let first = json!({
            "path": "/whoami/café", "query": "a=%C3%A9", "remote": "192.0.2.7:40000",
            "user": "alice", "auth_type": "Basic", "tls": true, "http_version": "1.1",
        });
        let r = replies(&server);
        assert_eq!(r[0], first);
        assert_eq!(r[1], json!("CN=alice"));
        assert_eq!(r[2], Value::Null);
        assert!(r[3]["error"].is_string(), "{:?}", r[3]);
        assert_eq!(r[4], json!("abc"));
        assert_eq!(r[5], first);
    }

    #[test]
    fn absent_values_are_null() {
        let plugin = PluginUnderTest::init(whoami_init);
        let server = FakeServer::new();
        plugin.connect(&server).unwrap().disconnect();
        assert_eq!(
            replies(&server)[0],
            json!({
                "path": null, "query": null, "remote": null, "user": null,
                "auth_type": null, "tls": false, "http_version": "1.1",
            })
        );
    }
}
