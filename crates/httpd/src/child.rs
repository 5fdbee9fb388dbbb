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
