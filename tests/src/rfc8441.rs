//! An RFC 8441 WebSocket client: extended CONNECT on an HTTP/2 connection
//! (cleartext with prior knowledge, or TLS with ALPN), built on the `h2` crate, with
//! tungstenite doing the WebSocket framing over the stream. It blocks, as
//! the other helpers do: a one-thread tokio runtime drives the HTTP/2
//! connection in the background, and the stream's `Read`/`Write` wait on it.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, Method, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tungstenite::protocol::Role;
use tungstenite::WebSocket;

use crate::IO_TIMEOUT;

/// One HTTP/2 connection to a server; WebSockets are its streams.
pub struct H2Connection {
    rt: Arc<Runtime>,
    send: SendRequest<Bytes>,
    addr: SocketAddr,
}

/// A WebSocket stream's bytes.
pub struct H2Stream {
    rt: Arc<Runtime>,
    send: SendStream<Bytes>,
    recv: RecvStream,
    buf: Bytes,
    /// How long a read or a write waits (a read that times out says
    /// WouldBlock, as a socket with a read timeout does).
    pub timeout: Duration,
}

/// A WebSocket client over an HTTP/2 stream.
pub type H2Client = WebSocket<H2Stream>;

/// What the server answered to an extended CONNECT.
pub struct H2Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The stream, when the answer was 200.
    pub stream: Option<H2Stream>,
}

impl H2Connection {
    /// Connects with prior knowledge (h2c) and waits for the server's
    /// SETTINGS.
    pub fn open(addr: SocketAddr) -> Result<H2Connection, String> {
        H2Connection::open_with(addr, None)
    }

    /// Connects with TLS, offering only "h2" by ALPN, trusting the PEM CA
    /// certificate at `ca`.
    pub fn open_tls(addr: SocketAddr, ca: &Path) -> Result<H2Connection, String> {
        let ca = CertificateDer::from_pem_file(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca).map_err(|e| e.to_string())?;
        let mut config = ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        H2Connection::open_with(addr, Some(Arc::new(config)))
    }

    fn open_with(addr: SocketAddr, tls: Option<Arc<ClientConfig>>) -> Result<H2Connection, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let send = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            match tls {
                None => handshake(tcp, addr).await,
                Some(config) => {
                    let name = ServerName::IpAddress(addr.ip().into());
                    let tls = TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
                    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                        return Err(format!("{addr} did not choose h2 by ALPN"));
                    }
                    handshake(tls, addr).await
                }
            }
        })?;
        Ok(H2Connection {
            rt: Arc::new(rt),
            send,
            addr,
        })
    }

    /// Whether the server offered extended CONNECT (RFC 8441 section 3).
    pub fn offers_websockets(&self) -> bool {
        self.send.is_extended_connect_protocol_enabled()
    }

    /// Opens a stream with `CONNECT :protocol websocket` for `path`, with
    /// `sec-websocket-version: 13` unless `headers` name another, and the
    /// other `headers`.
    pub fn websocket(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<H2Answer, String> {
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(format!("http://{}{path}", self.addr));
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-version"))
        {
            request = request.header("sec-websocket-version", "13");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(()).map_err(|e| e.to_string())?;
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let send = self.send.clone();
        let (status, headers, send, recv) = self.rt.block_on(async move {
            let mut send = send.ready().await.map_err(|e| e.to_string())?;
            let (response, stream) = send
                .send_request(request, false)
                .map_err(|e| format!("sending the CONNECT: {e}"))?;
            let response = tokio::time::timeout(IO_TIMEOUT, response)
                .await
                .map_err(|_| "no answer to the CONNECT".to_string())?
                .map_err(|e| format!("the CONNECT's answer: {e}"))?;
            let (parts, recv) = response.into_parts();
            Ok::<_, String>((parts.status.as_u16(), parts.headers, stream, recv))
        })?;
        let stream = (status == 200).then(|| H2Stream {
            rt: self.rt.clone(),
            send,
            recv,
            buf: Bytes::new(),
            timeout: IO_TIMEOUT,
        });
        Ok(H2Answer {
            status,
            headers,
            stream,
        })
    }
}

/// The HTTP/2 handshake on `io`; the connection is driven by a task of the
/// runtime. Returns once the server's SETTINGS have been read.
async fn handshake<T>(io: T, addr: SocketAddr) -> Result<SendRequest<Bytes>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Browser-sized windows: with the default 64 KiB for the whole
    // connection, one stream's unread data would stall the others.
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(io)
        .await
        .map_err(|e| format!("HTTP/2 handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut send = send
        .ready()
        .await
        .map_err(|e| format!("HTTP/2 connection to {addr}: {e}"))?;
    // SETTINGS_ENABLE_CONNECT_PROTOCOL arrives in the server's first
    // SETTINGS frame, which the connection task reads meanwhile.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !send.is_extended_connect_protocol_enabled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        send = send.ready().await.map_err(|e| e.to_string())?;
    }
    Ok(send)
}

impl H2Stream {
    /// Resets the stream (RST_STREAM with CANCEL), as a browser does when
    /// a page goes away.
    pub fn reset(&mut self) {
        self.send.send_reset(h2::Reason::CANCEL);
        // Let the connection task send it.
        self.rt
            .block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    }
}

impl Read for H2Stream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            let recv = &mut self.recv;
            let timeout = self.timeout;
            let got = self
                .rt
                .block_on(async { tokio::time::timeout(timeout, recv.data()).await });
            match got {
                Err(_) => return Err(io::ErrorKind::WouldBlock.into()),
                Ok(None) => return Ok(0),
                Ok(Some(Err(e))) => return Err(io::Error::other(e)),
                Ok(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.buf = data;
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}

impl Write for H2Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.send.reserve_capacity(data.len());
        let send = &mut self.send;
        let timeout = self.timeout;
        let room = self.rt.block_on(async {
            tokio::time::timeout(timeout, async {
                loop {
                    // poll_capacity reports only capacity that grew since
                    // it last did; what is assigned already is capacity().
                    let assigned = send.capacity();
                    if assigned > 0 {
                        return Some(Ok(assigned));
                    }
                    match poll_fn(|cx| send.poll_capacity(cx)).await {
                        Some(Ok(0)) => continue,
                        other => return other,
                    }
                }
            })
            .await
        });
        let n = match room {
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(None) => return Err(io::ErrorKind::BrokenPipe.into()),
            Ok(Some(Err(e))) => return Err(io::Error::other(e)),
            Ok(Some(Ok(n))) => n.min(data.len()),
        };
        self.send
            .send_data(Bytes::copy_from_slice(&data[..n]), false)
            .map_err(io::Error::other)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A WebSocket over a new stream of `conn`, failing the test unless the
/// server answers 200.
pub fn h2_websocket(conn: &mut H2Connection, path: &str, headers: &[(&str, &str)]) -> H2Client {
    let answer = conn
        .websocket(path, headers)
        .unwrap_or_else(|e| panic!("extended CONNECT to {path}: {e}"));
    assert_eq!(
        answer.status, 200,
        "extended CONNECT to {path}: {:?}",
        answer.headers
    );
    WebSocket::from_raw_socket(answer.stream.expect("a stream"), Role::Client, None)
}
