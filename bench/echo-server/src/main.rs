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

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let ws = match tokio_tungstenite::accept_async(stream).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("bench-echo-server: handshake: {e}");
            return;
        }
    };
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

fn die(message: &str) -> ! {
    eprintln!("bench-echo-server: {message}");
    std::process::exit(2)
}
