//! The thin safe layer over `httpd-sys` that the WebSocket modules use:
//! the module record, its directives and hooks ([`module!`],
//! [`config`], [`mod@module`]), request and table access, logging with a
//! module's own index, brigades for reading and writing a connection,
//! pool-owned Rust values and a cheap clock.
//!
//! Everything here borrows objects whose lifetime Apache controls (a request
//! lives until its pool is destroyed), so the wrappers are created from raw
//! pointers by `unsafe` constructors whose contract is exactly that.

pub use httpd_sys as sys;

pub mod brigade;
pub mod child;
pub mod client;
pub mod clock;
pub mod config;
pub mod conn;
pub mod io;
pub mod log;
pub mod module;
pub mod mpm;
pub mod park;
pub mod poll;
pub mod pool;
pub mod request;
pub mod server;
pub mod shm;
mod socket;
pub mod status;
pub mod table;
pub mod version;

/// Apache's `const char *` to `&str`; `None` for NULL or non-UTF-8 text.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
pub unsafe fn cstr<'a>(p: *const std::os::raw::c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().ok()
}

// The unit tests run outside httpd: the APR functions the tested code
// references come from the system's libapr.
#[cfg(all(test, unix))]
#[link(name = "apr-1")]
extern "C" {}
