//! The few Unix calls the runner needs: who we are, signals, and user
//! lookups for the `User`/`Group` directives.

use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

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

/// SIGINT, SIGTERM and SIGHUP caught while a foreground server runs, so
/// that it can be stopped before this process goes. While none is alive
/// the signals have their default effect. One at a time per process.
pub(crate) struct StopSignals {
    state: &'static SignalState,
}

/// What the process-wide signal actions share. signal-hook cannot give a
/// signal its default handler back once an action is removed, so the
/// actions are registered once and switched with `idle`.
struct SignalState {
    /// The last signal caught, 0 for none.
    last: Arc<AtomicUsize>,
    /// No foreground server: the signals act as if never caught.
    idle: Arc<AtomicBool>,
}

static STATE: OnceLock<Result<SignalState, String>> = OnceLock::new();

impl SignalState {
    fn install() -> io::Result<SignalState> {
        let state = SignalState {
            last: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(AtomicBool::new(true)),
        };
        for sig in StopSignals::CAUGHT {
            // signal-hook runs the actions in registration order: the
            // default action when idle, else the record.
            signal_hook::flag::register_conditional_default(sig, Arc::clone(&state.idle))?;
            let number = usize::try_from(sig).map_err(|_| io::ErrorKind::InvalidInput)?;
            signal_hook::flag::register_usize(sig, Arc::clone(&state.last), number)?;
        }
        Ok(state)
    }
}

impl StopSignals {
    const CAUGHT: [libc::c_int; 3] = [SIGINT, SIGTERM, SIGHUP];

    pub(crate) fn register() -> io::Result<StopSignals> {
        // Installed once (get_or_init runs one closure even when threads
        // race); an installation error stays the answer.
        let state = STATE
            .get_or_init(|| SignalState::install().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        state.last.store(0, Ordering::SeqCst);
        state.idle.store(false, Ordering::SeqCst);
        Ok(StopSignals { state })
    }

    /// The signal received since [`register`](Self::register), if any.
    pub(crate) fn received(&self) -> Option<i32> {
        match self.state.last.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        self.state.idle.store(true, Ordering::SeqCst);
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

    /// A caught signal is recorded instead of ending the process.
    #[test]
    fn stop_signals_are_recorded() {
        let signals = StopSignals::register().unwrap();
        assert_eq!(signals.received(), None);
        signal_hook::low_level::raise(SIGHUP).unwrap();
        assert_eq!(signals.received(), Some(SIGHUP));
        drop(signals);
        // A second run starts with nothing received.
        let again = StopSignals::register().unwrap();
        assert_eq!(again.received(), None);
    }

    #[test]
    fn refuses_to_signal_everything() {
        assert!(signal_group(1, 0).is_err());
        assert!(signal_group(0, 0).is_err());
    }
}
