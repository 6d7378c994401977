//! Semaphore sets: `semget`, `semop`/`semtimedop` and `semctl`, with the
//! semantics of Linux `ipc/sem.c`.
//!
//! # User-visible behaviour
//!
//! - `semop` applies all of its operations or none. An operation adds
//!   `sem_op` to a semaphore (`sem_op > 0`), waits until it can subtract
//!   (`sem_op < 0`), or waits until the semaphore is zero (`sem_op == 0`).
//!   Operations are applied in order, so one call may touch a semaphore twice.
//! - A call that cannot proceed fails with `EAGAIN` if the operation it is
//!   blocked on has `IPC_NOWAIT`; otherwise it waits, in a FIFO queue, until
//!   another call makes progress possible, its timeout passes (`EAGAIN`), a
//!   signal arrives (`EINTR`: System V calls are never restarted) or the set
//!   is removed (`EIDRM`).
//! - Errors are checked in the kernel's order: `nsops` 0 (`EINVAL`), above
//!   SEMOPM (`E2BIG`, before the id), a bad timeout (`EINVAL`), the id
//!   (`EINVAL`), a `sem_num` past the set (`EFBIG`), permission (`EACCES`:
//!   altering needs write, waiting for zero needs read), then the operations
//!   themselves: a result above SEMVMX is `ERANGE`.
//! - `sem_otime` stays 0 until the first successful `semop`; `sempid` is the
//!   pid of the last process that operated on each semaphore.
//! - `SEM_UNDO` records, per process and set, the opposite of each
//!   operation; an adjustment past ±SEMAEM is `ERANGE`. When the process
//!   leaves (its last [`Namespace`] drops) the adjustments are applied and
//!   each result clamped to 0..=SEMVMX. `SETVAL` clears every process's
//!   adjustment of that semaphore, `SETALL` all of the set's. Adjustments are
//!   the process's, shared by its threads, kept across `execve`, and not
//!   inherited by a `fork` child.
//!
//! # Internals
//!
//! A set's slot keeps its size, `sem_otime`, the head and tail of its wait
//! queue, and its semaphores: inline in the slot for sets of up to
//! [`INLINE_SEMS`] semaphores, in a heap block for larger ones.
//!
//! **The fast path.** Slot memory is never freed to the heap, so an inline
//! semaphore can be changed without the lock. Its value word packs
//! `seq:16 | SLOW:1 | value:15` (bits 16..=31 the set's sequence number, bit
//! 15 `SLOW`, bits 0..=14 the value). A single operation without `SEM_UNDO`
//! on an inline set is one compare-and-swap of that word: the sequence number
//! makes a stale id fail, and `SLOW` — set while waiters are queued, while a
//! locked operation is at work, and for good once the set is removed — sends
//! the caller to the locked path. The swap is the whole commit, so a process
//! that dies around it has either operated or not. Only `sem_otime` and
//! `sempid` are then stored without the lock; two racing callers may leave
//! the earlier one's pid, which no program can tell from a different
//! interleaving.
//!
//! **The locked path.** Everything else takes the set's lock and first
//! freezes the inline words (sets `SLOW` on each), so their values hold still
//! while several are read and written; it thaws them when it is done and no
//! waiter is queued. A holder that dies leaves them frozen; the next locked
//! operation thaws them, so the fast path comes back on its own.
//!
//! **Undo records** are heap blocks on two lists: the process's (under the
//! lock in its registry slot) and the set's (under the set's lock). The
//! adjustments in a record count only while it is `linked` on the set's list:
//! `SETALL` detaches every record, a removed set makes its id stale, and a
//! record applied at exit is detached in the same critical section, so it is
//! never applied twice. Lock order: set, then process, then heap. A caller that must wait allocates a waiter record — its
//! operations, its pid, a status word it sleeps on, and room to journal its
//! own completion — and links it at the tail of the queue.
//!
//! **The waker completes the sleeper's operation** (as Linux does): whoever
//! changes the semaphores walks the queue — wait-for-zero waiters first, then
//! altering waiters in FIFO order, starting again after each success — and
//! applies every operation that can now proceed on its owner's behalf,
//! unlinks the record and stores the result in its status word. A waiter
//! whose operation cannot proceed is skipped, so a small request is never held
//! behind a large one. Each completion is committed on its own
//! ([`Txn::checkpoint`]), so a waker that dies part-way leaves every waiter
//! either completed or still queued.
//!
//! A blocked caller queues at once, then spins on its status word, yielding
//! its core between spins, before it sleeps: a hand-off between two processes
//! that each have a core costs no system call, one whose turn comes while it
//! is off its core runs at the next yield there, and contending processes
//! take turns in queue order instead of the ones on a core taking every
//! turn. A sleeper marks its status `ASLEEP` before it waits on the futex; the
//! waker calls `wake` only then.
//!
//! # Locking
//!
//! Everything about a set is under its object lock. A waker journals a
//! completion's result in the waiter's record, makes it permanent
//! ([`Txn::checkpoint`]) and only then publishes it in the status word, so a
//! sleeper acts on a final status it reads without taking the lock: nothing
//! can roll it back. A sleeper also wakes every 100 ms on its own to take the
//! lock, read the result there and walk the queue, so a waker that died
//! between its checkpoint and publishing or waking delays a sleeper, never
//! strands it. Waiter records are freed only by their owners, or by the
//! reaper of an owner that died (unlinked under the lock first), so a waker
//! holding the lock never reads a freed record; once it has published a
//! completion it no longer touches that record.

use core::sync::atomic::Ordering;

use crate::arena::{Off, Record, Word, Word64};
use crate::errno::{Errno, Result};
use crate::handoff::{await_status, ASLEEP, WAITING};
use crate::heap::BlockOwner;
use crate::host::{Deadline, Host, Wake};
use crate::ids::{Kind, Object, ObjectTxn};
use crate::lifecycle::Reap;
use crate::lock::{JournalEntry, Txn};
use crate::perm::{Cred, IpcPerm, IPC_NOWAIT};
use crate::registry::Tag;
use crate::Namespace;

/// `SEM_UNDO`: undo the operation when the process exits.
pub const SEM_UNDO: i16 = 0x1000;

/// One operation of `semop` (`struct sembuf`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemBuf {
    /// Which semaphore of the set.
    pub sem_num: u16,
    /// Add this (> 0), wait to subtract it (< 0), or wait for zero (0).
    pub sem_op: i16,
    /// `IPC_NOWAIT` and `SEM_UNDO`.
    pub sem_flg: i16,
}

/// A relative timeout, as `semtimedop` takes it (`struct timespec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds, below 1,000,000,000.
    pub nsec: i64,
}

/// What `IPC_STAT` reports (`struct semid_ds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemidDs {
    /// Ownership and permissions.
    pub perm: IpcPerm,
    /// Time of the last successful `semop`, 0 before the first.
    pub otime: i64,
    /// Time of creation or of the last `IPC_SET`, `SETVAL` or `SETALL`.
    pub ctime: i64,
    /// Semaphores in the set.
    pub nsems: u32,
}

/// What `IPC_INFO` and `SEM_INFO` report (`struct seminfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemInfo {
    /// SEMMAP (= SEMMNS).
    pub semmap: i32,
    /// SEMMNI.
    pub semmni: i32,
    /// SEMMNS.
    pub semmns: i32,
    /// SEMMNU (= SEMMNS).
    pub semmnu: i32,
    /// SEMMSL.
    pub semmsl: i32,
    /// SEMOPM.
    pub semopm: i32,
    /// SEMUME (= SEMOPM).
    pub semume: i32,
    /// `IPC_INFO`: SEMUSZ (20); `SEM_INFO`: sets in use.
    pub semusz: i32,
    /// SEMVMX.
    pub semvmx: i32,
    /// `IPC_INFO`: SEMAEM (= SEMVMX); `SEM_INFO`: semaphores in use.
    pub semaem: i32,
}

/// A question about one semaphore (`GETVAL`, `GETPID`, `GETNCNT`, `GETZCNT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemQuery {
    /// Its value.
    Value,
    /// The pid of the last process to operate on it.
    Pid,
    /// How many callers wait for it to grow.
    WaitingToDecrease,
    /// How many callers wait for it to be zero.
    WaitingForZero,
}

/// Sets of up to this many semaphores keep them inline in the slot, where the
/// lock-free fast path can reach them.
pub const INLINE_SEMS: usize = (crate::ids::EXT_WORDS - 7) / 2;

/// A set's part of its object slot.
#[repr(C)]
struct SemSet {
    nsems: Word,
    /// The heap array of a large set (0 for an inline set).
    sems: Word,
    otime: Word64,
    head: Word,
    tail: Word,
    /// The first undo record on the set's list.
    undo_head: Word,
    values: [Word; INLINE_SEMS],
    pids: [Word; INLINE_SEMS],
}

// SAFETY: `repr(C)`, words and a word pair, no padding.
unsafe impl Record for SemSet {}

/// One semaphore of a large set.
#[repr(C)]
struct Sem {
    value: Word,
    pid: Word,
}

// SAFETY: `repr(C)`, two words, no padding.
unsafe impl Record for Sem {}

/// The head of a waiter record; `nsops` [`OpWords`] follow, then room for
/// [`journal_entries`]`(nsops)` journal entries.
#[repr(C)]
struct Waiter {
    next: Word,
    prev: Word,
    /// The result as published to the sleeper (read without the lock).
    status: Word,
    /// The result, journaled: `WAITING` while queued.
    result: Word,
    pid: Word,
    nsops: Word,
    blocking: Word,
    alter: Word,
    /// The waiter's undo record for the set, if its operations use SEM_UNDO.
    undo: Word,
    /// The waiting process's tag, so that a reaper finds the record.
    owner: Word,
}

// SAFETY: `repr(C)`, ten words, no padding.
unsafe impl Record for Waiter {}

/// What [`Namespace::visit_undo`] calls for each record: the set id, and
/// the adjustments while they count.
pub(crate) type UndoVisitor<'a> = dyn FnMut(i32, Option<&[Word]>) -> Result<()> + 'a;

/// The head of an undo record; `nsems` adjustments (`i32` as `u32`) follow.
#[repr(C)]
struct UndoRecord {
    /// The process's next record (under the process's lock).
    proc_next: Word,
    /// Links on the set's list (under the set's lock).
    set_next: Word,
    set_prev: Word,
    semid: Word,
    /// 1 while on the set's list: the adjustments count only then.
    linked: Word,
    nsems: Word,
}

// SAFETY: `repr(C)`, six words, no padding.
unsafe impl Record for UndoRecord {}

/// One operation as a waiter record stores it: `sem_num | sem_op << 16`, then
/// the flags.
#[repr(C)]
struct OpWords {
    op: Word,
    flags: Word,
}

// SAFETY: `repr(C)`, two words, no padding.
unsafe impl Record for OpWords {}

/// The value bits of a value word.
const VALUE: u32 = 0x7fff;
/// Set in an inline value word while only the locked path may change it.
const SLOW: u32 = 0x8000;

/// A value word holding `value` for a set of sequence number `seq`.
fn value_word(seq: u32, value: u32) -> u32 {
    seq << 16 | value
}

/// Heap block owners (see [`BlockOwner`]).
const OWNER_SET: u32 = 1;
const OWNER_WAITER: u32 = 5;
const OWNER_SCRATCH: u32 = 6;
const OWNER_UNDO: u32 = 7;

/// Inline journal entries of an object lock.
const INLINE_JOURNAL: u32 = 32;

/// Journal entries needed to apply `nsops` operations (a value, a pid and an
/// adjustment each), with room for the queue links, the status of a
/// completion and relinking an undo record.
fn journal_entries(nsops: u32) -> u32 {
    3 * nsops + 12
}

/// How often a sleeper wakes on its own to check on the queue.
const RECHECK_NS: u64 = 100_000_000;
/// Spins of a blocked caller on the fast path before it queues (see
/// `semop_locked`): enough for a partner on another core to answer.
const RETRY_SPINS: u32 = 100;
/// Spins of a queued waiter on its status word before it yields its core,
/// and yields before it sleeps.
const WAIT_SPINS: u32 = 20;
const WAIT_YIELDS: u32 = 50;

/// A waiter's final status as `semop`'s result.
fn result_of(status: u32) -> Result<()> {
    match status {
        0 => Ok(()),
        err => Err(Errno::from_raw(err as i32)),
    }
}

fn valid_timeout(t: &Timeout) -> bool {
    t.sec >= 0 && (0..1_000_000_000).contains(&t.nsec)
}

fn encode(op: &SemBuf) -> (u32, u32) {
    (
        u32::from(op.sem_num) | u32::from(op.sem_op as u16) << 16,
        u32::from(op.sem_flg as u16),
    )
}

fn decode(words: &OpWords) -> SemBuf {
    let op = words.op.get();
    SemBuf {
        sem_num: op as u16,
        sem_op: (op >> 16) as u16 as i16,
        sem_flg: words.flags.get() as u16 as i16,
    }
}

/// What an attempt at a list of operations came to.
enum Attempt {
    /// Applied (and journaled).
    Done,
    /// Operation `index` cannot proceed yet; nothing was changed.
    Blocked(u32),
    /// Failed with this error; nothing was changed.
    Failed(Errno),
}

/// Up to this many sleepers are woken after the lock is released; more are
/// woken at once.
type Wakes = crate::handoff::Wakes<16>;

/// Where a set's semaphores are.
#[derive(Clone, Copy)]
enum Storage<'m> {
    /// In the slot: the fast path's.
    Inline {
        values: &'m [Word],
        pids: &'m [Word],
    },
    /// In a heap block.
    Heap(&'m [Sem]),
}

/// A heap block lent to a journal for one critical section.
struct Scratch {
    at: u32,
    entries: u32,
    owner: BlockOwner,
}

impl Scratch {
    fn lend<H: Host>(&self, st: &mut SetTxn<'_, '_, H>) -> Result<()> {
        st.txn().lend_overflow(self.at, self.entries)
    }

    fn free<H: Host>(self, ns: &Namespace<'_, H>) -> Result<()> {
        ns.heap_free(self.at, self.owner)
    }
}

/// A set, resolved and checked.
struct SetView<'m> {
    set: &'m SemSet,
    storage: Storage<'m>,
}

impl<'m> SetView<'m> {
    fn len(&self) -> usize {
        match self.storage {
            Storage::Inline { values, .. } => values.len(),
            Storage::Heap(sems) => sems.len(),
        }
    }

    /// The word holding semaphore `index`'s value (in its low 15 bits).
    fn value(&self, index: usize) -> Option<&'m Word> {
        match self.storage {
            Storage::Inline { values, .. } => values.get(index),
            Storage::Heap(sems) => sems.get(index).map(|sem| &sem.value),
        }
    }

    fn pid(&self, index: usize) -> Option<&'m Word> {
        match self.storage {
            Storage::Inline { pids, .. } => pids.get(index),
            Storage::Heap(sems) => sems.get(index).map(|sem| &sem.pid),
        }
    }

    /// Sets `SLOW` on every inline value word: until [`SetView::thaw`], only
    /// the lock holder changes them.
    fn freeze(&self) {
        if let Storage::Inline { values, .. } = self.storage {
            for word in values {
                word.atomic().fetch_or(SLOW, Ordering::AcqRel);
            }
        }
    }

    /// Clears `SLOW` again if no waiter is queued. The lock is held and the
    /// journal committed.
    fn thaw(&self) {
        if self.set.head.get() != 0 {
            return;
        }
        if let Storage::Inline { values, .. } = self.storage {
            for word in values {
                word.atomic().fetch_and(!SLOW, Ordering::AcqRel);
            }
        }
    }
}

/// A set locked by the locked path, its inline words frozen. Committing or
/// dropping it thaws them (if no one waits) before the lock is let go.
struct SetTxn<'n, 'm, H: Host> {
    locked: ObjectTxn<'n, 'm, H>,
    view: SetView<'m>,
}

impl<'n, 'm, H: Host> SetTxn<'n, 'm, H> {
    fn txn(&mut self) -> &mut Txn<'n, 'm, H> {
        &mut self.locked.txn
    }

    /// Makes every change permanent; the drop that follows finds nothing to
    /// undo, thaws and releases.
    fn commit(mut self) {
        self.locked.txn.checkpoint();
    }
}

impl<H: Host> Drop for SetTxn<'_, '_, H> {
    fn drop(&mut self) {
        // Undo what is journaled first, then thaw what that leaves.
        let _ = self.locked.txn.roll_back();
        self.view.thaw();
    }
}

impl<'m, H: Host> Namespace<'m, H> {
    /// For the check: whether a block that names a set as its owner is that
    /// set's array of semaphores (`None` for blocks of other owners).
    pub(crate) fn sem_holds_block(&self, kind: u32, id: u32, payload: u32) -> Option<bool> {
        (kind == OWNER_SET).then(|| {
            self.peek_object(Kind::Sem, id as i32)
                .is_some_and(|object| object.ext_as::<SemSet>().sems.get() == payload)
        })
    }

    fn set_view(&self, object: &Object<'m>) -> Result<SetView<'m>> {
        let set = object.ext_as::<SemSet>();
        let nsems = set.nsems.get();
        if nsems == 0 || nsems > self.layout.limits.semmsl {
            return Err(Errno::CORRUPT);
        }
        let storage = if nsems as usize <= INLINE_SEMS {
            let n = nsems as usize;
            Storage::Inline {
                values: &set.values[..n],
                pids: &set.pids[..n],
            }
        } else {
            Storage::Heap(self.arena.slice(Off::<Sem>::new(set.sems.get()), nsems)?)
        };
        Ok(SetView { set, storage })
    }

    /// Locks set `semid` for the locked path, its inline words frozen.
    fn lock_set(&self, semid: i32) -> Result<SetTxn<'_, 'm, H>> {
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let locked = self.lock_object(Kind::Sem, semid)?;
        let view = self.set_view(&locked.object)?;
        view.freeze();
        Ok(SetTxn { locked, view })
    }

    fn waiter(&self, offset: u32, semid: i32) -> Result<&'m Waiter> {
        let block = offset
            .checked_sub(crate::heap::BLOCK_HEADER)
            .ok_or(Errno::CORRUPT)?;
        let info = crate::heap::block_info(&self.arena, &self.layout, block, self.layout.heap_end)?;
        let owner = self.arena.get(Off::<Word>::new(block + 4))?.get();
        if !info.allocated || info.owner_kind != OWNER_WAITER || owner != semid as u32 {
            return Err(Errno::CORRUPT);
        }
        let waiter = self.arena.get(Off::<Waiter>::new(offset))?;
        let nsops = waiter.nsops.get();
        if nsops == 0 || nsops > self.layout.limits.semopm {
            return Err(Errno::CORRUPT);
        }
        // The record must hold its operations and its journal.
        let needed =
            Waiter::SIZE + nsops * OpWords::SIZE + journal_entries(nsops) * JournalEntry::SIZE;
        if needed > info.size - crate::heap::BLOCK_HEADER {
            return Err(Errno::CORRUPT);
        }
        Ok(waiter)
    }

    fn waiter_ops(&self, offset: u32, nsops: u32) -> Result<&'m [OpWords]> {
        self.arena
            .slice(Off::<OpWords>::new(offset + Waiter::SIZE), nsops)
    }

    fn waiter_journal(offset: u32, nsops: u32) -> u32 {
        offset + Waiter::SIZE + nsops * OpWords::SIZE
    }

    /// `semget`: the set `key` names, or a new one of `nsems` semaphores.
    pub fn semget(&self, key: i32, nsems: i32, flags: i32, cred: &Cred<'_>) -> Result<i32> {
        let limits = self.layout.limits;
        let nsems = u32::try_from(nsems).map_err(|_| Errno::EINVAL)?;
        if nsems > limits.semmsl {
            return Err(Errno::EINVAL);
        }
        self.ipc_get_checked(
            Kind::Sem,
            key,
            flags,
            cred,
            |object| {
                if nsems as usize > self.set_view(object)?.len() {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            },
            || {
                if nsems == 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            },
            |txn, object| {
                let usage = self.table_usage(Kind::Sem)?;
                let used = usage.get();
                let wanted = used.checked_add(u64::from(nsems)).ok_or(Errno::CORRUPT)?;
                if wanted > u64::from(limits.semmns) {
                    return Err(Errno::ENOSPC);
                }
                let seq = object.id() as u32 / crate::limits::IPCMNI;
                // The slot is not live yet: its fields need no journal.
                let set = object.ext_as::<SemSet>();
                set.nsems.set(nsems);
                if nsems as usize <= INLINE_SEMS {
                    for word in &set.values[..nsems as usize] {
                        word.set(value_word(seq, 0));
                    }
                } else {
                    let owner = BlockOwner {
                        kind: OWNER_SET,
                        id: object.id() as u32,
                    };
                    let sems = self.heap_alloc(nsems * Sem::SIZE, owner)?;
                    for sem in self.arena.slice(Off::<Sem>::new(sems), nsems)? {
                        sem.value.set(value_word(seq, 0));
                    }
                    set.sems.set(sems);
                }
                txn.set64(usage, used + u64::from(nsems))
            },
        )
    }

    /// `semop`: [`Namespace::semtimedop`] without a timeout.
    #[inline]
    pub fn semop(&self, semid: i32, sops: &[SemBuf], cred: &Cred<'_>) -> Result<()> {
        self.semtimedop(semid, sops, None, cred)
    }

    /// `semtimedop`: applies `sops` to set `semid` all at once, waiting (at
    /// most `timeout`) until they can be.
    #[inline]
    pub fn semtimedop(
        &self,
        semid: i32,
        sops: &[SemBuf],
        timeout: Option<Timeout>,
        cred: &Cred<'_>,
    ) -> Result<()> {
        // The fast path first: it takes only calls that pass every check of
        // the locked path (one operation, no SEM_UNDO, no bad timeout) and
        // that can proceed at once, so the timeout never matters to it.
        if let [op] = sops {
            if op.sem_flg & SEM_UNDO == 0 && timeout.is_none_or(|t| valid_timeout(&t)) {
                if let Some(done) = self.semop_fast(semid, op, cred) {
                    return done;
                }
            }
        }
        self.semtimedop_locked(semid, sops, timeout, cred)
    }

    #[inline(never)]
    fn semtimedop_locked(
        &self,
        semid: i32,
        sops: &[SemBuf],
        timeout: Option<Timeout>,
        cred: &Cred<'_>,
    ) -> Result<()> {
        if sops.is_empty() {
            return Err(Errno::EINVAL);
        }
        if sops.len() > self.layout.limits.semopm as usize {
            return Err(Errno::E2BIG);
        }
        let deadline = match timeout {
            None => None,
            Some(t) if !valid_timeout(&t) => return Err(Errno::EINVAL),
            Some(t) => {
                let nanos = (t.sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(t.nsec as u64);
                Some(Deadline::after(self.host.now(), nanos))
            }
        };
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let nsops = sops.len() as u32;
        // A call that changes more words than the inline journal holds lends it room.
        let scratch_owner = BlockOwner {
            kind: OWNER_SCRATCH,
            id: self.identity()?.1,
        };
        let scratch = if journal_entries(nsops) > INLINE_JOURNAL {
            Some(self.heap_alloc(journal_entries(nsops) * JournalEntry::SIZE, scratch_owner)?)
        } else {
            None
        };
        let result = self.semop_locked(semid, sops, deadline, cred, scratch);
        if let Some(scratch) = scratch {
            self.heap_free(scratch, scratch_owner)?;
        }
        result
    }

    /// The lock-free fast path (see the module docs): `None` sends the caller
    /// to the locked path, which also decides every error.
    #[inline]
    fn semop_fast(&self, semid: i32, op: &SemBuf, cred: &Cred<'_>) -> Option<Result<()>> {
        let object = self.peek_object(Kind::Sem, semid)?;
        let set = object.ext_as::<SemSet>();
        let num = usize::from(op.sem_num);
        let nsems = set.nsems.get() as usize;
        // Only inline sets: a larger set's semaphores are in the heap.
        if nsems > INLINE_SEMS || num >= nsems {
            return None;
        }
        let access = if op.sem_op != 0 { 0o222 } else { 0o444 };
        if !object.allows(cred, access) {
            return None;
        }
        let me = self.identity().ok()?.1;
        let seq = semid as u32 / crate::limits::IPCMNI;
        let word = set.values[num].atomic();
        let mut seen = word.load(Ordering::Acquire);
        loop {
            if seen >> 16 != seq || seen & SLOW != 0 {
                return None;
            }
            let value = (seen & VALUE) as i32;
            if op.sem_op == 0 {
                if value != 0 {
                    return None;
                }
                break;
            }
            let result = value + i32::from(op.sem_op);
            if result < 0 || result > self.layout.limits.semvmx as i32 {
                return None;
            }
            match word.compare_exchange_weak(
                seen,
                (seen & !VALUE) | result as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        // Done; the rest is bookkeeping, in type-stable slot memory.
        let pid = &set.pids[num];
        if pid.get() != me {
            pid.set(me);
        }
        let now = self.host.wall_clock() as u64;
        if set.otime.get() != now {
            set.otime.set(now);
        }
        Some(Ok(()))
    }

    fn semop_locked(
        &self,
        semid: i32,
        sops: &[SemBuf],
        deadline: Option<Deadline>,
        cred: &Cred<'_>,
        scratch: Option<u32>,
    ) -> Result<()> {
        let nsops = sops.len() as u32;
        let max = sops.iter().map(|op| op.sem_num).max().unwrap_or(0);
        let alter = sops.iter().any(|op| op.sem_op != 0);
        let undo = sops.iter().any(|op| op.sem_flg & SEM_UNDO != 0);
        let (me, pid) = self.identity()?;
        let mut retried = false;
        loop {
            let mut st = self.lock_set(semid)?;
            // Linux `find_alloc_undo` makes the caller's undo structure
            // before the checks that follow the id's, and its exit stamps
            // `sem_otime` for every structure of a live set: a call that
            // fails leaves the record (unlinked), and its mark at exit.
            let record = if undo {
                Some(self.undo_record(&mut st, me)?)
            } else {
                None
            };
            if usize::from(max) >= st.view.len() {
                return Err(Errno::EFBIG);
            }
            let access = if alter { 0o222 } else { 0o444 };
            if !st.locked.object.allows(cred, access) {
                return Err(Errno::EACCES);
            }
            if let Some(scratch) = scratch {
                st.txn().lend_overflow(scratch, journal_entries(nsops))?;
            }
            let adjustments = match record {
                Some(at) => Some(self.undo_at(at, semid)?.1),
                None => None,
            };
            let attempt = self.attempt(
                &mut st.locked.txn,
                &st.view,
                sops.iter().copied(),
                pid,
                adjustments,
            )?;
            match attempt {
                Attempt::Done => return self.finish(st, alter),
                Attempt::Failed(err) => return Err(err),
                // A caller that spun for the semaphore outside the queue
                // would be passed over by every wake, so that whoever is on
                // a core would take every turn: only a caller that made the
                // semaphore's last change (no one else is taking it) and
                // finds no queue waits a moment for a partner's answer
                // before it queues, as Linux queues it, at once.
                Attempt::Blocked(_)
                    if !retried
                        && !undo
                        && sops.len() == 1
                        && st.view.set.head.get() == 0
                        && st.view.pid(usize::from(sops[0].sem_num)).map(Word::get)
                            == Some(pid) =>
                {
                    drop(st);
                    retried = true;
                    for _ in 0..RETRY_SPINS {
                        core::hint::spin_loop();
                        if let Some(done) = self.semop_fast(semid, &sops[0], cred) {
                            return done;
                        }
                    }
                }
                Attempt::Blocked(index) => {
                    return self.sleep(st, sops, index, alter, deadline, (me, pid), record);
                }
            }
        }
    }

    /// Tries the operations `ops` in order, as Linux
    /// `perform_atomic_semop_slow`, for process `pid` whose undo
    /// `adjustments` for the set are given if any operation has `SEM_UNDO`:
    /// on success the changes stay in the section's journal; otherwise they
    /// are rolled back. The set is frozen.
    fn attempt(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        set: &SetView<'m>,
        ops: impl Iterator<Item = SemBuf> + Clone,
        pid: u32,
        adjustments: Option<&'m [Word]>,
    ) -> Result<Attempt> {
        let semvmx = self.layout.limits.semvmx as i32;
        let savepoint = txn.savepoint();
        let mut outcome = Attempt::Done;
        for (index, op) in (0..).zip(ops.clone()) {
            let num = usize::from(op.sem_num);
            let word = set.value(num).ok_or(Errno::CORRUPT)?;
            let seen = word.get();
            let value = (seen & VALUE) as i32;
            let blocked = if op.sem_op == 0 {
                value != 0
            } else {
                let result = value + i32::from(op.sem_op);
                if result > semvmx {
                    outcome = Attempt::Failed(Errno::ERANGE);
                    break;
                }
                if result >= 0 && op.sem_flg & SEM_UNDO != 0 {
                    let adjustment = adjustments.and_then(|a| a.get(num)).ok_or(Errno::CORRUPT)?;
                    // The undo is the opposite of every operation so far (SEMAEM = SEMVMX).
                    // Wide enough that an adjustment read from a damaged
                    // arena cannot overflow it.
                    let undo = i64::from(adjustment.get() as i32) - i64::from(op.sem_op);
                    if undo < -i64::from(semvmx) - 1 || undo > i64::from(semvmx) {
                        outcome = Attempt::Failed(Errno::ERANGE);
                        break;
                    }
                    txn.set(adjustment, undo as i32 as u32)?;
                }
                if result >= 0 {
                    txn.set(word, (seen & !VALUE) | result as u32)?;
                }
                result < 0
            };
            if blocked {
                outcome = if i32::from(op.sem_flg) & IPC_NOWAIT != 0 {
                    Attempt::Failed(Errno::EAGAIN)
                } else {
                    Attempt::Blocked(index)
                };
                break;
            }
        }
        match outcome {
            Attempt::Done => {
                for op in ops {
                    let pid_word = set.pid(usize::from(op.sem_num)).ok_or(Errno::CORRUPT)?;
                    txn.set(pid_word, pid)?;
                }
            }
            _ => txn.roll_back_to(savepoint)?,
        }
        Ok(outcome)
    }

    /// After a successful operation: completes whatever waiters can now
    /// proceed, stamps `sem_otime`, commits, and wakes the completed sleepers.
    fn finish(&self, mut st: SetTxn<'_, 'm, H>, alter: bool) -> Result<()> {
        st.txn().checkpoint();
        let mut wakes = Wakes::new();
        if alter {
            let semid = st.locked.object.id();
            self.update_queue(&mut st.locked.txn, &st.view, semid, &mut wakes)?;
        }
        self.stamp_otime(&mut st.locked.txn, &st.view)?;
        st.commit();
        wakes.wake(self);
        Ok(())
    }

    /// Walks the queue after the semaphores changed: wait-for-zero waiters
    /// first, then altering ones in FIFO order, starting over after each
    /// altering success (Linux `do_smart_update`). Each completion is a
    /// checkpoint of its own. The set is frozen. Returns whether a waiter's
    /// operations succeeded (then `sem_otime` is due, as in Linux).
    fn update_queue(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        set: &SetView<'m>,
        semid: i32,
        wakes: &mut Wakes,
    ) -> Result<bool> {
        let bound = self.layout.limits.heap_bytes / Waiter::SIZE;
        let mut succeeded = false;
        let mut completed_alter = true;
        // Each pass after the first follows a completion, which unlinks a
        // waiter: more passes than there can be waiters is a broken queue.
        let mut passes = 0;
        while completed_alter {
            passes += 1;
            if passes > bound + 1 {
                return Err(Errno::CORRUPT);
            }
            completed_alter = false;
            for altering in [false, true] {
                let mut at = set.set.head.get();
                let mut steps = 0;
                while at != 0 {
                    steps += 1;
                    if steps > bound {
                        return Err(Errno::CORRUPT);
                    }
                    let waiter = self.waiter(at, semid)?;
                    let next = waiter.next.get();
                    if (waiter.alter.get() != 0) == altering {
                        let nsops = waiter.nsops.get();
                        let ops = self.waiter_ops(at, nsops)?;
                        txn.lend_overflow(Self::waiter_journal(at, nsops), journal_entries(nsops))?;
                        let pid = waiter.pid.get();
                        let adjustments = match waiter.undo.get() {
                            0 => None,
                            at => Some(self.relink_undo(txn, set, at, semid)?),
                        };
                        let result =
                            self.attempt(txn, set, ops.iter().map(decode), pid, adjustments)?;
                        let status = match result {
                            Attempt::Blocked(index) => {
                                // Informational (GETNCNT/GETZCNT): no journal needed.
                                waiter.blocking.set(index);
                                None
                            }
                            Attempt::Done => Some(0),
                            Attempt::Failed(err) => Some(err.raw() as u32),
                        };
                        if let Some(status) = status {
                            self.unlink(txn, set, waiter, semid)?;
                            txn.set(&waiter.result, status)?;
                            txn.checkpoint();
                            // The record's journal room goes back to its owner,
                            // who may free the record once the result is out.
                            txn.lend_overflow(0, 0)?;
                            let before = waiter.status.atomic().swap(status, Ordering::AcqRel);
                            if before == ASLEEP {
                                wakes.push(self, &waiter.status);
                            }
                            succeeded |= status == 0;
                            if altering && status == 0 {
                                completed_alter = true;
                                break;
                            }
                        }
                    }
                    at = next;
                }
                if completed_alter {
                    break;
                }
            }
        }
        Ok(succeeded)
    }

    /// Stamps `sem_otime` (in the section's journal).
    fn stamp_otime(&self, txn: &mut Txn<'_, 'm, H>, set: &SetView<'m>) -> Result<()> {
        txn.set64(&set.set.otime, self.host.wall_clock() as u64)
    }

    fn unlink(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        set: &SetView<'m>,
        waiter: &'m Waiter,
        semid: i32,
    ) -> Result<()> {
        let (prev, next) = (waiter.prev.get(), waiter.next.get());
        match prev {
            0 => txn.set(&set.set.head, next)?,
            prev => txn.set(&self.waiter(prev, semid)?.next, next)?,
        }
        match next {
            0 => txn.set(&set.set.tail, prev),
            next => txn.set(&self.waiter(next, semid)?.prev, prev),
        }
    }

    /// Queues the caller (blocked on operation `blocking`) and waits until a
    /// waker completes its operations, the deadline passes, a signal arrives
    /// or the set goes.
    #[allow(clippy::too_many_arguments)] // the blocked call, whole: splitting it would only rename it
    fn sleep(
        &self,
        mut st: SetTxn<'_, 'm, H>,
        sops: &[SemBuf],
        blocking: u32,
        alter: bool,
        deadline: Option<Deadline>,
        (me, pid): (Tag, u32),
        undo: Option<u32>,
    ) -> Result<()> {
        let semid = st.locked.object.id();
        let nsops = sops.len() as u32;
        let owner = BlockOwner {
            kind: OWNER_WAITER,
            id: semid as u32,
        };
        let size =
            Waiter::SIZE + nsops * OpWords::SIZE + journal_entries(nsops) * JournalEntry::SIZE;
        let at = self.heap_alloc(size, owner)?;
        let waiter = self.arena.get(Off::<Waiter>::new(at))?;
        // A fresh block, reachable once linked (journaled, below).
        waiter.status.set(WAITING);
        waiter.result.set(WAITING);
        waiter.pid.set(pid);
        waiter.nsops.set(nsops);
        waiter.blocking.set(blocking);
        waiter.alter.set(u32::from(alter));
        waiter.undo.set(undo.unwrap_or(0));
        waiter.owner.set(me.raw());
        for (words, op) in self.waiter_ops(at, nsops)?.iter().zip(sops) {
            let (op, flags) = encode(op);
            words.op.set(op);
            words.flags.set(flags);
        }
        let tail = st.view.set.tail.get();
        waiter.prev.set(tail);
        waiter.next.set(0);
        let head = &st.view.set.head;
        let tail_word = &st.view.set.tail;
        let linked = match tail {
            0 => st.locked.txn.set(head, at),
            tail => self
                .waiter(tail, semid)
                .and_then(|last| st.locked.txn.set(&last.next, at)),
        }
        .and_then(|()| st.locked.txn.set(tail_word, at));
        if let Err(err) = linked {
            drop(st);
            self.heap_free(at, owner)?;
            return Err(err);
        }
        st.commit();

        let result = self.wait_for_completion(semid, waiter, deadline);
        self.heap_free(at, owner)?;
        result
    }

    fn wait_for_completion(
        &self,
        semid: i32,
        waiter: &'m Waiter,
        deadline: Option<Deadline>,
    ) -> Result<()> {
        let status = waiter.status.atomic();
        let mut recheck = Deadline::after(self.host.now(), RECHECK_NS);
        loop {
            // Yielding, not sleeping, while the turn comes round: a waiter
            // handed its turn while off its core then runs at the next yield
            // on that core, without a system call from the waker.
            let woke = await_status(&self.host, status, WAIT_YIELDS, WAIT_SPINS, || {
                deadline.map_or(recheck, |d| d.min(recheck))
            });
            let now = self.host.now();
            let timed_out = deadline.is_some_and(|d| now >= d);
            if now >= recheck && !timed_out {
                // Waiting a while: a process that died holding what this
                // caller waits for (by SEM_UNDO) gives it back now.
                self.reap_dead(Reap::Holding);
                recheck = Deadline::after(now, RECHECK_NS);
            }

            let published = status.load(Ordering::Acquire);
            if published < ASLEEP {
                return result_of(published);
            }
            // Under the lock the journaled result is the last word: a waker
            // may have died before publishing it.
            let (txn, object) = self.lock_slot_of(Kind::Sem, semid)?;
            let now = waiter.result.get();
            if now != WAITING {
                txn.commit();
                return result_of(now);
            }
            let Some(object) = object else {
                // Removed: the queue is gone with the set.
                txn.commit();
                return Err(Errno::EIDRM);
            };
            let view = self.set_view(&object)?;
            view.freeze();
            let mut st = SetTxn {
                locked: ObjectTxn { txn, object },
                view,
            };
            if timed_out || woke == Wake::Interrupted {
                self.unlink(&mut st.locked.txn, &st.view, waiter, semid)?;
                st.commit();
                return Err(if timed_out {
                    Errno::EAGAIN
                } else {
                    Errno::EINTR
                });
            }
            // A periodic check: move the queue along in case a waker died
            // between committing and waking.
            let mut wakes = Wakes::new();
            if self.update_queue(&mut st.locked.txn, &st.view, semid, &mut wakes)? {
                self.stamp_otime(&mut st.locked.txn, &st.view)?;
            }
            st.commit();
            wakes.wake(self);
        }
    }

    /// Locks set `semid` for reading, checking `access`.
    fn sem_locked(
        &self,
        semid: i32,
        cred: &Cred<'_>,
        access: u32,
    ) -> Result<(ObjectTxn<'_, 'm, H>, SetView<'m>)> {
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let locked = self.lock_object(Kind::Sem, semid)?;
        let set = self.set_view(&locked.object)?;
        if !locked.object.allows(cred, access) {
            return Err(Errno::EACCES);
        }
        Ok((locked, set))
    }

    fn semid_ds(&self, object: &Object<'m>, set: &SetView<'m>) -> SemidDs {
        SemidDs {
            perm: object.perm(),
            otime: set.set.otime.get() as i64,
            ctime: object.ctime(),
            nsems: set.len() as u32,
        }
    }

    /// `semctl(IPC_STAT)`.
    pub fn sem_stat(&self, semid: i32, cred: &Cred<'_>) -> Result<SemidDs> {
        let (locked, set) = self.sem_locked(semid, cred, 0o444)?;
        Ok(self.semid_ds(&locked.object, &set))
    }

    /// `semctl(SEM_STAT)` (`any`: `SEM_STAT_ANY`, without the read check): the
    /// set in slot `index`, and its id.
    pub fn sem_stat_index(&self, index: i32, any: bool, cred: &Cred<'_>) -> Result<(i32, SemidDs)> {
        let locked = self.lock_index(Kind::Sem, index)?;
        let set = self.set_view(&locked.object)?;
        if !any && !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        Ok((locked.object.id(), self.semid_ds(&locked.object, &set)))
    }

    /// `semctl(IPC_SET)`: owner, group and permission bits.
    pub fn sem_set(
        &self,
        semid: i32,
        cred: &Cred<'_>,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<()> {
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let mut locked = self.lock_object(Kind::Sem, semid)?;
        self.ipc_set_perm(&mut locked, cred, uid, gid, mode)?;
        locked.commit();
        Ok(())
    }

    /// `semctl(IPC_RMID)`: removes the set; its sleepers get `EIDRM`.
    pub fn sem_remove(&self, semid: i32, cred: &Cred<'_>) -> Result<()> {
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let array = self.ipc_remove_then(
            Kind::Sem,
            semid,
            cred,
            |txn, object| {
                let set = self.set_view(object)?;
                // Frozen for good: the fast path never touches a removed set.
                set.freeze();
                let usage = self.table_usage(Kind::Sem)?;
                txn.set64(usage, usage.get().saturating_sub(set.len() as u64))?;
                Ok(set)
            },
            |_, set| {
                // The removal is permanent and the lock still held: wake every
                // sleeper, whose record cannot be freed before we let go.
                let bound = self.layout.limits.heap_bytes / Waiter::SIZE;
                let mut at = set.set.head.get();
                for _ in 0..bound {
                    let Ok(waiter) = self.waiter(at, semid) else {
                        break;
                    };
                    self.host.wake(waiter.status.atomic(), 1);
                    at = waiter.next.get();
                }
                match set.storage {
                    Storage::Heap(_) => set.set.sems.get(),
                    Storage::Inline { .. } => 0,
                }
            },
        )?;
        if array == 0 {
            return Ok(());
        }
        let owner = BlockOwner {
            kind: OWNER_SET,
            id: semid as u32,
        };
        self.heap_free(array, owner)
    }

    /// `semctl(IPC_INFO)` (`usage: false`) or `semctl(SEM_INFO)` (`usage:
    /// true`): the limits (and, for `SEM_INFO`, sets and semaphores in use),
    /// and the value the call returns: the highest index in use, or 0.
    pub fn sem_info(&self, usage: bool) -> (i32, SemInfo) {
        let l = &self.layout.limits;
        let narrow = |value: u32| value.min(i32::MAX as u32) as i32;
        let mut info = SemInfo {
            semmap: narrow(l.semmns),
            semmni: narrow(l.semmni),
            semmns: narrow(l.semmns),
            semmnu: narrow(l.semmns),
            semmsl: narrow(l.semmsl),
            semopm: narrow(l.semopm),
            semume: narrow(l.semopm),
            semusz: 20,
            semvmx: narrow(l.semvmx),
            semaem: narrow(l.semvmx),
        };
        if usage {
            info.semusz = narrow(self.in_use(Kind::Sem));
            let used = self.table_usage(Kind::Sem).map_or(0, Word64::get);
            info.semaem = used.min(i32::MAX as u64) as i32;
        }
        (self.max_index(Kind::Sem).max(0), info)
    }

    /// `semctl(GETVAL | GETPID | GETNCNT | GETZCNT)` on semaphore `semnum`.
    pub fn sem_query(
        &self,
        semid: i32,
        semnum: i32,
        query: SemQuery,
        cred: &Cred<'_>,
    ) -> Result<i32> {
        self.reap_dead(Reap::Holding);
        let (locked, set) = self.sem_locked(semid, cred, 0o444)?;
        let index = usize::try_from(semnum).map_err(|_| Errno::EINVAL)?;
        let (Some(value), Some(pid)) = (set.value(index), set.pid(index)) else {
            return Err(Errno::EINVAL);
        };
        let count_zero = match query {
            SemQuery::Value => return Ok((value.get() & VALUE) as i32),
            SemQuery::Pid => return Ok(pid.get() as i32),
            SemQuery::WaitingToDecrease => false,
            SemQuery::WaitingForZero => true,
        };
        let semid = locked.object.id();
        let bound = self.layout.limits.heap_bytes / Waiter::SIZE;
        let mut count = 0;
        let mut at = set.set.head.get();
        for _ in 0..bound {
            if at == 0 {
                return Ok(count);
            }
            let waiter = self.waiter(at, semid)?;
            let ops = self.waiter_ops(at, waiter.nsops.get())?;
            if let Some(words) = ops.get(waiter.blocking.get() as usize) {
                let op = decode(words);
                if usize::from(op.sem_num) == index
                    && (op.sem_op == 0) == count_zero
                    && op.sem_op <= 0
                {
                    count += 1;
                }
            }
            at = waiter.next.get();
        }
        Err(Errno::CORRUPT)
    }

    /// `semctl(GETALL)`: calls `sink(index, value)` for every semaphore.
    pub fn sem_getall(
        &self,
        semid: i32,
        cred: &Cred<'_>,
        sink: &mut dyn FnMut(u32, u16),
    ) -> Result<()> {
        self.reap_dead(Reap::Holding);
        let (_locked, set) = self.sem_locked(semid, cred, 0o444)?;
        for index in 0..set.len() {
            let value = set.value(index).map_or(0, |word| word.get() & VALUE);
            sink(index as u32, value as u16);
        }
        Ok(())
    }

    /// The number of semaphores in set `semid` (what `GETALL` and `SETALL`
    /// callers size their arrays by).
    pub fn sem_count(&self, semid: i32) -> Result<u32> {
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let locked = self.lock_object(Kind::Sem, semid)?;
        Ok(self.set_view(&locked.object)?.len() as u32)
    }

    /// `semctl(SETVAL)`: also clears every process's adjustment of the semaphore.
    pub fn sem_setval(&self, semid: i32, semnum: i32, value: i32, cred: &Cred<'_>) -> Result<()> {
        // Linux `ksys_semctl` refuses a negative id before `semctl_setval`
        // checks the value.
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        if value < 0 || value > self.layout.limits.semvmx as i32 {
            return Err(Errno::ERANGE);
        }
        let pid = self.identity()?.1;
        let mut st = self.lock_set(semid)?;
        let index = usize::try_from(semnum).map_err(|_| Errno::EINVAL)?;
        let (Some(word), Some(pid_word)) = (st.view.value(index), st.view.pid(index)) else {
            return Err(Errno::EINVAL);
        };
        if !st.locked.object.allows(cred, 0o222) {
            return Err(Errno::EACCES);
        }
        let records = self.undo_records(&st.view, semid);
        let scratch = self.scratch_journal(pid, records.count() as u32 + 8)?;
        let ctime = st.locked.object.ctime_word();
        let written = scratch.lend(&mut st).and_then(|()| {
            let txn = st.txn();
            txn.set(word, (word.get() & !VALUE) | value as u32)?;
            txn.set(pid_word, pid)?;
            txn.set64(ctime, self.host.wall_clock() as u64)?;
            for record in self.undo_records(&st.view, semid) {
                let adjustments = self.undo_at(record?, semid)?.1;
                st.locked
                    .txn
                    .set(adjustments.get(index).ok_or(Errno::CORRUPT)?, 0)?;
            }
            Ok(())
        });
        let finished = written.and_then(|()| self.finish_change(st));
        scratch.free(self)?;
        finished
    }

    /// `semctl(SETALL)`: `values(index)` for every semaphore, all or nothing
    /// (`ERANGE` if one is above SEMVMX). Every process's adjustments for
    /// the set are cleared (their records detached).
    pub fn sem_setall(
        &self,
        semid: i32,
        cred: &Cred<'_>,
        values: &dyn Fn(u32) -> u16,
    ) -> Result<()> {
        let pid = self.identity()?.1;
        let mut st = self.lock_set(semid)?;
        if !st.locked.object.allows(cred, 0o222) {
            return Err(Errno::EACCES);
        }
        let nsems = st.view.len() as u32;
        if (0..nsems).any(|i| u32::from(values(i)) > self.layout.limits.semvmx) {
            return Err(Errno::ERANGE);
        }
        let ctime = st.locked.object.ctime_word();
        let now = self.host.wall_clock() as u64;
        let records = self.undo_records(&st.view, semid).count() as u32;
        let inline = matches!(st.view.storage, Storage::Inline { .. });
        let entries = records + 8 + if inline { 2 * nsems } else { 0 };
        let scratch = self.scratch_journal(pid, entries)?;
        let result = scratch.lend(&mut st).and_then(|()| {
            // Detach every undo record: their adjustments stop counting.
            for record in self.undo_records(&st.view, semid) {
                let (head, _) = self.undo_at(record?, semid)?;
                st.locked.txn.set(&head.linked, 0)?;
            }
            st.locked.txn.set(&st.view.set.undo_head, 0)?;
            st.locked.txn.set64(ctime, now)?;
            match st.view.storage {
                Storage::Inline {
                    values: words,
                    pids,
                } => {
                    let txn = st.txn();
                    for (index, (word, pid_word)) in (0u32..).zip(words.iter().zip(pids)) {
                        txn.set(word, (word.get() & !VALUE) | u32::from(values(index)))?;
                        txn.set(pid_word, pid)?;
                    }
                    self.finish_change(st)
                }
                Storage::Heap(old) => {
                    // Copy on write: the new array is filled unseen, then
                    // published by one journaled store, so a set of any size
                    // changes at once.
                    let owner = BlockOwner {
                        kind: OWNER_SET,
                        id: semid as u32,
                    };
                    let fresh = self.heap_alloc(nsems * Sem::SIZE, owner)?;
                    let sems = self.arena.slice(Off::<Sem>::new(fresh), nsems)?;
                    for (index, (sem, was)) in (0u32..).zip(sems.iter().zip(old)) {
                        sem.value
                            .set((was.value.get() & !VALUE) | u32::from(values(index)));
                        sem.pid.set(pid);
                    }
                    let array = &st.view.set.sems;
                    let old_array = array.get();
                    if let Err(err) = st.txn().set(array, fresh) {
                        drop(st);
                        self.heap_free(fresh, owner)?;
                        return Err(err);
                    }
                    st.view.storage = Storage::Heap(sems);
                    self.finish_change(st)?;
                    self.heap_free(old_array, owner)
                }
            }
        });
        scratch.free(self)?;
        result
    }

    fn scratch_journal(&self, pid: u32, entries: u32) -> Result<Scratch> {
        let owner = BlockOwner {
            kind: OWNER_SCRATCH,
            id: pid,
        };
        let at = self.heap_alloc(entries * JournalEntry::SIZE, owner)?;
        Ok(Scratch { at, entries, owner })
    }

    /// The undo record at `at`, checked to be one of set `semid`'s, and its
    /// adjustments.
    fn undo_at(&self, at: u32, semid: i32) -> Result<(&'m UndoRecord, &'m [Word])> {
        let block = at
            .checked_sub(crate::heap::BLOCK_HEADER)
            .ok_or(Errno::CORRUPT)?;
        let info = crate::heap::block_info(&self.arena, &self.layout, block, self.layout.heap_end)?;
        let owner = self.arena.get(Off::<Word>::new(block + 4))?.get();
        if !info.allocated || info.owner_kind != OWNER_UNDO || owner != semid as u32 {
            return Err(Errno::CORRUPT);
        }
        let record = self.arena.get(Off::<UndoRecord>::new(at))?;
        let nsems = record.nsems.get();
        if record.semid.get() != semid as u32
            || nsems > self.layout.limits.semmsl
            || UndoRecord::SIZE + nsems * 4 > info.size - crate::heap::BLOCK_HEADER
        {
            return Err(Errno::CORRUPT);
        }
        let adjustments = self
            .arena
            .slice(Off::<Word>::new(at + UndoRecord::SIZE), nsems)?;
        Ok((record, adjustments))
    }

    /// The records on set `semid`'s undo list (bounded: a cycle is an error).
    fn undo_records(
        &self,
        set: &SetView<'m>,
        semid: i32,
    ) -> impl Iterator<Item = Result<u32>> + '_ {
        let bound = self.layout.limits.heap_bytes / UndoRecord::SIZE;
        let mut at = set.set.undo_head.get();
        let mut steps = 0;
        core::iter::from_fn(move || {
            if at == 0 {
                return None;
            }
            steps += 1;
            if steps > bound {
                at = 0;
                return Some(Err(Errno::CORRUPT));
            }
            let here = at;
            match self.undo_at(here, semid) {
                Ok((record, _)) => at = record.set_next.get(),
                Err(err) => {
                    at = 0;
                    return Some(Err(err));
                }
            }
            Some(Ok(here))
        })
    }

    /// The caller's undo record for the locked set, found on its process's
    /// list or made; linked on the set's list (so its adjustments count).
    fn undo_record(&self, st: &mut SetTxn<'_, 'm, H>, me: Tag) -> Result<u32> {
        let semid = st.locked.object.id();
        let slot = self.registry.slot_of(me).ok_or(Errno::CORRUPT)?;
        // The process's list, under its own lock (taken after the set's).
        let mut own = Txn::begin(self, &slot.lock)?;
        let bound = self.layout.limits.heap_bytes / UndoRecord::SIZE;
        let mut link = &slot.undo_head;
        let mut found = None;
        let mut stale = None;
        for _ in 0..bound {
            let at = link.get();
            if at == 0 {
                break;
            }
            let record = self.arena.get(Off::<UndoRecord>::new(at))?;
            let of = record.semid.get() as i32;
            if of == semid {
                found = Some(at);
                break;
            }
            if stale.is_none() && self.peek_object(Kind::Sem, of).is_none() {
                // Its set is gone for good: drop it from the list (freed below).
                own.set(link, record.proc_next.get())?;
                stale = Some((at, of));
                continue;
            }
            link = &record.proc_next;
        }
        let at = match found {
            Some(at) => at,
            None => {
                let nsems = st.view.len() as u32;
                let owner = BlockOwner {
                    kind: OWNER_UNDO,
                    id: semid as u32,
                };
                let at = self.heap_alloc(UndoRecord::SIZE + nsems * 4, owner)?;
                let record = self.arena.get(Off::<UndoRecord>::new(at))?;
                // Fresh and zero-filled: reachable once pushed (journaled).
                record.semid.set(semid as u32);
                record.nsems.set(nsems);
                record.proc_next.set(slot.undo_head.get());
                own.set(&slot.undo_head, at)?;
                at
            }
        };
        own.commit();
        if let Some((old, of)) = stale {
            self.heap_free(
                old,
                BlockOwner {
                    kind: OWNER_UNDO,
                    id: of as u32,
                },
            )?;
        }
        self.relink_undo(&mut st.locked.txn, &st.view, at, semid)?;
        Ok(at)
    }

    /// Links the record at `at` on the set's list if it is not (made, or
    /// detached by `SETALL`), its adjustments zeroed; returns them.
    fn relink_undo(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        set: &SetView<'m>,
        at: u32,
        semid: i32,
    ) -> Result<&'m [Word]> {
        let (record, adjustments) = self.undo_at(at, semid)?;
        if record.linked.get() != 0 {
            return Ok(adjustments);
        }
        // Unlinked, the adjustments count for nothing: clearing them needs no journal.
        for adjustment in adjustments {
            adjustment.set(0);
        }
        let head = set.set.undo_head.get();
        record.set_prev.set(0);
        txn.set(&record.set_next, head)?;
        if head != 0 {
            txn.set(&self.undo_at(head, semid)?.0.set_prev, at)?;
        }
        txn.set(&set.set.undo_head, at)?;
        txn.set(&record.linked, 1)?;
        Ok(adjustments)
    }

    /// Visits the records on `slot`'s undo list, each with its set locked:
    /// the set id and, while they count (the record linked on a live set),
    /// the adjustments; `None` for a record whose set was removed or reset
    /// since. For a process that is stopped or dead: a running one may change
    /// its list under the walk, which then fails.
    pub(crate) fn visit_undo(
        &self,
        slot: &'m crate::registry::ProcSlot,
        visit: &mut UndoVisitor<'_>,
    ) -> Result<()> {
        let bound = self.layout.limits.heap_bytes / UndoRecord::SIZE;
        let mut at = slot.undo_head.get();
        for _ in 0..bound {
            if at == 0 {
                return Ok(());
            }
            let record = self.arena.get(Off::<UndoRecord>::new(at))?;
            let semid = record.semid.get() as i32;
            let next = record.proc_next.get();
            match self.lock_set(semid) {
                // Held while the adjustments are read; nothing is changed.
                Ok(_locked) => {
                    let (record, adjustments) = self.undo_at(at, semid)?;
                    visit(semid, (record.linked.get() != 0).then_some(adjustments))?;
                }
                Err(Errno::EINVAL | Errno::EIDRM) => visit(semid, None)?,
                Err(err) => return Err(err),
            }
            at = next;
        }
        Err(Errno::CORRUPT)
    }

    /// Applies the undo records of a process that leaves (Linux `exit_sem`),
    /// one set at a time, stamping `pid`, then frees them. Run by the process
    /// itself, or by the one reaper that claimed its slot after it died.
    /// Errors are not reported: there is no caller left to tell, and each
    /// record is settled in a critical section of its own.
    pub(crate) fn settle_undo(&self, slot: &'m crate::registry::ProcSlot, pid: u32) {
        let bound = self.layout.limits.heap_bytes / UndoRecord::SIZE;
        for _ in 0..bound {
            // Read under the list's lock, so that a change a dead holder left
            // unfinished there is rolled back first.
            let Ok(own) = Txn::begin(self, &slot.lock) else {
                return;
            };
            let at = slot.undo_head.get();
            own.commit();
            if at == 0 {
                return;
            }
            let Ok(record) = self.arena.get(Off::<UndoRecord>::new(at)) else {
                return;
            };
            let semid = record.semid.get() as i32;
            if self.apply_undo(at, semid, pid).is_err() {
                return;
            }
            let Ok(mut own) = Txn::begin(self, &slot.lock) else {
                return;
            };
            if slot.undo_head.get() != at
                || own.set(&slot.undo_head, record.proc_next.get()).is_err()
            {
                return;
            }
            own.commit();
            let owner = BlockOwner {
                kind: OWNER_UNDO,
                id: semid as u32,
            };
            if self.heap_free(at, owner).is_err() {
                return;
            }
        }
    }

    /// Takes the waiting-operation records of the dead process in registry
    /// slot `index` out of their queues and frees them, so that no waker
    /// ever completes an operation for it. Run by the reaper that claimed
    /// the slot.
    pub(crate) fn remove_dead_waiters(&self, index: u32) {
        let ours = |waiter: &Waiter| Tag::from_raw(waiter.owner.get()).slot() == Some(index);
        self.sweep_blocks(OWNER_WAITER, |at, semid| {
            let semid = semid as i32;
            match self.lock_set(semid) {
                Ok(mut st) => {
                    let Ok(waiter) = self.waiter(at, semid) else {
                        return false;
                    };
                    let queued = waiter.result.get() == WAITING;
                    if !ours(waiter)
                        || (queued
                            && self
                                .unlink(&mut st.locked.txn, &st.view, waiter, semid)
                                .is_err())
                    {
                        return false;
                    }
                    st.commit();
                    true
                }
                // The set is gone, and its queue with it.
                Err(Errno::EINVAL | Errno::EIDRM) => {
                    self.arena.get(Off::<Waiter>::new(at)).is_ok_and(ours)
                }
                Err(_) => false,
            }
        });
    }

    /// Applies and detaches one undo record, if its set lives and it is
    /// linked, stamping the semaphores it changes with `pid`. As Linux
    /// `exit_sem`, stamps `sem_otime` for any record of a live set, linked
    /// or not (made by a call that failed, or detached by `SETALL`).
    fn apply_undo(&self, at: u32, semid: i32, pid: u32) -> Result<()> {
        let mut st = match self.lock_set(semid) {
            Ok(st) => st,
            // The set is gone: the record is void.
            Err(Errno::EINVAL) => return Ok(()),
            Err(err) => return Err(err),
        };
        let (record, adjustments) = self.undo_at(at, semid)?;
        if record.linked.get() == 0 {
            self.stamp_otime(&mut st.locked.txn, &st.view)?;
            st.commit();
            return Ok(());
        }
        let me = self.identity()?.1;
        let scratch = self.scratch_journal(me, 2 * adjustments.len() as u32 + 8)?;
        let semvmx = self.layout.limits.semvmx as i32;
        let applied = scratch.lend(&mut st).and_then(|()| {
            for (index, adjustment) in adjustments.iter().enumerate() {
                let delta = adjustment.get() as i32;
                if delta == 0 {
                    continue;
                }
                let word = st.view.value(index).ok_or(Errno::CORRUPT)?;
                let pid_word = st.view.pid(index).ok_or(Errno::CORRUPT)?;
                let value = (i64::from(word.get() & VALUE) + i64::from(delta))
                    .max(0)
                    .min(i64::from(semvmx)) as u32;
                st.txn().set(word, (word.get() & !VALUE) | value)?;
                st.txn().set(pid_word, pid)?;
            }
            // Off the set's list, in the same section: never applied twice.
            let (prev, next) = (record.set_prev.get(), record.set_next.get());
            match prev {
                0 => st.locked.txn.set(&st.view.set.undo_head, next)?,
                prev => st.txn().set(&self.undo_at(prev, semid)?.0.set_next, next)?,
            }
            if next != 0 {
                st.txn().set(&self.undo_at(next, semid)?.0.set_prev, prev)?;
            }
            st.txn().set(&record.linked, 0)?;
            self.stamp_otime(&mut st.locked.txn, &st.view)
        });
        let finished = applied.and_then(|()| self.finish_change(st));
        scratch.free(self)?;
        finished
    }

    /// After `SETVAL` or `SETALL`: completes the waiters that can now
    /// proceed, commits, and wakes them.
    fn finish_change(&self, mut st: SetTxn<'_, 'm, H>) -> Result<()> {
        st.txn().checkpoint();
        let mut wakes = Wakes::new();
        let semid = st.locked.object.id();
        if self.update_queue(&mut st.locked.txn, &st.view, semid, &mut wakes)? {
            self.stamp_otime(&mut st.locked.txn, &st.view)?;
        }
        st.commit();
        wakes.wake(self);
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests_sem_waker.rs"]
mod tests_waker;
