//! Parking a connection: giving an idle connection back to the event MPM,
//! which watches its socket, and taking it again on a worker when the
//! socket is readable (or writable), as mod_http2 does with idle HTTP/2
//! connections (`CONN_STATE_ASYNC_WAITIO`, httpd 2.4.63 and later).
//!
//! The first park comes from a request handler: it returns with the
//! connection set to close after it, to be watched for input and to go to
//! the process_connection hooks when readable ([`park_after_handler`]).
//! The request stays alive as long as the work: a filter of ours keeps
//! its end-of-request bucket (whose destruction logs the request and frees
//! it), which is destroyed when the work is done, so the access log line
//! is written when the WebSocket ends, and the work may keep the request.
//! The event MPM then runs the `suspend_connection` hook and polls the
//! socket; when it is readable a worker runs `resume_connection` and then
//! the `process_connection` hooks, where ours resumes the [`Work`] and
//! parks it again with `CONN_STATE_ASYNC_WAITIO`, or lets it close.
//!
//! Between `suspend_connection` and `resume_connection` no Apache thread
//! touches the connection's filters, so another thread may use them then:
//! [`Handle::while_parked`] runs code on the parked work under the
//! connection's lock, which the resume hook takes too. That is how output
//! queued by other threads and timers reach a parked connection without a
//! thread of its own, and never two threads in its filters at once.
//!
//! A parked connection that stays silent for the server's `Timeout` is
//! closed by the MPM: [`Work::closing`] runs first (the
//! `pre_close_connection` hook). The work is dropped when the request's
//! pool goes (first of the request's cleanups), which is before anything
//! of the connection is freed.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::conn::{Conn, Request};
use crate::module::Hooks;
use crate::sys;

/// Whether this MPM can park connections: it is asynchronous (event) and
/// knows `CONN_STATE_ASYNC_WAITIO`.
pub fn supported() -> bool {
    let query = |what: c_int| {
        let mut answer: c_int = 0;
        // SAFETY: a plain query into the MPM.
        let rv = unsafe { sys::ap_mpm_query(what, &mut answer) };
        rv == sys::APR_SUCCESS as sys::apr_status_t && answer != 0
    };
    query(sys::AP_MPMQ_IS_ASYNC) && query(sys::AP_MPMQ_CAN_WAITIO)
}

/// What the MPM should wait for before it resumes a parked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Input (or the end of it).
    Read,
    /// Room to write: output is waiting for a client that does not read.
    Write,
    /// Nothing: close the connection.
    Close,
}

/// What runs a parked connection. It may hold the connection for
/// `'static` ([`adopt`] hands it one): it is dropped before the connection
/// goes away.
pub trait Work: 'static {
    /// On a worker, when the MPM saw the connection ready: do what can be
    /// done and say what to wait for next.
    fn resume(&mut self) -> Next;
    /// The MPM has the connection now (it was parked).
    fn parked(&mut self, handle: &Handle<Self>)
    where
        Self: Sized;
    /// The MPM closes the connection (its `Timeout` passed while it was
    /// parked, or the child stops): last words, on a worker, may block
    /// for a short while.
    fn closing(&mut self);
}

/// Who may use the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The thread in our handler or hooks.
    Worker,
    /// The MPM's pollset: other threads may, under the lock.
    Mpm,
    /// Gone.
    Closed,
}

struct Inner<W> {
    owner: Owner,
    work: Option<W>,
    /// The request's end-of-request bucket, held until the work is done.
    eor: *mut sys::apr_bucket,
}

struct Shared<W> {
    inner: Mutex<Inner<W>>,
    socket: *mut sys::apr_socket_t,
    /// The request's pool, for the cleanup that drops the work.
    request_pool: *mut sys::apr_pool_t,
}

// SAFETY: the work (which may hold the connection and other values tied
// to one thread at a time) is only reached under the mutex, and only by
// the thread that owns the connection at that time: a worker in our
// handler or hooks, or, while the MPM has parked it, the caller of
// while_parked. The socket pointer is only used for shutdown, which the
// kernel serializes, while the connection is live (the cleanup clears the
// owner before the socket is closed).
unsafe impl<W> Send for Shared<W> {}
// SAFETY: as above; all access goes through the mutex.
unsafe impl<W> Sync for Shared<W> {}

/// A parked-capable connection's work, shared with other threads.
pub struct Handle<W>(Arc<Shared<W>>);

impl<W> Clone for Handle<W> {
    fn clone(&self) -> Self {
        Handle(self.0.clone())
    }
}

impl<W> Handle<W> {
    fn lock(&self) -> MutexGuard<'_, Inner<W>> {
        self.0.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the work if the MPM has the connection parked now;
    /// `None` if a worker has it (it sees for itself what `f` would have
    /// done: a worker that leaves the connection parks it, and
    /// [`Work::parked`] runs), it is gone, or another thread holds its
    /// lock right now (a worker or a hook, which then has the same duty);
    /// so this never waits for a worker.
    pub fn while_parked<R>(&self, f: impl FnOnce(&mut W) -> R) -> Option<R> {
        let mut inner = match self.0.inner.try_lock() {
            Ok(inner) => inner,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        if inner.owner != Owner::Mpm {
            return None;
        }
        inner.work.as_mut().map(f)
    }

    /// Ends our side of a parked connection whose work is over: shuts its
    /// socket for writing, so that the client sees the end (after the
    /// close frame) and closes too, which the MPM sees as readable and
    /// hands to a worker, which lets it close. A client that does not
    /// needs [`Handle::wake_to_close`] later.
    pub fn end_output(&self) {
        self.shutdown(sys::APR_SHUTDOWN_WRITE);
    }

    /// Makes the MPM hand a parked connection to a worker at once, to
    /// close it: shuts its socket for reading, which the MPM sees as
    /// readable. Input that arrives after that is never read, and closing
    /// with unread input resets the connection, so this is for a client
    /// that did not answer [`Handle::end_output`] in a while.
    pub fn wake_to_close(&self) {
        self.shutdown(sys::APR_SHUTDOWN_READ);
    }

    fn shutdown(&self, how: sys::apr_shutdown_how_e) {
        let inner = self.lock();
        if inner.owner == Owner::Mpm {
            // SAFETY: the connection's live socket (owner is not Closed);
            // shutdown does not free it.
            unsafe { sys::apr_socket_shutdown(self.0.socket, how) };
        }
    }

    /// Whether it is the same connection as `other`.
    pub fn same(&self, other: &Handle<W>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The free memory of a parked connection's allocator. The event MPM gives
/// each connection an allocator of its own, which keeps what the
/// connection's pools freed (up to `MaxMemFree`, 2 MiB by default) for the
/// connection to reuse; thousands of idle WebSockets would each sit on
/// theirs. A park hands it back to malloc, where other connections reuse
/// it, and keeps nothing while parked; a resume restores the MPM's limit,
/// so a busy connection's large writes come from its own free lists again.
mod free_memory {
    use crate::sys;

    /// How many free nodes a park takes back at most. APR has no call that
    /// empties an allocator's free lists: taking a node gives the smallest
    /// free one, or a new one once none is left, and giving it back to an
    /// allocator that may keep nothing frees it.
    const NODES: usize = 16;

    /// # Safety
    /// `pool` is a live pool of the connection, on the thread that owns it.
    pub(super) unsafe fn give_back(pool: *mut sys::apr_pool_t) {
        // SAFETY: per the contract; the connection's allocator has no mutex
        // and only its owner uses it. The nodes are taken and given back
        // whole, untouched.
        unsafe {
            let allocator = sys::apr_pool_allocator_get(pool);
            if allocator.is_null() {
                return;
            }
            sys::apr_allocator_max_free_set(allocator, 1);
            let mut taken: *mut sys::apr_memnode_t = std::ptr::null_mut();
            for _ in 0..NODES {
                let node = sys::apr_allocator_alloc(allocator, 1);
                if node.is_null() {
                    break;
                }
                (*node).next = taken;
                taken = node;
            }
            if !taken.is_null() {
                sys::apr_allocator_free(allocator, taken);
            }
        }
    }

    /// # Safety
    /// As for [`give_back`].
    pub(super) unsafe fn keep(pool: *mut sys::apr_pool_t) {
        // SAFETY: per the contract; the MPM set the same limit when it made
        // the allocator.
        unsafe {
            let allocator = sys::apr_pool_allocator_get(pool);
            if !allocator.is_null() {
                sys::apr_allocator_max_free_set(allocator, sys::ap_max_mem_free as sys::apr_size_t);
            }
        }
    }
}

/// What the hooks find in the connection's configuration slot.
trait Slot {
    fn suspend(&self);
    fn resume(&self);
    fn process(&self) -> Option<Next>;
    fn closing(&self);
    fn cleanup(&self);
    /// Keeps the request's EOR bucket; false if it cannot.
    fn hold(&self, eor: *mut sys::apr_bucket, c: *mut sys::conn_rec) -> bool;
}

impl<W: Work> Slot for Handle<W> {
    fn suspend(&self) {
        let mut inner = self.lock();
        if inner.owner == Owner::Worker {
            // SAFETY: the live request's pool, on the connection's worker.
            unsafe { free_memory::give_back(self.0.request_pool) };
            inner.owner = Owner::Mpm;
            let handle = self.clone();
            if let Some(work) = inner.work.as_mut() {
                work.parked(&handle);
            }
        }
    }

    fn resume(&self) {
        let mut inner = self.lock();
        if inner.owner == Owner::Mpm {
            inner.owner = Owner::Worker;
            // SAFETY: the live request's pool, on the connection's worker.
            unsafe { free_memory::keep(self.0.request_pool) };
        }
    }

    fn process(&self) -> Option<Next> {
        let mut inner = self.lock();
        let next = if inner.owner == Owner::Worker {
            inner.work.as_mut().map_or(Next::Close, Work::resume)
        } else {
            Next::Close
        };
        if next == Next::Close {
            let eor = std::mem::replace(&mut inner.eor, std::ptr::null_mut());
            drop(inner);
            if !eor.is_null() {
                // SAFETY: the request's EOR bucket, which our filter took
                // out of its brigade; destroying it frees the request, whose
                // cleanup drops the work (the lock is released for it). On
                // the connection's worker, as the bucket allocator wants.
                unsafe { sys::apr_bucket_destroy(eor) };
            }
        }
        Some(next)
    }

    fn hold(&self, eor: *mut sys::apr_bucket, c: *mut sys::conn_rec) -> bool {
        let mut inner = self.lock();
        if inner.owner == Owner::Closed || !inner.eor.is_null() {
            return false;
        }
        inner.eor = eor;
        // The EOR bucket logs the request in a pre-cleanup of the request's
        // pool that it registered when it was made; pre-cleanups run last
        // registered first, so the work registered now ends (and leaves its
        // notes for the log) before that.
        // SAFETY: the live request's pool; the data is its live connection.
        unsafe { sys::apr_pool_pre_cleanup_register(self.0.request_pool, c.cast(), Some(request_gone)) };
        true
    }

    fn closing(&self) {
        let mut inner = self.lock();
        if inner.owner == Owner::Worker {
            if let Some(work) = inner.work.as_mut() {
                work.closing();
            }
        }
    }

    fn cleanup(&self) {
        let work = {
            let mut inner = self.lock();
            inner.owner = Owner::Closed;
            // The request is going: its bucket, if held, is done with.
            inner.eor = std::ptr::null_mut();
            inner.work.take()
        };
        // Dropped outside the lock: its drop may run plugin code.
        drop(work);
    }
}

/// The module whose configuration slot on a connection holds our [`Slot`]
/// (`usize::MAX` until a connection is adopted).
static MODULE_INDEX: AtomicUsize = AtomicUsize::new(usize::MAX);

fn module_index() -> Option<usize> {
    let index = MODULE_INDEX.load(Ordering::Acquire);
    (index != usize::MAX).then_some(index)
}

/// The slot's value: a thin pointer to the boxed trait object.
type SlotBox = Box<dyn Slot>;

/// Our slot on `c`, if the connection is one of ours.
///
/// # Safety
/// `c` is a live connection.
unsafe fn slot<'a>(c: *mut sys::conn_rec) -> Option<&'a SlotBox> {
    let index = module_index()?;
    // SAFETY: conn_config has one slot per loaded module; ours holds a
    // SlotBox pointer or NULL (adopt and the cleanup write it).
    unsafe {
        let slots = (*c).conn_config.cast::<*mut c_void>();
        (*slots.add(index)).cast::<SlotBox>().as_ref()
    }
}

/// Takes over the connection of request `r` for parking: `make` builds
/// the work, which may keep the connection and the request for `'static`:
/// the work is dropped first thing when the request's pool goes (by the
/// work's end, [`Next::Close`], or with the connection), and is used only
/// while whoever uses it owns the connection. The hooks must be registered
/// ([`register`]) by the module `module_index`. Runs the work once
/// ([`Work::resume`]) and says what it waits for.
pub fn adopt<W: Work>(
    r: Request<'_>,
    module_index: c_int,
    make: impl FnOnce(Conn<'static>, Request<'static>) -> W,
) -> (Handle<W>, Next) {
    let index = usize::try_from(module_index).expect("a loaded module's index");
    MODULE_INDEX.store(index, Ordering::Release);
    let rec = r.as_ptr();
    // SAFETY: see the function's docs: the work, holding the connection and
    // the request, is dropped in the request pool's pre-cleanup, before the
    // request's or the connection's memory is freed.
    let (conn, request) = unsafe {
        (
            Conn::from_raw((*rec).connection).expect("a request has a connection"),
            Request::from_raw(rec).expect("a live request"),
        )
    };
    let c = conn.as_ptr();
    let mut work = make(conn, request);
    let next = work.resume();
    // SAFETY: the live connection's socket (NULL for a secondary one).
    let socket = unsafe { sys::ap_get_conn_socket(c) };
    let handle = Handle(Arc::new(Shared {
        inner: Mutex::new(Inner {
            owner: Owner::Worker,
            work: Some(work),
            eor: std::ptr::null_mut(),
        }),
        socket,
        // SAFETY: the live request.
        request_pool: unsafe { (*rec).pool },
    }));
    let boxed: Box<SlotBox> = Box::new(Box::new(handle.clone()));
    let raw = Box::into_raw(boxed);
    // SAFETY: the live connection's slot vector; the pointer is freed by
    // the connection pool's cleanup, which clears the slot first. The
    // request pool's pre-cleanup runs before the connection pool's
    // cleanups (the request pool is its child) and finds the slot set.
    unsafe {
        let slots = (*c).conn_config.cast::<*mut c_void>();
        *slots.add(index) = raw.cast();
        sys::apr_pool_cleanup_register(
            (*c).pool,
            c.cast(),
            Some(cleanup),
            Some(sys::apr_pool_cleanup_null),
        );
        // Should the request end without our filter holding its EOR (an
        // aborted connection, say), the work still goes before the request.
        sys::apr_pool_pre_cleanup_register((*rec).pool, c.cast(), Some(request_gone));
    }
    if next == Next::Close {
        // Over already: ended here, while the request is alive for the
        // work's last words (its log notes), before the request is logged.
        Slot::cleanup(&handle);
    }
    (handle, next)
}

unsafe extern "C" fn request_gone(data: *mut c_void) -> sys::apr_status_t {
    let c = data.cast::<sys::conn_rec>();
    // SAFETY: the connection outlives its request.
    unsafe { with_slot(c, |s| s.cleanup()) };
    sys::APR_SUCCESS as sys::apr_status_t
}

unsafe extern "C" fn cleanup(data: *mut c_void) -> sys::apr_status_t {
    let c = data.cast::<sys::conn_rec>();
    let Some(index) = module_index() else {
        return sys::APR_SUCCESS as sys::apr_status_t;
    };
    // SAFETY: the connection is live until its pool's cleanups are done;
    // the slot holds the pointer adopt made, taken out exactly once here.
    let raw = unsafe {
        let slots = (*c).conn_config.cast::<*mut c_void>();
        std::mem::replace(&mut *slots.add(index), std::ptr::null_mut()).cast::<SlotBox>()
    };
    if !raw.is_null() {
        // SAFETY: made by Box::into_raw in adopt. The work went with the
        // request (a child of this pool, destroyed before its cleanups).
        let slot = unsafe { Box::from_raw(raw) };
        // A panic must not unwind into APR.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.cleanup()));
    }
    sys::APR_SUCCESS as sys::apr_status_t
}

/// Sets up the connection, from its request's handler, to be parked when
/// the handler is done: closed after this request (no keep-alive read),
/// watched for input, and handed to the process_connection hooks when
/// readable; the request's end is held for the work ([`adopt`]).
///
/// The MPM takes such a connection through its write completion, where
/// only input can be waited for: with output left that the MPM's own
/// flush there finishes, a connection that asked for writability would
/// be closed as done. Output the work still holds is written by whoever
/// has the connection next ([`Handle::while_parked`] or the next resume).
pub fn park_after_handler(conn: Conn<'_>) {
    let c = conn.as_ptr();
    // SAFETY: the live connection of the running request, on its thread;
    // the filter was registered at startup.
    unsafe {
        let frec = HOLD_FILTER.load(Ordering::Acquire);
        if !frec.is_null() {
            sys::ap_add_output_filter_handle(frec, std::ptr::null_mut(), std::ptr::null_mut(), c);
        }
        (*c).keepalive = sys::AP_CONN_CLOSE;
        (*c).set_clogging_input_filters(1);
        if let Some(cs) = (*c).cs.as_mut() {
            cs.sense = sys::CONN_SENSE_WANT_READ;
        }
    }
}

/// The output filter that keeps a parked request's EOR bucket, as the
/// last registration made it (Apache registers modules again, into a
/// fresh configuration pool, at each start and restart, while our
/// statics may live on).
static HOLD_FILTER: AtomicPtr<sys::ap_filter_rec_t> = AtomicPtr::new(std::ptr::null_mut());

/// Registers the hooks that park and resume adopted connections, and the
/// filter `filter_name` (one per module: a filter's name is its identity
/// in the whole server).
pub fn register(_hooks: &Hooks<'_>, filter_name: &'static std::ffi::CStr) {
    // SAFETY: registration time (the Hooks value proves it), with functions
    // of the hooks' signatures. Ours runs before mod_http2's (LAST) and the
    // core's (REALLY_LAST), and declines connections that are not ours.
    // The filter runs first among the connection's (before mod_ssl's).
    unsafe {
        let frec = sys::ap_register_output_filter(
            filter_name.as_ptr(),
            Some(hold_eor),
            None,
            sys::AP_FTYPE_CONNECTION,
        );
        HOLD_FILTER.store(frec, Ordering::Release);
        sys::ap_hook_process_connection(
            Some(process_connection),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE,
        );
        sys::ap_hook_suspend_connection(
            Some(suspend_connection),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE,
        );
        sys::ap_hook_resume_connection(
            Some(resume_connection),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE,
        );
        sys::ap_hook_pre_close_connection(
            Some(pre_close_connection),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE,
        );
    }
}

/// Runs `f` on our slot of `c`, if any, catching panics.
///
/// # Safety
/// `c` is a live connection.
unsafe fn with_slot<R>(c: *mut sys::conn_rec, f: impl FnOnce(&SlotBox) -> R) -> Option<R> {
    // SAFETY: per the contract.
    let slot = unsafe { slot(c) }?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(slot))).ok()
}

unsafe extern "C" fn process_connection(c: *mut sys::conn_rec) -> c_int {
    // SAFETY: Apache passes the live connection it is processing.
    let Some(next) = (unsafe { with_slot(c, |s| s.process()) }) else {
        return sys::DECLINED;
    };
    let next = next.unwrap_or(Next::Close);
    // SAFETY: the live connection, processed on this thread.
    unsafe {
        (*c).set_clogging_input_filters(0);
        let Some(cs) = (*c).cs.as_mut() else {
            return sys::OK as c_int;
        };
        match next {
            Next::Read | Next::Write => {
                cs.state = sys::CONN_STATE_ASYNC_WAITIO;
                cs.sense = if next == Next::Read {
                    sys::CONN_SENSE_WANT_READ
                } else {
                    sys::CONN_SENSE_WANT_WRITE
                };
            }
            Next::Close => cs.state = sys::CONN_STATE_LINGER,
        }
    }
    sys::OK as c_int
}

unsafe extern "C" fn suspend_connection(c: *mut sys::conn_rec, _r: *mut sys::request_rec) {
    // SAFETY: Apache passes a live connection.
    unsafe { with_slot(c, |s| s.suspend()) };
}

unsafe extern "C" fn resume_connection(c: *mut sys::conn_rec, _r: *mut sys::request_rec) {
    // SAFETY: Apache passes a live connection.
    unsafe { with_slot(c, |s| s.resume()) };
}

unsafe extern "C" fn pre_close_connection(c: *mut sys::conn_rec) -> c_int {
    // SAFETY: Apache passes the live connection it is closing.
    unsafe { with_slot(c, |s| s.closing()) };
    sys::OK as c_int
}

/// Takes the request's EOR bucket out of the brigade for the adopted work
/// to hold, then leaves the chain: nothing else passes through it.
unsafe extern "C" fn hold_eor(
    f: *mut sys::ap_filter_t,
    bb: *mut sys::apr_bucket_brigade,
) -> sys::apr_status_t {
    // SAFETY: Apache calls the filter with itself, on a live connection's
    // chain, and a live brigade of that connection, on its thread.
    unsafe {
        let c = (*f).c;
        let sentinel = sys::APR_BRIGADE_SENTINEL(bb);
        let mut b = sys::APR_BRIGADE_FIRST(bb);
        while b != sentinel {
            let next = sys::APR_BUCKET_NEXT(b);
            if std::ptr::eq((*b).type_, &sys::ap_bucket_type_eor) {
                sys::APR_BUCKET_REMOVE(b);
                let held = with_slot(c, |s| s.hold(b, c)).unwrap_or(false);
                if !held {
                    sys::APR_BRIGADE_INSERT_TAIL(bb, b);
                }
                let next_filter = (*f).next;
                sys::ap_remove_output_filter(f);
                return sys::ap_pass_brigade(next_filter, bb);
            }
            b = next;
        }
        sys::ap_pass_brigade((*f).next, bb)
    }
}
