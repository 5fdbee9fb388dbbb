//! Loading a plugin library for the module side of the ABI.

use std::ffi::{c_int, c_void};
use std::fmt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use crate::ffi::{WebSocketPlugin, WebSocketServer, WEBSOCKET_PLUGIN_VERSION_0};

/// Why a `WebSocketHandler` library could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// The library could not be loaded (missing, wrong architecture, unresolved symbols…).
    Open {
        path: PathBuf,
        source: libloading::Error,
    },
    /// None of the spellings of the init function is exported.
    InitNotFound { path: PathBuf, tried: Vec<String> },
    /// The init function returned NULL.
    InitReturnedNull { path: PathBuf, symbol: String },
    /// The plugin struct has a version this server does not know.
    WrongVersion {
        path: PathBuf,
        symbol: String,
        version: u32,
    },
    /// The plugin struct declares itself smaller than version 0 of `WebSocketPlugin`.
    SizeTooSmall {
        path: PathBuf,
        symbol: String,
        size: u32,
    },
    /// The plugin struct has no `on_message` callback.
    NoOnMessage { path: PathBuf, symbol: String },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { path, source } => write!(
                f,
                "cannot open WebSocket plugin library {}: {source}",
                path.display()
            ),
            LoadError::InitNotFound { path, tried } => write!(
                f,
                "WebSocket plugin library {} exports no init function named {}",
                path.display(),
                tried.join(" or ")
            ),
            LoadError::InitReturnedNull { path, symbol } => write!(
                f,
                "init function {symbol} of WebSocket plugin {} returned NULL",
                path.display()
            ),
            LoadError::WrongVersion {
                path,
                symbol,
                version,
            } => write!(
                f,
                "WebSocket plugin {} ({symbol}) has version {version}, but only version \
                 {WEBSOCKET_PLUGIN_VERSION_0} is supported",
                path.display()
            ),
            LoadError::SizeTooSmall { path, symbol, size } => write!(
                f,
                "WebSocket plugin {} ({symbol}) declares a size of {size} bytes, less than \
                 the {} bytes of WebSocketPlugin version {WEBSOCKET_PLUGIN_VERSION_0}",
                path.display(),
                std::mem::size_of::<WebSocketPlugin>()
            ),
            LoadError::NoOnMessage { path, symbol } => write!(
                f,
                "WebSocket plugin {} ({symbol}) has no on_message callback",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Open { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `name` split as a 32-bit Windows `__stdcall` decoration (`_name@N` or `name@N`).
fn undecorate(name: &str) -> Option<(bool, &str)> {
    let (base, digits) = name.rsplit_once('@')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match base.strip_prefix('_') {
        Some(stripped) if !stripped.is_empty() => Some((true, stripped)),
        _ if !base.is_empty() => Some((false, base)),
        _ => None,
    }
}

/// The symbol names tried for an init function, in order.
///
/// 32-bit Windows decorates `__stdcall` functions as `_name@0`, and configurations
/// written there name either spelling; trying both keeps them working everywhere.
pub fn init_symbol_candidates(name: &str) -> Vec<String> {
    let mut names = vec![name.to_owned()];
    match undecorate(name) {
        Some((true, base)) => names.push(base.to_owned()),
        Some((false, base)) => {
            names.push(format!("_{name}"));
            names.push(base.to_owned());
        }
        None if !name.is_empty() => names.push(format!("_{name}@0")),
        None => {}
    }
    names
}

/// The text of a Windows module-definition (`.def`) file exporting each init function
/// under its plain name and its 32-bit `__stdcall` spelling, so that either can be
/// named in `WebSocketHandler`.
pub fn windows_def_file(init_names: &[&str]) -> String {
    let mut def = String::from("EXPORTS\n");
    for name in init_names {
        def.push_str(&format!("  {name}\n  _{name}@0={name}\n"));
    }
    def
}

type InitFn = unsafe extern "system" fn() -> *mut WebSocketPlugin;

/// A plugin whose init function has run and whose struct passed validation.
///
/// Dropping it calls the plugin's `destroy` and then unloads the library.
pub struct LoadedPlugin {
    plugin: NonNull<WebSocketPlugin>,
    /// An Option only so that Drop can unload it strictly after `destroy`.
    library: Option<libloading::Library>,
    path: PathBuf,
    symbol: String,
}

// SAFETY: the plugin struct is never written after init returns (this type only reads
// it), and the plugin contract requires its callbacks to be callable from any thread,
// since connections run on many worker threads at once; `destroy` runs only in Drop,
// which has exclusive ownership. The library handle itself is Send + Sync.
unsafe impl Send for LoadedPlugin {}
// SAFETY: as above: shared access only ever reads the struct and calls thread-safe callbacks.
unsafe impl Sync for LoadedPlugin {}

/// The plugin refused the connection (its `on_connect` returned NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

fn open(path: &Path) -> Result<libloading::Library, libloading::Error> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        // RTLD_NOW: a library with unresolved symbols fails at startup, not at the first
        // connection. RTLD_LOCAL: two plugins never see each other's symbols.
        // SAFETY: loading runs the library's initialisers; the administrator vouches for
        // the library by naming it in the configuration, as with LoadModule.
        unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above.
        unsafe { libloading::Library::new(path) }
    }
}

impl LoadedPlugin {
    /// Loads `path`, calls its init function `init_name` (or a `__stdcall` spelling of
    /// it, see [`init_symbol_candidates`]) and validates the plugin struct.
    ///
    /// The library is trusted code: its initialisers and init function run here.
    pub fn load(path: &Path, init_name: &str) -> Result<LoadedPlugin, LoadError> {
        let library = open(path).map_err(|source| LoadError::Open {
            path: path.to_owned(),
            source,
        })?;
        let tried = init_symbol_candidates(init_name);
        let found = tried.iter().find_map(|name| {
            // SAFETY: the ABI fixes the type of the init function; the symbol is only
            // used while `library` is loaded.
            let symbol = unsafe { library.get::<InitFn>(name.as_bytes()) }.ok()?;
            Some((*symbol, name.clone()))
        });
        let Some((init, symbol)) = found else {
            return Err(LoadError::InitNotFound {
                path: path.to_owned(),
                tried,
            });
        };
        // SAFETY: calling the plugin's init function as the ABI prescribes.
        let raw = unsafe { init() };
        let path = path.to_owned();
        let Some(plugin) = NonNull::new(raw) else {
            return Err(LoadError::InitReturnedNull { path, symbol });
        };
        // SAFETY: a non-NULL return points to a plugin struct; its first two fields are
        // the same in every version.
        let (size, version) = unsafe { ((*raw).size, (*raw).version) };
        let error = if version != WEBSOCKET_PLUGIN_VERSION_0 {
            LoadError::WrongVersion {
                path,
                symbol,
                version,
            }
        } else if (size as usize) < std::mem::size_of::<WebSocketPlugin>() {
            LoadError::SizeTooSmall { path, symbol, size }
        } else {
            let loaded = LoadedPlugin {
                plugin,
                library: Some(library),
                path,
                symbol,
            };
            if loaded.plugin().on_message.is_none() {
                // The struct is a complete version 0 one, so destroy can be trusted;
                // dropping `loaded` calls it and unloads the library.
                return Err(LoadError::NoOnMessage {
                    path: loaded.path.clone(),
                    symbol: loaded.symbol.clone(),
                });
            }
            return Ok(loaded);
        };
        // A struct of unknown layout cannot be destroyed, and unloading code that may have
        // started threads or registered exit handlers could crash later; keep it loaded.
        std::mem::forget(library);
        Err(error)
    }

    /// The plugin struct, valid as long as `self`.
    pub fn as_ptr(&self) -> *const WebSocketPlugin {
        self.plugin.as_ptr()
    }

    /// The plugin struct.
    pub fn plugin(&self) -> &WebSocketPlugin {
        // SAFETY: validated in load, never written after init, valid until Drop.
        unsafe { self.plugin.as_ref() }
    }

    /// The library's path as given to [`LoadedPlugin::load`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The spelling of the init function that was found.
    pub fn init_symbol(&self) -> &str {
        &self.symbol
    }

    /// Calls `on_connect`; `Ok` carries the plugin_private for the later callbacks
    /// (NULL when the plugin has no `on_connect`, which accepts every connection).
    ///
    /// # Safety
    /// `server` must point to a `WebSocketServer` that stays valid, with the same
    /// address, until `on_disconnect` returns (until this returns, if it refused), and
    /// the server must honour the threading contract of `websocket_plugin.h`.
    pub unsafe fn on_connect(&self, server: *const WebSocketServer) -> Result<*mut c_void, Refused> {
        match self.plugin().on_connect {
            None => Ok(std::ptr::null_mut()),
            // SAFETY: the caller upholds the ABI's contract for server.
            Some(on_connect) => match unsafe { on_connect(server) } {
                p if p.is_null() => Err(Refused),
                p => Ok(p),
            },
        }
    }

    /// Calls `on_message` with a complete TEXT or BINARY message.
    ///
    /// # Safety
    /// `plugin_private` must come from [`LoadedPlugin::on_connect`] with the same `server`,
    /// before `on_disconnect`, and never concurrently with another callback of the same
    /// connection.
    pub unsafe fn on_message(
        &self,
        plugin_private: *mut c_void,
        server: *const WebSocketServer,
        message_type: c_int,
        payload: &mut [u8],
    ) {
        if let Some(on_message) = self.plugin().on_message {
            // SAFETY: the caller upholds the ABI's contract; the buffer is valid for the call.
            unsafe {
                on_message(
                    plugin_private,
                    server,
                    message_type,
                    payload.as_mut_ptr(),
                    payload.len(),
                )
            };
        }
    }

    /// Calls `on_disconnect` (if the plugin has one). Call it exactly once per accepted
    /// connection, after making every pending and future `send` return 0.
    ///
    /// # Safety
    /// As for [`LoadedPlugin::on_message`]; `plugin_private` is dead afterwards.
    pub unsafe fn on_disconnect(&self, plugin_private: *mut c_void, server: *const WebSocketServer) {
        if let Some(on_disconnect) = self.plugin().on_disconnect {
            // SAFETY: the caller upholds the ABI's contract.
            unsafe { on_disconnect(plugin_private, server) };
        }
    }
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("symbol", &self.symbol)
            .field("plugin", &self.plugin)
            .finish()
    }
}

impl Drop for LoadedPlugin {
    fn drop(&mut self) {
        if let Some(destroy) = self.plugin().destroy {
            // SAFETY: the pointer init returned, given back once, while the library is loaded.
            unsafe { destroy(self.plugin.as_ptr()) };
        }
        drop(self.library.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_name_then_stdcall_spelling() {
        assert_eq!(init_symbol_candidates("echo_init"), ["echo_init", "_echo_init@0"]);
    }

    #[test]
    fn decorated_name_then_stripped() {
        assert_eq!(
            init_symbol_candidates("_echo_init@0"),
            ["_echo_init@0", "echo_init"]
        );
        assert_eq!(init_symbol_candidates("_f@12"), ["_f@12", "f"]);
    }

    #[test]
    fn decorated_without_underscore() {
        assert_eq!(
            init_symbol_candidates("echo_init@0"),
            ["echo_init@0", "_echo_init@0", "echo_init"]
        );
    }

    #[test]
    fn leading_underscore_alone_is_not_a_decoration() {
        assert_eq!(init_symbol_candidates("_init"), ["_init", "__init@0"]);
        assert_eq!(init_symbol_candidates("a@b"), ["a@b", "_a@b@0"]);
        assert_eq!(init_symbol_candidates("_@0"), ["_@0", "__@0", "_"]);
        assert_eq!(init_symbol_candidates("@0"), ["@0", "_@0@0"]);
        assert_eq!(init_symbol_candidates(""), [""]);
    }

    #[test]
    fn def_file_exports_both_spellings() {
        assert_eq!(windows_def_file(&[]), "EXPORTS\n");
        assert_eq!(
            windows_def_file(&["echo_init"]),
            "EXPORTS\n  echo_init\n  _echo_init@0=echo_init\n"
        );
        assert_eq!(
            windows_def_file(&["a", "b"]),
            "EXPORTS\n  a\n  _a@0=a\n  b\n  _b@0=b\n"
        );
    }

    #[test]
    fn missing_library_is_an_open_error() {
        let err = LoadedPlugin::load(Path::new("/nonexistent/plugin.so"), "x").unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }));
        let text = err.to_string();
        assert!(
            text.starts_with("cannot open WebSocket plugin library /nonexistent/plugin.so: "),
            "{text}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
