//! Object tables: keys, ids and the life of an object, as Linux `ipc/util.c`.
//!
//! # Behaviour
//!
//! Each kind (semaphore sets, message queues, shared memory segments) has its
//! own table. [`Namespace::ipc_get`] is `ipcget()`: `IPC_PRIVATE` always
//! creates; a public key is looked up, and then `IPC_CREAT`/`IPC_EXCL`
//! decide between `EEXIST`, `ENOENT`, opening and creating. An id is
//! `seq * IPCMNI + index`; indices are handed out cyclically in the window
//! `max(in_use * 3 / 2, 64)` and the sequence advances each time the cycle
//! wraps, exactly as the kernel does, so ids match the kernel's and a stale id
//! is refused with `EINVAL`.
//!
//! # Internals
//!
//! A table is a header (lock, `in_use`, `seq`, next and last index), a bitmap
//! of used slots, hash buckets for public keys, and the object slots. A key
//! hashes to a bucket holding the first slot of its chain; slots chain through
//! `hash_next`. With as many buckets as slots, a lookup is O(1) on average at
//! any occupancy. Every walk of a chain is bounded by the number of slots, so a
//! cycle planted in the arena is an error, not a hang.
//!
//! # Locking
//!
//! The table lock protects the header, bitmap, buckets and each slot's
//! identity (`state`, `seq`, `key`, `hash_next`); the object lock protects the
//! rest of the slot (permissions, times, the kind's fields). Creation and
//! removal hold the table lock, then the object lock, and journal every change
//! in the table lock's journal; the object lock names the table lock as its
//! parent for recovery. Operations on an object by id hold only its lock and
//! check under it that the slot is live with the id's sequence number.

use crate::arena::{Arena, Off, Record, Word, Word64};
use crate::errno::{Errno, Result};
use crate::format::{Layout, TableLayout};
use crate::host::Host;
use crate::limits::{Limits, IPCMNI};
use crate::lock::{LockRecord, Txn};
use crate::perm::{Cred, IpcPerm, PermRecord, IPC_CREAT, IPC_EXCL, IPC_PRIVATE, MODE_BITS};
use crate::Namespace;

/// The three kinds of System V IPC object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Semaphore sets.
    Sem = 0,
    /// Message queues.
    Msg = 1,
    /// Shared memory segments.
    Shm = 2,
}

/// Every kind, in table order.
pub const KINDS: [Kind; 3] = [Kind::Sem, Kind::Msg, Kind::Shm];

impl Kind {
    /// The most objects of this kind (SEMMNI, MSGMNI, SHMMNI).
    pub fn limit(self, limits: &Limits) -> u32 {
        match self {
            Kind::Sem => limits.semmni,
            Kind::Msg => limits.msgmni,
            Kind::Shm => limits.shmmni,
        }
    }

    /// How many words at the end of a slot's ext outlive the objects in it:
    /// a lock of the kind's own (a message queue's receive lock), which a
    /// process may still hold for a removed object while a new one is made.
    fn kept_ext_words(self) -> usize {
        match self {
            Kind::Msg => crate::msg::KEPT_EXT_WORDS,
            Kind::Sem | Kind::Shm => 0,
        }
    }

    /// The name `ipcs` uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sem => "semaphore",
            Kind::Msg => "message queue",
            Kind::Shm => "shared memory",
        }
    }
}

/// The largest sequence number plus one (Linux `ipcid_seq_max()`).
const SEQ_LIMIT: u32 = (i32::MAX as u32) / IPCMNI + 1;

/// `last_idx` before any object was created (the kernel's -1).
const NO_INDEX: u32 = u32::MAX;

/// Slot states.
const FREE: u32 = 0;
const LIVE: u32 = 1;

/// Words each slot keeps for its kind's own fields.
pub const EXT_WORDS: usize = 65;

/// Where a slot's ext words start, in bytes from the slot's (64-aligned)
/// start: for kinds that place their fields by cache line.
pub(crate) const EXT_OFFSET: usize = core::mem::offset_of!(ObjectSlot, ext);

/// A table's header.
#[repr(C)]
pub(crate) struct TableHeader {
    pub(crate) lock: LockRecord<32>,
    in_use: Word,
    seq: Word,
    next_index: Word,
    last_index: Word,
    /// The kind's own total, under the table lock: semaphores in all sets
    /// (SEMMNS), pages of all segments (SHMALL).
    pub(crate) usage: Word64,
}

// SAFETY: `repr(C)`, a lock record and words, no padding.
unsafe impl Record for TableHeader {}

/// One object slot: 576 bytes (nine cache lines), so slots never share a line.
#[repr(C)]
pub struct ObjectSlot {
    lock: LockRecord<32>,
    state: Word,
    seq: Word,
    key: Word,
    hash_next: Word,
    perm: PermRecord,
    ctime: Word64,
    ext: [Word; EXT_WORDS],
}

// SAFETY: `repr(C)`, a lock record, words and records of words, no padding.
unsafe impl Record for ObjectSlot {}

const _: () = assert!(ObjectSlot::SIZE % 64 == 0);

pub(crate) fn format_tables(arena: &Arena<'_>, layout: &Layout) {
    for table in layout.tables {
        if let Ok(header) = arena.get(Off::<TableHeader>::new(table.header)) {
            header.last_index.set(NO_INDEX);
        }
    }
}

fn key_hash(key: i32, bits: u32) -> u32 {
    (key as u32).wrapping_mul(0x9E37_79B1) >> (32 - bits)
}

/// A live object, borrowed from the arena.
#[derive(Clone, Copy)]
pub struct Object<'m> {
    slot: &'m ObjectSlot,
    kind: Kind,
    id: i32,
}

impl<'m> Object<'m> {
    /// The object's id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its `ipc_perm`.
    pub fn perm(&self) -> IpcPerm {
        let p = &self.slot.perm;
        IpcPerm {
            key: self.slot.key.get() as i32,
            uid: p.uid.get(),
            gid: p.gid.get(),
            cuid: p.cuid.get(),
            cgid: p.cgid.get(),
            mode: p.mode.get(),
            seq: self.slot.seq.get(),
        }
    }

    /// Its permission words, for kinds that keep flags in the mode's high
    /// bits (segments' `SHM_DEST`, `SHM_LOCKED`), under its lock.
    pub(crate) fn perm_words(&self) -> &'m PermRecord {
        &self.slot.perm
    }

    /// When its permissions last changed (wall-clock seconds).
    pub fn ctime(&self) -> i64 {
        self.slot.ctime.get() as i64
    }

    /// The `ctime` field, for kinds whose operations change it.
    pub(crate) fn ctime_word(&self) -> &'m Word64 {
        &self.slot.ctime
    }

    /// The kind's own words of the slot.
    pub fn ext(&self) -> &'m [Word; EXT_WORDS] {
        &self.slot.ext
    }

    /// The kind's own words of the slot, as the kind's record `T`.
    pub(crate) fn ext_as<T: Record>(&self) -> &'m T {
        crate::arena::overlay(&self.slot.ext)
    }

    /// Linux `ipcperms()` on the object's permissions, read in place.
    #[inline]
    pub(crate) fn allows(&self, cred: &Cred<'_>, flag: u32) -> bool {
        self.slot.perm.allows(cred, flag)
    }
}

/// One kind's table, resolved.
struct Table<'m> {
    arena: Arena<'m>,
    layout: TableLayout,
    limit: u32,
    header: &'m TableHeader,
}

impl<'m> Table<'m> {
    fn slot(&self, index: u32) -> Result<&'m ObjectSlot> {
        if index >= self.layout.slot_count {
            return Err(Errno::CORRUPT);
        }
        self.arena
            .get(Off::<ObjectSlot>::new(self.layout.slots).index(index)?)
    }

    fn bitmap_word(&self, index: u32) -> Result<&'m Word> {
        self.arena
            .get(Off::<Word>::new(self.layout.bitmap).index(index / 32)?)
    }

    fn bucket(&self, key: i32) -> Result<&'m Word> {
        let bucket = key_hash(key, self.layout.bucket_bits);
        self.arena
            .get(Off::<Word>::new(self.layout.buckets).index(bucket)?)
    }

    /// The slot holding live public `key`, if any. The table lock is held.
    fn find_key(&self, key: i32) -> Result<Option<(u32, &'m ObjectSlot)>> {
        let mut link = self.bucket(key)?.get();
        for _ in 0..self.layout.slot_count {
            let Some(index) = link.checked_sub(1) else {
                return Ok(None);
            };
            let slot = self.slot(index)?;
            if slot.state.get() == LIVE && slot.key.get() as i32 == key {
                return Ok(Some((index, slot)));
            }
            link = slot.hash_next.get();
        }
        Err(Errno::CORRUPT)
    }

    /// Links slot `index` at the head of its key's chain.
    fn hash_insert<H: Host>(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        index: u32,
        slot: &'m ObjectSlot,
    ) -> Result<()> {
        let bucket = self.bucket(slot.key.get() as i32)?;
        txn.set(&slot.hash_next, bucket.get())?;
        txn.set(bucket, index + 1)
    }

    /// Unlinks slot `index` from its key's chain.
    fn hash_remove<H: Host>(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        index: u32,
        slot: &'m ObjectSlot,
    ) -> Result<()> {
        let mut link = self.bucket(slot.key.get() as i32)?;
        for _ in 0..self.layout.slot_count {
            let Some(current) = link.get().checked_sub(1) else {
                return Err(Errno::CORRUPT);
            };
            if current == index {
                return txn.set(link, slot.hash_next.get());
            }
            link = &self.slot(current)?.hash_next;
        }
        Err(Errno::CORRUPT)
    }

    /// Frees the slot of a removed object (the table and the object locked).
    fn free_slot<H: Host>(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        index: u32,
        slot: &'m ObjectSlot,
    ) -> Result<()> {
        if slot.key.get() as i32 != IPC_PRIVATE {
            self.hash_remove(txn, index, slot)?;
        }
        self.set_used(txn, index, false)?;
        txn.set(
            &self.header.in_use,
            self.header.in_use.get().saturating_sub(1),
        )?;
        txn.set(&slot.state, FREE)
    }

    /// A free index, chosen as Linux `ipc_idr_alloc()` does, and the sequence
    /// number it gets. The table lock is held.
    fn alloc_index<H: Host>(&self, txn: &mut Txn<'_, 'm, H>) -> Result<(u32, u32)> {
        let in_use = self.header.in_use.get();
        let window = (in_use.saturating_mul(3) / 2)
            .max(64)
            .min(self.layout.slot_count);
        let start = self.header.next_index.get();
        let index = match self.first_free(start, window)? {
            Some(index) => index,
            None if start > 0 => self.first_free(0, window)?.ok_or(Errno::ENOSPC)?,
            None => return Err(Errno::ENOSPC),
        };
        let last = self.header.last_index.get();
        let mut seq = self.header.seq.get();
        if seq >= SEQ_LIMIT {
            return Err(Errno::CORRUPT);
        }
        if last != NO_INDEX && index <= last {
            seq = (seq + 1) % SEQ_LIMIT;
            txn.set(&self.header.seq, seq)?;
        }
        txn.set(&self.header.last_index, index)?;
        txn.set(&self.header.next_index, index + 1)?;
        Ok((index, seq))
    }

    /// The first index in `from..to` whose bitmap bit is clear.
    fn first_free(&self, from: u32, to: u32) -> Result<Option<u32>> {
        let mut index = from;
        while index < to {
            let bits = self.bitmap_word(index)?.get() | ((1u32 << (index % 32)) - 1);
            if bits != u32::MAX {
                let found = index - index % 32 + bits.trailing_ones();
                return Ok((found < to).then_some(found));
            }
            index = index - index % 32 + 32;
        }
        Ok(None)
    }

    fn set_used<H: Host>(&self, txn: &mut Txn<'_, 'm, H>, index: u32, used: bool) -> Result<()> {
        let word = self.bitmap_word(index)?;
        let bit = 1 << (index % 32);
        let bits = if used {
            word.get() | bit
        } else {
            word.get() & !bit
        };
        txn.set(word, bits)
    }
}

/// An object locked by its id: operate on it, then [`ObjectTxn::commit`].
pub struct ObjectTxn<'n, 'm, H: Host> {
    /// The critical section; its journal takes the object's changes.
    pub txn: Txn<'n, 'm, H>,
    /// The object.
    pub object: Object<'m>,
}

impl<H: Host> ObjectTxn<'_, '_, H> {
    /// Makes the changes permanent and unlocks the object.
    pub fn commit(self) {
        self.txn.commit();
    }
}

/// The id of slot `index` at sequence `seq` (read from the arena, so checked).
fn make_id(seq: u32, index: u32) -> Result<i32> {
    if seq >= SEQ_LIMIT || index >= IPCMNI {
        return Err(Errno::CORRUPT);
    }
    // seq < 65536 and index < 32768: the id is below 2^31.
    Ok((seq * IPCMNI + index) as i32)
}

#[inline]
fn split_id(id: i32) -> Result<(u32, u32)> {
    let id = u32::try_from(id).map_err(|_| Errno::EINVAL)?;
    Ok((id % IPCMNI, id / IPCMNI))
}

impl<'m, H: Host> Namespace<'m, H> {
    fn table(&self, kind: Kind) -> Result<Table<'m>> {
        let layout = self.layout.tables[kind as usize];
        Ok(Table {
            arena: self.arena,
            layout,
            limit: kind.limit(&self.layout.limits),
            header: self.arena.get(Off::new(layout.header))?,
        })
    }

    /// Linux `ipcget()`: opens the object that `key` names or creates one.
    ///
    /// For an existing object, `existing` runs first (a kind's own checks, such
    /// as a semaphore count larger than the set's), then the permission check
    /// against the mode bits of `flags`. For a new object, `create` fills in the
    /// kind's fields; if it fails, nothing is created. Returns the id.
    pub fn ipc_get(
        &self,
        kind: Kind,
        key: i32,
        flags: i32,
        cred: &Cred<'_>,
        existing: impl FnOnce(&Object<'m>) -> Result<()>,
        create: impl FnOnce(&mut Txn<'_, 'm, H>, &Object<'m>) -> Result<()>,
    ) -> Result<i32> {
        self.ipc_get_checked(kind, key, flags, cred, existing, || Ok(()), create)
    }

    /// [`Namespace::ipc_get`], where `new_args` checks the arguments of a
    /// new object before the table's limit is: Linux `newary()` and
    /// `newseg()` refuse a bad size (`EINVAL`) before `ipc_addid()` finds
    /// the table full (`ENOSPC`).
    #[allow(clippy::too_many_arguments)] // ipc_get's, and the one check it lacks
    pub(crate) fn ipc_get_checked(
        &self,
        kind: Kind,
        key: i32,
        flags: i32,
        cred: &Cred<'_>,
        existing: impl FnOnce(&Object<'m>) -> Result<()>,
        new_args: impl FnOnce() -> Result<()>,
        create: impl FnOnce(&mut Txn<'_, 'm, H>, &Object<'m>) -> Result<()>,
    ) -> Result<i32> {
        let table = self.table(kind)?;
        let mut txn = Txn::begin(self, &table.header.lock)?;
        if key != IPC_PRIVATE {
            if let Some((index, slot)) = table.find_key(key)? {
                if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                txn.lock_nested(&slot.lock)?;
                let id = make_id(slot.seq.get(), index)?;
                let object = Object { slot, kind, id };
                existing(&object)?;
                if !object.perm().allows(cred, flags as u32) {
                    return Err(Errno::EACCES);
                }
                txn.commit();
                return Ok(id);
            }
            if flags & IPC_CREAT == 0 {
                return Err(Errno::ENOENT);
            }
        }
        new_args()?;
        if table.header.in_use.get() >= table.limit {
            return Err(Errno::ENOSPC);
        }
        let (index, seq) = table.alloc_index(&mut txn)?;
        let slot = table.slot(index)?;
        txn.lock_nested(&slot.lock)?;
        if slot.state.get() != FREE {
            return Err(Errno::CORRUPT);
        }
        // A free slot is reachable by no one until `state` turns LIVE (journaled,
        // last), so its fields are written without journaling.
        slot.seq.set(seq);
        slot.key.set(key as u32);
        slot.perm.uid.set(cred.euid);
        slot.perm.cuid.set(cred.euid);
        slot.perm.gid.set(cred.egid);
        slot.perm.cgid.set(cred.egid);
        slot.perm.mode.set(flags as u32 & MODE_BITS);
        slot.ctime.set(self.host.wall_clock() as u64);
        for word in &slot.ext[..EXT_WORDS - kind.kept_ext_words()] {
            word.set(0);
        }
        let id = make_id(seq, index)?;
        let object = Object { slot, kind, id };
        create(&mut txn, &object)?;
        if key != IPC_PRIVATE {
            table.hash_insert(&mut txn, index, slot)?;
        }
        table.set_used(&mut txn, index, true)?;
        txn.set(&table.header.in_use, table.header.in_use.get() + 1)?;
        txn.set(&slot.state, LIVE)?;
        txn.commit();
        Ok(id)
    }

    /// Locks the object `id` names: `EINVAL` for an id that names no live object.
    pub fn lock_object(&self, kind: Kind, id: i32) -> Result<ObjectTxn<'_, 'm, H>> {
        let (index, seq) = split_id(id)?;
        let table = self.table(kind)?;
        let slot = table.slot(index).map_err(|_| Errno::EINVAL)?;
        let txn = Txn::begin_under(self, &slot.lock, &table.header.lock)?;
        if slot.state.get() != LIVE || slot.seq.get() != seq {
            return Err(Errno::EINVAL);
        }
        Ok(ObjectTxn {
            txn,
            object: Object { slot, kind, id },
        })
    }

    /// `IPC_RMID`: removes object `id` if `cred` owns it (`EPERM` otherwise).
    /// `cleanup` runs with the object locked, before it goes; what it returns
    /// is handed back after the removal has committed (heap blocks to release,
    /// for instance: see the heap's crash-safety rule).
    pub fn ipc_remove<R>(
        &self,
        kind: Kind,
        id: i32,
        cred: &Cred<'_>,
        cleanup: impl FnOnce(&mut Txn<'_, 'm, H>, &Object<'m>) -> Result<R>,
    ) -> Result<R> {
        self.ipc_remove_then(kind, id, cred, cleanup, |_, result| result)
    }

    /// [`Namespace::ipc_remove`], and then `after`, which runs once the removal
    /// is permanent but while the object's lock is still held (to wake the
    /// object's sleepers while their records cannot go away).
    pub(crate) fn ipc_remove_then<R, T>(
        &self,
        kind: Kind,
        id: i32,
        cred: &Cred<'_>,
        cleanup: impl FnOnce(&mut Txn<'_, 'm, H>, &Object<'m>) -> Result<R>,
        after: impl FnOnce(&Object<'m>, R) -> T,
    ) -> Result<T> {
        let (mut txn, table, index, object) = self.lock_for_removal(kind, id, Some(cred))?;
        let result = cleanup(&mut txn, &object)?;
        table.free_slot(&mut txn, index, object.slot)?;
        txn.checkpoint();
        let out = after(&object, result);
        txn.commit();
        Ok(out)
    }

    /// Removal for objects that may outlive `IPC_RMID` (segments still
    /// attached): with the table and the object locked, `decide` says
    /// whether the object goes now. If not, its key is freed (it becomes
    /// private, as Linux does). `cred` is `None` for the engine's own
    /// removal of an object already marked for it. Returns whether it went.
    pub(crate) fn ipc_remove_or_keep(
        &self,
        kind: Kind,
        id: i32,
        cred: Option<&Cred<'_>>,
        decide: impl FnOnce(&mut Txn<'_, 'm, H>, &Object<'m>) -> Result<bool>,
    ) -> Result<bool> {
        let (mut txn, table, index, object) = self.lock_for_removal(kind, id, cred)?;
        let slot = object.slot;
        let gone = decide(&mut txn, &object)?;
        if gone {
            table.free_slot(&mut txn, index, slot)?;
        } else if slot.key.get() as i32 != IPC_PRIVATE {
            table.hash_remove(&mut txn, index, slot)?;
            txn.set(&slot.key, IPC_PRIVATE as u32)?;
        }
        txn.commit();
        Ok(gone)
    }

    /// Locks the table and object `id` for removal, checking that `cred`
    /// (if any) owns it.
    fn lock_for_removal(
        &self,
        kind: Kind,
        id: i32,
        cred: Option<&Cred<'_>>,
    ) -> Result<(Txn<'_, 'm, H>, Table<'m>, u32, Object<'m>)> {
        let (index, seq) = split_id(id)?;
        let table = self.table(kind)?;
        let slot = table.slot(index).map_err(|_| Errno::EINVAL)?;
        let mut txn = Txn::begin(self, &table.header.lock)?;
        txn.lock_nested(&slot.lock)?;
        if slot.state.get() != LIVE || slot.seq.get() != seq {
            return Err(Errno::EINVAL);
        }
        let object = Object { slot, kind, id };
        if cred.is_some_and(|cred| !object.perm().owned_by(cred)) {
            return Err(Errno::EPERM);
        }
        Ok((txn, table, index, object))
    }

    /// The live object `id` names, read without its lock: for the lock-free
    /// fast path, which confirms everything again in one compare-and-swap.
    #[inline]
    pub(crate) fn peek_object(&self, kind: Kind, id: i32) -> Option<Object<'m>> {
        let (index, seq) = split_id(id).ok()?;
        let table = &self.layout.tables[kind as usize];
        if index >= table.slot_count {
            return None;
        }
        let slot = self
            .arena
            .get(Off::<ObjectSlot>::new(table.slots).index(index).ok()?)
            .ok()?;
        (slot.state.get() == LIVE && slot.seq.get() == seq).then_some(Object { slot, kind, id })
    }

    /// Locks the slot that `id` points to, whether or not it still holds that
    /// object: for a sleeper that must learn, under the lock, what became of
    /// it. The object is `None` when removed.
    pub(crate) fn lock_slot_of(
        &self,
        kind: Kind,
        id: i32,
    ) -> Result<(Txn<'_, 'm, H>, Option<Object<'m>>)> {
        let (index, seq) = split_id(id)?;
        let table = self.table(kind)?;
        let slot = table.slot(index).map_err(|_| Errno::EINVAL)?;
        let txn = Txn::begin_under(self, &slot.lock, &table.header.lock)?;
        let live = slot.state.get() == LIVE && slot.seq.get() == seq;
        Ok((txn, live.then_some(Object { slot, kind, id })))
    }

    /// Locks the lock `second` finds in the ext words of the slot `id`
    /// points to (a kind's own second lock, kept across the objects in the
    /// slot), with the slot's lock as its parent, whether or not the slot
    /// still holds that object: the object is `None` when removed.
    pub(crate) fn lock_second<const N: usize>(
        &self,
        kind: Kind,
        id: i32,
        second: impl FnOnce(&'m [Word; EXT_WORDS]) -> &'m LockRecord<N>,
    ) -> Result<(Txn<'_, 'm, H>, Option<Object<'m>>)> {
        let (index, seq) = split_id(id)?;
        let table = self.table(kind)?;
        let slot = table.slot(index).map_err(|_| Errno::EINVAL)?;
        let txn = Txn::begin_under(self, second(&slot.ext), &slot.lock)?;
        let live = slot.state.get() == LIVE && slot.seq.get() == seq;
        Ok((txn, live.then_some(Object { slot, kind, id })))
    }

    /// Locks the live object in slot `index` (`SEM_STAT` and friends take an
    /// index, not an id): `EINVAL` when the slot is free.
    pub fn lock_index(&self, kind: Kind, index: i32) -> Result<ObjectTxn<'_, 'm, H>> {
        // Linux looks the slot up as it looks an id up: by its low bits.
        let index = u32::try_from(index).map_err(|_| Errno::EINVAL)? % IPCMNI;
        let table = self.table(kind)?;
        let slot = table.slot(index).map_err(|_| Errno::EINVAL)?;
        let txn = Txn::begin_under(self, &slot.lock, &table.header.lock)?;
        if slot.state.get() != LIVE {
            return Err(Errno::EINVAL);
        }
        let id = make_id(slot.seq.get(), index)?;
        Ok(ObjectTxn {
            txn,
            object: Object { slot, kind, id },
        })
    }

    /// The highest index in use, or -1 (the value `IPC_INFO` returns).
    pub fn max_index(&self, kind: Kind) -> i32 {
        let Ok(table) = self.table(kind) else {
            return -1;
        };
        (0..table.layout.slot_count.div_ceil(32))
            .rev()
            .find_map(|word| {
                let bits = table.bitmap_word(word * 32).ok()?.get();
                (bits != 0).then(|| (word * 32 + 31 - bits.leading_zeros()) as i32)
            })
            .unwrap_or(-1)
    }

    /// The kind's total under the table lock (see `TableHeader::usage`).
    pub(crate) fn table_usage(&self, kind: Kind) -> Result<&'m Word64> {
        Ok(&self.table(kind)?.header.usage)
    }

    /// `IPC_SET`'s common part: new owner and permission bits, and `ctime`.
    pub fn ipc_set_perm(
        &self,
        object: &mut ObjectTxn<'_, 'm, H>,
        cred: &Cred<'_>,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<()> {
        if !object.object.perm().owned_by(cred) {
            return Err(Errno::EPERM);
        }
        // Linux `ipc_update_perm`: (uid_t)-1 and (gid_t)-1 are no ids.
        if uid == u32::MAX || gid == u32::MAX {
            return Err(Errno::EINVAL);
        }
        let slot = object.object.slot;
        let txn = &mut object.txn;
        txn.set(&slot.perm.uid, uid)?;
        txn.set(&slot.perm.gid, gid)?;
        let kept = slot.perm.mode.get() & !MODE_BITS;
        txn.set(&slot.perm.mode, kept | (mode & MODE_BITS))?;
        txn.set64(&slot.ctime, self.host.wall_clock() as u64)
    }

    /// The number of live objects of `kind`.
    pub fn in_use(&self, kind: Kind) -> u32 {
        self.table(kind).map_or(0, |t| t.header.in_use.get())
    }

    /// The live objects of `kind`, in index order, as `(id, perm)` (read
    /// without locks: a snapshot for listings). Only slots the bitmap marks
    /// are read, so a listing touches no page of never-used slots.
    pub fn objects(&self, kind: Kind) -> impl Iterator<Item = (i32, IpcPerm)> + 'm {
        let table = self.table(kind).ok();
        let count = table.as_ref().map_or(0, |t| t.layout.slot_count);
        (0..count).filter_map(move |index| {
            let table = table.as_ref()?;
            // The bitmap first: slots never used are never touched.
            let bits = table.bitmap_word(index).ok()?.get();
            if bits & (1 << (index % 32)) == 0 {
                return None;
            }
            let slot = table.slot(index).ok()?;
            if slot.state.get() != LIVE {
                return None;
            }
            let object = Object {
                slot,
                kind,
                id: make_id(slot.seq.get(), index).ok()?,
            };
            Some((object.id, object.perm()))
        })
    }
}

/// What [`crate::check`] needs to see of a table.
pub(crate) struct TableView<'m> {
    pub layout: TableLayout,
    pub in_use: u32,
    pub seq: u32,
    pub lock: &'m LockRecord<32>,
    pub slots: &'m [ObjectSlot],
    pub bitmap: &'m [Word],
    pub buckets: &'m [Word],
}

/// What [`crate::check`] needs to see of a slot.
pub(crate) struct SlotView<'m> {
    pub live: Option<bool>,
    pub seq: u32,
    pub key: i32,
    pub hash_next: u32,
    pub lock: &'m LockRecord<32>,
}

impl ObjectSlot {
    pub(crate) fn view(&self) -> SlotView<'_> {
        SlotView {
            live: match self.state.get() {
                FREE => Some(false),
                LIVE => Some(true),
                _ => None,
            },
            seq: self.seq.get(),
            key: self.key.get() as i32,
            hash_next: self.hash_next.get(),
            lock: &self.lock,
        }
    }
}

pub(crate) fn table_view<'m>(
    arena: &Arena<'m>,
    layout: &Layout,
    kind: Kind,
) -> Result<TableView<'m>> {
    let t = layout.tables[kind as usize];
    let header = arena.get(Off::<TableHeader>::new(t.header))?;
    Ok(TableView {
        layout: t,
        in_use: header.in_use.get(),
        seq: header.seq.get(),
        lock: &header.lock,
        slots: arena.slice(Off::new(t.slots), t.slot_count)?,
        bitmap: arena.slice(Off::new(t.bitmap), t.slot_count.div_ceil(32))?,
        buckets: arena.slice(Off::new(t.buckets), 1 << t.bucket_bits)?,
    })
}

pub(crate) fn bucket_of(key: i32, bits: u32) -> u32 {
    key_hash(key, bits)
}

pub(crate) const SEQ_MAX: u32 = SEQ_LIMIT;
