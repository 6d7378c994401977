//! Wait and wake across processes: umtx(2), `umtx_sleep(ptr, value,
//! timeout)` and `umtx_wakeup(ptr, count)`.
//!
//! # What the kernel does
//!
//! `umtx_sleep` sleeps if the word at `ptr` holds `value`, and returns at
//! once with `EBUSY` if it does not. The kernel keys sleepers by the
//! physical address of the word (the page is held while they sleep), so
//! every process that maps the same file `MAP_SHARED` sleeps and wakes on
//! the same key, as with a shared futex. The comparison is not atomic with
//! the sleep, but the kernel interlocks it with `umtx_wakeup` (it registers
//! the sleeper, then compares again): a waker that changes the word and
//! then calls `umtx_wakeup` either makes the sleeper see the new value or
//! wakes it. No wake-up is lost.
//!
//! # The timeout
//!
//! Relative, in microseconds (umtx(2) and `kern_umtx.c` agree; Rust's std
//! passes milliseconds there); 0 means no timeout. umtx(2) of 2005 limits it
//! to 1,000,000 µs (`EINVAL` beyond); that of 2015 accepts any non-negative
//! `int`. Waits are cut to one second, which every version accepts, and a
//! wait cut short returns [`Wake::Woken`] for the caller to read the word and
//! wait again. The kernel sleeps in whole clock ticks, rounded up.
//!
//! # Returns
//!
//! 0 when woken; `EBUSY` if the word held another value; `EWOULDBLOCK`
//! when the timeout ran out (`ETIMEDOUT` from older kernels); `EINTR` on a
//! signal, even one whose handler asks for restarts. The man page warns
//! that other events can end the sleep early, with the word unchanged. So
//! a timeout is reported only once this host's monotonic clock has passed
//! the deadline; every other return but `EINTR` is [`Wake::Woken`], and the
//! caller reads the word again.

use core::sync::atomic::{AtomicU32, Ordering};

use usysv_core::host::{Deadline, Wake};

use crate::unix::process::monotonic_now;

/// The longest sleep asked of the kernel, in microseconds: the limit of
/// umtx(2) of 2005.
const MAX_SLEEP_MICROS: u64 = 1_000_000;

pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
    let timeout = match deadline {
        None => 0,
        Some(deadline) => {
            let now = monotonic_now();
            if now >= deadline {
                // umtx_sleep has no zero timeout (0 waits for ever): answer
                // as a futex would, which compares before it times out.
                return if word.load(Ordering::Acquire) == expected {
                    Wake::TimedOut
                } else {
                    Wake::Woken
                };
            }
            // Rounded up, so that a sleep never ends before the deadline
            // for want of a microsecond; at least 1, which is not "for ever".
            let micros = (deadline.0 - now.0).div_ceil(1000);
            micros.clamp(1, MAX_SLEEP_MICROS) as libc::c_int
        }
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the
    // call; umtx_sleep reads it (as an `int`, the same size) and uses its
    // physical address as a key, nothing else.
    let ret = unsafe {
        libc::umtx_sleep(
            word.as_ptr().cast::<libc::c_int>(),
            expected as libc::c_int,
            timeout,
        )
    };
    if ret == 0 {
        return Wake::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EINTR) => Wake::Interrupted,
        Some(libc::EWOULDBLOCK | libc::ETIMEDOUT)
            if deadline.is_some_and(|deadline| monotonic_now() >= deadline) =>
        {
            Wake::TimedOut
        }
        // EBUSY: the word had already changed. EWOULDBLOCK before the
        // deadline: a sleep cut to MAX_SLEEP_MICROS, or ended early.
        _ => Wake::Woken,
    }
}

pub(crate) fn wake(word: &AtomicU32, count: u32) {
    // umtx_wakeup takes 0 to mean every sleeper.
    if count == 0 {
        return;
    }
    let count = count.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a live, aligned 32-bit atomic; umtx_wakeup only uses
    // its physical address as a key.
    unsafe {
        libc::umtx_wakeup(word.as_ptr().cast::<libc::c_int>(), count);
    }
}
