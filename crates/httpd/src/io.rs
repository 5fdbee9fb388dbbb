//! How a WebSocket moves bytes on its connection: through Apache's
//! connection filters, or straight on the socket where the filters would
//! only pass the bytes through (see [`crate::socket`]).
//!
//! The plain-socket fast path is one predicate: a primary connection (not
//! an HTTP/2 stream's), whose filters are all known to pass bytes through
//! unchanged and to keep nothing between reads or once a FLUSH passed
//! (which excludes TLS: mod_ssl's filters are not among them). On it,
//! writes never block: what the socket does not take now is left to the
//! caller, who waits until it is writable. Through the filters, a write
//! ends with a FLUSH and the core output filter finishes it before
//! returning (up to the server's `Timeout`), as Apache's own handlers do.

use std::cell::Cell;

use crate::brigade::{Brigade, ReadOutcome};
use crate::conn::Conn;
use crate::pool::PoolRef;
use crate::socket::PlainSocket;
use crate::sys;

/// The most the core input filter takes from the socket in one read
/// (APR_BUCKET_BUFF_SIZE).
const CORE_READ_SIZE: usize = 8000;

/// Connection input filters known to hold back nothing between reads: with
/// only these, a read that returns less than both what was asked and a full
/// socket read means the socket was drained, and the next read would only
/// say EAGAIN. (mod_ssl, for one, may keep decrypted or raw bytes that a
/// poll on the socket cannot see, so a chain with it reads until EAGAIN.)
/// (mod_logio's and mod_reqtimeout's filters only count and time reads.)
const PASS_THROUGH_INPUT: &[&str] = &["core_in", "reqtimeout", "log_input_output"];

/// Connection output filters that write what they are given, unchanged, and
/// keep nothing once a FLUSH has passed: the core's network filter, and
/// mod_logio's, which only adds a FLUSH at the end of a response (the core
/// counts the bytes for it, as `PlainSocket` does).
const PASS_THROUGH_OUTPUT: &[&str] = &["core", "log_input_output"];

/// Connection output filters known to pass on at once what they are given
/// (mod_ssl's encrypts and passes each record), so that only the core
/// output filter holds output, and says so in `c->data_in_output_filters`.
/// With only these, writes through the filters need no FLUSH. (mod_ssl's
/// coalescing filter keeps small writes until a FLUSH; a tunnel removes it,
/// see `Request::switch_protocols`.)
const PASS_ON_OUTPUT: &[&str] = &["core", "log_input_output", "ssl/tls filter"];

pub struct ConnIo<'c> {
    conn: Conn<'c>,
    bb_in: Brigade,
    bb_out: Brigade,
    input_filters: Vec<String>,
    output_filters: Vec<String>,
    /// Every input filter passes bytes through: a short read means drained.
    input_pass_through: bool,
    /// Present when the socket may be used directly for some direction.
    socket: Option<PlainSocket>,
    /// Reads go to the socket (set once the input filters are drained).
    read_socket: Cell<bool>,
    /// Writes go to the socket first (the output filters only pass bytes
    /// through and hold nothing after each of our flushes).
    write_socket: bool,
    /// Through the filters, writes need no FLUSH (see PASS_ON_OUTPUT).
    filters_pass_on: bool,
    /// Bytes written (or handed to the output filters) so far.
    pub bytes_out: Cell<u64>,
    /// An HTTP/2 stream's input still starts with the EOS that ended the
    /// upgraded request (see [`Brigade::read_nonblocking_past_eos`]).
    upgrade_eos: Cell<bool>,
}

impl<'c> ConnIo<'c> {
    /// I/O on `conn` with brigades from `pool`. Everything written to the
    /// connection so far must have been flushed.
    pub fn new(conn: Conn<'c>, pool: PoolRef<'c>) -> ConnIo<'c> {
        // SAFETY: live connection and pool for 'c, on this thread.
        let (bb_in, bb_out) = unsafe {
            (
                Brigade::new(pool.as_ptr(), conn.bucket_alloc()),
                Brigade::new(pool.as_ptr(), conn.bucket_alloc()),
            )
        };
        let input_filters = conn.input_filters().names();
        let output_filters = conn.output_filters().names();
        let primary = !conn.is_secondary();
        let input_pass_through = primary && conn.input_filters().all_in(PASS_THROUGH_INPUT);
        let output_pass_through = primary && conn.output_filters().all_in(PASS_THROUGH_OUTPUT);
        let filters_pass_on = conn.output_filters().all_in(PASS_ON_OUTPUT);
        let socket = if input_pass_through || output_pass_through {
            PlainSocket::new(conn)
        } else {
            None
        };
        ConnIo {
            conn,
            bb_in,
            bb_out,
            input_filters,
            output_filters,
            input_pass_through,
            write_socket: output_pass_through && socket.is_some(),
            filters_pass_on,
            socket,
            read_socket: Cell::new(false),
            bytes_out: Cell::new(0),
            upgrade_eos: Cell::new(!primary),
        }
    }

    /// The filter chains and which way each direction goes, for the log.
    pub fn describe(&self) -> String {
        format!(
            "input filters: {} ({}); output filters: {} ({})",
            self.input_filters.join(", "),
            match (self.input_pass_through, &self.socket) {
                (true, Some(_)) => "read from the socket once they are drained",
                (true, None) => "read until a short read",
                (false, _) => "read until EAGAIN",
            },
            self.output_filters.join(", "),
            if self.write_socket {
                "written to the socket"
            } else if self.filters_pass_on {
                "written through them without blocking"
            } else {
                "written through them with a FLUSH"
            },
        )
    }

    /// Appends up to `max` bytes to `out` without blocking. With
    /// [`ConnIo::short_read_drains`], a read of fewer bytes than the second
    /// value means nothing more is waiting.
    pub fn read(&self, max: usize, out: &mut Vec<u8>) -> (ReadOutcome, usize) {
        match &self.socket {
            Some(socket) if self.read_socket.get() => (socket.read(max, out), max),
            // SAFETY: this thread owns the connection's filters (Conn).
            _ => (
                unsafe {
                    self.bb_in.read_nonblocking_past_eos(
                        self.conn.input_filters().head(),
                        max,
                        out,
                        &self.upgrade_eos,
                    )
                },
                max.min(CORE_READ_SIZE),
            ),
        }
    }

    /// Whether a short read (or EAGAIN) means the connection is drained, so
    /// that a poll, not another read, says when more comes.
    pub fn short_read_drains(&self) -> bool {
        self.input_pass_through
    }

    /// The input filters said they hold nothing more: read the socket
    /// directly from now on where that is allowed.
    pub fn input_drained(&self) {
        if self.input_pass_through && self.socket.is_some() {
            self.read_socket.set(true);
        }
    }

    /// Whether reads go straight to the socket (see [`ConnIo::input_drained`]).
    pub fn reads_socket(&self) -> bool {
        self.read_socket.get()
    }

    /// Whether writes go straight to the socket.
    pub fn writes_socket(&self) -> bool {
        self.write_socket
    }

    /// Writes `parts` in order and returns how many bytes were taken; the
    /// caller keeps the rest and, while [`ConnIo::holds_output`] or a
    /// remainder is left, waits until the connection is writable. On the
    /// socket that is what the socket took. Through filters that pass on
    /// what they get (TLS) it is at most [`FILTER_WRITE_MAX`] bytes, and
    /// nothing while they still hold earlier output: the core output filter
    /// writes what the socket takes and sets the rest aside (it would block
    /// only above its `FlushMaxThreshold`, 64 KiB by default). Through other
    /// filters, which may keep bytes until a FLUSH, the write ends with one
    /// and the core filter finishes it before returning (up to `Timeout`).
    pub fn write(&self, parts: &[&[u8]]) -> Result<usize, sys::apr_status_t> {
        if let (true, Some(socket)) = (self.write_socket, &self.socket) {
            let written = socket
                .write(parts)
                .map_err(|e| e.raw_os_error().unwrap_or(sys::APR_EGENERAL))?;
            self.bytes_out.set(self.bytes_out.get() + written as u64);
            return Ok(written);
        }
        if !self.filters_pass_on {
            let total: usize = parts.iter().map(|p| p.len()).sum();
            // SAFETY: this thread owns the connection's filters (Conn).
            unsafe {
                self.bb_out
                    .pass_parts_and_flush(self.conn.output_filters().head(), parts, FLUSHED_BUCKET_MAX)
            }?;
            self.bytes_out.set(self.bytes_out.get() + total as u64);
            return Ok(total);
        }
        if self.holds_output() {
            return Ok(0);
        }
        let mut room = FILTER_WRITE_MAX;
        let mut taken: Vec<&[u8]> = Vec::with_capacity(parts.len());
        for part in parts {
            if room == 0 {
                break;
            }
            let n = part.len().min(room);
            taken.push(&part[..n]);
            room -= n;
        }
        let total = FILTER_WRITE_MAX - room;
        // SAFETY: this thread owns the connection's filters (Conn).
        unsafe { self.bb_out.pass_parts(self.conn.output_filters().head(), &taken) }?;
        self.bytes_out.set(self.bytes_out.get() + total as u64);
        // The core output filter keeps small writes for later; send them now.
        self.flush()?;
        Ok(total)
    }

    /// Whether the output filters hold output set aside for later
    /// (`c->data_in_output_filters`).
    pub fn holds_output(&self) -> bool {
        self.filters_pass_on && !self.write_socket && self.conn.data_in_output_filters()
    }

    /// Writes what the output filters set aside, without blocking, as the
    /// event MPM does in write completion and Apache's tunnel does when the
    /// socket is writable again: the last filter (the core's) with no new
    /// data. True when nothing is held any more.
    pub fn flush(&self) -> Result<bool, sys::apr_status_t> {
        if self.write_socket || !self.filters_pass_on {
            return Ok(true);
        }
        self.conn.output_filters().write_pending()?;
        Ok(!self.holds_output())
    }
}

/// The most one write passes to the output filters: below the core output
/// filter's default `FlushMaxThreshold` (65536) even with TLS records'
/// overhead, so that it sets aside what the socket does not take instead of
/// blocking.
pub const FILTER_WRITE_MAX: usize = 60 * 1024;

/// The largest bucket a flushed write through the filters is cut into.
/// mod_http2's output filter copies each transient bucket whole into its
/// bucket beam, and its primary connection copies each again on the way
/// out: a large message in one bucket costs allocations big enough to be
/// fresh mappings (APR's allocator maps and unmaps them) at every copy,
/// while pieces no larger than what a stream's beam holds at once
/// (`H2StreamMaxMemSize`, 64 KiB by default) come from free lists.
const FLUSHED_BUCKET_MAX: usize = 64 * 1024;
