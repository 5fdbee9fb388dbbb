//! mod_websocket_draft76 next to mod_websocket: raw-socket draft-76 and
//! draft-75 clients and an RFC 6455 client on the same `<Location>`s, under
//! each MPM; and without the legacy module, no legacy handshake succeeds.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use integration_tests::tungstenite::Message;
use integration_tests::*;

/// The example handshake of draft-hixie-thewebsocketprotocol-76 §1.3/§5.
const KEY1: &str = "4 @1  46546xW%0l 1 5";
const KEY2: &str = "12998 5 Y3 1  .P00";
const KEY3: &[u8; 8] = b"^n:ds[4U";
/// Its published answer.
const ANSWER: &[u8; 16] = b"8jKS'y:G*Co,Wxa-";

fn legacy_module() -> std::path::PathBuf {
    let path = stage().dir.join("modules/mod_websocket_draft76.so");
    assert!(
        path.is_file(),
        "{} is missing; run `cargo xtask build`",
        path.display()
    );
    path
}

fn locations() -> String {
    [
        echo_location("/echo", ""),
        echo_location("/echo75", "    SupportDraft75 On"),
        echo_location("/small", "    MaxMessageSize 1000"),
    ]
    .concat()
}

fn config(name: &str, mpm: Mpm) -> ServerConfig {
    server_config(name, mpm, &locations())
        .load_module("websocket_draft76_module", legacy_module())
        .log_level("warn websocket:debug websocket_draft76:debug")
}

/// A draft-75/76 client over a raw socket.
struct Legacy {
    stream: TcpStream,
    response: RawResponse,
    /// Bytes read past the response head and not consumed yet.
    buf: Vec<u8>,
}

#[derive(Clone)]
struct LegacyRequest {
    path: String,
    origin: Option<String>,
    protocol: Option<String>,
    /// draft-76 keys; `None` makes a draft-75 request.
    keys: Option<(String, String, [u8; 8])>,
    /// Sends key3 in a TCP write of its own after a pause.
    key3_later: bool,
}

impl LegacyRequest {
    fn draft76(server: &RunningServer, path: &str) -> LegacyRequest {
        LegacyRequest {
            path: path.into(),
            origin: Some(format!("http://127.0.0.1:{}", server.port())),
            protocol: None,
            keys: Some((KEY1.into(), KEY2.into(), *KEY3)),
            key3_later: false,
        }
    }

    fn draft75(server: &RunningServer, path: &str) -> LegacyRequest {
        LegacyRequest {
            keys: None,
            ..LegacyRequest::draft76(server, path)
        }
    }

    fn origin(mut self, origin: &str) -> LegacyRequest {
        self.origin = Some(origin.into());
        self
    }

    fn protocol(mut self, protocol: &str) -> LegacyRequest {
        self.protocol = Some(protocol.into());
        self
    }

    fn key3_later(mut self) -> LegacyRequest {
        self.key3_later = true;
        self
    }

    /// The request head, in the order and spelling of the drafts' examples.
    fn head(&self, port: u16) -> String {
        let mut t = format!(
            "GET {} HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: 127.0.0.1:{port}\r\n",
            self.path
        );
        if let Some(origin) = &self.origin {
            t.push_str(&format!("Origin: {origin}\r\n"));
        }
        if let Some((k1, k2, _)) = &self.keys {
            t.push_str(&format!(
                "Sec-WebSocket-Key1: {k1}\r\nSec-WebSocket-Key2: {k2}\r\n"
            ));
        }
        if let Some(p) = &self.protocol {
            let name = if self.keys.is_some() {
                "Sec-WebSocket-Protocol"
            } else {
                "WebSocket-Protocol"
            };
            t.push_str(&format!("{name}: {p}\r\n"));
        }
        t.push_str("\r\n");
        t
    }

    /// Sends the request; returns the connection and the response head.
    fn send(&self, server: &RunningServer) -> Legacy {
        let mut stream = connect(server);
        let mut bytes = self.head(server.port()).into_bytes();
        match &self.keys {
            Some((_, _, key3)) if self.key3_later => {
                stream.write_all(&bytes).unwrap();
                thread::sleep(Duration::from_millis(300));
                stream.write_all(key3).unwrap();
            }
            Some((_, _, key3)) => {
                bytes.extend_from_slice(key3);
                stream.write_all(&bytes).unwrap();
            }
            None => stream.write_all(&bytes).unwrap(),
        }
        let response = read_response(&mut stream).unwrap_or_else(|e| {
            panic!(
                "no response to {:?}: {e}\n{}",
                self.head(server.port()),
                server.logs()
            )
        });
        Legacy {
            buf: response.rest.clone(),
            stream,
            response,
        }
    }

    /// Sends the request and checks the 101 and its answer; returns the open
    /// connection.
    fn open(&self, server: &RunningServer) -> Legacy {
        let mut c = self.send(server);
        let port = server.port();
        let r = c.response.clone();
        let (status_line, prefix) = match self.keys {
            Some(_) => ("HTTP/1.1 101 WebSocket Protocol Handshake", "Sec-WebSocket-"),
            None => ("HTTP/1.1 101 Web Socket Protocol Handshake", "WebSocket-"),
        };
        assert_eq!(r.status_line, status_line, "{r:?}\n{}", server.logs());
        r.assert_upgrade_headers();
        // The drafts' clients compare the whole value.
        assert!(
            r.header("Connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
            "{r:?}"
        );
        let origin = self.origin.as_deref();
        assert_eq!(r.header(&format!("{prefix}Origin")), origin, "{r:?}");
        let location = format!("ws://127.0.0.1:{port}{}", self.path);
        assert_eq!(
            r.header(&format!("{prefix}Location")),
            Some(location.as_str()),
            "{r:?}"
        );
        assert_eq!(
            r.header(&format!("{prefix}Protocol")),
            self.protocol.as_deref(),
            "{r:?}"
        );
        if self.keys.is_some() {
            // Only the other draft's headers would confuse a client.
            assert_eq!(r.header("WebSocket-Origin"), None, "{r:?}");
            assert_eq!(r.header("WebSocket-Location"), None, "{r:?}");
            let answer = c.take(16);
            assert_eq!(&answer[..], ANSWER, "the draft-76 challenge answer");
        } else {
            assert_eq!(r.header("Sec-WebSocket-Origin"), None, "{r:?}");
            assert_eq!(r.header("Sec-WebSocket-Location"), None, "{r:?}");
        }
        assert_eq!(c.response.header("Sec-WebSocket-Accept"), None, "{r:?}");
        // Nothing else may follow the answer (no body, no chunk trailer): the
        // next bytes must be the first frame, which `echo` checks.
        c
    }
}

impl Legacy {
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next `n` bytes from the server.
    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            self.fill()
                .unwrap_or_else(|e| panic!("reading {n} bytes (have {:?}): {e}", self.buf));
        }
        self.buf.drain(..n).collect()
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    fn send_text(&mut self, text: &str) {
        self.send_raw(&frame(text.as_bytes()));
    }

    /// Reads one `0x00 <text> 0xFF` frame.
    fn read_text(&mut self) -> String {
        let first = self.take(1)[0];
        assert_eq!(
            first, 0x00,
            "expected a text frame, got byte {first:#04x} ({:?})",
            self.buf
        );
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == 0xFF) {
                let text: Vec<u8> = self.buf.drain(..=end).collect();
                return String::from_utf8(text[..end].to_vec()).expect("the server sent invalid UTF-8");
            }
            self.fill()
                .unwrap_or_else(|e| panic!("reading a text frame: {e}"));
        }
    }

    /// Sends `text` and expects it back, and nothing before it.
    fn echo(&mut self, text: &str) {
        self.send_text(text);
        assert_eq!(self.read_text(), text);
    }

    /// Everything the server sends until it closes the connection (within
    /// `within`, or the test fails).
    fn rest_until_eof(&mut self, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut out = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return out,
                Err(e) => {
                    panic!("the server did not close the connection within {within:?}: {e} (got {out:?})")
                }
            }
            assert!(Instant::now() < deadline, "the server kept the connection open");
        }
    }

    /// The server answers with a closing frame and ends the connection.
    fn expect_closing(&mut self, what: &str) {
        let rest = self.rest_until_eof(Duration::from_secs(5));
        assert_eq!(
            rest,
            [0xFF, 0x00],
            "{what}: expected the closing frame, then the end"
        );
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x00];
    f.extend_from_slice(payload);
    f.push(0xFF);
    f
}

fn suite(mpm: Mpm) {
    let mut cfg = config("draft76", mpm);
    match cfg.configtest() {
        Ok(out) => assert!(
            out.trim() == "Syntax OK",
            "configtest is not clean with both modules loaded:\n{out}"
        ),
        Err(out) => panic!("configtest failed with both modules loaded:\n{out}"),
    }
    let server = start(cfg);

    spec_handshake(&server);
    echoes(&server);
    closing(&server);
    failures(&server);
    draft75(&server);
    rfc6455_on_the_same_locations(&server);
    origin_policy(&server);

    finish(server);
}

/// The draft's own example: its keys give its published answer, and the
/// subprotocol is confirmed.
fn spec_handshake(server: &RunningServer) {
    let mut c = LegacyRequest::draft76(server, "/echo")
        .protocol("sample")
        .open(server);
    c.echo("after the spec handshake");
    c.send_raw(&[0xFF, 0x00]);
    c.expect_closing("spec handshake");

    // key3 arriving in a later TCP segment than the headers.
    let mut c = LegacyRequest::draft76(server, "/echo").key3_later().open(server);
    c.echo("key3 came late");
    c.send_raw(&[0xFF, 0x00]);
    c.expect_closing("late key3");

    // Other keys: the answer is the MD5 of the two numbers and key3.
    let mut req = LegacyRequest::draft76(server, "/echo");
    // 1 space, number 1234; 2 spaces, number 2*4321.
    req.keys = Some(("12 34".into(), "8 6 42".into(), *b"abcdefgh"));
    let mut c = req.send(server);
    assert_eq!(c.response.status, 101, "{:?}", c.response);
    let expected = websocket_proto::legacy::draft76_answer("12 34", "8 6 42", b"abcdefgh").unwrap();
    assert_eq!(c.take(16), expected.to_vec());
    c.send_raw(&[0xFF, 0x00]);
    c.expect_closing("other keys");

    // Keys whose numbers are not multiples of their spaces are refused.
    let mut bad = LegacyRequest::draft76(server, "/echo");
    bad.keys = Some(("1 2 3".into(), KEY2.into(), *KEY3));
    let r = bad.send(server).response;
    assert_eq!(r.status, 400, "{r:?}");
}

fn echoes(server: &RunningServer) {
    let mut c = LegacyRequest::draft76(server, "/echo").open(server);
    c.echo("Hello");
    c.echo("");
    c.echo("héllo wörld — 日本語 🎉 ∑");
    let long: String = "aé日🎉".chars().cycle().take(20_000).collect();
    c.echo(&long);

    // Several messages in one write come back in order.
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend_from_slice(&frame(format!("pipelined {i} ✓").as_bytes()));
    }
    c.send_raw(&batch);
    for i in 0..20 {
        assert_eq!(c.read_text(), format!("pipelined {i} ✓"));
    }

    // One message across TCP writes, split inside a multi-byte character.
    let text = "split: ü€𝄞 across writes";
    let f = frame(text.as_bytes());
    let cut = 9; // inside "ü"
    assert!(!text.is_char_boundary(cut - 1), "the cut must split a character");
    c.send_raw(&f[..cut]);
    thread::sleep(Duration::from_millis(100));
    c.send_raw(&f[cut..cut + 5]);
    thread::sleep(Duration::from_millis(100));
    c.send_raw(&f[cut + 5..]);
    assert_eq!(c.read_text(), text);

    // One byte per write.
    let text = "drip ✓ 日本";
    for b in frame(text.as_bytes()) {
        c.send_raw(&[b]);
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.read_text(), text);

    // Legacy frames with a length prefix (type 0x80..0xFE) carry no
    // message; they are skipped and the connection goes on.
    c.send_raw(&[0x80, 0x03, b'a', b'b', b'c']);
    c.echo("after a length-prefixed frame");
    c.send_raw(&[0xFF, 0x00]);
    c.expect_closing("echoes");
}

fn closing(server: &RunningServer) {
    // The closing frame in the same write as a message: the message is
    // echoed, then the close is answered.
    let mut c = LegacyRequest::draft76(server, "/echo").open(server);
    let mut bytes = frame(b"last words");
    bytes.extend_from_slice(&[0xFF, 0x00]);
    c.send_raw(&bytes);
    let rest = c.rest_until_eof(Duration::from_secs(5));
    let mut expected = frame(b"last words");
    expected.extend_from_slice(&[0xFF, 0x00]);
    assert_eq!(rest, expected, "echo then closing frame then EOF");

    // A client that just vanishes.
    let mut c = LegacyRequest::draft76(server, "/echo").open(server);
    c.echo("then gone");
    drop(c);
}

fn failures(server: &RunningServer) {
    // Invalid UTF-8 ends the connection.
    let mut c = LegacyRequest::draft76(server, "/echo").open(server);
    c.echo("valid first");
    c.send_raw(&[0x00, b'b', b'a', b'd', 0xC3, 0x28, 0xFF]);
    c.expect_closing("invalid UTF-8");
    // Also when the bad byte comes alone (an overlong encoding).
    let mut c = LegacyRequest::draft76(server, "/echo").open(server);
    c.send_raw(&[0x00, 0xC0]);
    thread::sleep(Duration::from_millis(50));
    c.send_raw(&[0x80, 0xFF]);
    c.expect_closing("overlong UTF-8 across writes");

    // MaxMessageSize 1000: 1000 bytes pass, 1001 close the connection.
    let mut c = LegacyRequest::draft76(server, "/small").open(server);
    c.echo(&"x".repeat(1000));
    c.echo(&"é".repeat(500));
    c.send_text(&"y".repeat(1001));
    c.expect_closing("1001 bytes over MaxMessageSize 1000");
    // Enforced while reading: a message that never ends is cut once it is
    // over the limit, without waiting for its end.
    let mut c = LegacyRequest::draft76(server, "/small").open(server);
    let mut endless = vec![0x00];
    endless.extend_from_slice(&[b'z'; 4000]);
    c.send_raw(&endless);
    c.expect_closing("an unterminated message over the limit");
    let log = wait_for_log(server, "invalid UTF-8", Duration::from_secs(5));
    assert!(log.contains("maximum message size"), "{log}");
}

fn draft75(server: &RunningServer) {
    // Where SupportDraft75 is On.
    let mut c = LegacyRequest::draft75(server, "/echo75").open(server);
    assert!(c.buf.is_empty(), "draft-75 has no challenge answer: {:?}", c.buf);
    c.echo("draft-75 ✓");
    c.echo("");
    c.send_raw(&[0xFF, 0x00]);
    c.expect_closing("draft-75 close");
    let mut c = LegacyRequest::draft75(server, "/echo75")
        .protocol("sample")
        .open(server);
    c.echo("with a protocol");
    drop(c);
    // draft-76 works there too.
    let mut c = LegacyRequest::draft76(server, "/echo75").open(server);
    c.echo("draft-76 where draft-75 is on");
    drop(c);

    // Elsewhere it is refused.
    for path in ["/echo", "/small"] {
        let r = LegacyRequest::draft75(server, path).send(server).response;
        assert_eq!(r.status, 400, "draft-75 on {path}: {r:?}");
        assert_eq!(r.header("WebSocket-Location"), None, "{r:?}");
    }
}

fn rfc6455_on_the_same_locations(server: &RunningServer) {
    for path in ["/echo", "/echo75", "/small"] {
        let mut c = ws_connect(server, path);
        assert_echo(&mut c, Message::text(format!("RFC 6455 on {path} ✓")));
        assert_echo(&mut c, Message::binary(vec![0u8, 0xFF, 0x00, 7]));
        close_client(c);
    }
    // Interleaved with a legacy connection on the same location.
    let mut legacy = LegacyRequest::draft76(server, "/echo").open(server);
    let mut rfc = ws_connect(server, "/echo");
    for i in 0..5 {
        legacy.echo(&format!("legacy {i}"));
        assert_echo(&mut rfc, Message::text(format!("rfc {i}")));
    }
    close_client(rfc);
    legacy.send_raw(&[0xFF, 0x00]);
    legacy.expect_closing("interleaved");
}

fn origin_policy(server: &RunningServer) {
    let r = LegacyRequest::draft76(server, "/echo")
        .origin("http://evil.example")
        .send(server)
        .response;
    assert_eq!(r.status, 403, "cross-origin draft-76: {r:?}");
    // The draft requires an Origin.
    let mut no_origin = LegacyRequest::draft76(server, "/echo");
    no_origin.origin = None;
    let r = no_origin.send(server).response;
    assert_eq!(r.status, 400, "draft-76 without Origin: {r:?}");
}

#[test]
fn draft76_event() {
    suite(Mpm::Event);
}

#[test]
fn draft76_worker() {
    suite(Mpm::Worker);
}

#[test]
fn draft76_prefork() {
    suite(Mpm::Prefork);
}

/// Without the legacy module a draft-76 handshake gets no 101 (mod_websocket
/// declines it), while RFC 6455 clients are served as before.
#[test]
fn without_the_legacy_module() {
    // As an administrator would write it: the legacy switch only where the
    // module is loaded.
    let config = locations().replace(
        "    SupportDraft75 On",
        "    <IfModule websocket_draft76_module>\n        SupportDraft75 On\n    </IfModule>",
    );
    let server = start_server("draft76-absent", Mpm::Event, &config);
    for req in [
        LegacyRequest::draft76(&server, "/echo"),
        LegacyRequest::draft75(&server, "/echo75"),
    ] {
        let c = req.send(&server);
        assert_ne!(c.response.status, 101, "{:?}", c.response);
        assert!(
            !c.buf.starts_with(ANSWER),
            "a challenge answer came without the legacy module: {:?}",
            c.response
        );
    }
    let mut c = ws_connect(&server, "/echo");
    assert_echo(&mut c, Message::text("RFC 6455 without the legacy module"));
    close_client(c);
    finish(server);
}
