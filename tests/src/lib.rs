//! Shared helpers for the integration tests: where the staged modules are,
//! starting an Apache httpd with WebSocket locations under a given MPM, a
//! raw-socket client for malformed input and frame-level checks, a
//! tungstenite client for the ordinary cases, and the C test plugin.
//!
//! The staged modules come from `cargo xtask build`; `WEBSOCKET_STAGE_DIR`
//! says where they are (default `<workspace>/target/apache`). A missing stage
//! fails the test with a message saying how to make it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use certs::{test_certs, Certs, CLIENT_DN};
pub use httpd_runner::{Mpm, RunningServer, ServerConfig};
pub use tungstenite;

pub mod browser;
pub mod certs;
pub mod rfc8441;
pub mod wss;

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::{Request, Response};
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};
use websocket_proto::encoder::write_masked_frame;
use websocket_proto::frame::FrameHeader;
use websocket_proto::Opcode;

/// The sample key of RFC 6455 §1.3 and the answer it must get.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// How long any single read or write may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Log lines that mean a worker crashed or the module panicked.
const CRASH_MARKERS: &[&str] = &[
    "AH00052",
    "Segmentation fault",
    "exit signal",
    "panicked at",
    "(panic)",
];

// ---------------------------------------------------------------------------
// The stage

/// What `cargo xtask build` staged.
#[derive(Debug)]
pub struct Stage {
    pub dir: PathBuf,
}

impl Stage {
    pub fn module(&self) -> PathBuf {
        self.dir.join("modules/mod_websocket.so")
    }

    pub fn echo_plugin(&self) -> PathBuf {
        self.dir.join("modules/mod_websocket_echo.so")
    }

    pub fn dumb_increment_plugin(&self) -> PathBuf {
        self.dir.join("modules/mod_websocket_dumb_increment.so")
    }

    pub fn whoami_plugin(&self) -> PathBuf {
        self.dir.join("modules/mod_websocket_whoami.so")
    }

    pub fn include_dir(&self) -> PathBuf {
        self.dir.join("include")
    }
}

/// The workspace root (the parent of this package).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The stage, checked once: every test fails (rather than skips) when the
/// modules have not been built.
pub fn stage() -> &'static Stage {
    static STAGE: OnceLock<Stage> = OnceLock::new();
    STAGE.get_or_init(|| {
        let dir = std::env::var_os("WEBSOCKET_STAGE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_dir().join("target/apache"));
        let stage = Stage { dir };
        let missing: Vec<String> = [
            stage.module(),
            stage.echo_plugin(),
            stage.dumb_increment_plugin(),
            stage.whoami_plugin(),
            stage.include_dir().join("websocket_plugin.h"),
        ]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
        assert!(
            missing.is_empty(),
            "the staged modules are missing ({}); run `cargo xtask build` first \
             (or set WEBSOCKET_STAGE_DIR to the stage directory)",
            missing.join(", ")
        );
        stage
    })
}

/// The C test plugin (tests/c-plugin/test_plugin.c) compiled against the
/// staged header into a world-readable shared library, once per process.
pub fn c_plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| build_c_test_plugin("c-plugin", &stage().include_dir()))
}

/// The same C test plugin compiled against the header as it was before any
/// function was appended to `WebSocketServer`
/// (tests/c-plugin/original-header): what a plugin built for the original
/// module is.
pub fn c_plugin_original_header() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("c-plugin/original-header");
        build_c_test_plugin("c-plugin-original-header", &include)
    })
}

fn build_c_test_plugin(name: &str, include_dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("c-plugin/test_plugin.c");
    let dir = httpd_runner::scratch_dir(name);
    std::fs::create_dir_all(&dir).expect("create the C plugin directory");
    let out = dir.join("test_plugin.so");
    compile_c_plugin_with(&source, &out, include_dir);
    make_world_readable(&dir, &out);
    out
}

/// Compiles a C plugin against the staged `websocket_plugin.h` into a
/// shared library, warnings as errors; panics with the compiler's output.
pub fn compile_c_plugin(source: &Path, out: &Path) {
    compile_c_plugin_with(source, out, &stage().include_dir())
}

/// Compiles a C plugin against the `websocket_plugin.h` in `include_dir`.
pub fn compile_c_plugin_with(source: &Path, out: &Path, include_dir: &Path) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let result = Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-O1", "-pthread",
        ])
        .arg("-I")
        .arg(include_dir)
        .arg("-o")
        .arg(out)
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        result.status.success(),
        "compiling {} failed:\n{}{}",
        source.display(),
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

#[cfg(unix)]
fn make_world_readable(dir: &Path, file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(dir, 0o755), (file, 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
}

#[cfg(not(unix))]
fn make_world_readable(_dir: &Path, _file: &Path) {}

// ---------------------------------------------------------------------------
// Servers

/// A `<Location>` served by the echo plugin, with extra directives.
pub fn echo_location(path: &str, directives: &str) -> String {
    plugin_location(path, &stage().echo_plugin(), "echo_init", directives)
}

/// A `<Location>` served by the dumb-increment plugin.
pub fn dumb_increment_location(path: &str) -> String {
    plugin_location(path, &stage().dumb_increment_plugin(), "dumb_increment_init", "")
}

/// A `<Location>` with `SetHandler websocket-handler` and the given plugin.
pub fn plugin_location(path: &str, library: &Path, init: &str, directives: &str) -> String {
    format!(
        "<Location {path}>\n    SetHandler websocket-handler\n    \
         WebSocketHandler \"{}\" {init}\n{directives}\n</Location>\n",
        library.display()
    )
}

/// Adds Debian's own build of each module in `names` (`"ssl"`, `"env"`, ...)
/// to the configuration.
pub fn with_system_modules(mut config: ServerConfig, names: &[&str]) -> ServerConfig {
    let install = httpd_runner::Install::discover().expect("find the installed httpd");
    for name in names {
        let path = install.module_path(name);
        assert!(
            path.is_file(),
            "{} is missing (Debian's apache2 ships it)",
            path.display()
        );
        config = config.load_module(&format!("{name}_module"), path);
    }
    config
}

/// A configuration with mod_websocket loaded and `config` appended, rooted
/// in a fresh scratch directory named after `name` and the MPM.
pub fn server_config(name: &str, mpm: Mpm, config: &str) -> ServerConfig {
    let root = httpd_runner::scratch_dir(&format!("it-{name}-{mpm}"));
    ServerConfig::new(root)
        .mpm(mpm)
        .load_module("websocket_module", stage().module())
        .log_level("warn websocket:debug")
        .extra_config(config)
}

/// A configuration (as [`server_config`], event MPM) whose `/ws` location
/// has `SetHandler websocket-handler` and `directives`.
pub fn handler_location_config(name: &str, directives: &str) -> ServerConfig {
    server_config(
        name,
        Mpm::Event,
        &format!("<Location /ws>\n    SetHandler websocket-handler\n{directives}\n</Location>\n"),
    )
}

/// `httpd -t` on `config` must fail, its output naming every one of
/// `expected`; returns the output. `what` (the directives, say) is what
/// should have been refused.
#[track_caller]
pub fn assert_configtest_fails(mut config: ServerConfig, what: &str, expected: &[&str]) -> String {
    match config.configtest() {
        Ok(out) => panic!("{what:?} was accepted:\n{out}"),
        Err(out) => {
            for e in expected {
                assert!(
                    out.contains(e),
                    "the error for {what:?} does not mention {e:?}:\n{out}"
                );
            }
            out
        }
    }
}

/// `httpd -t` with `directives` in a WebSocket location must fail, naming
/// every one of `expected`.
#[track_caller]
pub fn rejected(name: &str, directives: &str, expected: &[&str]) {
    assert_configtest_fails(handler_location_config(name, directives), directives, expected);
}

/// Starts a server with mod_websocket and `config` (usually `<Location>`s).
pub fn start_server(name: &str, mpm: Mpm, config: &str) -> RunningServer {
    start(server_config(name, mpm, config))
}

/// Starts a configured server, failing the test with its logs if it cannot.
pub fn start(config: ServerConfig) -> RunningServer {
    let root = config.root().to_path_buf();
    config
        .start()
        .unwrap_or_else(|e| panic!("cannot start httpd in {}: {e}", root.display()))
}

/// Fails if the error log shows a crashed worker or a panic.
pub fn assert_no_crash(server: &RunningServer) {
    let log = server.error_log();
    for marker in CRASH_MARKERS {
        assert!(
            !log.contains(marker),
            "the error log contains {marker:?}:\n{}",
            server.logs()
        );
    }
}

/// Checks the log, stops the server, and checks the log again: a worker
/// that crashes while shutting down a session shows up only then.
pub fn finish(server: RunningServer) {
    assert_no_crash(&server);
    let log_path = server.config().error_log_path();
    // Graceful: Apache's immediate stop can crash a threaded MPM's child by
    // itself (see RunningServer::graceful_stop), which would hide ours.
    let stopped = server.graceful_stop();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    match stopped {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("httpd did not stop gracefully ({status}):\n{log}"),
        Err(e) => panic!("stopping httpd failed: {e}\n{log}"),
    }
    for marker in CRASH_MARKERS {
        assert!(
            !log.contains(marker),
            "after stopping, the error log contains {marker:?}:\n{log}"
        );
    }
}

/// Waits until the error log contains `needle`; returns the log.
pub fn wait_for_log(server: &RunningServer, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let log = server.error_log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the error log does not contain {needle:?} after {timeout:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Raw sockets

/// A TCP connection to the server with the test timeouts.
pub fn connect(server: &RunningServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr())
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", server.addr()));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// An HTTP response head as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Whatever followed the head in the same reads (frames after a 101, or
    /// the start of a body).
    pub rest: Vec<u8>,
}

impl RawResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts that header `name` is `expected` (`None`: absent); on failure
    /// shows `what` (the case) and the whole response.
    #[track_caller]
    pub fn assert_header(&self, name: &str, expected: Option<&str>, what: &str) {
        assert_eq!(self.header(name), expected, "{what}: {name} in {self:?}");
    }

    /// Asserts the headers that make a 101 an upgrade: `Upgrade: websocket`
    /// and a `Connection` that names `upgrade` (both case-insensitive).
    #[track_caller]
    pub fn assert_upgrade_headers(&self) {
        assert!(
            self.header("Upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
            "{self:?}"
        );
        assert!(
            self.header("Connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
            "{self:?}"
        );
    }
}

/// Reads a response head from `stream`.
pub fn read_response(stream: &mut TcpStream) -> io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before the end of the response head: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let rest = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(RawResponse {
        status_line,
        status,
        headers,
        rest,
    })
}

/// An opening handshake request, written by hand so that any part of it can
/// be wrong. Defaults: `GET <path> HTTP/1.1` with Host, `Upgrade: websocket`,
/// `Connection: Upgrade`, the RFC sample key and version 13.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub method: String,
    pub path: String,
    pub http_version: String,
    headers: Vec<(String, String)>,
}

impl Handshake {
    pub fn new(path: &str) -> Handshake {
        Handshake {
            method: "GET".into(),
            path: path.into(),
            http_version: "HTTP/1.1".into(),
            headers: vec![
                ("Upgrade".into(), "websocket".into()),
                ("Connection".into(), "Upgrade".into()),
                ("Sec-WebSocket-Key".into(), RFC_KEY.into()),
                ("Sec-WebSocket-Version".into(), "13".into()),
            ],
        }
    }

    pub fn method(mut self, method: &str) -> Handshake {
        self.method = method.into();
        self
    }

    pub fn http_version(mut self, version: &str) -> Handshake {
        self.http_version = version.into();
        self
    }

    /// Sets a header, replacing any header of that name.
    pub fn header(mut self, name: &str, value: &str) -> Handshake {
        self = self.without(name);
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds one more header line, keeping any of the same name (a client
    /// that splits a list over several lines).
    pub fn also(mut self, name: &str, value: &str) -> Handshake {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Removes a header.
    pub fn without(mut self, name: &str) -> Handshake {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// The request text for a server on `port`.
    pub fn text(&self, port: u16) -> String {
        let mut t = format!("{} {} {}\r\n", self.method, self.path, self.http_version);
        if !self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Host")) {
            t.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
        }
        for (n, v) in &self.headers {
            t.push_str(&format!("{n}: {v}\r\n"));
        }
        t.push_str("\r\n");
        t
    }

    /// Sends the request on a new connection; returns the connection.
    pub fn send(&self, server: &RunningServer) -> RawClient {
        let mut stream = connect(server);
        stream
            .write_all(self.text(server.port()).as_bytes())
            .expect("send the handshake");
        let response = read_response(&mut stream).unwrap_or_else(|e| {
            panic!(
                "no response to {:?}: {e}\n{}",
                self.text(server.port()),
                server.logs()
            )
        });
        RawClient {
            buf: response.rest.clone(),
            stream,
            response,
        }
    }

    /// Sends the request and returns the response head only.
    pub fn response(&self, server: &RunningServer) -> RawResponse {
        self.send(server).response
    }

    /// Sends the request and asserts a 101.
    pub fn open(&self, server: &RunningServer) -> RawClient {
        let client = self.send(server);
        assert_eq!(
            client.response.status,
            101,
            "handshake {:?} refused: {:?}\n{}",
            self.text(server.port()),
            client.response,
            server.logs()
        );
        client
    }
}

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == Opcode::Close as u8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).expect("text frame is UTF-8")
    }
}

/// Reads the next frame the server sends on `stream` (a socket, or an
/// HTTP/2 stream), keeping what follows it in `buf`.
pub fn read_server_frame(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Frame> {
    loop {
        let parsed = FrameHeader::parse(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("server frame: {e:?}")))?;
        if let Some((h, len)) = parsed {
            let total = len as u64 + h.payload_len;
            if buf.len() as u64 >= total {
                let mut payload = buf[len..total as usize].to_vec();
                buf.drain(..total as usize);
                if let Some(key) = h.mask {
                    for (i, b) in payload.iter_mut().enumerate() {
                        *b ^= key[i % 4];
                    }
                }
                return Ok(Frame {
                    fin: h.fin,
                    rsv: h.rsv,
                    opcode: h.opcode,
                    masked: h.mask.is_some(),
                    payload,
                });
            }
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A WebSocket client that writes frames by hand and reads the server's
/// frames one by one.
#[derive(Debug)]
pub struct RawClient {
    pub stream: TcpStream,
    pub response: RawResponse,
    buf: Vec<u8>,
}

/// The masking key raw clients use: not zero, so unmasking matters.
pub const MASK_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame with any opcode nibble and RSV bits.
pub fn client_frame(opcode: u8, fin: bool, rsv: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    write_masked_frame(&mut out, Opcode::Binary, fin, payload, MASK_KEY);
    out[0] = (out[0] & 0x80) | (rsv & 0x70) | (opcode & 0x0f);
    out
}

/// A close frame payload: code then reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

impl RawClient {
    /// Opens a WebSocket to `path` with the default handshake.
    pub fn open(server: &RunningServer, path: &str) -> RawClient {
        Handshake::new(path).open(server)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, opcode: Opcode, fin: bool, payload: &[u8]) {
        let frame = client_frame(opcode as u8, fin, 0, payload);
        self.send_raw(&frame);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(Opcode::Text, true, text.as_bytes());
    }

    /// Sends a text and returns the text message that comes back.
    pub fn ask(&mut self, text: &str) -> String {
        self.send_text(text);
        self.read_text()
    }

    /// Closes with 1000, expects the server's 1000 and the end of the connection.
    pub fn close_normally(mut self) {
        self.send_close(1000, "");
        assert_eq!(self.expect_close(), Some(1000));
        self.expect_eof(Duration::from_secs(5));
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        self.send_frame(Opcode::Close, true, &close_payload(code, reason));
    }

    /// Reads the next frame the server sends.
    pub fn read_frame(&mut self) -> io::Result<Frame> {
        read_server_frame(&mut self.stream, &mut self.buf)
    }

    /// Reads the next frame, failing the test on I/O errors.
    pub fn frame(&mut self) -> Frame {
        self.read_frame()
            .unwrap_or_else(|e| panic!("no frame from the server: {e}"))
    }

    /// Reads a whole text message (one or more frames), answering nothing.
    pub fn read_text(&mut self) -> String {
        let mut data = Vec::new();
        loop {
            let f = self.frame();
            match f.opcode {
                0x1 | 0x0 => {
                    data.extend_from_slice(&f.payload);
                    if f.fin {
                        return String::from_utf8(data).expect("text message is UTF-8");
                    }
                }
                other => panic!("expected a text frame, got opcode {other:#x}: {f:?}"),
            }
        }
    }

    /// Reads frames until a close frame; returns its code. Fails if the
    /// connection ends first.
    pub fn expect_close(&mut self) -> Option<u16> {
        loop {
            let f = self
                .read_frame()
                .unwrap_or_else(|e| panic!("expected a close frame, got an error: {e}"));
            assert!(!f.masked, "the server masked a frame: {f:?}");
            if f.opcode == Opcode::Close as u8 {
                return f.close_code();
            }
        }
    }

    /// Waits until the server closes the TCP connection (EOF or reset);
    /// anything it still sends is discarded.
    pub fn expect_eof(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        self.stream.set_read_timeout(Some(within)).expect("set a timeout");
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return
                }
                Err(e) => panic!("the server did not close the connection within {within:?}: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "the server kept the connection open for {within:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// tungstenite

pub type Client = WebSocket<TcpStream>;

/// A handshake request for `path` on the server, for adding headers.
pub fn client_request(server: &RunningServer, path: &str) -> Request {
    server
        .ws_url(path)
        .into_client_request()
        .expect("a valid WebSocket URL")
}

/// Adds a header to a tungstenite request.
pub fn with_header(mut request: Request, name: &'static str, value: &str) -> Request {
    request
        .headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("header value"));
    request
}

/// Connects with tungstenite; `Err` holds the handshake error.
pub fn try_ws_connect(server: &RunningServer, request: Request) -> Result<(Client, Response), String> {
    let stream = connect(server);
    tungstenite::client(request, stream).map_err(|e| e.to_string())
}

/// Connects to `path` with tungstenite, failing the test if refused.
pub fn ws_connect(server: &RunningServer, path: &str) -> Client {
    ws_connect_request(server, client_request(server, path)).0
}

/// Connects with a prepared request, failing the test if refused.
pub fn ws_connect_request(server: &RunningServer, request: Request) -> (Client, Response) {
    let uri = request.uri().to_string();
    try_ws_connect(server, request)
        .unwrap_or_else(|e| panic!("WebSocket handshake to {uri} failed: {e}\n{}", server.logs()))
}

/// The subprotocol a tungstenite handshake's 101 chose, if any.
pub fn chosen_protocol(response: &Response) -> Option<String> {
    response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().expect("an ASCII subprotocol").to_string())
}

/// Reads the next data message, skipping pongs (tungstenite answers pings
/// itself).
pub fn next_message(client: &mut Client) -> Message {
    loop {
        match client.read() {
            Ok(Message::Pong(_)) | Ok(Message::Ping(_)) => {}
            Ok(m) => return m,
            Err(e) => panic!("reading a message failed: {e}"),
        }
    }
}

/// Reads the next message, which must be text.
pub fn next_text(client: &mut Client) -> String {
    match next_message(client) {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Sends a message and checks that the same message comes back.
pub fn assert_echo(client: &mut Client, message: Message) {
    client.send(message.clone()).expect("send a message");
    let reply = next_message(client);
    assert!(
        reply == message,
        "echo mismatch: sent {} ({} bytes), got {} ({} bytes)",
        kind(&message),
        message.len(),
        kind(&reply),
        reply.len()
    );
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "frame",
    }
}

/// Closes with 1000 and waits for the server's close and the end of the
/// connection.
pub fn close_client(client: Client) {
    close_client_accepting(client, &[tungstenite::protocol::frame::coding::CloseCode::Normal]);
}

/// Closes with 1000 and waits for the server's close, whose code must be
/// one of `codes` (a server that is stopping may cross our close with its
/// own 1001), and the end of the connection.
pub fn close_client_accepting(mut client: Client, codes: &[tungstenite::protocol::frame::coding::CloseCode]) {
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;
    client
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .expect("send a close frame");
    loop {
        match client.read() {
            Ok(Message::Close(Some(f))) => {
                assert!(
                    codes.contains(&f.code),
                    "the server's close code: {:?}, expected one of {codes:?}",
                    f.code
                )
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("closing failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Logs and processes

/// Fails if the error log has a crash line or anything logged at `error`
/// or worse (soak tests want a clean log, not just no crash).
pub fn assert_log_clean(server: &RunningServer) {
    assert_no_crash(server);
    let log = server.error_log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            [":error]", ":crit]", ":alert]", ":emerg]"]
                .iter()
                .any(|lvl| l.contains(lvl))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "the error log has errors:\n{}\n--- whole log:\n{log}",
        bad.join("\n")
    );
}

/// The process ids whose parent is `parent` (from /proc; Linux only).
pub fn child_pids(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may contain spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The server's worker processes (the parent's children).
pub fn worker_pids(server: &RunningServer) -> Vec<u32> {
    child_pids(server.pid())
}

/// A process's resident set size in KiB (`VmRSS` in /proc/<pid>/status);
/// `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------
// Test data

/// A small deterministic generator (xorshift64), so every client's traffic
/// differs, every echo can be checked byte for byte and a failure can be
/// replayed. The seed must not be zero.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `min` to `min + spread` random bytes.
    pub fn sized(&mut self, min: usize, spread: usize) -> Vec<u8> {
        let len = min + self.below(spread as u64 + 1) as usize;
        self.bytes(len)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

// ---------------------------------------------------------------------------
// Plain HTTP

/// A whole HTTP response: status, head (status line and headers), body
/// (chunked bodies decoded).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response header's value (the first, names case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..end]).unwrap_or("");
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        let data = &rest[end + 2..];
        out.extend_from_slice(&data[..n.min(data.len())]);
        rest = data.get(n + 2..).unwrap_or(&[]);
    }
    out
}

/// One HTTP/1.1 request with `Connection: close`; `headers` are whole
/// lines without CRLF. A body gets a `Content-Length` unless `headers`
/// set `Transfer-Encoding` (then it is sent as is).
pub fn http(server: &RunningServer, method: &str, path: &str, headers: &[&str], body: &[u8]) -> HttpResponse {
    let mut stream = connect(server);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        server.port()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    let chunked = headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("transfer-encoding"));
    if !chunked && (!body.is_empty() || method == "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send the request head");
    // The server may answer (413) before it read the body, and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no response head for {method} {path}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rest = &raw[split + 4..];
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    HttpResponse { status, head, body }
}

/// An htpasswd file (bcrypt) for `users`, readable by Apache's workers.
pub fn htpasswd_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("users.htpasswd");
    for (i, (user, password)) in users.iter().enumerate() {
        let out = Command::new("htpasswd")
            .arg(if i == 0 { "-bcB" } else { "-bB" })
            .arg(&file)
            .arg(user)
            .arg(password)
            .output()
            .unwrap_or_else(|e| panic!("cannot run htpasswd (Debian: apache2-utils): {e}"));
        assert!(
            out.status.success(),
            "htpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    file
}
