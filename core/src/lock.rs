//! Robust locks with an undo journal.
//!
//! # Behaviour
//!
//! A lock protects part of the arena (an object, a table, the heap). Its holder
//! may die at any instruction, killed by a signal or crashing. The next process
//! that wants the lock sees that the owner is dead, takes the lock over, and
//! rolls the protected memory back to the state it had before the dead
//! holder's critical section began. Nothing is half-done: an operation either
//! committed before its process died, or it never happened.
//!
//! # Internals
//!
//! A [`LockRecord`] is an owner word followed by a journal of pre-images:
//! `(offset, old value)` pairs, one per word the holder has changed. A
//! critical section is a [`Txn`]: each write through [`Txn::set`] first
//! appends the word's old value to the journal, then publishes the new journal
//! length, then stores the new value. [`Txn::commit`] empties the journal and
//! releases the lock; dropping a `Txn` without committing rolls it back, so an
//! error returned half-way through an operation (`?`) leaves nothing behind.
//!
//! An operation that needs several locks (a table, then an object in it) takes
//! them in the fixed order table → object → heap, records every write in the
//! journal of the outermost lock it holds, and releases the inner locks only
//! after that journal is committed. The recovery of an inner lock first takes
//! its parent ([`Txn::lock_nested`] names it), so the parent's journal — which
//! covers the inner lock's words too — is rolled back before the inner lock is
//! handed on.
//!
//! # The owner word
//!
//! Bit layout: bits 0..=30 the owner's [`Tag`] (0 when free), bit 31
//! `CONTENDED`, set by a waiter before it sleeps so that the holder's release
//! knows to wake someone.
//!
//! # Memory ordering
//!
//! 1. Acquiring is a compare-and-swap with `Acquire`; releasing is a swap with
//!    `Release`: everything written under the lock is visible to the next
//!    holder.
//! 2. In `Txn::set` the journal length is stored with `Release` after the
//!    entry, and the new value with `Release` after the length, so neither the
//!    compiler nor the processor lets the value change before its pre-image is
//!    recorded. A process that dies has executed a prefix of its program; with
//!    these orders, any changed word of that prefix has its pre-image in the
//!    journal. The recoverer reads them only after seeing the owner dead, which
//!    the kernel reports after the dead process's last store has been made.
//! 3. Recovery is idempotent: rolling back writes the same pre-images again and
//!    empties the journal last, so a recoverer that dies in turn leaves work the
//!    next one redoes.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::arena::{Off, Record, Word};
use crate::errno::{Errno, Result};
use crate::host::{Deadline, Host};
use crate::protocol::{self, LockWait, Locked, Watch, CONTENDED};
use crate::registry::{Owner, Tag};
use crate::Namespace;

/// How many times an acquirer re-reads a held lock before it yields its
/// core, and how many times it yields before it sleeps.
const SPINS: u32 = 100;
const YIELDS: u32 = 10;

/// How long a waiter sleeps before it asks whether the owner still lives.
const LIVENESS_INTERVAL_NS: u64 = 2_000_000;

/// One pre-image in a journal.
#[repr(C)]
pub struct JournalEntry {
    offset: Word,
    old: Word,
}

// SAFETY: `repr(C)`, two words, no padding.
unsafe impl Record for JournalEntry {}

/// A lock's words before its journal.
#[repr(C)]
pub(crate) struct LockHead {
    owner: Word,
    journal_len: Word,
    /// Where entries past the inline ones go: the offset of an array of
    /// [`JournalEntry`] lent by the holder for one critical section (0: none).
    overflow: Word,
    /// How many entries the overflow array holds.
    overflow_capacity: Word,
}

impl LockHead {
    fn release<H: Host>(&self, ns: &Namespace<'_, H>) {
        if protocol::unlock(self.owner.atomic()) {
            ns.host.wake(self.owner.atomic(), 1);
        }
    }
}

/// How a caller waits for a held lock: it sleeps, and once the same owner
/// has held the lock for [`LIVENESS_INTERVAL_NS`], asks whether that owner
/// still lives.
struct Watcher<'n, 'm, H: Host> {
    ns: &'n Namespace<'m, H>,
    /// The caller's own tag.
    me: Tag,
    /// The owner watched and when to ask about it.
    watched: Option<(u32, Deadline)>,
}

impl<H: Host> Watcher<'_, '_, H> {
    /// When to ask whether the owner that `seen` names lives.
    fn deadline(&mut self, seen: u32) -> Deadline {
        let owner = seen & !CONTENDED;
        match self.watched {
            Some((watched, deadline)) if watched == owner => deadline,
            _ => {
                let deadline = Deadline::after(self.ns.host.now(), LIVENESS_INTERVAL_NS);
                self.watched = Some((owner, deadline));
                deadline
            }
        }
    }
}

impl<H: Host> LockWait for Watcher<'_, '_, H> {
    fn relax(&mut self) {
        self.ns.host.yield_now();
    }

    fn watch(&mut self, seen: u32) -> Watch {
        let owner = Tag::from_raw(seen & !CONTENDED);
        // The caller's own registry slot under another tag: a registration
        // of that slot that ended before the caller's began, whatever the
        // slot's words say now (a scribble can make them agree with it).
        if owner != self.me && owner.slot().is_some() && owner.slot() == self.me.slot() {
            return Watch::Dead;
        }
        // A freed or garbage owner slot is cheap to see; asking the host
        // whether a process lives is a system call, made only when the
        // owner has held the lock for a whole interval.
        let deadline = self.deadline(seen);
        if self.ns.registry.owner(owner) == Owner::Gone {
            return Watch::Dead;
        }
        if self.ns.host.now() >= deadline {
            if self.ns.registry.owner_is_dead(&self.ns.host, owner) {
                return Watch::Dead;
            }
            self.watched = None;
            return Watch::Again;
        }
        Watch::Sleep
    }

    fn sleep(&mut self, word: &AtomicU32, value: u32) {
        let deadline = self.deadline(value);
        self.ns.host.wait(word, value, Some(deadline));
    }
}

/// A lock and its journal of up to `N` pre-images.
#[repr(C)]
pub struct LockRecord<const N: usize> {
    head: LockHead,
    journal: [JournalEntry; N],
}

// SAFETY: `repr(C)`, words and an array of two-word records, no padding.
unsafe impl<const N: usize> Record for LockRecord<N> {}

impl<const N: usize> LockRecord<N> {
    /// The lock as the capacity-free view that transactions use.
    pub(crate) fn view(&self) -> LockView<'_> {
        LockView {
            head: &self.head,
            journal: &self.journal,
        }
    }

    /// The owner's tag, or `None` when free (for checks).
    pub(crate) fn owner(&self) -> Option<Tag> {
        match self.head.owner.get() & !CONTENDED {
            0 => None,
            raw => Some(Tag::from_raw(raw)),
        }
    }

    /// The number of journal entries (for checks; 0 unless a holder is at work or died).
    pub(crate) fn journal_len(&self) -> u32 {
        self.head.journal_len.get()
    }

    /// How many entries the journal can hold now, overflow included.
    pub(crate) fn capacity(&self) -> u32 {
        (N as u32).saturating_add(self.head.overflow_capacity.get())
    }
}

/// A lock of any journal capacity: two references, so that a transaction
/// is small enough to move in registers.
#[derive(Clone, Copy)]
pub(crate) struct LockView<'m> {
    head: &'m LockHead,
    journal: &'m [JournalEntry],
}

impl<'m> LockView<'m> {
    /// Journal entry `index`: inline, or in the overflow array (checked).
    fn entry<H: Host>(&self, ns: &Namespace<'m, H>, index: u32) -> Result<&'m JournalEntry> {
        if let Some(entry) = self.journal.get(index as usize) {
            return Ok(entry);
        }
        let beyond = index - self.journal.len() as u32;
        if beyond >= self.head.overflow_capacity.get() {
            return Err(Errno::CORRUPT);
        }
        ns.arena
            .get(Off::<JournalEntry>::new(self.head.overflow.get()).index(beyond)?)
    }

    /// Rolls the journal back to `keep` entries (newest entry first). A journal
    /// whose length or offsets are impossible is emptied, and reported.
    fn roll_back_to<H: Host>(&self, ns: &Namespace<'m, H>, keep: u32) -> Result<()> {
        let len = self.head.journal_len.get();
        let mut outcome = Ok(());
        for index in (keep..len).rev() {
            let restored = self.entry(ns, index).and_then(|entry| {
                let word = ns.arena.get(Off::<Word>::new(entry.offset.get()))?;
                word.set(entry.old.get());
                Ok(())
            });
            if let Err(err) = restored {
                outcome = Err(err);
                break;
            }
        }
        let keep = if outcome.is_ok() { keep } else { 0 };
        self.head
            .journal_len
            .atomic()
            .store(keep, Ordering::Release);
        outcome
    }

    /// Rolls the whole journal back and forgets the overflow array.
    fn roll_back<H: Host>(&self, ns: &Namespace<'m, H>) -> Result<()> {
        let outcome = self.roll_back_to(ns, 0);
        self.head.overflow.atomic().store(0, Ordering::Release);
        self.head.overflow_capacity.set(0);
        outcome
    }

    /// Empties the journal: everything so far is permanent.
    fn forget(&self) {
        self.head.journal_len.atomic().store(0, Ordering::Release);
    }

    fn release<H: Host>(&self, ns: &Namespace<'m, H>) {
        self.head.release(ns);
    }

    /// Takes the lock. When its owner is found dead, `parent` (the lock that
    /// covers this one's words, if any) is taken first, then this lock is taken
    /// over and rolled back.
    fn acquire<H: Host>(&self, ns: &Namespace<'m, H>, parent: Option<LockView<'m>>) -> Result<()> {
        let me = ns.identity()?.0;
        // Spinning, and yielding between spins so that a holder that lost
        // its core gets it back: a lock is held for a short section, and a
        // caller asleep on it would let those on a core overtake it.
        let mut wait = Watcher {
            ns,
            me,
            watched: None,
        };
        match protocol::lock(self.head.owner.atomic(), me.raw(), SPINS, YIELDS, &mut wait) {
            Locked::Taken => Ok(()),
            Locked::OwnerDead(seen) => self.take_over(ns, parent, seen),
        }
    }

    /// Takes over a lock whose owner (seen as `seen` in the owner word) is dead.
    fn take_over<H: Host>(
        &self,
        ns: &Namespace<'m, H>,
        parent: Option<LockView<'m>>,
        seen: u32,
    ) -> Result<()> {
        if let Some(parent) = parent {
            parent.acquire(ns, None)?;
        }
        let won = protocol::seize(self.head.owner.atomic(), seen, ns.identity()?.0.raw());
        let rolled_back = if won { self.roll_back(ns) } else { Ok(()) };
        if let Some(parent) = parent {
            parent.release(ns);
        }
        match (won, rolled_back) {
            (false, _) => self.acquire(ns, parent),
            (true, Ok(())) => Ok(()),
            (true, Err(err)) => {
                self.release(ns);
                Err(err)
            }
        }
    }
}

/// A position in a section's journal ([`Txn::savepoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Savepoint(u32);

/// A critical section: the locks held and the journal that records every
/// change, committed with [`Txn::commit`] or rolled back on drop.
pub struct Txn<'n, 'm, H: Host> {
    ns: &'n Namespace<'m, H>,
    outer: LockView<'m>,
    /// Inner locks held until the outer journal is committed (table → object → heap: at most two).
    inner: [Option<&'m LockHead>; 2],
    /// Whether the locks are still held (false once committed).
    held: bool,
}

impl<'n, 'm, H: Host> Txn<'n, 'm, H> {
    /// Takes `lock` and opens a critical section under it.
    pub(crate) fn begin<const N: usize>(
        ns: &'n Namespace<'m, H>,
        lock: &'m LockRecord<N>,
    ) -> Result<Self> {
        Self::open(ns, lock.view(), None)
    }

    /// Takes `lock`, whose words are also covered by `parent`'s journal when
    /// an operation holds both, and opens a critical section under it.
    pub(crate) fn begin_under<const N: usize, const P: usize>(
        ns: &'n Namespace<'m, H>,
        lock: &'m LockRecord<N>,
        parent: &'m LockRecord<P>,
    ) -> Result<Self> {
        Self::open(ns, lock.view(), Some(parent.view()))
    }

    fn open(
        ns: &'n Namespace<'m, H>,
        outer: LockView<'m>,
        parent: Option<LockView<'m>>,
    ) -> Result<Self> {
        outer.acquire(ns, parent)?;
        Ok(Txn {
            ns,
            outer,
            inner: [None, None],
            held: true,
        })
    }

    /// Takes `lock` as an inner lock of this section. Writes to the words it
    /// protects go to this section's journal; it is released after commit.
    pub(crate) fn lock_nested<const N: usize>(&mut self, lock: &'m LockRecord<N>) -> Result<()> {
        let free = self
            .inner
            .iter()
            .position(Option::is_none)
            .ok_or(Errno::EINVAL)?;
        let view = lock.view();
        // This section holds the parent already (and recovered it if need be),
        // so a dead inner holder's changes are covered by the parent's journal.
        view.acquire(self.ns, None)?;
        self.inner[free] = Some(view.head);
        Ok(())
    }

    /// Writes `value` to `word`, recording its old value first. The word must
    /// be one the locks of this section protect. `ENOMEM` when the journal is
    /// full (lend it room with [`Txn::lend_overflow`]).
    pub fn set(&mut self, word: &'m Word, value: u32) -> Result<()> {
        let old = word.get();
        if old == value {
            return Ok(());
        }
        let len = self.outer.head.journal_len.get();
        let entry = self.outer.entry(self.ns, len).map_err(|_| Errno::ENOMEM)?;
        entry.offset.set(self.ns.arena.offset_of(word)?);
        entry.old.set(old);
        // Ordering 2 (module docs): the entry before the length, the length before the value.
        self.outer
            .head
            .journal_len
            .atomic()
            .store(len + 1, Ordering::Release);
        word.atomic().store(value, Ordering::Release);
        Ok(())
    }

    /// [`Txn::set`] for a word that a process outside the lock may change at
    /// the same time by compare-and-swap (a sleeper's status word): returns
    /// the value replaced, which the journal records exactly.
    pub fn swap(&mut self, word: &'m Word, value: u32) -> Result<u32> {
        let offset = self.ns.arena.offset_of(word)?;
        loop {
            let old = word.get();
            let len = self.outer.head.journal_len.get();
            let entry = self.outer.entry(self.ns, len).map_err(|_| Errno::ENOMEM)?;
            entry.offset.set(offset);
            entry.old.set(old);
            self.outer
                .head
                .journal_len
                .atomic()
                .store(len + 1, Ordering::Release);
            if word
                .atomic()
                .compare_exchange(old, value, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(old);
            }
            // Changed under us: withdraw the entry and try again.
            self.outer
                .head
                .journal_len
                .atomic()
                .store(len, Ordering::Release);
        }
    }

    /// Lends the journal `capacity` more entries at arena offset `entries`
    /// (an array of `JournalEntry` the caller owns until the section ends),
    /// for a section that changes more words than the lock's inline journal
    /// holds. Only while the inline journal is not yet full.
    pub fn lend_overflow(&mut self, entries: u32, capacity: u32) -> Result<()> {
        if self.outer.head.journal_len.get() as usize > self.outer.journal.len() {
            return Err(Errno::EINVAL);
        }
        self.outer.head.overflow_capacity.set(capacity);
        // Published before any entry goes there; a recoverer reads it after the owner died.
        self.outer
            .head
            .overflow
            .atomic()
            .store(entries, Ordering::Release);
        Ok(())
    }

    /// The number of entries written so far: a point to roll back to.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.outer.head.journal_len.get())
    }

    /// Undoes every change made since `savepoint`, keeping the locks.
    pub fn roll_back_to(&mut self, savepoint: Savepoint) -> Result<()> {
        self.outer.roll_back_to(self.ns, savepoint.0)
    }

    /// Undoes every change of the section, keeping the locks.
    pub fn roll_back(&mut self) -> Result<()> {
        self.outer.roll_back_to(self.ns, 0)
    }

    /// Makes every change so far permanent, keeping the locks: the state now
    /// is one the protected objects may be left in.
    pub fn checkpoint(&mut self) {
        self.outer.forget();
    }

    /// Writes a 64-bit value as two journaled words.
    pub fn set64(&mut self, word: &'m crate::arena::Word64, value: u64) -> Result<()> {
        let (lo, hi) = word.halves();
        self.set(lo, value as u32)?;
        self.set(hi, (value >> 32) as u32)
    }

    /// Makes every change permanent and releases the locks.
    pub fn commit(mut self) {
        self.outer
            .head
            .journal_len
            .atomic()
            .store(0, Ordering::Release);
        self.release_all();
    }

    fn release_all(&mut self) {
        for inner in self.inner.iter_mut().rev() {
            if let Some(lock) = inner.take() {
                lock.release(self.ns);
            }
        }
        self.outer.release(self.ns);
        self.held = false;
    }
}

impl<H: Host> Drop for Txn<'_, '_, H> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        // The only error possible is a journal that someone else has scribbled
        // over; rolling back what can be rolled back is the best left to do.
        let _ = self.outer.roll_back(self.ns);
        self.release_all();
    }
}
