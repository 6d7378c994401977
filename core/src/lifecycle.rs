//! A process's life as System V IPC sees it: `fork`, `execve` and exit.
//!
//! - fork: the child inherits the parent's shared memory attachments, not
//!   its `SEM_UNDO` adjustments. The platform calls
//!   [`Namespace::fork_prepare`] just before the fork (with the process's
//!   attachments held still), which reserves the child's slot holding copies
//!   of the parent's attachment records, so they count from the instant of
//!   the fork; the child calls [`Namespace::fork_child`] first thing, and a
//!   parent whose fork failed calls [`Namespace::fork_failed`].
//! - exec: the new image adopts the slot when it registers (undo list kept,
//!   as the kernel keeps it); the old image's attachments end then.
//! - exit: [`Namespace::exit`] applies the adjustments and ends the
//!   attachments, as the kernel's `exit_sem` and `exit_mm` do; so does
//!   dropping the program's last registration.

use core::sync::atomic::Ordering;

use crate::errno::{Errno, Result};
use crate::host::{Host, Liveness};
use crate::lock::Txn;
use crate::registry::{ForkSlot, ProcSlot, Tag};
use crate::Namespace;

/// The least time between two sweeps for dead processes
/// ([`Namespace::sweep_now_and_then`]).
pub(crate) const SWEEP_INTERVAL_MS: u32 = 250;

/// Which registered processes [`Namespace::reap_dead`] asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reap {
    /// Those holding `SEM_UNDO` adjustments or attachments.
    Holding,
    /// All of them.
    All,
}

impl<'m, H: Host> Namespace<'m, H> {
    /// Before `fork`: reserves the child's slot, holding copies of this
    /// process's attachment records, or `None` when it has none (the child
    /// then registers when it first uses the arena). The caller keeps the
    /// process's attachments from changing until the fork is done.
    pub fn fork_prepare(&self) -> Result<Option<ForkSlot>> {
        if self.inherited() {
            // A child that never used the namespace has no attachments in it.
            return Ok(None);
        }
        let (me, _) = self.identity()?;
        // A process that forks makes processes that may die without leaving.
        self.sweep_now_and_then();
        let parent = self.registry.slot_of(me).ok_or(Errno::CORRUPT)?;
        if parent.attach_head.get() == 0 {
            return Ok(None);
        }
        let process = self.host.current_process();
        let (reserved, child) =
            self.registry
                .reserve_for_fork(me, process, self.host.current_image())?;
        if let Err(err) = self.copy_attachments(parent, child) {
            self.settle_attachments(child, None);
            self.registry.free(child);
            return Err(err);
        }
        Ok(Some(reserved))
    }

    /// In the child of a `fork`, before anything else: takes the slot
    /// [`Namespace::fork_prepare`] reserved. If the parent gave it up, the
    /// child registers afresh, without the attachments.
    pub fn fork_child(&self, reserved: ForkSlot) -> Result<()> {
        let process = self.host.current_process();
        let Some(slot) = self.registry.take_fork(reserved) else {
            return self.register_forked_child();
        };
        let tag = self
            .registry
            .claim_fork(reserved, slot, process, self.host.current_image());
        self.adopt_identity(tag, process.pid);
        Ok(())
    }

    /// In the parent, after a `fork` that failed: ends the attachments the
    /// reserved slot holds and frees it (unless a child claimed it).
    pub fn fork_failed(&self, reserved: ForkSlot) {
        if let Some(slot) = self.registry.take_fork(reserved) {
            self.settle_attachments(slot, None);
            self.registry.free(slot);
        }
    }

    /// At process exit: applies this process's `SEM_UNDO` adjustments and
    /// ends its attachments. With `only_thread` (no other thread can still
    /// use the arena) the registration also ends, as a drop would end it;
    /// otherwise the slot stays until the process is gone, so that work other
    /// threads still do is settled then. A namespace inherited across `fork`
    /// and never used by the child settles nothing: the state is the parent's.
    pub fn exit(&self, only_thread: bool) {
        if self.inherited() || self.left.load(Ordering::Acquire) {
            return;
        }
        let me = Tag::from_raw(self.me.load(Ordering::Relaxed));
        let Some(slot) = self.registry.slot_of(me) else {
            return;
        };
        let pid = self.pid.load(Ordering::Relaxed);
        self.settle_undo(slot, pid);
        self.settle_attachments(slot, Some(pid));
        if only_thread {
            self.leave();
        }
    }

    /// Ends this registration (once): the program's last applies the
    /// process's adjustments, ends its attachments and frees the slot.
    pub(crate) fn leave(&self) {
        if self.inherited() || self.left.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Tag::from_raw(self.me.load(Ordering::Relaxed));
        if let Some(slot) = self.registry.leave(me) {
            let pid = self.pid.load(Ordering::Relaxed);
            self.settle_undo(slot, pid);
            self.settle_attachments(slot, Some(pid));
            self.registry.free(slot);
        }
    }

    /// Reaps what registered processes that died without leaving (killed,
    /// or gone by `_exit`) left behind, as the kernel's exit would have
    /// settled it: their `SEM_UNDO` adjustments are applied (stamped with
    /// their pids) and whoever that lets proceed is woken, their attachments
    /// end, their waiting operations and receives leave the queues, and their
    /// slots are freed. Run at the start of the calls that read what a dead
    /// process changes (counts, values) and by sleepers now and then, for
    /// the processes that hold adjustments or attachments (`Reap::Holding`:
    /// asking whether a process lives costs a system call or two); and on
    /// demand for all (`Reap::All`, `usysv gc`). Never inside a critical
    /// section. Returns how many processes were reaped.
    pub(crate) fn reap_dead(&self, scope: Reap) -> u32 {
        let Ok((me, _)) = self.identity() else {
            return 0;
        };
        let mine = self.registry.slot_of(me);
        let mut reaped = 0;
        for (index, process) in self.registry.live_slots() {
            let Ok(slot) = self.registry.slot_at(index) else {
                continue;
            };
            if mine.is_some_and(|own| core::ptr::eq(own, slot)) {
                continue;
            }
            // A slot whose reaper died is taken over without asking again.
            let abandoned = self.registry.is_reaping(slot);
            let suspect = self.registry.is_ordinary(slot)
                && (scope == Reap::All || slot.attach_head.get() != 0 || slot.undo_head.get() != 0);
            let dead = abandoned || (suspect && self.host.liveness(process) == Liveness::Dead);
            if !dead {
                continue;
            }
            let Some(previous) = self.registry.claim_dead(&self.host, slot, me) else {
                continue;
            };
            if let Some(previous) = previous {
                self.recover_lock_of(previous);
            }
            // Its waits go first, so that no waiter its undo wakes is its own.
            self.remove_dead_waiters(index);
            self.remove_dead_receivers(index);
            self.settle_attachments(slot, Some(process.pid));
            if self.registry.is_held(slot) && slot.undo_head.get() != 0 {
                // Checkpointed: the undo list waits for the restarted process.
                self.registry.keep(slot);
            } else {
                self.settle_undo(slot, process.pid);
                self.registry.free(slot);
            }
            reaped += 1;
        }
        reaped
    }

    /// Reaps every registered process that died without leaving, at most
    /// once per [`SWEEP_INTERVAL_MS`] for the whole arena: the process that
    /// moves the arena's sweep time forward does it. Run when a program
    /// opens the arena and before a process forks, so that processes that
    /// died holding nothing (found no other way but `usysv gc`) do not keep
    /// their registry slots for long. Never inside a critical section.
    pub(crate) fn sweep_now_and_then(&self) {
        let Some(word) = crate::format::sweep_after(&self.arena) else {
            return;
        };
        let now = (self.host.now().0 / 1_000_000) as u32;
        let after = word.atomic().load(Ordering::Relaxed);
        // Wrapping: `now` is before `after` when their difference is negative.
        if (now.wrapping_sub(after) as i32) < 0 {
            return;
        }
        let next = now.wrapping_add(SWEEP_INTERVAL_MS);
        if word
            .atomic()
            .compare_exchange(after, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.reap_dead(Reap::All);
        }
    }

    /// Takes and releases the registry lock of the dead process `tag`
    /// names (if its slot is still that process's), which rolls back what it
    /// left unfinished under it: a reaper or importer that died part-way
    /// through handing a list over.
    fn recover_lock_of(&self, tag: Tag) {
        if let Some(slot) = self.registry.slot_of(tag) {
            if let Ok(txn) = Txn::begin(self, &slot.lock) {
                txn.commit();
            }
        }
    }

    /// `usysv gc`: reaps every registered process that died without leaving
    /// ([`Namespace::reap_dead`]); returns how many.
    pub fn collect_dead(&self) -> u32 {
        self.reap_dead(Reap::All)
    }

    /// Copies every attachment record of `from` onto `to`'s list.
    fn copy_attachments(&self, from: &'m ProcSlot, to: &'m ProcSlot) -> Result<()> {
        let held = Txn::begin(self, &from.lock)?;
        let bound = self.layout.limits.heap_bytes / crate::shm::ATTACHMENT_SIZE;
        let mut at = from.attach_head.get();
        for _ in 0..bound {
            if at == 0 {
                held.commit();
                return Ok(());
            }
            let (next, piece) = self.attachment_fields(at)?;
            self.push_attachment(to, piece)?;
            at = next;
        }
        Err(Errno::CORRUPT)
    }
}
