//! Parking a connection: giving an idle connection back to the event MPM,
//! which watches its socket, and taking it again on a worker when the
//! socket is readable (or writable), as mod_http2 does with idle HTTP/2
//! connections (`CONN_STATE_ASYNC_WAITIO`, httpd 2.4.63 and later).
//!
//! The first park comes from a request handler: it returns with the
//! connection set to close after it, to be watched for input and to go to
//! the process_connection hooks when readable ([`park_after_handler`]).
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
//! `pre_close_connection` hook). The work is dropped in a cleanup of the
//! connection's pool, before anything of the connection is freed.

use std::os::raw::{c_int, c_void};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::conn::{Conn, ConnRequest};
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
}

struct Shared<W> {
    inner: Mutex<Inner<W>>,
    socket: *mut sys::apr_socket_t,
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

    /// Makes the MPM hand a parked connection to a worker soon, to close
    /// it: shuts its socket for reading, which the MPM sees as readable.
    pub fn wake_to_close(&self) {
        let inner = self.lock();
        if inner.owner == Owner::Mpm {
            // SAFETY: the connection's live socket (owner is not Closed);
            // shutdown does not free it.
            unsafe { sys::apr_socket_shutdown(self.0.socket, sys::APR_SHUTDOWN_READ) };
        }
    }

    /// Whether it is the same connection as `other`.
    pub fn same(&self, other: &Handle<W>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What the hooks find in the connection's configuration slot.
trait Slot {
    fn suspend(&self);
    fn resume(&self);
    fn process(&self) -> Option<Next>;
    fn closing(&self);
    fn cleanup(&self);
}

impl<W: Work> Slot for Handle<W> {
    fn suspend(&self) {
        let mut inner = self.lock();
        if inner.owner == Owner::Worker {
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
        }
    }

    fn process(&self) -> Option<Next> {
        let mut inner = self.lock();
        if inner.owner != Owner::Worker {
            return Some(Next::Close);
        }
        inner.work.as_mut().map(Work::resume)
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
            inner.work.take()
        };
        // Dropped outside the lock: its drop may run plugin code.
        drop(work);
    }
}

/// The module whose configuration slot on a connection holds our [`Slot`].
static MODULE_INDEX: OnceLock<usize> = OnceLock::new();

/// The slot's value: a thin pointer to the boxed trait object.
type SlotBox = Box<dyn Slot>;

/// Our slot on `c`, if the connection is one of ours.
///
/// # Safety
/// `c` is a live connection.
unsafe fn slot<'a>(c: *mut sys::conn_rec) -> Option<&'a SlotBox> {
    let index = *MODULE_INDEX.get()?;
    // SAFETY: conn_config has one slot per loaded module; ours holds a
    // SlotBox pointer or NULL (adopt and the cleanup write it).
    unsafe {
        let slots = (*c).conn_config.cast::<*mut c_void>();
        (*slots.add(index)).cast::<SlotBox>().as_ref()
    }
}

/// Takes over `conn` for parking: `make` builds the work, which may keep
/// the connection for `'static`, since the work is dropped in a cleanup of
/// the connection's pool (registered now, so it runs before the cleanups
/// of anything the connection had when it was accepted), and is used only
/// while whoever uses it owns the connection. The hooks must be
/// registered ([`register`]) by the module `module_index`.
/// `copy`, the connection's copy of the handshake request, is handed on
/// for as long, for the same reason. Runs the work once ([`Work::resume`])
/// and says what it waits for.
pub fn adopt<W: Work>(
    conn: Conn<'_>,
    copy: ConnRequest<'_>,
    module_index: c_int,
    make: impl FnOnce(Conn<'static>, ConnRequest<'static>) -> W,
) -> (Handle<W>, Next) {
    let index = usize::try_from(module_index).expect("a loaded module's index");
    let index = *MODULE_INDEX.get_or_init(|| index);
    let c = conn.as_ptr();
    // SAFETY: see the function's docs: the work, holding the connection,
    // is dropped in the connection pool's cleanup below, before the
    // connection's memory is freed, and only its owner uses it.
    let forever = unsafe { Conn::from_raw(c) }.expect("a live connection");
    let mut work = make(forever, copy.extend());
    let next = work.resume();
    // SAFETY: the live connection's socket (NULL for a secondary one).
    let socket = unsafe { sys::ap_get_conn_socket(c) };
    let handle = Handle(Arc::new(Shared {
        inner: Mutex::new(Inner {
            owner: Owner::Worker,
            work: Some(work),
        }),
        socket,
    }));
    let boxed: Box<SlotBox> = Box::new(Box::new(handle.clone()));
    let raw = Box::into_raw(boxed);
    // SAFETY: the live connection's slot vector; the pointer is freed by
    // the cleanup, which clears the slot first.
    unsafe {
        let slots = (*c).conn_config.cast::<*mut c_void>();
        *slots.add(index) = raw.cast();
        sys::apr_pool_cleanup_register(
            (*c).pool,
            c.cast(),
            Some(cleanup),
            Some(sys::apr_pool_cleanup_null),
        );
    }
    (handle, next)
}

unsafe extern "C" fn cleanup(data: *mut c_void) -> sys::apr_status_t {
    let c = data.cast::<sys::conn_rec>();
    let Some(&index) = MODULE_INDEX.get() else {
        return sys::APR_SUCCESS as sys::apr_status_t;
    };
    // SAFETY: the connection is live until its pool's cleanups are done;
    // the slot holds the pointer adopt made, taken out exactly once here.
    let raw = unsafe {
        let slots = (*c).conn_config.cast::<*mut c_void>();
        std::mem::replace(&mut *slots.add(index), std::ptr::null_mut()).cast::<SlotBox>()
    };
    if !raw.is_null() {
        // SAFETY: made by Box::into_raw in adopt.
        let slot = unsafe { Box::from_raw(raw) };
        // A panic must not unwind into APR.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.cleanup()));
    }
    sys::APR_SUCCESS as sys::apr_status_t
}

/// Sets up the connection, from its request's handler, to be parked when
/// the handler is done: closed after this request (no keep-alive read),
/// watched for input, and handed to the process_connection hooks when
/// readable.
pub fn park_after_handler(conn: Conn<'_>, next: Next) {
    let c = conn.as_ptr();
    // SAFETY: the live connection of the running request, on its thread.
    unsafe {
        (*c).keepalive = sys::AP_CONN_CLOSE;
        (*c).set_clogging_input_filters(1);
        if let Some(cs) = (*c).cs.as_mut() {
            cs.sense = if next == Next::Write {
                sys::CONN_SENSE_WANT_WRITE
            } else {
                sys::CONN_SENSE_WANT_READ
            };
        }
    }
}

/// Registers the hooks that park and resume adopted connections.
pub fn register(_hooks: &Hooks<'_>) {
    // SAFETY: registration time (the Hooks value proves it), with functions
    // of the hooks' signatures. Ours runs before mod_http2's (LAST) and the
    // core's (REALLY_LAST), and declines connections that are not ours.
    unsafe {
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
