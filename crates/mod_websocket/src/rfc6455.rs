//! RFC 6455 framing (with permessage-deflate when negotiated) for the
//! session engine.

use websocket_engine::config::DirConfig;
use websocket_engine::session::{Failure, Incoming, WireProtocol};
use websocket_proto::close::{CloseCode, ClosePayload};
use websocket_proto::decoder::{Decoder, DecoderConfig, Event, MessageKind};
use websocket_proto::deflate::{InflateError, Inflater, Negotiated};
use websocket_proto::ProtocolVersion;

/// Capacity the inflate buffer may keep between messages.
const RETAINED_INFLATE_CAPACITY: usize = 256 * 1024;

pub(crate) struct Rfc6455 {
    decoder: Decoder,
    version: ProtocolVersion,
    max_message_size: u64,
    inflater: Option<Inflater>,
    inflated: Vec<u8>,
}

impl Rfc6455 {
    pub(crate) fn new(version: ProtocolVersion, conf: &DirConfig, deflate: Option<&Negotiated>) -> Self {
        Rfc6455 {
            decoder: Decoder::new(DecoderConfig {
                max_message_size: conf.max_message_size(),
                version,
                allow_reserved_close_codes: conf.allow_reserved_close_codes(),
                allow_rsv1: deflate.is_some(),
                ..DecoderConfig::default()
            }),
            version,
            max_message_size: conf.max_message_size(),
            inflater: deflate.map(Inflater::new),
            inflated: Vec::new(),
        }
    }
}

impl WireProtocol for Rfc6455 {
    fn consume(
        &mut self,
        input: &mut [u8],
        sink: &mut dyn FnMut(Incoming<'_>) -> bool,
    ) -> Result<(), Failure> {
        let Rfc6455 {
            decoder,
            version,
            max_message_size,
            inflater,
            inflated,
        } = self;
        let mut pos = 0;
        while pos < input.len() {
            let (used, event) = decoder.decode(&mut input[pos..]).map_err(|e| Failure {
                code: e.close_code(*version),
                reason: e.to_string(),
            })?;
            pos += used;
            let Some(event) = event else { break };
            let incoming = match event {
                Event::Message {
                    kind,
                    data,
                    compressed: true,
                } => {
                    // The decoder only lets RSV1 through when deflate was negotiated.
                    let inflater = inflater.as_mut().ok_or_else(|| Failure {
                        code: CloseCode::PROTOCOL_ERROR,
                        reason: "compressed message without permessage-deflate".to_owned(),
                    })?;
                    if inflated.capacity() > RETAINED_INFLATE_CAPACITY {
                        *inflated = Vec::new();
                    }
                    inflated.clear();
                    inflater
                        .inflate(data, *max_message_size, inflated)
                        .map_err(|e| match e {
                            InflateError::TooBig => Failure {
                                code: CloseCode(version.too_big_code()),
                                reason: format!(
                                    "inflated message larger than the limit of {max_message_size} bytes"
                                ),
                            },
                            InflateError::Corrupt => Failure {
                                code: CloseCode::INVALID_PAYLOAD,
                                reason: "invalid deflate data".to_owned(),
                            },
                        })?;
                    if kind == MessageKind::Text && websocket_proto::utf8::validate(inflated).is_err() {
                        return Err(Failure {
                            code: CloseCode::INVALID_PAYLOAD,
                            reason: "invalid UTF-8 in a compressed text message".to_owned(),
                        });
                    }
                    Incoming::Message {
                        kind,
                        data: &mut inflated[..],
                    }
                }
                Event::Message { kind, data, .. } => Incoming::Message { kind, data },
                Event::Ping(p) => Incoming::Ping(p),
                Event::Pong(p) => Incoming::Pong(p),
                Event::Close(frame) => Incoming::Close {
                    reply: ClosePayload::reply_to(&frame),
                    description: match (frame.code, frame.reason.is_empty()) {
                        (None, _) => "no status code".to_owned(),
                        (Some(code), true) => format!("code {code}"),
                        (Some(code), false) => {
                            format!("code {code}, reason \"{}\"", frame.reason.escape_debug())
                        }
                    },
                },
            };
            if !sink(incoming) {
                break;
            }
        }
        Ok(())
    }
}
