//! Questions to the MPM.

use std::os::raw::c_int;

use crate::sys;

/// Is this child process shutting down (stop, restart or graceful)?
/// Safe from any thread.
pub fn is_stopping() -> bool {
    let mut state: c_int = 0;
    // SAFETY: a plain query into the MPM, safe from any thread.
    let rv = unsafe { sys::ap_mpm_query(sys::AP_MPMQ_MPM_STATE as c_int, &mut state) };
    rv == sys::APR_SUCCESS as sys::apr_status_t && state == sys::AP_MPMQ_STOPPING as c_int
}
