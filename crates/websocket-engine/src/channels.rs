//! Channels in the module: the server-wide directives that configure them
//! (`WebSocketBroker`, `WebSocketChannelBuffer`), the ring the parent
//! shares with every child, the [`Bus`] each child builds when a
//! connection first uses channels, and the plugin ABI's `subscribe`,
//! `unsubscribe` and `publish` (docs/architecture.md, "Channels").

use std::ffi::c_char;
use std::os::raw::c_int;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use httpd::config::Cmd;
use httpd::server::Server;
use httpd::sys::{APLOG_DEBUG, APLOG_ERR, APLOG_NOTICE, APLOG_WARNING};
use websocket_channels::broker::{BrokerConfig, Level, Log};
use websocket_channels::bus::Bus;
use websocket_channels::registry::{Delivery, Member, Subscriber};
use websocket_channels::ring::{words_for, Ring};
use websocket_channels::{ChannelName, Kind};
use websocket_plugin::ffi::{WebSocketServer, MESSAGE_TYPE_BINARY, MESSAGE_TYPE_TEXT};
use websocket_proto::Opcode;

use crate::config::DirConfig;
use crate::connection::ConnState;
use crate::outbox::{Offered, Outbox};

/// `WebSocketChannelBuffer` by default.
pub const DEFAULT_BUFFER: u64 = 16 << 20;
const MIN_BUFFER: u64 = 64 << 10;
const MAX_BUFFER: u64 = 1 << 30;

/// What the directives of the configuration being read said; reset before
/// each read (pre_config), taken by post_config.
#[derive(Default, Clone)]
struct Settings {
    broker: Option<BrokerConfig>,
    buffer: Option<u64>,
}

static READING: Mutex<Option<Settings>> = Mutex::new(None);

/// What a child builds its bus from: set by the parent's post_config,
/// inherited by the children it forks.
struct Setup {
    words: &'static [AtomicU64],
    broker: Option<BrokerConfig>,
    log: Log,
}

static SETUP: Mutex<Option<Setup>> = Mutex::new(None);
static BUS: OnceLock<Option<Bus>> = OnceLock::new();

fn reading() -> std::sync::MutexGuard<'static, Option<Settings>> {
    READING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Before a configuration is read: forget what the last one said.
pub fn reset() {
    *reading() = Some(Settings::default());
}

/// `WebSocketBroker redis://host[:port][/db] [prefix]`.
pub fn set_broker(
    cmd: &Cmd<'_>,
    _conf: &mut DirConfig,
    url: &str,
    prefix: Option<&str>,
) -> Result<(), String> {
    if cmd.in_virtual_host() {
        return Err("belongs in the main server configuration (one broker serves every virtual host)".into());
    }
    let broker = BrokerConfig::new(url, prefix)?;
    reading().get_or_insert_with(Settings::default).broker = Some(broker);
    Ok(())
}

/// `WebSocketChannelBuffer <size>`.
pub fn set_buffer(cmd: &Cmd<'_>, _conf: &mut DirConfig, v: &str) -> Result<(), String> {
    if cmd.in_virtual_host() {
        return Err("belongs in the main server configuration (every child shares one buffer)".into());
    }
    let size = crate::config::parse_size(v)
        .filter(|n| (MIN_BUFFER..=MAX_BUFFER).contains(n))
        .ok_or_else(|| format!("invalid size '{v}' (expected 64K to 1G, with K, M or G)"))?;
    reading().get_or_insert_with(Settings::default).buffer = Some(size);
    Ok(())
}

/// The ring's key in the process pool: one per size, so that a restart
/// with another `WebSocketChannelBuffer` gets a ring of that size.
fn ring_key(bytes: u64) -> &'static std::ffi::CStr {
    static KEYS: Mutex<Vec<(u64, &'static std::ffi::CStr)>> = Mutex::new(Vec::new());
    let mut keys = KEYS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, k)) = keys.iter().find(|(b, _)| *b == bytes) {
        return k;
    }
    let key: &'static std::ffi::CStr = Box::leak(
        std::ffi::CString::new(format!("mod_websocket channel ring {bytes}"))
            .unwrap_or_default()
            .into_boxed_c_str(),
    );
    keys.push((bytes, key));
    key
}

/// post_config, in the parent: the ring every child will share, and the
/// broker they will use. Returns a line for the error log.
pub fn install(server: Option<Server<'_>>, log: Log) -> Result<String, String> {
    let settings = reading().take().unwrap_or_default();
    let bytes = settings.buffer.unwrap_or(DEFAULT_BUFFER);
    let len = words_for(bytes as usize);
    let shared = server.and_then(|s| httpd::shm::process_counters(s, ring_key(bytes), len));
    let (words, warning) = match shared {
        Some(words) => (words, None),
        None => {
            // One process still gets its channels.
            let words: Vec<AtomicU64> = (0..len).map(|_| AtomicU64::new(0)).collect();
            (
                &*Vec::leak(words),
                Some("no shared memory for channels: publishes reach only the subscribers of the child process that publishes".to_owned()),
            )
        }
    };
    let line = match &settings.broker {
        Some(b) => format!(
            "channels: {} KiB buffer shared by the children, broker {}",
            bytes >> 10,
            b.shown()
        ),
        None => format!(
            "channels: {} KiB buffer shared by the children, no broker",
            bytes >> 10
        ),
    };
    *SETUP.lock().unwrap_or_else(PoisonError::into_inner) = Some(Setup {
        words,
        broker: settings.broker,
        log,
    });
    match warning {
        Some(w) => Err(w),
        None => Ok(line),
    }
}

/// Where the bus's threads log: the error log, for no server in
/// particular (the main one's, in a child).
pub fn error_log(module_index: c_int) -> Log {
    Arc::new(move |level: Level, msg: &str| {
        let level = match level {
            Level::Error => APLOG_ERR,
            Level::Warning => APLOG_WARNING,
            Level::Notice => APLOG_NOTICE,
            Level::Debug => APLOG_DEBUG,
        };
        httpd::log::startup(module_index, level as c_int, httpd::here!(), msg);
    })
}

/// This process's bus, built on first use; `None` before post_config ran
/// (a server without the module's configuration hooks).
pub fn bus() -> Option<&'static Bus> {
    BUS.get_or_init(|| {
        let setup = SETUP.lock().unwrap_or_else(PoisonError::into_inner);
        let setup = setup.as_ref()?;
        let ring = Ring::new(setup.words)?;
        Some(Bus::new(ring, setup.broker.clone(), setup.log.clone()))
    })
    .as_ref()
}

/// At the child's exit: stop the bus's threads before the module goes.
pub fn stop() {
    if let Some(Some(bus)) = BUS.get() {
        bus.stop();
    }
}

/// A connection's queue as a subscriber.
pub struct Inbox(pub Arc<Outbox>);

impl Subscriber for Inbox {
    fn deliver(&self, kind: Kind, payload: &[u8]) -> Delivery {
        let opcode = match kind {
            Kind::Text => Opcode::Text,
            Kind::Binary => Opcode::Binary,
        };
        match self.0.offer(opcode, payload) {
            Offered::Queued | Offered::Unsupported => Delivery::Queued,
            Offered::Gone => Delivery::Gone,
        }
    }
}

/// A connection leaves every channel (its end, or a refused handshake).
pub fn leave(state: &ConnState) {
    if let (Some(member), Some(bus)) = (state.member.get(), bus()) {
        bus.leave(member);
    }
}

fn member(state: &ConnState) -> &Member {
    state
        .member
        .get_or_init(|| Member::new(Arc::new(Inbox(state.outbox.clone()))))
}

/// # Safety
/// `channel` is NULL or `size` readable bytes.
unsafe fn channel_arg(channel: *const c_char, size: usize) -> Option<ChannelName> {
    if channel.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    let bytes = unsafe { std::slice::from_raw_parts(channel.cast::<u8>(), size) };
    ChannelName::new(bytes).ok()
}

/// The ABI's `subscribe`.
///
/// # Safety
/// `state` is the live connection's; `channel` as for [`channel_arg`].
pub unsafe fn subscribe(state: &ConnState, channel: *const c_char, size: usize) -> c_int {
    // SAFETY: per the contract.
    let (Some(name), Some(bus)) = (unsafe { channel_arg(channel, size) }, bus()) else {
        return 0;
    };
    if state.outbox.is_closed() {
        return 0;
    }
    c_int::from(bus.subscribe(member(state), &name).is_ok())
}

/// The ABI's `unsubscribe`.
///
/// # Safety
/// As for [`subscribe`].
pub unsafe fn unsubscribe(state: &ConnState, channel: *const c_char, size: usize) -> c_int {
    // SAFETY: per the contract.
    let (Some(name), Some(bus), Some(member)) =
        (unsafe { channel_arg(channel, size) }, bus(), state.member.get())
    else {
        return 0;
    };
    c_int::from(bus.unsubscribe(member, &name))
}

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    NoChannels,
    InvalidText,
    TooLarge { max: usize },
}

/// Publishes a message; the text is checked here.
pub fn publish(name: &ChannelName, kind: Kind, payload: &[u8]) -> Result<(), PublishError> {
    let bus = bus().ok_or(PublishError::NoChannels)?;
    if kind == Kind::Text && websocket_proto::utf8::validate(payload).is_err() {
        return Err(PublishError::InvalidText);
    }
    bus.publish(name, kind, payload)
        .map_err(|e| PublishError::TooLarge { max: e.max })
}

/// The ABI's `publish` (the server may be NULL: only the channel matters).
///
/// # Safety
/// `channel` and `buffer` are NULL or readable for their sizes.
pub unsafe extern "system" fn publish_abi(
    _server: *const WebSocketServer,
    channel: *const c_char,
    channel_size: usize,
    message_type: c_int,
    buffer: *const u8,
    buffer_size: usize,
) -> c_int {
    // SAFETY: per the contract.
    let Some(name) = (unsafe { channel_arg(channel, channel_size) }) else {
        return 0;
    };
    let payload: &[u8] = match (buffer.is_null(), buffer_size) {
        (_, 0) => &[],
        (true, _) => return 0,
        // SAFETY: per the contract.
        (false, n) => unsafe { std::slice::from_raw_parts(buffer, n) },
    };
    let kind = match message_type {
        MESSAGE_TYPE_TEXT => Kind::Text,
        MESSAGE_TYPE_BINARY => Kind::Binary,
        _ => return 0,
    };
    c_int::from(publish(&name, kind, payload).is_ok())
}
