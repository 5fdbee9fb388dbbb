//! The end of a child process: work to do before it exits, while the
//! module is still loaded (threads a module started must be stopped before
//! Apache unloads the code they run).

use std::sync::OnceLock;

use crate::module::Hooks;
use crate::sys;

static AT_EXIT: OnceLock<fn()> = OnceLock::new();

/// Runs `f` when the child's pool is destroyed (the child is about to
/// exit, and Apache has not unloaded anything yet). One function per
/// process; from a module's hook registration.
pub fn at_exit(_hooks: &Hooks<'_>, f: fn()) {
    if AT_EXIT.set(f).is_ok() {
        // SAFETY: registration time (the Hooks value proves it), with a
        // function of the child_init hook's signature.
        unsafe {
            sys::ap_hook_child_init(
                Some(child_init),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE,
            )
        };
    }
}

/// Dropped with the child's pool.
struct RunAtExit;

impl Drop for RunAtExit {
    fn drop(&mut self) {
        if let Some(f) = AT_EXIT.get() {
            // A panic must not unwind into the pool's cleanup.
            let _ = std::panic::catch_unwind(*f);
        }
    }
}

unsafe extern "C" fn child_init(pchild: *mut sys::apr_pool_t, _s: *mut sys::server_rec) {
    // SAFETY: Apache passes the child's live pool; the value lives in it
    // until the child exits.
    unsafe { crate::pool::attach(pchild, RunAtExit) };
}

static ON_STOPPING: OnceLock<fn(bool)> = OnceLock::new();

/// Runs `f(graceful)` when the threaded MPMs (event, worker) tell their
/// threads that this child is stopping: at once, on the thread that reads
/// the MPM's signal, while connections are still being served. (Prefork
/// and the others call it only as the child exits; code that must notice
/// a stop sooner keeps asking [`crate::mpm::is_stopping`].) One function
/// per process; from a module's hook registration.
pub fn on_stopping(_hooks: &Hooks<'_>, f: fn(bool)) {
    if ON_STOPPING.set(f).is_ok() {
        // SAFETY: registration time (the Hooks value proves it), with a
        // function of the child_stopping hook's signature.
        unsafe {
            sys::ap_hook_child_stopping(
                Some(child_stopping),
                std::ptr::null(),
                std::ptr::null(),
                sys::APR_HOOK_MIDDLE,
            )
        };
    }
}

unsafe extern "C" fn child_stopping(_pchild: *mut sys::apr_pool_t, graceful: std::os::raw::c_int) {
    if let Some(f) = ON_STOPPING.get() {
        // A panic must not unwind into the MPM.
        let _ = std::panic::catch_unwind(|| f(graceful != 0));
    }
}
