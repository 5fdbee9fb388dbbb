//! Windows: an ApacheLounge binary distribution, unzipped as one tree.

use crate::{read_httpd_version, read_mmn, ApacheLayout, Error, Flavor, Probe, TargetOs};

/// Import libraries every module links, as `rustc-link-lib` names.
const IMPORT_LIBS: &[&str] = &["libhttpd", "libapr-1", "libaprutil-1"];

impl Probe {
    /// Searches `%APACHE_ROOT%`, else `C:\Apache24`: `include\`, the import
    /// libraries in `lib\`, `modules\` and `conf\extra\`.
    pub fn apache_lounge(&self) -> Result<ApacheLayout, Error> {
        let (root, how) = match self.env("APACHE_ROOT") {
            Some(root) => (root, "APACHE_ROOT"),
            None => (self.sys("C:\\Apache24"), "default location"),
        };
        let mut searched = Vec::new();
        let include = root.join("include");
        for header in ["httpd.h", "apr.h", "apu.h"] {
            if !include.join(header).is_file() {
                searched.push(format!("{} ({how}): no {header}", include.display()));
            }
        }
        let lib = root.join("lib");
        for name in IMPORT_LIBS {
            let file = lib.join(format!("{name}.lib"));
            if !file.is_file() {
                searched.push(format!("{} ({how}): no such file", file.display()));
            }
        }
        if !searched.is_empty() {
            return Err(Error {
                target: TargetOs::Windows,
                searched,
            });
        }
        Ok(ApacheLayout {
            mmn: read_mmn(&include),
            httpd_version: read_httpd_version(&include),
            include_dirs: vec![include],
            lib_dirs: vec![lib],
            import_libs: IMPORT_LIBS.iter().map(|s| s.to_string()).collect(),
            modules_dir: root.join("modules"),
            conf_dir: root.join("conf").join("extra"),
            httpd_binary: Some(root.join("bin").join("httpd.exe")).filter(|p| p.is_file()),
            flavor: Flavor::ApacheLounge,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::{Flavor, Probe, TargetOs};
    use std::path::Path;

    fn lounge_tree(root: &Path) {
        let inc = root.join("include");
        httpd_headers(&inc);
        apr_headers(&inc);
        apu_headers(&inc);
        for lib in ["libhttpd.lib", "libapr-1.lib", "libaprutil-1.lib"] {
            touch(&root.join("lib").join(lib), "");
        }
        touch(&root.join("bin/httpd.exe"), "");
    }

    #[test]
    fn default_c_apache24() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("C/Apache24");
        lounge_tree(&root);
        let layout = Probe::with_root(tmp.path()).discover(TargetOs::Windows).unwrap();
        assert_eq!(layout.flavor, Flavor::ApacheLounge);
        assert_eq!(layout.include_dirs, vec![root.join("include")]);
        assert_eq!(layout.lib_dirs, vec![root.join("lib")]);
        assert_eq!(layout.import_libs, vec!["libhttpd", "libapr-1", "libaprutil-1"]);
        assert_eq!(layout.modules_dir, root.join("modules"));
        assert_eq!(layout.conf_dir, root.join("conf/extra"));
        assert_eq!(layout.mmn.as_deref(), Some("20120211"));
        assert_eq!(layout.httpd_version.as_deref(), Some("2.4.62"));
        assert_eq!(layout.httpd_binary, Some(root.join("bin/httpd.exe")));
    }

    #[test]
    fn apache_root_env() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("D/Servers/Apache");
        lounge_tree(&root);
        let layout = Probe::with_root(tmp.path())
            .var("APACHE_ROOT", &root)
            .apache_lounge()
            .unwrap();
        assert_eq!(layout.modules_dir, root.join("modules"));
    }

    #[test]
    fn missing_import_lib_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("C/Apache24");
        lounge_tree(&root);
        std::fs::remove_file(root.join("lib/libaprutil-1.lib")).unwrap();
        let text = Probe::with_root(tmp.path())
            .apache_lounge()
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("libaprutil-1.lib (default location): no such file"),
            "{text}"
        );
        assert!(text.contains("ApacheLounge"), "{text}");
        assert!(text.contains("APACHE_ROOT"), "{text}");
    }

    #[test]
    fn nothing_there() {
        let tmp = tempfile::tempdir().unwrap();
        let text = Probe::with_root(tmp.path())
            .var("APACHE_ROOT", tmp.path().join("nope"))
            .apache_lounge()
            .unwrap_err()
            .to_string();
        assert!(text.contains("(APACHE_ROOT): no httpd.h"), "{text}");
        assert!(text.contains("C:\\Apache24"), "{text}");
    }
}
