//! Logging through Apache's error log with a module's own index, so that
//! `LogLevel websocket:debug` selects our messages.

use std::ffi::CString;
use std::os::raw::c_int;

use crate::sys;

pub use sys::{
    APLOG_CRIT, APLOG_DEBUG, APLOG_ERR, APLOG_INFO, APLOG_NOTICE, APLOG_STARTUP, APLOG_TRACE1, APLOG_WARNING,
};

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
            max = c_int::from(per_module);
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

/// Whether a message at `level` for `module_index` would be logged for a
/// connection (its own `LogLevel`, or its server's).
///
/// # Safety
/// `c` is a live connection.
pub unsafe fn connection_enabled(c: *const sys::conn_rec, module_index: c_int, level: c_int) -> bool {
    // SAFETY: live connection; its log config is owned by it or its server.
    unsafe {
        let conf = if (*c).log.is_null() {
            &(*(*c).base_server).log as *const _
        } else {
            (*c).log
        };
        enabled(conf, module_index, level)
    }
}

/// Logs `msg` for a connection outside any request (its client address
/// comes first on the line, as in Apache's own connection messages).
///
/// # Safety
/// `c` is a live connection.
pub unsafe fn connection(
    c: *const sys::conn_rec,
    module_index: c_int,
    level: c_int,
    source: Source,
    msg: &str,
) {
    let msg = message(msg);
    // SAFETY: live connection; static file name; a literal "%s" format with
    // one string argument.
    unsafe {
        sys::ap_log_cerror_(
            source.file_ptr(),
            source.line(),
            module_index,
            level,
            0,
            c,
            c"%s".as_ptr(),
            msg.as_ptr(),
        )
    }
}

/// Where a log line comes from, as Apache prints it at `debug` and above
/// (`session.rs(210):`, like a C module's `mod_proxy.c(1234):`).
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// NUL-terminated: `concat!(file!(), "\0")`.
    file: &'static str,
    line: u32,
}

impl Source {
    /// `file` must end with a NUL; [`here!`](crate::here) writes it.
    pub const fn new(file: &'static str, line: u32) -> Source {
        Source { file, line }
    }

    /// The file's base name, still NUL-terminated: Apache prints the path
    /// it is given, and the crate-relative one says nothing to an operator.
    fn file_ptr(&self) -> *const std::os::raw::c_char {
        let bytes = self.file.as_bytes();
        if bytes.last() != Some(&0) {
            return c"?".as_ptr();
        }
        let start = bytes
            .iter()
            .rposition(|&b| b == b'/' || b == b'\\')
            .map_or(0, |i| i + 1);
        bytes[start..].as_ptr().cast()
    }

    fn line(&self) -> c_int {
        c_int::try_from(self.line).unwrap_or(0)
    }
}

/// The [`Source`] of the line it is written on.
#[macro_export]
macro_rules! here {
    () => {
        $crate::log::Source::new(concat!(file!(), "\0"), line!())
    };
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
    source: Source,
    msg: &str,
) {
    let msg = message(msg);
    // SAFETY: live request; the file name is a static NUL-terminated string
    // and the format a literal "%s" with one string argument.
    unsafe {
        sys::ap_log_rerror_(
            source.file_ptr(),
            source.line(),
            module_index,
            level,
            status,
            r,
            c"%s".as_ptr(),
            msg.as_ptr(),
        )
    }
}

/// Logs `msg` for a server outside any request: at startup (`s` NULL writes
/// to stderr before the error log is open, which is what `apachectl
/// configtest` shows) or for a virtual host.
///
/// # Safety
/// `s` is NULL or a live server record.
pub unsafe fn server(
    s: *const sys::server_rec,
    module_index: c_int,
    level: c_int,
    source: Source,
    msg: &str,
) {
    let msg = message(msg);
    // SAFETY: as for `request`; Apache accepts a NULL server.
    unsafe {
        sys::ap_log_error_(
            source.file_ptr(),
            source.line(),
            module_index,
            level,
            0,
            s,
            c"%s".as_ptr(),
            msg.as_ptr(),
        )
    }
}

/// Logs `msg` for no server in particular, as at startup: to stderr, which
/// is what `apachectl configtest` and a failed start show (and which Apache
/// points at the main error log once that is open).
pub fn startup(module_index: c_int, level: c_int, source: Source, msg: &str) {
    // SAFETY: Apache accepts a NULL server at any time.
    unsafe { server(std::ptr::null(), module_index, level, source, msg) }
}

/// An APR status as the text `apr_strerror` gives it ("End of file found",
/// "Connection reset by peer"), for log lines an operator reads.
pub fn apr_error(status: sys::apr_status_t) -> String {
    let mut buf = [0 as std::os::raw::c_char; 256];
    // SAFETY: apr_strerror writes at most `buf.len()` bytes, NUL included,
    // and returns `buf`.
    let text = unsafe { std::ffi::CStr::from_ptr(sys::apr_strerror(status, buf.as_mut_ptr(), buf.len())) };
    text.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_the_base_name() {
        let s = crate::here!();
        // SAFETY: file_ptr points into a static NUL-terminated string.
        let file = unsafe { std::ffi::CStr::from_ptr(s.file_ptr()) };
        assert_eq!(file.to_str().unwrap(), "log.rs");
        assert!(s.line() > 0);
        let bare = Source::new("lib.rs\0", 7);
        // SAFETY: as above.
        let bare_file = unsafe { std::ffi::CStr::from_ptr(bare.file_ptr()) };
        assert_eq!(bare_file.to_str().unwrap(), "lib.rs");
        let unterminated = Source::new("lib.rs", 7);
        // SAFETY: as above.
        let unterminated_file = unsafe { std::ffi::CStr::from_ptr(unterminated.file_ptr()) };
        assert_eq!(unterminated_file.to_str().unwrap(), "?");
    }
}
