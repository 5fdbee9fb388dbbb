//! Reading a plain connection straight from its socket once the input
//! filters hold nothing more: one `recv` per batch, where the core input
//! filter makes a read plus an EAGAIN probe and wraps the bytes in buckets.
//! Only for connections whose input filters all pass bytes through
//! unchanged (see `session::PASS_THROUGH_FILTERS`): never under TLS.

use httpd::brigade::ReadOutcome;
use httpd::sys;

/// `ap_logio_add_bytes_in`, mod_logio's optional function: bytes read past
/// the filters still count for `%I` in the access log.
type AddBytesIn = unsafe extern "C" fn(*mut sys::conn_rec, sys::apr_off_t);

pub struct SocketInput {
    #[cfg(unix)]
    fd: std::os::raw::c_int,
    c: *mut sys::conn_rec,
    add_bytes_in: Option<AddBytesIn>,
}

impl SocketInput {
    /// `None` where there is no plain socket to read (or off Unix).
    ///
    /// # Safety
    /// `c` is live for as long as the returned value, its input filters hold
    /// no data, and nothing else reads its socket meanwhile.
    pub unsafe fn new(c: *mut sys::conn_rec) -> Option<SocketInput> {
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
            // SAFETY: a lookup in APR's table of optional functions; the
            // pointer, when there is one, has mod_logio's signature.
            let add_bytes_in = unsafe {
                sys::apr_dynamic_fn_retrieve(c"ap_logio_add_bytes_in".as_ptr())
                    .map(|f| std::mem::transmute::<unsafe extern "C" fn(), AddBytesIn>(f))
            };
            Some(SocketInput { fd, c, add_bytes_in })
        }
        #[cfg(not(unix))]
        {
            let _ = c;
            None
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
            let n = unsafe { libc::recv(self.fd, spare.as_mut_ptr().cast(), want, libc::MSG_DONTWAIT) };
            if n > 0 {
                let n = n as usize;
                // SAFETY: recv initialised these n bytes.
                unsafe { out.set_len(out.len() + n) };
                if let Some(add) = self.add_bytes_in {
                    // SAFETY: mod_logio's function on our live connection, on
                    // the thread that owns it.
                    unsafe { add(self.c, n as sys::apr_off_t) };
                }
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
}
