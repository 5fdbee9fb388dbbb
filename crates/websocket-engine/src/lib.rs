//! What the WebSocket modules (mod_websocket for RFC 6455, and
//! mod_websocket_draft76 for the legacy drafts) share: the per-directory
//! configuration and its directives, the server side of the plugin ABI, the
//! origin policy and the handshake's common tail, and the session engine.
//! Each module only adds its handshake and its [`session::WireProtocol`].

pub mod config;
pub mod connection;
pub mod serve;
pub mod session;

/// Logs for a request under a module's index, formatting only when the
/// level is enabled.
#[macro_export]
macro_rules! rlog {
    ($r:expr, $module_index:expr, $level:expr, $($arg:tt)*) => {{
        let r = $r;
        let mi: std::os::raw::c_int = $module_index;
        let level: std::os::raw::c_int = $level as std::os::raw::c_int;
        // SAFETY: `r` is the live request being handled.
        if unsafe { httpd::log::request_enabled(r, mi, level) } {
            let message = format!($($arg)*);
            // SAFETY: as above.
            unsafe { httpd::log::request(r, mi, level, 0, &message) }
        }
    }};
}

// The unit tests run outside httpd; the APR functions the tested code
// references (such as apr_pollset_wakeup) come from the system's libapr.
#[cfg(all(test, unix))]
#[link(name = "apr-1")]
extern "C" {}
