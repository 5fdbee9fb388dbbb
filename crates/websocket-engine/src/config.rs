//! Per-directory configuration: the directives, their parsing, and the merge
//! that lets nested `<Location>` blocks inherit what they do not set.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use httpd::sys;
use websocket_plugin::{LoadError, LoadedPlugin};
use websocket_proto::deflate::DeflateConfig;
use websocket_proto::origin::OriginList;

/// `MaxMessageSize` when none is configured: 32 MiB, as in the C module.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 32 * 1024 * 1024;

/// How a handshake's `Origin` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginCheck {
    /// The origin must be the request's own scheme, host and port.
    Same,
    /// Only origins listed with `WebSocketTrustedOrigin`.
    Trusted,
    /// Any origin.
    Off,
}

/// A loaded plugin and how the configuration named it.
pub struct PluginHandle {
    pub plugin: LoadedPlugin,
    pub library: String,
    pub init: String,
}

/// One directory's settings; `None` means "inherit".
#[derive(Default, Clone)]
pub struct DirConfig {
    pub plugin: Option<Arc<PluginHandle>>,
    pub max_message_size: Option<u64>,
    pub origin_check: Option<OriginCheck>,
    pub trusted_origins: Option<OriginList>,
    /// mod_websocket_draft76 only: also accept draft-75 handshakes.
    pub support_draft75: Option<bool>,
    /// Close with 1001 after this long without traffic from the peer (0: never).
    pub idle_timeout: Option<Duration>,
    /// Ping after this long without traffic; close if no pong within it (0: never).
    pub ping_interval: Option<Duration>,
    /// Accept close codes RFC 6455 reserves for future use (1016-2999).
    pub allow_reserved_close_codes: Option<bool>,
    /// Most WebSocket connections this module serves at once in one child
    /// process (0: no limit).
    pub max_connections: Option<u32>,
    /// permessage-deflate (RFC 7692) on offer.
    pub compression: Option<bool>,
    pub compression_level: Option<u32>,
    /// Messages shorter than this are sent uncompressed.
    pub compression_min_size: Option<u64>,
    /// The largest LZ77 window (9-15 bits) our compressor uses and that we
    /// ask clients to use: the memory knob.
    pub compression_window_bits: Option<u8>,
}

/// `WebSocketCompressionLevel` by default: the fastest. Messaging cares about
/// CPU and latency more than the last bytes (level 6 cost 7x the CPU for 16
/// KiB text messages in `cargo xtask bench`, for a 45% smaller wire size).
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 1;

/// `WebSocketCompressionMinSize` by default: below this, deflate's framing
/// costs more than it saves.
pub const DEFAULT_COMPRESSION_MIN_SIZE: u64 = 64;

impl DirConfig {
    /// The settings of `add` on top of those of `base`.
    pub fn merge(base: &DirConfig, add: &DirConfig) -> DirConfig {
        DirConfig {
            plugin: add.plugin.clone().or_else(|| base.plugin.clone()),
            max_message_size: add.max_message_size.or(base.max_message_size),
            origin_check: add.origin_check.or(base.origin_check),
            trusted_origins: add
                .trusted_origins
                .clone()
                .or_else(|| base.trusted_origins.clone()),
            support_draft75: add.support_draft75.or(base.support_draft75),
            idle_timeout: add.idle_timeout.or(base.idle_timeout),
            ping_interval: add.ping_interval.or(base.ping_interval),
            allow_reserved_close_codes: add.allow_reserved_close_codes.or(base.allow_reserved_close_codes),
            max_connections: add.max_connections.or(base.max_connections),
            compression: add.compression.or(base.compression),
            compression_level: add.compression_level.or(base.compression_level),
            compression_min_size: add.compression_min_size.or(base.compression_min_size),
            compression_window_bits: add.compression_window_bits.or(base.compression_window_bits),
        }
    }

    /// The permessage-deflate settings in effect.
    pub fn deflate(&self) -> DeflateConfig {
        let defaults = DeflateConfig::default();
        let window = self
            .compression_window_bits
            .unwrap_or(defaults.max_server_window_bits);
        DeflateConfig {
            enabled: self.compression.unwrap_or(true),
            level: self.compression_level.unwrap_or(DEFAULT_COMPRESSION_LEVEL),
            max_server_window_bits: window,
            max_client_window_bits: window,
            server_no_context_takeover: false,
        }
    }

    pub fn compression_min_size(&self) -> usize {
        usize::try_from(self.compression_min_size.unwrap_or(DEFAULT_COMPRESSION_MIN_SIZE))
            .unwrap_or(usize::MAX)
    }

    /// `None` when idle connections are kept forever.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout.filter(|d| !d.is_zero())
    }

    /// `None` when the server never pings.
    pub fn ping_interval(&self) -> Option<Duration> {
        self.ping_interval.filter(|d| !d.is_zero())
    }

    pub fn allow_reserved_close_codes(&self) -> bool {
        self.allow_reserved_close_codes.unwrap_or(false)
    }

    /// `None` when there is no limit.
    pub fn max_connections(&self) -> Option<u32> {
        self.max_connections.filter(|n| *n > 0)
    }

    pub fn max_message_size(&self) -> u64 {
        self.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE)
    }

    pub fn origin_check(&self) -> OriginCheck {
        self.origin_check.unwrap_or(OriginCheck::Same)
    }
}

/// Parses a byte count: digits with an optional K, M or G suffix (powers of
/// 1024). Zero, negative numbers and anything else are refused.
pub fn parse_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let (digits, unit) = match v.char_indices().last()? {
        (i, 'k' | 'K') => (&v[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&v[..i], 1 << 20),
        (i, 'g' | 'G') => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let bytes = n.checked_mul(unit)?;
    (bytes > 0 && bytes <= i64::MAX as u64).then_some(bytes)
}

/// Whole seconds, 0 allowed (it switches the feature off), at most a day.
pub fn parse_seconds(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = v.parse().ok()?;
    (secs <= 86_400).then(|| Duration::from_secs(secs))
}

/// A connection count: digits, 0 meaning no limit.
pub fn parse_count(value: &str) -> Option<u32> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

pub fn parse_origin_check(value: &str) -> Option<OriginCheck> {
    match value.to_ascii_lowercase().as_str() {
        "same" => Some(OriginCheck::Same),
        "trusted" => Some(OriginCheck::Trusted),
        "off" => Some(OriginCheck::Off),
        _ => None,
    }
}

/// Apache's create_dir_config hook.
///
/// # Safety
/// Called by Apache with a live pool.
pub unsafe extern "C" fn create_dir_config(pool: *mut sys::apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    // SAFETY: Apache passes the live pool the record must live in.
    unsafe { httpd::pool::attach(pool, DirConfig::default()) }.cast()
}

/// Apache's merge_dir_config hook.
///
/// # Safety
/// Called by Apache with a live pool and two records made by these hooks.
pub unsafe extern "C" fn merge_dir_config(
    pool: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // SAFETY: both records were made by create_dir_config/merge_dir_config
    // and live in pools that outlive this merge.
    let merged = unsafe { DirConfig::merge(&*base.cast::<DirConfig>(), &*add.cast::<DirConfig>()) };
    // SAFETY: live pool from Apache.
    unsafe { httpd::pool::attach(pool, merged) }.cast()
}

/// The configuration `module` (whose records are DirConfigs) has for a request.
///
/// # Safety
/// `r` is a live request and `module` a loaded module built on this crate's
/// create_dir_config/merge_dir_config.
pub unsafe fn for_request<'a>(
    r: *const sys::request_rec,
    module: *const sys::module,
) -> Option<&'a DirConfig> {
    // SAFETY: live request; the module's slot holds a DirConfig (or NULL).
    unsafe {
        let p = sys::get_module_config((*r).per_dir_config, module).cast::<DirConfig>();
        p.as_ref()
    }
}

/// Runs a directive handler body, turning its error text into the string
/// Apache prints (allocated in the command pool), with the directive's name.
///
/// # Safety
/// `cmd` and `conf` are what Apache passed to a directive handler whose
/// module's records are DirConfigs.
pub unsafe fn directive(
    cmd: *mut sys::cmd_parms,
    conf: *mut c_void,
    body: impl FnOnce(&mut DirConfig, *mut sys::cmd_parms) -> Result<(), String>,
) -> *const c_char {
    // SAFETY: Apache passes the live cmd_parms and our per-dir record.
    let (conf, name) = unsafe {
        (
            &mut *conf.cast::<DirConfig>(),
            httpd::cstr((*(*cmd).cmd).name).unwrap_or("?"),
        )
    };
    match body(conf, cmd) {
        Ok(()) => std::ptr::null(),
        // SAFETY: the command pool is live for the whole configuration pass.
        Err(msg) => unsafe { httpd::pool::strdup((*cmd).pool, &format!("{name}: {msg}")) },
    }
}

/// A directive argument as text.
///
/// # Safety
/// `p` is a NUL-terminated string that outlives `'a`.
pub unsafe fn arg<'a>(p: *const c_char) -> Result<&'a str, String> {
    // SAFETY: Apache passes NUL-terminated argument words.
    unsafe { httpd::cstr(p) }.ok_or_else(|| "argument is not valid UTF-8".to_owned())
}

unsafe extern "C" fn set_handler(
    cmd: *mut sys::cmd_parms,
    conf: *mut c_void,
    library: *const c_char,
    init: *const c_char,
) -> *const c_char {
    // SAFETY: forwarded Apache arguments.
    unsafe {
        directive(cmd, conf, |conf, cmd| {
            let library = arg(library)?;
            let init = arg(init)?;
            let lib_c =
                std::ffi::CString::new(library).map_err(|_| "library path contains NUL".to_owned())?;
            let resolved = httpd::cstr(sys::ap_server_root_relative((*cmd).pool, lib_c.as_ptr()))
                .ok_or_else(|| format!("invalid library path '{library}'"))?;
            let path = PathBuf::from(resolved);
            let plugin = LoadedPlugin::load(&path, init).map_err(|e| load_error(&e))?;
            conf.plugin = Some(Arc::new(PluginHandle {
                plugin,
                library: library.to_owned(),
                init: init.to_owned(),
            }));
            Ok(())
        })
    }
}

/// A plugin that cannot be used, said once: the loader's errors name the
/// library, and the system's dlopen message names it again.
fn load_error(e: &LoadError) -> String {
    match e {
        LoadError::Open { path, source } => {
            let shown = path.display().to_string();
            let text = source.to_string();
            // dlerror() says "<path>: <reason>", libloading adds its own words before it.
            let reason = text
                .rsplit_once(&format!("{shown}: "))
                .map_or(text.as_str(), |(_, reason)| reason);
            format!("cannot load the plugin library {shown}: {reason}")
        }
        other => other.to_string(),
    }
}

/// Defines a one-argument directive handler: `$body` gets the record and
/// the argument text and returns `Err(message)` to refuse the value.
macro_rules! take1 {
    ($name:ident, |$conf:ident, $value:ident| $body:expr) => {
        unsafe extern "C" fn $name(
            cmd: *mut sys::cmd_parms,
            conf: *mut c_void,
            value: *const c_char,
        ) -> *const c_char {
            // SAFETY: forwarded Apache arguments for a module whose records are DirConfigs.
            unsafe {
                directive(cmd, conf, |$conf, _| {
                    let $value = arg(value)?;
                    $body
                })
            }
        }
    };
}

/// Defines an `On|Off` directive handler setting one field.
macro_rules! flag {
    ($name:ident, $field:ident) => {
        unsafe extern "C" fn $name(cmd: *mut sys::cmd_parms, conf: *mut c_void, on: c_int) -> *const c_char {
            // SAFETY: forwarded Apache arguments for a module whose records are DirConfigs.
            unsafe {
                directive(cmd, conf, |conf, _| {
                    conf.$field = Some(on != 0);
                    Ok(())
                })
            }
        }
    };
}

take1!(set_max_message_size, |conf, v| {
    let size = parse_size(v).ok_or_else(|| {
        format!("invalid size '{v}' (expected a positive number of bytes, optionally with K, M or G)")
    })?;
    conf.max_message_size = Some(size);
    Ok(())
});

take1!(set_origin_check, |conf, v| {
    let check = parse_origin_check(v)
        .ok_or_else(|| format!("invalid value '{v}' (expected Same, Trusted or Off)"))?;
    conf.origin_check = Some(check);
    Ok(())
});

take1!(set_idle_timeout, |conf, v| {
    let secs =
        parse_seconds(v).ok_or_else(|| format!("invalid value '{v}' (expected seconds, 0 for none)"))?;
    conf.idle_timeout = Some(secs);
    Ok(())
});

take1!(set_ping_interval, |conf, v| {
    let secs =
        parse_seconds(v).ok_or_else(|| format!("invalid value '{v}' (expected seconds, 0 for none)"))?;
    conf.ping_interval = Some(secs);
    Ok(())
});

flag!(set_allow_reserved, allow_reserved_close_codes);

take1!(set_max_connections, |conf, v| {
    let n =
        parse_count(v).ok_or_else(|| format!("invalid value '{v}' (expected a number, 0 for no limit)"))?;
    conf.max_connections = Some(n);
    Ok(())
});

flag!(set_compression, compression);

/// A small decimal number within `range`.
fn parse_in_range(value: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    let v = value.trim();
    if v.is_empty() || v.len() > 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|n| range.contains(n))
}

take1!(set_compression_level, |conf, v| {
    let levels = websocket_proto::deflate::LEVELS;
    let level = parse_in_range(v, levels.clone()).ok_or_else(|| {
        format!(
            "invalid level '{v}' (expected {} to {})",
            levels.start(),
            levels.end()
        )
    })?;
    conf.compression_level = Some(level);
    Ok(())
});

take1!(set_compression_min_size, |conf, v| {
    let size = if v.trim() == "0" { Some(0) } else { parse_size(v) };
    conf.compression_min_size =
        Some(size.ok_or_else(|| format!("invalid size '{v}' (expected a number of bytes)"))?);
    Ok(())
});

take1!(set_compression_window_bits, |conf, v| {
    let range = websocket_proto::deflate::WINDOW_BITS;
    let bits = parse_in_range(v, u32::from(*range.start())..=u32::from(*range.end())).ok_or_else(|| {
        format!(
            "invalid window bits '{v}' (expected {} to {})",
            range.start(),
            range.end()
        )
    })?;
    conf.compression_window_bits = Some(bits as u8);
    Ok(())
});

take1!(add_trusted_origin, |conf, v| {
    let list = conf.trusted_origins.get_or_insert_with(OriginList::new);
    list.add(v).map_err(|e| format!("invalid origin '{v}': {e}"))
});

pub const HERE: std::os::raw::c_int = sys::RSRC_CONF | sys::ACCESS_CONF;
pub const HERE_OR_HTACCESS: std::os::raw::c_int = HERE | sys::OR_AUTHCFG;

const fn help(s: &'static CStr) -> &'static CStr {
    s
}

/// The directives every WebSocket module understands. Each module puts
/// these in its own command table: when two modules define a directive,
/// Apache hands it to both, so one `<Location>` configures them all.
pub const COMMON_COMMANDS: usize = 13;

pub const fn common_commands() -> [sys::command_rec; COMMON_COMMANDS] {
    [
        sys::AP_INIT_FLAG(
            c"WebSocketCompression",
            set_compression,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"On (default): accept permessage-deflate (RFC 7692) when clients offer it"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketCompressionLevel",
            set_compression_level,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"deflate level, 1 (fastest) to 9 (smallest); default 1"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketCompressionMinSize",
            set_compression_min_size,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"messages shorter than this many bytes are sent uncompressed; default 64"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketCompressionWindowBits",
            set_compression_window_bits,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"largest deflate window, 9 to 15 bits (memory per connection); default 15"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketIdleTimeout",
            set_idle_timeout,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"close a connection with 1001 after this many seconds without traffic; default 0 (never)"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketPingInterval",
            set_ping_interval,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"ping after this many idle seconds, close if no pong within as long; default 0 (never)"),
        ),
        sys::AP_INIT_FLAG(
            c"WebSocketAllowReservedStatusCodes",
            set_allow_reserved,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"On: accept close codes 1016-2999 from clients; default Off"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketMaxConnections",
            set_max_connections,
            std::ptr::null_mut(),
            HERE,
            help(c"most WebSocket connections per child process, beyond which 503; default 0 (no limit)"),
        ),
        sys::AP_INIT_TAKE2(
            c"WebSocketHandler",
            set_handler,
            std::ptr::null_mut(),
            HERE,
            help(c"the plugin's shared library (relative to ServerRoot) and its init function"),
        ),
        sys::AP_INIT_TAKE1(
            c"MaxMessageSize",
            set_max_message_size,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"largest message accepted, in bytes (K, M, G suffixes allowed); default 33554432"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketMaxMessageSize",
            set_max_message_size,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"alias of MaxMessageSize"),
        ),
        sys::AP_INIT_TAKE1(
            c"WebSocketOriginCheck",
            set_origin_check,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"Same (default), Trusted or Off: which Origin headers are accepted"),
        ),
        sys::AP_INIT_ITERATE(
            c"WebSocketTrustedOrigin",
            add_trusted_origin,
            std::ptr::null_mut(),
            HERE_OR_HTACCESS,
            help(c"origins (scheme://host[:port]) accepted under WebSocketOriginCheck Trusted"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("33554432"), Some(33554432));
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("32m"), Some(32 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        for bad in [
            "",
            "0",
            "-1",
            "abc",
            "1.5M",
            "12KB",
            "K",
            "99999999999999999999",
            " ",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn seconds_and_counts() {
        assert_eq!(parse_seconds("0"), Some(Duration::ZERO));
        assert_eq!(parse_seconds("30"), Some(Duration::from_secs(30)));
        for bad in ["", "-1", "1.5", "abc", "86401"] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("500"), Some(500));
        for bad in ["", "-3", "x", "99999999999"] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
        let c = DirConfig {
            idle_timeout: Some(Duration::ZERO),
            max_connections: Some(0),
            ..DirConfig::default()
        };
        assert_eq!((c.idle_timeout(), c.max_connections()), (None, None));
    }

    #[test]
    fn origin_checks() {
        assert_eq!(parse_origin_check("same"), Some(OriginCheck::Same));
        assert_eq!(parse_origin_check("Trusted"), Some(OriginCheck::Trusted));
        assert_eq!(parse_origin_check("OFF"), Some(OriginCheck::Off));
        assert_eq!(parse_origin_check("maybe"), None);
    }

    #[test]
    fn merge_inherits_unset_fields() {
        let base = DirConfig {
            max_message_size: Some(100),
            origin_check: Some(OriginCheck::Off),
            ..DirConfig::default()
        };
        let add = DirConfig {
            origin_check: Some(OriginCheck::Trusted),
            ..DirConfig::default()
        };
        let m = DirConfig::merge(&base, &add);
        assert_eq!(m.max_message_size(), 100);
        assert_eq!(m.origin_check(), OriginCheck::Trusted);
        let empty = DirConfig::merge(&DirConfig::default(), &DirConfig::default());
        assert_eq!(empty.max_message_size(), DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(empty.origin_check(), OriginCheck::Same);
    }
}
