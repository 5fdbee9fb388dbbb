//! Logging through Apache's error log with a module's own index, so that
//! `LogLevel websocket:debug` selects our messages.

use std::ffi::CString;
use std::os::raw::c_int;

use crate::sys;

pub use sys::{APLOG_CRIT, APLOG_DEBUG, APLOG_ERR, APLOG_INFO, APLOG_NOTICE, APLOG_TRACE1, APLOG_WARNING};

fn message(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).expect("NULs replaced")
}

/// Is `level` enabled for `module_index` in this log configuration?
///
/// # Safety
/// `conf` is NULL or a live `ap_logconf`.
unsafe fn enabled(conf: *const sys::ap_logconf, module_index: c_int, level: c_int) -> bool {
    if conf.is_null() {
        return true;
    }
    // SAFETY: live logconf per the contract; module_levels, when set, has an
    // entry for every module index.
    let conf = unsafe { &*conf };
    let mut max = conf.level;
    if !conf.module_levels.is_null() && module_index >= 0 {
        // SAFETY: see above.
        let per_module = unsafe { *conf.module_levels.add(module_index as usize) };
        if per_module >= 0 {
            max = per_module as c_int;
        }
    }
    level <= max
}

/// Is `level` enabled for a request (so callers can skip formatting)?
///
/// # Safety
/// `r` is a live request.
pub unsafe fn request_enabled(r: *const sys::request_rec, module_index: c_int, level: c_int) -> bool {
    // SAFETY: live request; its log config is owned by the request or server.
    unsafe {
        let conf = if (*r).log.is_null() {
            &(*(*r).server).log as *const _
        } else {
            (*r).log
        };
        enabled(conf, module_index, level)
    }
}

/// Logs `msg` for a request.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn request(
    r: *const sys::request_rec,
    module_index: c_int,
    level: c_int,
    status: sys::apr_status_t,
    msg: &str,
) {
    let msg = message(msg);
    // SAFETY: live request; the format is a literal "%s" with one string argument.
    unsafe {
        sys::ap_log_rerror_(
            c"mod_websocket".as_ptr(),
            0,
            module_index,
            level,
            status,
            r,
            c"%s".as_ptr(),
            msg.as_ptr(),
        )
    }
}
