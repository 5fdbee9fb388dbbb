//! What the WebSocket modules (mod_websocket for RFC 6455, and
//! mod_websocket_draft76 for the legacy drafts) share: the per-directory
//! configuration and its directives, the server side of the plugin ABI, the
//! origin policy and the handshake's common tail, and the session engine.
//! Each module only adds its handshake and names its wire format
//! ([`websocket_proto::connection::Family`]).

pub mod channels;
pub mod config;
pub mod connection;
pub mod driver;
pub mod log;
pub mod metrics;
pub mod outbox;
pub mod parked;
pub mod publish;
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

/// Declares a WebSocket module: its exported record (the `LoadModule` name,
/// an [`httpd::module::Module`] of [`config::DirConfig`]s), its command
/// table (the shared [`config::COMMANDS`] plus `extra` ones), a handler
/// hook that calls `$handler(request, headers)` for `websocket-handler`
/// requests (see [`serve::guarded_handler`]), the configuration hooks of
/// [`startup`], and `module_index()` / `dir_config(request)` for the
/// crate's own use.
#[macro_export]
macro_rules! declare_module {
    ($record:ident, $source_name:expr, $handler:path, [$($extra:expr),* $(,)?]) => {
        httpd::module! {
            pub static $record: Module<$crate::config::DirConfig> = {
                name: $source_name,
                commands: [$crate::config::COMMANDS, &[$($extra),*]],
                pre_config: |hook| $crate::startup::pre_config(hook, module_index(), $source_name)
                    => httpd::module::HookOrder::ReallyFirst,
                handler: |r| $crate::serve::guarded_handler(r, module_index(), $source_name, dir_config(r), $handler)
                    => httpd::module::HookOrder::Middle,
                check_config: |hook| $crate::startup::check_config(hook, module_index(), $source_name)
                    => httpd::module::HookOrder::Middle,
                post_config: |hook| $crate::startup::post_config(hook, module_index(), $source_name)
                    => httpd::module::HookOrder::Middle,
                register: |hooks| $crate::serve::register_hooks(hooks, $source_name),
            };
        }

        /// Our index into Apache's per-module arrays (configs, log levels).
        pub(crate) fn module_index() -> std::os::raw::c_int {
            $record.index()
        }

        /// Our configuration for a request's directory.
        pub(crate) fn dir_config<'r>(r: httpd::conn::Request<'r>) -> Option<&'r $crate::config::DirConfig> {
            $record.dir_config(r)
        }
    };
}
