//! The brigade and bucket macros of apr_buckets.h / apr_ring.h.
//!
//! A brigade is a doubly linked ring of buckets whose head lives inside the
//! brigade itself: the head is addressed as if it were a bucket (the
//! "sentinel"), which is why these helpers only ever touch a bucket's `link`
//! through raw pointers and never form a reference to a whole bucket that
//! might be the sentinel.
//!
//! All functions are `unsafe`: pointers must be valid and the brigade must
//! only be touched by the thread that owns it (bucket allocators are not
//! thread-safe).

use core::mem::offset_of;
use core::ptr;

use crate::{
    apr_bucket, apr_bucket_brigade, apr_bucket_type_eos, apr_bucket_type_flush, apr_bucket_type_heap,
    apr_bucket_type_immortal, apr_bucket_type_pool, apr_bucket_type_t, apr_bucket_type_transient, apr_pool_t,
    apr_read_type_e, apr_size_t, apr_status_t,
};
use core::ffi::c_char;

/// The `link` member of a bucket, and equally the brigade's ring head (both
/// are `{ next, prev }` pairs with the same layout).
#[repr(C)]
struct Link {
    next: *mut apr_bucket,
    prev: *mut apr_bucket,
}

const _: () = {
    assert!(core::mem::size_of::<Link>() == 2 * core::mem::size_of::<*mut apr_bucket>());
};

/// The link pair of `e`, which may be a brigade's sentinel: both a bucket
/// and a sentinel have a `Link` at this offset, and it is the only memory of
/// a sentinel that may be addressed.
#[inline]
fn link(e: *mut apr_bucket) -> *mut Link {
    e.cast::<u8>()
        .wrapping_add(offset_of!(apr_bucket, link))
        .cast::<Link>()
}

/// `APR_BRIGADE_SENTINEL(b)`: the fake bucket that marks the end of the ring.
/// Compare against it; never read anything but its link.
///
/// # Safety
/// `b` must point to a live brigade.
#[inline]
pub unsafe fn APR_BRIGADE_SENTINEL(b: *mut apr_bucket_brigade) -> *mut apr_bucket {
    // SAFETY: the caller guarantees `b` is a live brigade; we compute the
    // address APR uses (head address minus the link offset) without reading.
    unsafe {
        ptr::addr_of_mut!((*b).list)
            .cast::<u8>()
            .wrapping_sub(offset_of!(apr_bucket, link))
            .cast::<apr_bucket>()
    }
}

/// `APR_BRIGADE_FIRST(b)`.
///
/// # Safety
/// `b` must point to a live brigade.
#[inline]
pub unsafe fn APR_BRIGADE_FIRST(b: *mut apr_bucket_brigade) -> *mut apr_bucket {
    // SAFETY: `b` is a live brigade (caller's contract).
    unsafe { (*b).list.next }
}

/// `APR_BRIGADE_LAST(b)`.
///
/// # Safety
/// `b` must point to a live brigade.
#[inline]
pub unsafe fn APR_BRIGADE_LAST(b: *mut apr_bucket_brigade) -> *mut apr_bucket {
    // SAFETY: `b` is a live brigade (caller's contract).
    unsafe { (*b).list.prev }
}

/// `APR_BRIGADE_EMPTY(b)`.
///
/// # Safety
/// `b` must point to a live brigade.
#[inline]
pub unsafe fn APR_BRIGADE_EMPTY(b: *mut apr_bucket_brigade) -> bool {
    // SAFETY: `b` is a live brigade (caller's contract).
    unsafe { APR_BRIGADE_FIRST(b) == APR_BRIGADE_SENTINEL(b) }
}

/// `APR_BUCKET_NEXT(e)`.
///
/// # Safety
/// `e` must be a bucket in a ring, or a brigade's sentinel.
#[inline]
pub unsafe fn APR_BUCKET_NEXT(e: *mut apr_bucket) -> *mut apr_bucket {
    // SAFETY: `e` is a bucket or sentinel in a ring (caller's contract).
    unsafe { (*link(e)).next }
}

/// `APR_BUCKET_PREV(e)`.
///
/// # Safety
/// `e` must be a bucket in a ring, or a brigade's sentinel.
#[inline]
pub unsafe fn APR_BUCKET_PREV(e: *mut apr_bucket) -> *mut apr_bucket {
    // SAFETY: `e` is a bucket or sentinel in a ring (caller's contract).
    unsafe { (*link(e)).prev }
}

/// `APR_RING_SPLICE_BEFORE(lep, ep1, epN, link)`.
#[inline]
unsafe fn splice_before(lep: *mut apr_bucket, ep1: *mut apr_bucket, epn: *mut apr_bucket) {
    // SAFETY: all three are ring members or sentinels (callers' contract).
    unsafe {
        (*link(epn)).next = lep;
        (*link(ep1)).prev = (*link(lep)).prev;
        (*link((*link(lep)).prev)).next = ep1;
        (*link(lep)).prev = epn;
    }
}

/// `APR_RING_SPLICE_AFTER(lep, ep1, epN, link)`.
#[inline]
unsafe fn splice_after(lep: *mut apr_bucket, ep1: *mut apr_bucket, epn: *mut apr_bucket) {
    // SAFETY: all three are ring members or sentinels (callers' contract).
    unsafe {
        (*link(ep1)).prev = lep;
        (*link(epn)).next = (*link(lep)).next;
        (*link((*link(lep)).next)).prev = epn;
        (*link(lep)).next = ep1;
    }
}

/// `APR_BUCKET_INSERT_BEFORE(a, b)`: puts `b` just before `a`.
///
/// # Safety
/// `a` must be in a ring (or be a sentinel) and `b` a live bucket in no ring; both owned by the calling thread.
#[inline]
pub unsafe fn APR_BUCKET_INSERT_BEFORE(a: *mut apr_bucket, b: *mut apr_bucket) {
    // SAFETY: forwarded caller contract.
    unsafe { splice_before(a, b, b) }
}

/// `APR_BUCKET_INSERT_AFTER(a, b)`: puts `b` just after `a`.
///
/// # Safety
/// `a` must be in a ring (or be a sentinel) and `b` a live bucket in no ring; both owned by the calling thread.
#[inline]
pub unsafe fn APR_BUCKET_INSERT_AFTER(a: *mut apr_bucket, b: *mut apr_bucket) {
    // SAFETY: forwarded caller contract.
    unsafe { splice_after(a, b, b) }
}

/// `APR_BRIGADE_INSERT_TAIL(b, e)`.
///
/// # Safety
/// `b` must be a live brigade and `e` a live bucket in no ring, both owned by the calling thread.
#[inline]
pub unsafe fn APR_BRIGADE_INSERT_TAIL(b: *mut apr_bucket_brigade, e: *mut apr_bucket) {
    // Inserting before the sentinel is appending; it keeps one code path for
    // every splice, as APR_RING_SPLICE_TAIL does in effect.
    // SAFETY: forwarded caller contract.
    unsafe { splice_before(APR_BRIGADE_SENTINEL(b), e, e) }
}

/// `APR_BRIGADE_INSERT_HEAD(b, e)`.
///
/// # Safety
/// `b` must be a live brigade and `e` a live bucket in no ring, both owned by the calling thread.
#[inline]
pub unsafe fn APR_BRIGADE_INSERT_HEAD(b: *mut apr_bucket_brigade, e: *mut apr_bucket) {
    // SAFETY: forwarded caller contract.
    unsafe { splice_after(APR_BRIGADE_SENTINEL(b), e, e) }
}

/// `APR_BUCKET_REMOVE(e)`: unlinks `e` from its brigade without freeing it.
///
/// # Safety
/// `e` must be a bucket (not a sentinel) in a ring owned by the calling thread.
#[inline]
pub unsafe fn APR_BUCKET_REMOVE(e: *mut apr_bucket) {
    // SAFETY: `e` is a bucket in a ring (caller's contract).
    unsafe {
        let prev = (*link(e)).prev;
        let next = (*link(e)).next;
        (*link(prev)).next = next;
        (*link(next)).prev = prev;
    }
}

/// `APR_RING_INIT` on a brigade's head: makes it empty.
#[inline]
unsafe fn ring_init(b: *mut apr_bucket_brigade) {
    // SAFETY: `b` is a live brigade (callers' contract).
    unsafe {
        let s = APR_BRIGADE_SENTINEL(b);
        (*b).list.next = s;
        (*b).list.prev = s;
    }
}

/// `APR_BRIGADE_CONCAT(a, b)`: moves all of `b` to the end of `a`.
///
/// # Safety
/// `a` and `b` must be distinct live brigades owned by the calling thread.
#[inline]
pub unsafe fn APR_BRIGADE_CONCAT(a: *mut apr_bucket_brigade, b: *mut apr_bucket_brigade) {
    // SAFETY: both are live brigades from the same thread (caller's contract).
    unsafe {
        if !APR_BRIGADE_EMPTY(b) {
            splice_before(APR_BRIGADE_SENTINEL(a), APR_BRIGADE_FIRST(b), APR_BRIGADE_LAST(b));
            ring_init(b);
        }
    }
}

/// `APR_BRIGADE_PREPEND(a, b)`: moves all of `b` to the front of `a`.
///
/// # Safety
/// `a` and `b` must be distinct live brigades owned by the calling thread.
#[inline]
pub unsafe fn APR_BRIGADE_PREPEND(a: *mut apr_bucket_brigade, b: *mut apr_bucket_brigade) {
    // SAFETY: both are live brigades from the same thread (caller's contract).
    unsafe {
        if !APR_BRIGADE_EMPTY(b) {
            splice_after(APR_BRIGADE_SENTINEL(a), APR_BRIGADE_FIRST(b), APR_BRIGADE_LAST(b));
            ring_init(b);
        }
    }
}

/// `apr_bucket_read(e, str, len, block)`: the data of `e`, which may morph
/// `e` (file, pipe and socket buckets split off what they read).
///
/// # Safety
/// `e` must be a live bucket (not a sentinel) and the out-pointers writable; the data stays valid until the bucket is destroyed or changed.
#[inline]
pub unsafe fn apr_bucket_read(
    e: *mut apr_bucket,
    str_: *mut *const c_char,
    len: *mut apr_size_t,
    block: apr_read_type_e,
) -> apr_status_t {
    // SAFETY: `e` is a live data or metadata bucket whose type table APR
    // fills completely; `read` is never null.
    unsafe { ((*(*e).type_).read.unwrap_unchecked())(e, str_, len, block) }
}

/// `apr_bucket_setaside(e, p)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel) and `p` a live pool.
#[inline]
pub unsafe fn apr_bucket_setaside(e: *mut apr_bucket, p: *mut apr_pool_t) -> apr_status_t {
    // SAFETY: as for apr_bucket_read; `setaside` is never null.
    unsafe { ((*(*e).type_).setaside.unwrap_unchecked())(e, p) }
}

/// `apr_bucket_split(e, point)`: `e` keeps the first `point` bytes, a new
/// bucket after it holds the rest.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel) with at least `point` bytes.
#[inline]
pub unsafe fn apr_bucket_split(e: *mut apr_bucket, point: apr_size_t) -> apr_status_t {
    // SAFETY: as for apr_bucket_read; `split` is never null.
    unsafe { ((*(*e).type_).split.unwrap_unchecked())(e, point) }
}

/// `apr_bucket_copy(e, c)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel) and `c` writable.
#[inline]
pub unsafe fn apr_bucket_copy(e: *mut apr_bucket, c: *mut *mut apr_bucket) -> apr_status_t {
    // SAFETY: as for apr_bucket_read; `copy` is never null.
    unsafe { ((*(*e).type_).copy.unwrap_unchecked())(e, c) }
}

/// `apr_bucket_destroy(e)`: frees a bucket that is not in a brigade.
///
/// # Safety
/// `e` must be a live bucket in no ring; it is freed.
#[inline]
pub unsafe fn apr_bucket_destroy(e: *mut apr_bucket) {
    // SAFETY: `e` is a live bucket no longer linked anywhere; `destroy` and
    // `free` are always set by the bucket constructors.
    unsafe {
        ((*(*e).type_).destroy.unwrap_unchecked())((*e).data);
        ((*e).free.unwrap_unchecked())(e.cast());
    }
}

/// `apr_bucket_delete(e)`: unlinks and frees `e`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel) in a ring; it is freed.
#[inline]
pub unsafe fn apr_bucket_delete(e: *mut apr_bucket) {
    // SAFETY: forwarded caller contract.
    unsafe {
        APR_BUCKET_REMOVE(e);
        apr_bucket_destroy(e);
    }
}

#[inline]
unsafe fn is_type(e: *mut apr_bucket, t: *const apr_bucket_type_t) -> bool {
    // SAFETY: `e` is a live bucket (callers' contract).
    unsafe { ptr::eq((*e).type_, t) }
}

/// `APR_BUCKET_IS_METADATA(e)`: FLUSH, EOS, EOC, error buckets: no data.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel).
#[inline]
pub unsafe fn APR_BUCKET_IS_METADATA(e: *mut apr_bucket) -> bool {
    // SAFETY: `e` is a live bucket (caller's contract).
    unsafe { (*(*e).type_).is_metadata != 0 }
}

/// `APR_BUCKET_IS_FLUSH(e)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel).
#[inline]
pub unsafe fn APR_BUCKET_IS_FLUSH(e: *mut apr_bucket) -> bool {
    // SAFETY: the type table is a static of libaprutil; only its address is
    // taken.
    unsafe { is_type(e, ptr::addr_of!(apr_bucket_type_flush)) }
}

/// `APR_BUCKET_IS_EOS(e)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel).
#[inline]
pub unsafe fn APR_BUCKET_IS_EOS(e: *mut apr_bucket) -> bool {
    // SAFETY: as for APR_BUCKET_IS_FLUSH.
    unsafe { is_type(e, ptr::addr_of!(apr_bucket_type_eos)) }
}

/// `APR_BUCKET_IS_HEAP(e)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel).
#[inline]
pub unsafe fn APR_BUCKET_IS_HEAP(e: *mut apr_bucket) -> bool {
    // SAFETY: as for APR_BUCKET_IS_FLUSH.
    unsafe { is_type(e, ptr::addr_of!(apr_bucket_type_heap)) }
}

/// `APR_BUCKET_IS_TRANSIENT(e)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel).
#[inline]
pub unsafe fn APR_BUCKET_IS_TRANSIENT(e: *mut apr_bucket) -> bool {
    // SAFETY: as for APR_BUCKET_IS_FLUSH.
    unsafe { is_type(e, ptr::addr_of!(apr_bucket_type_transient)) }
}

/// `APR_BUCKET_IS_IMMORTAL(e)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel).
#[inline]
pub unsafe fn APR_BUCKET_IS_IMMORTAL(e: *mut apr_bucket) -> bool {
    // SAFETY: as for APR_BUCKET_IS_FLUSH.
    unsafe { is_type(e, ptr::addr_of!(apr_bucket_type_immortal)) }
}

/// `APR_BUCKET_IS_POOL(e)`.
///
/// # Safety
/// `e` must be a live bucket (not a sentinel).
#[inline]
pub unsafe fn APR_BUCKET_IS_POOL(e: *mut apr_bucket) -> bool {
    // SAFETY: as for APR_BUCKET_IS_FLUSH.
    unsafe { is_type(e, ptr::addr_of!(apr_bucket_type_pool)) }
}
