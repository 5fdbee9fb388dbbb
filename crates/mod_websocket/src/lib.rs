//! mod_websocket: RFC 6455 WebSockets (protocol versions 7, 8 and 13) inside
//! Apache httpd 2.4, handed to plugins through the apache-websocket C ABI.
//!
//! `LoadModule websocket_module modules/mod_websocket.so`, then in a
//! `<Location>`: `SetHandler websocket-handler` and
//! `WebSocketHandler <library> <init function>`.

use std::os::raw::c_int;

use httpd::sys;
use websocket_engine::config;

mod handler;
mod rfc6455;

/// The module record Apache finds by its `LoadModule` name. Apache writes
/// `module_index` and `next` into it, so it lives in writable memory.
#[no_mangle]
pub static mut websocket_module: sys::module = sys::module {
    create_dir_config: Some(config::create_dir_config),
    merge_dir_config: Some(config::merge_dir_config),
    cmds: &raw const COMMANDS as *const sys::command_rec,
    register_hooks: Some(register_hooks),
    ..sys::STANDARD20_MODULE_STUFF(c"mod_websocket.c")
};

static mut COMMANDS: [sys::command_rec; config::COMMON_COMMANDS + 1] = {
    let common = config::common_commands();
    let mut all = [sys::AP_INIT_END(); config::COMMON_COMMANDS + 1];
    let mut i = 0;
    while i < config::COMMON_COMMANDS {
        all[i] = common[i];
        i += 1;
    }
    all
};

/// Our index into Apache's per-module arrays (configs, log levels).
pub(crate) fn module_index() -> c_int {
    // SAFETY: Apache sets module_index once while loading the module, before
    // any hook or directive of ours runs; reading an int is race-free after.
    unsafe { websocket_module.module_index }
}

pub(crate) fn module_ptr() -> *const sys::module {
    &raw const websocket_module
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
