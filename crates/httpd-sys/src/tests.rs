//! Exercises the hand-written helpers against a real APR, without a server.
//!
//! Only this test binary links libapr/libaprutil: a module loaded by httpd
//! must take those symbols from the server process instead.

use core::ffi::{c_char, CStr};
use core::ptr;
use std::sync::Once;

use crate::*;

#[link(name = "apr-1")]
#[link(name = "aprutil-1")]
extern "C" {}

/// A pool, bucket allocator and brigade, torn down on drop.
struct Apr {
    pool: *mut apr_pool_t,
    alloc: *mut apr_bucket_alloc_t,
}

impl Apr {
    fn new() -> Apr {
        static INIT: Once = Once::new();
        // SAFETY: apr_initialize is called once per process, before any pool.
        INIT.call_once(|| assert_eq!(unsafe { apr_initialize() }, APR_SUCCESS));
        let mut pool = ptr::null_mut();
        // SAFETY: a root pool with the default allocator and abort function.
        let rv = unsafe { apr_pool_create_ex(&mut pool, ptr::null_mut(), None, ptr::null_mut()) };
        assert_eq!(rv, APR_SUCCESS);
        // SAFETY: `pool` was just created.
        let alloc = unsafe { apr_bucket_alloc_create(pool) };
        Apr { pool, alloc }
    }

    fn brigade(&self) -> *mut apr_bucket_brigade {
        // SAFETY: pool and allocator are live for as long as `self`.
        unsafe { apr_brigade_create(self.pool, self.alloc) }
    }

    /// A heap bucket holding a copy of `text` (APR copies when there is no
    /// free function).
    fn heap(&self, text: &str) -> *mut apr_bucket {
        // SAFETY: APR copies `text` before returning.
        unsafe { apr_bucket_heap_create(text.as_ptr().cast(), text.len(), None, self.alloc) }
    }
}

impl Drop for Apr {
    fn drop(&mut self) {
        // SAFETY: destroys the pool (and with it every brigade made from it).
        unsafe { apr_pool_destroy(self.pool) }
    }
}

/// The buckets of `bb` walked with the ring helpers, as (type name, data).
unsafe fn walk(bb: *mut apr_bucket_brigade) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // SAFETY: `bb` is live; every bucket up to the sentinel is real.
    unsafe {
        let mut e = APR_BRIGADE_FIRST(bb);
        while e != APR_BRIGADE_SENTINEL(bb) {
            let name = CStr::from_ptr((*(*e).type_).name).to_string_lossy().into_owned();
            let mut data: *const c_char = ptr::null();
            let mut len: apr_size_t = 0;
            assert_eq!(
                apr_bucket_read(e, &mut data, &mut len, APR_BLOCK_READ),
                APR_SUCCESS
            );
            let bytes = if len == 0 {
                &[][..]
            } else {
                core::slice::from_raw_parts(data.cast::<u8>(), len)
            };
            out.push((name, String::from_utf8_lossy(bytes).into_owned()));
            e = APR_BUCKET_NEXT(e);
        }
    }
    out
}

fn flatten(bb: *mut apr_bucket_brigade) -> String {
    let mut buf = [0u8; 256];
    let mut len: apr_size_t = buf.len();
    // SAFETY: `buf` has `len` writable bytes.
    let rv = unsafe { apr_brigade_flatten(bb, buf.as_mut_ptr().cast(), &mut len) };
    assert_eq!(rv, APR_SUCCESS);
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

fn names(v: &[(String, String)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn brigade_insert_walk_flatten() {
    let apr = Apr::new();
    let bb = apr.brigade();
    // SAFETY: all buckets come from this brigade's allocator, one thread.
    unsafe {
        assert!(APR_BRIGADE_EMPTY(bb));
        assert_eq!(APR_BRIGADE_FIRST(bb), APR_BRIGADE_SENTINEL(bb));
        assert_eq!(APR_BRIGADE_LAST(bb), APR_BRIGADE_SENTINEL(bb));

        APR_BRIGADE_INSERT_TAIL(bb, apr.heap("world"));
        APR_BRIGADE_INSERT_HEAD(bb, apr.heap("hello "));
        let excl = c"!";
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(excl.as_ptr(), 1, apr.alloc));
        let t = b"\n";
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(t.as_ptr().cast(), 1, apr.alloc));
        let pooled = apr_pstrdup(apr.pool, c"<pool>".as_ptr());
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(pooled, 6, apr.pool, apr.alloc));
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(apr.alloc));
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(apr.alloc));
        assert!(!APR_BRIGADE_EMPTY(bb));

        let seen = walk(bb);
        assert_eq!(
            names(&seen),
            ["HEAP", "HEAP", "IMMORTAL", "TRANSIENT", "POOL", "FLUSH", "EOS"]
        );
        assert_eq!(flatten(bb), "hello world!\n<pool>");
        let mut length: apr_off_t = -1;
        assert_eq!(apr_brigade_length(bb, 1, &mut length), APR_SUCCESS);
        assert_eq!(length, 19);

        let first = APR_BRIGADE_FIRST(bb);
        assert!(APR_BUCKET_IS_HEAP(first) && !APR_BUCKET_IS_METADATA(first));
        assert!(APR_BUCKET_IS_IMMORTAL(APR_BUCKET_NEXT(APR_BUCKET_NEXT(first))));
        let last = APR_BRIGADE_LAST(bb);
        assert!(APR_BUCKET_IS_EOS(last) && APR_BUCKET_IS_METADATA(last));
        let flush = APR_BUCKET_PREV(last);
        assert!(APR_BUCKET_IS_FLUSH(flush) && !APR_BUCKET_IS_EOS(flush));
        assert!(APR_BUCKET_IS_POOL(APR_BUCKET_PREV(flush)));
        assert!(APR_BUCKET_IS_TRANSIENT(APR_BUCKET_PREV(APR_BUCKET_PREV(flush))));
        assert_eq!(APR_BUCKET_PREV(first), APR_BRIGADE_SENTINEL(bb));
        assert_eq!(APR_BUCKET_NEXT(last), APR_BRIGADE_SENTINEL(bb));

        apr_bucket_delete(flush);
        apr_bucket_delete(APR_BRIGADE_FIRST(bb));
        assert_eq!(names(&walk(bb)), ["HEAP", "IMMORTAL", "TRANSIENT", "POOL", "EOS"]);
        assert_eq!(flatten(bb), "world!\n<pool>");

        assert_eq!(apr_brigade_cleanup(bb.cast()), APR_SUCCESS);
        assert!(APR_BRIGADE_EMPTY(bb));
        assert_eq!(apr_brigade_destroy(bb), APR_SUCCESS);
    }
}

#[test]
fn insert_before_after_remove_and_split() {
    let apr = Apr::new();
    let bb = apr.brigade();
    // SAFETY: single-threaded use of one brigade and its allocator.
    unsafe {
        let b = apr.heap("B");
        APR_BRIGADE_INSERT_TAIL(bb, b);
        APR_BUCKET_INSERT_BEFORE(b, apr.heap("A"));
        APR_BUCKET_INSERT_AFTER(b, apr.heap("C"));
        assert_eq!(flatten(bb), "ABC");

        APR_BUCKET_REMOVE(b);
        assert_eq!(flatten(bb), "AC");
        // A removed bucket can go into another brigade.
        let other = apr.brigade();
        APR_BRIGADE_INSERT_TAIL(other, b);
        assert_eq!(flatten(other), "B");
        apr_bucket_destroy({
            let e = APR_BRIGADE_FIRST(other);
            APR_BUCKET_REMOVE(e);
            e
        });
        assert!(APR_BRIGADE_EMPTY(other));

        let long = apr.heap("splitting");
        APR_BRIGADE_INSERT_TAIL(bb, long);
        assert_eq!(apr_bucket_split(long, 5), APR_SUCCESS);
        let seen = walk(bb);
        assert_eq!(
            seen.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
            ["A", "C", "split", "ting"]
        );

        let mut copy = ptr::null_mut();
        assert_eq!(apr_bucket_copy(long, &mut copy), APR_SUCCESS);
        APR_BRIGADE_INSERT_TAIL(bb, copy);
        assert_eq!(flatten(bb), "ACsplittingsplit");
        assert_eq!(apr_bucket_setaside(copy, apr.pool), APR_SUCCESS);
    }
}

#[test]
fn concat_and_prepend_move_whole_brigades() {
    let apr = Apr::new();
    let (a, b) = (apr.brigade(), apr.brigade());
    // SAFETY: single-threaded use of brigades sharing one allocator.
    unsafe {
        APR_BRIGADE_INSERT_TAIL(a, apr.heap("2"));
        APR_BRIGADE_INSERT_TAIL(b, apr.heap("3"));
        APR_BRIGADE_INSERT_TAIL(b, apr.heap("4"));
        APR_BRIGADE_CONCAT(a, b);
        assert!(APR_BRIGADE_EMPTY(b));
        assert_eq!(flatten(a), "234");

        APR_BRIGADE_CONCAT(a, b);
        assert_eq!(flatten(a), "234", "concat of an empty brigade is a no-op");

        APR_BRIGADE_INSERT_TAIL(b, apr.heap("0"));
        APR_BRIGADE_INSERT_TAIL(b, apr.heap("1"));
        APR_BRIGADE_PREPEND(a, b);
        assert!(APR_BRIGADE_EMPTY(b));
        assert_eq!(flatten(a), "01234");
        // The moved ring is intact in both directions.
        let mut back = String::new();
        let mut e = APR_BRIGADE_LAST(a);
        while e != APR_BRIGADE_SENTINEL(a) {
            back.push_str(&walk_one(e));
            e = APR_BUCKET_PREV(e);
        }
        assert_eq!(back, "43210");

        // b is usable again after being emptied.
        APR_BRIGADE_INSERT_TAIL(b, apr.heap("x"));
        assert_eq!(flatten(b), "x");
    }
}

unsafe fn walk_one(e: *mut apr_bucket) -> String {
    let mut data: *const c_char = ptr::null();
    let mut len: apr_size_t = 0;
    // SAFETY: `e` is a live data bucket (caller's contract).
    unsafe {
        assert_eq!(
            apr_bucket_read(e, &mut data, &mut len, APR_BLOCK_READ),
            APR_SUCCESS
        );
        String::from_utf8_lossy(core::slice::from_raw_parts(data.cast(), len)).into_owned()
    }
}

#[test]
fn brigade_write_buffers_small_writes() {
    let apr = Apr::new();
    let bb = apr.brigade();
    // SAFETY: no flush function: apr_brigade_write only buffers.
    unsafe {
        for part in ["ab", "cd", "ef"] {
            let rv = apr_brigade_write(bb, None, ptr::null_mut(), part.as_ptr().cast(), 2);
            assert_eq!(rv, APR_SUCCESS);
        }
        assert_eq!(names(&walk(bb)), ["HEAP"], "coalesced into one buffer");
        assert_eq!(flatten(bb), "abcdef");
    }
}

#[test]
fn pcalloc_zeroes_and_tables_work() {
    let apr = Apr::new();
    // SAFETY: pool memory and a pool table, used within the pool's life.
    unsafe {
        let mem = apr_pcalloc(apr.pool, 64).cast::<u8>();
        assert!(core::slice::from_raw_parts(mem, 64).iter().all(|&b| b == 0));

        let t = apr_table_make(apr.pool, 4);
        apr_table_set(t, c"Upgrade".as_ptr(), c"websocket".as_ptr());
        apr_table_add(t, c"Sec-WebSocket-Protocol".as_ptr(), c"a".as_ptr());
        let v = apr_table_get(t, c"upgrade".as_ptr());
        assert_eq!(CStr::from_ptr(v), c"websocket", "keys are case-insensitive");
        apr_table_unset(t, c"UPGRADE".as_ptr());
        assert!(apr_table_get(t, c"Upgrade".as_ptr()).is_null());
    }
}

#[test]
fn wakeable_pollset_wakes_up() {
    let apr = Apr::new();
    // SAFETY: a pollset in the test's pool, polled from this thread only.
    unsafe {
        let mut ps = ptr::null_mut();
        let rv = apr_pollset_create(&mut ps, 4, apr.pool, APR_POLLSET_WAKEABLE);
        assert_eq!(rv, APR_SUCCESS);
        assert_eq!(apr_pollset_wakeup(ps), APR_SUCCESS);
        let mut n = 0;
        let mut out: *const apr_pollfd_t = ptr::null();
        // A pending wakeup makes poll return EINTR at once instead of waiting
        // out the timeout.
        let rv = apr_pollset_poll(ps, 5_000_000, &mut n, &mut out);
        assert!(APR_STATUS_IS_EINTR(rv), "got {rv}");
        let rv = apr_pollset_poll(ps, 1_000, &mut n, &mut out);
        assert!(APR_STATUS_IS_TIMEUP(rv), "got {rv}");
        assert_eq!(apr_pollset_destroy(ps), APR_SUCCESS);
    }
}

#[test]
fn strerror_knows_apr_codes() {
    let mut buf = [0 as c_char; 128];
    // SAFETY: `buf` is writable for its length.
    let msg = unsafe { CStr::from_ptr(apr_strerror(APR_EOF, buf.as_mut_ptr(), buf.len())) };
    assert!(msg.to_string_lossy().contains("End of file"), "{msg:?}");
}
