//! Linux and other Unix systems: env overrides, then `apxs`, then
//! `apr-1-config` and the usual package paths.

use std::path::PathBuf;

use crate::{
    push_unique, read_httpd_version, read_mmn, ApacheLayout, Candidate, Error, Flavor, Probe, TargetOs,
};

impl Probe {
    /// Searches a Linux/Unix system. `APACHE_INCLUDE_DIR`, `APR_INCLUDE_DIR`
    /// and `APU_INCLUDE_DIR` replace the search for their directory
    /// entirely; `APXS` names the `apxs` to query.
    pub fn linux(&self) -> Result<ApacheLayout, Error> {
        let mut searched = Vec::new();
        let apxs = self.find_apxs(&mut searched);
        // Queried one at a time: some apxs versions join multiple answers
        // with `;;` and fail the whole query on one unknown name.
        let q = |name: &str| -> Option<PathBuf> {
            apxs.as_ref()
                .and_then(|a| self.query(a, &["-q", name]))
                .map(PathBuf::from)
        };

        let httpd_inc = self.pick_dir(
            Some("APACHE_INCLUDE_DIR"),
            "httpd.h",
            q("INCLUDEDIR")
                .map(|d| (d, "apxs -q INCLUDEDIR".into()))
                .into_iter()
                .chain(self.standard(&[
                    "/usr/include/apache2",
                    "/usr/include/httpd",
                    "/usr/local/include/apache2",
                    "/usr/local/apache2/include",
                ]))
                .collect(),
            &mut searched,
        );

        let apr_config = self
            .which("apr-1-config")
            .and_then(|c| self.query(&c, &["--includedir"]))
            .map(|d| (PathBuf::from(d), "apr-1-config --includedir".to_string()));
        let apr_inc = self.pick_dir(
            Some("APR_INCLUDE_DIR"),
            "apr.h",
            q("APR_INCLUDEDIR")
                .map(|d| (d, "apxs -q APR_INCLUDEDIR".into()))
                .into_iter()
                .chain(apr_config)
                .chain(self.standard(&["/usr/include/apr-1.0", "/usr/include/apr-1"]))
                .collect(),
            &mut searched,
        );

        // APR-util usually shares APR's include dir; only its own
        // apu-1-config or override can say otherwise.
        let apu_config = self
            .which("apu-1-config")
            .and_then(|c| self.query(&c, &["--includedir"]))
            .map(|d| (PathBuf::from(d), "apu-1-config --includedir".to_string()));
        let apu_inc = self.pick_dir(
            Some("APU_INCLUDE_DIR"),
            "apu.h",
            q("APU_INCLUDEDIR")
                .map(|d| (d, "apxs -q APU_INCLUDEDIR".into()))
                .into_iter()
                .chain(apu_config)
                .chain(apr_inc.clone().map(|d| (d, "APR's include dir".into())))
                .collect(),
            &mut searched,
        );

        let (Some(httpd_inc), Some(apr_inc), Some(apu_inc)) = (httpd_inc, apr_inc, apu_inc) else {
            return Err(Error {
                target: TargetOs::Linux,
                searched,
            });
        };

        let modules_dir = q("LIBEXECDIR").unwrap_or_else(|| {
            self.first_existing(&[
                "/usr/lib/apache2/modules",
                "/usr/lib64/httpd/modules",
                "/usr/lib/httpd/modules",
                "/usr/local/apache2/modules",
            ])
        });
        let conf_dir = q("SYSCONFDIR").unwrap_or_else(|| {
            self.first_existing(&["/etc/apache2", "/etc/httpd/conf", "/usr/local/apache2/conf"])
        });
        let mmn = q("HTTPD_MMN")
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| read_mmn(&httpd_inc));
        let httpd_binary = match (q("SBINDIR"), q("TARGET")) {
            (Some(sbin), Some(name)) => Some(sbin.join(name)).filter(|p| p.is_file()),
            _ => None,
        }
        .or_else(|| self.which("apache2"))
        .or_else(|| self.which("httpd"))
        .or_else(|| {
            ["/usr/sbin/apache2", "/usr/sbin/httpd"]
                .iter()
                .map(|p| self.sys(p))
                .find(|p| p.is_file())
        });

        let mut include_dirs = Vec::new();
        push_unique(&mut include_dirs, httpd_inc.clone());
        push_unique(&mut include_dirs, apr_inc);
        push_unique(&mut include_dirs, apu_inc);
        Ok(ApacheLayout {
            include_dirs,
            lib_dirs: Vec::new(),
            import_libs: Vec::new(),
            modules_dir,
            conf_dir,
            mmn,
            httpd_version: read_httpd_version(&httpd_inc),
            httpd_binary,
            flavor: Flavor::Linux,
        })
    }

    fn find_apxs(&self, searched: &mut Vec<String>) -> Option<PathBuf> {
        if let Some(apxs) = self.env("APXS") {
            if apxs.is_file() {
                return Some(apxs);
            }
            searched.push(format!("APXS={}: no such file", apxs.display()));
            return None;
        }
        let found = self.which("apxs2").or_else(|| self.which("apxs"));
        if found.is_none() {
            searched.push("PATH: no apxs2 or apxs".into());
        }
        found
    }

    fn standard(&self, dirs: &[&str]) -> Vec<Candidate> {
        dirs.iter()
            .map(|d| (self.sys(d), "standard location".to_string()))
            .collect()
    }

    /// The first of `dirs` that exists, or the first if none does (a build
    /// host may have the headers without the server).
    fn first_existing(&self, dirs: &[&str]) -> PathBuf {
        dirs.iter()
            .map(|d| self.sys(d))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| self.sys(dirs[0]))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use crate::testutil::*;
    use crate::{Flavor, Probe, TargetOs};

    #[test]
    fn apxs_answers_are_used() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let inc = r.join("opt/ap/include");
        let apr = r.join("opt/apr/include/apr-1");
        let apu = r.join("opt/apu/include/apr-1");
        httpd_headers(&inc);
        apr_headers(&apr);
        apu_headers(&apu);
        touch(&r.join("opt/ap/sbin/apache2"), "");
        fake_tool(
            &r.join("bin/apxs2"),
            &[
                ("INCLUDEDIR", inc.to_str().unwrap()),
                ("APR_INCLUDEDIR", apr.to_str().unwrap()),
                ("APU_INCLUDEDIR", apu.to_str().unwrap()),
                ("LIBEXECDIR", "/opt/ap/modules"),
                ("SYSCONFDIR", "/opt/ap/etc"),
                ("HTTPD_MMN", "20120211"),
                ("SBINDIR", r.join("opt/ap/sbin").to_str().unwrap()),
                ("TARGET", "apache2"),
            ],
        );
        let layout = Probe::with_root(r)
            .path(r.join("bin"))
            .discover(TargetOs::Linux)
            .unwrap();
        assert_eq!(layout.flavor, Flavor::Linux);
        assert_eq!(layout.include_dirs, vec![inc, apr, apu]);
        assert_eq!(layout.modules_dir.to_str(), Some("/opt/ap/modules"));
        assert_eq!(layout.conf_dir.to_str(), Some("/opt/ap/etc"));
        assert_eq!(layout.mmn.as_deref(), Some("20120211"));
        assert_eq!(layout.httpd_version.as_deref(), Some("2.4.62"));
        assert_eq!(layout.httpd_binary, Some(r.join("opt/ap/sbin/apache2")));
        assert!(layout.import_libs.is_empty());
    }

    #[test]
    fn apxs_named_by_env_and_shared_apr_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let inc = r.join("i/httpd");
        let apr = r.join("i/apr");
        httpd_headers(&inc);
        apr_headers(&apr);
        apu_headers(&apr);
        // Only the answers this apxs knows; the rest must fall back.
        fake_tool(
            &r.join("tools/my-apxs"),
            &[
                ("INCLUDEDIR", inc.to_str().unwrap()),
                ("APR_INCLUDEDIR", apr.to_str().unwrap()),
            ],
        );
        let layout = Probe::with_root(r)
            .var("APXS", r.join("tools/my-apxs"))
            .discover(TargetOs::Linux)
            .unwrap();
        assert_eq!(layout.include_dirs, vec![inc, apr]);
        assert_eq!(layout.mmn.as_deref(), Some("20120211"), "read from ap_mmn.h");
        assert_eq!(layout.modules_dir, r.join("usr/lib/apache2/modules"));
    }

    #[test]
    fn without_apxs_uses_apr_config_and_standard_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        httpd_headers(&r.join("usr/include/httpd"));
        let apr = r.join("weird/apr");
        apr_headers(&apr);
        apu_headers(&apr);
        fake_tool(
            &r.join("bin/apr-1-config"),
            &[("--includedir", apr.to_str().unwrap())],
        );
        std::fs::create_dir_all(r.join("usr/lib64/httpd/modules")).unwrap();
        std::fs::create_dir_all(r.join("etc/httpd/conf")).unwrap();
        touch(&r.join("usr/sbin/httpd"), "");
        let layout = Probe::with_root(r)
            .path(r.join("bin"))
            .discover(TargetOs::Linux)
            .unwrap();
        assert_eq!(layout.include_dirs, vec![r.join("usr/include/httpd"), apr]);
        assert_eq!(layout.modules_dir, r.join("usr/lib64/httpd/modules"));
        assert_eq!(layout.conf_dir, r.join("etc/httpd/conf"));
        assert_eq!(layout.httpd_binary, Some(r.join("usr/sbin/httpd")));
    }

    #[test]
    fn env_overrides_win_over_apxs() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let good = r.join("override/httpd");
        let apr = r.join("override/apr");
        httpd_headers(&good);
        apr_headers(&apr);
        apu_headers(&apr);
        httpd_headers(&r.join("apxs/inc"));
        fake_tool(
            &r.join("bin/apxs"),
            &[("INCLUDEDIR", r.join("apxs/inc").to_str().unwrap())],
        );
        let layout = Probe::with_root(r)
            .path(r.join("bin"))
            .var("APACHE_INCLUDE_DIR", &good)
            .var("APR_INCLUDE_DIR", &apr)
            .discover(TargetOs::Linux)
            .unwrap();
        assert_eq!(layout.include_dirs, vec![good, apr]);
    }

    #[test]
    fn wrong_override_is_an_error_not_a_fallback() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        httpd_headers(&r.join("usr/include/apache2"));
        apr_headers(&r.join("usr/include/apr-1.0"));
        apu_headers(&r.join("usr/include/apr-1.0"));
        let e = Probe::with_root(r)
            .var("APACHE_INCLUDE_DIR", r.join("nope"))
            .discover(TargetOs::Linux)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "{} (APACHE_INCLUDE_DIR): no httpd.h",
                r.join("nope").display()
            )),
            "{text}"
        );
    }

    #[test]
    fn nothing_installed_names_every_place() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let e = Probe::with_root(r).discover(TargetOs::Linux).unwrap_err();
        let text = e.to_string();
        for place in [
            "PATH: no apxs2 or apxs",
            "usr/include/apache2 (standard location): no httpd.h",
            "usr/include/httpd (standard location): no httpd.h",
            "usr/include/apr-1.0 (standard location): no apr.h",
            "usr/include/apr-1 (standard location): no apr.h",
            "nowhere to look for apu.h",
            "apt-get install apache2-dev",
        ] {
            assert!(text.contains(place), "missing {place:?} in:\n{text}");
        }
    }

    #[test]
    fn debian_layout_from_standard_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        debian_tree(r);
        let layout = Probe::with_root(r).discover(TargetOs::Linux).unwrap();
        assert_eq!(
            layout.include_dirs,
            vec![r.join("usr/include/apache2"), r.join("usr/include/apr-1.0")]
        );
        assert_eq!(layout.modules_dir, r.join("usr/lib/apache2/modules"));
        assert_eq!(layout.conf_dir, r.join("etc/apache2"));
        assert_eq!(layout.httpd_binary, None);
    }
}
