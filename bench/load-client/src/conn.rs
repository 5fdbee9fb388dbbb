//! One connection: keeps `inflight` messages outstanding, verifies every
//! echoed byte as it arrives, and times each round trip.
//!
//! Each connection is a single task that writes whatever is queued and reads
//! whatever has arrived, so it never stops reading while a large write is
//! blocked (the server may be blocked writing to us at the same time).

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::time::Instant;

use flate2::{Decompress, FlushDecompress};
use tokio::io::Interest;

use crate::link::Link;
use crate::payload::{tag, MASK_KEY, TAG_LEN};
use crate::wire::{
    client_header, parse_server_header, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};

/// Payloads up to this size are copied into the output buffer; larger ones
/// are written straight from the shared premasked template.
const COPY_LIMIT: usize = 4096;
const READ_BUF: usize = 256 * 1024;

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Messages flow but are not counted.
    Warmup,
    /// Messages completed now are counted and timed.
    Measure,
    /// No new messages; drain, then close.
    Stop,
}

/// A precompressed message of the deflate case.
pub struct Variant {
    /// What the echo must inflate to.
    pub plain: Vec<u8>,
    /// The compressed body, masked.
    pub masked_body: Rc<Vec<u8>>,
}

/// What every connection of a case sends, prepared once.
pub struct Workload {
    /// Raw bytes (no WebSocket framing), for mod_echo.
    pub raw: bool,
    pub size: usize,
    pub inflight: usize,
    pub opcode: u8,
    /// The payload after the tag, unmasked (what the echo must carry).
    pub template: Vec<u8>,
    /// The same, masked with [`MASK_KEY`] from offset 0 (raw: unmasked).
    pub premasked: Rc<Vec<u8>>,
    /// Non-empty for permessage-deflate: message `seq` is variant `seq % len`.
    pub variants: Vec<Variant>,
}

impl Workload {
    /// The tag and full expected payload of message `seq` (the tag bytes of
    /// the payload are placeholders).
    fn expected(&self, seq: u64) -> ([u8; TAG_LEN], &[u8]) {
        if self.variants.is_empty() {
            (tag(seq), &self.template)
        } else {
            let v = (seq % self.variants.len() as u64) as usize;
            (tag(v as u64), &self.variants[v].plain)
        }
    }
}

/// What a connection measured.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Messages completed during the measurement phase.
    pub measured: u64,
    /// Their round-trip times in nanoseconds (saturating at ~4.3 s).
    pub latencies_ns: Vec<u32>,
    /// Payload bytes their echoes took on the wire (compressed, if they were).
    pub wire_bytes: u64,
}

enum Chunk {
    Own(Vec<u8>),
    Shared(Rc<Vec<u8>>, usize, usize),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Own(v) => v,
            Chunk::Shared(rc, start, end) => &rc[*start..*end],
        }
    }
}

/// Bytes waiting to be written: small copies and slices of shared templates.
#[derive(Default)]
struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// How much of the front chunk is written.
    front_pos: usize,
    spare: Vec<Vec<u8>>,
}

impl OutQueue {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The owned buffer at the tail, to append small pieces to.
    fn tail(&mut self) -> &mut Vec<u8> {
        let reuse = matches!(self.chunks.back(), Some(Chunk::Own(v)) if v.len() < 64 * 1024);
        if !reuse {
            let buf = self.spare.pop().unwrap_or_default();
            self.chunks.push_back(Chunk::Own(buf));
        }
        match self.chunks.back_mut() {
            Some(Chunk::Own(v)) => v,
            _ => unreachable!("an owned chunk was just ensured"),
        }
    }

    fn push_shared(&mut self, rc: &Rc<Vec<u8>>, start: usize, end: usize) {
        if start < end {
            self.chunks.push_back(Chunk::Shared(rc.clone(), start, end));
        }
    }

    /// Writes as much as the link takes; false if it took nothing.
    fn write_some(&mut self, link: &mut Link) -> io::Result<bool> {
        let mut slices = [IoSlice::new(&[]); 64];
        let mut n = 0;
        for (i, c) in self.chunks.iter().enumerate().take(slices.len()) {
            let b = c.bytes();
            slices[i] = IoSlice::new(if i == 0 { &b[self.front_pos..] } else { b });
            n = i + 1;
        }
        let mut written = match link.try_write_vectored(&slices[..n]) {
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        while written > 0 {
            let left = self.chunks[0].bytes().len() - self.front_pos;
            if written >= left {
                written -= left;
                self.front_pos = 0;
                if let Some(Chunk::Own(mut v)) = self.chunks.pop_front() {
                    if self.spare.len() < 4 && v.capacity() <= 1 << 20 {
                        v.clear();
                        self.spare.push(v);
                    }
                }
            } else {
                self.front_pos += written;
                written = 0;
            }
        }
        Ok(true)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxState {
    Header,
    Payload { left: u64, opcode: u8, fin: bool },
}

/// One connection of the run.
pub struct Conn {
    id: usize,
    stream: Link,
    work: Rc<Workload>,
    phase: Rc<Cell<Phase>>,
    /// Messages this connection may still start (None: unlimited).
    budget: Option<u64>,
    /// Return with the connection open once the budget is spent.
    keep_open: bool,
    deflate: bool,
    out: OutQueue,
    sent_at: VecDeque<Instant>,
    next_seq: u64,
    recv_seq: u64,
    in_flight: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    rx: RxState,
    msg_started: bool,
    msg_compressed: bool,
    msg_off: usize,
    /// Payload bytes of the message being received, as sent on the wire.
    msg_wire: u64,
    control: Vec<u8>,
    zbuf: Vec<u8>,
    zout: Vec<u8>,
    inflater: Option<Decompress>,
    closing: bool,
    done: bool,
    stats: ConnStats,
}

impl Conn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        stream: Link,
        leftover: Vec<u8>,
        work: Rc<Workload>,
        phase: Rc<Cell<Phase>>,
        deflate: bool,
        budget: Option<u64>,
        keep_open: bool,
    ) -> Conn {
        let mut buf = vec![0u8; READ_BUF.max(leftover.len() + 1024)];
        buf[..leftover.len()].copy_from_slice(&leftover);
        Conn {
            id,
            stream,
            phase,
            budget,
            keep_open,
            deflate,
            out: OutQueue::default(),
            sent_at: VecDeque::with_capacity(work.inflight),
            next_seq: 0,
            recv_seq: 0,
            in_flight: 0,
            end: leftover.len(),
            buf,
            start: 0,
            rx: RxState::Header,
            msg_started: false,
            msg_compressed: false,
            msg_off: 0,
            msg_wire: 0,
            control: Vec::new(),
            zbuf: Vec::new(),
            zout: Vec::with_capacity(work.size + 64),
            inflater: deflate.then(|| Decompress::new(false)),
            closing: false,
            done: false,
            stats: ConnStats::default(),
            work,
        }
    }

    fn err(&self, what: impl std::fmt::Display) -> String {
        format!("connection {}: {what}", self.id)
    }

    fn may_send(&self) -> bool {
        self.phase.get() != Phase::Stop && self.budget != Some(0)
    }

    /// Queues messages until `inflight` are outstanding.
    fn fill(&mut self, now: Instant) {
        while self.in_flight < self.work.inflight && self.may_send() {
            if let Some(b) = &mut self.budget {
                *b -= 1;
            }
            self.queue_message(self.next_seq);
            self.next_seq += 1;
            self.in_flight += 1;
            self.sent_at.push_back(now);
        }
    }

    fn queue_message(&mut self, seq: u64) {
        let work = Rc::clone(&self.work);
        let size = work.size;
        if work.raw {
            let t = self.out.tail();
            t.extend_from_slice(&tag(seq));
            if size <= COPY_LIMIT {
                t.extend_from_slice(&work.premasked[TAG_LEN..]);
            } else {
                self.out.push_shared(&work.premasked, TAG_LEN, size);
            }
        } else if work.variants.is_empty() {
            let t = self.out.tail();
            client_header(t, work.opcode, false, size, MASK_KEY);
            let mut masked_tag = tag(seq);
            crate::payload::mask(&mut masked_tag, MASK_KEY, 0);
            t.extend_from_slice(&masked_tag);
            if size <= COPY_LIMIT {
                t.extend_from_slice(&work.premasked[TAG_LEN..]);
            } else {
                self.out.push_shared(&work.premasked, TAG_LEN, size);
            }
        } else {
            let v = &work.variants[(seq % work.variants.len() as u64) as usize];
            let body = &v.masked_body;
            let t = self.out.tail();
            client_header(t, work.opcode, true, body.len(), MASK_KEY);
            if body.len() <= COPY_LIMIT {
                t.extend_from_slice(body);
            } else {
                self.out.push_shared(body, 0, body.len());
            }
        }
    }

    fn queue_control(&mut self, opcode: u8, payload: &[u8]) {
        let mut masked = payload.to_vec();
        crate::payload::mask(&mut masked, MASK_KEY, 0);
        let t = self.out.tail();
        client_header(t, opcode, false, masked.len(), MASK_KEY);
        t.extend_from_slice(&masked);
    }

    /// Runs until the connection is closed (or, with `keep_open`, until the
    /// budget is spent and answered); returns it with what it measured.
    pub async fn drive(mut self) -> Result<(ConnStats, Option<Conn>), String> {
        self.fill(Instant::now());
        if self.end > 0 {
            self.process(Instant::now())?;
        }
        let mut busy_rounds = 0;
        loop {
            let mut progress = false;
            if !self.out.is_empty() {
                progress |= self
                    .out
                    .write_some(&mut self.stream)
                    .map_err(|e| self.err(format!("write: {e}")))?;
            }
            match self.stream.try_read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    if self.closing {
                        self.done = true;
                    } else {
                        return Err(self.err(format!(
                            "the server closed the connection with {} messages in flight",
                            self.in_flight
                        )));
                    }
                }
                Ok(n) => {
                    self.end += n;
                    let now = Instant::now();
                    self.process(now)?;
                    self.fill(now);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(self.err(format!("read: {e}"))),
            }
            if self.done {
                break;
            }
            if self.in_flight == 0 && !self.may_send() && !self.closing {
                if self.keep_open {
                    let stats = std::mem::take(&mut self.stats);
                    return Ok((stats, Some(self)));
                }
                self.closing = true;
                if !self.work.raw {
                    self.queue_control(OP_CLOSE, &1000u16.to_be_bytes());
                }
                progress = true;
            }
            if self.closing && self.work.raw && self.out.is_empty() {
                // mod_echo ends the connection once it reads end-of-file.
                let _ = self.stream.shutdown().await;
            }
            if progress {
                busy_rounds += 1;
                if busy_rounds >= 32 {
                    busy_rounds = 0;
                    tokio::task::yield_now().await;
                }
            } else {
                busy_rounds = 0;
                let interest = if self.out.is_empty() {
                    Interest::READABLE
                } else {
                    Interest::READABLE | Interest::WRITABLE
                };
                self.stream
                    .ready(interest)
                    .await
                    .map_err(|e| self.err(format!("poll: {e}")))?;
            }
        }
        let stats = std::mem::take(&mut self.stats);
        Ok((stats, None))
    }

    /// Consumes what is in the read buffer.
    fn process(&mut self, now: Instant) -> Result<(), String> {
        if self.work.raw {
            self.process_raw(now)?;
        } else {
            self.process_frames(now)?;
        }
        // Only an unfinished header (a few bytes) can be left over.
        let left = self.end - self.start;
        self.buf.copy_within(self.start..self.end, 0);
        self.start = 0;
        self.end = left;
        Ok(())
    }

    fn process_raw(&mut self, now: Instant) -> Result<(), String> {
        while self.start < self.end {
            if self.in_flight == 0 {
                return Err(self.err("the server sent bytes nobody asked for"));
            }
            let take = (self.work.size - self.msg_off).min(self.end - self.start);
            self.verify(self.start, take)?;
            self.start += take;
            self.msg_off += take;
            if self.msg_off == self.work.size {
                self.msg_off = 0;
                self.complete(now);
            }
        }
        Ok(())
    }

    fn process_frames(&mut self, now: Instant) -> Result<(), String> {
        loop {
            match self.rx {
                RxState::Header => {
                    let Some(h) =
                        parse_server_header(&self.buf[self.start..self.end]).map_err(|e| self.err(e))?
                    else {
                        return Ok(());
                    };
                    self.start += h.header_len;
                    match h.opcode {
                        OP_TEXT | OP_BINARY => {
                            if self.msg_started {
                                return Err(self.err("a new message started inside another"));
                            }
                            if h.opcode != self.work.opcode {
                                return Err(self.err(format!("echo has opcode {}", h.opcode)));
                            }
                            if h.rsv1 && !self.deflate {
                                return Err(self.err("compressed frame without permessage-deflate"));
                            }
                            if self.in_flight == 0 {
                                return Err(self.err("a message nobody asked for"));
                            }
                            self.msg_started = true;
                            self.msg_compressed = h.rsv1;
                            self.msg_off = 0;
                            self.msg_wire = 0;
                            self.zbuf.clear();
                        }
                        OP_CONTINUATION => {
                            if !self.msg_started || h.rsv1 {
                                return Err(self.err("unexpected continuation frame"));
                            }
                        }
                        OP_CLOSE | OP_PING | OP_PONG => {
                            if !h.fin || h.len > 125 || h.rsv1 {
                                return Err(self.err("malformed control frame"));
                            }
                            self.control.clear();
                        }
                        op => return Err(self.err(format!("unknown opcode {op}"))),
                    }
                    if h.opcode < OP_CLOSE {
                        self.msg_wire += h.len;
                    }
                    self.rx = RxState::Payload {
                        left: h.len,
                        opcode: h.opcode,
                        fin: h.fin,
                    };
                }
                RxState::Payload { left, opcode, fin } => {
                    let take = (self.end - self.start).min(usize::try_from(left).unwrap_or(usize::MAX));
                    if take > 0 {
                        let (s, e) = (self.start, self.start + take);
                        if opcode >= OP_CLOSE {
                            self.control.extend_from_slice(&self.buf[s..e]);
                        } else if self.msg_compressed {
                            self.zbuf.extend_from_slice(&self.buf[s..e]);
                        } else {
                            self.verify(s, take)?;
                            self.msg_off += take;
                        }
                        self.start = e;
                    }
                    let left = left - take as u64;
                    if left > 0 {
                        self.rx = RxState::Payload { left, opcode, fin };
                        return Ok(());
                    }
                    self.rx = RxState::Header;
                    self.finish_frame(opcode, fin, now)?;
                    if self.done {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn finish_frame(&mut self, opcode: u8, fin: bool, now: Instant) -> Result<(), String> {
        match opcode {
            OP_CLOSE => {
                if self.closing {
                    self.done = true;
                    Ok(())
                } else {
                    let code = (self.control.len() >= 2)
                        .then(|| u16::from_be_bytes([self.control[0], self.control[1]]));
                    Err(self.err(format!(
                        "the server closed with code {code:?} ({:?}) with {} messages in flight",
                        String::from_utf8_lossy(self.control.get(2..).unwrap_or_default()),
                        self.in_flight
                    )))
                }
            }
            OP_PING => {
                let payload = std::mem::take(&mut self.control);
                self.queue_control(OP_PONG, &payload);
                self.control = payload;
                Ok(())
            }
            OP_PONG => Ok(()),
            _ if !fin => Ok(()),
            _ => {
                let len = if self.msg_compressed {
                    self.inflate()?
                } else {
                    self.msg_off
                };
                if len != self.work.size {
                    return Err(self.err(format!(
                        "echo of message {} has {len} bytes, not {}",
                        self.recv_seq, self.work.size
                    )));
                }
                self.msg_started = false;
                self.msg_off = 0;
                if self.phase.get() == Phase::Measure {
                    self.stats.wire_bytes += self.msg_wire;
                }
                self.complete(now);
                Ok(())
            }
        }
    }

    /// Inflates the compressed message gathered in `zbuf`, checks it and
    /// returns its length.
    fn inflate(&mut self) -> Result<usize, String> {
        self.zbuf.extend_from_slice(&[0, 0, 0xff, 0xff]);
        self.zout.clear();
        let limit = self.work.size + 1;
        let z = self.inflater.as_mut().expect("deflate was negotiated");
        let mut consumed = 0;
        loop {
            if self.zout.capacity() - self.zout.len() < 1024 {
                self.zout.reserve(self.zout.capacity().max(4096));
            }
            let before = z.total_in();
            z.decompress_vec(&self.zbuf[consumed..], &mut self.zout, FlushDecompress::Sync)
                .map_err(|e| format!("connection {}: bad deflate data in an echo: {e}", self.id))?;
            consumed += (z.total_in() - before) as usize;
            if self.zout.len() > limit {
                break;
            }
            if consumed == self.zbuf.len() && self.zout.len() < self.zout.capacity() {
                break;
            }
        }
        let (tag, body) = self.work.expected(self.recv_seq);
        let n = self.zout.len();
        if n == self.work.size && (self.zout[..TAG_LEN] != tag || self.zout[TAG_LEN..] != body[TAG_LEN..]) {
            let at = first_difference(&self.zout, &tag, body);
            return Err(self.err(format!(
                "inflated echo of message {} differs from what was sent at byte {at}",
                self.recv_seq
            )));
        }
        Ok(n)
    }

    /// Checks `len` received bytes at `buf[at..]`, which belong at
    /// `msg_off` of the message being echoed.
    fn verify(&self, at: usize, len: usize) -> Result<(), String> {
        let off = self.msg_off;
        if off + len > self.work.size {
            return Err(self.err(format!(
                "echo of message {} is longer than {} bytes",
                self.recv_seq, self.work.size
            )));
        }
        let got = &self.buf[at..at + len];
        let (tag, body) = self.work.expected(self.recv_seq);
        let tag_part = TAG_LEN.saturating_sub(off).min(len);
        let ok = (tag_part == 0 || got[..tag_part] == tag[off..off + tag_part])
            && got[tag_part..] == body[off + tag_part..off + len];
        if ok {
            return Ok(());
        }
        let mut expected = tag.to_vec();
        expected.extend_from_slice(&body[TAG_LEN..]);
        let i = got
            .iter()
            .zip(&expected[off..])
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        Err(self.err(format!(
            "echo of message {} differs at byte {}: got {:#04x}, sent {:#04x}",
            self.recv_seq,
            off + i,
            got[i],
            expected[off + i]
        )))
    }

    fn complete(&mut self, now: Instant) {
        let sent = self.sent_at.pop_front().unwrap_or(now);
        self.recv_seq += 1;
        self.in_flight -= 1;
        if self.phase.get() == Phase::Measure {
            self.stats.measured += 1;
            let ns = now.duration_since(sent).as_nanos();
            self.stats
                .latencies_ns
                .push(u32::try_from(ns).unwrap_or(u32::MAX));
        }
    }
}

fn first_difference(got: &[u8], tag: &[u8], body: &[u8]) -> usize {
    got.iter()
        .enumerate()
        .position(|(i, b)| *b != if i < TAG_LEN { tag[i] } else { body[i] })
        .unwrap_or(0)
}
