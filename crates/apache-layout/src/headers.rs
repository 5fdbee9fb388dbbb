//! Facts read straight from the headers, for when no `apxs` can tell them.

use std::fs;
use std::path::Path;

/// Finds `#define NAME value` in C source and returns `value`.
fn define<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix('#')?.trim_start();
        let rest = rest.strip_prefix("define")?;
        let mut words = rest.split_whitespace();
        (words.next()? == name).then_some(())?;
        words.next()
    })
}

/// `major.minor.patch` from `<dir>/ap_release.h`.
pub fn read_httpd_version(include_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(include_dir.join("ap_release.h")).ok()?;
    let num = |name| -> Option<u32> { define(&text, name)?.parse().ok() };
    Some(format!(
        "{}.{}.{}",
        num("AP_SERVER_MAJORVERSION_NUMBER")?,
        num("AP_SERVER_MINORVERSION_NUMBER")?,
        num("AP_SERVER_PATCHLEVEL_NUMBER")?
    ))
}

/// `MODULE_MAGIC_NUMBER_MAJOR` from `<dir>/ap_mmn.h`.
pub fn read_mmn(include_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(include_dir.join("ap_mmn.h")).ok()?;
    let mmn = define(&text, "MODULE_MAGIC_NUMBER_MAJOR")?;
    mmn.bytes().all(|b| b.is_ascii_digit()).then(|| mmn.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::touch;

    #[test]
    fn parses_release_and_mmn() {
        let tmp = tempfile::tempdir().unwrap();
        touch(
            &tmp.path().join("ap_release.h"),
            "/* comment */\n#define AP_SERVER_BASEVENDOR \"Apache\"\n\
             #define AP_SERVER_MAJORVERSION_NUMBER 2\n\
             #  define AP_SERVER_MINORVERSION_NUMBER 4\n\
             #define AP_SERVER_PATCHLEVEL_NUMBER   71\n\
             #define AP_SERVER_MAJORVERSION  APR_STRINGIFY(AP_SERVER_MAJORVERSION_NUMBER)\n",
        );
        touch(
            &tmp.path().join("ap_mmn.h"),
            "#define MODULE_MAGIC_COOKIE 0x41503234UL\n\
             #ifndef MODULE_MAGIC_NUMBER_MAJOR\n\
             #define MODULE_MAGIC_NUMBER_MAJOR 20120211\n#endif\n\
             #define MODULE_MAGIC_NUMBER_MINOR 141\n",
        );
        assert_eq!(read_httpd_version(tmp.path()).as_deref(), Some("2.4.71"));
        assert_eq!(read_mmn(tmp.path()).as_deref(), Some("20120211"));
    }

    #[test]
    fn missing_or_odd_headers_give_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read_httpd_version(tmp.path()), None);
        assert_eq!(read_mmn(tmp.path()), None);
        touch(
            &tmp.path().join("ap_release.h"),
            "#define AP_SERVER_MAJORVERSION_NUMBER 2\n",
        );
        assert_eq!(read_httpd_version(tmp.path()), None);
    }
}
