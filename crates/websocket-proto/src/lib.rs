//! The WebSocket protocol without I/O: everything mod_websocket needs to speak
//! RFC 6455 (and the legacy draft-75/76 dialects) that does not touch Apache.
//!
//! The decoder takes bytes in chunks of any size and yields frames; the encoder
//! writes server frame headers so the payload can be sent without copying;
//! the handshake modules validate opening requests and compute answers.

// Everything here is plain safe Rust over bytes; keep it that way.
#![forbid(unsafe_code)]

pub mod close;
pub mod connection;
pub mod decoder;
pub mod deflate;
pub mod encoder;
pub mod frame;
pub mod handshake;
pub mod legacy;
pub mod mask;
pub mod origin;
pub mod utf8;

pub use close::CloseCode;
pub use decoder::{DecodeError, Decoder, DecoderConfig, Event};
pub use encoder::FrameHeaderBuf;
pub use frame::{Opcode, ProtocolVersion};
