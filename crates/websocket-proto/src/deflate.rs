//! permessage-deflate (RFC 7692), server side: negotiation of the
//! `Sec-WebSocket-Extensions` offers, and the per-connection compressor and
//! decompressor the session uses for messages whose first frame has RSV1.
//!
//! # Window bits 8
//!
//! zlib (and zlib-rs, its Rust port behind `flate2` here) refuses a raw
//! deflate stream with an 8-bit window and the bindings only accept 9..=15.
//! We still accept `server_max_window_bits=8`: a zlib compressor never emits
//! a match farther back than its window size minus 262 bytes (`MAX_DIST`,
//! room it keeps for lookahead), so a 9-bit compressor never looks back more
//! than 250 bytes, which an 8-bit (256-byte) decompressor handles. The
//! `window_8_*` tests check every distance with an independent decoder.
//! On the receiving side a window larger than the client's is always
//! correct, so a client that limits itself to 8 bits is inflated with 9.
//!
//! # Memory per connection
//!
//! Measured with zlib-rs 0.6 through `flate2` 1.1 (memLevel 8, which
//! `flate2` fixes), at any level:
//!
//! | window bits | [`Deflater`] | [`Inflater`] |
//! |---|---|---|
//! | 15 | 371 KiB | 46 KiB |
//! | 12 | 259 KiB | 46 KiB |
//! |  9 | 245 KiB | 46 KiB |
//!
//! zlib's formulas would give `(1 << (wbits + 2)) + (1 << (memLevel + 9))`
//! = 256 KiB for deflate at 15 bits and 130 KiB at 9, and `(1 << wbits)` +
//! ~7 KiB for inflate. zlib-rs spends more: besides the window (`2 << wbits`)
//! and the hash chains (`2 << wbits`) its compressor has a fixed 128 KiB
//! hash table and 112 KiB of pending and symbol buffers, so lowering
//! `max_server_window_bits` saves at most 126 KiB; its decompressor always
//! allocates a 32 KiB window plus ~14 KiB of state, whatever the window
//! bits. The compressor is allocated when the [`Deflater`] is created, the
//! decompressor's window on first use. `server_no_context_takeover` saves
//! no memory: the compressor is reset between messages, not freed.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::handshake::ExtensionOffer;

/// The extension token in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// What a sync flush ends with; RFC 7692 §7.2.1 strips it from every
/// message and §7.2.2 puts it back before inflating.
const SYNC_TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window the bindings (and zlib) can build for raw deflate.
const MIN_BACKEND_WINDOW_BITS: u8 = 9;

/// The first allocation step when inflating; later steps double the output.
const INFLATE_MIN_STEP: usize = 4096;

/// The server's permessage-deflate settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Off: every offer is ignored and messages go uncompressed.
    pub enabled: bool,
    /// zlib compression level, 1 (fastest) to 9 (smallest).
    pub level: u32,
    /// The largest LZ77 window our compressor uses, 8..=15 bits: a memory
    /// limit. Below 15 it is announced to the client (RFC 7692 §7.1.2.1
    /// allows that even when not asked).
    pub max_server_window_bits: u8,
    /// The window we ask clients to compress with, 9..=15 bits, when their
    /// offer says they accept a limit (`client_max_window_bits`). A client
    /// that does not may use 15 bits, and we inflate with 15.
    pub max_client_window_bits: u8,
    /// Announce `server_no_context_takeover` even when the client did not
    /// ask: each message is compressed on its own, which costs ratio, not
    /// memory (see the module docs).
    pub server_no_context_takeover: bool,
}

impl Default for DeflateConfig {
    /// On, zlib's default level 6, full windows, context takeover allowed.
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            level: 6,
            max_server_window_bits: 15,
            max_client_window_bits: 15,
            server_no_context_takeover: false,
        }
    }
}

impl DeflateConfig {
    /// Checks the ranges, for configuration parsing; the message names the
    /// faulty field and its allowed range. Out-of-range values that slip
    /// through are clamped by [`negotiate`] and [`Deflater::new`].
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=9).contains(&self.level) {
            return Err(format!("compression level {} is not within 1..9", self.level));
        }
        if !(8..=15).contains(&self.max_server_window_bits) {
            return Err(format!(
                "server window bits {} is not within 8..15",
                self.max_server_window_bits
            ));
        }
        // A client's zlib cannot compress with 8 bits, so we never ask for it.
        if !(9..=15).contains(&self.max_client_window_bits) {
            return Err(format!(
                "client window bits {} is not within 9..15",
                self.max_client_window_bits
            ));
        }
        Ok(())
    }
}

/// An accepted permessage-deflate offer: the parameters both sides use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// We reset our compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so we reset
    /// our decompressor too (which also catches a client that does not).
    pub client_no_context_takeover: bool,
    /// The window our compressor may use, 8..=15.
    pub server_max_window_bits: u8,
    /// The largest window the client may compress with, 8..=15.
    pub client_max_window_bits: u8,
    /// Whether `server_max_window_bits` goes into the response: required
    /// when the offer had it, optional (and useful to the client) when we
    /// limit ourselves below 15.
    announce_server_max_window_bits: bool,
    /// Whether `client_max_window_bits` goes into the response; allowed
    /// only when the offer had it (RFC 7692 §7.1.2.2).
    announce_client_max_window_bits: bool,
}

impl Negotiated {
    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub fn response_header(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; ");
            s.push_str(SERVER_NO_CONTEXT_TAKEOVER);
        }
        if self.client_no_context_takeover {
            s.push_str("; ");
            s.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
        }
        if self.announce_server_max_window_bits {
            s.push_str(&format!("; {SERVER_MAX_WINDOW_BITS}={}", self.server_max_window_bits));
        }
        if self.announce_client_max_window_bits {
            s.push_str(&format!("; {CLIENT_MAX_WINDOW_BITS}={}", self.client_max_window_bits));
        }
        s
    }
}

/// Why a permessage-deflate offer was declined (RFC 7692 §7: the server
/// must decline an offer with an unknown, repeated or invalid parameter).
/// Declining is not fatal: the connection goes on without compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeflateNegotiationError {
    /// A parameter RFC 7692 does not define for an offer.
    UnknownParameter(String),
    /// The same parameter twice in one offer.
    DuplicateParameter(String),
    /// `server_no_context_takeover` or `client_no_context_takeover` with a value.
    UnexpectedValue { param: String, value: String },
    /// `server_max_window_bits` without a value.
    MissingValue(String),
    /// A window size that is not 8..15 in decimal without leading zeros.
    InvalidWindowBits { param: String, value: String },
}

impl fmt::Display for DeflateNegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownParameter(p) => write!(f, "permessage-deflate offer has unknown parameter {p:?}"),
            Self::DuplicateParameter(p) => write!(f, "permessage-deflate offer repeats parameter {p:?}"),
            Self::UnexpectedValue { param, value } => {
                write!(f, "permessage-deflate parameter {param:?} takes no value, got {value:?}")
            }
            Self::MissingValue(p) => write!(f, "permessage-deflate parameter {p:?} needs a value"),
            Self::InvalidWindowBits { param, value } => {
                write!(f, "permessage-deflate parameter {param:?} must be 8..15, got {value:?}")
            }
        }
    }
}

impl std::error::Error for DeflateNegotiationError {}

/// Picks the first acceptable permessage-deflate offer, in the client's
/// order of preference (RFC 7692 §5.1).
///
/// `Ok(None)`: compression is disabled or the client offered no
/// permessage-deflate. `Err`: it offered some, but every one was invalid
/// and declined; the error describes the first, for the log. Either way the
/// handshake goes on without the extension. Every valid offer is
/// acceptable, since we can honour any window size the client asks for.
pub fn negotiate(
    offers: &[ExtensionOffer],
    config: &DeflateConfig,
) -> Result<Option<Negotiated>, DeflateNegotiationError> {
    if !config.enabled {
        return Ok(None);
    }
    let mut first_decline = None;
    for offer in offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(EXTENSION_NAME))
    {
        match accept(offer, config) {
            Ok(n) => return Ok(Some(n)),
            Err(e) => {
                first_decline.get_or_insert(e);
            }
        }
    }
    first_decline.map_or(Ok(None), Err)
}

/// The parameters of one offer, checked.
#[derive(Default)]
struct OfferParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_offer(offer: &ExtensionOffer) -> Result<OfferParams, DeflateNegotiationError> {
    let mut p = OfferParams::default();
    let mut seen = [false; 4];
    for (name, value) in &offer.params {
        let known = [
            SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS,
        ];
        let index = known
            .iter()
            .position(|k| k.eq_ignore_ascii_case(name))
            .ok_or_else(|| DeflateNegotiationError::UnknownParameter(excerpt(name)))?;
        if std::mem::replace(&mut seen[index], true) {
            return Err(DeflateNegotiationError::DuplicateParameter(excerpt(name)));
        }
        let unexpected_value = |v: &str| DeflateNegotiationError::UnexpectedValue {
            param: known[index].to_owned(),
            value: excerpt(v),
        };
        let bits = |v: &str| {
            parse_window_bits(v).ok_or_else(|| DeflateNegotiationError::InvalidWindowBits {
                param: known[index].to_owned(),
                value: excerpt(v),
            })
        };
        match (index, value.as_deref()) {
            (0, None) => p.server_no_context_takeover = true,
            (1, None) => p.client_no_context_takeover = true,
            (0 | 1, Some(v)) => return Err(unexpected_value(v)),
            (2, None) => return Err(DeflateNegotiationError::MissingValue(SERVER_MAX_WINDOW_BITS.to_owned())),
            (2, Some(v)) => p.server_max_window_bits = Some(bits(v)?),
            (_, None) => p.client_max_window_bits = Some(None),
            (_, Some(v)) => p.client_max_window_bits = Some(Some(bits(v)?)),
        }
    }
    Ok(p)
}

fn accept(offer: &ExtensionOffer, config: &DeflateConfig) -> Result<Negotiated, DeflateNegotiationError> {
    let p = parse_offer(offer)?;
    let our_server_bits = config.max_server_window_bits.clamp(8, 15);
    let (server_max_window_bits, announce_server_max_window_bits) = match p.server_max_window_bits {
        // Accepting the parameter means answering it with a value no larger.
        Some(asked) => (asked.min(our_server_bits), true),
        None => (our_server_bits, our_server_bits < 15),
    };
    let our_client_bits = config.max_client_window_bits.clamp(MIN_BACKEND_WINDOW_BITS, 15);
    let client_max_window_bits = match p.client_max_window_bits {
        // Without the parameter the client may use any window: we cannot limit it.
        None => 15,
        Some(None) => our_client_bits,
        // The client's hint is the most it will use; taking it saves memory.
        Some(Some(hint)) => hint.min(our_client_bits),
    };
    Ok(Negotiated {
        server_no_context_takeover: p.server_no_context_takeover || config.server_no_context_takeover,
        // Echoed so that we may reset the decompressor between messages.
        client_no_context_takeover: p.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
        announce_server_max_window_bits,
        announce_client_max_window_bits: p.client_max_window_bits.is_some() && client_max_window_bits < 15,
    })
}

/// RFC 7692 §7.1.2: 1*DIGIT, 8..15, no leading zeros.
fn parse_window_bits(v: &str) -> Option<u8> {
    let valid = matches!(v.as_bytes(), [b'8' | b'9'] | [b'1', b'0'..=b'5']);
    valid.then(|| v.parse().ok()).flatten()
}

/// Header values are client-controlled; keep what reaches the log short.
fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The per-connection compressor for outgoing messages (RFC 7692 §7.2.1).
pub struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// `level` is zlib's 0..=9 (larger values are taken as 9). Costs
    /// 245–371 KiB depending on the window, see the module docs.
    pub fn new(negotiated: &Negotiated, level: u32) -> Deflater {
        let bits = negotiated
            .server_max_window_bits
            .clamp(MIN_BACKEND_WINDOW_BITS, 15);
        Deflater {
            compress: Compress::new_with_window_bits(Compression::new(level.min(9)), false, bits),
            no_context_takeover: negotiated.server_no_context_takeover,
        }
    }

    /// Appends the compressed body of one whole message to `out`: raw
    /// deflate, sync-flushed, without the final `00 00 ff ff`. An empty
    /// payload gives the single byte `00`.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut consumed = 0;
        loop {
            // Room for a sync flush's empty block at least, so that every
            // call makes progress; the Vec doubles when more is needed.
            let spare_wanted = (payload.len() - consumed).clamp(64, 64 * 1024);
            out.reserve(spare_wanted);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(&payload[consumed..], out, FlushCompress::Sync)
                .expect("raw deflate with output room cannot fail");
            consumed += (self.compress.total_in() - before) as usize;
            // zlib's contract: the flush is complete once a call returns
            // without filling the output.
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() == start {
            // An empty message right after a flush: zlib has nothing to
            // flush and writes nothing, but the body must not be empty
            // (the receiver appends 00 00 ff ff, which alone is a truncated
            // stored block). `00` is the header of an empty stored block;
            // it adds nothing to the window, so the stream stays in step.
            out.push(0x00);
        } else {
            debug_assert!(out[start..].ends_with(&SYNC_TRAILER));
            if out[start..].ends_with(&SYNC_TRAILER) {
                out.truncate(out.len() - SYNC_TRAILER.len());
            }
        }
        if self.no_context_takeover {
            self.compress.reset();
        }
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The message inflates to more than the allowed size (close with 1009).
    TooBig,
    /// Not valid DEFLATE data.
    Corrupt,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::TooBig => f.write_str("compressed message inflates beyond the size limit"),
            InflateError::Corrupt => f.write_str("compressed message is not valid DEFLATE data"),
        }
    }
}

impl std::error::Error for InflateError {}

/// The per-connection decompressor for incoming messages (RFC 7692 §7.2.2).
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// Costs about 46 KiB, see the module docs.
    pub fn new(negotiated: &Negotiated) -> Inflater {
        Inflater {
            decompress: Decompress::new_with_window_bits(false, Self::window_bits(negotiated)),
            no_context_takeover: negotiated.client_no_context_takeover,
        }
    }

    /// A window at least as large as the client's reads its stream.
    fn window_bits(negotiated: &Negotiated) -> u8 {
        negotiated
            .client_max_window_bits
            .clamp(MIN_BACKEND_WINDOW_BITS, 15)
    }

    /// Inflates one whole message body (all its frames' payloads joined)
    /// and appends the result to `out`.
    ///
    /// At most `max_output` bytes are appended: the output grows in steps
    /// that double it, never past `max_output + 1` bytes (the extra byte is
    /// how an oversized message is noticed), so a decompression bomb stops
    /// with [`InflateError::TooBig`] after that much work. Spare capacity
    /// `out` already had is used first and may be filled before the limit
    /// is noticed. After an error the stream is reset; the session is
    /// expected to close the connection anyway.
    ///
    /// A body that ends with a `BFINAL` block (allowed by RFC 7692 §7.2.3.4)
    /// ends the DEFLATE stream: what follows it is ignored and the next
    /// message starts a new stream. An empty body is an empty message.
    pub fn inflate(&mut self, compressed: &[u8], max_output: u64, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let start = out.len();
        let result = self.inflate_inner(compressed, max_output, out);
        let stream_ended = matches!(result, Ok(true));
        if result.is_err() {
            out.truncate(start);
        }
        if result.is_err() || stream_ended || self.no_context_takeover {
            self.decompress.reset(false);
        }
        result.map(|_| ())
    }

    /// `Ok(true)` when the body ended the DEFLATE stream.
    fn inflate_inner(
        &mut self,
        compressed: &[u8],
        max_output: u64,
        out: &mut Vec<u8>,
    ) -> Result<bool, InflateError> {
        if compressed.is_empty() {
            return Ok(false);
        }
        let start = out.len();
        let limit = start.saturating_add(usize::try_from(max_output).unwrap_or(usize::MAX));
        let inputs = [
            (compressed, FlushDecompress::None),
            (&SYNC_TRAILER[..], FlushDecompress::Sync),
        ];
        for (input, flush) in inputs {
            let mut pos = 0;
            loop {
                if out.len() == out.capacity() {
                    // `out.len() <= limit` here, so there is room for at least one byte.
                    let room = limit.saturating_add(1) - out.len();
                    let step = (out.len() - start)
                        .max(compressed.len().saturating_mul(2))
                        .max(INFLATE_MIN_STEP);
                    out.reserve_exact(step.min(room));
                }
                let in_before = self.decompress.total_in();
                let out_before = out.len();
                let status = self
                    .decompress
                    .decompress_vec(&input[pos..], out, flush)
                    .map_err(|_| InflateError::Corrupt)?;
                let consumed = (self.decompress.total_in() - in_before) as usize;
                pos += consumed;
                if out.len() > limit {
                    return Err(InflateError::TooBig);
                }
                if status == Status::StreamEnd {
                    return Ok(true);
                }
                let output_full = out.len() == out.capacity();
                if pos == input.len() && !output_full {
                    break;
                }
                if consumed == 0 && out.len() == out_before && !output_full {
                    // Input and room left, yet no progress: zlib never does
                    // this on valid data.
                    return Err(InflateError::Corrupt);
                }
            }
        }
        Ok(false)
    }
}

