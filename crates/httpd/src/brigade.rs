//! Bucket brigades: how data moves through Apache's filter chains.

use std::cell::Cell;
use std::os::raw::c_char;

use crate::sys;

/// A brigade owned by the caller (created in a pool, emptied and reused).
pub struct Brigade {
    raw: *mut sys::apr_bucket_brigade,
    alloc: *mut sys::apr_bucket_alloc_t,
}

/// What a nonblocking read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes were appended.
    Data(usize),
    /// Nothing available right now.
    WouldBlock,
    /// The peer closed the connection (or it failed).
    Closed(sys::apr_status_t),
}

impl Brigade {
    /// # Safety
    /// `pool` and `alloc` are live and belong to the connection the brigade
    /// is used with; the brigade is used on one thread only.
    pub unsafe fn new(pool: *mut sys::apr_pool_t, alloc: *mut sys::apr_bucket_alloc_t) -> Self {
        // SAFETY: live pool and allocator per the contract.
        let raw = unsafe { sys::apr_brigade_create(pool, alloc) };
        Brigade { raw, alloc }
    }

    pub fn as_raw(&self) -> *mut sys::apr_bucket_brigade {
        self.raw
    }

    /// Destroys every bucket, keeping the brigade for reuse.
    pub fn cleanup(&self) {
        // SAFETY: the brigade is live (created by new, pool not yet destroyed).
        unsafe { sys::apr_brigade_cleanup(self.raw.cast()) };
    }

    /// Reads up to `max` bytes from a filter chain without blocking and
    /// appends them to `out`.
    ///
    /// # Safety
    /// `filters` is the live input filter chain of the brigade's connection.
    pub unsafe fn read_nonblocking(
        &self,
        filters: *mut sys::ap_filter_t,
        max: usize,
        out: &mut Vec<u8>,
    ) -> ReadOutcome {
        // SAFETY: forwarded contract.
        unsafe { self.read(filters, max, sys::APR_NONBLOCK_READ, out, &Cell::new(false)) }
    }

    /// As [`Brigade::read_nonblocking`], but while `skip_eos` is set the
    /// first EOS bucket is passed over (and `skip_eos` cleared): mod_http2
    /// puts one at the head of an upgraded stream's input to end the
    /// request's body, and the stream goes on after it.
    ///
    /// # Safety
    /// As for [`Brigade::read_nonblocking`].
    pub unsafe fn read_nonblocking_past_eos(
        &self,
        filters: *mut sys::ap_filter_t,
        max: usize,
        out: &mut Vec<u8>,
        skip_eos: &Cell<bool>,
    ) -> ReadOutcome {
        // SAFETY: forwarded contract.
        unsafe { self.read(filters, max, sys::APR_NONBLOCK_READ, out, skip_eos) }
    }

    /// Reads up to `max` bytes, waiting (up to the connection's timeout)
    /// for at least one.
    ///
    /// # Safety
    /// As for [`Brigade::read_nonblocking`].
    pub unsafe fn read_blocking(
        &self,
        filters: *mut sys::ap_filter_t,
        max: usize,
        out: &mut Vec<u8>,
    ) -> ReadOutcome {
        // SAFETY: forwarded contract.
        unsafe { self.read(filters, max, sys::APR_BLOCK_READ, out, &Cell::new(false)) }
    }

    unsafe fn read(
        &self,
        filters: *mut sys::ap_filter_t,
        max: usize,
        block: sys::apr_read_type_e,
        out: &mut Vec<u8>,
        skip_eos: &Cell<bool>,
    ) -> ReadOutcome {
        self.cleanup();
        // SAFETY: live filter chain and brigade (contract).
        let rv = unsafe {
            sys::ap_get_brigade(
                filters,
                self.raw,
                sys::AP_MODE_READBYTES,
                block,
                max as sys::apr_off_t,
            )
        };
        if sys::APR_STATUS_IS_EAGAIN(rv) {
            return ReadOutcome::WouldBlock;
        }
        if rv != sys::APR_SUCCESS {
            return ReadOutcome::Closed(rv);
        }
        let before = out.len();
        let mut eos = false;
        // SAFETY: walking a live brigade's ring; each bucket is read before
        // the brigade is cleaned up, and the data is copied out at once.
        unsafe {
            let sentinel = sys::APR_BRIGADE_SENTINEL(self.raw);
            let mut b = sys::APR_BRIGADE_FIRST(self.raw);
            while b != sentinel {
                if sys::APR_BUCKET_IS_EOS(b) {
                    if skip_eos.replace(false) {
                        b = sys::APR_BUCKET_NEXT(b);
                        continue;
                    }
                    eos = true;
                    break;
                }
                if !sys::APR_BUCKET_IS_METADATA(b) {
                    let mut data: *const c_char = std::ptr::null();
                    let mut len: sys::apr_size_t = 0;
                    let rv = sys::apr_bucket_read(b, &mut data, &mut len, sys::APR_BLOCK_READ);
                    if rv != sys::APR_SUCCESS {
                        self.cleanup();
                        return ReadOutcome::Closed(rv);
                    }
                    if len > 0 {
                        out.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
                    }
                }
                b = sys::APR_BUCKET_NEXT(b);
            }
        }
        self.cleanup();
        let n = out.len() - before;
        if n > 0 {
            ReadOutcome::Data(n)
        } else if eos {
            ReadOutcome::Closed(sys::APR_EOF)
        } else {
            ReadOutcome::WouldBlock
        }
    }

    /// Passes `parts` in order down an output filter chain, one transient
    /// bucket each, without a FLUSH: the core output filter writes what the
    /// socket takes without blocking and sets the rest aside (below its
    /// `FlushMaxThreshold`; above it, it writes until it is below again).
    ///
    /// # Safety
    /// `filters` is the live output filter chain of the brigade's connection,
    /// and it is only ever used from the calling thread.
    pub unsafe fn pass_parts(
        &self,
        filters: *mut sys::ap_filter_t,
        parts: &[&[u8]],
    ) -> Result<(), sys::apr_status_t> {
        // SAFETY: forwarded contract.
        unsafe { self.pass(filters, parts, false, usize::MAX) }
    }

    /// [`Brigade::pass_parts`] followed by a FLUSH: the core output filter
    /// writes everything before returning, waiting for the socket (up to
    /// the server's `Timeout`) when it is full. No bucket holds more than
    /// `max_bucket` bytes: a filter that copies what it keeps (mod_http2's
    /// beam does) then copies pieces its allocator can reuse, not one
    /// fresh mapping the size of the whole write.
    ///
    /// # Safety
    /// As for [`Brigade::pass_parts`].
    pub unsafe fn pass_parts_and_flush(
        &self,
        filters: *mut sys::ap_filter_t,
        parts: &[&[u8]],
        max_bucket: usize,
    ) -> Result<(), sys::apr_status_t> {
        // SAFETY: forwarded contract.
        unsafe { self.pass(filters, parts, true, max_bucket) }
    }

    /// # Safety
    /// As for [`Brigade::pass_parts`].
    unsafe fn pass(
        &self,
        filters: *mut sys::ap_filter_t,
        parts: &[&[u8]],
        flush: bool,
        max_bucket: usize,
    ) -> Result<(), sys::apr_status_t> {
        self.cleanup();
        // SAFETY: live brigade and allocator; transient buckets point at
        // `parts`, valid until ap_pass_brigade returns, and a filter that
        // keeps them longer sets them aside (copies) by contract.
        let rv = unsafe {
            for data in parts.iter().filter(|d| !d.is_empty()) {
                for piece in data.chunks(max_bucket) {
                    let b = sys::apr_bucket_transient_create(
                        piece.as_ptr().cast(),
                        piece.len() as sys::apr_size_t,
                        self.alloc,
                    );
                    sys::APR_BRIGADE_INSERT_TAIL(self.raw, b);
                }
            }
            if flush {
                sys::APR_BRIGADE_INSERT_TAIL(self.raw, sys::apr_bucket_flush_create(self.alloc));
            }
            sys::ap_pass_brigade(filters, self.raw)
        };
        self.cleanup();
        if rv == sys::APR_SUCCESS {
            Ok(())
        } else {
            Err(rv)
        }
    }
}

impl Drop for Brigade {
    fn drop(&mut self) {
        // SAFETY: the brigade is live until its pool goes; destroying it
        // early also unregisters its pool cleanup.
        unsafe { sys::apr_brigade_destroy(self.raw) };
    }
}
