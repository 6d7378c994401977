//! The status word of a queued waiter (a `semop` waiter, a `msgrcv`
//! receiver): the waiter spins on it, then marks it `ASLEEP` and sleeps; the
//! waker stores a final value (0 or an errno) and wakes the waiter only if
//! it found `ASLEEP`.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::host::{Deadline, Host, Wake};

/// Status of a queued waiter that may be spinning.
pub(crate) const WAITING: u32 = u32::MAX;
/// Status of a queued waiter that sleeps on the futex (the waker must wake it).
pub(crate) const ASLEEP: u32 = u32::MAX - 1;

/// Waits for `status` to hold a final value: `rounds` rounds of `spins`
/// reads, yielding the core between rounds, then — still not final — marks
/// it `ASLEEP` and sleeps until it changes or the deadline `until()` passes.
/// Returns how the sleep ended (`Woken` when there was none); the caller
/// reads the word again and decides.
pub(crate) fn await_status<H: Host>(
    host: &H,
    status: &AtomicU32,
    rounds: u32,
    spins: u32,
    until: impl FnOnce() -> Deadline,
) -> Wake {
    for _ in 0..rounds {
        for _ in 0..spins {
            if status.load(Ordering::Acquire) < ASLEEP {
                return Wake::Woken;
            }
            core::hint::spin_loop();
        }
        host.yield_now();
    }
    let marked = status
        .compare_exchange(WAITING, ASLEEP, Ordering::AcqRel, Ordering::Acquire)
        .map_or_else(|seen| seen == ASLEEP, |_| true);
    if marked {
        host.wait(status, ASLEEP, Some(until()))
    } else {
        Wake::Woken
    }
}
