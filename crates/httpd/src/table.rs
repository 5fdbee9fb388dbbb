//! `apr_table_t`: Apache's case-insensitive header tables.

use std::ffi::CString;

use crate::sys;

/// A borrowed APR table (headers_in, headers_out, ...).
#[derive(Clone, Copy)]
pub struct Table<'a> {
    raw: *mut sys::apr_table_t,
    _life: std::marker::PhantomData<&'a ()>,
}

impl<'a> Table<'a> {
    /// # Safety
    /// `raw` is a live table that outlives `'a`, used from one thread at a time.
    pub unsafe fn from_raw(raw: *mut sys::apr_table_t) -> Self {
        Table {
            raw,
            _life: std::marker::PhantomData,
        }
    }

    pub fn as_raw(&self) -> *mut sys::apr_table_t {
        self.raw
    }

    /// The value of `key` (repeated headers are merged by Apache with ", ").
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let key = CString::new(key).ok()?;
        // SAFETY: live table (constructor contract), NUL-terminated key; the
        // value is owned by the table's pool, which outlives 'a.
        unsafe { crate::cstr(sys::apr_table_get(self.raw, key.as_ptr())) }
    }

    /// Sets `key` to `value`, replacing earlier values. Both are copied into
    /// the table's pool. Strings with NUL bytes are ignored (they cannot be
    /// header text).
    pub fn set(&self, key: &str, value: &str) {
        if let (Ok(k), Ok(v)) = (CString::new(key), CString::new(value)) {
            // SAFETY: live table; apr_table_set copies both strings.
            unsafe { sys::apr_table_set(self.raw, k.as_ptr(), v.as_ptr()) }
        }
    }

    pub fn unset(&self, key: &str) {
        if let Ok(k) = CString::new(key) {
            // SAFETY: live table, NUL-terminated key.
            unsafe { sys::apr_table_unset(self.raw, k.as_ptr()) }
        }
    }
}

impl<'a> Table<'a> {
    /// [`Table::get`] for C strings as they come from C callers, without
    /// any copy: the value is the table's own pool string.
    pub fn get_c(&self, key: &std::ffi::CStr) -> Option<&'a std::ffi::CStr> {
        // SAFETY: live table (constructor contract); the value is NULL or a
        // NUL-terminated string of the table's pool, which outlives 'a.
        unsafe {
            let v = sys::apr_table_get(self.raw, key.as_ptr());
            (!v.is_null()).then(|| std::ffi::CStr::from_ptr(v))
        }
    }

    /// [`Table::set`] for C strings; both are copied into the table's pool.
    pub fn set_c(&self, key: &std::ffi::CStr, value: &std::ffi::CStr) {
        // SAFETY: live table; apr_table_set copies both strings.
        unsafe { sys::apr_table_set(self.raw, key.as_ptr(), value.as_ptr()) }
    }
}
