//! The status word of a queued waiter (a `semop` waiter, a `msgrcv`
//! receiver): the waiter spins on it, then marks it `ASLEEP` and sleeps; the
//! waker stores a final value (0 or an errno) and wakes the waiter only if
//! it found `ASLEEP`, once it has released the lock ([`Wakes`]).

use core::sync::atomic::AtomicU32;

use crate::arena::{Off, Word};
use crate::host::{Deadline, Host, Wake};
use crate::protocol;
pub(crate) use crate::protocol::{ASLEEP, WAITING};
use crate::Namespace;

/// Waits for `status` to hold a final value: `rounds` rounds of `spins`
/// reads, yielding the core between rounds, then — still not final — marks
/// it `ASLEEP` and sleeps until it changes or the deadline `until()` passes
/// ([`protocol::await_status`]). Returns how the sleep ended (`Woken` when
/// there was none); the caller reads the word again and decides.
pub(crate) fn await_status<H: Host>(
    host: &H,
    status: &AtomicU32,
    rounds: u32,
    spins: u32,
    until: impl FnOnce() -> Deadline,
) -> Wake {
    let mut woke = Wake::Woken;
    protocol::await_status(
        status,
        rounds,
        spins,
        || host.yield_now(),
        |word, value| woke = host.wait(word, value, Some(until())),
    );
    woke
}

/// Status words to wake once the lock is released, kept as arena offsets: up
/// to `N`, and more are woken at once (an early wake is harmless: a waiter
/// reads its status again).
pub(crate) struct Wakes<const N: usize> {
    offsets: [u32; N],
    len: usize,
}

impl<const N: usize> Wakes<N> {
    pub(crate) fn new() -> Self {
        Wakes {
            offsets: [0; N],
            len: 0,
        }
    }

    /// Keeps `word` to wake later, or wakes it now when the batch is full.
    pub(crate) fn push<H: Host>(&mut self, ns: &Namespace<'_, H>, word: &Word) {
        match (ns.arena.offset_of(word), self.offsets.get_mut(self.len)) {
            (Ok(offset), Some(room)) => {
                *room = offset;
                self.len += 1;
            }
            _ => ns.host.wake(word.atomic(), 1),
        }
    }

    /// Wakes the words kept (the lock released).
    pub(crate) fn wake<H: Host>(&self, ns: &Namespace<'_, H>) {
        for &offset in self.offsets.iter().take(self.len) {
            if let Ok(word) = ns.arena.get(Off::<Word>::new(offset)) {
                ns.host.wake(word.atomic(), 1);
            }
        }
    }
}
