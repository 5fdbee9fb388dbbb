//! How a session's owner thread moves bytes on its connection: through
//! Apache's connection filters, or straight on the socket where the filters
//! would only pass the bytes through (see `plain_socket`).

use std::cell::Cell;

use httpd::brigade::{Brigade, ReadOutcome};
use httpd::sys;

use crate::plain_socket::PlainSocket;

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

/// The names of the filters in a chain, first to last.
///
/// # Safety
/// `f` is the head of a live filter chain that is not changing.
unsafe fn filter_names(mut f: *mut sys::ap_filter_t) -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: walking the live filter list; names are C strings that live
    // as long as the filter registrations.
    unsafe {
        while !f.is_null() {
            let frec = (*f).frec;
            names.push(if frec.is_null() || (*frec).name.is_null() {
                String::from("?")
            } else {
                std::ffi::CStr::from_ptr((*frec).name)
                    .to_string_lossy()
                    .into_owned()
            });
            f = (*f).next;
        }
    }
    names
}

fn all_known(filters: &[String], known: &[&str]) -> bool {
    filters
        .iter()
        .all(|name| known.iter().any(|k| k.eq_ignore_ascii_case(name)))
}

pub struct ConnIo {
    c: *mut sys::conn_rec,
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
    /// Everything written, for the session's last log line.
    /// Bytes written (or handed to the output filters) so far.
    pub bytes_out: Cell<u64>,
}

impl ConnIo {
    /// # Safety
    /// `c` and `pool` are live for as long as the returned value, which is
    /// used on the thread that owns the connection, and that thread alone
    /// reads and writes the connection meanwhile. Everything written to the
    /// connection so far has been flushed.
    pub unsafe fn new(c: *mut sys::conn_rec, pool: *mut sys::apr_pool_t) -> ConnIo {
        // SAFETY: live connection and pool (contract).
        let (bb_in, bb_out, input_filters, output_filters) = unsafe {
            (
                Brigade::new(pool, (*c).bucket_alloc),
                Brigade::new(pool, (*c).bucket_alloc),
                filter_names((*c).input_filters),
                filter_names((*c).output_filters),
            )
        };
        let input_pass_through = all_known(&input_filters, PASS_THROUGH_INPUT);
        let output_pass_through = all_known(&output_filters, PASS_THROUGH_OUTPUT);
        let socket = if input_pass_through || output_pass_through {
            // SAFETY: forwarded contract.
            unsafe { PlainSocket::new(c) }
        } else {
            None
        };
        ConnIo {
            c,
            bb_in,
            bb_out,
            input_filters,
            output_filters,
            input_pass_through,
            write_socket: output_pass_through && socket.is_some(),
            socket,
            read_socket: Cell::new(false),
            bytes_out: Cell::new(0),
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
            } else {
                "written through them"
            },
        )
    }

    /// Appends up to `max` bytes to `out` without blocking. With
    /// [`ConnIo::short_read_drains`], a read of fewer bytes than the second
    /// value means nothing more is waiting.
    pub fn read(&self, max: usize, out: &mut Vec<u8>) -> (ReadOutcome, usize) {
        match &self.socket {
            Some(socket) if self.read_socket.get() => (socket.read(max, out), max),
            // SAFETY: this thread owns the connection's filters (contract of new).
            _ => (
                unsafe { self.bb_in.read_nonblocking((*self.c).input_filters, max, out) },
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

    /// Writes `parts` in order and returns once they are all on the wire or
    /// taken by the output filters (which then block until they are
    /// written, up to the server's Timeout).
    pub fn write(&self, parts: &[&[u8]]) -> Result<(), sys::apr_status_t> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        self.bytes_out.set(self.bytes_out.get() + total as u64);
        let mut written = 0;
        if let (true, Some(socket)) = (self.write_socket, &self.socket) {
            written = socket
                .write(parts)
                .map_err(|e| e.raw_os_error().unwrap_or(sys::APR_EGENERAL))?;
            if written == total {
                return Ok(());
            }
        }
        if written == 0 {
            // SAFETY: this thread owns the connection's filters (contract of new).
            return unsafe { self.bb_out.write_parts_and_flush((*self.c).output_filters, parts) };
        }
        // The socket took part of it (it is full): the filters write the
        // rest, waiting for room.
        let mut rest: Vec<&[u8]> = Vec::with_capacity(parts.len());
        let mut skip = written;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
            } else {
                rest.push(&part[skip..]);
                skip = 0;
            }
        }
        // SAFETY: as above.
        unsafe { self.bb_out.write_parts_and_flush((*self.c).output_filters, &rest) }
    }
}
