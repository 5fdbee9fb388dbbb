//! Just enough RFC 6455 for a client: the opening handshake, masked frame
//! headers, and the headers of the server's (unmasked) frames.

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use websocket_proto::encoder::FrameHeaderBuf;
use websocket_proto::handshake::accept_key;
use websocket_proto::Opcode;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Appends a client frame header: FIN, `rsv1` (compressed), the opcode, the
/// mask bit with `len`, and the masking key.
pub fn client_header(out: &mut Vec<u8>, opcode: u8, rsv1: bool, len: usize, key: [u8; 4]) {
    let opcode = Opcode::from_u8(opcode).expect("the load client sends known opcodes");
    out.extend_from_slice(FrameHeaderBuf::masked(opcode, true, rsv1, len as u64, key).as_bytes());
}

/// The header of a frame from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub len: u64,
    pub header_len: usize,
}

/// Parses a server frame header at the start of `buf`: `Ok(None)` when more
/// bytes are needed.
pub fn parse_server_header(buf: &[u8]) -> Result<Option<ServerFrame>, String> {
    use websocket_proto::frame::{FrameHeader, RSV1, RSV2, RSV3};
    // Refused from the second byte on, before a mask key could follow.
    if buf.len() >= 2 && buf[1] & 0x80 != 0 {
        return Err("server frame is masked".into());
    }
    let Some((h, header_len)) = FrameHeader::parse(buf).map_err(|e| format!("server frame: {e:?}"))? else {
        return Ok(None);
    };
    if h.rsv & (RSV2 | RSV3) != 0 {
        return Err(format!(
            "server frame with RSV2/RSV3 set (first byte {:#04x})",
            buf[0]
        ));
    }
    Ok(Some(ServerFrame {
        fin: h.fin,
        rsv1: h.rsv & RSV1 != 0,
        opcode: h.opcode,
        len: h.payload_len,
        header_len,
    }))
}

/// Performs the opening handshake on `stream`. Returns whether
/// permessage-deflate was agreed and any bytes that followed the response.
pub async fn handshake(
    stream: &mut TcpStream,
    host: &str,
    path: &str,
    offer_deflate: bool,
    seed: u64,
) -> Result<(bool, Vec<u8>), String> {
    handshake_on(stream, host, path, offer_deflate, None, seed).await
}

/// [`handshake`] on any stream (TLS too), offering `protocol` if given.
pub async fn handshake_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
    offer_deflate: bool,
    protocol: Option<&str>,
    seed: u64,
) -> Result<(bool, Vec<u8>), String> {
    let mut rng = crate::payload::Rng::new(seed);
    let mut raw_key = [0u8; 16];
    raw_key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    raw_key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(raw_key);
    let extensions = if offer_deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
    } else {
        ""
    };
    let protocol = protocol.map_or(String::new(), |p| format!("Sec-WebSocket-Protocol: {p}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extensions}{protocol}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the handshake: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("sending the handshake: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err("handshake response too long".into());
        }
        let mut chunk = [0u8; 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the handshake response: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed during the handshake; got {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {status}"));
    }
    let mut accept = None;
    let mut deflate = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            if !offer_deflate {
                return Err(format!(
                    "server accepted an extension that was not offered: {value}"
                ));
            }
            deflate |= value
                .split(',')
                .any(|ext| ext.split(';').next().map(str::trim) == Some("permessage-deflate"));
        }
    }
    if accept.as_deref() != Some(accept_key(&key).as_str()) {
        return Err(format!("bad Sec-WebSocket-Accept: {accept:?}"));
    }
    Ok((deflate, buf[end..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_headers_for_each_length_form() {
        let key = [1, 2, 3, 4];
        let mut out = Vec::new();
        client_header(&mut out, OP_BINARY, false, 16, key);
        assert_eq!(out, [0x82, 0x90, 1, 2, 3, 4]);
        out.clear();
        client_header(&mut out, OP_TEXT, true, 4096, key);
        assert_eq!(out, [0xC1, 0xFE, 0x10, 0x00, 1, 2, 3, 4]);
        out.clear();
        client_header(&mut out, OP_BINARY, false, 1 << 20, key);
        assert_eq!(out, [0x82, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn server_headers_parse_incrementally() {
        let frame = [0x82, 126, 0x10, 0x00];
        assert_eq!(parse_server_header(&frame[..1]), Ok(None));
        assert_eq!(parse_server_header(&frame[..3]), Ok(None));
        let h = parse_server_header(&frame).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.rsv1, h.opcode, h.len, h.header_len),
            (true, false, 2, 4096, 4)
        );
        let big = [0x41, 127, 0, 0, 0, 0, 0, 0x10, 0, 0];
        let h = parse_server_header(&big).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.rsv1, h.opcode, h.len, h.header_len),
            (false, true, 1, 1 << 20, 10)
        );
        assert!(parse_server_header(&[0x82, 0x81]).is_err(), "masked");
        assert!(parse_server_header(&[0xA2, 0x01]).is_err(), "RSV2");
    }
}
