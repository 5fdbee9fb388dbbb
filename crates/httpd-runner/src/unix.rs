//! The few Unix calls the runner needs: who we are, signals, and user
//! lookups for the `User`/`Group` directives.

use std::fs;
use std::io;

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `sig` to process `pid`.
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: kill only reads its integer arguments; a positive pid names a
    // single process (our child).
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `sig` to every process in group `pgid`.
pub(crate) fn signal_group(pgid: u32, sig: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| io::ErrorKind::InvalidInput)?;
    if pgid <= 1 {
        // -1 would be every process we may signal; never.
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: a negative pid addresses exactly the process group our child
    // leads (it was spawned with process_group(0)).
    if unsafe { libc::kill(-pgid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// (uid, primary gid) of `name` from /etc/passwd. System accounts such as
/// www-data are always local, so NSS is not needed.
pub(crate) fn lookup_user(name: &str) -> Option<(u32, u32)> {
    parse_passwd(&fs::read_to_string("/etc/passwd").ok()?, name)
}

pub(crate) fn lookup_group(name: &str) -> Option<u32> {
    let text = fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

pub(crate) fn group_name(gid: u32) -> Option<String> {
    let text = fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[2].parse() == Ok(gid)).then(|| f[0].to_string())
    })
}

fn parse_passwd(text: &str, name: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n";
        assert_eq!(parse_passwd(text, "www-data"), Some((33, 33)));
        assert_eq!(parse_passwd(text, "www"), None);
        assert_eq!(parse_passwd(text, "root"), Some((0, 0)));
    }

    #[test]
    fn refuses_to_signal_everything() {
        assert!(signal_group(1, 0).is_err());
        assert!(signal_group(0, 0).is_err());
    }
}
