//! A plain (non-TLS) connection's socket, used directly once Apache's
//! connection filters hold nothing and only pass bytes through: one `recv`
//! per batch where the core input filter makes a read plus an EAGAIN probe,
//! and one `sendmsg` per flush where the output filters build buckets and a
//! brigade first. The bytes still count for mod_logio's `%I` and `%O`.
//! Which connections qualify is decided in [`crate::io`]; never under TLS.

use std::cell::Cell;

use crate::brigade::ReadOutcome;
use crate::conn::Conn;
use crate::sys;

/// mod_logio's optional functions `ap_logio_add_bytes_in` and
/// `ap_logio_add_bytes_out`: bytes moved past the filters still count.
type AddBytes = unsafe extern "C" fn(*mut sys::conn_rec, sys::apr_off_t);

/// The most pieces one `sendmsg` takes; what does not fit goes out through
/// the filters like any other remainder.
#[cfg(unix)]
const MAX_PARTS: usize = 8;

// glibc makes recv and sendmsg thread-cancellation points: every call
// switches the thread's cancellation state on and off around the system
// call, atomically. Apache never cancels its threads, and on the latency
// path (three calls per echoed message) that bookkeeping measured about 0.15
// µs of server CPU per round trip, so on Linux the calls go to the kernel
// directly. Same arguments, same results (-1 and errno on failure).

/// `recv(2)`.
///
/// # Safety
/// As for `libc::recv`: `buf` has room for `len` bytes.
#[cfg(target_os = "linux")]
unsafe fn sys_recv(fd: libc::c_int, buf: *mut libc::c_void, len: usize, flags: libc::c_int) -> isize {
    // SAFETY: forwarded contract; recvfrom with no address is recv.
    unsafe { libc::syscall(libc::SYS_recvfrom, fd, buf, len, flags, 0usize, 0usize) as isize }
}

/// `sendmsg(2)`.
///
/// # Safety
/// As for `libc::sendmsg`: `msg` and the buffers it points at are valid.
#[cfg(target_os = "linux")]
unsafe fn sys_sendmsg(fd: libc::c_int, msg: *const libc::msghdr, flags: libc::c_int) -> isize {
    // SAFETY: forwarded contract.
    unsafe { libc::syscall(libc::SYS_sendmsg, fd, msg, flags) as isize }
}

#[cfg(all(unix, not(target_os = "linux")))]
use libc::{recv as sys_recv, sendmsg as sys_sendmsg};

pub(crate) struct PlainSocket {
    #[cfg(unix)]
    fd: std::os::raw::c_int,
    c: *mut sys::conn_rec,
    add_bytes_in: Option<AddBytes>,
    add_bytes_out: Option<AddBytes>,
    /// Bytes read and written that mod_logio has not been told of yet: it
    /// is told when the socket is dropped, which is before the request is
    /// logged (its only reader, for `%I` and `%O`). Telling it at each call
    /// touched the connection's configuration vector and mod_logio's
    /// record, memory no thread has used since the last message, for every
    /// message to a parked subscriber.
    unlogged_in: Cell<u64>,
    unlogged_out: Cell<u64>,
}

/// # Safety
/// `name` is the name of an optional function with the [`AddBytes`] signature.
unsafe fn logio_counter(name: &std::ffi::CStr) -> Option<AddBytes> {
    // SAFETY: a lookup in APR's table of optional functions; the pointer,
    // when there is one, has the signature the caller vouches for.
    unsafe {
        sys::apr_dynamic_fn_retrieve(name.as_ptr())
            .map(|f| std::mem::transmute::<unsafe extern "C" fn(), AddBytes>(f))
    }
}

impl Drop for PlainSocket {
    fn drop(&mut self) {
        self.tell_logio(self.add_bytes_in, self.unlogged_in.take());
        self.tell_logio(self.add_bytes_out, self.unlogged_out.take());
    }
}

impl PlainSocket {
    /// `None` where there is no plain socket (or off Unix). Only the
    /// thread that owns `conn` uses the socket meanwhile (Conn is not Send).
    pub(crate) fn new(conn: Conn<'_>) -> Option<PlainSocket> {
        let c = conn.as_ptr();
        #[cfg(unix)]
        {
            // SAFETY: live connection (contract); the socket belongs to it.
            let sock = unsafe { sys::ap_get_conn_socket(c) };
            if sock.is_null() {
                return None;
            }
            let mut fd: sys::apr_os_sock_t = -1;
            // SAFETY: a live APR socket and a place for its descriptor.
            if unsafe { sys::apr_os_sock_get(&mut fd, sock) } != sys::APR_SUCCESS as sys::apr_status_t
                || fd < 0
            {
                return None;
            }
            // SAFETY: mod_logio's two counters have the AddBytes signature.
            let (add_bytes_in, add_bytes_out) = unsafe {
                (
                    logio_counter(c"ap_logio_add_bytes_in"),
                    logio_counter(c"ap_logio_add_bytes_out"),
                )
            };
            Some(PlainSocket {
                fd,
                c,
                add_bytes_in,
                add_bytes_out,
                unlogged_in: Cell::new(0),
                unlogged_out: Cell::new(0),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = c;
            None
        }
    }

    fn tell_logio(&self, counter: Option<AddBytes>, n: u64) {
        if let (Some(add), true) = (counter, n > 0) {
            // SAFETY: mod_logio's function on our live connection, on the
            // thread that owns it.
            unsafe { add(self.c, n as sys::apr_off_t) };
        }
    }

    /// Appends up to `max` bytes to `out` without blocking.
    pub fn read(&self, max: usize, out: &mut Vec<u8>) -> ReadOutcome {
        #[cfg(unix)]
        loop {
            out.reserve(max);
            let spare = out.spare_capacity_mut();
            let want = max.min(spare.len());
            // SAFETY: recv writes at most `want` bytes into the vector's
            // spare capacity; only what it reports written becomes part of
            // the vector.
            let n = unsafe { sys_recv(self.fd, spare.as_mut_ptr().cast(), want, libc::MSG_DONTWAIT) };
            if n > 0 {
                let n = n as usize;
                // SAFETY: recv initialised these n bytes.
                unsafe { out.set_len(out.len() + n) };
                self.unlogged_in.set(self.unlogged_in.get() + n as u64);
                return ReadOutcome::Data(n);
            }
            if n == 0 {
                return ReadOutcome::Closed(sys::APR_EOF as sys::apr_status_t);
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                _ => return ReadOutcome::Closed(err.raw_os_error().unwrap_or(-1)),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (max, out);
            ReadOutcome::WouldBlock
        }
    }

    /// Writes what the socket takes now of `parts`, in order, without
    /// blocking; returns how many bytes that was (0 when it is full).
    pub fn write(&self, parts: &[&[u8]]) -> std::io::Result<usize> {
        #[cfg(unix)]
        {
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_PARTS];
            let mut used = 0;
            for (v, part) in iov.iter_mut().zip(parts) {
                v.iov_base = part.as_ptr().cast_mut().cast();
                v.iov_len = part.len();
                used += 1;
            }
            // SAFETY: an all-zero msghdr is a valid empty one.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = used as _;
            loop {
                // SAFETY: the iovecs point into `parts`, alive and unchanged
                // for the call; sendmsg only reads them. MSG_NOSIGNAL: a
                // peer that went away is an error here, not a SIGPIPE.
                let n = unsafe { sys_sendmsg(self.fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
                if n >= 0 {
                    self.unlogged_out.set(self.unlogged_out.get() + n as u64);
                    return Ok(n as usize);
                }
                let err = std::io::Error::last_os_error();
                match err.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock => return Ok(0),
                    _ => return Err(err),
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = parts;
            Ok(0)
        }
    }
}
