//! mod_websocket_draft76: the pre-RFC WebSocket protocol (draft-hixie-76,
//! and draft-75 behind `SupportDraft75 On`) for old clients, with the same
//! plugins and `<Location>` configuration as mod_websocket.
//!
//! Load it next to mod_websocket; each answers its own handshakes on the
//! same location. Removing its `LoadModule` line drops legacy support.

use httpd::config::{Cmd, Command};
use websocket_engine::config::{DirConfig, HERE_OR_HTACCESS};

mod handler;

// The shared directives (Apache gives each of them to mod_websocket too,
// when it is loaded) plus our own switch for draft-75.
websocket_engine::declare_module!(
    websocket_draft76_module,
    c"mod_websocket_draft76.c",
    handler::handle,
    [Command::flag(
        c"SupportDraft75",
        set_support_draft75,
        HERE_OR_HTACCESS,
        c"On to also accept draft-75 handshakes (no keys); default Off",
    )]
);

fn set_support_draft75(_: &Cmd<'_>, conf: &mut DirConfig, on: bool) -> Result<(), String> {
    conf.support_draft75 = Some(on);
    Ok(())
}
