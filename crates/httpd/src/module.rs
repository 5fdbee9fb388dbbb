//! A module's record and hooks: [`Module<T>`], the exported record whose
//! per-directory configuration records are `T`s, and [`module!`](crate::module!),
//! which declares one with its command table and the `extern "C"` hook
//! functions Apache calls, each handing safe values ([`Request`],
//! [`ConfigHook`](crate::server::ConfigHook), [`Hooks`]) to a safe Rust
//! function.

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::c_int;

use crate::config::{CommandTable, Merge};
use crate::conn::Request;
use crate::pool::PoolRef;
use crate::sys;

/// The record Apache loads a module by (`LoadModule name_module ...`),
/// for a module whose per-directory records are `T`s. Apache writes into
/// it while loading the module (its index, the module list), so it lives
/// in writable memory, behind an `UnsafeCell`. Declared with
/// [`module!`](crate::module!).
#[repr(transparent)]
pub struct Module<T> {
    rec: UnsafeCell<sys::module>,
    _conf: PhantomData<fn() -> T>,
}

// SAFETY: Apache writes the record only while loading the module, on its
// main thread before any hook of the module runs or any other thread
// exists; after that it is only read.
unsafe impl<T> Sync for Module<T> {}

impl<T: Default + Merge + 'static> Module<T> {
    /// A record named `name` (`c"mod_websocket.c"`) with the
    /// per-directory hooks for `T`, `commands` and `register_hooks`.
    ///
    /// # Safety
    /// `register_hooks` is sound to call as Apache calls a module's
    /// `register_hooks`, and registers only hooks sound to call with what
    /// Apache passes them.
    #[doc(hidden)]
    pub const unsafe fn new<const N: usize>(
        name: &'static CStr,
        commands: &'static CommandTable<T, N>,
        register_hooks: unsafe extern "C" fn(*mut sys::apr_pool_t),
    ) -> Module<T> {
        Module {
            rec: UnsafeCell::new(sys::module {
                create_dir_config: Some(crate::config::create_dir_config::<T>),
                merge_dir_config: Some(crate::config::merge_dir_config::<T>),
                cmds: commands.as_ptr(),
                register_hooks: Some(register_hooks),
                ..sys::STANDARD20_MODULE_STUFF(name)
            }),
            _conf: PhantomData,
        }
    }
}

impl<T> Module<T> {
    pub fn as_ptr(&self) -> *mut sys::module {
        self.rec.get()
    }

    /// The module's index into Apache's per-module arrays (configuration
    /// vectors, per-module log levels); -1 until Apache loads it.
    pub fn index(&self) -> c_int {
        // SAFETY: Apache sets module_index while loading the module, before
        // any of its hooks or directives run; reading an int after that is
        // race-free (see the Sync impl).
        unsafe { (*self.rec.get()).module_index }
    }

    /// This module's configuration for a request's directory (shared by
    /// every thread serving that directory, hence `Sync`).
    pub fn dir_config<'r>(&self, r: Request<'r>) -> Option<&'r T>
    where
        T: Sync,
    {
        if self.index() < 0 {
            return None;
        }
        // SAFETY: a loaded module (it has an index) whose per-directory
        // records are Ts: Module::new gives it only the hooks for T.
        unsafe { r.dir_config::<T>(self.as_ptr()) }
    }
}

/// Where a hook runs among the other modules' (`APR_HOOK_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOrder {
    ReallyFirst,
    First,
    Middle,
    Last,
    ReallyLast,
}

impl HookOrder {
    pub const fn raw(self) -> c_int {
        match self {
            HookOrder::ReallyFirst => sys::APR_HOOK_REALLY_FIRST,
            HookOrder::First => sys::APR_HOOK_FIRST,
            HookOrder::Middle => sys::APR_HOOK_MIDDLE,
            HookOrder::Last => sys::APR_HOOK_LAST,
            HookOrder::ReallyLast => sys::APR_HOOK_REALLY_LAST,
        }
    }
}

/// A `pre_config` hook as Apache calls it.
pub type PreConfigFn =
    unsafe extern "C" fn(*mut sys::apr_pool_t, *mut sys::apr_pool_t, *mut sys::apr_pool_t) -> c_int;
/// A `check_config` or `post_config` hook as Apache calls it.
pub type ConfigFn = unsafe extern "C" fn(
    *mut sys::apr_pool_t,
    *mut sys::apr_pool_t,
    *mut sys::apr_pool_t,
    *mut sys::server_rec,
) -> c_int;
/// A handler hook as Apache calls it.
pub type HandlerFn = unsafe extern "C" fn(*mut sys::request_rec) -> c_int;

/// Proof that a module's `register_hooks` is running (on Apache's main
/// thread, while the module is loaded): what registers hooks and filters
/// takes one.
pub struct Hooks<'a> {
    pool: PoolRef<'a>,
}

impl<'a> Hooks<'a> {
    /// # Safety
    /// Called from a module's `register_hooks` with the pool Apache gave it,
    /// for that call.
    pub unsafe fn from_raw(pool: *mut sys::apr_pool_t) -> Hooks<'a> {
        Hooks {
            // SAFETY: register_hooks's live pool (contract).
            pool: unsafe { PoolRef::from_raw(pool) },
        }
    }

    /// The pool `register_hooks` was given.
    pub fn pool(&self) -> PoolRef<'a> {
        self.pool
    }

    /// # Safety
    /// `f` is sound to call with the arguments Apache passes pre_config hooks.
    pub unsafe fn pre_config(&self, f: PreConfigFn, order: HookOrder) {
        // SAFETY: registration from register_hooks (this value); f per the contract.
        unsafe { sys::ap_hook_pre_config(Some(f), std::ptr::null(), std::ptr::null(), order.raw()) }
    }

    /// # Safety
    /// `f` is sound to call with the arguments Apache passes check_config hooks.
    pub unsafe fn check_config(&self, f: ConfigFn, order: HookOrder) {
        // SAFETY: as for pre_config.
        unsafe { sys::ap_hook_check_config(Some(f), std::ptr::null(), std::ptr::null(), order.raw()) }
    }

    /// # Safety
    /// `f` is sound to call with the arguments Apache passes post_config hooks.
    pub unsafe fn post_config(&self, f: ConfigFn, order: HookOrder) {
        // SAFETY: as for pre_config.
        unsafe { sys::ap_hook_post_config(Some(f), std::ptr::null(), std::ptr::null(), order.raw()) }
    }

    /// # Safety
    /// `f` is sound to call with the requests Apache passes handler hooks.
    pub unsafe fn handler(&self, f: HandlerFn, order: HookOrder) {
        // SAFETY: as for pre_config.
        unsafe { sys::ap_hook_handler(Some(f), std::ptr::null(), std::ptr::null(), order.raw()) }
    }
}

/// Declares a module: its exported record (a [`Module<T>`], the
/// `LoadModule` name), its command table (the [`Command`](crate::config::Command)
/// slices listed, in order) and its hooks, each a safe function:
///
/// - `pre_config: fn(&ConfigHook<'_>) -> c_int` (no server yet),
/// - `handler: fn(Request<'_>) -> c_int` (a NULL request is declined),
/// - `check_config` and `post_config: fn(&ConfigHook<'_>) -> c_int`,
/// - `register: fn(&Hooks<'_>)`, run last in `register_hooks`, for the
///   module's other registrations (filters).
///
/// The hooks are optional but, when given, in this order, each with its
/// [`HookOrder`] after `=>`. They are registered in the order written.
///
/// ```ignore
/// httpd::module! {
///     pub static example_module: Module<MyConfig> = {
///         name: c"mod_example.c",
///         commands: [COMMANDS],
///         handler: handle => httpd::module::HookOrder::Middle,
///     };
/// }
/// ```
#[macro_export]
macro_rules! module {
    (
        $(#[$meta:meta])*
        $vis:vis static $record:ident: Module<$conf:ty> = {
            name: $name:expr,
            commands: [$($commands:expr),* $(,)?],
            $(pre_config: $pre:expr => $pre_order:expr,)?
            $(handler: $handler:expr => $handler_order:expr,)?
            $(check_config: $check:expr => $check_order:expr,)?
            $(post_config: $post:expr => $post_order:expr,)?
            $(register: $register:expr,)?
        };
    ) => {
        $(#[$meta])*
        #[no_mangle]
        $vis static $record: $crate::module::Module<$conf> = {
            // (The items here are named so as not to hide the caller's,
            // which the expressions given may name.)
            const __HTTPD_PARTS: &[&[$crate::config::Command<$conf>]] = &[$($commands),*];
            const __HTTPD_COUNT: usize = $crate::config::command_count(__HTTPD_PARTS) + 1;
            static __HTTPD_COMMANDS: $crate::config::CommandTable<$conf, __HTTPD_COUNT> =
                $crate::config::CommandTable::new(__HTTPD_PARTS);

            $(
                unsafe extern "C" fn __httpd_pre_config(
                    pconf: *mut $crate::sys::apr_pool_t,
                    plog: *mut $crate::sys::apr_pool_t,
                    ptemp: *mut $crate::sys::apr_pool_t,
                ) -> ::std::os::raw::c_int {
                    // SAFETY: Apache runs pre_config hooks on its main thread
                    // with live pools, before there is a server to pass.
                    let hook = unsafe {
                        $crate::server::ConfigHook::from_raw(pconf, plog, ptemp, ::std::ptr::null_mut())
                    };
                    let run: fn(&$crate::server::ConfigHook<'_>) -> ::std::os::raw::c_int = $pre;
                    run(&hook)
                }
            )?

            $(
                unsafe extern "C" fn __httpd_handler(r: *mut $crate::sys::request_rec) -> ::std::os::raw::c_int {
                    // SAFETY: Apache calls handler hooks with a live request
                    // handled on this thread for the call.
                    let Some(r) = (unsafe { $crate::conn::Request::from_raw(r) }) else {
                        return $crate::sys::DECLINED;
                    };
                    let run: fn($crate::conn::Request<'_>) -> ::std::os::raw::c_int = $handler;
                    run(r)
                }
            )?

            $(
                unsafe extern "C" fn __httpd_check_config(
                    pconf: *mut $crate::sys::apr_pool_t,
                    plog: *mut $crate::sys::apr_pool_t,
                    ptemp: *mut $crate::sys::apr_pool_t,
                    s: *mut $crate::sys::server_rec,
                ) -> ::std::os::raw::c_int {
                    // SAFETY: Apache runs check_config hooks on its main
                    // thread with live pools and the main server.
                    let hook = unsafe { $crate::server::ConfigHook::from_raw(pconf, plog, ptemp, s) };
                    let run: fn(&$crate::server::ConfigHook<'_>) -> ::std::os::raw::c_int = $check;
                    run(&hook)
                }
            )?

            $(
                unsafe extern "C" fn __httpd_post_config(
                    pconf: *mut $crate::sys::apr_pool_t,
                    plog: *mut $crate::sys::apr_pool_t,
                    ptemp: *mut $crate::sys::apr_pool_t,
                    s: *mut $crate::sys::server_rec,
                ) -> ::std::os::raw::c_int {
                    // SAFETY: Apache runs post_config hooks on its main
                    // thread with live pools and the main server.
                    let hook = unsafe { $crate::server::ConfigHook::from_raw(pconf, plog, ptemp, s) };
                    let run: fn(&$crate::server::ConfigHook<'_>) -> ::std::os::raw::c_int = $post;
                    run(&hook)
                }
            )?

            unsafe extern "C" fn __httpd_register_hooks(pool: *mut $crate::sys::apr_pool_t) {
                // SAFETY: Apache calls register_hooks on its main thread
                // while loading the module, with a live pool.
                let hooks = unsafe { $crate::module::Hooks::from_raw(pool) };
                $(
                    let order: $crate::module::HookOrder = $pre_order;
                    // SAFETY: __httpd_pre_config is a pre_config hook.
                    unsafe { hooks.pre_config(__httpd_pre_config, order) };
                )?
                $(
                    let order: $crate::module::HookOrder = $handler_order;
                    // SAFETY: __httpd_handler is a handler hook.
                    unsafe { hooks.handler(__httpd_handler, order) };
                )?
                $(
                    let order: $crate::module::HookOrder = $check_order;
                    // SAFETY: __httpd_check_config is a check_config hook.
                    unsafe { hooks.check_config(__httpd_check_config, order) };
                )?
                $(
                    let order: $crate::module::HookOrder = $post_order;
                    // SAFETY: __httpd_post_config is a post_config hook.
                    unsafe { hooks.post_config(__httpd_post_config, order) };
                )?
                $(
                    let register: fn(&$crate::module::Hooks<'_>) = $register;
                    register(&hooks);
                )?
            }

            const __HTTPD_NAME: &::std::ffi::CStr = $name;
            // SAFETY: __httpd_register_hooks is a register_hooks function
            // that registers only the hooks above, each made for its hook.
            unsafe { $crate::module::Module::new(__HTTPD_NAME, &__HTTPD_COMMANDS, __httpd_register_hooks) }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::HookOrder;
    use crate::config::{Cmd, Command, Merge, RSRC_CONF};

    #[derive(Default)]
    struct Conf(u32);

    impl Merge for Conf {
        fn merge(base: &Conf, add: &Conf) -> Conf {
            Conf(base.0 + add.0)
        }
    }

    fn set(_: &Cmd<'_>, conf: &mut Conf, _: bool) -> Result<(), String> {
        conf.0 += 1;
        Ok(())
    }

    const COMMANDS: &[Command<Conf>] = &[Command::flag(c"TestFlag", set, RSRC_CONF, c"help")];

    crate::module! {
        static httpd_test_module: Module<Conf> = {
            name: c"mod_httpd_test.c",
            commands: [COMMANDS, &[]],
            // (No hooks: the test binary has no httpd to register them
            // with; mod_websocket's build is the test of those.)
            register: |_| {},
        };
    }

    #[test]
    fn the_record_before_apache_loads_it() {
        let m = &httpd_test_module;
        assert_eq!(m.index(), -1);
        // SAFETY: only this test reads the record, which nothing writes.
        let rec = unsafe { &*m.as_ptr() };
        // SAFETY: a static C string.
        assert_eq!(unsafe { crate::cstr(rec.name) }, Some("mod_httpd_test.c"));
        assert!(rec.create_dir_config.is_some() && rec.merge_dir_config.is_some());
        assert!(rec.register_hooks.is_some());
        // SAFETY: the table has the one command and the end marker.
        let (first, end) = unsafe { (&*rec.cmds, &*rec.cmds.add(1)) };
        // SAFETY: a static C string.
        assert_eq!(unsafe { crate::cstr(first.name) }, Some("TestFlag"));
        assert!(end.name.is_null());
        assert_eq!(HookOrder::ReallyFirst.raw(), crate::sys::APR_HOOK_REALLY_FIRST);
    }
}
