//! Verifying every invariant of an arena.
//!
//! [`Namespace::check`] walks the header, the object tables, the heap and the
//! locks, and reports each violation as a [`Problem`] in plain words. It reads
//! without taking locks, so run it on a quiescent arena for a verdict; on a
//! busy one it may report a change in flight.
//!
//! A sparse arena file has holes where nothing was ever written, and on tmpfs
//! even reading a hole through the mapping allocates a page. The caller says
//! which byte ranges may hold data; an object slot lying wholly in a hole reads
//! as zeros — a free slot — and is skipped unless the bitmap claims it.
//!
//! A lock whose holder died guards memory that its journal has yet to roll
//! back; the next process to take the lock would do that first. So does the
//! check: it takes over every such lock, which rolls back the dead holder's
//! unfinished critical section, and only then verifies — the state it judges
//! is the state every process will see. That is the one change it makes.
//!
//! Problems come in two severities: [`Severity::Corrupt`] breaks an invariant;
//! [`Severity::Stale`] is what a dead process leaves behind (its registration)
//! and what reaping clears up.

use core::fmt;

use crate::arena::{Off, Record, Word};
use crate::format;
use crate::heap::{block_info, BLOCK_HEADER, CLASSES};
use crate::host::Host;
use crate::ids::{bucket_of, table_view, Kind, ObjectSlot, KINDS, SEQ_MAX};
use crate::limits::IPCMNI;
use crate::lock::{LockRecord, Txn};
use crate::registry::Owner;
use crate::Namespace;

/// Where a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// The arena header.
    Header,
    /// A kind's object table.
    Table(Kind),
    /// The heap.
    Heap,
    /// The process registry.
    Registry,
}

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// An invariant is broken.
    Corrupt,
    /// A dead process's leftovers, which reaping clears.
    Stale,
}

/// One violation found by [`Namespace::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub area: Area,
    /// The slot, block offset or bucket concerned, if one is.
    pub at: Option<u32>,
    /// What is wrong.
    pub what: &'static str,
    /// How bad.
    pub severity: Severity,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.area {
            Area::Header => f.write_str("header")?,
            Area::Table(kind) => write!(f, "{} table", kind.name())?,
            Area::Heap => f.write_str("heap")?,
            Area::Registry => f.write_str("process registry")?,
        }
        match (self.area, self.at) {
            (Area::Heap, Some(at)) => write!(f, " at offset {at:#x}")?,
            (_, Some(at)) => write!(f, " slot {at}")?,
            (_, None) => {}
        }
        write!(f, ": {}", self.what)
    }
}

/// The totals of a check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Problems of severity [`Severity::Corrupt`].
    pub corrupt: u32,
    /// Problems of severity [`Severity::Stale`].
    pub stale: u32,
    /// Locks abandoned by dead processes, taken over and rolled back first.
    pub recovered: u32,
}

/// A fixed bitset big enough for one table's slots.
struct Seen([u32; (IPCMNI / 32) as usize]);

// A table has at most IPCMNI slots (`Layout::compute` caps it there), so
// every slot index has its bit; an index past them would be no slot's, and is
// never fresh nor contained.
impl Seen {
    fn insert(&mut self, index: u32) -> bool {
        let bit = 1 << (index % 32);
        self.0.get_mut((index / 32) as usize).is_some_and(|word| {
            let fresh = *word & bit == 0;
            *word |= bit;
            fresh
        })
    }

    fn contains(&self, index: u32) -> bool {
        self.0
            .get((index / 32) as usize)
            .is_some_and(|word| word & (1 << (index % 32)) != 0)
    }
}

/// A table's bitmap as one bit per slot, in slot order.
fn bitmap_bits(bitmap: &[Word]) -> impl Iterator<Item = bool> + '_ {
    bitmap.iter().flat_map(|word| {
        let bits = word.get();
        (0..32).map(move |bit| bits & (1 << bit) != 0)
    })
}

/// Whether a slot before `stop` on the chain from `head` has `key` (keys are
/// unique, and equal keys share a chain).
fn chain_has_key(slots: &[ObjectSlot], head: u32, stop: u32, key: i32) -> bool {
    let mut link = head;
    for _ in 0..slots.len() {
        match link.checked_sub(1) {
            Some(index) if index != stop => match slots.get(index as usize) {
                Some(slot) if slot.view().key == key => return true,
                Some(slot) => link = slot.view().hash_next,
                None => return false,
            },
            _ => return false,
        }
    }
    false
}

struct Checker<'r> {
    report: &'r mut dyn FnMut(Problem),
    summary: CheckSummary,
}

impl Checker<'_> {
    fn problem(&mut self, area: Area, at: Option<u32>, what: &'static str, severity: Severity) {
        match severity {
            Severity::Corrupt => self.summary.corrupt += 1,
            Severity::Stale => self.summary.stale += 1,
        }
        (self.report)(Problem {
            area,
            at,
            what,
            severity,
        });
    }

    fn corrupt(&mut self, area: Area, at: Option<u32>, what: &'static str) {
        self.problem(area, at, what, Severity::Corrupt);
    }
}

impl<'m, H: Host> Namespace<'m, H> {
    /// Checks every invariant of the arena, calling `report` for each problem.
    /// `may_hold_data(offset, len)` is false only for ranges known to be
    /// holes (never written); pass `&|_, _| true` when there is no such knowledge.
    pub fn check(
        &self,
        may_hold_data: &dyn Fn(u32, u32) -> bool,
        report: &mut dyn FnMut(Problem),
    ) -> CheckSummary {
        let recovered = self.recover_abandoned_locks(may_hold_data);
        let mut checker = Checker {
            report,
            summary: CheckSummary {
                recovered,
                ..CheckSummary::default()
            },
        };
        match format::read(&self.arena) {
            Ok(layout) if layout == self.layout => {}
            _ => checker.corrupt(
                Area::Header,
                None,
                "header changed since the arena was opened",
            ),
        }
        for kind in KINDS {
            self.check_table(&mut checker, kind, may_hold_data);
        }
        self.check_heap(&mut checker);
        for (slot, process) in self.registry.live_slots() {
            // A dead process's checkpointed undo list, kept on purpose.
            let kept = self
                .registry
                .slot_at(slot)
                .is_ok_and(|at| self.registry.is_kept(at));
            if !kept && self.host.liveness(process) == crate::host::Liveness::Dead {
                checker.problem(
                    Area::Registry,
                    Some(slot),
                    "registered process is dead",
                    Severity::Stale,
                );
            }
        }
        checker.summary
    }

    /// Takes over and releases every lock held by a dead process, rolling back
    /// its unfinished critical section; returns how many there were.
    pub fn recover_abandoned_locks(&self, may_hold_data: &dyn Fn(u32, u32) -> bool) -> u32 {
        let abandoned = |lock_owner: Option<crate::registry::Tag>| {
            lock_owner.is_some_and(|owner| self.registry.owner_is_dead(&self.host, owner))
        };
        let mut recovered = 0;
        for kind in KINDS {
            let Ok(table) = table_view(&self.arena, &self.layout, kind) else {
                continue;
            };
            if abandoned(table.lock.owner())
                && Txn::begin(self, table.lock).map(Txn::commit).is_ok()
            {
                recovered += 1;
            }
            for (index, slot) in (0u32..).zip(table.slots) {
                let offset = table.layout.slots + index * ObjectSlot::SIZE;
                if !may_hold_data(offset, ObjectSlot::SIZE) {
                    continue;
                }
                let lock = slot.view().lock;
                if abandoned(lock.owner())
                    && Txn::begin_under(self, lock, table.lock)
                        .map(Txn::commit)
                        .is_ok()
                {
                    recovered += 1;
                }
            }
        }
        if let Ok(lock) = self.heap_lock() {
            if abandoned(lock.owner()) && Txn::begin(self, lock).map(Txn::commit).is_ok() {
                recovered += 1;
            }
        }
        recovered
    }

    fn check_lock<const N: usize>(
        &self,
        checker: &mut Checker<'_>,
        area: Area,
        at: Option<u32>,
        lock: &LockRecord<N>,
    ) {
        match lock.owner() {
            None if lock.journal_len() != 0 => {
                checker.corrupt(area, at, "released lock left a journal behind")
            }
            None => {}
            Some(owner) => {
                if lock.journal_len() > lock.capacity() {
                    checker.corrupt(area, at, "lock journal longer than its capacity");
                }
                if self.registry.owner(owner) == Owner::Gone
                    || self.registry.owner_is_dead(&self.host, owner)
                {
                    checker.problem(area, at, "lock held by a dead process", Severity::Stale);
                }
            }
        }
    }

    fn check_table(
        &self,
        checker: &mut Checker<'_>,
        kind: Kind,
        may_hold_data: &dyn Fn(u32, u32) -> bool,
    ) {
        let area = Area::Table(kind);
        let table = match table_view(&self.arena, &self.layout, kind) {
            Ok(table) => table,
            Err(_) => return checker.corrupt(area, None, "table lies outside the arena"),
        };
        self.check_lock(checker, area, None, table.lock);
        if table.seq >= SEQ_MAX {
            checker.corrupt(area, None, "sequence number out of range");
        }
        let mut live = 0;
        let in_hole = |index: u32| {
            !may_hold_data(
                table.layout.slots + index * ObjectSlot::SIZE,
                ObjectSlot::SIZE,
            )
        };
        for ((index, slot), bit) in (0u32..).zip(table.slots).zip(bitmap_bits(table.bitmap)) {
            if !bit && in_hole(index) {
                continue;
            }
            let view = slot.view();
            match view.live {
                None => checker.corrupt(area, Some(index), "state is neither free nor live"),
                Some(is_live) if is_live != bit => {
                    checker.corrupt(area, Some(index), "bitmap disagrees with the slot's state")
                }
                Some(true) => {
                    live += 1;
                    if view.seq >= SEQ_MAX {
                        checker.corrupt(area, Some(index), "sequence number out of range");
                    } else if kind == Kind::Msg {
                        let id = (view.seq * IPCMNI + index) as i32;
                        self.check_queue(id, &mut |what| checker.corrupt(area, Some(index), what));
                    }
                }
                Some(false) => {}
            }
            self.check_lock(checker, area, Some(index), view.lock);
        }
        let past_end = (0u32..)
            .zip(bitmap_bits(table.bitmap))
            .skip(table.layout.slot_count as usize);
        for (bit, set) in past_end {
            if set {
                checker.corrupt(area, Some(bit), "bitmap marks a slot past the table's end");
            }
        }
        if live != table.in_use {
            checker.corrupt(area, None, "in-use count disagrees with the live slots");
        }
        let mut seen = Seen([0; (IPCMNI / 32) as usize]);
        let mut skip_page = false;
        for (bucket, head) in (0u32..).zip(table.buckets) {
            // One question per page of buckets: a page in a hole holds only empty buckets.
            let offset = table.layout.buckets + bucket * 4;
            if offset % 4096 == 0 || bucket == 0 {
                skip_page = !may_hold_data(offset, 4096 - offset % 4096);
            }
            if skip_page {
                continue;
            }
            let mut link = head.get();
            let mut steps = 0;
            while let Some(index) = link.checked_sub(1) {
                let Some(slot) = table.slots.get(index as usize) else {
                    checker.corrupt(
                        area,
                        Some(bucket),
                        "hash chain names a slot past the table's end",
                    );
                    break;
                };
                let view = slot.view();
                if !seen.insert(index) {
                    checker.corrupt(
                        area,
                        Some(index),
                        "slot is on a hash chain twice (or in a cycle)",
                    );
                    break;
                }
                if chain_has_key(table.slots, head.get(), index, view.key) {
                    checker.corrupt(area, Some(index), "two live objects have the same key");
                }
                if view.live != Some(true) {
                    checker.corrupt(
                        area,
                        Some(index),
                        "hash chain holds a slot that is not live",
                    );
                } else if view.key == 0 || bucket_of(view.key, table.layout.bucket_bits) != bucket {
                    checker.corrupt(area, Some(index), "slot is on the wrong hash chain");
                }
                steps += 1;
                if steps > table.layout.slot_count {
                    break;
                }
                link = view.hash_next;
            }
        }
        for (index, slot) in (0u32..).zip(table.slots) {
            if in_hole(index) {
                continue;
            }
            let view = slot.view();
            if view.live == Some(true) && view.key != 0 && !seen.contains(index) {
                checker.corrupt(area, Some(index), "public key missing from its hash chain");
            }
        }
    }

    /// Whether the allocated block at `block` is held: by the object it
    /// names as its owner (a set's semaphores, a queue's ring, a segment's
    /// bytes or attachment records). Blocks that processes own while they
    /// wait or hold adjustments are freed by those processes or by reaping.
    fn block_is_held(&self, block: u32, kind: u32) -> bool {
        let Ok(id) = self.arena.get(Off::<Word>::new(block + 4)) else {
            return false;
        };
        let (id, payload) = (id.get(), block + BLOCK_HEADER);
        self.sem_holds_block(kind, id, payload)
            .or_else(|| self.msg_holds_block(kind, id, payload))
            .or_else(|| self.shm_holds_block(kind, id, payload))
            .unwrap_or(true)
    }

    fn check_heap(&self, checker: &mut Checker<'_>) {
        let area = Area::Heap;
        let Ok(lock) = self.heap_lock() else {
            return checker.corrupt(area, None, "heap header lies outside the arena");
        };
        self.check_lock(checker, area, None, lock);
        let Ok((bump, heads, used)) = self.heap_state() else {
            return checker.corrupt(area, None, "heap header lies outside the arena");
        };
        let layout = &self.layout;
        if bump < layout.heap_start || bump > layout.heap_end || bump % 8 != 0 {
            return checker.corrupt(area, None, "bump pointer outside the heap");
        }
        let mut at = layout.heap_start;
        let mut allocated: u64 = 0;
        let mut free_blocks = [0u32; CLASSES];
        while at < bump {
            match block_info(&self.arena, layout, at, bump) {
                Ok(info) => {
                    if info.allocated {
                        allocated += u64::from(info.size);
                        if !self.block_is_held(at, info.owner_kind) {
                            checker.corrupt(
                                area,
                                Some(at),
                                "block leaked: the object it was allocated for no longer holds it",
                            );
                        }
                    } else if let Some(count) = free_blocks.get_mut(info.class) {
                        // (`block_info` gives no class past the last.)
                        *count += 1;
                    }
                    at += info.size;
                }
                Err(_) => return checker.corrupt(area, Some(at), "bad block header"),
            }
        }
        if allocated != u64::from(used) {
            checker.corrupt(area, None, "bytes-in-use count disagrees with the blocks");
        }
        for (class, (head, free)) in heads.iter().zip(free_blocks).enumerate() {
            let mut link = *head;
            let mut listed = 0u32;
            while link != 0 {
                let info = match block_info(&self.arena, layout, link, bump) {
                    Ok(info) if !info.allocated && info.class == class => info,
                    _ => {
                        checker.corrupt(
                            area,
                            Some(link),
                            "free list holds a block that is not free in its class",
                        );
                        break;
                    }
                };
                listed += 1;
                if listed > free {
                    checker.corrupt(
                        area,
                        Some(link),
                        "free list is longer than the free blocks (a cycle?)",
                    );
                    break;
                }
                let _ = info;
                link = self
                    .arena
                    .get(Off::<Word>::new(link + BLOCK_HEADER))
                    .map_or(0, Word::get);
            }
            if listed < free {
                checker.corrupt(area, None, "free block missing from its free list");
            }
        }
    }
}
