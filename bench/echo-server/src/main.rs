//! A standalone WebSocket echo server on tokio-tungstenite, written the way an
//! operator would write one: accept, upgrade, forward every text or binary
//! message back (pings are answered and closes completed by tungstenite).
//!
//! `cargo xtask bench` runs it alone and behind Apache's mod_proxy_wstunnel,
//! as the setups users would otherwise pick instead of mod_websocket.
//!
//! ```text
//! bench-echo-server [--listen 127.0.0.1:0]
//! ```
//!
//! It prints `listening on <addr>` once it accepts connections. The tokio
//! runtime has one worker per CPU this process may run on (so one when it is
//! pinned to a single core).

use std::io::Write;
use std::net::SocketAddr;

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => {
                listen = addr
                    .parse()
                    .unwrap_or_else(|e| die(&format!("bad --listen '{addr}': {e}")));
            }
            _ => die("usage: bench-echo-server [--listen ADDR]"),
        }
    }
    if !listen.ip().is_loopback() {
        die("--listen must be a loopback address");
    }
    let listener = TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| die(&format!("cannot listen on {listen}: {e}")));
    let addr = listener.local_addr().unwrap_or(listen);
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream));
            }
            Err(e) => eprintln!("bench-echo-server: accept: {e}"),
        }
    }
}

// tungstenite's handshake callback returns its own (large) error response type.
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream) {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let _ = stream.set_nodelay(true);
    let mut increment = false;
    let ws = match tokio_tungstenite::accept_hdr_async(stream, |req: &Request, mut res: Response| {
        // The dumb-increment protocol, as the module's example plugin
        // serves it, for `cargo xtask bench --scale`.
        if req.uri().path() == "/dumb-increment" {
            increment = true;
            res.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                http::HeaderValue::from_static("dumb-increment-protocol"),
            );
        }
        Ok(res)
    })
    .await
    {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("bench-echo-server: handshake: {e}");
            return;
        }
    };
    if increment {
        count(ws).await;
        return;
    }
    let (sink, stream) = ws.split();
    // `forward` feeds each message and flushes when nothing more is ready:
    // replies to one read go out in one write.
    let result = stream
        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
        .forward(sink)
        .await;
    match result {
        Ok(())
        | Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)
        | Err(tokio_tungstenite::tungstenite::Error::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )) => {}
        Err(e) => eprintln!("bench-echo-server: {e}"),
    }
}

/// Sends a counter, as text, every 50 ms until the client goes; reads (and
/// drops) what it sends, so that its pings and close are answered.
async fn count(ws: tokio_tungstenite::WebSocketStream<TcpStream>) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (mut sink, mut stream) = ws.split();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(50));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if sink.send(Message::text(n.to_string())).await.is_err() {
                    return;
                }
                n += 1;
            }
            message = stream.next() => match message {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

fn die(message: &str) -> ! {
    eprintln!("bench-echo-server: {message}");
    std::process::exit(2)
}
