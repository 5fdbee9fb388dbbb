//! `cargo xtask package msi`: the Windows installer defined in
//! `windows/mod_websocket.wxs`.
//!
//! On Windows it is built with cargo-wix (WiX Toolset 3) from the stage of a
//! Windows build: `target/wix/mod_websocket-<version>-<arch>.msi`.
//!
//! On Linux the same definition, without its UI, is built with `wixl` from
//! Debian's msitools, so that its structure is tested in CI. That MSI holds
//! the Linux stage's files under their Windows names: it is a layout check,
//! named `target/wix/mod_websocket-<version>-layout-check.msi`, never a
//! release artifact. The check reads its File, Component and Directory
//! tables back with `msiinfo`, resolves every file's install path and
//! extracts the configuration snippet to check its `${SRVROOT}` paths.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{copy_file, no_options, output_bounded, run_ok};
use crate::stage::{build, Stage};
use crate::util::{cargo, root, run, target_dir};

/// Every file the installer must put into the Apache24 folder.
pub const EXPECTED: &[&str] = &[
    "Apache24/modules/mod_websocket.so",
    "Apache24/modules/mod_websocket_draft76.so",
    "Apache24/modules/mod_websocket_echo.so",
    "Apache24/modules/mod_websocket_dumb_increment.so",
    "Apache24/conf/extra/httpd-websocket.conf",
    "Apache24/conf/extra/httpd-websocket-examples.conf",
    "Apache24/include/websocket_plugin.h",
    "Apache24/htdocs/websocket-examples/index.html",
    "Apache24/htdocs/websocket-examples/client.html",
    "Apache24/htdocs/websocket-examples/increment.html",
    "Apache24/mod_websocket/README.md",
    "Apache24/mod_websocket/README-windows.md",
];

/// The preprocessor variables the .wxs needs (wixl has no `ifdef`, so all
/// are always given).
fn defines(
    stage_dir: String,
    doc_dir: String,
    arch: &str,
    layout_check: bool,
) -> [(&'static str, String); 5] {
    [
        ("StageDir", stage_dir),
        ("DocDir", doc_dir),
        ("ProductVersion", env!("CARGO_PKG_VERSION").to_owned()),
        ("ProductArch", arch.to_owned()),
        ("LayoutCheck", if layout_check { "yes" } else { "no" }.to_owned()),
    ]
}

pub fn cmd_package_msi(args: &[String]) -> Result<(), String> {
    no_options(args)?;
    let stage = build(true)?;
    let msi = if cfg!(windows) {
        cargo_wix(&stage)?
    } else {
        layout_check(&stage)?
    };
    eprintln!("xtask: built {}", msi.display());
    Ok(())
}

fn wix_dir() -> PathBuf {
    target_dir().join("wix")
}

/// README.md, windows/README-windows.md and windows/License.rtf in one folder.
fn prepare_docs() -> Result<PathBuf, String> {
    let doc = wix_dir().join("doc");
    copy_file(&root().join("README.md"), &doc.join("README.md"))?;
    for name in ["README-windows.md", "License.rtf"] {
        copy_file(&root().join("windows").join(name), &doc.join(name))?;
    }
    Ok(doc)
}

/// The Windows build: cargo-wix on the stage of this (Windows) machine.
fn cargo_wix(stage: &Stage) -> Result<PathBuf, String> {
    let works = cargo()
        .args(["wix", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !works {
        eprintln!("xtask: cargo-wix is not installed; installing it (cargo install cargo-wix --locked)");
        run(cargo().args(["install", "cargo-wix", "--locked"]))?;
    }
    let doc = prepare_docs()?;
    let arch = if cfg!(target_arch = "x86") { "x86" } else { "x64" };
    let version = env!("CARGO_PKG_VERSION");
    let msi = wix_dir().join(format!("mod_websocket-{version}-{arch}.msi"));
    let mut cmd = cargo();
    cmd.args([
        "wix",
        "--no-build",
        "--nocapture",
        "--package",
        "mod_websocket",
        "--include",
    ])
    .arg(root().join("windows").join("mod_websocket.wxs"));
    for (name, value) in defines(
        stage.dir.display().to_string(),
        doc.display().to_string(),
        arch,
        false,
    ) {
        cmd.arg("--compiler-arg").arg(format!("-d{name}={value}"));
    }
    cmd.arg("--output").arg(&msi);
    run(&mut cmd)?;
    Ok(msi)
}

/// Builds the installer with wixl (no UI) and checks its tables; returns the
/// .msi path.
pub fn layout_check(stage: &Stage) -> Result<PathBuf, String> {
    crate::deps::ensure(&[&["wixl", "msitools"]])?;
    let doc = prepare_docs()?;
    let base = target_dir();
    // wixl takes Source paths relative to its working directory only.
    let rel = |p: &Path| -> Result<String, String> {
        p.strip_prefix(&base)
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .map_err(|_| format!("{} is not under {}", p.display(), base.display()))
    };
    let version = env!("CARGO_PKG_VERSION");
    let msi = wix_dir().join(format!("mod_websocket-{version}-layout-check.msi"));
    let mut cmd = Command::new("wixl");
    cmd.current_dir(&base).args(["-a", "x64", "-o"]).arg(&msi);
    for (name, value) in defines(rel(&stage.dir)?, rel(&doc)?, "x64", true) {
        cmd.arg("-D").arg(format!("{name}={value}"));
    }
    cmd.arg(root().join("windows").join("mod_websocket.wxs"));
    run_ok(&mut cmd, Duration::from_secs(300))?;
    fs::write(
        wix_dir().join("LAYOUT-CHECK.txt"),
        "mod_websocket-*-layout-check.msi is built on Linux by `cargo xtask package msi` with\n\
         msitools' wixl from windows/mod_websocket.wxs, to test the installer's structure.\n\
         Its \"modules\" are the Linux build's files under their Windows names: it is not an\n\
         installer for Windows. Build that on Windows with `cargo xtask package msi` (cargo-wix).\n",
    )
    .map_err(|e| e.to_string())?;

    let paths = installed_paths(&msi)?;
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|want| !paths.iter().any(|p| p == want))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} lacks {}; it installs: {}",
            msi.display(),
            missing.join(", "),
            paths.join(", ")
        ));
    }
    let apache24 = check_extracted_conf(&msi)?;
    configtest_extracted(&apache24)?;
    eprintln!(
        "xtask: MSI layout check passed: {} files, including modules\\mod_websocket.so and \
         conf\\extra\\httpd-websocket.conf with ${{SRVROOT}} paths",
        paths.len()
    );
    Ok(msi)
}

fn export(msi: &Path, table: &str) -> Result<String, String> {
    let (status, text) = output_bounded(
        Command::new("msiinfo").arg("export").arg(msi).arg(table),
        Duration::from_secs(60),
    )?;
    if status.success() {
        Ok(text)
    } else {
        Err(format!("msiinfo export {} {table} failed: {text}", msi.display()))
    }
}

/// Every file's install path (`Apache24/modules/mod_websocket.so`), from the
/// File, Component and Directory tables.
fn installed_paths(msi: &Path) -> Result<Vec<String>, String> {
    resolve_paths(
        &export(msi, "File")?,
        &export(msi, "Component")?,
        &export(msi, "Directory")?,
    )
}

/// The rows of an `msiinfo export` table: three header lines (column names,
/// column types, table name and keys), then tab-separated rows.
pub fn table_rows(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .skip(3)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect()
}

/// The long name of a `short|long` MSI name (or the name itself).
fn long_name(name: &str) -> &str {
    name.rsplit('|').next().unwrap_or(name)
}

pub fn resolve_paths(files: &str, components: &str, directories: &str) -> Result<Vec<String>, String> {
    let dirs: HashMap<&str, (&str, &str)> = table_rows(directories)
        .into_iter()
        .filter(|r| r.len() >= 3)
        .map(|r| (r[0], (r[1], r[2])))
        .collect();
    let component_dir: HashMap<&str, &str> = table_rows(components)
        .into_iter()
        .filter(|r| r.len() >= 3)
        .map(|r| (r[0], r[2]))
        .collect();
    let mut out = Vec::new();
    for row in table_rows(files) {
        if row.len() < 3 {
            continue;
        }
        let dir = component_dir
            .get(row[1])
            .ok_or_else(|| format!("file {} has no component {}", row[0], row[1]))?;
        let mut parts = dir_path(&dirs, dir)?;
        parts.push(long_name(row[2]).to_owned());
        out.push(parts.join("/"));
    }
    Ok(out)
}

/// The folder names from the root down to directory `id`.
fn dir_path<'a>(dirs: &HashMap<&'a str, (&'a str, &'a str)>, mut id: &'a str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    for _ in 0..64 {
        let (parent, default) = dirs.get(id).ok_or_else(|| format!("no directory {id}"))?;
        // DefaultDir may be "target:source"; the target part counts.
        let name = long_name(default.split(':').next().unwrap_or(default));
        if parent.is_empty() || *parent == id {
            // The root (TARGETDIR, "SourceDir") is the install volume.
            parts.reverse();
            return Ok(parts);
        }
        if name != "." {
            parts.push(name.to_owned());
        }
        id = parent;
    }
    Err(format!("directory loop at {id}"))
}

/// Extracts the MSI and checks the snippet that will be in conf\extra;
/// returns the extracted Apache24 folder.
fn check_extracted_conf(msi: &Path) -> Result<PathBuf, String> {
    let dir = wix_dir().join("extracted");
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    }
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    run_ok(
        Command::new("msiextract").arg("-C").arg(&dir).arg(msi),
        Duration::from_secs(120),
    )?;
    let conf = find_file(&dir, "httpd-websocket.conf")
        .ok_or_else(|| format!("msiextract put no httpd-websocket.conf under {}", dir.display()))?;
    let text = fs::read_to_string(&conf).map_err(|e| e.to_string())?;
    let want = "LoadModule websocket_module \"${SRVROOT}/modules/mod_websocket.so\"";
    if !text.lines().any(|l| l.trim() == want) {
        return Err(format!("{} has no line {want:?}:\n{text}", conf.display()));
    }
    Ok(dir.join("Apache24"))
}

/// The extracted tree is an Apache24 folder whose "modules" are this
/// machine's builds, so this machine's httpd can check the two snippets as
/// an ApacheLounge httpd.conf would include them: `${SRVROOT}` paths, the
/// plugins' init functions, the examples' Alias and Directory.
fn configtest_extracted(apache24: &Path) -> Result<(), String> {
    let httpd = Path::new("/usr/sbin/apache2");
    let system_modules = Path::new("/usr/lib/apache2/modules");
    if !httpd.is_file() || !system_modules.is_dir() {
        eprintln!("xtask: no Debian apache2 here; the MSI's snippets were not run through configtest");
        return Ok(());
    }
    let conf = wix_dir().join("configtest.conf");
    let mut text = format!(
        "# Like ApacheLounge's conf/httpd.conf, reduced to what the snippets need.\n\
         Define SRVROOT \"{}\"\nServerRoot \"${{SRVROOT}}\"\nServerName localhost\nListen 127.0.0.1:8080\n\
         PidFile \"{}\"\nErrorLog \"{}\"\n",
        apache24.display(),
        wix_dir().join("configtest.pid").display(),
        wix_dir().join("configtest-error.log").display(),
    );
    for (name, file) in [
        ("mpm_event_module", "mod_mpm_event.so"),
        ("authz_core_module", "mod_authz_core.so"),
        ("alias_module", "mod_alias.so"),
    ] {
        text.push_str(&format!(
            "LoadModule {name} {}\n",
            system_modules.join(file).display()
        ));
    }
    text.push_str(
        "Include conf/extra/httpd-websocket.conf\nInclude conf/extra/httpd-websocket-examples.conf\n",
    );
    fs::write(&conf, text).map_err(|e| e.to_string())?;
    let (status, out) = output_bounded(
        Command::new(httpd).arg("-t").arg("-f").arg(&conf),
        Duration::from_secs(60),
    )?;
    if !status.success() {
        return Err(format!(
            "httpd -t on the MSI's snippets ({}) failed:\n{out}",
            conf.display()
        ));
    }
    eprintln!("xtask: the MSI's conf\\extra snippets pass httpd -t with SRVROOT at the extracted tree");
    Ok(())
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &str = "File\tComponent_\tFileName\tFileSize\tVersion\tLanguage\tAttributes\tSequence\n\
        s72\ts72\tl255\ti4\tS72\tS20\tI2\ti4\n\
        File\tFile\n\
        mod_websocket.so\tModWebsocket\tMOD_WE~1.SO|mod_websocket.so\t100\t\t\t512\t1\n\
        httpd_websocket.conf\tConfSnippet\thttpd-websocket.conf\t5\t\t\t512\t2\n\
        client.html\tPages\tclient.html\t5\t\t\t512\t3\n";
    const COMPONENTS: &str = "Component\tComponentId\tDirectory_\tAttributes\tCondition\tKeyPath\n\
        s72\tS38\ts72\ti2\tS255\tS72\n\
        Component\tComponent\n\
        ModWebsocket\t{X}\tMODULESDIR\t256\t\tmod_websocket.so\n\
        ConfSnippet\t{Y}\tEXTRADIR\t256\t\thttpd_websocket.conf\n\
        Pages\t{Z}\tEXAMPLESDIR\t256\t\tclient.html\n";
    const DIRECTORIES: &str = "Directory\tDirectory_Parent\tDefaultDir\n\
        s72\tS72\tl255\n\
        Directory\tDirectory\n\
        APACHEROOT\tTARGETDIR\tAPACHE~1|Apache24\n\
        MODULESDIR\tAPACHEROOT\tmodules\n\
        EXTRADIR\tCONFDIR\textra\n\
        CONFDIR\tAPACHEROOT\tconf\n\
        HTDOCSDIR\tAPACHEROOT\thtdocs:.\n\
        EXAMPLESDIR\tHTDOCSDIR\twebsocket-examples\n\
        TARGETDIR\t\tSourceDir\n";

    #[test]
    fn resolves_install_paths_from_the_tables() {
        let paths = resolve_paths(FILES, COMPONENTS, DIRECTORIES).unwrap();
        assert_eq!(
            paths,
            [
                "Apache24/modules/mod_websocket.so",
                "Apache24/conf/extra/httpd-websocket.conf",
                "Apache24/htdocs/websocket-examples/client.html",
            ]
        );
    }

    #[test]
    fn unknown_component_is_an_error() {
        let files = FILES.replace("\tConfSnippet\t", "\tNope\t");
        let err = resolve_paths(&files, COMPONENTS, DIRECTORIES).unwrap_err();
        assert!(err.contains("no component Nope"), "{err}");
    }

    /// The .wxs uses exactly the variables the xtask passes, and installs
    /// every expected file from the stage.
    #[test]
    fn wxs_matches_the_xtask() {
        let wxs = fs::read_to_string(root().join("windows/mod_websocket.wxs")).unwrap();
        let mut used: Vec<&str> = wxs
            .split("$(var.")
            .skip(1)
            .filter_map(|s| s.split_once(')').map(|(name, _)| name))
            .filter(|name| *name != "Win64") // defined inside the .wxs
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut want: Vec<&str> = defines(String::new(), String::new(), "x64", true)
            .iter()
            .map(|(name, _)| *name)
            .collect();
        want.sort_unstable();
        assert_eq!(used, want);
        assert!(
            !wxs.contains("<?ifdef") && !wxs.contains("<?ifndef"),
            "wixl has no ifdef"
        );
        for path in EXPECTED {
            let name = path.rsplit('/').next().unwrap();
            assert!(
                wxs.contains(&format!("Name=\"{name}\"")),
                "{name} not in the .wxs"
            );
        }
        assert!(wxs.contains("Source=\"$(var.StageDir)/conf/windows/httpd-websocket.conf\""));
    }

    /// Each example plugin's build script declares the init function its
    /// lib.rs exports, and the .def it generates for 32-bit Windows exports
    /// that function under both spellings.
    #[test]
    fn plugin_def_files_export_both_spellings() {
        for (plugin, init) in [("echo", "echo_init"), ("dumb-increment", "dumb_increment_init")] {
            let dir = root().join("plugins").join(plugin);
            let build_rs = fs::read_to_string(dir.join("build.rs")).unwrap();
            assert!(
                build_rs.contains(&format!("export_init_functions(&[\"{init}\"])")),
                "plugins/{plugin}/build.rs does not declare {init}"
            );
            let lib_rs = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
            assert!(
                lib_rs.contains(&format!("export_plugin!({init},")),
                "plugins/{plugin}/src/lib.rs does not export {init}"
            );
            let def = websocket_plugin::windows_def_file(&[init]);
            assert_eq!(def, format!("EXPORTS\n  {init}\n  _{init}@0={init}\n"));
            // The loader finds a config's name either way.
            let plain = websocket_plugin::init_symbol_candidates(init);
            assert_eq!(plain[..2], [init.to_owned(), format!("_{init}@0")]);
            let decorated = websocket_plugin::init_symbol_candidates(&format!("_{init}@0"));
            assert!(decorated.contains(&init.to_owned()), "{decorated:?}");
        }
    }
}
