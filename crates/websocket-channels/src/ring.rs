//! The embedded bus: a ring of records in memory that every child process
//! of one Apache shares (an anonymous shared mapping the parent makes
//! before it forks, see `httpd::shm`).
//!
//! A publisher, in any process, appends one record (channel, type,
//! payload) under a lock that lives in the ring. Every process with
//! subscribers follows the ring with a [`Reader`] and hands each record to
//! its own [`crate::registry::Registry`]. So every subscriber sees every
//! record once, and all of them in one order, the order of the ring.
//!
//! Readers take no lock: like a seqlock, the writer announces how far it is
//! about to write (`reserved`) before it writes and moves `head` after. A
//! reader copies a record, then checks that `reserved` has not come round
//! to it; if it has (the reader fell a whole ring behind), the record and
//! everything before `head` is lost for that reader, which says how much.
//! Delivery is therefore at most once.
//!
//! The lock word holds the owner's process id, so a process that died while
//! publishing (killed in the middle of a copy) is noticed and its lock
//! taken over; what it was writing never became visible.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::name::MAX_LEN;
use crate::{ChannelName, Kind};

const LOCK: usize = 0;
const RESERVED: usize = 1;
const HEAD: usize = 2;
const WAKE: usize = 3;
const ORIGIN: usize = 4;
const CAPACITY: usize = 5;
const WAITERS: usize = 6;
/// Words before the data.
pub const HEADER_WORDS: usize = 8;

const MAGIC: u64 = 0x5753;

/// The ring needs this many words for `bytes` of data.
pub const fn words_for(bytes: usize) -> usize {
    HEADER_WORDS + bytes.div_ceil(8)
}

/// A published message does not fit the ring (see [`Ring::max_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub max: usize,
}

/// The shared ring; cheap to copy (a view of the mapping).
#[derive(Clone, Copy)]
pub struct Ring {
    words: &'static [AtomicU64],
}

fn random_u64() -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() | 1
}

fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

impl Ring {
    /// The ring in `words` (zeroed memory at first; every process and module
    /// that shares the memory calls this and gets the same ring). `None`
    /// if there are too few words for a ring.
    pub fn new(words: &'static [AtomicU64]) -> Option<Ring> {
        let capacity = words.len().checked_sub(HEADER_WORDS)? as u64;
        if capacity < 64 {
            return None;
        }
        // The first caller sets the size and the origin; later ones find them.
        let _ = words[CAPACITY].compare_exchange(0, capacity, Ordering::AcqRel, Ordering::Acquire);
        if words[CAPACITY].load(Ordering::Acquire) != capacity {
            return None;
        }
        let _ = words[ORIGIN].compare_exchange(0, random_u64(), Ordering::AcqRel, Ordering::Acquire);
        Some(Ring { words })
    }

    fn capacity(&self) -> u64 {
        (self.words.len() - HEADER_WORDS) as u64
    }

    /// The largest payload one record carries: a quarter of the ring, so
    /// that a reader that is a little behind does not lose a record to one
    /// large message.
    pub fn max_message(&self) -> usize {
        (self.capacity() as usize / 4) * 8 - MAX_LEN - 8
    }

    /// A number every process of this Apache shares and other servers do
    /// not: tells our own publishes apart when a broker echoes them.
    pub fn origin(&self) -> u64 {
        self.words[ORIGIN].load(Ordering::Acquire)
    }

    fn wake_word(&self) -> &AtomicU32 {
        let word: &AtomicU64 = &self.words[WAKE];
        // SAFETY: an AtomicU64 is 8-aligned memory that may be accessed
        // atomically; its first 4 bytes are a valid, aligned AtomicU32 for as
        // long as the borrow. The word is only ever used through this view.
        unsafe { &*(word as *const AtomicU64).cast::<AtomicU32>() }
    }

    fn data(&self, pos: u64) -> &AtomicU64 {
        &self.words[HEADER_WORDS + (pos % self.capacity()) as usize]
    }

    fn lock(&self) -> LockGuard<'_> {
        let me = u64::from(std::process::id());
        let word = &self.words[LOCK];
        let mut spins = 0u32;
        let mut since = Instant::now();
        loop {
            match word.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return LockGuard { word },
                Err(owner) => {
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else if spins < 128 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    // An owner that has been holding it for long may be dead.
                    if owner != 0 && since.elapsed() > Duration::from_millis(100) {
                        since = Instant::now();
                        if !process_alive(owner as u32)
                            && word
                                .compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed)
                                .is_ok()
                        {
                            return LockGuard { word };
                        }
                    }
                }
            }
        }
    }

    /// Appends a record; every reader of every process will see it.
    pub fn publish(&self, channel: &ChannelName, kind: Kind, payload: &[u8]) -> Result<(), TooLarge> {
        let max = self.max_message();
        if payload.len() > max {
            return Err(TooLarge { max });
        }
        let name = channel.as_str().as_bytes();
        let body_len = name.len() + payload.len();
        let n = 1 + body_len.div_ceil(8) as u64;
        let header =
            (body_len as u64) | (name.len() as u64) << 32 | u64::from(kind.to_byte()) << 40 | MAGIC << 48;
        {
            let _lock = self.lock();
            let h = self.words[HEAD].load(Ordering::Relaxed);
            self.words[RESERVED].store(h + n, Ordering::Relaxed);
            fence(Ordering::Release);
            self.data(h).store(header, Ordering::Relaxed);
            let mut pos = h + 1;
            let mut word = [0u8; 8];
            let mut filled = 0;
            for &b in name.iter().chain(payload) {
                word[filled] = b;
                filled += 1;
                if filled == 8 {
                    self.data(pos).store(u64::from_le_bytes(word), Ordering::Relaxed);
                    pos += 1;
                    filled = 0;
                }
            }
            if filled > 0 {
                word[filled..].fill(0);
                self.data(pos).store(u64::from_le_bytes(word), Ordering::Relaxed);
            }
            self.words[HEAD].store(h + n, Ordering::SeqCst);
        }
        self.wake_word().fetch_add(1, Ordering::SeqCst);
        if self.words[WAITERS].load(Ordering::SeqCst) > 0 {
            crate::wait::wake_all(self.wake_word());
        }
        Ok(())
    }

    /// A reader that starts at the end: it sees what is published from now on.
    pub fn reader(&self) -> Reader {
        Reader {
            ring: *self,
            pos: self.words[HEAD].load(Ordering::SeqCst),
        }
    }

    /// Wakes every reader that waits (so that it sees a stop request).
    pub fn wake_readers(&self) {
        self.wake_word().fetch_add(1, Ordering::SeqCst);
        crate::wait::wake_all(self.wake_word());
    }
}

struct LockGuard<'a> {
    word: &'a AtomicU64,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.word.store(0, Ordering::Release);
    }
}

/// One record as a reader copied it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Record {
    pub channel: Vec<u8>,
    pub kind: Option<Kind>,
    pub payload: Vec<u8>,
}

/// What [`Reader::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The record is in the buffer.
    Record,
    /// Nothing new.
    Empty,
    /// The reader fell a whole ring behind: this many bytes of records are
    /// lost to it, and it goes on from the newest.
    Lost(u64),
}

/// Follows the ring from where it started.
pub struct Reader {
    ring: Ring,
    pos: u64,
}

impl Reader {
    /// Copies the next record into `out`.
    pub fn next(&mut self, out: &mut Record) -> Next {
        let words = self.ring.words;
        let cap = self.ring.capacity();
        let head = words[HEAD].load(Ordering::Acquire);
        if head == self.pos {
            return Next::Empty;
        }
        if head - self.pos > cap {
            return self.lost(head);
        }
        let header = self.ring.data(self.pos).load(Ordering::Relaxed);
        let body_len = (header & 0xFFFF_FFFF) as usize;
        let name_len = ((header >> 32) & 0xFF) as usize;
        let kind = Kind::from_byte(((header >> 40) & 0xFF) as u8);
        let n = 1 + body_len.div_ceil(8) as u64;
        let sane = header >> 48 == MAGIC && name_len <= body_len && n <= cap / 4 + 1 && self.pos + n <= head;
        if sane {
            out.channel.clear();
            out.payload.clear();
            out.payload.reserve(body_len);
            let mut left = body_len;
            for i in 1..n {
                let bytes = self.ring.data(self.pos + i).load(Ordering::Relaxed).to_le_bytes();
                let take = left.min(8);
                out.payload.extend_from_slice(&bytes[..take]);
                left -= take;
            }
        }
        // Did a writer come round to what we copied while we copied it?
        fence(Ordering::Acquire);
        let reserved = words[RESERVED].load(Ordering::Relaxed);
        if reserved.saturating_sub(self.pos) > cap || !sane {
            return self.lost(words[HEAD].load(Ordering::Acquire));
        }
        out.channel.extend(out.payload.drain(..name_len));
        out.kind = kind;
        self.pos += n;
        Next::Record
    }

    fn lost(&mut self, head: u64) -> Next {
        let lost = head.saturating_sub(self.pos) * 8;
        self.pos = head;
        Next::Lost(lost)
    }

    /// Sleeps until something is published (or `timeout`); returns at once
    /// if there is something to read.
    pub fn wait(&self, timeout: Duration) {
        let words = self.ring.words;
        let wake = self.ring.wake_word();
        let seen = wake.load(Ordering::SeqCst);
        if words[HEAD].load(Ordering::SeqCst) != self.pos {
            return;
        }
        words[WAITERS].fetch_add(1, Ordering::SeqCst);
        if words[HEAD].load(Ordering::SeqCst) == self.pos {
            crate::wait::wait(wake, seen, timeout);
        }
        words[WAITERS].fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(data_bytes: usize) -> Ring {
        let words: Vec<AtomicU64> = (0..words_for(data_bytes)).map(|_| AtomicU64::new(0)).collect();
        Ring::new(Vec::leak(words)).unwrap()
    }

    fn name(s: &str) -> ChannelName {
        ChannelName::new(s.as_bytes()).unwrap()
    }

    fn read(r: &mut Reader) -> Option<(String, Kind, Vec<u8>)> {
        let mut rec = Record::default();
        match r.next(&mut rec) {
            Next::Record => Some((
                String::from_utf8(rec.channel).unwrap(),
                rec.kind.unwrap(),
                rec.payload,
            )),
            Next::Empty => None,
            Next::Lost(n) => panic!("lost {n}"),
        }
    }

    #[test]
    fn records_come_back_in_order_with_every_length() {
        let ring = ring(64 * 1024);
        let mut r = ring.reader();
        assert_eq!(read(&mut r), None);
        for len in 0..40 {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let kind = if len % 2 == 0 { Kind::Text } else { Kind::Binary };
            ring.publish(&name(&format!("c{len}")), kind, &payload).unwrap();
            assert_eq!(read(&mut r), Some((format!("c{len}"), kind, payload)));
        }
        assert_eq!(read(&mut r), None);
    }

    #[test]
    fn a_reader_starts_at_the_end_and_two_readers_see_the_same() {
        let ring = ring(4096);
        ring.publish(&name("old"), Kind::Text, b"before").unwrap();
        let mut a = ring.reader();
        let mut b = ring.reader();
        for i in 0..1000u32 {
            ring.publish(&name("x"), Kind::Binary, &i.to_le_bytes()).unwrap();
            assert_eq!(read(&mut a).unwrap().2, i.to_le_bytes());
        }
        // b fell behind by more than the ring: it says so, then goes on.
        let mut rec = Record::default();
        assert!(matches!(b.next(&mut rec), Next::Lost(n) if n > 0));
        assert_eq!(b.next(&mut rec), Next::Empty);
        ring.publish(&name("x"), Kind::Text, b"new").unwrap();
        assert_eq!(read(&mut b).unwrap().2, b"new");
    }

    #[test]
    fn wrapping_keeps_records_whole() {
        let ring = ring(1024);
        let mut r = ring.reader();
        for i in 0..500usize {
            let payload = vec![(i % 251) as u8; i % 110];
            ring.publish(&name("w"), Kind::Binary, &payload).unwrap();
            assert_eq!(read(&mut r).unwrap().2, payload, "record {i}");
        }
    }

    #[test]
    fn too_large_is_refused() {
        let ring = ring(8192);
        let max = ring.max_message();
        assert!(ring.publish(&name("a"), Kind::Binary, &vec![0; max]).is_ok());
        assert_eq!(
            ring.publish(&name("a"), Kind::Binary, &vec![0; max + 1]),
            Err(TooLarge { max })
        );
    }

    #[test]
    fn the_same_memory_is_the_same_ring() {
        let words: Vec<AtomicU64> = (0..words_for(4096)).map(|_| AtomicU64::new(0)).collect();
        let words = Vec::leak(words);
        let a = Ring::new(words).unwrap();
        let b = Ring::new(words).unwrap();
        assert_eq!(a.origin(), b.origin());
        let mut r = b.reader();
        a.publish(&name("s"), Kind::Text, b"shared").unwrap();
        assert_eq!(read(&mut r).unwrap().2, b"shared");
    }

    #[test]
    fn concurrent_publishers_and_a_waiting_reader() {
        let ring = ring(1 << 20);
        let mut r = ring.reader();
        let writers: Vec<_> = (0..4u8)
            .map(|w| {
                std::thread::spawn(move || {
                    for i in 0..2000u32 {
                        let mut p = vec![w];
                        p.extend_from_slice(&i.to_le_bytes());
                        ring.publish(&name("c"), Kind::Binary, &p).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u32; 4];
        let mut rec = Record::default();
        let deadline = Instant::now() + Duration::from_secs(20);
        while next.iter().sum::<u32>() < 8000 {
            assert!(Instant::now() < deadline, "reader stalled at {next:?}");
            match r.next(&mut rec) {
                Next::Record => {
                    let w = rec.payload[0] as usize;
                    let i = u32::from_le_bytes(rec.payload[1..5].try_into().unwrap());
                    // Each publisher's records arrive in its order.
                    assert_eq!(i, next[w], "publisher {w}");
                    next[w] += 1;
                }
                Next::Empty => r.wait(Duration::from_millis(100)),
                Next::Lost(n) => panic!("lost {n}"),
            }
        }
        for w in writers {
            w.join().unwrap();
        }
    }

    #[test]
    fn a_dead_owner_loses_the_lock() {
        let ring = ring(4096);
        // A pid that cannot be alive: beyond pid_max.
        ring.words[LOCK].store(u64::from(u32::MAX - 1), Ordering::SeqCst);
        let mut r = ring.reader();
        ring.publish(&name("after"), Kind::Text, b"crash").unwrap();
        assert_eq!(read(&mut r).unwrap().0, "after");
    }
}
