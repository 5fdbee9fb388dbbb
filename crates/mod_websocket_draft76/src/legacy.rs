//! draft-75/76 framing for the session engine.

use websocket_engine::session::{Failure, Incoming, WireProtocol};
use websocket_proto::close::{CloseCode, ClosePayload};
use websocket_proto::decoder::MessageKind;
use websocket_proto::legacy::{LegacyDecodeError, LegacyDecoder, LegacyEvent};

pub(crate) struct Legacy {
    decoder: LegacyDecoder,
    /// The plugin ABI hands out a mutable buffer; decoded text is borrowed
    /// immutably, so it is copied here first.
    scratch: Vec<u8>,
}

impl Legacy {
    pub(crate) fn new(max_message_size: u64) -> Self {
        Legacy {
            decoder: LegacyDecoder::new(max_message_size),
            scratch: Vec::new(),
        }
    }
}

impl WireProtocol for Legacy {
    fn consume(
        &mut self,
        input: &mut [u8],
        sink: &mut dyn FnMut(Incoming<'_>) -> bool,
    ) -> Result<(), Failure> {
        let mut pos = 0;
        while pos < input.len() {
            let (used, result) = self.decoder.decode(&input[pos..]);
            pos += used;
            let event = result.map_err(|e| Failure {
                code: match e {
                    LegacyDecodeError::TooBig => CloseCode::MESSAGE_TOO_BIG,
                    LegacyDecodeError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
                    LegacyDecodeError::LengthOverflow => CloseCode::PROTOCOL_ERROR,
                },
                reason: e.to_string(),
            })?;
            let keep_going = match event {
                None => break,
                Some(LegacyEvent::Text(text)) => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(text.as_bytes());
                    sink(Incoming::Message {
                        kind: MessageKind::Text,
                        data: &mut self.scratch,
                    })
                }
                Some(LegacyEvent::Close) => sink(Incoming::Close {
                    reply: ClosePayload::empty(),
                    description: "closing frame".to_owned(),
                }),
            };
            if !keep_going {
                break;
            }
        }
        if self.scratch.capacity() > 64 * 1024 {
            self.scratch = Vec::new();
        }
        Ok(())
    }
}
