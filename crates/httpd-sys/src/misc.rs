//! Function-like macros of httpd.h, util_filter.h and apr_pools.h.

use core::ffi::{c_char, c_void};

use crate::{
    ap_filter_flush, ap_filter_t, ap_run_default_port, ap_run_http_scheme, apr_brigade_write,
    apr_bucket_brigade, apr_palloc, apr_pool_t, apr_port_t, apr_size_t, apr_status_t, request_rec,
};

/// `ap_http_scheme(r)`: `"http"` or `"https"` (whatever the hook says).
///
/// # Safety
/// `r` must be a live request; only callable inside the server.
#[inline]
pub unsafe fn ap_http_scheme(r: *const request_rec) -> *const c_char {
    // SAFETY: `r` is a live request (caller's contract).
    unsafe { ap_run_http_scheme(r) }
}

/// `ap_default_port(r)`: 80 or 443 for the request's scheme.
///
/// # Safety
/// `r` must be a live request; only callable inside the server.
#[inline]
pub unsafe fn ap_default_port(r: *const request_rec) -> apr_port_t {
    // SAFETY: `r` is a live request (caller's contract).
    unsafe { ap_run_default_port(r) }
}

/// `apr_pcalloc(p, size)`: zeroed pool memory. Only a macro in release APR
/// builds, so there is no symbol to bind to.
///
/// # Safety
/// `p` must be a live pool owned by the calling thread.
#[inline]
pub unsafe fn apr_pcalloc(p: *mut apr_pool_t, size: apr_size_t) -> *mut c_void {
    // SAFETY: `p` is a live pool (caller's contract); apr_palloc aborts
    // through the pool's abort function rather than return null, but a null
    // check costs nothing.
    unsafe {
        let mem = apr_palloc(p, size);
        if !mem.is_null() {
            core::ptr::write_bytes(mem.cast::<u8>(), 0, size);
        }
        mem
    }
}

/// `ap_fwrite(f, bb, data, nbyte)`: buffers into `bb`, passing it down `f`
/// whenever the brigade's buffer fills.
///
/// # Safety
/// `f` must be a live filter, `bb` a brigade owned by the calling thread and `data` readable for `nbyte` bytes; only callable inside the server.
#[inline]
pub unsafe fn ap_fwrite(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
    data: *const c_char,
    nbyte: apr_size_t,
) -> apr_status_t {
    // SAFETY: forwarded caller contract (live filter, brigade and buffer).
    unsafe { apr_brigade_write(bb, Some(ap_filter_flush), f.cast(), data, nbyte) }
}
