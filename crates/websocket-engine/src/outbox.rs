//! The queue between plugins and the session: frames any thread sends are
//! encoded (with the connection's framing and compression, see
//! [`websocket_proto::connection::Outgoing`]) into one queue of bytes under a
//! lock, which the session takes and writes. The queue is bounded: a sender
//! on another thread waits while it is full, and every sender gets "closed"
//! at once after the session ended.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use httpd::poll::Waker;
use websocket_proto::connection::{Compression, Family, Outgoing, Output, Sent};
use websocket_proto::frame::FrameHeader;
use websocket_proto::Opcode;

/// Bytes other threads may queue before `send` waits for the session to
/// write them out. One message larger than this still goes through alone.
pub const QUEUE_LIMIT: usize = 1 << 20;

struct Queue {
    out: Outgoing,
    /// Wakes the session when another thread queued something.
    waker: Option<Waker>,
    /// Senders waiting for space: the session only signals when there are
    /// any (a condvar notify is a system call even with nobody waiting).
    waiting: usize,
}

/// Encoded frames waiting for the session.
pub struct Outbox {
    queue: Mutex<Queue>,
    space: Condvar,
    /// The session is over: every send fails. Set under the queue's lock,
    /// and read without it too (the session asks after every batch).
    closed: AtomicBool,
    /// A close frame is queued (set under the lock, read without it: the
    /// protocol asks at every step).
    close_queued: AtomicBool,
    /// Data messages and their payload bytes encoded so far, and sends
    /// that waited for room: copies readable without the lock (metrics).
    messages: AtomicU64,
    payload: AtomicU64,
    waits: AtomicU64,
}

/// What an outbox has counted, read without its lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub messages: u64,
    pub payload: u64,
    /// Sends from other threads that waited for a full queue.
    pub waits: u64,
}

impl Outbox {
    pub fn new(family: &Family, compression: Option<Compression>) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue {
                out: Outgoing::new(family, compression),
                waker: None,
                waiting: 0,
            }),
            space: Condvar::new(),
            closed: AtomicBool::new(false),
            close_queued: AtomicBool::new(false),
            messages: AtomicU64::new(0),
            payload: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A plugin thread that panicked while holding the lock leaves only
        // bytes behind; the queue stays usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What has been queued or written for the client so far.
    pub fn sent(&self) -> Sent {
        self.lock().out.sent()
    }

    /// Whether a close frame has been queued.
    pub fn close_queued(&self) -> bool {
        self.close_queued.load(Ordering::Acquire)
    }

    /// Queues under the lock; notes a close frame.
    fn send_locked(&self, q: &mut Queue, opcode: Opcode, payload: &[u8]) -> bool {
        if self.is_closed() || q.out.send(opcode, payload).is_err() {
            return false;
        }
        if opcode == Opcode::Close {
            self.close_queued.store(true, Ordering::Release);
        }
        self.mirror(&q.out);
        true
    }

    fn mirror(&self, out: &Outgoing) {
        let sent = out.sent();
        self.messages.store(sent.messages, Ordering::Relaxed);
        self.payload.store(sent.payload, Ordering::Relaxed);
    }

    /// What has been counted, without the lock.
    pub fn counts(&self) -> OutboxCounts {
        OutboxCounts {
            messages: self.messages.load(Ordering::Relaxed),
            payload: self.payload.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
        }
    }

    /// Senders blocked on a full queue right now.
    #[cfg(test)]
    fn blocked_senders(&self) -> usize {
        self.lock().waiting
    }

    /// Queues one frame. `from_session` senders (the thread stepping the
    /// session, which is the one that would drain the queue) never wait.
    /// Returns false if nothing can be sent.
    pub fn push(&self, from_session: bool, opcode: Opcode, payload: &[u8]) -> bool {
        let size = FrameHeader::MAX_LEN + payload.len();
        let mut q = self.lock();
        if !from_session {
            let mut waited = false;
            while !self.is_closed()
                && !q.out.close_sent()
                && q.out.pending() > 0
                && q.out.pending() + size > QUEUE_LIMIT
            {
                q.waiting += 1;
                if !waited {
                    waited = true;
                    self.waits.fetch_add(1, Ordering::Relaxed);
                }
                q = self.space.wait(q).unwrap_or_else(|e| e.into_inner());
                q.waiting -= 1;
            }
        }
        if !self.send_locked(&mut q, opcode, payload) {
            return false;
        }
        if !from_session {
            let waker = q.waker.clone();
            drop(q);
            wake(waker);
        }
        true
    }

    /// Sends one data frame without copying `payload`: `write` gets what is
    /// queued, the frame header and the payload, in that order, and takes
    /// charge of them (false if the connection failed). Only for the
    /// session's own thread, which alone writes. `None` when the frame must
    /// go through the queue instead (compressed, a control frame, or not
    /// RFC 6455 framing).
    pub fn push_direct(
        &self,
        opcode: Opcode,
        payload: &[u8],
        write: impl FnOnce(&[&[u8]]) -> bool,
    ) -> Option<bool> {
        let mut q = self.lock();
        if self.is_closed() || q.out.close_sent() {
            return Some(false);
        }
        let header = q.out.direct_header(opcode, payload.len())?;
        self.mirror(&q.out);
        // Written outside the lock: other threads keep queueing meanwhile,
        // and what they queue goes out after this frame.
        let mut queued = Vec::new();
        q.out.take(&mut queued);
        let waiting = q.waiting > 0;
        drop(q);
        if waiting {
            self.space.notify_all();
        }
        if !write(&[&queued, header.as_bytes(), payload]) {
            self.close();
            return Some(false);
        }
        Some(true)
    }

    /// Whether the session has ended for senders (or a direct write failed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues bytes that are not a message (the draft-76 handshake answer).
    pub fn push_raw(&self, bytes: &[u8]) {
        self.lock().out.send_raw(bytes);
    }

    /// Moves everything queued to the end of `out`.
    pub fn take(&self, out: &mut Vec<u8>) {
        let mut q = self.lock();
        q.out.take(out);
        let waiting = q.waiting > 0;
        drop(q);
        if waiting {
            self.space.notify_all();
        }
    }

    /// Whether frames are queued that the session has not taken.
    pub fn has_output(&self) -> bool {
        self.lock().out.pending() > 0
    }

    pub fn set_waker(&self, waker: Option<Waker>) {
        self.lock().waker = waker;
    }

    /// Ends the session for senders: pending and future sends return 0.
    pub fn close(&self) {
        let mut q = self.lock();
        self.closed.store(true, Ordering::Release);
        q.waker = None;
        q.out.discard();
        drop(q);
        self.space.notify_all();
    }
}

/// What [`Outbox::offer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// This connection's wire cannot carry the message (binary to a
    /// draft-76 client); it stays subscribed for what it can carry.
    Unsupported,
    /// The connection takes nothing more (it ended, is closing, or was
    /// just closed for being too slow).
    Gone,
}

/// The reason of the close a subscriber gets when it cannot keep up.
pub const TOO_SLOW: &str = "too slow for channel messages";

impl Outbox {
    /// Queues a channel message without ever waiting: a connection whose
    /// queue is full (its client does not read what it is sent) is closed
    /// with 1013 instead, so that one slow subscriber slows down nobody
    /// else. One message larger than the queue still goes through alone.
    pub fn offer(&self, opcode: Opcode, payload: &[u8]) -> Offered {
        let size = FrameHeader::MAX_LEN + payload.len();
        let mut q = self.lock();
        if self.is_closed() || q.out.close_sent() || self.close_queued() {
            return Offered::Gone;
        }
        let full = q.out.pending() > 0 && q.out.pending() + size > QUEUE_LIMIT;
        let offered = if full {
            let close = websocket_proto::close::ClosePayload::new(
                websocket_proto::close::CloseCode::TRY_AGAIN_LATER,
                TOO_SLOW,
            );
            self.send_locked(&mut q, Opcode::Close, close.as_bytes());
            Offered::Gone
        } else if self.send_locked(&mut q, opcode, payload) {
            Offered::Queued
        } else if self.is_closed() || q.out.close_sent() {
            Offered::Gone
        } else {
            Offered::Unsupported
        };
        let waker = q.waker.clone();
        drop(q);
        wake(waker);
        offered
    }
}

/// Wakes a session after its queue's lock is released: woken at once, it
/// takes that lock first, and would otherwise find it held and sleep again.
fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

/// The protocol connection's view of an outbox
/// ([`websocket_proto::connection::Output`]): it locks only to queue the
/// protocol's own frames, and reads whether a close is queued without the
/// lock.
pub struct OutboxOutput<'a>(pub &'a Outbox);

impl Output for OutboxOutput<'_> {
    fn control(&mut self, opcode: Opcode, payload: &[u8]) {
        let mut q = self.0.lock();
        self.0.send_locked(&mut q, opcode, payload);
    }

    fn close_queued(&self) -> Option<Option<u16>> {
        if self.0.close_queued() {
            self.0.lock().out.sent().close
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use websocket_proto::ProtocolVersion;

    const RFC6455: Family = Family::Rfc6455 {
        version: ProtocolVersion::V13,
        deflate: None,
    };

    #[test]
    fn offers_never_wait_and_close_a_full_queue_with_1013() {
        let outbox = Outbox::new(&RFC6455, None);
        let big = vec![7u8; QUEUE_LIMIT / 2];
        assert_eq!(outbox.offer(Opcode::Binary, &big), Offered::Queued);
        assert_eq!(outbox.offer(Opcode::Binary, &big), Offered::Gone);
        assert!(outbox.close_queued());
        assert_eq!(outbox.sent().close, Some(Some(1013)));
        assert_eq!(outbox.offer(Opcode::Text, b"late"), Offered::Gone);
        let mut bytes = Vec::new();
        outbox.take(&mut bytes);
        // The first message, then the close: nothing of the second.
        assert_eq!(bytes.len(), 10 + big.len() + 2 + 2 + TOO_SLOW.len());
        // One message larger than the queue goes through an empty queue.
        let other = Outbox::new(&RFC6455, None);
        assert_eq!(
            other.offer(Opcode::Binary, &vec![0; QUEUE_LIMIT + 1]),
            Offered::Queued
        );
        other.close();
        assert_eq!(other.offer(Opcode::Binary, b"x"), Offered::Gone);
        // A draft-76 client cannot take binary, but stays for text.
        let legacy = Outbox::new(&Family::Legacy, None);
        assert_eq!(legacy.offer(Opcode::Binary, b"\x00"), Offered::Unsupported);
        assert_eq!(legacy.offer(Opcode::Text, b"t"), Offered::Queued);
    }

    #[test]
    fn frames_are_encoded_in_order() {
        let outbox = Outbox::new(&RFC6455, None);
        assert!(outbox.push(true, Opcode::Text, b"hi"));
        assert!(outbox.push(false, Opcode::Binary, &[1, 2]));
        let mut out = Vec::new();
        outbox.take(&mut out);
        assert!(!outbox.close_queued());
        assert_eq!(out, [0x81, 2, b'h', b'i', 0x82, 2, 1, 2]);
    }

    #[test]
    fn counts_what_was_sent() {
        let outbox = Outbox::new(&RFC6455, None);
        assert!(outbox.push(true, Opcode::Text, b"a"));
        assert!(outbox.push(false, Opcode::Binary, b"b"));
        assert!(outbox.push(true, Opcode::Pong, b""));
        let mut out = Vec::new();
        assert_eq!(outbox.push_direct(Opcode::Binary, b"c", |_| true), Some(true));
        assert_eq!(
            outbox.sent(),
            Sent {
                messages: 3,
                payload: 3,
                close: None
            }
        );
        assert!(outbox.push(true, Opcode::Close, &4001u16.to_be_bytes()));
        assert!(!outbox.push(true, Opcode::Text, b"late"));
        outbox.take(&mut out);
        assert_eq!(
            outbox.sent(),
            Sent {
                messages: 3,
                payload: 3,
                close: Some(Some(4001))
            }
        );
        let plain = Outbox::new(&RFC6455, None);
        assert!(plain.push(true, Opcode::Close, b""));
        assert_eq!(plain.sent().close, Some(None));
        let legacy = Outbox::new(&Family::Legacy, None);
        assert!(legacy.push(true, Opcode::Text, b"x"));
        assert!(legacy.push(true, Opcode::Close, &1000u16.to_be_bytes()));
        assert_eq!(
            legacy.sent(),
            Sent {
                messages: 1,
                payload: 1,
                close: Some(None)
            }
        );
    }

    #[test]
    fn nothing_follows_a_close_frame() {
        let outbox = Outbox::new(&RFC6455, None);
        assert!(outbox.push(true, Opcode::Close, &[0x03, 0xE8]));
        assert!(!outbox.push(true, Opcode::Text, b"late"));
        let mut out = Vec::new();
        outbox.take(&mut out);
        assert!(outbox.close_queued());
        assert_eq!(out, [0x88, 2, 0x03, 0xE8]);
    }

    #[test]
    fn legacy_framing_carries_text_and_close_only() {
        let outbox = Outbox::new(&Family::Legacy, None);
        outbox.push_raw(b"digest");
        assert!(outbox.push(true, Opcode::Text, "é".as_bytes()));
        assert!(!outbox.push(true, Opcode::Binary, b"x"));
        assert!(!outbox.push(true, Opcode::Ping, b""));
        assert!(outbox.push(true, Opcode::Close, b""));
        let mut out = Vec::new();
        outbox.take(&mut out);
        assert_eq!(out, b"digest\x00\xc3\xa9\xff\xff\x00");
    }

    #[test]
    fn direct_frames_follow_what_is_queued_and_leave_the_payload_alone() {
        let outbox = Outbox::new(&RFC6455, None);
        assert!(outbox.push(true, Opcode::Pong, b"p"));
        let payload = vec![7u8; 65_000];
        let mut wire = Vec::new();
        let sent = outbox.push_direct(Opcode::Binary, &payload, |parts| {
            assert_eq!(parts.len(), 3);
            assert!(
                std::ptr::eq(parts[2], payload.as_slice()),
                "the payload is not copied"
            );
            parts.iter().for_each(|p| wire.extend_from_slice(p));
            true
        });
        assert_eq!(sent, Some(true));
        assert_eq!(&wire[..3], [0x8A, 1, b'p']);
        assert_eq!(&wire[3..7], [0x82, 126, 0xFD, 0xE8]);
        assert_eq!(wire.len(), 3 + 4 + 65_000);
        let mut out = Vec::new();
        outbox.take(&mut out);
        assert!(!outbox.close_queued());
        assert!(out.is_empty(), "the queued pong went out with the frame");
    }

    #[test]
    fn direct_frames_are_refused_where_they_cannot_be_written_as_is() {
        let never = |_: &[&[u8]]| -> bool { panic!("nothing may be written") };
        let legacy = Outbox::new(&Family::Legacy, None);
        assert_eq!(legacy.push_direct(Opcode::Text, b"x", never), None);
        let compressing = Outbox::new(
            &RFC6455,
            Some(Compression {
                negotiated: websocket_proto::deflate::negotiate(
                    &websocket_proto::handshake::parse_extensions("permessage-deflate").unwrap(),
                    &Default::default(),
                )
                .unwrap()
                .unwrap(),
                level: 1,
                min_size: 64,
            }),
        );
        assert_eq!(compressing.push_direct(Opcode::Binary, &[0; 100], never), None);
        assert_eq!(
            compressing.push_direct(Opcode::Binary, &[0; 10], |_| true),
            Some(true),
            "below the compression threshold"
        );
        let closing = Outbox::new(&RFC6455, None);
        assert!(closing.push(true, Opcode::Close, &[0x03, 0xE8]));
        assert_eq!(closing.push_direct(Opcode::Binary, b"late", never), Some(false));
    }

    #[test]
    fn a_failed_direct_write_ends_the_session_for_senders() {
        let outbox = Outbox::new(&RFC6455, None);
        assert_eq!(outbox.push_direct(Opcode::Binary, b"x", |_| false), Some(false));
        assert!(outbox.is_closed());
        assert!(!outbox.push(true, Opcode::Text, b"after"));
    }

    #[test]
    fn a_full_queue_blocks_other_threads_until_drained() {
        let outbox = Arc::new(Outbox::new(&RFC6455, None));
        let big = vec![0u8; QUEUE_LIMIT];
        assert!(
            outbox.push(false, Opcode::Binary, &big),
            "one oversized message passes alone"
        );
        let sender = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.push(false, Opcode::Binary, b"next"))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!sender.is_finished(), "back-pressure holds the sender");
        let mut out = Vec::new();
        outbox.take(&mut out);
        assert!(sender.join().unwrap());
        out.clear();
        outbox.take(&mut out);
        assert_eq!(out, [0x82, 4, b'n', b'e', b'x', b't']);
    }

    #[test]
    fn closing_releases_blocked_senders_with_failure() {
        let outbox = Arc::new(Outbox::new(&RFC6455, None));
        assert!(outbox.push(false, Opcode::Binary, &vec![0u8; QUEUE_LIMIT]));
        let sender = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.push(false, Opcode::Binary, b"next"))
        };
        // Only a sender that really blocked proves that closing releases it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while outbox.blocked_senders() == 0 {
            assert!(std::time::Instant::now() < deadline, "the sender never blocked");
            std::thread::sleep(Duration::from_millis(1));
        }
        outbox.close();
        assert!(!sender.join().unwrap());
        assert!(!outbox.push(true, Opcode::Text, b"after"));
    }
}
