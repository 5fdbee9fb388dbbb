//! Counters every process of one Apache shares, that survive graceful
//! restarts the way Apache's scoreboard does.
//!
//! The memory is an anonymous shared mapping made once, in the parent, by
//! the first configuration pass. Children are forked from the parent, so
//! they all see it. Apache unloads and reloads modules on every restart, so
//! the mapping is kept in the parent's process pool (which lives as long as
//! the process) under a key, and found there again by the next pass.
//! Off Unix (one child process, mpm_winnt) the counters are process memory.

use std::ffi::CStr;
use std::sync::atomic::AtomicU64;

use crate::server::Server;
use crate::sys;

/// What the process pool keeps under the key.
#[repr(C)]
struct Region {
    words: *const AtomicU64,
    len: usize,
}

/// `len` zeroed counters shared by every process of this Apache, the same
/// ones on every configuration pass (restarts included) for the same `key`
/// and `len`. Call it from `post_config` in the parent, before children are
/// forked. `None` if the memory cannot be had.
pub fn process_counters(server: Server<'_>, key: &'static CStr, len: usize) -> Option<&'static [AtomicU64]> {
    // SAFETY: a live server record's process and its pool live as long as
    // the process (process_rec is made once by main()).
    let pool = unsafe { (*(*server.as_ptr()).process).pool };
    let mut found: *mut std::os::raw::c_void = std::ptr::null_mut();
    // SAFETY: a lookup in the live process pool; the key is a C string.
    unsafe { sys::apr_pool_userdata_get(&mut found, key.as_ptr(), pool) };
    if !found.is_null() {
        // SAFETY: only this function stores Regions under our keys, and
        // never frees them.
        let region = unsafe { &*found.cast::<Region>() };
        if region.len == len {
            // SAFETY: the region's words are `len` AtomicU64s for the whole
            // process lifetime (never unmapped).
            return Some(unsafe { std::slice::from_raw_parts(region.words, len) });
        }
    }
    let words = map_zeroed(len)?;
    let region = Box::leak(Box::new(Region {
        words: words.as_ptr(),
        len,
    }));
    // SAFETY: the process pool is live and the data leaked, so it outlives
    // the pool. `set` (not `setn`) copies the key into the pool: the key may
    // live in this module's image, which a restart unmaps, while the pool
    // and its table of keys live on.
    unsafe { sys::apr_pool_userdata_set((region as *mut Region).cast(), key.as_ptr(), None, pool) };
    Some(words)
}

#[cfg(unix)]
fn map_zeroed(len: usize) -> Option<&'static [AtomicU64]> {
    let bytes = len.checked_mul(std::mem::size_of::<AtomicU64>())?.max(1);
    // SAFETY: a fresh anonymous shared mapping, zero-filled by the kernel;
    // it is never unmapped, so the slice is valid for 'static, and
    // AtomicU64 is valid for all-zero bytes.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(std::slice::from_raw_parts(p.cast::<AtomicU64>(), len))
    }
}

#[cfg(not(unix))]
fn map_zeroed(len: usize) -> Option<&'static [AtomicU64]> {
    Some(Box::leak(
        (0..len)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use std::sync::atomic::Ordering;

    #[test]
    fn a_mapping_is_shared_with_forked_children() {
        let words = super::map_zeroed(4).expect("mmap");
        assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        // SAFETY: fork in a test process; the child only touches the
        // mapping and exits at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            words[2].fetch_add(41, Ordering::Relaxed);
            // SAFETY: ends the child without running the parent's state.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        words[2].fetch_add(1, Ordering::Relaxed);
        assert_eq!(words[2].load(Ordering::Relaxed), 42);
    }
}
