//! A pollset on one connection's descriptor (its socket, or the pipe an
//! HTTP/2 stream signals through) that other threads can wake.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::conn::Conn;
use crate::pool::PoolRef;
use crate::sys;

/// What a poll saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// Input, end of input or an error is waiting on the descriptor.
    pub readable: bool,
    /// The descriptor takes output again.
    pub writable: bool,
}

/// The pollset's raw pointer, shared with [`Waker`]s under their lock.
struct Shared(Option<*mut sys::apr_pollset_t>);

// SAFETY: apr_pollset_wakeup is thread-safe, and the pointer is only used
// under the mutex, which the pollset's drop takes to clear it before the
// pollset is destroyed.
unsafe impl Send for Shared {}

/// Wakes the thread polling a [`Pollset`] from any thread (after the
/// pollset is gone, waking does nothing), or calls a function.
#[derive(Clone)]
pub struct Waker(Wake);

#[derive(Clone)]
enum Wake {
    Pollset(Arc<Mutex<Shared>>),
    Call(Arc<dyn Fn() + Send + Sync>),
}

impl Waker {
    /// A waker that calls `f` (from the waking thread).
    pub fn from_fn(f: impl Fn() + Send + Sync + 'static) -> Waker {
        Waker(Wake::Call(Arc::new(f)))
    }

    pub fn wake(&self) {
        match &self.0 {
            Wake::Pollset(shared) => {
                let shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(ps) = shared.0 {
                    // SAFETY: live while registered (see Shared); wakeup is thread-safe.
                    unsafe { sys::apr_pollset_wakeup(ps) };
                }
            }
            Wake::Call(f) => f(),
        }
    }
}

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

pub struct Pollset<'p> {
    raw: *mut sys::apr_pollset_t,
    pfd: sys::apr_pollfd_t,
    watching: Interest,
    waker: Waker,
    _pool: PoolRef<'p>,
}

const READ_EVENTS: sys::apr_int16_t = sys::APR_POLLIN | sys::APR_POLLHUP | sys::APR_POLLERR;

impl<'p> Pollset<'p> {
    /// A wakeable pollset on `conn`'s descriptor, allocated in `pool`.
    pub fn for_connection(conn: Conn<'p>, pool: PoolRef<'p>) -> Result<Pollset<'p>, sys::apr_status_t> {
        // SAFETY: an all-zero pollfd is a valid value to be filled in.
        let mut pfd: sys::apr_pollfd_t = unsafe { std::mem::zeroed() };
        let mut timeout: sys::apr_interval_time_t = 0;
        // SAFETY: live connection on this thread; the call fills the pollfd.
        let rv = unsafe { crate::version::get_pollfd_from_conn(conn.as_ptr(), &mut pfd, &mut timeout) };
        if rv != sys::APR_SUCCESS as sys::apr_status_t {
            return Err(rv);
        }
        pfd.reqevents = READ_EVENTS;
        pfd.p = pool.as_ptr();
        let mut raw: *mut sys::apr_pollset_t = std::ptr::null_mut();
        // SAFETY: a pollset in a live pool, room for the descriptor and the wakeup pipe.
        let rv = unsafe {
            sys::apr_pollset_create(
                &mut raw,
                2,
                pool.as_ptr(),
                sys::APR_POLLSET_WAKEABLE as sys::apr_uint32_t,
            )
        };
        if rv != sys::APR_SUCCESS as sys::apr_status_t {
            return Err(rv);
        }
        // SAFETY: live pollset; the pollfd is copied.
        let rv = unsafe { sys::apr_pollset_add(raw, &pfd) };
        if rv != sys::APR_SUCCESS as sys::apr_status_t {
            // SAFETY: created above, not shared yet.
            unsafe { sys::apr_pollset_destroy(raw) };
            return Err(rv);
        }
        Ok(Pollset {
            raw,
            pfd,
            watching: Interest {
                read: true,
                write: false,
            },
            waker: Waker(Wake::Pollset(Arc::new(Mutex::new(Shared(Some(raw)))))),
            _pool: pool,
        })
    }

    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Sleeps until the descriptor is ready for what `interest` names
    /// (errors and hang-ups always count), a [`Waker`] wakes it, or
    /// `timeout` passes.
    pub fn poll(&mut self, timeout: Duration, interest: Interest) -> Ready {
        if interest != self.watching && self.watch(interest) {
            self.watching = interest;
        }
        let mut n: sys::apr_int32_t = 0;
        let mut descs: *const sys::apr_pollfd_t = std::ptr::null();
        let micros =
            sys::apr_interval_time_t::try_from(timeout.as_micros()).unwrap_or(sys::apr_interval_time_t::MAX);
        // SAFETY: live pollset owned by this value. It holds the connection's
        // descriptor alone (APR never reports its wakeup pipe), so whatever
        // it returns is about that descriptor.
        let rv = unsafe { sys::apr_pollset_poll(self.raw, micros, &mut n, &mut descs) };
        let mut ready = Ready::default();
        if rv == sys::APR_SUCCESS as sys::apr_status_t && n > 0 && !descs.is_null() {
            // SAFETY: n > 0 descriptors were returned, valid until the next poll.
            let events = unsafe { (*descs).rtnevents };
            let failed = events & (sys::APR_POLLHUP | sys::APR_POLLERR) != 0;
            ready.readable = events & sys::APR_POLLIN != 0 || failed;
            ready.writable = events & sys::APR_POLLOUT != 0 || failed && self.watching.write;
        }
        ready
    }

    /// Re-registers the descriptor for `interest`.
    fn watch(&mut self, interest: Interest) -> bool {
        let mut events = sys::APR_POLLHUP | sys::APR_POLLERR;
        if interest.read {
            events |= sys::APR_POLLIN;
        }
        if interest.write {
            events |= sys::APR_POLLOUT;
        }
        // SAFETY: live pollset holding `pfd`; remove and add copy the pollfd.
        unsafe {
            sys::apr_pollset_remove(self.raw, &self.pfd);
            self.pfd.reqevents = events;
            sys::apr_pollset_add(self.raw, &self.pfd) == sys::APR_SUCCESS as sys::apr_status_t
        }
    }
}

impl Drop for Pollset<'_> {
    fn drop(&mut self) {
        if let Wake::Pollset(shared) = &self.waker.0 {
            shared.lock().unwrap_or_else(PoisonError::into_inner).0 = None;
        }
        // SAFETY: no waker can reach the pollset any more; it is ours.
        unsafe { sys::apr_pollset_destroy(self.raw) };
    }
}

/// Waits on one connection's descriptor without a pollset of its own (one
/// `poll(2)`, nothing allocated): for a worker that holds a connection a
/// moment longer before it gives it back to the MPM.
pub struct InputWait {
    pfd: sys::apr_pollfd_t,
}

impl InputWait {
    /// For `conn`'s descriptor; `None` if it has none.
    pub fn for_connection(conn: Conn<'_>) -> Option<InputWait> {
        // SAFETY: an all-zero pollfd is a valid value to be filled in.
        let mut pfd: sys::apr_pollfd_t = unsafe { std::mem::zeroed() };
        let mut timeout: sys::apr_interval_time_t = 0;
        // SAFETY: live connection on this thread; the call fills the pollfd.
        let rv = unsafe { crate::version::get_pollfd_from_conn(conn.as_ptr(), &mut pfd, &mut timeout) };
        if rv != sys::APR_SUCCESS as sys::apr_status_t {
            return None;
        }
        pfd.reqevents = READ_EVENTS;
        pfd.p = conn.pool().as_ptr();
        Some(InputWait { pfd })
    }

    /// Whether input (or its end, or an error) comes within `timeout`.
    /// Only on the thread that has the connection, while it is live.
    pub fn readable_within(&mut self, timeout: Duration) -> bool {
        let micros =
            sys::apr_interval_time_t::try_from(timeout.as_micros()).unwrap_or(sys::apr_interval_time_t::MAX);
        let mut n: sys::apr_int32_t = 0;
        self.pfd.rtnevents = 0;
        // SAFETY: one pollfd naming the live connection's descriptor (the
        // caller has the connection); apr_poll only fills in rtnevents.
        let rv = unsafe { sys::apr_poll(&mut self.pfd, 1, &mut n, micros) };
        rv == sys::APR_SUCCESS as sys::apr_status_t && n > 0 && self.pfd.rtnevents & READ_EVENTS != 0
    }
}
