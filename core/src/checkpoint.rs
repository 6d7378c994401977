//! Checkpoint and restart of a process's `SEM_UNDO` adjustments.
//!
//! The kernel keeps a process's undo list out of reach of user space (a 2008
//! RFC proposed `/proc/PID/semundo` for checkpoint/restart). usysv keeps it in
//! the arena, so a checkpointer can read it and a restarted process can take
//! it over:
//!
//! - [`Namespace::undo_export`] reads a process's adjustments, per set id
//!   (the id carries the set's sequence number, so a set removed and its
//!   slot reused has another id) and semaphore. With `hold` it also marks the
//!   list as checkpointed: if the process then dies without leaving (the
//!   checkpointer kills it), its reaper keeps the list, in the process's
//!   registry slot, instead of applying it.
//! - [`Namespace::undo_import`], in the restarted process, takes that kept
//!   list over when it holds exactly the adjustments the export read (those
//!   of sets still alive), so they are applied once, when the restarted
//!   process exits. An arena file copied while its processes were stopped
//!   carries the held marks and the lists with it, so the same works on a
//!   restored copy.
//! - [`Namespace::undo_release`] gives up a checkpoint: a kept list is
//!   applied as the process's exit would have applied it, and a live
//!   process's mark is cleared.
//!
//! A list is handed over whole with two stores journaled under the
//! importer's lock; a reaper that takes over the claim of an importer that
//! died recovers that lock first (see `lifecycle`), so the list ends up on
//! exactly one side.

use core::sync::atomic::Ordering;

use crate::errno::{Errno, Result};
use crate::host::{Host, Liveness, ProcessId};
use crate::ids::Kind;
use crate::lifecycle::Reap;
use crate::lock::Txn;
use crate::perm::Cred;
use crate::registry::ProcSlot;
use crate::Namespace;

/// One semaphore's adjustment on an undo list: what the process's exit adds
/// to semaphore `semnum` of set `semid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adjustment {
    /// The set's id.
    pub semid: i32,
    /// The semaphore's number in the set.
    pub semnum: u32,
    /// The amount, never 0.
    pub value: i32,
}

impl<'m, H: Host> Namespace<'m, H> {
    /// Calls `each` with every adjustment that counts on the undo list of
    /// the registered process `pid` (running, or dead with a kept list), and
    /// returns the process's identity for [`Namespace::undo_import`]. With
    /// `hold` the list is also marked as checkpointed; that needs the
    /// caller to be the process itself, to have `CAP_SYS_ADMIN`, or to be
    /// one the host lets control it (Linux: the same user, as for ptrace),
    /// else `EPERM`. `ESRCH` when no such process is registered; `EAGAIN`
    /// when a running process changed its list while it was read (a
    /// checkpointer stops the process first).
    pub fn undo_export(
        &self,
        pid: u32,
        hold: bool,
        cred: &Cred<'_>,
        each: &mut dyn FnMut(Adjustment),
    ) -> Result<ProcessId> {
        let (me, _) = self.identity()?;
        // A running process first: a dead one may have kept a list under
        // the same pid.
        let mut found = None;
        for (index, process) in self.registry.live_slots() {
            let Ok(slot) = self.registry.slot_at(index) else {
                continue;
            };
            if process.pid != pid {
                continue;
            }
            if self.registry.is_ordinary(slot) {
                found = Some((process, slot));
                break;
            }
            if self.registry.is_kept(slot) {
                found = Some((process, slot));
            }
        }
        let (process, slot) = found.ok_or(Errno::ESRCH)?;
        if hold && !self.registry.is_kept(slot) {
            self.may_hold(me, slot, process, cred)?;
            self.registry.hold(slot, true);
        }
        let read = self.visit_undo(slot, &mut |semid, adjustments| {
            for (semnum, word) in (0u32..).zip(adjustments.unwrap_or_default()) {
                let value = word.get() as i32;
                if value != 0 {
                    each(Adjustment {
                        semid,
                        semnum,
                        value,
                    });
                }
            }
            Ok(())
        });
        match read {
            Err(Errno::CORRUPT)
                if self.registry.is_ordinary(slot)
                    && self.host.liveness(process) == Liveness::Alive =>
            {
                Err(Errno::EAGAIN)
            }
            Err(err) => Err(err),
            Ok(()) => Ok(process),
        }
    }

    /// In a restarted process: takes over the undo list that `process` (the
    /// identity [`Namespace::undo_export`] returned) kept when it died with
    /// its list held, provided the list holds exactly `expected` (the
    /// export), sets removed since aside. The adjustments are then this
    /// process's, applied once when it exits.
    ///
    /// Errors: `ESRCH` when no such process kept a list (never held, already
    /// imported or released, or another importer is at it); `EBUSY` when it
    /// still runs, or when this process already has an undo list of its own
    /// (import before the first `SEM_UNDO` operation); `EINVAL` when the
    /// kept list differs from `expected` (the arena is not the one the export
    /// read, or not as it was then) or names this process itself. On error
    /// nothing changes.
    pub fn undo_import(&self, process: ProcessId, expected: &[Adjustment]) -> Result<()> {
        let (me, _) = self.identity()?;
        let mine = self.registry.slot_of(me).ok_or(Errno::CORRUPT)?;
        let slot = self.kept_slot(process)?;
        if core::ptr::eq(mine, slot) {
            return Err(Errno::EINVAL);
        }
        if !self.registry.claim_kept(slot, me) {
            return Err(Errno::ESRCH);
        }
        let handed = self
            .kept_list_is(slot, expected)
            .and_then(|()| self.hand_over(slot, mine));
        match handed {
            Ok(()) => self.registry.free(slot),
            Err(_) => self.registry.keep(slot),
        }
        handed
    }

    /// Gives up the checkpoint of `process`: a list it kept when it died is
    /// applied (as its exit would have) and its slot freed; a running
    /// process's list is no longer held (which needs the permission that
    /// holding it did, else `EPERM`). `ESRCH` when it has no checkpoint.
    pub fn undo_release(&self, process: ProcessId, cred: &Cred<'_>) -> Result<()> {
        let (me, _) = self.identity()?;
        let slot = self.registry.find(process).ok_or(Errno::ESRCH)?;
        if self.registry.is_kept(slot) {
            if !self.registry.claim_kept(slot, me) {
                return Err(Errno::ESRCH);
            }
            self.settle_undo(slot, process.pid);
            self.registry.free(slot);
            return Ok(());
        }
        if !self.registry.is_held(slot) {
            return Err(Errno::ESRCH);
        }
        self.may_hold(me, slot, process, cred)?;
        self.registry.hold(slot, false);
        Ok(())
    }

    /// `EPERM` unless the caller (`me`) may hold or stop holding the list
    /// of the running `process` in `slot`: it is that process, has
    /// `CAP_SYS_ADMIN`, or is one the host lets control it.
    fn may_hold(
        &self,
        me: crate::registry::Tag,
        slot: &ProcSlot,
        process: ProcessId,
        cred: &Cred<'_>,
    ) -> Result<()> {
        let own = self
            .registry
            .slot_of(me)
            .is_some_and(|mine| core::ptr::eq(mine, slot));
        if own || cred.sys_admin || self.host.may_control(process) {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// The slot in which `process` kept its list; a held process found dead
    /// is reaped first (which keeps it).
    fn kept_slot(&self, process: ProcessId) -> Result<&'m ProcSlot> {
        let slot = self.registry.find(process).ok_or(Errno::ESRCH)?;
        if self.registry.is_kept(slot) {
            return Ok(slot);
        }
        if !self.registry.is_held(slot) {
            return Err(Errno::ESRCH);
        }
        if self.host.liveness(process) == Liveness::Alive {
            return Err(Errno::EBUSY);
        }
        self.reap_dead(Reap::Holding);
        match self.registry.find(process) {
            Some(slot) if self.registry.is_kept(slot) => Ok(slot),
            _ => Err(Errno::ESRCH),
        }
    }

    /// `Ok` when the adjustments that count on the kept list are exactly
    /// `expected`'s for the sets still alive, else `EINVAL`.
    fn kept_list_is(&self, slot: &'m ProcSlot, expected: &[Adjustment]) -> Result<()> {
        // Expected entries for sets with a record on the list (counting or
        // not), to compare with those of sets still alive.
        let mut covered = 0;
        self.visit_undo(slot, &mut |semid, adjustments| {
            let mut listed = expected.iter().filter(|e| e.semid == semid);
            if self.peek_object(Kind::Sem, semid).is_some() {
                covered += listed.clone().count();
            }
            let Some(adjustments) = adjustments else {
                return Ok(());
            };
            if listed.any(|e| e.semnum as usize >= adjustments.len()) {
                return Err(Errno::EINVAL);
            }
            for (semnum, word) in (0u32..).zip(adjustments) {
                let wanted: i64 = expected
                    .iter()
                    .filter(|e| e.semid == semid && e.semnum == semnum)
                    .map(|e| i64::from(e.value))
                    .sum();
                if wanted != i64::from(word.get() as i32) {
                    return Err(Errno::EINVAL);
                }
            }
            Ok(())
        })?;
        let alive = expected
            .iter()
            .filter(|e| self.peek_object(Kind::Sem, e.semid).is_some())
            .count();
        // Every entry of a live set must have had its record on the list.
        if covered < alive {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Moves the kept list of `from` (claimed) to `to`, whose own must be
    /// empty: both stores journaled under `to`'s lock, so a crash leaves the
    /// list on one side only once that lock is recovered.
    fn hand_over(&self, from: &'m ProcSlot, to: &'m ProcSlot) -> Result<()> {
        let mut txn = Txn::begin(self, &to.lock)?;
        if to.undo_head.atomic().load(Ordering::Acquire) != 0 {
            return Err(Errno::EBUSY);
        }
        txn.set(&to.undo_head, from.undo_head.get())?;
        txn.set(&from.undo_head, 0)?;
        txn.commit();
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests_checkpoint.rs"]
mod tests;
