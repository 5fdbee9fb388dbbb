//! The `APR_STATUS_IS_*` tests. APR folds native OS errors into
//! `apr_status_t`, so on Windows one condition has several codes; these
//! mirror apr_errno.h for each platform.

use crate::apr_status_t;
#[cfg(windows)]
use crate::APR_OS_START_SYSERR;
use crate::{APR_EAGAIN, APR_ECONNABORTED, APR_ECONNRESET, APR_EINTR, APR_EOF, APR_EPIPE, APR_TIMEUP};

/// Win32 error numbers that APR maps into its ranges (winerror.h,
/// winsock2.h); stable parts of the Windows ABI.
#[cfg(windows)]
mod win {
    pub const ERROR_LOCK_VIOLATION: i32 = 33;
    pub const ERROR_NETNAME_DELETED: i32 = 64;
    pub const ERROR_NO_PROC_SLOTS: i32 = 89;
    pub const ERROR_BROKEN_PIPE: i32 = 109;
    pub const ERROR_MAX_THRDS_REACHED: i32 = 164;
    pub const ERROR_NESTING_NOT_ALLOWED: i32 = 215;
    pub const ERROR_NO_DATA: i32 = 232;
    pub const WAIT_TIMEOUT: i32 = 258;
    pub const WSAEINTR: i32 = 10004;
    pub const WSAEWOULDBLOCK: i32 = 10035;
    pub const WSAECONNABORTED: i32 = 10053;
    pub const WSAECONNRESET: i32 = 10054;
    pub const WSAETIMEDOUT: i32 = 10060;
}

#[cfg(windows)]
const fn sys(s: apr_status_t, code: i32) -> bool {
    s == APR_OS_START_SYSERR + code
}

/// The operation would block (nonblocking reads and writes).
pub const fn APR_STATUS_IS_EAGAIN(s: apr_status_t) -> bool {
    #[cfg(windows)]
    {
        s == APR_EAGAIN
            || sys(s, win::ERROR_NO_DATA)
            || sys(s, win::ERROR_NO_PROC_SLOTS)
            || sys(s, win::ERROR_NESTING_NOT_ALLOWED)
            || sys(s, win::ERROR_MAX_THRDS_REACHED)
            || sys(s, win::ERROR_LOCK_VIOLATION)
            || sys(s, win::WSAEWOULDBLOCK)
    }
    #[cfg(not(windows))]
    {
        s == APR_EAGAIN || s == crate::EWOULDBLOCK
    }
}

/// End of input.
pub const fn APR_STATUS_IS_EOF(s: apr_status_t) -> bool {
    s == APR_EOF
}

/// A timeout expired (poll, socket timeouts).
pub const fn APR_STATUS_IS_TIMEUP(s: apr_status_t) -> bool {
    #[cfg(windows)]
    {
        s == APR_TIMEUP || sys(s, win::WSAETIMEDOUT) || sys(s, win::WAIT_TIMEOUT)
    }
    #[cfg(not(windows))]
    {
        s == APR_TIMEUP
    }
}

/// Interrupted by a signal (poll).
pub const fn APR_STATUS_IS_EINTR(s: apr_status_t) -> bool {
    #[cfg(windows)]
    {
        s == APR_EINTR || sys(s, win::WSAEINTR)
    }
    #[cfg(not(windows))]
    {
        s == APR_EINTR
    }
}

/// The peer reset the connection.
pub const fn APR_STATUS_IS_ECONNRESET(s: apr_status_t) -> bool {
    #[cfg(windows)]
    {
        s == APR_ECONNRESET || sys(s, win::ERROR_NETNAME_DELETED) || sys(s, win::WSAECONNRESET)
    }
    #[cfg(not(windows))]
    {
        s == APR_ECONNRESET
    }
}

/// The connection was aborted locally.
pub const fn APR_STATUS_IS_ECONNABORTED(s: apr_status_t) -> bool {
    #[cfg(windows)]
    {
        s == APR_ECONNABORTED || sys(s, win::WSAECONNABORTED)
    }
    #[cfg(not(windows))]
    {
        s == APR_ECONNABORTED
    }
}

/// Writing to a connection the peer has closed.
pub const fn APR_STATUS_IS_EPIPE(s: apr_status_t) -> bool {
    #[cfg(windows)]
    {
        s == APR_EPIPE || sys(s, win::ERROR_BROKEN_PIPE)
    }
    #[cfg(not(windows))]
    {
        s == APR_EPIPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tests_match_their_codes() {
        assert!(APR_STATUS_IS_EAGAIN(APR_EAGAIN));
        assert!(APR_STATUS_IS_EOF(APR_EOF));
        assert!(APR_STATUS_IS_TIMEUP(APR_TIMEUP));
        assert!(APR_STATUS_IS_EINTR(APR_EINTR));
        assert!(APR_STATUS_IS_ECONNRESET(APR_ECONNRESET));
        assert!(APR_STATUS_IS_ECONNABORTED(APR_ECONNABORTED));
        assert!(APR_STATUS_IS_EPIPE(APR_EPIPE));
        for s in [crate::APR_SUCCESS, APR_EOF, APR_TIMEUP] {
            assert!(!APR_STATUS_IS_EAGAIN(s), "{s}");
        }
        assert!(!APR_STATUS_IS_EOF(APR_EAGAIN));
        assert!(!APR_STATUS_IS_TIMEUP(APR_EOF));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_values() {
        // On Unix APR passes errno through unchanged.
        assert_eq!(APR_EAGAIN, 11);
        assert_eq!(APR_EOF, 70014);
        assert_eq!(APR_TIMEUP, 70007);
    }
}
