//! Questions to the MPM.

use std::os::raw::c_int;

use crate::sys;

fn query(what: c_int) -> Option<c_int> {
    let mut answer: c_int = 0;
    // SAFETY: a plain query into the MPM, safe from any thread.
    let rv = unsafe { sys::ap_mpm_query(what, &mut answer) };
    (rv == sys::APR_SUCCESS as sys::apr_status_t).then_some(answer)
}

/// Is this child process shutting down (stop, restart or graceful)?
/// Safe from any thread.
pub fn is_stopping() -> bool {
    query(sys::AP_MPMQ_MPM_STATE) == Some(sys::AP_MPMQ_STOPPING as c_int)
}

/// Who is stopping when this child is, as the scoreboard tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// Nobody: the child runs.
    No,
    /// This child alone: a threaded MPM retires it (too many idle threads,
    /// `MaxConnectionsPerChild`) and lets it finish its connections while
    /// other children of its generation go on serving.
    ThisChild,
    /// The child stops and no other child of its generation still serves:
    /// the server stops, or every child retires at once (a replacement may
    /// still be on its way: ask again).
    NoSibling,
    /// The server stops or restarts: a newer generation runs, or the MPM
    /// (prefork) stops a child that serves a connection for no other reason.
    Server,
}

/// Why this child stops, if it does. Safe from any thread; reads the
/// scoreboard (a few hundred bytes) only when the child stops.
pub fn stopping() -> Stopping {
    if !is_stopping() {
        return Stopping::No;
    }
    // Prefork marks no child quiescing (its idle children are retired only
    // when they serve nothing), so there a stopping child is the server's.
    let threaded = query(sys::AP_MPMQ_IS_THREADED).is_some_and(|t| t != sys::AP_MPMQ_NOT_SUPPORTED as c_int);
    let (Some(generation), Some(limit)) = (
        query(sys::AP_MPMQ_GENERATION),
        query(sys::AP_MPMQ_HARD_LIMIT_DAEMONS),
    ) else {
        return Stopping::NoSibling;
    };
    let me = std::process::id() as sys::pid_t;
    // SAFETY: the scoreboard is shared memory the parent maps before it
    // forks and keeps for the life of the children; `global` and `parent`
    // (ServerLimit entries) point into it. Other processes write it as we
    // read, so each field is read once, volatile; a stale value only makes
    // the answer late, and callers ask again.
    unsafe {
        let board = std::ptr::read_volatile(std::ptr::addr_of!(sys::ap_scoreboard_image));
        if board.is_null() || (*board).global.is_null() || (*board).parent.is_null() {
            return Stopping::NoSibling;
        }
        let running = std::ptr::read_volatile(std::ptr::addr_of!((*(*board).global).running_generation));
        if running != generation || !threaded {
            return Stopping::Server;
        }
        for slot in 0..usize::try_from(limit).unwrap_or(0) {
            let p = (*board).parent.add(slot);
            let pid = std::ptr::read_volatile(std::ptr::addr_of!((*p).pid));
            if pid == 0 || pid == me {
                continue;
            }
            let gen = std::ptr::read_volatile(std::ptr::addr_of!((*p).generation));
            let quiescing = std::ptr::read_volatile(std::ptr::addr_of!((*p).quiescing));
            if gen == generation && quiescing == 0 {
                return Stopping::ThisChild;
            }
        }
    }
    Stopping::NoSibling
}
