//! Request and connection helpers.

use std::ffi::CStr;

use crate::sys;
use crate::table::Table;

/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn headers_in<'a>(r: *const sys::request_rec) -> Table<'a> {
    // SAFETY: live request per the contract.
    unsafe { Table::from_raw((*r).headers_in) }
}

/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn headers_out<'a>(r: *const sys::request_rec) -> Table<'a> {
    // SAFETY: live request per the contract.
    unsafe { Table::from_raw((*r).headers_out) }
}

/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn err_headers_out<'a>(r: *const sys::request_rec) -> Table<'a> {
    // SAFETY: live request per the contract.
    unsafe { Table::from_raw((*r).err_headers_out) }
}

/// The scheme the request arrived with (`http` or `https`, as mod_ssl says).
///
/// # Safety
/// `r` is a live request.
pub unsafe fn scheme<'a>(r: *const sys::request_rec) -> &'a str {
    // SAFETY: live request; the hook returns a static or pool string.
    unsafe { crate::cstr(sys::ap_http_scheme(r)) }.unwrap_or("http")
}

/// The port a `Host` header without one implies for this request.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn default_port(r: *const sys::request_rec) -> u16 {
    // SAFETY: live request.
    unsafe { sys::ap_default_port(r) }
}

/// The note that asks for `Allow: GET` on a request's 405.
const ALLOW_GET_NOTE: &CStr = c"websocket-allow-get";
/// The output filter that writes it.
const ALLOW_GET_FILTER: &CStr = c"WEBSOCKET_ALLOW_GET";

/// Registers what [`answer_allows_only_get`] needs; from a module's
/// register_hooks (which `hooks` proves is running).
pub fn register_allow_get(_hooks: &crate::module::Hooks<'_>) {
    // SAFETY: registration-time calls (on Apache's main thread, while the
    // module registers) with static names and functions.
    unsafe {
        sys::ap_register_output_filter(
            ALLOW_GET_FILTER.as_ptr(),
            Some(allow_get_filter),
            None,
            sys::AP_FTYPE_CONTENT_SET,
        );
        sys::ap_hook_insert_error_filter(
            Some(insert_allow_get),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE,
        );
    }
}

/// Makes the 405 that the handler is about to return say `Allow: GET`.
/// Apache builds that header from the request's allowed methods, where
/// HEAD always comes with GET; a HEAD cannot open a WebSocket, so the
/// header is replaced on the error response's way out.
///
/// # Safety
/// `r` is a live request handled on this thread.
pub unsafe fn answer_allows_only_get(r: *mut sys::request_rec) {
    // SAFETY: live request (contract); the note's value is a static string.
    unsafe {
        sys::apr_table_setn((*r).notes, ALLOW_GET_NOTE.as_ptr(), c"1".as_ptr());
        // Apache refuses to send a 405 without an Allow header of its own.
        (*r).allowed |= 1 << sys::M_GET;
        if let Some(methods) = (*r).allowed_methods.as_mut() {
            methods.method_mask |= 1 << sys::M_GET;
        }
    }
}

/// Apache's insert_error_filter hook: adds the filter to a 405 that asked
/// for it (the error response starts over from the protocol filters, so
/// it cannot be added earlier).
unsafe extern "C" fn insert_allow_get(r: *mut sys::request_rec) {
    // SAFETY: Apache passes the live request whose error response is being made.
    unsafe {
        if (*r).status == sys::HTTP_METHOD_NOT_ALLOWED
            && !sys::apr_table_get((*r).notes, ALLOW_GET_NOTE.as_ptr()).is_null()
        {
            sys::ap_add_output_filter(
                ALLOW_GET_FILTER.as_ptr(),
                std::ptr::null_mut(),
                r,
                (*r).connection,
            );
        }
    }
}

unsafe extern "C" fn allow_get_filter(
    f: *mut sys::ap_filter_t,
    bb: *mut sys::apr_bucket_brigade,
) -> sys::apr_status_t {
    // SAFETY: Apache calls the filter with itself (on a live request) and a
    // brigade; the headers have been set and not yet sent.
    unsafe {
        sys::apr_table_setn((*(*f).r).headers_out, c"Allow".as_ptr(), c"GET".as_ptr());
        let next = (*f).next;
        sys::ap_remove_output_filter(f);
        sys::ap_pass_brigade(next, bb)
    }
}
