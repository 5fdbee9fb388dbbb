//! Rust values whose lifetime is tied to an APR pool.

use std::os::raw::c_void;

use crate::sys;

unsafe extern "C" fn drop_box<T>(data: *mut c_void) -> sys::apr_status_t {
    // SAFETY: registered by `attach` with a pointer from Box::into_raw::<T>,
    // and APR runs a cleanup exactly once.
    drop(unsafe { Box::from_raw(data.cast::<T>()) });
    sys::APR_SUCCESS
}

/// Moves `value` into `pool`: it is dropped when the pool is cleared or
/// destroyed. Returns the pointer Apache will hand back (config records).
///
/// # Safety
/// `pool` is a live pool; the returned pointer must not be used after the
/// pool's cleanup ran.
pub unsafe fn attach<T>(pool: *mut sys::apr_pool_t, value: T) -> *mut T {
    let raw = Box::into_raw(Box::new(value));
    // SAFETY: live pool; the cleanup frees exactly this allocation. Child
    // processes forked from the pool's owner must not run Rust drops
    // (apr_pool_cleanup_null for the child cleanup).
    unsafe {
        sys::apr_pool_cleanup_register(
            pool,
            raw as *const c_void,
            Some(drop_box::<T>),
            Some(sys::apr_pool_cleanup_null),
        );
    }
    raw
}

/// Copies `s` into `pool` as a C string (for messages Apache keeps, such as
/// a directive's error text).
///
/// # Safety
/// `pool` is a live pool.
pub unsafe fn strdup(pool: *mut sys::apr_pool_t, s: &str) -> *const std::os::raw::c_char {
    let c = std::ffi::CString::new(s.replace('\0', "\\0")).expect("NULs replaced");
    // SAFETY: live pool; apr_pstrdup copies the string.
    unsafe { sys::apr_pstrdup(pool, c.as_ptr()) }
}
