//! The C apache-websocket module, for side-by-side runs: used as built, or
//! built here with apxs from a checkout the user points at. Nothing of its
//! source lives in this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{run, target_dir};

/// The module and the echo plugin from its `examples/`.
pub struct Build {
    pub module: PathBuf,
    pub echo_plugin: PathBuf,
}

const MODULE: &str = "mod_websocket.so";
const ECHO: &str = "mod_websocket_echo.so";
const MODULE_SRC: &str = "mod_websocket.c";
const ECHO_SRC: &str = "examples/mod_websocket_echo.c";

/// Finds the built module and plugin under `dir` (in it, `build/`, or where
/// apxs leaves them), or builds them from the sources there into
/// `target/bench/c-module/`.
pub fn locate_or_build(dir: &Path) -> Result<Build, String> {
    if let Some(found) = locate(dir) {
        return Ok(found);
    }
    if !dir.join(MODULE_SRC).is_file() || !dir.join(ECHO_SRC).is_file() {
        return Err(format!(
            "--c-module {}: found neither the built {MODULE} and {ECHO} (in it, build/, .libs/ or \
             examples/.libs/) nor the C module's sources ({MODULE_SRC}, {ECHO_SRC})",
            dir.display()
        ));
    }
    build(dir)
}

fn locate(dir: &Path) -> Option<Build> {
    let places = [
        dir.to_path_buf(),
        dir.join("build"),
        dir.join(".libs"),
        dir.join("examples").join(".libs"),
    ];
    let find = |name: &str| places.iter().map(|d| d.join(name)).find(|p| p.is_file());
    Some(Build {
        module: find(MODULE)?,
        echo_plugin: find(ECHO)?,
    })
}

/// Copies the sources (apxs writes its objects beside them, and the checkout
/// stays as it was) and compiles both with optimisation.
fn build(dir: &Path) -> Result<Build, String> {
    let out = target_dir().join("bench").join("c-module");
    let src = out.join("src");
    let _ = std::fs::remove_dir_all(&src);
    for sub in [Path::new(""), Path::new("examples")] {
        let to = src.join(sub);
        std::fs::create_dir_all(&to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
        let from = dir.join(sub);
        let entries = std::fs::read_dir(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_source = path.extension().is_some_and(|x| x == "c" || x == "h");
            if is_source && path.is_file() {
                std::fs::copy(&path, to.join(entry.file_name()))
                    .map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
            }
        }
    }
    let apxs = ["apxs2", "apxs"]
        .into_iter()
        .find(|a| {
            Command::new(a)
                .arg("-q")
                .arg("CC")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or("building the C module needs apxs (Debian: apt-get install apache2-dev)")?;
    let include = format!("-I{}", src.display());
    for (cwd, file) in [
        (src.clone(), MODULE_SRC),
        (src.join("examples"), "mod_websocket_echo.c"),
    ] {
        let file = Path::new(file).file_name().expect("a file name");
        run(Command::new(apxs)
            .current_dir(&cwd)
            .args(["-c", "-Wc,-O2", &include])
            .arg(file))?;
    }
    for (from, name) in [
        (src.join(".libs"), MODULE),
        (src.join("examples").join(".libs"), ECHO),
    ] {
        std::fs::copy(from.join(name), out.join(name))
            .map_err(|e| format!("apxs did not produce {}: {e}", from.join(name).display()))?;
    }
    eprintln!("xtask: built the C module into {}", out.display());
    Ok(Build {
        module: out.join(MODULE),
        echo_plugin: out.join(ECHO),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_modules_are_found_where_apxs_leaves_them() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join(".libs")).unwrap();
        std::fs::create_dir_all(d.join("examples/.libs")).unwrap();
        std::fs::write(d.join(".libs").join(MODULE), "").unwrap();
        assert!(locate(d).is_none(), "the plugin is missing");
        std::fs::write(d.join("examples/.libs").join(ECHO), "").unwrap();
        let found = locate(d).unwrap();
        assert_eq!(found.module, d.join(".libs").join(MODULE));
        assert_eq!(found.echo_plugin, d.join("examples/.libs").join(ECHO));
    }

    #[test]
    fn a_directory_without_modules_or_sources_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let err = locate_or_build(tmp.path()).err().unwrap();
        assert!(err.contains(&tmp.path().display().to_string()), "{err}");
        assert!(err.contains(MODULE_SRC) && err.contains(MODULE), "{err}");
    }
}
