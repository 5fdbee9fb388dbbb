//! A module's per-directory configuration and its directives, safe to
//! write: the record is any `T: Default + Merge` (made and merged by
//! [`create_dir_config`] and [`merge_dir_config`], owned by Apache's
//! pools), and each directive is a plain Rust function that gets a
//! [`Cmd`], the record and its arguments as `&str`/`bool`, and returns
//! `Err(message)` to refuse them.
//!
//! A [`Command`] names the directive and its function. Apache calls one
//! generic `extern "C"` trampoline per argument style, which finds the
//! function in the command's `cmd_data` (Apache hands it back as
//! `cmd->info`), so a command table is a `const` of safe values:
//!
//! ```ignore
//! fn set_size(_cmd: &Cmd<'_>, conf: &mut MyConfig, value: &str) -> Result<(), String> {
//!     conf.size = Some(value.parse().map_err(|_| format!("invalid size '{value}'"))?);
//!     Ok(())
//! }
//! const COMMANDS: &[Command<MyConfig>] =
//!     &[Command::take1(c"MySize", set_size, RSRC_CONF | ACCESS_CONF, c"a size in bytes")];
//! ```
//!
//! The error Apache prints is `"<directive name>: <message>"`, copied into
//! the command pool; an argument that is not UTF-8 is refused with
//! "argument is not valid UTF-8" before the function runs.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::ptr::NonNull;

use crate::pool::PoolRef;
use crate::sys;

pub use sys::{
    ACCESS_CONF, OR_ALL, OR_AUTHCFG, OR_FILEINFO, OR_INDEXES, OR_LIMIT, OR_NONE, OR_OPTIONS, RSRC_CONF,
};

/// How a per-directory record inherits: the settings of `add` (a nested
/// section) on top of those of `base` (what encloses it).
pub trait Merge {
    fn merge(base: &Self, add: &Self) -> Self;

    /// Called on a new record for a section (`/chat` for `<Location /chat>`,
    /// the directory of a `<Directory>`); records for a server have none.
    fn created_for(&mut self, _section: &str) {}
}

/// Apache's `create_dir_config` for records of type `T`: a default
/// record, owned by (and dropped with) `pool`.
///
/// # Safety
/// Called by Apache with a live pool.
pub unsafe extern "C" fn create_dir_config<T: Default + Merge + 'static>(
    pool: *mut sys::apr_pool_t,
    dir: *mut c_char,
) -> *mut c_void {
    let mut record = T::default();
    // SAFETY: Apache passes NULL or the section's NUL-terminated path.
    if let Some(section) = unsafe { crate::cstr(dir) } {
        record.created_for(section);
    }
    // SAFETY: Apache passes the live pool the record must live in.
    unsafe { crate::pool::attach(pool, record) }.cast()
}

/// Apache's `merge_dir_config` for records of type `T`.
///
/// # Safety
/// Called by Apache with a live pool and two records made by
/// [`create_dir_config::<T>`] or this function.
pub unsafe extern "C" fn merge_dir_config<T: Merge + 'static>(
    pool: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // SAFETY: both records are Ts made by these hooks (contract), living in
    // pools that outlive this merge.
    let merged = unsafe { T::merge(&*base.cast::<T>(), &*add.cast::<T>()) };
    // SAFETY: live pool from Apache.
    unsafe { crate::pool::attach(pool, merged) }.cast()
}

/// The directive being read, as its function sees it (`cmd_parms`).
pub struct Cmd<'a> {
    raw: NonNull<sys::cmd_parms>,
    _life: PhantomData<&'a sys::cmd_parms>,
}

impl<'a> Cmd<'a> {
    /// # Safety
    /// `raw` is the live `cmd_parms` Apache passed to a directive handler,
    /// for `'a` (the handler's call).
    unsafe fn from_raw(raw: *mut sys::cmd_parms) -> Option<Cmd<'a>> {
        NonNull::new(raw).map(|raw| Cmd {
            raw,
            _life: PhantomData,
        })
    }

    fn parms(&self) -> &'a sys::cmd_parms {
        // SAFETY: live for 'a (constructor contract).
        unsafe { &*self.raw.as_ptr() }
    }

    /// The directive's name as the module's table spells it ("?" if that
    /// is not UTF-8).
    pub fn directive(&self) -> &'a str {
        let cmd = self.parms().cmd;
        if cmd.is_null() {
            return "?";
        }
        // SAFETY: Apache points `cmd` at the command_rec being run; its name
        // is a static NUL-terminated string of the module's table.
        unsafe { crate::cstr((*cmd).name) }.unwrap_or("?")
    }

    /// The path of the section the directive is in (`/chat` in
    /// `<Location /chat>`), if any and if it is UTF-8.
    pub fn section_path(&self) -> Option<&'a str> {
        // SAFETY: NULL or a pool string of the configuration pass.
        unsafe { crate::cstr(self.parms().path) }
    }

    /// Whether the directive is inside a `<VirtualHost>`.
    pub fn in_virtual_host(&self) -> bool {
        let server = self.parms().server;
        // SAFETY: Apache points `server` at the live server_rec being configured.
        !server.is_null() && unsafe { (*server).is_virtual } != 0
    }

    /// The configuration pool: what is allocated in it lives as long as
    /// the configuration being read.
    pub fn pool(&self) -> PoolRef<'a> {
        // SAFETY: the command pool is live for the whole configuration pass.
        unsafe { PoolRef::from_raw(self.parms().pool) }
    }

    /// A path as Apache resolves it: relative to ServerRoot unless
    /// absolute. `None` if Apache cannot make it a path (or the result is
    /// not UTF-8).
    pub fn server_root_relative(&self, path: &str) -> Option<PathBuf> {
        // SAFETY: the command pool is live (see `pool`).
        unsafe { crate::server::resolve(self.parms().pool, path) }.map(PathBuf::from)
    }
}

/// A directive taking one argument (`TAKE1`), or called once for each of
/// its arguments (`ITERATE`).
pub type Take1<T> = fn(&Cmd<'_>, &mut T, &str) -> Result<(), String>;
/// A directive taking two arguments (`TAKE2`).
pub type Take2<T> = fn(&Cmd<'_>, &mut T, &str, &str) -> Result<(), String>;
/// A directive taking one or two arguments (`TAKE12`); the second is
/// `None` when absent.
pub type Take12<T> = fn(&Cmd<'_>, &mut T, &str, Option<&str>) -> Result<(), String>;
/// An `On|Off` directive (`FLAG`).
pub type Flag<T> = fn(&Cmd<'_>, &mut T, bool) -> Result<(), String>;

/// One entry of a module's command table, for records of type `T`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct Command<T> {
    rec: sys::command_rec,
    _conf: PhantomData<fn(&mut T)>,
}

impl<T: 'static> Command<T> {
    const fn new(rec: sys::command_rec) -> Command<T> {
        Command {
            rec,
            _conf: PhantomData,
        }
    }

    /// `AP_INIT_TAKE1`: exactly one argument.
    pub const fn take1(name: &'static CStr, set: Take1<T>, where_: c_int, help: &'static CStr) -> Command<T> {
        Command::new(sys::AP_INIT_TAKE1(
            name,
            take1::<T>,
            set as *mut c_void,
            where_,
            help,
        ))
    }

    /// `AP_INIT_ITERATE`: `set` runs once for each argument.
    pub const fn iterate(
        name: &'static CStr,
        set: Take1<T>,
        where_: c_int,
        help: &'static CStr,
    ) -> Command<T> {
        Command::new(sys::AP_INIT_ITERATE(
            name,
            take1::<T>,
            set as *mut c_void,
            where_,
            help,
        ))
    }

    /// `AP_INIT_TAKE2`: exactly two arguments.
    pub const fn take2(name: &'static CStr, set: Take2<T>, where_: c_int, help: &'static CStr) -> Command<T> {
        Command::new(sys::AP_INIT_TAKE2(
            name,
            take2::<T>,
            set as *mut c_void,
            where_,
            help,
        ))
    }

    /// `AP_INIT_TAKE12`: one argument, or two.
    pub const fn take12(
        name: &'static CStr,
        set: Take12<T>,
        where_: c_int,
        help: &'static CStr,
    ) -> Command<T> {
        Command::new(sys::AP_INIT_TAKE12(
            name,
            take12::<T>,
            set as *mut c_void,
            where_,
            help,
        ))
    }

    /// `AP_INIT_FLAG`: `On` or `Off`.
    pub const fn flag(name: &'static CStr, set: Flag<T>, where_: c_int, help: &'static CStr) -> Command<T> {
        Command::new(sys::AP_INIT_FLAG(
            name,
            flag::<T>,
            set as *mut c_void,
            where_,
            help,
        ))
    }
}

/// How many commands `parts` hold together.
pub const fn command_count<T>(parts: &[&[Command<T>]]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// A module's whole command table: the commands of `parts`, in order, and
/// the end marker; `N` is their number plus one.
#[repr(transparent)]
pub struct CommandTable<T, const N: usize> {
    recs: [sys::command_rec; N],
    _conf: PhantomData<fn(&mut T)>,
}

// SAFETY: the table is never written after it is built (Apache only reads
// command tables); its pointers are to static strings and functions.
unsafe impl<T, const N: usize> Sync for CommandTable<T, N> {}

impl<T: 'static, const N: usize> CommandTable<T, N> {
    /// # Panics
    /// (At compile time, in a `static`.) If `N` is not the number of
    /// commands plus one.
    pub const fn new(parts: &[&[Command<T>]]) -> CommandTable<T, N> {
        let mut recs = [sys::AP_INIT_END(); N];
        let mut n = 0;
        let mut i = 0;
        while i < parts.len() {
            let mut j = 0;
            while j < parts[i].len() {
                assert!(
                    n + 1 < N,
                    "CommandTable: N is not the number of commands plus one"
                );
                recs[n] = parts[i][j].rec;
                n += 1;
                j += 1;
            }
            i += 1;
        }
        assert!(
            n + 1 == N,
            "CommandTable: N is not the number of commands plus one"
        );
        CommandTable {
            recs,
            _conf: PhantomData,
        }
    }

    /// The table as the module record points at it.
    pub const fn as_ptr(&self) -> *const sys::command_rec {
        self.recs.as_ptr()
    }
}

/// Runs a directive: `body` gets the view of `cmd`, the record and the
/// function the command was built with (its `cmd_data`); an error becomes
/// Apache's "name: message" string in the command pool. A panic is
/// refused like an error rather than unwinding into Apache.
///
/// # Safety
/// `cmd` and `conf` are what Apache passed to the directive handler of a
/// [`Command<T>`] in the table of a module whose per-directory records are
/// `T`s (a [`crate::module::Module<T>`]).
unsafe fn run<T>(
    cmd: *mut sys::cmd_parms,
    conf: *mut c_void,
    body: impl FnOnce(&Cmd<'_>, &mut T, NonNull<c_void>) -> Result<(), String>,
) -> *const c_char {
    // SAFETY: the live cmd_parms of this call (contract).
    let Some(view) = (unsafe { Cmd::from_raw(cmd) }) else {
        return c"directive without its parameters".as_ptr();
    };
    let name = view.directive();
    let outcome = match (conf.cast::<T>(), NonNull::new(view.parms().info)) {
        (conf, Some(set)) if !conf.is_null() => {
            // SAFETY: our module's record for this section (contract), which
            // nothing else uses while the directive runs.
            let conf = unsafe { &mut *conf };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&view, conf, set)))
                .unwrap_or_else(|_| Err("internal error (panic) while reading this directive".to_owned()))
        }
        _ => Err("no configuration record for this directive".to_owned()),
    };
    match outcome {
        Ok(()) => std::ptr::null(),
        // SAFETY: the command pool is live for the whole configuration pass.
        Err(msg) => unsafe { crate::pool::strdup(view.parms().pool, &format!("{name}: {msg}")) },
    }
}

/// A directive argument as text.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn word<'a>(p: *const c_char) -> Result<&'a str, String> {
    // SAFETY: per the contract.
    unsafe { crate::cstr(p) }.ok_or_else(|| "argument is not valid UTF-8".to_owned())
}

unsafe extern "C" fn take1<T>(
    cmd: *mut sys::cmd_parms,
    conf: *mut c_void,
    w: *const c_char,
) -> *const c_char {
    // SAFETY: Apache's arguments to a command built by Command::take1 or
    // Command::iterate, whose cmd_data is a Take1<T>; the word outlives the call.
    unsafe {
        run::<T>(cmd, conf, |cmd, conf, set| {
            let set = std::mem::transmute::<*mut c_void, Take1<T>>(set.as_ptr());
            set(cmd, conf, word(w)?)
        })
    }
}

unsafe extern "C" fn take12<T>(
    cmd: *mut sys::cmd_parms,
    conf: *mut c_void,
    w1: *const c_char,
    w2: *const c_char,
) -> *const c_char {
    // SAFETY: Apache's arguments to a command built by Command::take12,
    // whose cmd_data is a Take12<T>; the second word is NULL when absent.
    unsafe {
        run::<T>(cmd, conf, |cmd, conf, set| {
            let set = std::mem::transmute::<*mut c_void, Take12<T>>(set.as_ptr());
            let second = if w2.is_null() { None } else { Some(word(w2)?) };
            set(cmd, conf, word(w1)?, second)
        })
    }
}

unsafe extern "C" fn take2<T>(
    cmd: *mut sys::cmd_parms,
    conf: *mut c_void,
    w1: *const c_char,
    w2: *const c_char,
) -> *const c_char {
    // SAFETY: as for take1, for Command::take2 and a Take2<T>.
    unsafe {
        run::<T>(cmd, conf, |cmd, conf, set| {
            let set = std::mem::transmute::<*mut c_void, Take2<T>>(set.as_ptr());
            set(cmd, conf, word(w1)?, word(w2)?)
        })
    }
}

unsafe extern "C" fn flag<T>(cmd: *mut sys::cmd_parms, conf: *mut c_void, on: c_int) -> *const c_char {
    // SAFETY: as for take1, for Command::flag and a Flag<T>.
    unsafe {
        run::<T>(cmd, conf, |cmd, conf, set| {
            let set = std::mem::transmute::<*mut c_void, Flag<T>>(set.as_ptr());
            set(cmd, conf, on != 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Conf {
        words: Vec<String>,
        on: Option<bool>,
    }

    fn add(cmd: &Cmd<'_>, conf: &mut Conf, w: &str) -> Result<(), String> {
        conf.words.push(format!("{}={w}", cmd.directive()));
        Ok(())
    }

    fn pair(_: &Cmd<'_>, conf: &mut Conf, a: &str, b: &str) -> Result<(), String> {
        conf.words.push(format!("{a}+{b}"));
        Ok(())
    }

    fn switch(_: &Cmd<'_>, conf: &mut Conf, on: bool) -> Result<(), String> {
        conf.on = Some(on);
        Ok(())
    }

    fn refuse(_: &Cmd<'_>, _: &mut Conf, w: &str) -> Result<(), String> {
        if w == "panic" {
            panic!("a bug");
        }
        Err(format!("invalid value '{w}'"))
    }

    const COMMANDS: &[Command<Conf>] = &[
        Command::take1(c"One", add, RSRC_CONF, c"one word"),
        Command::take2(c"Two", pair, RSRC_CONF, c"two words"),
    ];
    const MORE: &[Command<Conf>] = &[Command::flag(c"Switch", switch, OR_ALL, c"On|Off")];

    const REFUSING: &[Command<Conf>] = &[Command::iterate(c"Refuse", refuse, RSRC_CONF, c"never")];

    static TABLE: CommandTable<Conf, 5> = CommandTable::new(&[COMMANDS, MORE, REFUSING]);

    fn parms(rec: &sys::command_rec) -> sys::cmd_parms {
        // SAFETY: cmd_parms is plain C data (integers, pointers); zeroed is
        // a valid value, and the trampolines read only `info` and `cmd`.
        let mut p: sys::cmd_parms = unsafe { std::mem::zeroed() };
        p.info = rec.cmd_data;
        p.cmd = rec;
        p
    }

    #[test]
    fn the_table_is_in_order_and_ends() {
        // SAFETY: the table's names are static C strings (or NULL at the end).
        let names: Vec<Option<&str>> = TABLE
            .recs
            .iter()
            .map(|r| unsafe { crate::cstr(r.name) })
            .collect();
        assert_eq!(
            names,
            [Some("One"), Some("Two"), Some("Switch"), Some("Refuse"), None]
        );
        assert_eq!(command_count(&[COMMANDS, MORE, &[]]), 3);
        assert_eq!(TABLE.recs[0].args_how, sys::TAKE1);
        assert_eq!(TABLE.recs[1].args_how, sys::TAKE2);
        assert_eq!(TABLE.recs[2].args_how, sys::FLAG);
        assert_eq!(TABLE.recs[2].req_override, OR_ALL);
    }

    #[test]
    fn trampolines_call_the_commands_functions() {
        let mut conf = Conf::default();
        let conf_ptr = (&raw mut conf).cast::<c_void>();
        let mut p = parms(&TABLE.recs[0]);
        // SAFETY: the table's TAKE1 handler with its own cmd_parms and a Conf.
        let err = unsafe { (TABLE.recs[0].func.take1.unwrap())(&mut p, conf_ptr, c"a".as_ptr()) };
        assert!(err.is_null());
        let mut p = parms(&TABLE.recs[1]);
        // SAFETY: as above, TAKE2.
        let err =
            unsafe { (TABLE.recs[1].func.take2.unwrap())(&mut p, conf_ptr, c"b".as_ptr(), c"c".as_ptr()) };
        assert!(err.is_null());
        let mut p = parms(&TABLE.recs[2]);
        // SAFETY: as above, FLAG.
        let err = unsafe { (TABLE.recs[2].func.flag.unwrap())(&mut p, conf_ptr, 1) };
        assert!(err.is_null());
        assert_eq!(
            conf,
            Conf {
                words: vec!["One=a".into(), "b+c".into()],
                on: Some(true)
            }
        );
    }

    #[test]
    fn errors_are_named_and_in_the_command_pool() {
        let mut pool: *mut sys::apr_pool_t = std::ptr::null_mut();
        // SAFETY: APR's own setup, then a root pool of our own.
        unsafe {
            sys::apr_initialize();
            sys::apr_pool_create_ex(&mut pool, std::ptr::null_mut(), None, std::ptr::null_mut());
        }
        let mut conf = Conf::default();
        let conf_ptr = (&raw mut conf).cast::<c_void>();
        let rec = &TABLE.recs[3];
        let mut p = parms(rec);
        p.pool = pool;
        let mut said = |word: &CStr| {
            // SAFETY: the table's ITERATE handler with its own cmd_parms (with
            // a live pool) and a Conf; the error, if any, is a pool string.
            unsafe { crate::cstr((rec.func.take1.unwrap())(&mut p, conf_ptr, word.as_ptr())) }
                .map(str::to_owned)
        };
        assert_eq!(said(c"x").as_deref(), Some("Refuse: invalid value 'x'"));
        assert_eq!(
            said(c"\xff\xfe").as_deref(),
            Some("Refuse: argument is not valid UTF-8")
        );
        assert_eq!(
            said(c"panic").as_deref(),
            Some("Refuse: internal error (panic) while reading this directive")
        );
        // SAFETY: our pool, which nothing uses any more.
        unsafe { sys::apr_pool_destroy(pool) };
    }
}
