//! Model checking of the lock word and the waiter's status word: loom runs
//! `core/src/protocol.rs` itself, with its atomics in place of the
//! processor's, over every interleaving of a few threads up to a bound on
//! preemptions, and under the weaker orderings the source asks for. A futex
//! is modelled with loom's mutex and condition variable, so a wake-up that
//! is lost leaves a thread asleep for ever, which loom reports as a
//! deadlock; loom also reports two threads touching the data a lock or a
//! status word guards without an order between them.

#[path = "../src/protocol.rs"]
mod protocol;

/// The atomics `protocol` is written over: loom's.
mod atomic {
    pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};
}

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use protocol::{LockWait, Locked, Watch, ASLEEP, WAITING};

/// Preemptions loom tries per execution: enough for each thread to be cut
/// off at any point of one operation.
const PREEMPTIONS: usize = 3;

fn model(body: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(PREEMPTIONS);
    builder.check(body);
}

/// A futex: `wait` sleeps while the word holds the value, checked under the
/// same mutex that `wake` takes, as the kernel checks it under its bucket
/// lock.
#[derive(Default)]
struct Futex {
    lock: Mutex<()>,
    changed: Condvar,
}

impl Futex {
    fn wait(&self, word: &AtomicU32, value: u32) {
        let guard = self.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) == value {
            drop(self.changed.wait(guard).unwrap());
        }
    }

    fn wake(&self) {
        let _guard = self.lock.lock().unwrap();
        self.changed.notify_all();
    }
}

/// A lock, the futex its sleepers use, and a counter it guards.
#[derive(Default)]
struct Guarded {
    word: AtomicU32,
    futex: Futex,
    count: UnsafeCell<u32>,
    /// Owners that died holding the lock (by tag bit).
    dead: AtomicU32,
}

/// A caller waiting as the core's does: it yields between spins, sleeps on
/// the futex, and takes over from an owner that died (found on the second
/// look, as the core finds a dead process only after an interval).
struct Waiting<'g> {
    guarded: &'g Guarded,
    looked: bool,
}

impl LockWait for Waiting<'_> {
    fn relax(&mut self) {
        thread::yield_now();
    }

    fn watch(&mut self, seen: u32) -> Watch {
        let owner = seen & !protocol::CONTENDED;
        if self.guarded.dead.load(Ordering::Acquire) & owner == 0 {
            return Watch::Sleep;
        }
        if !std::mem::replace(&mut self.looked, true) {
            return Watch::Again;
        }
        Watch::Dead
    }

    fn sleep(&mut self, word: &AtomicU32, value: u32) {
        self.guarded.futex.wait(word, value);
    }
}

impl Guarded {
    /// Takes the lock for `me`, taking it over from a dead owner.
    fn lock(&self, me: u32) {
        let mut waiting = Waiting {
            guarded: self,
            looked: false,
        };
        loop {
            match protocol::lock(&self.word, me, 1, 1, &mut waiting) {
                Locked::Taken => return,
                Locked::OwnerDead(seen) => {
                    if protocol::seize(&self.word, seen, me) {
                        return;
                    }
                }
            }
        }
    }

    fn unlock(&self) {
        if protocol::unlock(&self.word) {
            self.futex.wake();
        }
    }

    /// One increment of the guarded counter, which loom checks is never
    /// touched by two threads without the lock between them.
    fn increment(&self) {
        self.count.with_mut(|count| {
            // SAFETY: under the lock (which is what loom checks).
            unsafe { *count += 1 }
        });
    }

    /// One increment under the lock by `me`.
    fn locked_increment(&self, me: u32) {
        self.lock(me);
        self.increment();
        self.unlock();
    }

    fn count(&self) -> u32 {
        // SAFETY: every other thread has been joined.
        self.count.with(|count| unsafe { *count })
    }
}

/// A thread per tag in `tags`, each making one increment under the lock.
fn increment_on_threads(guarded: &Arc<Guarded>, tags: [u32; 2]) -> Vec<thread::JoinHandle<()>> {
    tags.into_iter()
        .map(|me| {
            let guarded = guarded.clone();
            thread::spawn(move || guarded.locked_increment(me))
        })
        .collect()
}

#[test]
fn the_lock_excludes_and_wakes_its_sleepers() {
    model(|| {
        let guarded = Arc::new(Guarded::default());
        let others = increment_on_threads(&guarded, [1, 2]);
        guarded.locked_increment(4);
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(guarded.count(), 3);
        assert_eq!(guarded.word.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn a_lock_whose_owner_died_is_seized_by_one_caller_and_then_handed_on() {
    model(|| {
        let guarded = Arc::new(Guarded::default());
        // Owner 1 takes the lock and dies holding it.
        guarded.lock(1);
        guarded.increment();
        guarded.dead.store(1, Ordering::Release);
        let others = increment_on_threads(&guarded, [2, 4]);
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(guarded.count(), 3);
    });
}

/// A queued waiter's status word, the futex it sleeps on, and the result a
/// waker leaves it.
#[derive(Default)]
struct Queued {
    status: AtomicU32,
    futex: Futex,
    result: UnsafeCell<u32>,
}

impl Queued {
    fn new() -> Queued {
        let queued = Queued::default();
        queued.status.store(WAITING, Ordering::Relaxed);
        queued
    }

    /// The waiter: waits, as the core's waiters do, until the status is
    /// final, and reads the result.
    fn wait(&self) -> u32 {
        loop {
            protocol::await_status(&self.status, 1, 1, thread::yield_now, |word, value| {
                self.futex.wait(word, value)
            });
            let status = self.status.load(Ordering::Acquire);
            if status < ASLEEP {
                // SAFETY: the waker wrote it before the final status
                // (which loom checks is ordered before this read).
                return self.result.with(|result| unsafe { *result }) + status;
            }
        }
    }

    /// The waker: leaves a result, exchanges a final status in as
    /// `Txn::swap` does (a compare-and-swap loop, acquire and release), and
    /// says whether the waiter must be woken.
    fn complete(&self, result: u32, status: u32) -> bool {
        self.result.with_mut(|slot| {
            // SAFETY: the waiter reads it only once the status is final.
            unsafe { *slot = result }
        });
        loop {
            let old = self.status.load(Ordering::Relaxed);
            if self
                .status
                .compare_exchange(old, status, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return old == ASLEEP;
            }
        }
    }
}

#[test]
fn a_waiter_is_never_left_asleep_and_sees_what_its_waker_left() {
    model(|| {
        let queued = Arc::new(Queued::new());
        let waker = {
            let queued = queued.clone();
            thread::spawn(move || {
                if queued.complete(40, 2) {
                    queued.futex.wake();
                }
            })
        };
        assert_eq!(queued.wait(), 42);
        waker.join().unwrap();
    });
}

#[test]
fn a_waker_that_wakes_after_releasing_its_lock_loses_no_waiter() {
    model(|| {
        let guarded = Arc::new(Guarded::default());
        let queued = Arc::new(Queued::new());
        let waker = {
            let (guarded, queued) = (guarded.clone(), queued.clone());
            thread::spawn(move || {
                guarded.lock(1);
                let asleep = queued.complete(7, 0);
                guarded.unlock();
                if asleep {
                    queued.futex.wake();
                }
            })
        };
        // The waiter acts on a final status only after taking the lock
        // once, where the waker's section is whole.
        let result = queued.wait();
        guarded.lock(2);
        assert!(queued.status.load(Ordering::Relaxed) < ASLEEP);
        guarded.unlock();
        assert_eq!(result, 7);
        waker.join().unwrap();
    });
}
