//! What carries a connection's bytes: a TCP stream (a WebSocket over
//! HTTP/1.1, or mod_echo's raw bytes), or an HTTP/2 stream opened with an
//! RFC 8441 extended CONNECT on an h2c connection of its own.
//!
//! Both offer the same nonblocking calls (`try_read`, `try_write_vectored`,
//! `ready`), so that [`crate::conn::Conn`] drives either the same way. Over
//! HTTP/2 the frames are the stream's DATA: the h2 crate frames them and
//! keeps to the server's flow-control windows; the client gives back its
//! own window as soon as it has copied what arrived.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// The client's receive windows: large, so that the server's DATA is never
/// held back by the client (HTTP/1.1 has no such window either).
const STREAM_WINDOW: u32 = 8 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// The most one write hands to the h2 crate: it copies what it is given.
const H2_WRITE_MAX: usize = 256 * 1024;

pub enum Link {
    Tcp(TcpStream),
    H2(H2Link),
}

impl Link {
    /// Reads what has arrived; `WouldBlock` when nothing has, 0 at the end.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Tcp(s) => s.try_read(buf),
            Link::H2(h) => h.try_read(buf),
        }
    }

    /// Writes what the link takes now; `WouldBlock` when it takes nothing.
    pub fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Link::Tcp(s) => s.try_write_vectored(slices),
            Link::H2(h) => h.try_write_vectored(slices),
        }
    }

    /// Waits until a read (or, with `Interest::WRITABLE`, a write) may
    /// make progress.
    pub async fn ready(&mut self, interest: Interest) -> io::Result<()> {
        match self {
            Link::Tcp(s) => s.ready(interest).await.map(|_| ()),
            Link::H2(h) => h.ready(interest.is_writable()).await,
        }
    }

    /// Ends our direction (TCP: shutdown; HTTP/2: END_STREAM).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Link::Tcp(s) => s.shutdown().await,
            Link::H2(h) => h.send.send_data(Bytes::new(), true).map_err(h2_io),
        }
    }
}

/// One RFC 8441 stream.
pub struct H2Link {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received and not yet read.
    pending: Bytes,
    /// The stream ended (END_STREAM), or failed with this.
    ended: Option<io::Result<()>>,
}

fn h2_io(e: h2::Error) -> io::Error {
    let kind = if e.is_reset() || e.is_go_away() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl H2Link {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() && self.ended.is_none() {
            let mut cx = Context::from_waker(Waker::noop());
            if self.poll_receive(&mut cx).is_pending() {
                return Err(would_block());
            }
        }
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending.split_to(n));
            return Ok(n);
        }
        match &self.ended {
            Some(Ok(())) => Ok(0),
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Err(would_block()),
        }
    }

    /// Takes the next DATA (or the end) into `pending`/`ended`; Ready once
    /// there is something to read.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = self.recv.flow_control().release_capacity(data.len());
                self.pending = data;
                Poll::Ready(())
            }
            Poll::Ready(Some(Err(e))) => {
                self.ended = Some(Err(h2_io(e)));
                Poll::Ready(())
            }
            Poll::Ready(None) => {
                self.ended = Some(Ok(()));
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = slices.iter().map(|s| s.len()).sum::<usize>().min(H2_WRITE_MAX);
        if total == 0 {
            return Ok(0);
        }
        self.send.reserve_capacity(total);
        // poll_capacity only reports capacity that grew since it last did:
        // what is assigned already is capacity().
        let mut room = self.send.capacity();
        if room == 0 {
            let mut cx = Context::from_waker(Waker::noop());
            room = match self.send.poll_capacity(&mut cx) {
                Poll::Ready(Some(Ok(n))) => n,
                Poll::Ready(Some(Err(e))) => return Err(h2_io(e)),
                Poll::Ready(None) => return Err(io::ErrorKind::BrokenPipe.into()),
                Poll::Pending => 0,
            };
        }
        let room = room.min(total);
        if room == 0 {
            return Err(would_block());
        }
        let mut data = BytesMut::with_capacity(room);
        for s in slices {
            let take = (room - data.len()).min(s.len());
            data.extend_from_slice(&s[..take]);
            if data.len() == room {
                break;
            }
        }
        self.send.send_data(data.freeze(), false).map_err(h2_io)?;
        Ok(room)
    }

    async fn ready(&mut self, writable: bool) -> io::Result<()> {
        poll_fn(|cx| {
            if !self.pending.is_empty() || self.ended.is_some() || self.poll_receive(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            if writable {
                // Capacity was reserved by the write that could not go on.
                if self.send.capacity() > 0 {
                    return Poll::Ready(Ok(()));
                }
                match self.send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(n))) if n > 0 => return Poll::Ready(Ok(())),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(h2_io(e))),
                    Poll::Ready(None) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                    _ => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// What the server answered to an extended CONNECT.
pub struct H2Answer {
    pub link: H2Link,
    /// Its `sec-websocket-extensions`, if any.
    pub extensions: Option<String>,
}

/// Opens an h2c connection (prior knowledge) to `addr` and on it a
/// WebSocket stream to `path` (`:protocol websocket`), offering
/// permessage-deflate when asked. The connection's own task runs on the
/// current `LocalSet`.
pub async fn connect_h2(addr: SocketAddr, path: &str, offer_deflate: bool) -> Result<H2Answer, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.map_err(|e| format!("HTTP/2: {e}"))?;
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) come with its
    // preface, which may trail the handshake a little.
    for _ in 0..500 {
        if client.is_extended_connect_protocol_enabled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        client = client.ready().await.map_err(|e| format!("HTTP/2: {e}"))?;
    }
    if !client.is_extended_connect_protocol_enabled() {
        return Err("the server does not offer extended CONNECT (H2WebSockets on?)".into());
    }
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}{path}"))
        .header("sec-websocket-version", "13");
    if offer_deflate {
        request = request.header(
            "sec-websocket-extensions",
            "permessage-deflate; client_no_context_takeover",
        );
    }
    let mut request = request.body(()).map_err(|e| e.to_string())?;
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let (response, send) = client
        .send_request(request, false)
        .map_err(|e| format!("CONNECT: {e}"))?;
    let response = response.await.map_err(|e| format!("CONNECT's answer: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("handshake refused: {}", response.status()));
    }
    let extensions = response
        .headers()
        .get("sec-websocket-extensions")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(H2Answer {
        link: H2Link {
            send,
            recv: response.into_body(),
            pending: Bytes::new(),
            ended: None,
        },
        extensions,
    })
}
