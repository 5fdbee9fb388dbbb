//! A real browser for the example pages: Debian's Chromium, headless, on
//! 127.0.0.1, driven over the Chrome DevTools Protocol with the WebSocket
//! client the tests already use (no WebDriver needed).
//!
//! Without Chromium, [`Browser::start`] says so and the tests skip, unless
//! `WEBSOCKET_REQUIRE_CHROMIUM` is set (as `cargo xtask test` does): then
//! they fail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium of the test's own, with a fresh profile; killed on drop.
pub struct Browser {
    child: Child,
    port: u16,
    profile: PathBuf,
}

/// One tab.
pub struct Page {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// Whether Chromium is here; false (after saying so) when the tests should
/// skip for want of it.
pub fn available() -> bool {
    if Path::new(CHROMIUM).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("WEBSOCKET_REQUIRE_CHROMIUM").is_none(),
        "{CHROMIUM} is missing (Debian: chromium) and WEBSOCKET_REQUIRE_CHROMIUM is set"
    );
    eprintln!("skipped: {CHROMIUM} is missing (Debian: chromium)");
    false
}

/// A plain HTTP exchange with the DevTools endpoint.
fn devtools_http(port: u16, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to DevTools");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

impl Browser {
    pub fn start(name: &str) -> Browser {
        Browser::start_with(name, &[])
    }

    /// As [`Browser::start`], with more command-line switches.
    pub fn start_with(name: &str, switches: &[&str]) -> Browser {
        let profile = httpd_runner::scratch_dir(&format!("chromium-{name}"));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(profile.join("chromium.log")).unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .args(switches)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let mut browser = Browser {
            child,
            port: 0,
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let file = browser.profile.join("DevToolsActivePort");
        loop {
            if let Some(port) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                browser.port = port;
                return browser;
            }
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!("chromium exited ({status}):\n{}", browser.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not start:\n{}",
                browser.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What Chromium printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.join("chromium.log")).unwrap_or_default()
    }

    /// A new tab at `url`, once its page has loaded.
    pub fn open(&self, url: &str) -> Page {
        let body = devtools_http(self.port, "PUT", &format!("/json/new?{url}"));
        let target: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("DevTools said {body:?}: {e}"));
        let ws = target["webSocketDebuggerUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("no debugger URL in {target}"));
        let (socket, _) = tungstenite::connect(ws).expect("attach to the tab");
        if let MaybeTlsStream::Plain(s) = socket.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut page = Page { socket, next_id: 1 };
        page.wait_for("document.readyState === 'complete'", Duration::from_secs(20));
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Page {
    /// The value of a JavaScript expression (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let call = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true, "awaitPromise": true },
        });
        self.socket
            .send(Message::text(call.to_string()))
            .expect("send to DevTools");
        loop {
            let msg = self.socket.read().expect("read from DevTools");
            let Message::Text(text) = msg else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if reply["id"].as_u64() != Some(id) {
                continue; // an event
            }
            if let Some(exception) = reply["result"].get("exceptionDetails") {
                panic!("{expression} threw: {exception}");
            }
            return reply["result"]["result"]["value"].clone();
        }
    }

    /// Waits until `condition` (a JavaScript expression) is true.
    pub fn wait_for(&mut self, condition: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(&format!("!!({condition})")) == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {condition}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of the element `id`.
    pub fn text_of(&mut self, id: &str) -> String {
        self.eval(&format!("document.getElementById({id:?}).textContent"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
