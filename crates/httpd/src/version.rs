//! Which httpd the module runs in, the oldest one it supports, and the
//! functions it calls that httpd 2.4.0 did not have.
//!
//! A module that imports a function the server lacks does not load at all:
//! the dynamic loader stops `LoadModule` with "undefined symbol", which says
//! nothing about versions. So the modules import only what every 2.4 server
//! exports, call the newer functions through the lazy wrappers below (looked
//! up in the running server when first called), and refuse to start from
//! their pre_config hook, with a message naming both versions, in a server
//! older than [`MINIMUM`].
//!
//! The functions newer than 2.4.0, with the MMN bump (include/ap_mmn.h)
//! that added them:
//!
//! | function | httpd | MMN |
//! | --- | --- | --- |
//! | `ap_remove_input_filter_byhandle` | 2.4.5 | 20120211.12 |
//! | `ap_remove_output_filter_byhandle` | 2.4.5 | 20120211.12 |
//! | `ap_get_pollfd_from_conn` | 2.4.58 | 20120211.129 |
//!
//! On Windows the modules link httpd's import library, which resolves every
//! function when the DLL is loaded; there the wrappers call the import.

use std::fmt;
use std::os::raw::c_char;

use crate::sys;

/// An httpd release number, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version { major, minor, patch }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The oldest httpd the modules work in: the session loop polls the
/// connection through `ap_get_pollfd_from_conn`, new in 2.4.58.
pub const MINIMUM: Version = Version::new(2, 4, 58);

/// The release of the httpd this process runs (`ap_get_server_revision`,
/// which every 2.x server has).
pub fn running() -> Version {
    let mut v = sys::ap_version_t::default();
    // SAFETY: the function only fills in the struct it is given.
    unsafe { sys::ap_get_server_revision(&mut v) };
    let part = |n: std::os::raw::c_int| u32::try_from(n).unwrap_or(0);
    Version::new(part(v.major), part(v.minor), part(v.patch))
}

/// `Err` with the message for the operator when `running` is older than
/// `minimum`; `module` names who needs it (`mod_websocket`).
pub fn require(module: &str, minimum: Version, running: Version) -> Result<(), String> {
    if running >= minimum {
        Ok(())
    } else {
        Err(format!(
            "{module} needs Apache httpd {minimum} or later; this server is {running}"
        ))
    }
}

/// The address of the function `name` in the running server, or NULL.
#[cfg(unix)]
fn lookup(name: &std::ffi::CStr) -> *mut std::os::raw::c_void {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the objects
    // already loaded (httpd exports its API to the modules it loads), and
    // dlsym has no other effect.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// One lazily resolved function of the running server: `$name` with the
/// C signature `$fn_ty`, found the first time it is needed and remembered
/// (NULL included) for the life of the process.
#[cfg(unix)]
macro_rules! resolved {
    ($name:literal, $fn_ty:ty) => {{
        static ADDRESS: std::sync::OnceLock<Option<$fn_ty>> = std::sync::OnceLock::new();
        *ADDRESS.get_or_init(|| {
            let p = lookup($name);
            // SAFETY: a non-NULL result is httpd's own function of this
            // name, whose C declaration `$fn_ty` repeats (AP_DECLARE is the
            // platform's C calling convention on Unix).
            (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut std::os::raw::c_void, $fn_ty>(p) })
        })
    }};
}

/// `ap_get_pollfd_from_conn` (http_core.h, httpd 2.4.58): the descriptor and
/// timeout to poll a connection's input with. `APR_ENOTIMPL` from a server
/// that lacks it (one [`MINIMUM`] refuses to start in).
///
/// # Safety
/// As for the C function: `c` is a live connection, `pfd` points to a pollfd
/// to fill in, `ptimeout` is NULL or points to where the timeout goes.
pub unsafe fn get_pollfd_from_conn(
    c: *mut sys::conn_rec,
    pfd: *mut sys::apr_pollfd_t,
    ptimeout: *mut sys::apr_interval_time_t,
) -> sys::apr_status_t {
    #[cfg(unix)]
    {
        type F = unsafe extern "C" fn(
            *mut sys::conn_rec,
            *mut sys::apr_pollfd_t,
            *mut sys::apr_interval_time_t,
        ) -> sys::apr_status_t;
        match resolved!(c"ap_get_pollfd_from_conn", F) {
            // SAFETY: the caller's contract is the function's.
            Some(f) => unsafe { f(c, pfd, ptimeout) },
            None => sys::APR_ENOTIMPL,
        }
    }
    #[cfg(not(unix))]
    // SAFETY: the caller's contract is the function's.
    unsafe {
        sys::ap_get_pollfd_from_conn(c, pfd, ptimeout)
    }
}

/// `ap_remove_input_filter_byhandle` (util_filter.h, httpd 2.4.5): removes
/// the first filter called `handle` from the chain starting at `next`.
/// `APR_ENOTIMPL` from a server that lacks it.
///
/// # Safety
/// As for the C function: `next` is a live filter chain owned by the
/// calling thread, `handle` a NUL-terminated name.
pub unsafe fn remove_input_filter_byhandle(
    next: *mut sys::ap_filter_t,
    handle: *const c_char,
) -> sys::apr_status_t {
    #[cfg(unix)]
    {
        type F = unsafe extern "C" fn(*mut sys::ap_filter_t, *const c_char) -> sys::apr_status_t;
        match resolved!(c"ap_remove_input_filter_byhandle", F) {
            // SAFETY: the caller's contract is the function's.
            Some(f) => unsafe { f(next, handle) },
            None => sys::APR_ENOTIMPL,
        }
    }
    #[cfg(not(unix))]
    // SAFETY: the caller's contract is the function's.
    unsafe {
        sys::ap_remove_input_filter_byhandle(next, handle)
    }
}

/// `ap_remove_output_filter_byhandle` (util_filter.h, httpd 2.4.5): removes
/// the first filter called `handle` from the chain starting at `next`.
/// `APR_ENOTIMPL` from a server that lacks it.
///
/// # Safety
/// As for the C function: `next` is a live filter chain owned by the
/// calling thread, `handle` a NUL-terminated name.
pub unsafe fn remove_output_filter_byhandle(
    next: *mut sys::ap_filter_t,
    handle: *const c_char,
) -> sys::apr_status_t {
    #[cfg(unix)]
    {
        type F = unsafe extern "C" fn(*mut sys::ap_filter_t, *const c_char) -> sys::apr_status_t;
        match resolved!(c"ap_remove_output_filter_byhandle", F) {
            // SAFETY: the caller's contract is the function's.
            Some(f) => unsafe { f(next, handle) },
            None => sys::APR_ENOTIMPL,
        }
    }
    #[cfg(not(unix))]
    // SAFETY: the caller's contract is the function's.
    unsafe {
        sys::ap_remove_output_filter_byhandle(next, handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_part_by_part() {
        let v = Version::new;
        assert!(v(2, 4, 58) > v(2, 4, 57));
        assert!(v(2, 4, 100) > v(2, 4, 58), "numerically, not as text");
        assert!(v(2, 5, 0) > v(2, 4, 99));
        assert!(v(3, 0, 0) > v(2, 99, 99));
        assert!(v(2, 2, 34) < v(2, 4, 0));
        assert_eq!(v(2, 4, 58), MINIMUM);
        assert_eq!(MINIMUM.to_string(), "2.4.58");
    }

    #[test]
    fn require_names_both_versions() {
        assert_eq!(require("mod_websocket", MINIMUM, Version::new(2, 4, 58)), Ok(()));
        assert_eq!(require("mod_websocket", MINIMUM, Version::new(2, 4, 66)), Ok(()));
        assert_eq!(require("mod_websocket", MINIMUM, Version::new(2, 6, 0)), Ok(()));
        assert_eq!(
            require("mod_websocket", MINIMUM, Version::new(2, 4, 57)),
            Err("mod_websocket needs Apache httpd 2.4.58 or later; this server is 2.4.57".into())
        );
        assert_eq!(
            require(
                "mod_websocket_draft76",
                Version::new(2, 4, 60),
                Version::new(2, 4, 7)
            ),
            Err("mod_websocket_draft76 needs Apache httpd 2.4.60 or later; this server is 2.4.7".into())
        );
    }

    #[cfg(unix)]
    #[test]
    fn lookup_finds_loaded_functions_only() {
        // The test binary has libc loaded but no httpd.
        assert!(!lookup(c"getpid").is_null());
        assert!(lookup(c"ap_get_pollfd_from_conn").is_null());
        // So the wrappers answer without calling anything.
        // SAFETY: nothing is called (the functions are absent here), so no
        // pointer is used.
        unsafe {
            let none = std::ptr::null_mut();
            assert_eq!(
                get_pollfd_from_conn(none, none.cast(), none.cast()),
                sys::APR_ENOTIMPL
            );
            assert_eq!(
                remove_input_filter_byhandle(none.cast(), c"x".as_ptr()),
                sys::APR_ENOTIMPL
            );
        }
    }
}
