//! macOS: Homebrew's httpd (both prefixes), then the system Apache with
//! headers from the Xcode SDK.

use std::path::{Path, PathBuf};

use crate::{
    push_unique, read_httpd_version, read_mmn, ApacheLayout, Candidate, Error, Flavor, Probe, TargetOs,
};

impl Probe {
    /// Searches `$HOMEBREW_PREFIX`, `/opt/homebrew` (Apple silicon) and
    /// `/usr/local` (Intel) for the `httpd`, `apr` and `apr-util` formulas.
    pub fn homebrew(&self) -> Result<ApacheLayout, Error> {
        let mut searched = Vec::new();
        let mut prefixes = Vec::new();
        if let Some(p) = self.env("HOMEBREW_PREFIX") {
            prefixes.push(p);
        }
        push_unique(&mut prefixes, self.sys("/opt/homebrew"));
        push_unique(&mut prefixes, self.sys("/usr/local"));
        prefixes
            .iter()
            .find_map(|prefix| self.homebrew_at(prefix, &mut searched))
            .ok_or(Error {
                target: TargetOs::MacOs,
                searched,
            })
    }

    fn homebrew_at(&self, prefix: &Path, searched: &mut Vec<String>) -> Option<ApacheLayout> {
        let opt = prefix.join("opt");
        let apxs = opt.join("httpd/bin/apxs");
        let have_apxs = apxs.is_file();
        if !have_apxs {
            searched.push(format!("{}: no such file", apxs.display()));
        }
        let q = |name: &str| -> Option<PathBuf> {
            have_apxs
                .then(|| self.query(&apxs, &["-q", name]))
                .flatten()
                .map(PathBuf::from)
        };

        let httpd_inc = self.pick_dir(
            None,
            "httpd.h",
            q("INCLUDEDIR")
                .map(|d| (d, "apxs -q INCLUDEDIR".into()))
                .into_iter()
                .chain([(opt.join("httpd/include/httpd"), "httpd formula".into())])
                .collect(),
            searched,
        );
        // apr and apr-util are keg-only: nothing links them into the prefix,
        // and older formulas kept their headers under libexec.
        let apr_inc = self.pick_dir(
            None,
            "apr.h",
            self.keg_include_dirs(&opt, "apr", "apr-1-config"),
            searched,
        );
        let apu_inc = self.pick_dir(
            None,
            "apu.h",
            self.keg_include_dirs(&opt, "apr-util", "apu-1-config"),
            searched,
        );
        let (httpd_inc, apr_inc, apu_inc) = (httpd_inc?, apr_inc?, apu_inc?);

        let mut include_dirs = Vec::new();
        push_unique(&mut include_dirs, httpd_inc.clone());
        push_unique(&mut include_dirs, apr_inc);
        push_unique(&mut include_dirs, apu_inc);
        let mut lib_dirs = Vec::new();
        for keg in ["apr", "apr-util"] {
            for lib in [opt.join(keg).join("lib"), opt.join(keg).join("libexec/lib")] {
                if lib.is_dir() {
                    push_unique(&mut lib_dirs, lib);
                    break;
                }
            }
        }
        let httpd_binary = Some(opt.join("httpd/bin/httpd")).filter(|p| p.is_file());
        Some(ApacheLayout {
            include_dirs,
            lib_dirs,
            import_libs: Vec::new(),
            modules_dir: q("LIBEXECDIR").unwrap_or_else(|| prefix.join("lib/httpd/modules")),
            conf_dir: q("SYSCONFDIR").unwrap_or_else(|| prefix.join("etc/httpd")),
            mmn: q("HTTPD_MMN")
                .map(|p| p.to_string_lossy().into_owned())
                .or_else(|| read_mmn(&httpd_inc)),
            httpd_version: read_httpd_version(&httpd_inc),
            httpd_binary,
            flavor: Flavor::Homebrew,
        })
    }

    fn keg_include_dirs(&self, opt: &Path, keg: &str, config: &str) -> Vec<Candidate> {
        let keg = opt.join(keg);
        let tool = keg.join("bin").join(config);
        let mut dirs: Vec<Candidate> = Vec::new();
        if let Some(dir) = tool
            .is_file()
            .then(|| self.query(&tool, &["--includedir"]))
            .flatten()
        {
            dirs.push((dir.into(), format!("{config} --includedir")));
        }
        dirs.push((keg.join("include/apr-1"), "keg".into()));
        dirs.push((keg.join("libexec/include/apr-1"), "old keg".into()));
        dirs
    }

    /// The Apache that ships with macOS. Its headers exist only inside the
    /// Xcode or Command Line Tools SDK.
    pub fn mac_system(&self) -> Result<ApacheLayout, Error> {
        let mut searched = Vec::new();
        let mut sdks: Vec<Candidate> = Vec::new();
        match self.which("xcrun") {
            Some(xcrun) => match self.query(&xcrun, &["--show-sdk-path"]) {
                Some(sdk) => sdks.push((sdk.into(), "xcrun --show-sdk-path".into())),
                None => searched.push("xcrun --show-sdk-path: failed".into()),
            },
            None => searched.push("PATH: no xcrun".into()),
        }
        for sdk in [
            "/Library/Developer/CommandLineTools/SDKs/MacOSX.sdk",
            "/Applications/Xcode.app/Contents/Developer/Platforms/MacOSX.platform/Developer/SDKs/MacOSX.sdk",
        ] {
            sdks.push((self.sys(sdk), "SDK".into()));
        }

        let modules_dir = self.sys("/usr/libexec/apache2");
        let have_server = modules_dir.is_dir();
        if !have_server {
            searched.push(format!("{}: no such directory", modules_dir.display()));
        }
        let httpd_inc = self.pick_dir(
            None,
            "httpd.h",
            sdks.iter()
                .map(|(sdk, how)| (sdk.join("usr/include/apache2"), how.clone()))
                .collect(),
            &mut searched,
        );
        let apr_inc = self.pick_dir(
            None,
            "apr.h",
            sdks.iter()
                .map(|(sdk, how)| (sdk.join("usr/include/apr-1"), how.clone()))
                .collect(),
            &mut searched,
        );
        let (Some(httpd_inc), Some(apr_inc), true) = (httpd_inc, apr_inc, have_server) else {
            return Err(Error {
                target: TargetOs::MacOs,
                searched,
            });
        };
        let mut include_dirs = Vec::new();
        push_unique(&mut include_dirs, httpd_inc.clone());
        push_unique(&mut include_dirs, apr_inc);
        Ok(ApacheLayout {
            include_dirs,
            lib_dirs: Vec::new(),
            import_libs: Vec::new(),
            modules_dir,
            conf_dir: self.sys("/etc/apache2"),
            mmn: read_mmn(&httpd_inc),
            httpd_version: read_httpd_version(&httpd_inc),
            httpd_binary: Some(self.sys("/usr/sbin/httpd")).filter(|p| p.is_file()),
            flavor: Flavor::MacSystem,
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use crate::testutil::*;
    use crate::{Flavor, Probe, TargetOs};

    #[test]
    fn homebrew_with_apxs_and_config_tools() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let prefix = r.join("opt/homebrew");
        let opt = prefix.join("opt");
        let inc = opt.join("httpd/include/httpd");
        httpd_headers(&inc);
        let apr = r.join("cellar/apr/1.7/include/apr-1");
        let apu = r.join("cellar/apr-util/1.6/include/apr-1");
        apr_headers(&apr);
        apu_headers(&apu);
        std::fs::create_dir_all(opt.join("apr/lib")).unwrap();
        std::fs::create_dir_all(opt.join("apr-util/libexec/lib")).unwrap();
        touch(&opt.join("httpd/bin/httpd"), "");
        fake_tool(
            &opt.join("httpd/bin/apxs"),
            &[
                ("INCLUDEDIR", inc.to_str().unwrap()),
                ("LIBEXECDIR", prefix.join("lib/httpd/modules").to_str().unwrap()),
                ("SYSCONFDIR", prefix.join("etc/httpd").to_str().unwrap()),
                ("HTTPD_MMN", "20120211"),
            ],
        );
        fake_tool(
            &opt.join("apr/bin/apr-1-config"),
            &[("--includedir", apr.to_str().unwrap())],
        );
        fake_tool(
            &opt.join("apr-util/bin/apu-1-config"),
            &[("--includedir", apu.to_str().unwrap())],
        );
        let layout = Probe::with_root(r).discover(TargetOs::MacOs).unwrap();
        assert_eq!(layout.flavor, Flavor::Homebrew);
        assert_eq!(layout.include_dirs, vec![inc, apr, apu]);
        assert_eq!(
            layout.lib_dirs,
            vec![opt.join("apr/lib"), opt.join("apr-util/libexec/lib")]
        );
        assert_eq!(layout.modules_dir, prefix.join("lib/httpd/modules"));
        assert_eq!(layout.conf_dir, prefix.join("etc/httpd"));
        assert_eq!(layout.mmn.as_deref(), Some("20120211"));
        assert_eq!(layout.httpd_version.as_deref(), Some("2.4.62"));
        assert_eq!(layout.httpd_binary, Some(opt.join("httpd/bin/httpd")));
    }

    #[test]
    fn homebrew_intel_prefix_tree_only_with_old_libexec_kegs() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let prefix = r.join("usr/local");
        let opt = prefix.join("opt");
        httpd_headers(&opt.join("httpd/include/httpd"));
        apr_headers(&opt.join("apr/libexec/include/apr-1"));
        apu_headers(&opt.join("apr-util/include/apr-1"));
        let layout = Probe::with_root(r).homebrew().unwrap();
        assert_eq!(
            layout.include_dirs,
            vec![
                opt.join("httpd/include/httpd"),
                opt.join("apr/libexec/include/apr-1"),
                opt.join("apr-util/include/apr-1"),
            ]
        );
        assert_eq!(layout.modules_dir, prefix.join("lib/httpd/modules"));
        assert_eq!(layout.conf_dir, prefix.join("etc/httpd"));
        assert_eq!(layout.mmn.as_deref(), Some("20120211"));
    }

    #[test]
    fn homebrew_prefix_from_env_comes_first() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        for prefix in [r.join("custom"), r.join("opt/homebrew")] {
            httpd_headers(&prefix.join("opt/httpd/include/httpd"));
            apr_headers(&prefix.join("opt/apr/include/apr-1"));
            apu_headers(&prefix.join("opt/apr-util/include/apr-1"));
        }
        let layout = Probe::with_root(r)
            .var("HOMEBREW_PREFIX", r.join("custom"))
            .homebrew()
            .unwrap();
        assert_eq!(layout.modules_dir, r.join("custom/lib/httpd/modules"));
    }

    #[test]
    fn homebrew_without_apr_util_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let opt = r.join("opt/homebrew/opt");
        httpd_headers(&opt.join("httpd/include/httpd"));
        apr_headers(&opt.join("apr/include/apr-1"));
        let text = Probe::with_root(r).homebrew().unwrap_err().to_string();
        assert!(
            text.contains(&format!(
                "{} (keg): no apu.h",
                opt.join("apr-util/include/apr-1").display()
            )),
            "{text}"
        );
        assert!(text.contains("brew install httpd apr apr-util"), "{text}");
    }

    #[test]
    fn system_apache_via_xcrun_sdk() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let sdk = mac_system_tree(r, "xcode/MacOSX14.sdk");
        let layout = Probe::with_root(r)
            .path(r.join("bin"))
            .discover(TargetOs::MacOs)
            .unwrap();
        assert_eq!(layout.flavor, Flavor::MacSystem);
        assert_eq!(
            layout.include_dirs,
            vec![sdk.join("usr/include/apache2"), sdk.join("usr/include/apr-1")]
        );
        assert_eq!(layout.modules_dir, r.join("usr/libexec/apache2"));
        assert_eq!(layout.conf_dir, r.join("etc/apache2"));
        assert_eq!(layout.httpd_binary, Some(r.join("usr/sbin/httpd")));
    }

    #[test]
    fn system_apache_needs_the_server_too() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let sdk = r.join("Library/Developer/CommandLineTools/SDKs/MacOSX.sdk");
        httpd_headers(&sdk.join("usr/include/apache2"));
        apr_headers(&sdk.join("usr/include/apr-1"));
        let text = Probe::with_root(r).mac_system().unwrap_err().to_string();
        assert!(text.contains("PATH: no xcrun"), "{text}");
        assert!(text.contains("usr/libexec/apache2: no such directory"), "{text}");
    }
}
