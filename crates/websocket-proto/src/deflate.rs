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
//! bits. Both allocate everything when created. `server_no_context_takeover`
//! saves no memory: the compressor is reset between messages, not freed.
//! With `client_no_context_takeover` and a window below 15 bits, `flate2`
//! rebuilds the decompressor (one 46 KiB allocation) after every message.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::handshake::{excerpt, ExtensionOffer};

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

/// The compression levels a configuration may ask for (zlib's, without 0:
/// "stored" would only make messages larger).
pub const LEVELS: std::ops::RangeInclusive<u32> = 1..=9;

/// The window sizes a configuration may set for both directions: a client's
/// zlib cannot compress with 8 bits, so we never ask for fewer than 9.
/// Values outside are clamped by [`negotiate`] and [`Deflater::new`].
pub const WINDOW_BITS: std::ops::RangeInclusive<u8> = 9..=15;

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
            s.push_str(&format!(
                "; {SERVER_MAX_WINDOW_BITS}={}",
                self.server_max_window_bits
            ));
        }
        if self.announce_client_max_window_bits {
            s.push_str(&format!(
                "; {CLIENT_MAX_WINDOW_BITS}={}",
                self.client_max_window_bits
            ));
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
                write!(
                    f,
                    "permessage-deflate parameter {param:?} takes no value, got {value:?}"
                )
            }
            Self::MissingValue(p) => write!(f, "permessage-deflate parameter {p:?} needs a value"),
            Self::InvalidWindowBits { param, value } => {
                write!(
                    f,
                    "permessage-deflate parameter {param:?} must be 8..15, got {value:?}"
                )
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
            (2, None) => {
                return Err(DeflateNegotiationError::MissingValue(
                    SERVER_MAX_WINDOW_BITS.to_owned(),
                ))
            }
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

/// The most a compressed message may take on the wire when it inflates to
/// at most `inflated_limit` bytes, so that `MaxMessageSize` is about what
/// the plugin sees: tiny messages grow under deflate ("1234" is 6 bytes).
/// A conforming encoder spends at worst 9 bits on a literal (the fixed
/// Huffman code of bytes 144-255; stored blocks cost less), plus block
/// headers and flush markers, bounded by the constant. No real encoder
/// makes more of a message within the limit, so anything larger is refused
/// before it is buffered; a bomb (small on the wire, huge inflated) is
/// stopped by the inflater's own bound on its output.
pub fn max_deflated_len(inflated_limit: u64) -> u64 {
    inflated_limit
        .saturating_add(inflated_limit / 8)
        .saturating_add(256)
}

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
    ///
    /// A body cut short inside a block is not noticed here (the bindings do
    /// not say whether the stream stopped at a block boundary): its output
    /// so far is returned, and the client's next message will most likely
    /// fail as [`InflateError::Corrupt`]. Only a broken client does that.
    pub fn inflate(
        &mut self,
        compressed: &[u8],
        max_output: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;
    use proptest::prelude::*;

    /// RFC 7692 §7.2.3.1: "Hello" in one compressed block.
    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// §7.2.3.2: "Hello" again, referring to the first one.
    const HELLO_AGAIN: [u8; 5] = [0xf2, 0x00, 0x11, 0x00, 0x00];
    /// §7.2.3.3: "Hello" in a stored block.
    const HELLO_STORED: [u8; 11] = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    /// §7.2.3.4: "Hello" in a block with BFINAL set.
    const HELLO_FINAL: [u8; 8] = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    /// §7.2.3.5: "He" and "llo" in two blocks.
    const HELLO_TWO_BLOCKS: [u8; 13] = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];

    const MIB: u64 = 1 << 20;

    fn offers(header: &str) -> Vec<ExtensionOffer> {
        parse_extensions(header).expect("test header parses")
    }

    fn negotiate_with(
        header: &str,
        config: &DeflateConfig,
    ) -> Result<Option<Negotiated>, DeflateNegotiationError> {
        negotiate(&offers(header), config)
    }

    fn accepted(header: &str, config: &DeflateConfig) -> Negotiated {
        negotiate_with(header, config)
            .expect("valid offer")
            .expect("offer accepted")
    }

    fn declined(header: &str) -> DeflateNegotiationError {
        negotiate_with(header, &DeflateConfig::default()).expect_err("offer declined")
    }

    /// Both directions alike, so that our Deflater's output can be read by
    /// our Inflater as if it were the client's.
    fn symmetric(bits: u8, no_context_takeover: bool) -> Negotiated {
        Negotiated {
            server_no_context_takeover: no_context_takeover,
            client_no_context_takeover: no_context_takeover,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
            announce_server_max_window_bits: false,
            announce_client_max_window_bits: false,
        }
    }

    fn inflate(inflater: &mut Inflater, body: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        inflater.inflate(body, MIB, &mut out).map(|()| out)
    }

    fn compress(deflater: &mut Deflater, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        deflater.compress(payload, &mut out);
        out
    }

    // ---- RFC 7692 §7.2.3 examples ----

    #[test]
    fn rfc_examples_inflate_to_hello() {
        for body in [&HELLO[..], &HELLO_STORED, &HELLO_FINAL, &HELLO_TWO_BLOCKS] {
            let mut inflater = Inflater::new(&symmetric(15, false));
            assert_eq!(inflate(&mut inflater, body).unwrap(), b"Hello", "{body:02x?}");
        }
    }

    #[test]
    fn rfc_shared_window_example() {
        let mut inflater = Inflater::new(&symmetric(15, false));
        assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
        assert_eq!(inflate(&mut inflater, &HELLO_AGAIN).unwrap(), b"Hello");
    }

    #[test]
    fn every_rfc_example_in_one_stream() {
        // Each example leaves the stream at a block boundary, so they can
        // follow one another; BFINAL ends the stream and the next starts anew.
        let mut inflater = Inflater::new(&symmetric(15, false));
        for body in [
            &HELLO[..],
            &HELLO_AGAIN,
            &HELLO_STORED,
            &HELLO_TWO_BLOCKS,
            &HELLO_FINAL,
            &HELLO,
            &HELLO_AGAIN,
        ] {
            assert_eq!(inflate(&mut inflater, body).unwrap(), b"Hello", "{body:02x?}");
        }
    }

    #[test]
    fn compressing_hello_gives_the_rfc_bytes() {
        for level in 2..=9 {
            for bits in 8..=15 {
                let mut deflater = Deflater::new(&symmetric(bits, false), level);
                assert_eq!(
                    compress(&mut deflater, b"Hello"),
                    HELLO,
                    "level {level} bits {bits}"
                );
                assert_eq!(
                    compress(&mut deflater, b"Hello"),
                    HELLO_AGAIN,
                    "level {level} bits {bits}"
                );
            }
        }
        let mut stored = Deflater::new(&symmetric(15, false), 0);
        assert_eq!(compress(&mut stored, b"Hello"), HELLO_STORED);
    }

    #[test]
    fn level_one_round_trips() {
        // zlib-rs's level 1 uses different blocks than the RFC shows.
        let mut deflater = Deflater::new(&symmetric(15, false), 1);
        let mut inflater = Inflater::new(&symmetric(15, false));
        for _ in 0..3 {
            let body = compress(&mut deflater, b"Hello");
            assert_eq!(inflate(&mut inflater, &body).unwrap(), b"Hello");
        }
    }

    #[test]
    fn server_no_context_takeover_compresses_each_message_alone() {
        let mut deflater = Deflater::new(&symmetric(15, true), 6);
        assert_eq!(compress(&mut deflater, b"Hello"), HELLO);
        assert_eq!(compress(&mut deflater, b"Hello"), HELLO);
    }

    #[test]
    fn client_no_context_takeover_refuses_references_to_earlier_messages() {
        let mut inflater = Inflater::new(&symmetric(15, true));
        assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
        assert_eq!(inflate(&mut inflater, &HELLO_AGAIN), Err(InflateError::Corrupt));
        assert_eq!(inflate(&mut inflater, &HELLO).unwrap(), b"Hello");
    }

    #[test]
    fn empty_messages() {
        for no_context_takeover in [false, true] {
            let n = symmetric(15, no_context_takeover);
            let mut deflater = Deflater::new(&n, 6);
            let mut inflater = Inflater::new(&n);
            assert_eq!(compress(&mut deflater, b""), [0x00], "fresh compressor");
            assert_eq!(compress(&mut deflater, b""), [0x00], "empty after empty");
            let hello = compress(&mut deflater, b"Hello");
            assert_eq!(compress(&mut deflater, b""), [0x00], "empty after a message");
            let hello_again = compress(&mut deflater, b"Hello");
            for (body, expected) in [
                (&[0x00][..], &b""[..]),
                (&hello, b"Hello"),
                (&[0x00], b""),
                (&hello_again, b"Hello"),
                (&[], b""),
            ] {
                assert_eq!(inflate(&mut inflater, body).unwrap(), expected);
            }
        }
    }

    #[test]
    fn output_is_appended() {
        let mut deflater = Deflater::new(&symmetric(15, false), 6);
        let mut body = b"head".to_vec();
        deflater.compress(b"Hello", &mut body);
        assert_eq!(&body[..4], b"head");
        assert_eq!(body[4..], HELLO);

        let mut inflater = Inflater::new(&symmetric(15, false));
        let mut out = b"head".to_vec();
        inflater.inflate(&HELLO, 5, &mut out).unwrap();
        assert_eq!(out, b"headHello");
    }

    #[test]
    fn corrupt_bodies() {
        let cases: [&[u8]; 4] = [
            &[0x07],                         // block type 3 does not exist
            &[0x00, 0x05, 0x00, 0x00, 0x00], // stored block whose length check fails
            &[0xfc, 0xff, 0xff, 0xff],       // dynamic block with a broken code length code
            &HELLO_AGAIN,                    // refers to data before the stream began
        ];
        for body in cases {
            let mut inflater = Inflater::new(&symmetric(15, false));
            let mut out = b"kept".to_vec();
            assert_eq!(
                inflater.inflate(body, MIB, &mut out),
                Err(InflateError::Corrupt),
                "{body:02x?}"
            );
            assert_eq!(out, b"kept", "nothing of a failed message is left behind");
            assert_eq!(
                inflate(&mut inflater, &HELLO).unwrap(),
                b"Hello",
                "usable after a reset"
            );
        }
    }

    #[test]
    fn size_limit_is_exact() {
        let payload: Vec<u8> = (0..1000u32).map(|i| (i % 13) as u8).collect();
        let body = compress(&mut Deflater::new(&symmetric(15, true), 6), &payload);
        let mut inflater = Inflater::new(&symmetric(15, true));
        let mut out = Vec::new();
        inflater.inflate(&body, 1000, &mut out).unwrap();
        assert_eq!(out, payload);
        let mut out = b"x".to_vec();
        assert_eq!(inflater.inflate(&body, 999, &mut out), Err(InflateError::TooBig));
        assert_eq!(out, b"x");
        assert!(out.capacity() <= 1 + 1000);
        let mut out = Vec::new();
        assert_eq!(inflater.inflate(&HELLO, 0, &mut out), Err(InflateError::TooBig));
        inflater.inflate(&[0x00], 0, &mut out).unwrap();
    }

    // ---- decompression bombs ----

    /// Writes bits the way DEFLATE packs them: least significant first.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        acc: u64,
        len: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, bits: u32) {
            self.acc |= u64::from(value) << self.len;
            self.len += bits;
            while self.len >= 8 {
                self.bytes.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }

        /// Huffman codes are packed starting from their most significant bit.
        fn put_code(&mut self, code: u32, bits: u32) {
            self.put(code.reverse_bits() >> (32 - bits), bits);
        }

        fn finish(mut self) -> Vec<u8> {
            if self.len > 0 {
                self.bytes.push(self.acc as u8);
            }
            self.bytes
        }
    }

    /// A message body of `1 + 258 * repeats` zero bytes: one literal, then
    /// the longest match at distance 1 over and over, in fixed Huffman codes
    /// (13 bits per 258 bytes), ended the way a sync flush ends it.
    fn zero_bomb(repeats: usize) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(0, 1); // BFINAL
        w.put(1, 2); // fixed Huffman codes
        w.put_code(0x30, 8); // literal 0
        for _ in 0..repeats {
            w.put_code(0xc5, 8); // length code 285: 258 bytes
            w.put_code(0, 5); // distance code 0: 1 byte back
        }
        w.put_code(0, 7); // end of block
        w.put(0, 3); // empty stored block header; its 00 00 ff ff is stripped
        w.finish()
    }

    #[test]
    fn zero_bomb_is_what_it_claims() {
        let body = zero_bomb(1000);
        let (data, max_distance) = audit::decode(&[&body]).unwrap();
        assert_eq!(data.len(), 1 + 258 * 1000);
        assert!(data.iter().all(|&b| b == 0));
        assert_eq!(max_distance, 1);
        let mut inflater = Inflater::new(&symmetric(15, false));
        assert_eq!(inflate(&mut inflater, &body).unwrap(), data);
    }

    #[test]
    fn bomb_of_100_mib_stops_at_the_limit() {
        let body = zero_bomb(100 * (1 << 20) / 258);
        assert!(body.len() < 700 * 1024);
        let mut inflater = Inflater::new(&symmetric(15, false));
        let mut out = Vec::new();
        assert_eq!(inflater.inflate(&body, MIB, &mut out), Err(InflateError::TooBig));
        assert!(out.is_empty());
        assert!(out.capacity() as u64 <= MIB + 1, "capacity {}", out.capacity());
    }

    #[test]
    fn bomb_from_our_own_compressor_stops_at_the_limit() {
        let zeros = vec![0u8; 4 << 20];
        let body = compress(&mut Deflater::new(&symmetric(15, false), 9), &zeros);
        assert!(body.len() < 8 * 1024, "{} bytes", body.len());
        let mut inflater = Inflater::new(&symmetric(15, false));
        let mut out = Vec::new();
        assert_eq!(inflater.inflate(&body, MIB, &mut out), Err(InflateError::TooBig));
        assert!(out.capacity() as u64 <= MIB + 1, "capacity {}", out.capacity());
        inflater.inflate(&body, 4 * MIB, &mut out).unwrap();
        assert_eq!(out, zeros);
        assert!(
            out.capacity() as u64 <= 4 * MIB + 1,
            "capacity {}",
            out.capacity()
        );
    }

    // ---- window bits 8 ----

    /// An independent raw DEFLATE decoder (RFC 1951) for the tests: slow
    /// and simple, and it reports the farthest back-reference it met, which
    /// is what a decoder's window must cover.
    mod audit {
        const LENGTH_BASE: [u16; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
            163, 195, 227, 258,
        ];
        const LENGTH_EXTRA: [u8; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [u16; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049,
            3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DIST_EXTRA: [u8; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
        ];
        const CODE_LENGTH_ORDER: [usize; 19] =
            [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

        struct Bits<'a> {
            data: &'a [u8],
            bit: usize,
        }

        impl Bits<'_> {
            fn get(&mut self, n: u32) -> Result<u32, &'static str> {
                let mut v = 0;
                for i in 0..n {
                    let byte = *self.data.get(self.bit / 8).ok_or("out of input")?;
                    v |= u32::from((byte >> (self.bit % 8)) & 1) << i;
                    self.bit += 1;
                }
                Ok(v)
            }

            fn align(&mut self) {
                self.bit = self.bit.next_multiple_of(8);
            }
        }

        /// A canonical Huffman code: how many codes of each length, and the
        /// symbols ordered by code.
        struct Code {
            counts: [u16; 16],
            symbols: Vec<u16>,
        }

        impl Code {
            fn new(lengths: &[u8]) -> Code {
                let mut counts = [0u16; 16];
                for &l in lengths {
                    counts[usize::from(l)] += 1;
                }
                counts[0] = 0;
                let mut symbols = Vec::new();
                for len in 1..16 {
                    for (sym, &l) in lengths.iter().enumerate() {
                        if usize::from(l) == len {
                            symbols.push(sym as u16);
                        }
                    }
                }
                Code { counts, symbols }
            }

            fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, &'static str> {
                // Codes of one length are consecutive numbers, starting where
                // the previous length's codes ended, shifted left by one.
                let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
                for len in 1..16 {
                    code |= bits.get(1)? as i32;
                    let count = i32::from(self.counts[len]);
                    if code - first < count {
                        return Ok(self.symbols[(index + code - first) as usize]);
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                Err("no such code")
            }
        }

        /// Decodes message bodies as a receiver does (each followed by
        /// `00 00 ff ff`, one stream across them). Returns the data and the
        /// longest distance.
        pub fn decode(bodies: &[&[u8]]) -> Result<(Vec<u8>, usize), &'static str> {
            let mut stream = Vec::new();
            for body in bodies {
                stream.extend_from_slice(body);
                stream.extend_from_slice(&super::SYNC_TRAILER);
            }
            let mut bits = Bits {
                data: &stream,
                bit: 0,
            };
            let mut out = Vec::new();
            let mut max_distance = 0;
            while bits.bit < stream.len() * 8 {
                let last = bits.get(1)? == 1;
                match bits.get(2)? {
                    0 => {
                        bits.align();
                        let len = bits.get(16)?;
                        if bits.get(16)? != !len & 0xffff {
                            return Err("stored length check");
                        }
                        for _ in 0..len {
                            out.push(bits.get(8)? as u8);
                        }
                    }
                    kind @ (1 | 2) => {
                        let (lit, dist) = if kind == 1 {
                            fixed_codes()
                        } else {
                            dynamic_codes(&mut bits)?
                        };
                        loop {
                            let sym = usize::from(lit.decode(&mut bits)?);
                            if sym < 256 {
                                out.push(sym as u8);
                                continue;
                            }
                            if sym == 256 {
                                break;
                            }
                            let i = sym - 257;
                            let len = usize::from(*LENGTH_BASE.get(i).ok_or("bad length")?)
                                + bits.get(u32::from(LENGTH_EXTRA[i]))? as usize;
                            let d = usize::from(dist.decode(&mut bits)?);
                            let distance = usize::from(*DIST_BASE.get(d).ok_or("bad distance")?)
                                + bits.get(u32::from(DIST_EXTRA[d]))? as usize;
                            if distance > out.len() {
                                return Err("distance before the start");
                            }
                            max_distance = max_distance.max(distance);
                            for _ in 0..len {
                                out.push(out[out.len() - distance]);
                            }
                        }
                    }
                    _ => return Err("block type 3"),
                }
                if last {
                    return Err("unexpected BFINAL");
                }
            }
            Ok((out, max_distance))
        }

        fn fixed_codes() -> (Code, Code) {
            let mut lit = [8u8; 288];
            lit[144..256].fill(9);
            lit[256..280].fill(7);
            (Code::new(&lit), Code::new(&[5; 30]))
        }

        fn dynamic_codes(bits: &mut Bits<'_>) -> Result<(Code, Code), &'static str> {
            let hlit = bits.get(5)? as usize + 257;
            let hdist = bits.get(5)? as usize + 1;
            let hclen = bits.get(4)? as usize + 4;
            let mut cl = [0u8; 19];
            for &i in &CODE_LENGTH_ORDER[..hclen] {
                cl[i] = bits.get(3)? as u8;
            }
            let cl = Code::new(&cl);
            let mut lengths = Vec::new();
            while lengths.len() < hlit + hdist {
                match cl.decode(bits)? {
                    l @ 0..=15 => lengths.push(l as u8),
                    16 => {
                        let prev = *lengths.last().ok_or("repeat with nothing before")?;
                        let n = 3 + bits.get(2)?;
                        lengths.resize(lengths.len() + n as usize, prev);
                    }
                    17 => {
                        let n = 3 + bits.get(3)?;
                        lengths.resize(lengths.len() + n as usize, 0);
                    }
                    _ => {
                        let n = 11 + bits.get(7)?;
                        lengths.resize(lengths.len() + n as usize, 0);
                    }
                }
            }
            if lengths.len() > hlit + hdist {
                return Err("code lengths overrun");
            }
            Ok((Code::new(&lengths[..hlit]), Code::new(&lengths[hlit..])))
        }
    }

    /// Simple pseudo-random bytes, the same on every run.
    fn noise(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn audit_decoder_reads_the_rfc_examples() {
        assert_eq!(
            audit::decode(&[&HELLO, &HELLO_AGAIN]).unwrap(),
            (b"HelloHello".to_vec(), 5)
        );
        assert_eq!(
            audit::decode(&[&HELLO_STORED, &HELLO_TWO_BLOCKS]).unwrap().0,
            b"HelloHello"
        );
    }

    #[test]
    fn window_8_never_reaches_back_more_than_256_bytes() {
        // A 300-byte random block repeated: the only matches are 300 back.
        let block = noise(7, 300);
        let data = block.repeat(8);
        let mut wide = Deflater::new(&symmetric(15, false), 9);
        let (decoded, max) = audit::decode(&[&compress(&mut wide, &data)]).unwrap();
        assert_eq!(
            (decoded.as_slice(), max),
            (data.as_slice(), 300),
            "the data tempts a wide window"
        );

        let eight = accepted(
            "permessage-deflate; server_max_window_bits=8",
            &DeflateConfig::default(),
        );
        assert_eq!(eight.server_max_window_bits, 8);
        for level in 0..=9 {
            let mut deflater = Deflater::new(&eight, level);
            let bodies: Vec<Vec<u8>> = (0..3).map(|_| compress(&mut deflater, &data)).collect();
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let (decoded, max) = audit::decode(&refs).unwrap();
            assert_eq!(decoded, data.repeat(3), "level {level}");
            assert!(max <= 256, "level {level}: distance {max}");
        }
    }

    /// Messages made of a few recurring random words and noise, so that
    /// matches turn up at every distance.
    fn wordy_messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let piece = prop_oneof![
            (0usize..8).prop_map(|w| noise(w as u32 + 100, 5 + w * 7)),
            prop::collection::vec(any::<u8>(), 1..40),
            (1usize..300).prop_map(|n| vec![b'a'; n]),
        ];
        let message = prop::collection::vec(piece, 0..40).prop_map(|p| p.concat());
        prop::collection::vec(message, 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn window_8_distances_fit(messages in wordy_messages(), level in 0u32..=9, no_ctx in any::<bool>()) {
            let n = symmetric(8, no_ctx);
            let mut deflater = Deflater::new(&n, level);
            let bodies: Vec<Vec<u8>> = messages.iter().map(|m| compress(&mut deflater, m)).collect();
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let (decoded, max) = audit::decode(&refs).unwrap();
            prop_assert_eq!(decoded, messages.concat());
            prop_assert!(max <= 256, "distance {}", max);
        }

        #[test]
        fn compressed_messages_fit_the_wire_bound(
            message in prop::collection::vec(any::<u8>(), 0..20_000),
            level in 0u32..=9,
        ) {
            // Random bytes are incompressible: the worst case a real encoder meets.
            let mut deflater = Deflater::new(&symmetric(15, true), level);
            let body = compress(&mut deflater, &message);
            prop_assert!(
                body.len() as u64 <= max_deflated_len(message.len() as u64),
                "{} bytes compressed to {}", message.len(), body.len()
            );
        }

        #[test]
        fn round_trip(
            messages in wordy_messages(),
            level in 0u32..=9,
            bits in 8u8..=15,
            no_ctx in any::<bool>(),
        ) {
            let n = symmetric(bits, no_ctx);
            let mut deflater = Deflater::new(&n, level);
            let mut inflater = Inflater::new(&n);
            for m in &messages {
                let body = compress(&mut deflater, m);
                prop_assert!(!body.is_empty());
                let mut out = Vec::new();
                inflater.inflate(&body, m.len() as u64, &mut out).unwrap();
                prop_assert_eq!(&out, m);
                if no_ctx {
                    // Each message stands alone.
                    let mut fresh = Inflater::new(&n);
                    let mut alone = Vec::new();
                    fresh.inflate(&body, m.len() as u64, &mut alone).unwrap();
                    prop_assert_eq!(&alone, m);
                }
            }
        }

        #[test]
        fn garbage_never_overruns_the_limit(
            bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..4),
            limit in 0u64..5000,
        ) {
            let mut inflater = Inflater::new(&symmetric(15, false));
            for body in &bodies {
                let mut out = Vec::new();
                let result = inflater.inflate(body, limit, &mut out);
                prop_assert!(out.len() as u64 <= limit);
                prop_assert!(out.capacity() as u64 <= limit + 1);
                if result.is_err() {
                    prop_assert!(out.is_empty());
                }
            }
        }
    }

    // ---- negotiation ----

    #[test]
    fn nothing_to_negotiate() {
        let config = DeflateConfig::default();
        assert_eq!(negotiate(&[], &config), Ok(None));
        assert_eq!(
            negotiate_with("x-webkit-deflate-frame, foo; bar=1", &config),
            Ok(None)
        );
        let off = DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        };
        assert_eq!(negotiate_with("permessage-deflate", &off), Ok(None));
    }

    #[test]
    fn plain_offer() {
        let n = accepted("permessage-deflate", &DeflateConfig::default());
        assert_eq!(n, symmetric(15, false));
        assert_eq!(n.response_header(), "permessage-deflate");
    }

    #[test]
    fn each_parameter_alone() {
        let config = DeflateConfig::default();
        // (offer parameters, response, server bits, client bits, server no ctx, client no ctx)
        let cases = [
            ("", "permessage-deflate", 15, 15, false, false),
            (
                "; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover",
                15,
                15,
                true,
                false,
            ),
            (
                "; client_no_context_takeover",
                "permessage-deflate; client_no_context_takeover",
                15,
                15,
                false,
                true,
            ),
            (
                "; server_max_window_bits=10",
                "permessage-deflate; server_max_window_bits=10",
                10,
                15,
                false,
                false,
            ),
            (
                "; server_max_window_bits=15",
                "permessage-deflate; server_max_window_bits=15",
                15,
                15,
                false,
                false,
            ),
            (
                "; server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=8",
                8,
                15,
                false,
                false,
            ),
            (
                "; server_max_window_bits=\"9\"",
                "permessage-deflate; server_max_window_bits=9",
                9,
                15,
                false,
                false,
            ),
            (
                "; client_max_window_bits",
                "permessage-deflate",
                15,
                15,
                false,
                false,
            ),
            (
                "; client_max_window_bits=15",
                "permessage-deflate",
                15,
                15,
                false,
                false,
            ),
            (
                "; client_max_window_bits=10",
                "permessage-deflate; client_max_window_bits=10",
                15,
                10,
                false,
                false,
            ),
            (
                "; client_max_window_bits=8",
                "permessage-deflate; client_max_window_bits=8",
                15,
                8,
                false,
                false,
            ),
        ];
        for (params, response, sbits, cbits, snct, cnct) in cases {
            let n = accepted(&format!("permessage-deflate{params}"), &config);
            assert_eq!(n.response_header(), response, "{params}");
            assert_eq!(
                (
                    n.server_max_window_bits,
                    n.client_max_window_bits,
                    n.server_no_context_takeover,
                    n.client_no_context_takeover
                ),
                (sbits, cbits, snct, cnct),
                "{params}"
            );
        }
    }

    #[test]
    fn all_parameters_together() {
        let n = accepted(
            "permessage-deflate; client_max_window_bits=12; server_max_window_bits=11; \
             client_no_context_takeover; server_no_context_takeover",
            &DeflateConfig::default(),
        );
        assert_eq!(
            n.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=11; client_max_window_bits=12"
        );
    }

    #[test]
    fn browser_and_autobahn_offers() {
        let config = DeflateConfig::default();
        let n = accepted("permessage-deflate; client_max_window_bits", &config);
        assert_eq!(n.response_header(), "permessage-deflate");
        let n = accepted(
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            &config,
        );
        assert_eq!(
            n.response_header(),
            "permessage-deflate; client_no_context_takeover"
        );
        let n = accepted(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; \
             client_no_context_takeover; client_max_window_bits, \
             permessage-deflate; client_no_context_takeover; client_max_window_bits",
            &config,
        );
        assert_eq!(
            n.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=8"
        );
    }

    #[test]
    fn configured_limits() {
        let config = DeflateConfig {
            level: 3,
            max_server_window_bits: 10,
            max_client_window_bits: 12,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let cases = [
            (
                "",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
                10,
                15,
            ),
            (
                "; client_max_window_bits",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                 client_max_window_bits=12",
                10,
                12,
            ),
            (
                "; client_max_window_bits=9",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                 client_max_window_bits=9",
                10,
                9,
            ),
            (
                "; server_max_window_bits=14; client_max_window_bits=15",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                 client_max_window_bits=12",
                10,
                12,
            ),
            (
                "; server_max_window_bits=9",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                9,
                15,
            ),
        ];
        for (params, response, sbits, cbits) in cases {
            let n = accepted(&format!("permessage-deflate{params}"), &config);
            assert_eq!(n.response_header(), response, "{params}");
            assert_eq!(
                (n.server_max_window_bits, n.client_max_window_bits),
                (sbits, cbits)
            );
            assert!(n.server_no_context_takeover);
        }
    }

    #[test]
    fn out_of_range_configuration_is_clamped() {
        let config = DeflateConfig {
            max_server_window_bits: 3,
            max_client_window_bits: 20,
            ..DeflateConfig::default()
        };
        let n = accepted("permessage-deflate; client_max_window_bits", &config);
        assert_eq!((n.server_max_window_bits, n.client_max_window_bits), (8, 15));
    }

    #[test]
    fn invalid_offers_are_declined() {
        use DeflateNegotiationError as E;
        let bits = |param: &str, value: &str| E::InvalidWindowBits {
            param: param.to_owned(),
            value: value.to_owned(),
        };
        let value = |param: &str, value: &str| E::UnexpectedValue {
            param: param.to_owned(),
            value: value.to_owned(),
        };
        let cases = [
            ("; foo", E::UnknownParameter("foo".into())),
            (
                "; server_no_context_takeover; x=1",
                E::UnknownParameter("x".into()),
            ),
            (
                "; max_window_bits=10",
                E::UnknownParameter("max_window_bits".into()),
            ),
            (
                "; server_no_context_takeover; server_no_context_takeover",
                E::DuplicateParameter("server_no_context_takeover".into()),
            ),
            (
                "; client_no_context_takeover; Client_No_Context_Takeover",
                E::DuplicateParameter("Client_No_Context_Takeover".into()),
            ),
            (
                "; server_max_window_bits=10; server_max_window_bits=10",
                E::DuplicateParameter("server_max_window_bits".into()),
            ),
            (
                "; client_max_window_bits; client_max_window_bits=10",
                E::DuplicateParameter("client_max_window_bits".into()),
            ),
            (
                "; server_no_context_takeover=1",
                value("server_no_context_takeover", "1"),
            ),
            (
                "; client_no_context_takeover=\"true\"",
                value("client_no_context_takeover", "true"),
            ),
            (
                "; server_max_window_bits",
                E::MissingValue("server_max_window_bits".into()),
            ),
            ("; server_max_window_bits=7", bits("server_max_window_bits", "7")),
            (
                "; server_max_window_bits=16",
                bits("server_max_window_bits", "16"),
            ),
            (
                "; server_max_window_bits=08",
                bits("server_max_window_bits", "08"),
            ),
            (
                "; server_max_window_bits=010",
                bits("server_max_window_bits", "010"),
            ),
            (
                "; server_max_window_bits=+9",
                bits("server_max_window_bits", "+9"),
            ),
            (
                "; server_max_window_bits=-9",
                bits("server_max_window_bits", "-9"),
            ),
            (
                "; server_max_window_bits=ten",
                bits("server_max_window_bits", "ten"),
            ),
            ("; client_max_window_bits=0", bits("client_max_window_bits", "0")),
            (
                "; client_max_window_bits=09",
                bits("client_max_window_bits", "09"),
            ),
            (
                "; client_max_window_bits=255",
                bits("client_max_window_bits", "255"),
            ),
            (
                "; client_max_window_bits=15.0",
                bits("client_max_window_bits", "15.0"),
            ),
        ];
        for (params, error) in cases {
            let header = format!("permessage-deflate{params}");
            assert_eq!(declined(&header), error, "{header}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn long_values_are_cut_in_errors() {
        let long = "9".repeat(500);
        match declined(&format!("permessage-deflate; server_max_window_bits={long}")) {
            DeflateNegotiationError::InvalidWindowBits { value, .. } => {
                assert!(value.chars().count() <= 67, "{value}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_declined_offer_falls_back_to_the_next() {
        let config = DeflateConfig::default();
        let n = accepted(
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=12",
            &config,
        );
        assert_eq!(
            n.response_header(),
            "permessage-deflate; server_max_window_bits=12"
        );
        let n = accepted("x-webkit-deflate-frame, permessage-deflate", &config);
        assert_eq!(n.response_header(), "permessage-deflate");
        // The first acceptable offer wins even when a later one asks for less.
        let n = accepted(
            "permessage-deflate, permessage-deflate; server_no_context_takeover",
            &config,
        );
        assert_eq!(n.response_header(), "permessage-deflate");
        // Only invalid offers: the first reason is reported.
        assert_eq!(
            declined("permessage-deflate; server_max_window_bits=7, permessage-deflate; a"),
            DeflateNegotiationError::InvalidWindowBits {
                param: "server_max_window_bits".into(),
                value: "7".into()
            }
        );
    }

    #[test]
    fn names_ignore_case() {
        let n = accepted(
            "PerMessage-Deflate; Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS=9",
            &DeflateConfig::default(),
        );
        assert_eq!(
            n.response_header(),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"
        );
    }

    #[test]
    fn window_bits_syntax() {
        for v in 8..=15u8 {
            assert_eq!(parse_window_bits(&v.to_string()), Some(v));
        }
        for bad in [
            "",
            "0",
            "1",
            "7",
            "16",
            "08",
            "015",
            "+8",
            " 9",
            "9 ",
            "1O",
            "٩",
            "99999999999",
        ] {
            assert_eq!(parse_window_bits(bad), None, "{bad:?}");
        }
    }

    /// Every combination a client can offer, under a few configurations:
    /// the answer follows RFC 7692 §7.1 and both directions work with it.
    #[test]
    fn every_offer_combination() {
        let configs = [
            DeflateConfig::default(),
            DeflateConfig {
                max_server_window_bits: 8,
                max_client_window_bits: 9,
                server_no_context_takeover: true,
                ..DeflateConfig::default()
            },
            DeflateConfig {
                max_server_window_bits: 12,
                max_client_window_bits: 10,
                ..DeflateConfig::default()
            },
        ];
        let server_bits: Vec<Option<u8>> = std::iter::once(None).chain((8..=15).map(Some)).collect();
        let client_bits: Vec<Option<Option<u8>>> = [None, Some(None)]
            .into_iter()
            .chain((8..=15).map(|b| Some(Some(b))))
            .collect();
        for config in &configs {
            for snct in [false, true] {
                for cnct in [false, true] {
                    for &sbits in &server_bits {
                        for &cbits in &client_bits {
                            let mut header = String::from("permessage-deflate");
                            if snct {
                                header.push_str("; server_no_context_takeover");
                            }
                            if cnct {
                                header.push_str("; client_no_context_takeover");
                            }
                            if let Some(b) = sbits {
                                header.push_str(&format!("; server_max_window_bits={b}"));
                            }
                            match cbits {
                                None => {}
                                Some(None) => header.push_str("; client_max_window_bits"),
                                Some(Some(b)) => header.push_str(&format!("; client_max_window_bits={b}")),
                            }
                            check_combination(&header, config, snct, cnct, sbits, cbits);
                        }
                    }
                }
            }
        }
    }

    fn check_combination(
        header: &str,
        config: &DeflateConfig,
        snct: bool,
        cnct: bool,
        sbits: Option<u8>,
        cbits: Option<Option<u8>>,
    ) {
        let n = accepted(header, config);
        let response = offers(&n.response_header());
        assert_eq!(response.len(), 1, "{header}");
        let r = &response[0];
        assert_eq!(r.name, "permessage-deflate");
        let mut names: Vec<&str> = r.params.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), r.params.len(), "no repeats: {header}");

        assert_eq!(
            n.server_no_context_takeover,
            snct || config.server_no_context_takeover
        );
        assert_eq!(
            r.param(SERVER_NO_CONTEXT_TAKEOVER),
            n.server_no_context_takeover.then_some(None)
        );
        assert_eq!(n.client_no_context_takeover, cnct);
        assert_eq!(r.param(CLIENT_NO_CONTEXT_TAKEOVER), cnct.then_some(None));

        let expected_server = sbits.unwrap_or(15).min(config.max_server_window_bits);
        assert_eq!(n.server_max_window_bits, expected_server, "{header}");
        let announced = r.param(SERVER_MAX_WINDOW_BITS);
        if sbits.is_some() || expected_server < 15 {
            assert_eq!(
                announced,
                Some(Some(expected_server.to_string().as_str())),
                "{header}"
            );
        } else {
            assert_eq!(announced, None, "{header}");
        }

        let announced = r.param(CLIENT_MAX_WINDOW_BITS);
        match cbits {
            None => {
                assert_eq!(n.client_max_window_bits, 15);
                assert_eq!(announced, None, "never without the client's consent: {header}");
            }
            Some(hint) => {
                let expected = hint.unwrap_or(15).min(config.max_client_window_bits);
                assert_eq!(n.client_max_window_bits, expected, "{header}");
                let value = announced.map(|v| v.expect("with a value").parse::<u8>().unwrap());
                assert_eq!(value.unwrap_or(15), expected, "{header}");
            }
        }

        // Our side compresses within what we announced; the client's side
        // is modelled by our own pair with the directions swapped.
        let mut deflater = Deflater::new(&n, config.level);
        let mut client_inflater = Inflater::new(&symmetric(n.server_max_window_bits, false));
        let client_side = symmetric(n.client_max_window_bits, n.client_no_context_takeover);
        let mut client_deflater = Deflater::new(&client_side, 6);
        let mut inflater = Inflater::new(&n);
        for _ in 0..2 {
            let body = compress(&mut deflater, b"Hello, Hello, Hello");
            assert_eq!(
                inflate(&mut client_inflater, &body).unwrap(),
                b"Hello, Hello, Hello"
            );
            let body = compress(&mut client_deflater, b"Hello, Hello, Hello");
            assert_eq!(inflate(&mut inflater, &body).unwrap(), b"Hello, Hello, Hello");
        }
    }
}
