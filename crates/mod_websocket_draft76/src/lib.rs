//! mod_websocket_draft76: the pre-RFC WebSocket protocol (draft-hixie-76,
//! and draft-75 behind `SupportDraft75 On`) for old clients, with the same
//! plugins and `<Location>` configuration as mod_websocket.
//!
//! Load it next to mod_websocket; each answers its own handshakes on the
//! same location. Removing its `LoadModule` line drops legacy support.

use std::ffi::c_void;
use std::os::raw::{c_char, c_int};

use httpd::sys;
use websocket_engine::config::{self, directive, HERE_OR_HTACCESS};

mod handler;
mod legacy;

/// The module record (`LoadModule websocket_draft76_module ...`).
#[no_mangle]
pub static mut websocket_draft76_module: sys::module = sys::module {
    create_dir_config: Some(config::create_dir_config),
    merge_dir_config: Some(config::merge_dir_config),
    cmds: &raw const COMMANDS as *const sys::command_rec,
    register_hooks: Some(register_hooks),
    ..sys::STANDARD20_MODULE_STUFF(c"mod_websocket_draft76.c")
};

/// The shared directives (Apache gives each of them to mod_websocket too,
/// when it is loaded) plus our own switch for draft-75.
static mut COMMANDS: [sys::command_rec; config::COMMON_COMMANDS + 2] = {
    let common = config::common_commands();
    let mut all = [sys::AP_INIT_END(); config::COMMON_COMMANDS + 2];
    let mut i = 0;
    while i < config::COMMON_COMMANDS {
        all[i] = common[i];
        i += 1;
    }
    all[config::COMMON_COMMANDS] = sys::AP_INIT_FLAG(
        c"SupportDraft75",
        set_support_draft75,
        std::ptr::null_mut(),
        HERE_OR_HTACCESS,
        c"On to also accept draft-75 handshakes (no keys); default Off",
    );
    all
};

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

pub(crate) fn module_index() -> c_int {
    // SAFETY: set once by Apache while loading the module, before any hook runs.
    unsafe { websocket_draft76_module.module_index }
}

pub(crate) fn module_ptr() -> *const sys::module {
    &raw const websocket_draft76_module
}

unsafe extern "C" fn register_hooks(_pool: *mut sys::apr_pool_t) {
    // SAFETY: called by Apache during module registration on its main thread.
    unsafe {
        sys::ap_hook_handler(
            Some(handler::handler),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE as c_int,
        );
    }
}
