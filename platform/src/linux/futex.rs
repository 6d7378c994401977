//! Shared futex wait and wake: futex(2) with `FUTEX_WAIT_BITSET` and
//! `FUTEX_WAKE`, without `FUTEX_PRIVATE_FLAG`, so that processes mapping the
//! same file wait on the same word (the kernel keys shared futexes by inode and
//! offset). The deadline is absolute on `CLOCK_MONOTONIC`, which
//! `FUTEX_WAIT_BITSET` takes as it is.

use core::sync::atomic::AtomicU32;

use usysv_core::host::{Deadline, Wake};

pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
    let timeout = deadline.map(|Deadline(nanos)| libc::timespec {
        tv_sec: (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    });
    let timeout_ptr = timeout
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the
    // call; `timeout_ptr` is null or points to `timeout`, alive on this frame.
    // FUTEX_WAIT_BITSET reads the word and the timespec and nothing else.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            timeout_ptr,
            core::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if ret == 0 {
        return Wake::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => Wake::TimedOut,
        Some(libc::EINTR) => Wake::Interrupted,
        // EAGAIN: the word had already changed.
        _ => Wake::Woken,
    }
}

pub(crate) fn wake(word: &AtomicU32, count: u32) {
    let count = count.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only uses its
    // address as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unix::process::monotonic_now;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_changed_word_returns_at_once_and_a_deadline_times_out() {
        let word = AtomicU32::new(1);
        assert_eq!(wait(&word, 0, None), Wake::Woken);
        let start = Instant::now();
        let deadline = Deadline::after(monotonic_now(), 20_000_000);
        assert_eq!(wait(&word, 1, Some(deadline)), Wake::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(19));
    }

    #[test]
    fn wake_releases_a_sleeper() {
        let word = Arc::new(AtomicU32::new(0));
        let sleeper = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 0 {
                    let deadline = Deadline::after(monotonic_now(), 10_000_000_000);
                    assert_ne!(wait(&word, 0, Some(deadline)), Wake::TimedOut);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        word.store(1, Ordering::Release);
        wake(&word, 1);
        sleeper.join().unwrap();
    }
}
