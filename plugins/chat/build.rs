//! Link settings of the plugin's cdylib: see `websocket_plugin::build`.

fn main() {
    websocket_plugin::build::export_init_functions(&["chat_init"]);
}
