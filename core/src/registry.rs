//! The process registry: one slot per process that uses the arena.
//!
//! A slot holds the process's pid, its start time (so that a reused pid is not
//! taken for the old process) and a generation number that changes every time
//! the slot is taken. Lock words name their owner by a [`Tag`] — slot number
//! and generation — so a lock held by a process whose slot has since been
//! freed, or freed and taken again, is seen to have a dead owner.
//!
//! # Slot states
//!
//! - `pid == 0`: free.
//! - `pid != 0`: taken. The taker claims the slot with a compare-and-swap of
//!   `pid` from 0, then writes `start` and `image`, then publishes the new
//!   `generation` with a release store; tags made from a slot carry that
//!   generation. `forking` then tells an ordinary slot from one waiting for a
//!   fork child, one a reaper has claimed, and one kept after its process
//!   died with a checkpointed undo list (see `crate::checkpoint`).
//!
//! # One slot per process
//!
//! Kernel System V IPC keeps per-process state (`SEM_UNDO` adjustments), so
//! every registration of one program shares its slot (`users` counts them).
//! After `execve` the process keeps its pid and start time but runs a new
//! image: the new image adopts the slot — and its undo list, which survives
//! exec as the kernel's does — with a new generation, so that locks the old
//! image held are seen to have a dead owner.
//!
//! A bitmap beside the slots marks every slot ever taken, and a summary marks
//! every bitmap word with a bit set; scans of the registry visit only those
//! slots, so they touch no page of slots never used (the arena file stays
//! sparse) and read a few words for an empty registry of 32,768 slots. Bits
//! are set before their slot is claimed and never cleared, so they are hints
//! that cannot hide a taken slot.
//!
//! # Fork
//!
//! A child inherits its parent's shared memory attachments at the instant of
//! `fork`, so they must count from that instant. Before a fork the parent
//! reserves a slot for the child ([`Registry::reserve_for_fork`]), with the
//! parent's identity and `forking` set, and copies its attachment records
//! into it; the child claims it ([`Registry::claim_fork`]), and a parent
//! whose fork failed settles and frees it. A pending slot is never taken for
//! the parent's own (registration skips it), and counts as alive while the
//! parent is.
//!
//! Undo lists and shared memory attachments hang off the slot. A slot is
//! freed by [`crate::Namespace`] when the program's last registration
//! leaves, or, for a process that died without leaving, by whoever reaps it
//! (the lifecycle layer), after claiming it with [`Registry::claim_dead`].

use core::num::NonZeroU32;
use core::sync::atomic::Ordering;

use crate::arena::{Arena, Off, Record, Word, Word64};
use crate::errno::{Errno, Result};
use crate::host::{Host, Image, Liveness, ProcessId};
use crate::lock::LockRecord;

/// One process slot.
#[repr(C)]
pub struct ProcSlot {
    pid: Word,
    generation: Word,
    start: Word64,
    image: Word,
    /// Registrations of this image that have not left.
    users: Word,
    /// The process's first undo record (see `sem`), under `lock`.
    pub(crate) undo_head: Word,
    /// The process's first shared memory attachment (see `shm`), under `lock`.
    pub(crate) attach_head: Word,
    /// `FORK_*`: whether the slot waits for a forked child to claim it.
    forking: Word,
    /// For a pending slot, the tag of the parent that reserved it.
    parent: Word,
    /// 1 when the process's undo list was exported for a restart
    /// (`crate::checkpoint`): if it dies without leaving, the list is kept for
    /// the restarted process to import instead of being applied.
    held: Word,
    /// Keeps slots a multiple of 8 bytes (128).
    _pad: Word,
    /// Protects the process's lists (its undo records and attachments).
    pub(crate) lock: LockRecord<8>,
}

/// `forking`: an ordinary slot.
const FORK_NONE: u32 = 0;
/// `forking`: reserved by a parent for the child of a fork.
const FORK_PENDING: u32 = 1;
/// `forking`: being claimed by the child, or settled after a failed fork.
const FORK_TAKEN: u32 = 2;
/// `forking`: the process died holding a checkpointed undo list, which the
/// slot keeps (with its pid and start time) for an import; nothing else is left.
const FORK_KEPT: u32 = 3;
/// `forking`: the process died without leaving and another is reaping it;
/// the low bits hold the reaper's tag ([`Registry::claim_dead`]).
const REAPING: u32 = 1 << 31;

/// A slot reserved before a fork for the child: its number and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkSlot {
    index: u32,
    generation: u32,
}

/// How a registration found its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    /// A free slot, or this image's own.
    Fresh(Tag),
    /// The slot the process's previous image left (after `execve`).
    Adopted(Tag),
}

// SAFETY: `repr(C)`, words and a lock record, no padding.
unsafe impl Record for ProcSlot {}

// Slots follow one another: each must keep `start` 8-byte aligned.
const _: () = assert!(ProcSlot::SIZE % 8 == 0);

/// Bits of a tag that hold the slot number plus one.
const SLOT_BITS: u32 = 17;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// Bits above the slot number that hold the generation (bit 31 stays free for
/// the lock word's contended flag).
const GENERATION_MASK: u32 = (1 << 14) - 1;

/// The name of a slot at one generation: what a lock word records as its owner.
///
/// Layout: bits 0..=16 slot number + 1 (never 0), bits 17..=30 generation,
/// bit 31 always clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag(u32);

impl Tag {
    fn new(slot: u32, generation: u32) -> Tag {
        Tag((slot + 1) | (generation & GENERATION_MASK) << SLOT_BITS)
    }

    /// A tag from a lock word's owner bits (not checked: see [`Registry::owner`]).
    pub(crate) fn from_raw(raw: u32) -> Tag {
        Tag(raw)
    }

    /// The raw value stored in lock words.
    pub fn raw(self) -> u32 {
        self.0
    }

    /// The slot number, or `None` for a value no tag can have.
    pub(crate) fn slot(self) -> Option<u32> {
        (self.0 & SLOT_MASK).checked_sub(1)
    }

    fn generation(self) -> u32 {
        (self.0 >> SLOT_BITS) & GENERATION_MASK
    }
}

/// What a lock word's owner tag refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The slot is free, taken again by another process, or the tag is garbage:
    /// the owner is certainly gone.
    Gone,
    /// The slot still belongs to this process, which may or may not run.
    Process(ProcessId),
}

/// The registry region of an arena.
#[derive(Clone, Copy)]
pub(crate) struct Registry<'m> {
    arena: Arena<'m>,
    ever_used: Off<Word>,
    summary: Off<Word>,
    base: Off<ProcSlot>,
    count: NonZeroU32,
}

impl<'m> Registry<'m> {
    pub(crate) fn new(
        arena: Arena<'m>,
        ever_used: Off<Word>,
        summary: Off<Word>,
        base: Off<ProcSlot>,
        count: NonZeroU32,
    ) -> Self {
        Registry {
            arena,
            ever_used,
            summary,
            base,
            count,
        }
    }

    fn ever_used_word(&self, index: u32) -> Result<&'m Word> {
        self.arena.get(self.ever_used.index(index / 32)?)
    }

    fn summary_word(&self, index: u32) -> Result<&'m Word> {
        self.arena.get(self.summary.index(index / 1024)?)
    }

    /// Marks slot `index` as used, in the bitmap and its summary.
    fn mark_used(&self, index: u32) -> Result<()> {
        self.summary_word(index)?
            .atomic()
            .fetch_or(1 << (index / 32 % 32), Ordering::Release);
        self.ever_used_word(index)?
            .atomic()
            .fetch_or(1 << (index % 32), Ordering::Release);
        Ok(())
    }

    /// Scribbles `tag`'s slot back one generation, as if the process had
    /// registered there before, and returns the tag of that registration
    /// (for tests).
    #[cfg(test)]
    pub(crate) fn forge_earlier(&self, tag: Tag) -> Tag {
        let earlier = Tag::new(tag.slot().unwrap_or(0), tag.generation().wrapping_sub(1));
        let slot = self.slot(tag.slot().unwrap_or(0)).unwrap();
        slot.generation.set(earlier.generation());
        earlier
    }

    fn slot(&self, index: u32) -> Result<&'m ProcSlot> {
        if index >= self.count.get() {
            return Err(Errno::CORRUPT);
        }
        self.arena.get(self.base.index(index)?)
    }

    /// The slot of `process` running `image`: its own if this image already
    /// registered (shared), the one its previous image left (adopted after
    /// `execve`), or a free one; `ENOSPC` when every slot is taken.
    pub(crate) fn register(&self, process: ProcessId, image: Image) -> Result<Registered> {
        if process.pid == 0 {
            return Err(Errno::EINVAL);
        }
        let own = self.live_slots().find(|&(index, p)| {
            p == process
                && self
                    .slot(index)
                    .is_ok_and(|slot| slot.forking.atomic().load(Ordering::Acquire) == FORK_NONE)
        });
        if let Some((index, _)) = own {
            let slot = self.slot(index)?;
            if slot.image.get() == image.0 {
                slot.users.atomic().fetch_add(1, Ordering::AcqRel);
                return Ok(Registered::Fresh(Tag::new(index, slot.generation.get())));
            }
            slot.image.set(image.0);
            slot.users.set(1);
            return Ok(Registered::Adopted(Tag::new(
                index,
                self.next_generation(slot),
            )));
        }
        let (index, slot) = self.take_free(process)?;
        slot.forking.set(FORK_NONE);
        slot.start.set(process.start);
        slot.image.set(image.0);
        slot.users.set(1);
        Ok(Registered::Fresh(Tag::new(
            index,
            self.next_generation(slot),
        )))
    }

    /// Claims a free slot for `process` (its `pid` set, nothing else).
    fn take_free(&self, process: ProcessId) -> Result<(u32, &'m ProcSlot)> {
        let first = process.pid % self.count;
        for step in 0..self.count.get() {
            let index = (first + step) % self.count;
            let slot = self.slot(index)?;
            if slot.pid.get() != 0 {
                continue;
            }
            self.mark_used(index)?;
            if slot.pid.get() != 0
                || slot
                    .pid
                    .atomic()
                    .compare_exchange(0, process.pid, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            slot.held.set(0);
            return Ok((index, slot));
        }
        Err(Errno::ENOSPC)
    }

    /// Reserves a slot for the child of a fork that `parent` (running
    /// `process`, `image`) is about to make; `users` stays 0 until the child
    /// claims it.
    pub(crate) fn reserve_for_fork(
        &self,
        parent: Tag,
        process: ProcessId,
        image: Image,
    ) -> Result<(ForkSlot, &'m ProcSlot)> {
        let (index, slot) = self.take_free(process)?;
        slot.forking.atomic().store(FORK_PENDING, Ordering::Release);
        slot.parent.set(parent.raw());
        slot.start.set(process.start);
        slot.image.set(image.0);
        slot.users.set(0);
        let generation = self.next_generation(slot);
        Ok((ForkSlot { index, generation }, slot))
    }

    /// Takes the pending slot `reserved` out of the pending state, for the
    /// child to claim or for the parent to settle after a failed fork; `None`
    /// if the other side took it first (or it is not pending).
    pub(crate) fn take_fork(&self, reserved: ForkSlot) -> Option<&'m ProcSlot> {
        let slot = self.slot(reserved.index).ok()?;
        let current = slot.generation.atomic().load(Ordering::Acquire);
        let taken = current == reserved.generation
            && slot
                .forking
                .atomic()
                .compare_exchange(
                    FORK_PENDING,
                    FORK_TAKEN,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
        taken.then_some(slot)
    }

    /// Whether `slot` is an ordinary one, not waiting for (or being claimed
    /// by) the child of a fork: only then do its pid and start time name its
    /// process.
    pub(crate) fn is_ordinary(&self, slot: &ProcSlot) -> bool {
        slot.forking.atomic().load(Ordering::Acquire) == FORK_NONE
    }

    /// Claims the ordinary slot of a dead process for `reaper` to settle
    /// what it left and free it, or takes over a claim whose reaper died in
    /// turn (the settling is idempotent). Only one reaper holds a slot at a
    /// time, so no two walk and free the dead process's lists together.
    /// `None` when the slot cannot be claimed; else the dead reaper whose
    /// claim was taken over, if there was one: its own lock may hold an
    /// unfinished change to the slot's lists, which the new reaper recovers
    /// before it reads them.
    pub(crate) fn claim_dead<H: Host>(
        &self,
        host: &H,
        slot: &ProcSlot,
        reaper: Tag,
    ) -> Option<Option<Tag>> {
        let forking = slot.forking.atomic();
        let seen = forking.load(Ordering::Acquire);
        let previous = (seen & REAPING != 0).then(|| Tag::from_raw(seen & !REAPING));
        let claimable = match previous {
            None => seen == FORK_NONE,
            Some(previous) => previous != reaper && self.owner_is_dead(host, previous),
        };
        let claimed = claimable
            && forking
                .compare_exchange(
                    seen,
                    REAPING | reaper.raw(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
        claimed.then_some(previous)
    }

    /// Marks the slot a checkpointed process died in as kept (its reaper
    /// has settled everything but the undo list).
    pub(crate) fn keep(&self, slot: &ProcSlot) {
        slot.forking.atomic().store(FORK_KEPT, Ordering::Release);
    }

    /// Whether `slot` keeps a dead process's checkpointed undo list.
    pub(crate) fn is_kept(&self, slot: &ProcSlot) -> bool {
        slot.forking.atomic().load(Ordering::Acquire) == FORK_KEPT
    }

    /// Claims a kept slot for `claimant` to hand its undo list over or
    /// apply it; [`Registry::keep`] gives it back.
    pub(crate) fn claim_kept(&self, slot: &ProcSlot, claimant: Tag) -> bool {
        slot.forking
            .atomic()
            .compare_exchange(
                FORK_KEPT,
                REAPING | claimant.raw(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Whether the process's undo list is held for a restart.
    pub(crate) fn is_held(&self, slot: &ProcSlot) -> bool {
        slot.held.atomic().load(Ordering::Acquire) != 0
    }

    /// Holds (or stops holding) the process's undo list for a restart.
    pub(crate) fn hold(&self, slot: &ProcSlot, held: bool) {
        slot.held.atomic().store(u32::from(held), Ordering::Release);
    }

    /// The ordinary or kept slot of `process`.
    pub(crate) fn find(&self, process: ProcessId) -> Option<&'m ProcSlot> {
        self.live_slots()
            .filter(|&(_, p)| p == process)
            .filter_map(|(index, _)| self.slot(index).ok())
            .find(|slot| self.is_ordinary(slot) || self.is_kept(slot))
    }

    /// Whether `slot` is a dead process's, claimed by a reaper.
    pub(crate) fn is_reaping(&self, slot: &ProcSlot) -> bool {
        slot.forking.atomic().load(Ordering::Acquire) & REAPING != 0
    }

    /// Makes a slot taken by [`Registry::take_fork`] the child's own: its
    /// identity, one registration, a new generation.
    pub(crate) fn claim_fork(
        &self,
        reserved: ForkSlot,
        slot: &ProcSlot,
        process: ProcessId,
        image: Image,
    ) -> Tag {
        slot.start.set(process.start);
        slot.image.set(image.0);
        slot.users.set(1);
        slot.pid.atomic().store(process.pid, Ordering::Release);
        slot.forking.atomic().store(FORK_NONE, Ordering::Release);
        Tag::new(reserved.index, self.next_generation(slot))
    }

    fn next_generation(&self, slot: &ProcSlot) -> u32 {
        let generation = match (slot.generation.get().wrapping_add(1)) & GENERATION_MASK {
            0 => 1,
            g => g,
        };
        slot.generation
            .atomic()
            .store(generation, Ordering::Release);
        generation
    }

    /// The slot at `index` (from [`Registry::live_slots`]).
    pub(crate) fn slot_at(&self, index: u32) -> Result<&'m ProcSlot> {
        self.slot(index)
    }

    /// The slot `tag` names, if it is still that generation's.
    pub(crate) fn slot_of(&self, tag: Tag) -> Option<&'m ProcSlot> {
        let slot = self.slot(tag.slot()?).ok()?;
        (slot.generation.atomic().load(Ordering::Acquire) == tag.generation()).then_some(slot)
    }

    /// Ends one registration of the slot `tag` names. Returns the slot when it
    /// was the last, for the caller to settle the process's state (its undo
    /// list) and then [`Registry::free`] it.
    pub(crate) fn leave(&self, tag: Tag) -> Option<&'m ProcSlot> {
        let slot = self.slot_of(tag)?;
        (slot.users.atomic().fetch_sub(1, Ordering::AcqRel) == 1).then_some(slot)
    }

    /// Frees a slot whose process has left.
    pub(crate) fn free(&self, slot: &ProcSlot) {
        slot.pid.atomic().store(0, Ordering::Release);
    }

    /// What the owner tag of a lock word refers to.
    pub(crate) fn owner(&self, tag: Tag) -> Owner {
        let Some(slot) = tag.slot().and_then(|index| self.slot(index).ok()) else {
            return Owner::Gone;
        };
        let pid = slot.pid.atomic().load(Ordering::Acquire);
        if pid == 0 || slot.generation.atomic().load(Ordering::Acquire) != tag.generation() {
            return Owner::Gone;
        }
        Owner::Process(ProcessId {
            pid,
            start: slot.start.get(),
        })
    }

    /// Whether the owner named by `tag` is certainly dead.
    pub(crate) fn owner_is_dead<H: Host>(&self, host: &H, tag: Tag) -> bool {
        match self.owner(tag) {
            Owner::Gone => true,
            Owner::Process(process) => host.liveness(process) == Liveness::Dead,
        }
    }

    /// The taken slots. Reads the ever-used bitmap a word at a time, so a
    /// registry of many slots and few processes is scanned quickly.
    pub(crate) fn live_slots(&self) -> impl Iterator<Item = (u32, ProcessId)> + 'm {
        let this = *self;
        // The slot numbers a word's set bits stand for: bit `b`, `first + b * step`.
        let set_bits = |word: Result<&Word>, first: u32, step: u32| {
            let mut bits = word.map_or(0, |bits| bits.atomic().load(Ordering::Acquire));
            core::iter::from_fn(move || {
                let bit = (bits != 0).then(|| bits.trailing_zeros())?;
                bits &= bits - 1;
                Some(first + bit * step)
            })
        };
        (0..self.count.get().div_ceil(1024))
            .flat_map(move |summary| {
                let first = summary * 1024;
                set_bits(this.summary_word(first), first, 32)
            })
            .flat_map(move |first| set_bits(this.ever_used_word(first), first, 1))
            .filter_map(move |index| {
                let slot = this.slot(index).ok()?;
                let pid = slot.pid.get();
                (pid != 0).then(|| {
                    (
                        index,
                        ProcessId {
                            pid,
                            start: slot.start.get(),
                        },
                    )
                })
            })
    }
}

/// Bytes of one slot.
pub(crate) const SLOT_SIZE: u32 = ProcSlot::SIZE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_pack_slot_and_generation() {
        let tag = Tag::new(5, 9);
        assert_eq!(tag.slot(), Some(5));
        assert_eq!(tag.generation(), 9);
        assert_eq!(tag.raw() & (1 << 31), 0);
        assert_eq!(Tag::from_raw(0).slot(), None);
        let last = Tag::new(crate::limits::MAX_PROCS - 1, GENERATION_MASK);
        assert_eq!(last.slot(), Some(crate::limits::MAX_PROCS - 1));
        assert_eq!(last.raw() & (1 << 31), 0);
    }
}
