//! Per-directory configuration: the directives, their parsing, and the merge
//! that lets nested `<Location>` blocks inherit what they do not set.

use std::os::raw::c_int;
use std::sync::Arc;
use std::time::Duration;

use httpd::config::{Cmd, Command, Merge, ACCESS_CONF, OR_AUTHCFG, RSRC_CONF};
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
    /// The section the `WebSocketHandler` line is in (`/chat` for
    /// `<Location /chat>`; "(server)" outside any): the metrics' location.
    pub location: String,
}

/// The metrics' name for a `WebSocketHandler` outside any section.
pub const SERVER_LOCATION: &str = "(server)";

/// One directory's settings; `None` means "inherit".
#[derive(Default, Clone)]
pub struct DirConfig {
    /// The section this record was made for (`/publish` for
    /// `<Location /publish>`), the innermost one after merging.
    pub section: Option<Arc<str>>,
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
    /// `WebSocketAsync`: park idle connections in the event MPM.
    pub park_idle: Option<bool>,
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
            section: add.section.clone().or_else(|| base.section.clone()),
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
            park_idle: add.park_idle.or(base.park_idle),
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

    /// Whether idle connections give their worker back to the MPM (where
    /// the MPM can take them).
    pub fn park_idle(&self) -> bool {
        self.park_idle.unwrap_or(true)
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

impl Merge for DirConfig {
    fn merge(base: &DirConfig, add: &DirConfig) -> DirConfig {
        DirConfig::merge(base, add)
    }

    fn created_for(&mut self, section: &str) {
        self.section = Some(section.into());
    }
}

fn set_handler(cmd: &Cmd<'_>, conf: &mut DirConfig, library: &str, init: &str) -> Result<(), String> {
    let path = cmd
        .server_root_relative(library)
        .ok_or_else(|| format!("invalid library path '{library}'"))?;
    let plugin = LoadedPlugin::load(&path, init).map_err(|e| load_error(&e))?;
    conf.plugin = Some(Arc::new(PluginHandle {
        plugin,
        library: library.to_owned(),
        init: init.to_owned(),
        location: cmd.section_path().unwrap_or(SERVER_LOCATION).to_owned(),
    }));
    Ok(())
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

fn set_max_message_size(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
    let size = parse_size(v).ok_or_else(|| {
        format!("invalid size '{v}' (expected a positive number of bytes, optionally with K, M or G)")
    })?;
    conf.max_message_size = Some(size);
    Ok(())
}

fn set_origin_check(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
    let check = parse_origin_check(v)
        .ok_or_else(|| format!("invalid value '{v}' (expected Same, Trusted or Off)"))?;
    conf.origin_check = Some(check);
    Ok(())
}

fn set_idle_timeout(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
    let secs =
        parse_seconds(v).ok_or_else(|| format!("invalid value '{v}' (expected seconds, 0 for none)"))?;
    conf.idle_timeout = Some(secs);
    Ok(())
}

fn set_ping_interval(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
    let secs =
        parse_seconds(v).ok_or_else(|| format!("invalid value '{v}' (expected seconds, 0 for none)"))?;
    conf.ping_interval = Some(secs);
    Ok(())
}

fn set_allow_reserved(_: &Cmd<'_>, conf: &mut DirConfig, on: bool) -> Result<(), String> {
    conf.allow_reserved_close_codes = Some(on);
    Ok(())
}

fn set_park_idle(_: &Cmd<'_>, conf: &mut DirConfig, on: bool) -> Result<(), String> {
    conf.park_idle = Some(on);
    Ok(())
}

fn set_max_connections(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
    let n =
        parse_count(v).ok_or_else(|| format!("invalid value '{v}' (expected a number, 0 for no limit)"))?;
    conf.max_connections = Some(n);
    Ok(())
}

fn set_compression(_: &Cmd<'_>, conf: &mut DirConfig, on: bool) -> Result<(), String> {
    conf.compression = Some(on);
    Ok(())
}

/// A small decimal number within `range`.
fn parse_in_range(value: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    let v = value.trim();
    if v.is_empty() || v.len() > 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|n| range.contains(n))
}

fn set_compression_level(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
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
}

fn set_compression_min_size(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
    let size = if v.trim() == "0" { Some(0) } else { parse_size(v) };
    conf.compression_min_size =
        Some(size.ok_or_else(|| format!("invalid size '{v}' (expected a number of bytes)"))?);
    Ok(())
}

fn set_compression_window_bits(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
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
}

fn add_trusted_origin(_: &Cmd<'_>, conf: &mut DirConfig, v: &str) -> Result<(), String> {
    let list = conf.trusted_origins.get_or_insert_with(OriginList::new);
    list.add(v).map_err(|e| format!("invalid origin '{v}': {e}"))
}

/// Where the server-wide directives may be written: the server, virtual
/// hosts, `<Location>`/`<Directory>` sections.
pub const HERE: c_int = RSRC_CONF | ACCESS_CONF;
/// There, and in `.htaccess` files under `AllowOverride AuthConfig`.
pub const HERE_OR_HTACCESS: c_int = HERE | OR_AUTHCFG;

/// The directives every WebSocket module understands. Each module puts
/// these in its own command table: when two modules define a directive,
/// Apache hands it to both, so one `<Location>` configures them all.
pub const COMMANDS: &[Command<DirConfig>] = &[
    Command::flag(
        c"WebSocketCompression",
        set_compression,
        HERE_OR_HTACCESS,
        c"On (default): accept permessage-deflate (RFC 7692) when clients offer it",
    ),
    Command::take1(
        c"WebSocketCompressionLevel",
        set_compression_level,
        HERE_OR_HTACCESS,
        c"deflate level, 1 (fastest) to 9 (smallest); default 1",
    ),
    Command::take1(
        c"WebSocketCompressionMinSize",
        set_compression_min_size,
        HERE_OR_HTACCESS,
        c"messages shorter than this many bytes are sent uncompressed; default 64",
    ),
    Command::take1(
        c"WebSocketCompressionWindowBits",
        set_compression_window_bits,
        HERE_OR_HTACCESS,
        c"largest deflate window, 9 to 15 bits (memory per connection); default 15",
    ),
    Command::take1(
        c"WebSocketIdleTimeout",
        set_idle_timeout,
        HERE_OR_HTACCESS,
        c"close a connection with 1001 after this many seconds without traffic; default 0 (never)",
    ),
    Command::take1(
        c"WebSocketPingInterval",
        set_ping_interval,
        HERE_OR_HTACCESS,
        c"ping after this many idle seconds, close if no pong within as long; default 0 (never)",
    ),
    Command::flag(
        c"WebSocketAllowReservedStatusCodes",
        set_allow_reserved,
        HERE_OR_HTACCESS,
        c"On: accept close codes 1016-2999 from clients; default Off",
    ),
    Command::flag(
        c"WebSocketAsync",
        set_park_idle,
        HERE,
        c"On: idle connections give their worker thread back to the event MPM (httpd 2.4.63+); default On",
    ),
    Command::take1(
        c"WebSocketMaxConnections",
        set_max_connections,
        HERE,
        c"most WebSocket connections per child process, beyond which 503; default 0 (no limit)",
    ),
    Command::take2(
        c"WebSocketHandler",
        set_handler,
        HERE,
        c"the plugin's shared library (relative to ServerRoot) and its init function",
    ),
    Command::take1(
        c"MaxMessageSize",
        set_max_message_size,
        HERE_OR_HTACCESS,
        c"largest message accepted, in bytes (K, M, G suffixes allowed); default 33554432",
    ),
    Command::take1(
        c"WebSocketMaxMessageSize",
        set_max_message_size,
        HERE_OR_HTACCESS,
        c"alias of MaxMessageSize",
    ),
    Command::take12(
        c"WebSocketBroker",
        crate::channels::set_broker,
        RSRC_CONF,
        c"redis://host[:port][/db] [prefix]: carry channel publishes through Redis to every server that shares it",
    ),
    Command::take1(
        c"WebSocketChannelBuffer",
        crate::channels::set_buffer,
        RSRC_CONF,
        c"memory the child processes share for channel messages (64K to 1G); default 16M",
    ),
    Command::take1(
        c"WebSocketOriginCheck",
        set_origin_check,
        HERE_OR_HTACCESS,
        c"Same (default), Trusted or Off: which Origin headers are accepted",
    ),
    Command::iterate(
        c"WebSocketTrustedOrigin",
        add_trusted_origin,
        HERE_OR_HTACCESS,
        c"origins (scheme://host[:port]) accepted under WebSocketOriginCheck Trusted",
    ),
];

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
