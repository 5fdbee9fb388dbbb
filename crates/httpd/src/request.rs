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

/// Removes the first connection input filter called `name` (such as
/// `reqtimeout`), if present.
///
/// # Safety
/// `c` is a live connection owned by the calling thread.
pub unsafe fn remove_connection_input_filter(c: *mut sys::conn_rec, name: &CStr) {
    // SAFETY: live connection; the call only unlinks a filter.
    unsafe {
        sys::ap_remove_input_filter_byhandle((*c).input_filters, name.as_ptr());
    }
}
