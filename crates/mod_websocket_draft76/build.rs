//! Link settings of the module's cdylib.
//!
//! On macOS the module calls httpd's and APR's functions (`ap_*`, `apr_*`)
//! without linking any library that defines them: httpd provides them when
//! it loads the module, so the linker must leave them for the dynamic loader
//! (`-undefined dynamic_lookup`). Linux needs nothing (undefined symbols
//! are allowed in shared objects); Windows links the ApacheLounge import
//! libraries, which httpd-sys's build script adds.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
}
