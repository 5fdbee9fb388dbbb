//! RFC 6455 framing for the session engine.

use websocket_engine::config::DirConfig;
use websocket_engine::session::{Failure, Incoming, WireProtocol};
use websocket_proto::close::ClosePayload;
use websocket_proto::decoder::{Decoder, DecoderConfig, Event};
use websocket_proto::ProtocolVersion;

pub(crate) struct Rfc6455 {
    decoder: Decoder,
    version: ProtocolVersion,
}

impl Rfc6455 {
    pub(crate) fn new(version: ProtocolVersion, conf: &DirConfig) -> Self {
        Rfc6455 {
            decoder: Decoder::new(DecoderConfig {
                max_message_size: conf.max_message_size(),
                version,
                allow_reserved_close_codes: conf.allow_reserved_close_codes(),
                ..DecoderConfig::default()
            }),
            version,
        }
    }
}

impl WireProtocol for Rfc6455 {
    fn consume(
        &mut self,
        input: &mut [u8],
        sink: &mut dyn FnMut(Incoming<'_>) -> bool,
    ) -> Result<(), Failure> {
        let mut pos = 0;
        while pos < input.len() {
            let (used, event) = self.decoder.decode(&mut input[pos..]).map_err(|e| Failure {
                code: e.close_code(self.version),
                reason: e.to_string(),
            })?;
            pos += used;
            let Some(event) = event else { break };
            let incoming = match event {
                Event::Message { kind, data, .. } => Incoming::Message { kind, data },
                Event::Ping(p) => Incoming::Ping(p),
                Event::Pong(p) => Incoming::Pong(p),
                Event::Close(frame) => Incoming::Close {
                    reply: ClosePayload::reply_to(&frame),
                    description: format!("code {:?}, reason {:?}", frame.code.map(|c| c.0), frame.reason),
                },
            };
            if !sink(incoming) {
                break;
            }
        }
        Ok(())
    }
}
