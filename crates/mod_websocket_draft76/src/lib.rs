//! mod_websocket_draft76: the pre-RFC WebSocket protocol (draft-hixie-76,
//! and draft-75 behind `SupportDraft75 On`) for old clients, with the same
//! plugins and `<Location>` configuration as mod_websocket.
//!
//! Load it next to mod_websocket; each answers its own handshakes on the
//! same location. Removing its `LoadModule` line drops legacy support.

use std::ffi::c_void;
use std::os::raw::{c_char, c_int};

use httpd::sys;
use websocket_engine::config::{directive, HERE_OR_HTACCESS};

mod handler;

// The shared directives (Apache gives each of them to mod_websocket too,
// when it is loaded) plus our own switch for draft-75.
websocket_engine::declare_module!(
    websocket_draft76_module,
    c"mod_websocket_draft76.c",
    handler::handle,
    [sys::AP_INIT_FLAG(
        c"SupportDraft75",
        set_support_draft75,
        std::ptr::null_mut(),
        HERE_OR_HTACCESS,
        c"On to also accept draft-75 handshakes (no keys); default Off",
    )]
);

unsafe extern "C" fn set_support_draft75(
    cmd: *mut sys::cmd_parms,
    conf: *mut c_void,
    on: c_int,
) -> *const c_char {
    // SAFETY: forwarded Apache arguments for a module whose records are DirConfigs.
    unsafe {
        directive(cmd, conf, |conf, _| {
            conf.support_draft75 = Some(on != 0);
            Ok(())
        })
    }
}
