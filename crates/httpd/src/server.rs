//! The server as a whole, for the configuration hooks: the configuration
//! tree Apache just read, which phase the server is in, which modules are
//! loaded.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::path::PathBuf;
use std::ptr::NonNull;

use crate::log::Source;
use crate::pool::PoolRef;
use crate::sys;

/// One directive of the configuration as written, with where it was
/// written. Sections (`<Location /x>`) have their name with the `<`
/// (`"<Location"`), their argument without the `>`, and their contents as
/// children. `Include` and `<IfModule>`/`<IfDefine>` are already resolved
/// by Apache: what they left out is not in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: String,
    pub file: String,
    pub line: u32,
    pub children: Vec<Directive>,
}

impl Directive {
    /// The arguments as Apache splits them (see [`split_args`]).
    pub fn words(&self) -> Vec<String> {
        split_args(&self.args)
    }

    /// Whether this is the section `<kind ...>` (case-insensitive, without `<`).
    pub fn is_section(&self, kind: &str) -> bool {
        self.name
            .strip_prefix('<')
            .is_some_and(|n| n.eq_ignore_ascii_case(kind))
    }
}

// Declared here rather than taken from the bindings: on Windows a variable
// exported by libhttpd.dll is reached through its import entry, which Rust
// uses only for statics of a `kind = "dylib"` link block.
#[cfg_attr(windows, link(name = "libhttpd", kind = "dylib"))]
extern "C" {
    /// The configuration tree Apache read last (util_cfgtree.h).
    static ap_conftree: *mut sys::ap_directive_t;
}

/// A copy of the configuration tree Apache has just read (`ap_conftree`).
///
/// # Safety
/// Only from a configuration hook (check_config, post_config) on the main
/// thread, while the tree of the configuration being checked is alive.
pub unsafe fn config_tree() -> Vec<Directive> {
    // SAFETY: per the contract, ap_conftree is the live tree (or NULL).
    unsafe { copy_siblings(ap_conftree) }
}

/// # Safety
/// `node` is NULL or a live configuration tree node.
unsafe fn copy_siblings(mut node: *const sys::ap_directive_t) -> Vec<Directive> {
    let mut out = Vec::new();
    // SAFETY: walking a live tree; every string is NUL-terminated or NULL.
    unsafe {
        while !node.is_null() {
            let n = &*node;
            let text = |p: *const std::os::raw::c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let name = text(n.directive);
            let mut args = text(n.args);
            if name.starts_with('<') {
                // The section's closing `>` stays in its argument text.
                if let Some(end) = args.rfind('>') {
                    args.truncate(end);
                }
            }
            out.push(Directive {
                name,
                args: args.trim().to_owned(),
                file: text(n.filename),
                line: u32::try_from(n.line_num).unwrap_or(0),
                children: copy_siblings(n.first_child),
            });
            node = n.next;
        }
    }
    out
}

/// Splits directive arguments into words the way Apache's `ap_getword_conf`
/// does: separated by white space, a word may be quoted with `"` or `'`,
/// inside which a backslash escapes the quote.
pub fn split_args(args: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return words;
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    word.push(first);
                    chars.next();
                } else if c == first {
                    break;
                } else {
                    word.push(c);
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// Whether `apachectl configtest` (`httpd -t`) is what is running.
pub fn is_config_test() -> bool {
    // SAFETY: a plain query of the server's state.
    unsafe { sys::ap_state_query(sys::AP_SQ_RUN_MODE) == sys::AP_SQ_RM_CONFIG_TEST }
}

/// Whether this is the first, trial reading of the configuration at
/// startup: Apache reads it once more before serving, so what should be
/// said once per configuration is said in the other pass.
pub fn is_trial_pass() -> bool {
    // SAFETY: a plain query of the server's state.
    unsafe { sys::ap_state_query(sys::AP_SQ_MAIN_STATE) == sys::AP_SQ_MS_CREATE_PRE_CONFIG }
}

/// Whether the module whose source name is `name` (`mod_websocket.c`) is
/// loaded.
pub fn module_loaded(name: &CStr) -> bool {
    // SAFETY: looks the name up in the server's module list.
    unsafe { !sys::ap_find_linked_module(name.as_ptr()).is_null() }
}

/// A path as Apache resolves it (`ap_server_root_relative`): relative to
/// ServerRoot unless absolute. `None` if the path holds a NUL, Apache
/// cannot resolve it, or the result is not UTF-8.
///
/// # Safety
/// `pool` is a live pool (the result is copied out of it).
pub(crate) unsafe fn resolve(pool: *mut sys::apr_pool_t, path: &str) -> Option<String> {
    let c_path = std::ffi::CString::new(path).ok()?;
    // SAFETY: live pool (contract); Apache returns a pool string or NULL.
    let resolved = unsafe { crate::cstr(sys::ap_server_root_relative(pool, c_path.as_ptr())) };
    resolved.map(str::to_owned)
}

/// A path from the configuration as Apache resolves it: relative to
/// ServerRoot unless absolute (the path itself if Apache cannot say).
///
/// # Safety
/// `pool` is a live pool (the result is copied out of it).
pub unsafe fn server_root_relative(pool: *mut sys::apr_pool_t, path: &str) -> PathBuf {
    // SAFETY: live pool (contract).
    PathBuf::from(unsafe { resolve(pool, path) }.unwrap_or_else(|| path.to_owned()))
}

/// A server record (the main server or a virtual host), borrowed for `'s`.
#[derive(Clone, Copy)]
pub struct Server<'s> {
    raw: NonNull<sys::server_rec>,
    _life: PhantomData<&'s sys::server_rec>,
}

impl<'s> Server<'s> {
    /// # Safety
    /// `raw` is NULL or a live server record for `'s`.
    pub unsafe fn from_raw(raw: *mut sys::server_rec) -> Option<Server<'s>> {
        NonNull::new(raw).map(|raw| Server {
            raw,
            _life: PhantomData,
        })
    }

    pub fn as_ptr(&self) -> *mut sys::server_rec {
        self.raw.as_ptr()
    }

    /// Logs `msg` for this server with the module's index (its error log,
    /// subject to its `LogLevel`).
    pub fn log(&self, module_index: c_int, level: c_int, source: Source, msg: &str) {
        // SAFETY: a live server record for 's.
        unsafe { crate::log::server(self.as_ptr(), module_index, level, source, msg) }
    }
}

/// What a configuration hook (`pre_config`, `check_config`,
/// `post_config`) gets: its pools, the main server (not in `pre_config`,
/// which runs before it is configured), and with them the right to read
/// the configuration tree Apache has just read. Made by the hooks
/// [`module!`](crate::module!) generates.
pub struct ConfigHook<'a> {
    pconf: PoolRef<'a>,
    plog: PoolRef<'a>,
    ptemp: PoolRef<'a>,
    server: Option<Server<'a>>,
}

impl<'a> ConfigHook<'a> {
    /// # Safety
    /// Apache's arguments to a `pre_config` (with `s` NULL),
    /// `check_config` or `post_config` hook, which is running on the main
    /// thread for `'a`.
    pub unsafe fn from_raw(
        pconf: *mut sys::apr_pool_t,
        plog: *mut sys::apr_pool_t,
        ptemp: *mut sys::apr_pool_t,
        s: *mut sys::server_rec,
    ) -> ConfigHook<'a> {
        // SAFETY: live pools and server (or NULL) per the contract.
        unsafe {
            ConfigHook {
                pconf: PoolRef::from_raw(pconf),
                plog: PoolRef::from_raw(plog),
                ptemp: PoolRef::from_raw(ptemp),
                server: Server::from_raw(s),
            }
        }
    }

    /// The configuration pool (lives as long as this configuration).
    pub fn pool(&self) -> PoolRef<'a> {
        self.pconf
    }

    /// The log pool.
    pub fn log_pool(&self) -> PoolRef<'a> {
        self.plog
    }

    /// The temporary pool, cleared when the configuration is read.
    pub fn temp_pool(&self) -> PoolRef<'a> {
        self.ptemp
    }

    /// The main server; `None` in `pre_config`.
    pub fn server(&self) -> Option<Server<'a>> {
        self.server
    }

    /// A copy of the configuration tree Apache has just read.
    pub fn tree(&self) -> Vec<Directive> {
        // SAFETY: a configuration hook on the main thread (this value's
        // existence), while the tree being checked is alive.
        unsafe { config_tree() }
    }

    /// A path from the configuration as Apache resolves it: relative to
    /// ServerRoot unless absolute (the path itself if Apache cannot say).
    pub fn server_root_relative(&self, path: &str) -> PathBuf {
        // SAFETY: the hook's live temporary pool.
        unsafe { server_root_relative(self.ptemp.as_ptr(), path) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_apache_splits_them() {
        assert_eq!(split_args("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(
            split_args(r#""/usr/lib/my plugin.so" echo_init"#),
            ["/usr/lib/my plugin.so", "echo_init"]
        );
        assert_eq!(split_args(r#"'it\'s' "a\"b" x\y"#), ["it's", "a\"b", "x\\y"]);
        assert!(split_args("   ").is_empty());
        assert_eq!(split_args(r#""""#), [""]);
    }

    #[test]
    fn sections_by_kind() {
        let d = Directive {
            name: "<location".into(),
            args: "/x".into(),
            file: String::new(),
            line: 1,
            children: Vec::new(),
        };
        assert!(d.is_section("Location"));
        assert!(!d.is_section("LocationMatch"));
    }
}
