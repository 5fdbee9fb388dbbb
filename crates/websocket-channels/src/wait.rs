//! Sleeping on a word of shared memory until another process changes it:
//! a futex on Linux (the word is in a shared mapping, so the wait is not
//! process-private), short sleeps elsewhere.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `expected`, at most `timeout`; may return early.
#[cfg(target_os = "linux")]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: FUTEX_WAIT reads the 32-bit word at a valid, aligned address
    // for as long as the call lasts (the word is borrowed), compares it with
    // `expected` and sleeps; the timespec is a live local. No memory is
    // written.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes every process sleeping in [`wait`] on `word`.
#[cfg(target_os = "linux")]
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; it is valid and
    // aligned.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Off Linux there is no portable cross-process wait on a word: poll.
#[cfg(not(target_os = "linux"))]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let step = Duration::from_millis(1);
    let start = std::time::Instant::now();
    while word.load(std::sync::atomic::Ordering::Acquire) == expected && start.elapsed() < timeout {
        std::thread::sleep(step);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn wake_all(_word: &AtomicU32) {}
