//! mod_status's `status_hook`: a module's section of `server-status`.

use std::os::raw::c_int;
use std::sync::OnceLock;

use crate::conn::Request;
use crate::sys;

/// mod_status.h's `AP_STATUS_SHORT`: the page is `?auto`, machine-readable
/// `Key: value` lines.
const AP_STATUS_SHORT: c_int = 0x1;

/// Writes a module's part of the status page; `short` for `?auto`.
pub type StatusFn = fn(Request<'_>, bool);

static STATUS: OnceLock<StatusFn> = OnceLock::new();

unsafe extern "C" fn status_hook(r: *mut sys::request_rec, flags: c_int) -> c_int {
    // SAFETY: mod_status runs its hook with the live request it is answering.
    let Some(r) = (unsafe { Request::from_raw(r) }) else {
        return sys::OK;
    };
    if let Some(f) = STATUS.get() {
        let short = flags & AP_STATUS_SHORT != 0;
        // A panic must not unwind into mod_status.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(r, short)));
    }
    sys::OK
}

/// Adds `f` to mod_status's page (when mod_status is loaded; the hook is
/// optional). One function per process; from a module's hook registration.
pub fn register(f: StatusFn) {
    if STATUS.set(f).is_ok() {
        // SAFETY: registration time, on Apache's main thread; the name is
        // mod_status's optional hook and the function has its signature.
        unsafe {
            sys::apr_optional_hook_add(
                c"status_hook".as_ptr(),
                Some(std::mem::transmute::<
                    unsafe extern "C" fn(*mut sys::request_rec, c_int) -> c_int,
                    unsafe extern "C" fn(),
                >(status_hook)),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE,
            )
        };
    }
}
