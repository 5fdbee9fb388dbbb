//! What the WebSocket modules (mod_websocket for RFC 6455, and
//! mod_websocket_draft76 for the legacy drafts) share: the per-directory
//! configuration and its directives, the server side of the plugin ABI, the
//! origin policy and the handshake's common tail, and the session engine.
//! Each module only adds its handshake and names its wire format
//! ([`websocket_proto::connection::Family`]).

pub mod config;
pub mod connection;
pub mod driver;
pub mod log;
pub mod outbox;
pub mod serve;
pub mod session;
pub mod startup;

/// Logs for a request under a module's index, formatting only when the
/// level is enabled.
#[macro_export]
macro_rules! rlog {
    ($r:expr, $module_index:expr, $level:expr, $($arg:tt)*) => {{
        let r: httpd::conn::Request<'_> = $r;
        let mi: std::os::raw::c_int = $module_index;
        let level: std::os::raw::c_int = $level;
        if r.log_enabled(mi, level) {
            r.log(mi, level, httpd::here!(), &format!($($arg)*));
        }
    }};
}

// The unit tests run outside httpd; the APR functions the tested code
// references (such as apr_pollset_wakeup) come from the system's libapr
// and libaprutil.
#[cfg(all(test, unix))]
#[link(name = "apr-1")]
#[link(name = "aprutil-1")]
extern "C" {}

/// Declares a WebSocket module: its exported record (the `LoadModule` name),
/// its command table (the shared directives plus `extra` ones), a handler
/// hook that calls `$handler(request, headers)` for `websocket-handler`
/// requests (see [`serve::guarded_handler`]), and `module_index()` /
/// `dir_config(request)` for the crate's own use.
///
/// Apache writes `module_index` and `next` into the record, so it lives in
/// writable memory.
#[macro_export]
macro_rules! declare_module {
    ($record:ident, $source_name:expr, $handler:path, [$($extra:expr),* $(,)?]) => {
        #[no_mangle]
        pub static mut $record: httpd::sys::module = httpd::sys::module {
            create_dir_config: Some($crate::config::create_dir_config),
            merge_dir_config: Some($crate::config::merge_dir_config),
            cmds: &raw const COMMANDS as *const httpd::sys::command_rec,
            register_hooks: Some(register_hooks),
            ..httpd::sys::STANDARD20_MODULE_STUFF($source_name)
        };

        const EXTRA_COMMANDS: &[httpd::sys::command_rec] = &[$($extra),*];
        const COMMAND_COUNT: usize = $crate::config::COMMON_COMMANDS + EXTRA_COMMANDS.len() + 1;

        static mut COMMANDS: [httpd::sys::command_rec; COMMAND_COUNT] = {
            let common = $crate::config::common_commands();
            let mut all = [httpd::sys::AP_INIT_END(); COMMAND_COUNT];
            let mut i = 0;
            while i < common.len() {
                all[i] = common[i];
                i += 1;
            }
            let mut j = 0;
            while j < EXTRA_COMMANDS.len() {
                all[i + j] = EXTRA_COMMANDS[j];
                j += 1;
            }
            all
        };

        /// Our index into Apache's per-module arrays (configs, log levels).
        pub(crate) fn module_index() -> std::os::raw::c_int {
            // SAFETY: Apache sets module_index once while loading the module,
            // before any hook or directive of ours runs; reading an int is
            // race-free after.
            unsafe { $record.module_index }
        }

        /// Our configuration for a request's directory.
        pub(crate) fn dir_config<'r>(r: httpd::conn::Request<'r>) -> Option<&'r $crate::config::DirConfig> {
            // SAFETY: our per-directory records are DirConfigs (the record's
            // create/merge hooks above make them).
            unsafe { r.dir_config(&raw const $record) }
        }

        unsafe extern "C" fn handler_hook(r: *mut httpd::sys::request_rec) -> std::os::raw::c_int {
            // SAFETY: Apache calls the handler hook with a live request on this thread.
            unsafe { $crate::serve::guarded_handler(r, module_index(), $handler) }
        }

        unsafe extern "C" fn register_hooks(_pool: *mut httpd::sys::apr_pool_t) {
            // SAFETY: called by Apache during module registration on its main thread.
            unsafe {
                httpd::sys::ap_hook_pre_config(
                    Some(pre_config),
                    std::ptr::null(),
                    std::ptr::null(),
                    httpd::sys::APR_HOOK_REALLY_FIRST,
                );
                httpd::sys::ap_hook_handler(
                    Some(handler_hook),
                    std::ptr::null(),
                    std::ptr::null(),
                    httpd::sys::APR_HOOK_MIDDLE,
                );
                httpd::sys::ap_hook_check_config(
                    Some(check_config),
                    std::ptr::null(),
                    std::ptr::null(),
                    httpd::sys::APR_HOOK_MIDDLE,
                );
                httpd::sys::ap_hook_post_config(
                    Some(post_config),
                    std::ptr::null(),
                    std::ptr::null(),
                    httpd::sys::APR_HOOK_MIDDLE,
                );
                httpd::request::register_allow_get();
            }
        }

        unsafe extern "C" fn pre_config(
            _pconf: *mut httpd::sys::apr_pool_t,
            _plog: *mut httpd::sys::apr_pool_t,
            _ptemp: *mut httpd::sys::apr_pool_t,
        ) -> std::os::raw::c_int {
            // SAFETY: Apache runs this as the pre_config hook.
            unsafe { $crate::startup::pre_config(module_index(), $source_name) }
        }

        unsafe extern "C" fn check_config(
            _pconf: *mut httpd::sys::apr_pool_t,
            _plog: *mut httpd::sys::apr_pool_t,
            _ptemp: *mut httpd::sys::apr_pool_t,
            _s: *mut httpd::sys::server_rec,
        ) -> std::os::raw::c_int {
            // SAFETY: Apache runs this as the check_config hook.
            unsafe { $crate::startup::check_config(module_index(), $source_name) }
        }

        unsafe extern "C" fn post_config(
            _pconf: *mut httpd::sys::apr_pool_t,
            _plog: *mut httpd::sys::apr_pool_t,
            ptemp: *mut httpd::sys::apr_pool_t,
            s: *mut httpd::sys::server_rec,
        ) -> std::os::raw::c_int {
            // SAFETY: Apache runs this as the post_config hook with the main
            // server and a live temporary pool.
            unsafe { $crate::startup::post_config(s, ptemp, module_index(), $source_name) }
        }
    };
}
