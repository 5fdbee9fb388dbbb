//! The apache-websocket plugin ABI and a safe way to write plugins in Rust.
//!
//! - [`ffi`]: `WebSocketPlugin` (version 0) and `WebSocketServer` (version 1), laid out
//!   exactly as `include/websocket_plugin.h`, which is a drop-in replacement for the
//!   original C module's header.
//! - [`Plugin`], [`Connection`], [`Message`], [`Sender`] and [`export_plugin!`]: write a
//!   plugin without touching raw pointers.
//! - [`LoadedPlugin`]: the module side, loading and validating a plugin library.
//!
//! ```
//! use websocket_plugin::{Connection, Message, Plugin, Sender};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     type Session = ();
//!     fn on_connect(&self, _conn: &Connection<'_>) -> Option<()> {
//!         Some(())
//!     }
//!     fn on_message(&self, _session: &mut (), msg: Message<'_>, sender: &Sender) {
//!         let _ = sender.send(msg);
//!     }
//! }
//!
//! websocket_plugin::export_plugin!(echo_init, Echo);
//! ```

mod api;
pub mod build;
mod export;
pub mod ffi;
mod loader;
#[cfg(feature = "testing")]
pub mod testing;

pub use api::{
    ChannelError, ClientInfo, CloseCode, Connection, InvalidString, Message, Plugin, Protocols, Publisher,
    SendError, Sender, MAX_CLOSE_REASON,
};
pub use loader::{init_symbol_candidates, windows_def_file, LoadError, LoadedPlugin, Refused};

/// Used by [`export_plugin!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{init, HasSlot, InstanceSlot};
}
