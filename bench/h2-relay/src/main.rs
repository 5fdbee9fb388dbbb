//! `h2-relay --listen ADDR --upstream ADDR`: accepts WebSocket clients over
//! HTTP/1.1 and carries each one to the upstream server as an RFC 8441
//! stream (extended CONNECT on a cleartext HTTP/2 connection with prior
//! knowledge), so that a client that only speaks HTTP/1.1, such as
//! Autobahn's wstest, exercises a server's WebSockets over HTTP/2.
//!
//! The relay answers the client's handshake itself (its own
//! `Sec-WebSocket-Accept`, and the extensions and subprotocol the upstream
//! chose) and then copies bytes both ways unchanged: the frames, masks and
//! all, are the client's and the server's. One HTTP/2 connection per
//! client. The end of either side ends the other: the client's EOF ends
//! the stream (END_STREAM), and the stream's end (or reset) closes the
//! client's connection.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: h2-relay --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT\n";

/// Request headers passed on to the upstream's CONNECT.
const FORWARDED: &[&str] = &[
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "origin",
    "user-agent",
];

/// Answer headers passed back to the client's 101.
const RETURNED: &[&str] = &["sec-websocket-extensions", "sec-websocket-protocol"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<SocketAddr> {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1)?.parse().ok()
    };
    let (Some(listen), Some(upstream)) = (value("--listen"), value("--upstream")) else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let local = tokio::task::LocalSet::new();
    if let Err(e) = local.block_on(&rt, serve(listen, upstream)) {
        eprintln!("h2-relay: {e}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("h2-relay: {listen} -> h2c://{upstream}");
    loop {
        let (client, peer) = listener.accept().await.map_err(|e| e.to_string())?;
        tokio::task::spawn_local(async move {
            if let Err(e) = relay(client, upstream).await {
                eprintln!("h2-relay: {peer}: {e}");
            }
        });
    }
}

/// The client's request head: path and headers (names lowercased).
struct Head {
    path: String,
    headers: Vec<(String, String)>,
    /// Bytes the client sent after the head (its first frames).
    rest: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn read_head(client: &mut TcpStream) -> Result<Head, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Err("request head over 64 KiB".into());
        }
        let n = client.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the client closed before its request head ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if method != "GET" || !path.starts_with('/') {
        return Err(format!("not a WebSocket request: {request_line:?}"));
    }
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Head {
        path: path.to_owned(),
        headers,
        rest: buf[end + 4..].to_vec(),
    })
}

async fn relay(mut client: TcpStream, upstream: SocketAddr) -> Result<(), String> {
    client.set_nodelay(true).map_err(|e| e.to_string())?;
    let head = read_head(&mut client).await?;
    let key = head
        .header("sec-websocket-key")
        .ok_or("no Sec-WebSocket-Key")?
        .to_owned();

    let tcp = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connect {upstream}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(8 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    let mut send = send.ready().await.map_err(|e| e.to_string())?;
    for _ in 0..500 {
        if send.is_extended_connect_protocol_enabled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        send = send.ready().await.map_err(|e| e.to_string())?;
    }
    if !send.is_extended_connect_protocol_enabled() {
        return Err("the upstream does not offer extended CONNECT (H2WebSockets on?)".into());
    }
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{upstream}{}", head.path));
    for name in FORWARDED {
        if let Some(v) = head.header(name) {
            request = request.header(*name, v);
        }
    }
    let mut request = request.body(()).map_err(|e| e.to_string())?;
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let (response, mut to_server) = send
        .send_request(request, false)
        .map_err(|e| format!("CONNECT: {e}"))?;
    let response = response.await.map_err(|e| format!("CONNECT's answer: {e}"))?;
    let status = response.status();
    if status != http::StatusCode::OK {
        let answer = format!(
            "HTTP/1.1 {} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let _ = client.write_all(answer.as_bytes()).await;
        return Ok(());
    }
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        websocket_proto::handshake::accept_key(&key)
    );
    for name in RETURNED {
        if let Some(v) = response.headers().get(*name).and_then(|v| v.to_str().ok()) {
            answer.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    answer.push_str("\r\n");
    client
        .write_all(answer.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let from_server = response.into_body();
    if !head.rest.is_empty() {
        send_all(&mut to_server, Bytes::from(head.rest)).await?;
    }
    let (client_in, client_out) = client.into_split();
    let upward = tokio::task::spawn_local(client_to_server(client_in, to_server));
    let downward = server_to_client(from_server, client_out).await;
    upward.abort();
    downward
}

/// Sends all of `data` on the stream, as its flow-control window allows.
async fn send_all(stream: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), String> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let room = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the stream was closed".into()),
        };
        if room == 0 {
            continue;
        }
        let part = data.split_to(room.min(data.len()));
        stream.send_data(part, false).map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn client_to_server(mut client: OwnedReadHalf, mut stream: SendStream<Bytes>) -> Result<(), String> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = client.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            // The client's EOF: end the stream.
            let _ = stream.send_data(Bytes::new(), true);
            return Ok(());
        }
        send_all(&mut stream, Bytes::copy_from_slice(&buf[..n])).await?;
    }
}

async fn server_to_client(mut stream: RecvStream, mut client: OwnedWriteHalf) -> Result<(), String> {
    while let Some(data) = stream.data().await {
        let data = match data {
            Ok(d) => d,
            // A reset stream ends the client's connection like an EOF.
            Err(_) => break,
        };
        let _ = stream.flow_control().release_capacity(data.len());
        if client.write_all(&data).await.is_err() {
            break;
        }
    }
    let _ = client.shutdown().await;
    Ok(())
}
