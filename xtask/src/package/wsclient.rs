//! Just enough of an HTTP and WebSocket client for the install test: one
//! handshake, masked text frames out, unfragmented frames in. Every read and
//! write has a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
/// The example key of RFC 6455 §1.3 and the accept value it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub struct Client {
    stream: TcpStream,
    /// Bytes read past what has been consumed.
    buf: Vec<u8>,
}

fn open(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Response headers, lower-cased names.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(text: &str) -> Result<Head, String> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Head { status, headers })
}

/// `GET path` with `Connection: close`; returns the head and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(Head, Vec<u8>), String> {
    let mut stream = open(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut all = Vec::new();
    stream
        .take(16 << 20)
        .read_to_end(&mut all)
        .map_err(|e| format!("read: {e}"))?;
    let end = find(&all, b"\r\n\r\n").ok_or("no end of headers")?;
    let head = parse_head(&String::from_utf8_lossy(&all[..end]))?;
    let mut body = all[end + 4..].to_vec();
    if head
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
    }
    Ok((head, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Client {
    /// Opens a WebSocket (version 13) to `path`, offering `protocol` if given.
    pub fn connect(addr: SocketAddr, path: &str, protocol: Option<&str>) -> Result<(Client, Head), String> {
        let mut stream = open(addr)?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(p) = protocol {
            request.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut client = Client {
            stream,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(end) = find(&client.buf, b"\r\n\r\n") {
                break end;
            }
            if client.buf.len() > 16 << 10 {
                return Err("response headers too long".into());
            }
            client.fill()?;
        };
        let head = parse_head(&String::from_utf8_lossy(&client.buf[..end]))?;
        client.buf.drain(..end + 4);
        if head.status != 101 {
            return Err(format!("{path}: expected 101, got {}", head.status));
        }
        if head.header("sec-websocket-accept") != Some(ACCEPT) {
            return Err(format!(
                "{path}: bad Sec-WebSocket-Accept {:?}",
                head.header("sec-websocket-accept")
            ));
        }
        Ok((client, head))
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Sends one masked frame.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).map_err(|e| format!("write: {e}"))
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(0x1, text.as_bytes())
    }

    /// The next complete (unfragmented) frame: (opcode, payload).
    pub fn read_frame(&mut self) -> Result<(u8, Vec<u8>), String> {
        let head = self.take(2)?;
        if head[0] & 0x80 == 0 {
            return Err("fragmented frames are not expected here".into());
        }
        if head[1] & 0x80 != 0 {
            return Err("the server masked a frame".into());
        }
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize,
            127 => u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")) as usize,
            n => n as usize,
        };
        if len > 1 << 20 {
            return Err(format!("unexpectedly large frame ({len} bytes)"));
        }
        Ok((head[0] & 0x0f, self.take(len)?))
    }

    /// The next text message, skipping pings.
    pub fn read_text(&mut self) -> Result<String, String> {
        loop {
            match self.read_frame()? {
                (0x1, payload) => return String::from_utf8(payload).map_err(|_| "invalid UTF-8".into()),
                (0x9, payload) => self.send(0xa, &payload)?,
                (0x8, payload) => return Err(format!("closed by the server: {payload:?}")),
                (op, _) => return Err(format!("unexpected opcode {op:#x}")),
            }
        }
    }

    /// Closing handshake with 1000; waits (bounded) for the server's close.
    pub fn close(mut self) -> Result<(), String> {
        self.send(0x8, &1000u16.to_be_bytes())?;
        for _ in 0..1000 {
            match self.read_frame() {
                Ok((0x8, _)) => return Ok(()),
                Ok(_) => continue,
                // A server may close the TCP connection right after its close frame.
                Err(e) if e == "connection closed" => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err("no close frame from the server".into())
    }
}
