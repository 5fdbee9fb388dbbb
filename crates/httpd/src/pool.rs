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

/// A pool Apache owns (a request's or a connection's), borrowed for `'p`.
#[derive(Clone, Copy)]
pub struct PoolRef<'p> {
    raw: std::ptr::NonNull<sys::apr_pool_t>,
    _life: std::marker::PhantomData<&'p sys::apr_pool_t>,
}

impl<'p> PoolRef<'p> {
    /// # Safety
    /// `raw` is a live pool for `'p`.
    pub unsafe fn from_raw(raw: *mut sys::apr_pool_t) -> PoolRef<'p> {
        PoolRef {
            raw: std::ptr::NonNull::new(raw).expect("a live pool"),
            _life: std::marker::PhantomData,
        }
    }

    pub fn as_ptr(&self) -> *mut sys::apr_pool_t {
        self.raw.as_ptr()
    }

    /// Moves `value` into the pool: it is dropped when the pool is cleared
    /// or destroyed, and lent out until then.
    pub fn attach<T: 'p>(&self, value: T) -> &'p mut T {
        // SAFETY: live pool for 'p; the value lives until the pool's cleanup,
        // which runs after 'p ends.
        unsafe { &mut *attach(self.as_ptr(), value) }
    }

    /// A child pool, destroyed when the returned value drops (or with this
    /// pool, whichever comes first; the borrow makes it the first).
    pub fn child(&self) -> Pool<'p> {
        let mut raw: *mut sys::apr_pool_t = std::ptr::null_mut();
        // SAFETY: a subpool of a live pool; APR aborts on allocation failure
        // rather than returning NULL.
        unsafe { sys::apr_pool_create_ex(&mut raw, self.as_ptr(), None, std::ptr::null_mut()) };
        Pool {
            // SAFETY: just created, live until dropped.
            inner: unsafe { PoolRef::from_raw(raw) },
        }
    }
}

/// A pool of our own, destroyed (with everything allocated in it and its
/// cleanups run) when this value drops.
pub struct Pool<'p> {
    inner: PoolRef<'p>,
}

impl Pool<'_> {
    /// The pool, to allocate in: what is borrowed from it cannot outlive it.
    pub fn get(&self) -> PoolRef<'_> {
        PoolRef {
            raw: self.inner.raw,
            _life: std::marker::PhantomData,
        }
    }
}

impl Drop for Pool<'_> {
    fn drop(&mut self) {
        // SAFETY: our own pool, live until now; nothing borrowed from it
        // outlives this value (PoolRef's lifetime).
        unsafe { sys::apr_pool_destroy(self.inner.as_ptr()) }
    }
}
