//! Channel names: 1 to 128 bytes of URI-unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`), so that a name is a path segment as it stands
//! (`/chat/<room>`, `POST /publish/<channel>`), a Redis channel suffix, and
//! a log field, with nothing to escape anywhere.

use std::fmt;

/// The longest channel name.
pub const MAX_LEN: usize = 128;

/// A valid channel name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Box<str>);

/// Why a name is not a channel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidName {
    Empty,
    TooLong,
    /// The first byte that may not appear in a name.
    Byte(u8),
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidName::Empty => f.write_str("the channel name is empty"),
            InvalidName::TooLong => write!(f, "the channel name is longer than {MAX_LEN} bytes"),
            InvalidName::Byte(b) => write!(
                f,
                "the channel name contains {:?} (allowed: A-Z a-z 0-9 - . _ ~)",
                char::from(*b)
            ),
        }
    }
}

impl std::error::Error for InvalidName {}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

impl ChannelName {
    pub fn new(bytes: &[u8]) -> Result<ChannelName, InvalidName> {
        if bytes.is_empty() {
            return Err(InvalidName::Empty);
        }
        if bytes.len() > MAX_LEN {
            return Err(InvalidName::TooLong);
        }
        if let Some(&b) = bytes.iter().find(|&&b| !allowed(b)) {
            return Err(InvalidName::Byte(b));
        }
        // Only ASCII passed the check.
        let text = std::str::from_utf8(bytes).map_err(|_| InvalidName::Byte(bytes[0]))?;
        Ok(ChannelName(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["lobby", "a", "Room-1.b_c~d", &"x".repeat(MAX_LEN)] {
            assert_eq!(ChannelName::new(ok.as_bytes()).unwrap().as_str(), ok);
        }
        assert_eq!(ChannelName::new(b""), Err(InvalidName::Empty));
        assert_eq!(
            ChannelName::new("x".repeat(MAX_LEN + 1).as_bytes()),
            Err(InvalidName::TooLong)
        );
        for (bad, byte) in [
            ("a/b", b'/'),
            ("a b", b' '),
            ("caf\u{e9}", 0xC3),
            ("a:b", b':'),
            ("%41", b'%'),
        ] {
            assert_eq!(
                ChannelName::new(bad.as_bytes()),
                Err(InvalidName::Byte(byte)),
                "{bad}"
            );
        }
        assert_eq!(ChannelName::new(b"a\0").unwrap_err(), InvalidName::Byte(0));
    }
}
