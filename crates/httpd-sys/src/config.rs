//! Module boilerplate and configuration tables: `STANDARD20_MODULE_STUFF`,
//! the `AP_INIT_*` command initialisers and the `ap_get_module_config`
//! macros.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr;

use crate::{
    ap_conf_vector_t, cmd_func, cmd_how, cmd_parms, command_rec, module, FLAG, ITERATE, ITERATE2,
    MODULE_MAGIC_COOKIE, MODULE_MAGIC_NUMBER_MAJOR, MODULE_MAGIC_NUMBER_MINOR, NO_ARGS, RAW_ARGS, TAKE1,
    TAKE12, TAKE123, TAKE13, TAKE2, TAKE23, TAKE3, TAKE_ARGV,
};

/// A module record with the leading fields `STANDARD20_MODULE_STUFF` fills
/// (magic numbers, `module_index` -1, the name, the cookie) and everything
/// else null/`None`/0, for struct-update syntax:
///
/// ```ignore
/// #[no_mangle]
/// pub static mut websocket_module: module = module {
///     register_hooks: Some(register_hooks),
///     ..STANDARD20_MODULE_STUFF(c"mod_websocket.c")
/// };
/// ```
///
/// The server writes `module_index` and `next` into the record, so it must
/// live in writable memory (`static mut` or an `UnsafeCell`).
pub const fn STANDARD20_MODULE_STUFF(name: &'static CStr) -> module {
    // SAFETY: every field of `module` is an integer, a raw pointer or an
    // `Option` of a function pointer, all of which are valid when zeroed;
    // this covers fields newer headers add (such as `flags`) as well.
    let mut m: module = unsafe { core::mem::zeroed() };
    m.version = MODULE_MAGIC_NUMBER_MAJOR;
    m.minor_version = MODULE_MAGIC_NUMBER_MINOR;
    m.module_index = -1;
    m.name = name.as_ptr();
    m.dynamic_load_handle = ptr::null_mut();
    m.next = ptr::null_mut();
    m.magic = MODULE_MAGIC_COOKIE;
    m.rewrite_args = None;
    m
}

/// `ap_get_module_config(v, m)` as the non-`AP_DEBUG` macro expands it:
/// the server's configuration vector is indexed by the module's index.
///
/// # Safety
/// `cv` must be a configuration vector of the running server (`r->per_dir_config`, `s->module_config`) and `m` a loaded module.
#[inline]
pub unsafe fn get_module_config(cv: *const ap_conf_vector_t, m: *const module) -> *mut c_void {
    // SAFETY: `cv` is a per-dir or per-server vector and `m` a loaded module
    // (caller's contract): the vector has a slot for every module_index.
    unsafe { *cv.cast::<*mut c_void>().add((*m).module_index as usize) }
}

/// `ap_set_module_config(v, m, val)` as the non-`AP_DEBUG` macro expands it.
///
/// # Safety
/// `cv` must be a configuration vector of the running server (`r->per_dir_config`, `s->module_config`) and `m` a loaded module.
#[inline]
pub unsafe fn set_module_config(cv: *mut ap_conf_vector_t, m: *const module, val: *mut c_void) {
    // SAFETY: as for get_module_config.
    unsafe { *cv.cast::<*mut c_void>().add((*m).module_index as usize) = val }
}

/// `const char *fn(cmd_parms *, void *mconfig)`.
pub type cmd_no_args_fn = unsafe extern "C" fn(*mut cmd_parms, *mut c_void) -> *const c_char;
/// `const char *fn(cmd_parms *, void *mconfig, const char *args)`.
pub type cmd_raw_args_fn = unsafe extern "C" fn(*mut cmd_parms, *mut c_void, *const c_char) -> *const c_char;
/// `const char *fn(cmd_parms *, void *mconfig, int argc, char *const argv[])`.
pub type cmd_take_argv_fn =
    unsafe extern "C" fn(*mut cmd_parms, *mut c_void, c_int, *const *mut c_char) -> *const c_char;
/// `const char *fn(cmd_parms *, void *mconfig, const char *w)`.
pub type cmd_take1_fn = unsafe extern "C" fn(*mut cmd_parms, *mut c_void, *const c_char) -> *const c_char;
/// `const char *fn(cmd_parms *, void *mconfig, const char *w, const char *w2)`.
pub type cmd_take2_fn =
    unsafe extern "C" fn(*mut cmd_parms, *mut c_void, *const c_char, *const c_char) -> *const c_char;
/// `const char *fn(cmd_parms *, void *mconfig, const char *w, *w2, *w3)`.
pub type cmd_take3_fn = unsafe extern "C" fn(
    *mut cmd_parms,
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
) -> *const c_char;
/// `const char *fn(cmd_parms *, void *mconfig, int on)`.
pub type cmd_flag_fn = unsafe extern "C" fn(*mut cmd_parms, *mut c_void, c_int) -> *const c_char;

const fn command(
    name: &'static CStr,
    func: cmd_func,
    cmd_data: *mut c_void,
    req_override: c_int,
    args_how: cmd_how,
    errmsg: &'static CStr,
) -> command_rec {
    command_rec {
        name: name.as_ptr(),
        func,
        cmd_data,
        req_override,
        args_how,
        errmsg: errmsg.as_ptr(),
    }
}

macro_rules! ap_init {
    ($(#[$doc:meta])* $name:ident, $field:ident, $ty:ty, $how:expr) => {
        $(#[$doc])*
        pub const fn $name(
            directive: &'static CStr,
            func: $ty,
            mconfig: *mut c_void,
            where_: c_int,
            help: &'static CStr,
        ) -> command_rec {
            command(directive, cmd_func { $field: Some(func) }, mconfig, where_, $how, help)
        }
    };
}

ap_init!(
    /// `AP_INIT_NO_ARGS`: a directive without arguments.
    AP_INIT_NO_ARGS, no_args, cmd_no_args_fn, NO_ARGS
);
ap_init!(
    /// `AP_INIT_RAW_ARGS`: the handler parses the rest of the line.
    AP_INIT_RAW_ARGS, raw_args, cmd_raw_args_fn, RAW_ARGS
);
ap_init!(
    /// `AP_INIT_TAKE_ARGV`: any number of arguments as argc/argv.
    AP_INIT_TAKE_ARGV, take_argv, cmd_take_argv_fn, TAKE_ARGV
);
ap_init!(
    /// `AP_INIT_TAKE1`: exactly one argument.
    AP_INIT_TAKE1, take1, cmd_take1_fn, TAKE1
);
ap_init!(
    /// `AP_INIT_ITERATE`: the handler is called once per argument.
    AP_INIT_ITERATE, take1, cmd_take1_fn, ITERATE
);
ap_init!(
    /// `AP_INIT_TAKE2`: exactly two arguments.
    AP_INIT_TAKE2, take2, cmd_take2_fn, TAKE2
);
ap_init!(
    /// `AP_INIT_TAKE12`: one or two arguments (the second may be null).
    AP_INIT_TAKE12, take2, cmd_take2_fn, TAKE12
);
ap_init!(
    /// `AP_INIT_ITERATE2`: the first argument, then once per further one.
    AP_INIT_ITERATE2, take2, cmd_take2_fn, ITERATE2
);
ap_init!(
    /// `AP_INIT_TAKE3`: exactly three arguments.
    AP_INIT_TAKE3, take3, cmd_take3_fn, TAKE3
);
ap_init!(
    /// `AP_INIT_TAKE13`: one or three arguments.
    AP_INIT_TAKE13, take3, cmd_take3_fn, TAKE13
);
ap_init!(
    /// `AP_INIT_TAKE23`: two or three arguments.
    AP_INIT_TAKE23, take3, cmd_take3_fn, TAKE23
);
ap_init!(
    /// `AP_INIT_TAKE123`: one to three arguments.
    AP_INIT_TAKE123, take3, cmd_take3_fn, TAKE123
);
ap_init!(
    /// `AP_INIT_FLAG`: `On` or `Off`, passed as 1 or 0.
    AP_INIT_FLAG, flag, cmd_flag_fn, FLAG
);

/// The `{NULL}` entry that ends a command table.
pub const fn AP_INIT_END() -> command_rec {
    command_rec {
        name: ptr::null(),
        func: cmd_func { no_args: None },
        cmd_data: ptr::null_mut(),
        req_override: 0,
        args_how: RAW_ARGS,
        errmsg: ptr::null(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OR_ALL, RSRC_CONF};

    #[test]
    fn module_stuff_fills_the_header() {
        let m = STANDARD20_MODULE_STUFF(c"mod_test.c");
        assert_eq!(m.version, 20120211);
        assert_eq!(m.minor_version, MODULE_MAGIC_NUMBER_MINOR);
        assert_eq!(m.module_index, -1);
        // SAFETY: the name points at a 'static C string literal.
        assert_eq!(unsafe { CStr::from_ptr(m.name) }, c"mod_test.c");
        assert!(m.dynamic_load_handle.is_null() && m.next.is_null());
        assert_eq!(m.magic, 0x4150_3234, "\"AP24\"");
        assert!(m.rewrite_args.is_none());
        assert!(m.create_dir_config.is_none() && m.register_hooks.is_none());
        assert!(m.cmds.is_null());
    }

    #[test]
    fn module_stuff_is_usable_in_a_static() {
        unsafe extern "C" fn hooks(_p: *mut crate::apr_pool_t) {}
        static M: SyncModule = SyncModule(module {
            register_hooks: Some(hooks),
            ..STANDARD20_MODULE_STUFF(c"mod_static.c")
        });
        struct SyncModule(module);
        // SAFETY: test-only; the record is never mutated.
        unsafe impl Sync for SyncModule {}
        assert_eq!(M.0.module_index, -1);
        assert!(M.0.register_hooks.is_some());
    }

    unsafe extern "C" fn take1(
        _cmd: *mut cmd_parms,
        _cfg: *mut c_void,
        _arg: *const c_char,
    ) -> *const c_char {
        c"called".as_ptr()
    }

    unsafe extern "C" fn take2(
        _cmd: *mut cmd_parms,
        _cfg: *mut c_void,
        _a: *const c_char,
        _b: *const c_char,
    ) -> *const c_char {
        ptr::null()
    }

    unsafe extern "C" fn flag(_cmd: *mut cmd_parms, _cfg: *mut c_void, _on: c_int) -> *const c_char {
        ptr::null()
    }

    #[test]
    fn command_table_entries() {
        const CMDS: [command_rec; 4] = [
            AP_INIT_TAKE1(c"MaxMessageSize", take1, ptr::null_mut(), OR_ALL, c"bytes"),
            AP_INIT_TAKE2(c"WebSocketHandler", take2, ptr::null_mut(), OR_ALL, c"lib init"),
            AP_INIT_FLAG(c"SupportDraft75", flag, 16 as *mut c_void, RSRC_CONF, c"On|Off"),
            AP_INIT_END(),
        ];
        assert_eq!(CMDS[0].args_how, TAKE1);
        assert_eq!(CMDS[1].args_how, TAKE2);
        assert_eq!(CMDS[2].args_how, FLAG);
        assert_eq!(CMDS[2].cmd_data as usize, 16);
        assert_eq!(CMDS[2].req_override, RSRC_CONF);
        // SAFETY: the union was built through `take1`.
        let f = unsafe { CMDS[0].func.take1 }.unwrap();
        // SAFETY: `take1` ignores its pointer arguments.
        let msg = unsafe { CStr::from_ptr(f(ptr::null_mut(), ptr::null_mut(), ptr::null())) };
        assert_eq!(msg, c"called");
        // SAFETY: the name points at a 'static C string literal.
        assert_eq!(unsafe { CStr::from_ptr(CMDS[1].name) }, c"WebSocketHandler");
        assert!(CMDS[3].name.is_null());
    }

    #[test]
    fn module_config_indexes_the_vector() {
        let mut slots: [*mut c_void; 4] = [ptr::null_mut(); 4];
        let mut m = STANDARD20_MODULE_STUFF(c"mod_x.c");
        m.module_index = 2;
        let cv = slots.as_mut_ptr().cast::<ap_conf_vector_t>();
        let mut value = 7u32;
        // SAFETY: the vector has a slot for index 2.
        unsafe {
            set_module_config(cv, &m, ptr::addr_of_mut!(value).cast());
            assert_eq!(get_module_config(cv, &m), ptr::addr_of_mut!(value).cast());
        }
        assert!(slots[1].is_null() && !slots[2].is_null());
    }
}
