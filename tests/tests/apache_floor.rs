//! The modules load into every httpd 2.4 and refuse to start in one older
//! than they need with a message naming the versions (their pre_config
//! hook, see crates/httpd/src/version.rs), rather than failing `LoadModule`
//! with "undefined symbol". That holds only while the staged `.so` files
//! import nothing that httpd 2.4.0 lacked: the newer functions are looked
//! up at run time instead. This test reads the imports with `nm -D`.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

use integration_tests::stage;

/// Functions newer than httpd 2.4.0 that the modules use or might: each
/// must be called through `httpd::version`'s run-time lookup. With the
/// first release whose headers have it.
const TOO_NEW: &[(&str, &str)] = &[
    ("ap_get_pollfd_from_conn", "2.4.58"),
    ("ap_remove_input_filter_byhandle", "2.4.5"),
    ("ap_remove_output_filter_byhandle", "2.4.5"),
    ("ap_ssl_conn_is_ssl", "2.4.48"),
    ("ap_thread_current", "2.4.53"),
];

/// The undefined dynamic symbols of `so`, without version suffixes.
fn imports(so: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(so)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nm (binutils): {e}"));
    assert!(
        out.status.success(),
        "nm -D {}: {}",
        so.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .collect()
}

/// The httpd functions that the installed ap_mmn.h says came after 2.4.0:
/// every `ap_`/`apr_` name in its 2.4 entries (MMN 20120211.N). Empty
/// without the development headers.
fn named_in_the_2_4_mmn_bumps() -> Vec<String> {
    let include = Command::new("apxs")
        .args(["-q", "INCLUDEDIR"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "/usr/include/apache2".into());
    let Ok(text) = std::fs::read_to_string(Path::new(&include).join("ap_mmn.h")) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut in_2_4 = false;
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '*']);
        if line.starts_with("20") {
            in_2_4 = line.starts_with("20120211.") && !line.starts_with("20120211.0 ");
        }
        if in_2_4 && line.starts_with('/') {
            // The end of the comment that lists the bumps.
            break;
        }
        if !in_2_4 {
            continue;
        }
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("ap_") || word.starts_with("apr_") {
                names.push(word.to_string());
            }
        }
    }
    names
}

#[test]
fn modules_import_nothing_newer_than_httpd_2_4_0() {
    let harvested = named_in_the_2_4_mmn_bumps();
    let modules = stage().dir.join("modules");
    let mut checked = 0;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&modules).unwrap_or_else(|e| panic!("{}: {e}", modules.display())) {
        let so = entry.unwrap().path();
        if so.extension().is_none_or(|e| e != "so") {
            continue;
        }
        checked += 1;
        for symbol in imports(&so) {
            if let Some((_, version)) = TOO_NEW.iter().find(|(name, _)| *name == symbol) {
                found.push(format!("{}: {symbol} (httpd {version})", so.display()));
            } else if harvested.contains(&symbol) {
                found.push(format!(
                    "{}: {symbol} (named in a 2.4.x entry of ap_mmn.h)",
                    so.display()
                ));
            }
        }
    }
    assert!(checked >= 2, "no modules in {}", modules.display());
    if Path::new("/usr/include/apache2/ap_mmn.h").exists() {
        assert!(
            harvested.iter().any(|n| n == "ap_get_pollfd_from_conn"),
            "ap_mmn.h was not read as expected: {harvested:?}"
        );
    }
    assert!(
        found.is_empty(),
        "imports newer than httpd 2.4.0 (call them through httpd::version's run-time \
         lookup instead; a name that ap_mmn.h only mentions but that 2.4.0 had may be \
         allowed here):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_itself_sees_the_imports() {
    // A module's imports include what every module needs, so an empty list
    // (nm failing quietly) cannot pass the test above.
    let imported = imports(&stage().module());
    assert!(
        imported.iter().any(|s| s == "ap_get_server_revision"),
        "{imported:?}"
    );
    assert!(
        imported.iter().any(|s| s == "apr_pool_cleanup_register"),
        "{imported:?}"
    );
}
