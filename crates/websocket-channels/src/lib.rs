//! Channels: a message published to a channel goes to every WebSocket
//! subscribed to it, in every child process of this Apache and, with a
//! broker, on every Apache that shares it. Nothing here knows Apache.
//!
//! - [`name`]: what a channel may be called.
//! - [`registry`]: which connections of this process subscribed to what,
//!   and delivery to them (never waiting for one).
//! - [`ring`]: the embedded bus, a ring of records in memory every child
//!   process shares, which each process with subscribers follows.
//! - [`broker`]: the Redis bridge between servers.
//! - [`bus`]: all of it for one process.
//! - [`Kind`]: text or binary, as published.

pub mod broker;
pub mod bus;
pub mod name;
pub mod registry;
pub mod ring;
mod wait;

pub use name::ChannelName;

/// The type of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Binary,
}

impl Kind {
    fn to_byte(self) -> u8 {
        match self {
            Kind::Text => 1,
            Kind::Binary => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Text),
            2 => Some(Kind::Binary),
            _ => None,
        }
    }
}
