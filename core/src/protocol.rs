//! The two word protocols that every wait in usysv stands on, kept apart
//! from the arena and the host so that a model checker runs this very
//! source: `core/tests/loom.rs` includes this file with loom's atomics in
//! place of the processor's and explores the interleavings of a few threads
//! (every one, up to a bound on preemptions).
//!
//! - The **lock word** ([`lock`], [`seize`], [`unlock`]): 0 when free, else the owner's
//!   tag, with [`CONTENDED`] set by a caller before it sleeps, so that the
//!   release knows to wake one.
//! - The **status word** of a queued waiter ([`await_status`]): [`WAITING`]
//!   while the waiter may be spinning, [`ASLEEP`] once it sleeps (or is
//!   about to), then a final value that a waker exchanges in; the waker
//!   wakes the waiter only if the exchange found `ASLEEP`.
//!
//! Names are reached through `crate::atomic`, which each includer defines.

use crate::atomic::{AtomicU32, Ordering};

/// Set in a lock word when a caller sleeps waiting for the lock.
pub(crate) const CONTENDED: u32 = 1 << 31;

/// Status of a queued waiter that may be spinning.
pub(crate) const WAITING: u32 = u32::MAX;
/// Status of a queued waiter that sleeps on the word (the waker must wake it).
pub(crate) const ASLEEP: u32 = u32::MAX - 1;

/// How a caller of [`lock`] waits: what it does between spins, whether the
/// owner it sees has died, and how it sleeps.
pub(crate) trait LockWait {
    /// Offers the core to others between rounds of spins.
    fn relax(&mut self);
    /// Looks at the owner word `seen` (held) before sleeping on it.
    fn watch(&mut self, seen: u32) -> Watch;
    /// Sleeps while `word` holds `value` (returning early is allowed).
    fn sleep(&mut self, word: &AtomicU32, value: u32);
}

/// What [`LockWait::watch`] found.
pub(crate) enum Watch {
    /// The owner lives: sleep.
    Sleep,
    /// Read the word again before sleeping.
    Again,
    /// The owner is dead: the caller takes the lock over.
    Dead,
}

/// How [`lock`] ended.
pub(crate) enum Locked {
    /// The lock is the caller's.
    Taken,
    /// The owner word `seen` names a dead owner; the lock is still held.
    OwnerDead(u32),
}

/// Takes the lock `word` for `me` (a nonzero tag without [`CONTENDED`]):
/// once at once, then `yields` rounds of `spins` tries with the core offered
/// between rounds, then sleeping, marked contended, until it is free or
/// `wait` says its owner died.
pub(crate) fn lock(
    word: &AtomicU32,
    me: u32,
    spins: u32,
    yields: u32,
    wait: &mut impl LockWait,
) -> Locked {
    let take = |from: u32, to: u32| {
        word.compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    };
    if take(0, me) {
        return Locked::Taken;
    }
    for _ in 0..yields {
        for _ in 0..spins {
            core::hint::spin_loop();
            if word.load(Ordering::Relaxed) == 0 && take(0, me) {
                return Locked::Taken;
            }
        }
        wait.relax();
    }
    loop {
        let current = word.load(Ordering::Relaxed);
        if current == 0 {
            // Others may sleep on it still: keep it marked.
            if take(0, me | CONTENDED) {
                return Locked::Taken;
            }
            continue;
        }
        match wait.watch(current) {
            Watch::Dead => return Locked::OwnerDead(current),
            Watch::Again => continue,
            Watch::Sleep => {}
        }
        if current & CONTENDED == 0
            && word
                .compare_exchange(
                    current,
                    current | CONTENDED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            continue;
        }
        wait.sleep(word, current | CONTENDED);
    }
}

/// Takes over the lock `word` from the dead owner it named as `seen`, for
/// `me`, marked contended (others may sleep on it): false when the word has
/// changed meanwhile (another caller took it over, for one).
pub(crate) fn seize(word: &AtomicU32, seen: u32, me: u32) -> bool {
    word.compare_exchange(seen, me | CONTENDED, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Releases the lock `word`: true when a caller may sleep on it, and one
/// must be woken.
pub(crate) fn unlock(word: &AtomicU32) -> bool {
    word.swap(0, Ordering::Release) & CONTENDED != 0
}

/// Waits for `status` to hold a final value (below [`ASLEEP`]): `rounds`
/// rounds of `spins` reads with `relax` between rounds, then — still not
/// final — marks it `ASLEEP` and calls `sleep(status, ASLEEP)`, unless a
/// final value came first. The caller reads the word again and decides.
pub(crate) fn await_status(
    status: &AtomicU32,
    rounds: u32,
    spins: u32,
    mut relax: impl FnMut(),
    sleep: impl FnOnce(&AtomicU32, u32),
) {
    for _ in 0..rounds {
        for _ in 0..spins {
            if status.load(Ordering::Acquire) < ASLEEP {
                return;
            }
            core::hint::spin_loop();
        }
        relax();
    }
    let marked = status
        .compare_exchange(WAITING, ASLEEP, Ordering::AcqRel, Ordering::Acquire)
        .map_or_else(|seen| seen == ASLEEP, |_| true);
    if marked {
        sleep(status, ASLEEP);
    }
}
