//! The example pages in a real browser (headless Chromium): the echo
//! client, the dumb-increment counter, and the chat page with clients in
//! two rooms, against the configuration `cargo xtask demo` serves (the
//! staged plugins and pages, `/publish` for local clients); and the echo
//! and counter pages over `wss://` on HTTP/2, as `cargo xtask demo --h2`
//! serves them.

use std::time::Duration;

use integration_tests::browser::{self, Browser, Page};
use integration_tests::*;

const WAIT: Duration = Duration::from_secs(20);

fn server(name: &str) -> RunningServer {
    start(demo_config(name, ""))
}

/// The demo's locations and pages, with `more` configuration.
fn demo_config(name: &str, more: &str) -> ServerConfig {
    let stage = stage();
    let chat = stage.dir.join("modules/mod_websocket_chat.so");
    let config = [
        echo_location("/echo", ""),
        dumb_increment_location("/dumb-increment"),
        plugin_location("/chat", &chat, "chat_init", ""),
        "<Location /publish>\n    SetHandler websocket-publish\n    Require ip 127.0.0.1 ::1\n</Location>\n"
            .to_owned(),
        more.to_owned(),
    ]
    .concat();
    let config = with_system_modules(server_config(name, Mpm::Event, &config), &["authz_host"]);
    let docroot = config.docroot();
    std::fs::create_dir_all(&docroot).unwrap();
    for page in ["index.html", "client.html", "increment.html", "chat.html"] {
        std::fs::copy(stage.dir.join("htdocs").join(page), docroot.join(page))
            .unwrap_or_else(|e| panic!("{page} is not staged: {e}"));
    }
    config
}

fn click(page: &mut Page, id: &str) {
    page.eval(&format!("document.getElementById({id:?}).click()"));
}

fn set_value(page: &mut Page, id: &str, value: &str) {
    page.eval(&format!("document.getElementById({id:?}).value = {value:?}"));
}

fn log_lines(page: &mut Page) -> Vec<String> {
    page.eval("Array.from(document.querySelectorAll('#log .message'), (e) => e.textContent)")
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The echo page at `url`, connected, with `text` sent and echoed.
fn echo_page(browser: &Browser, url: &str, text: &str) -> Page {
    let mut echo = browser.open(url);
    click(&mut echo, "connect");
    echo.wait_for(
        "document.getElementById('status').textContent === 'connected'",
        WAIT,
    );
    set_value(&mut echo, "message", text);
    click(&mut echo, "send");
    echo.wait_for(
        &format!(
            "document.getElementById('log').textContent.includes({:?})",
            format!("< {text}")
        ),
        WAIT,
    );
    echo
}

#[test]
fn echo_and_dumb_increment_pages() {
    if !browser::available() {
        return;
    }
    let server = server("browser-examples");
    let browser = Browser::start("examples");

    let mut echo = echo_page(&browser, &server.url("/client.html"), "héllo from Chromium");

    let mut inc = browser.open(&server.url("/increment.html"));
    click(&mut inc, "connect");
    inc.wait_for(
        "Number(document.getElementById('counter').textContent) >= 5",
        WAIT,
    );
    let before: u64 = inc.text_of("counter").parse().unwrap();
    inc.wait_for(
        &format!("Number(document.getElementById('counter').textContent) > {before}"),
        WAIT,
    );
    click(&mut echo, "disconnect");
    click(&mut inc, "disconnect");
    echo.wait_for(
        "document.getElementById('status').textContent === 'disconnected'",
        WAIT,
    );
    drop(browser);
    finish(server);
}

fn join(browser: &Browser, server: &RunningServer, room: &str, nick: &str) -> Page {
    let mut page = browser.open(&server.url("/chat.html"));
    set_value(&mut page, "room", room);
    set_value(&mut page, "nick", nick);
    click(&mut page, "connect");
    page.wait_for(
        "document.getElementById('status').textContent === 'connected'",
        WAIT,
    );
    page
}

fn say(page: &mut Page, text: &str) {
    set_value(page, "message", text);
    click(page, "send");
}

#[test]
fn chat_page_in_two_rooms() {
    if !browser::available() {
        return;
    }
    let server = server("browser-chat");
    let browser = Browser::start("chat");
    let mut ann = join(&browser, &server, "alpha", "ann");
    let mut bob = join(&browser, &server, "alpha", "bob");
    let mut cy = join(&browser, &server, "beta", "cy");

    say(&mut ann, "hi alpha");
    for page in [&mut ann, &mut bob] {
        page.wait_for(
            "Array.from(document.querySelectorAll('#log .message')).some((e) => e.textContent === 'ann: hi alpha')",
            WAIT,
        );
    }
    say(&mut cy, "hi beta");
    cy.wait_for("document.querySelectorAll('#log .message').length === 1", WAIT);
    // A backend posts to alpha (binary, as curl -d sends it).
    let r = http(
        &server,
        "POST",
        "/publish/alpha",
        &["Content-Type: application/x-www-form-urlencoded"],
        b"from curl",
    );
    assert_eq!(r.status, 204, "{r:?}");
    for page in [&mut ann, &mut bob] {
        page.wait_for("document.querySelectorAll('#log .message').length === 2", WAIT);
    }
    std::thread::sleep(Duration::from_millis(300));
    // Each message once, in each room only.
    assert_eq!(log_lines(&mut ann), ["ann: hi alpha", "from curl"]);
    assert_eq!(log_lines(&mut bob), ["ann: hi alpha", "from curl"]);
    assert_eq!(log_lines(&mut cy), ["cy: hi beta"]);
    drop(browser);
    finish(server);
}

/// `cargo xtask demo --h2`'s setup: TLS, `Protocols h2 http/1.1`,
/// `H2WebSockets on`. Chromium loads the pages over HTTP/2 and opens its
/// WebSockets on that connection; the access log shows them as HTTP/2.0.
#[test]
fn echo_and_dumb_increment_pages_over_http2() {
    if !browser::available() {
        return;
    }
    let certs = test_certs();
    let name = "browser-h2";
    let root = httpd_runner::scratch_dir(&format!("it-{name}-event"));
    let tls = format!(
        // Chromium opens a WebSocket on an HTTP/2 connection it already
        // has to the origin, else on a new HTTP/1.1 one; attaching to a tab
        // can take longer than the default 5 s keep-alive.
        "Protocols h2 http/1.1\nH2WebSockets on\nKeepAliveTimeout 60\nSSLEngine on\n\
         SSLCertificateFile \"{}\"\nSSLCertificateKeyFile \"{}\"\n\
         SSLSessionCache \"shmcb:{}(512000)\"\n",
        certs.cert.display(),
        certs.key.display(),
        root.join("run/ssl_scache").display()
    );
    let config = with_system_modules(demo_config(name, &tls), &["http2", "ssl", "socache_shmcb"])
        .log_level("warn websocket:debug");
    let server = start(config);
    // The test CA is not in Chromium's store.
    let browser = Browser::start_with("h2", &["--ignore-certificate-errors"]);
    let base = format!("https://{}", server.addr());

    let mut echo = echo_page(&browser, &format!("{base}/client.html"), "héllo over HTTP/2");
    let mut inc = browser.open(&format!("{base}/increment.html"));
    inc.wait_for(
        "Number(document.getElementById('counter').textContent) >= 5",
        WAIT,
    );
    click(&mut echo, "disconnect");
    click(&mut inc, "disconnect");
    echo.wait_for(
        "document.getElementById('status').textContent === 'disconnected'",
        WAIT,
    );
    drop(browser);
    let access = std::fs::read_to_string(server.config().root().join("logs/access.log")).unwrap();
    for path in ["/echo", "/dumb-increment"] {
        assert!(
            // Our 101, which mod_http2 sent on as the stream's 200.
            access.contains(&format!("\"GET {path} HTTP/2.0\" 101")),
            "{path} was not a WebSocket over HTTP/2:\n{access}"
        );
    }
    finish(server);
}
