//! For plugin crates' build scripts.
//!
//! `export_plugin!` declares the init function `extern "system"`: on 32-bit
//! Windows that is `__stdcall`, whose symbol is decorated (`_name@0`), while
//! x64 and every other target export the plain name. So that configurations
//! written either way load, a 32-bit MSVC build exports both spellings
//! through a module-definition (.def) file (mod_websocket's loader also tries
//! both when it looks one up).

/// Call from a plugin's `build.rs` (its `main`) with the init functions it
/// exports, e.g. `websocket_plugin::build::export_init_functions(&["echo_init"]);`.
pub fn export_init_functions(init_functions: &[&str]) {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "windows"
        && var("CARGO_CFG_TARGET_ARCH") == "x86"
        && var("CARGO_CFG_TARGET_ENV") == "msvc"
    {
        let def = std::path::Path::new(&var("OUT_DIR")).join("exports.def");
        std::fs::write(&def, crate::windows_def_file(init_functions))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", def.display()));
        println!("cargo:rustc-cdylib-link-arg=/DEF:{}", def.display());
    }
}
