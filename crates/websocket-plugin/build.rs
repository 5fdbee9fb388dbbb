//! The C layout and loader tests compile C with the `cc` crate, which needs the target and
//! host triples that only build scripts are told.
fn main() {
    for var in ["TARGET", "HOST"] {
        if let Ok(value) = std::env::var(var) {
            println!("cargo:rustc-env=WEBSOCKET_PLUGIN_BUILD_{var}={value}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
