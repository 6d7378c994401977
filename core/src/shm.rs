//! Shared memory segments: `shmget`, `shmat`, `shmdt` and `shmctl`, with the
//! semantics of Linux `ipc/shm.c`.
//!
//! # User-visible behaviour
//!
//! - `shmget` makes a segment of `size` bytes (SHMMIN ≤ size ≤ SHMMAX, and
//!   the pages of all segments at most SHMALL: `ENOSPC`), zero-filled;
//!   `shm_segsz` is the size asked for. Opening an existing one with a
//!   larger size is `EINVAL`.
//! - Attaching needs read permission, and write permission unless
//!   `SHM_RDONLY`; the segment's pages are mapped page-rounded. Detaching
//!   takes the address an attachment starts at.
//! - `IPC_RMID` marks the segment `SHM_DEST` and frees its key; it goes when
//!   its last attachment does. Until then it can still be attached by id.
//! - `shm_nattch` counts attachments across processes, `shm_cpid`,
//!   `shm_lpid` and the three times are kept as the kernel keeps them.
//!
//! # Internals
//!
//! The slot keeps the segment's size, pids and times; the bytes live where
//! the platform puts them (on Linux, a file beside the arena, made with the
//! segment's owner and mode by the `make` callback of [`Namespace::shmget`]).
//! Each attachment is a record on its **process's** list in the registry
//! slot, under the process's lock: there is no attach count to go wrong.
//! `shm_nattch` is the number of records naming the segment, counted over
//! the live processes' lists with the segment locked; an attach adds its
//! record with the segment locked, so a count taken to decide destruction is
//! never short. A dead process's records count until it is reaped, as a
//! dying process's mappings do in the kernel until it is gone.

use crate::arena::{Off, Record, Word, Word64};
use crate::errno::{Errno, Result};
use crate::heap::BlockOwner;
use crate::host::Host;
use crate::ids::{Kind, Object};
use crate::lifecycle::Reap;
use crate::lock::Txn;
use crate::perm::{Cred, IpcPerm};
use crate::registry::ProcSlot;
use crate::Namespace;

/// `shmat` flag: attach read-only.
pub const SHM_RDONLY: i32 = 0o10000;
/// `shmat` flag: round the address down to SHMLBA.
pub const SHM_RND: i32 = 0o20000;
/// `shmat` flag: replace whatever is mapped at the address.
pub const SHM_REMAP: i32 = 0o40000;
/// `shmat` flag: the mapping may be executed.
pub const SHM_EXEC: i32 = 0o100000;
/// `shmget` flag: do not reserve swap (memory accounting) for the segment.
pub const SHM_NORESERVE: i32 = 0o10000;
/// `shmget` flag: back the segment with huge pages.
pub const SHM_HUGETLB: i32 = 0o4000;
/// `shm_perm.mode` bit: removed, destroyed at the last detach.
pub const SHM_DEST: u32 = 0o1000;
/// `shm_perm.mode` bit: locked in memory (`SHM_LOCK`).
pub const SHM_LOCKED: u32 = 0o2000;
/// The page size segments are counted and mapped in.
pub const PAGE_SIZE: u64 = 4096;

/// What `IPC_STAT` reports (`struct shmid_ds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmidDs {
    /// Ownership and permissions (with `SHM_DEST` and `SHM_LOCKED` in `mode`).
    pub perm: IpcPerm,
    /// The size asked for, in bytes.
    pub segsz: u64,
    /// Time of the last attach.
    pub atime: i64,
    /// Time of the last detach.
    pub dtime: i64,
    /// Time of creation or of the last `IPC_SET`.
    pub ctime: i64,
    /// The pid of the creator.
    pub cpid: i32,
    /// The pid of the last attach or detach.
    pub lpid: i32,
    /// Attachments.
    pub nattch: u64,
}

/// What `IPC_INFO` reports (`struct shminfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmInfo {
    /// SHMMAX.
    pub shmmax: u64,
    /// SHMMIN.
    pub shmmin: u64,
    /// SHMMNI.
    pub shmmni: u64,
    /// SHMSEG (Linux: SHMMNI).
    pub shmseg: u64,
    /// SHMALL, in pages.
    pub shmall: u64,
}

/// What `SHM_INFO` reports (`struct shm_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmUsage {
    /// Segments in use.
    pub used_ids: i32,
    /// Pages of all segments.
    pub shm_tot: u64,
    /// Pages resident (all of them: nothing is swapped).
    pub shm_rss: u64,
    /// Pages swapped.
    pub shm_swp: u64,
}

/// Where a new segment's bytes live: the platform decides, in the `make`
/// callback of [`Namespace::shmget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The platform made them (on Linux, a file beside the arena). The
    /// token is the platform's own name for them, given back on each attach
    /// (so a process can tell its own handle on them from a stale one).
    Host(u64),
    /// Carved from the arena's heap, for targets without files: attaching
    /// yields their offset in the arena.
    Arena,
}

/// What `shmat` needs to know to map a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachInfo {
    /// The segment's size in bytes (`shm_segsz`).
    pub segsz: u64,
    /// For a segment placed in the arena, the offset of its bytes.
    pub arena_offset: Option<u32>,
    /// For a segment the platform placed, the token it gave.
    pub token: u64,
}

/// A segment's part of its object slot.
#[repr(C)]
struct Segment {
    segsz: Word64,
    cpid: Word,
    lpid: Word,
    atime: Word64,
    dtime: Word64,
    /// The heap block holding the bytes of a segment placed in the arena
    /// (its payload offset), or 0.
    bytes: Word,
    /// The platform's token for bytes it placed ([`Placement::Host`]).
    token: Word64,
}

// SAFETY: `repr(C)`, words and word pairs, no padding.
unsafe impl Record for Segment {}

/// One attachment, on its process's list: a piece of a mapping. An attach
/// makes one piece starting at its base address; a mapping made over part of
/// it (`SHM_REMAP`) leaves the pieces on either side, as the kernel splits a
/// mapping, each counting in `shm_nattch` and all ended by `shmdt` of the
/// base.
#[repr(C)]
struct Attachment {
    next: Word,
    shmid: Word,
    addr: Word64,
    len: Word64,
    base: Word64,
}

/// An attachment record's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub shmid: i32,
    pub addr: u64,
    pub len: u64,
    /// The address the attach that made the piece returned.
    pub base: u64,
}

impl Piece {
    fn end(&self) -> u64 {
        self.addr.saturating_add(self.len)
    }
}

// SAFETY: `repr(C)`, words and word pairs, no padding.
unsafe impl Record for Attachment {}

/// Heap blocks of shared memory: attachment records (owner id: the
/// segment's id) and segment bytes carved from the arena (the id with bit 31
/// set).
const OWNER_SHM: u32 = 3;
const BYTES_OWNER_BIT: u32 = 1 << 31;

/// Bytes of one attachment record.
pub(crate) const ATTACHMENT_SIZE: u32 = Attachment::SIZE;

/// An attachment just ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detached {
    /// The segment.
    pub shmid: i32,
    /// The length unmapped, over every piece.
    pub len: u64,
    /// Whether that was the last attachment of a removed segment, which is
    /// now gone (the host has been told: [`Host::segment_gone`]).
    pub destroyed: bool,
}

/// Pages for `size` bytes.
fn pages(size: u64) -> u64 {
    size.div_ceil(PAGE_SIZE)
}

impl<'m, H: Host> Namespace<'m, H> {
    fn segment(object: &Object<'m>) -> &'m Segment {
        object.ext_as::<Segment>()
    }

    /// For the check: whether a block that names a segment as its owner is
    /// still its bytes, or an attachment record of a segment that is still
    /// there (`None` for blocks of other owners).
    pub(crate) fn shm_holds_block(&self, kind: u32, id: u32, payload: u32) -> Option<bool> {
        (kind == OWNER_SHM).then(|| {
            let object = self.peek_object(Kind::Shm, (id & !BYTES_OWNER_BIT) as i32);
            match object {
                Some(object) if id & BYTES_OWNER_BIT != 0 => {
                    Self::segment(&object).bytes.get() == payload
                }
                object => object.is_some(),
            }
        })
    }

    /// `shmget`: the segment `key` names, or a new one of `size` bytes.
    /// `make(id, size, perm)` makes a new segment's bytes, or asks for them
    /// to be carved from the arena (and fails the call if it cannot), before
    /// the segment is visible to anyone.
    pub fn shmget(
        &self,
        key: i32,
        size: u64,
        flags: i32,
        cred: &Cred<'_>,
        make: impl FnOnce(i32, u64, &IpcPerm) -> Result<Placement>,
    ) -> Result<i32> {
        let limits = self.layout.limits;
        let pid = self.identity()?.1;
        self.ipc_get_checked(
            Kind::Shm,
            key,
            flags,
            cred,
            |object| {
                if Self::segment(object).segsz.get() < size {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            },
            || {
                if size < 1 || size > limits.shmmax {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            },
            |txn, object| {
                if pages(size).checked_mul(PAGE_SIZE).is_none() {
                    // Whole pages overflow the size type (Linux: numpages).
                    return Err(Errno::ENOSPC);
                }
                let usage = self.table_usage(Kind::Shm)?;
                let total = usage.get().checked_add(pages(size));
                if total.is_none_or(|total| total > limits.shmall) {
                    return Err(Errno::ENOSPC);
                }
                let segment = Self::segment(object);
                // Not live yet: no journal needed.
                segment.segsz.set(size);
                segment.cpid.set(pid);
                match make(object.id(), size, &object.perm())? {
                    Placement::Host(token) => segment.token.set(token),
                    Placement::Arena => {
                        let bytes = u32::try_from(size).map_err(|_| Errno::ENOMEM)?;
                        let at = self.heap_alloc(bytes, Self::bytes_owner(object.id()))?;
                        segment.bytes.set(at);
                    }
                }
                txn.set64(usage, usage.get() + pages(size))
            },
        )
    }

    /// Before `shmat` maps segment `shmid`: checks permission for `flags`
    /// and returns the segment's size and where its bytes are.
    pub fn shm_attach_check(&self, shmid: i32, flags: i32, cred: &Cred<'_>) -> Result<AttachInfo> {
        if shmid < 0 {
            return Err(Errno::EINVAL);
        }
        let locked = self.lock_object(Kind::Shm, shmid)?;
        let mut access = 0o444;
        if flags & SHM_RDONLY == 0 {
            access |= 0o222;
        }
        if flags & SHM_EXEC != 0 {
            access |= 0o111;
        }
        if !locked.object.allows(cred, access) {
            return Err(Errno::EACCES);
        }
        let segment = Self::segment(&locked.object);
        Ok(AttachInfo {
            segsz: segment.segsz.get(),
            arena_offset: match segment.bytes.get() {
                0 => None,
                at => Some(at),
            },
            token: segment.token.get(),
        })
    }

    /// After `shmat` mapped segment `shmid` at `addr` (`len` bytes): records
    /// the attachment. `EIDRM` if the segment went meanwhile (the caller
    /// unmaps).
    pub fn shm_attached(&self, shmid: i32, addr: u64, len: u64) -> Result<()> {
        let (me, pid) = self.identity()?;
        let slot = self.registry.slot_of(me).ok_or(Errno::CORRUPT)?;
        let mut locked = match self.lock_object(Kind::Shm, shmid) {
            Err(Errno::EINVAL) => return Err(Errno::EIDRM),
            other => other?,
        };
        let piece = Piece {
            shmid,
            addr,
            len,
            base: addr,
        };
        self.push_attachment(slot, piece)?;
        let segment = Self::segment(&locked.object);
        locked.txn.set(&segment.lpid, pid)?;
        locked
            .txn
            .set64(&segment.atime, self.host.wall_clock() as u64)?;
        locked.commit();
        Ok(())
    }

    /// Puts a new record of an attachment on `slot`'s list.
    pub(crate) fn push_attachment(&self, slot: &'m ProcSlot, piece: Piece) -> Result<()> {
        let owner = Self::attachment_owner(piece.shmid);
        let at = self.heap_alloc(Attachment::SIZE, owner)?;
        let record = self.arena.get(Off::<Attachment>::new(at))?;
        // Fresh: reachable once pushed (journaled).
        record.shmid.set(piece.shmid as u32);
        record.addr.set(piece.addr);
        record.len.set(piece.len);
        record.base.set(piece.base);
        let pushed = Txn::begin(self, &slot.lock).and_then(|mut own| {
            record.next.set(slot.attach_head.get());
            own.set(&slot.attach_head, at)?;
            own.commit();
            Ok(())
        });
        if let Err(err) = pushed {
            self.heap_free(at, owner)?;
            return Err(err);
        }
        Ok(())
    }

    /// The next record, and the piece, of the attachment record at `at`.
    pub(crate) fn attachment_fields(&self, at: u32) -> Result<(u32, Piece)> {
        let record = self.attachment(at)?;
        Ok((record.next.get(), Self::piece(record)))
    }

    fn piece(record: &Attachment) -> Piece {
        Piece {
            shmid: record.shmid.get() as i32,
            addr: record.addr.get(),
            len: record.len.get(),
            base: record.base.get(),
        }
    }

    fn bytes_owner(shmid: i32) -> BlockOwner {
        BlockOwner {
            kind: OWNER_SHM,
            id: shmid as u32 | BYTES_OWNER_BIT,
        }
    }

    fn attachment_owner(shmid: i32) -> BlockOwner {
        BlockOwner {
            kind: OWNER_SHM,
            id: shmid as u32,
        }
    }

    /// `shmdt`: ends this process's attachment made at `addr` — every piece
    /// left of it, even when the first is gone, as Linux finds the pieces by
    /// their offset — calling `unmap(addr, len)` for each piece once its
    /// record is gone. `EINVAL` if no piece of an attachment made at `addr`
    /// is left. A segment removed meanwhile goes with its last attachment.
    pub fn shm_detach(&self, addr: u64, unmap: &mut dyn FnMut(u64, u64)) -> Result<Detached> {
        self.reap_dead(Reap::Holding);
        let (me, pid) = self.identity()?;
        let slot = self.registry.slot_of(me).ok_or(Errno::CORRUPT)?;
        let (at, first) = self
            .unlink_attachment(slot, |piece| piece.base == addr)?
            .ok_or(Errno::EINVAL)?;
        // The pieces are read from the arena: unmap only what an attachment
        // of this segment made at `addr` can span.
        let span = self.mapped_span(first.shmid)?;
        let mut len: u64 = 0;
        let mut destroyed = false;
        let mut next = Some((at, first));
        while let Some((at, piece)) = next {
            self.heap_free(at, Self::attachment_owner(piece.shmid))?;
            let inside = piece.addr >= addr
                && piece.addr - addr < span
                && piece.len <= span - (piece.addr - addr);
            if !inside {
                return Err(Errno::CORRUPT);
            }
            unmap(piece.addr, piece.len);
            len = len.saturating_add(piece.len);
            destroyed |= self.detached(piece.shmid, Some(pid))?;
            next = self.unlink_attachment(slot, |other| {
                other.shmid == first.shmid && other.base == addr
            })?;
        }
        Ok(Detached {
            shmid: first.shmid,
            len,
            destroyed,
        })
    }

    /// A new mapping replaced `addr..addr + len` (`SHM_REMAP`): the pieces of
    /// this process's attachments it covered end, and those it covered in
    /// part are cut to what is left on either side, as the kernel splits and
    /// closes mappings (stamping `shm_atime` for a split and `shm_dtime` for
    /// an end). Returns how many pieces were touched.
    pub fn shm_unmapped(&self, addr: u64, len: u64) -> Result<u32> {
        self.reap_dead(Reap::Holding);
        let (me, pid) = self.identity()?;
        let slot = self.registry.slot_of(me).ok_or(Errno::CORRUPT)?;
        let end = addr.saturating_add(len);
        let overlaps = |piece: &Piece| piece.addr < end && piece.end() > addr;
        let mut touched = 0;
        while let Some((at, piece)) = self.unlink_attachment(slot, overlaps)? {
            let before = Piece {
                len: addr.saturating_sub(piece.addr),
                ..piece
            };
            let after = Piece {
                addr: end,
                len: piece.end().saturating_sub(end),
                ..piece
            };
            let mut split = false;
            for rest in [before, after] {
                if rest.len > 0 && piece.addr <= rest.addr && rest.end() <= piece.end() {
                    self.push_attachment(slot, rest)?;
                    split = true;
                }
            }
            self.heap_free(at, Self::attachment_owner(piece.shmid))?;
            if split {
                self.stamp_attach(piece.shmid, pid)?;
            }
            self.detached(piece.shmid, Some(pid))?;
            touched += 1;
        }
        Ok(touched)
    }

    /// The most bytes an attachment of `shmid` spans: its size in whole
    /// pages.
    fn mapped_span(&self, shmid: i32) -> Result<u64> {
        let locked = self
            .lock_object(Kind::Shm, shmid)
            .map_err(|_| Errno::CORRUPT)?;
        let segsz = Self::segment(&locked.object).segsz.get();
        pages(segsz).checked_mul(PAGE_SIZE).ok_or(Errno::CORRUPT)
    }

    /// Stamps `shm_atime` and `shm_lpid` of `shmid`, if it still exists.
    fn stamp_attach(&self, shmid: i32, pid: u32) -> Result<()> {
        let Ok(mut locked) = self.lock_object(Kind::Shm, shmid) else {
            return Ok(());
        };
        let segment = Self::segment(&locked.object);
        locked.txn.set(&segment.lpid, pid)?;
        locked
            .txn
            .set64(&segment.atime, self.host.wall_clock() as u64)?;
        locked.commit();
        Ok(())
    }

    /// Ends every attachment of the process in `slot` (it exits, or execs);
    /// segments removed meanwhile go with their last. Errors end the walk:
    /// each attachment is settled on its own.
    pub(crate) fn settle_attachments(&self, slot: &'m ProcSlot, pid: Option<u32>) {
        let bound = self.layout.limits.heap_bytes / Attachment::SIZE;
        for _ in 0..bound {
            let Ok(Some((at, piece))) = self.unlink_attachment(slot, |_| true) else {
                return;
            };
            if self
                .heap_free(at, Self::attachment_owner(piece.shmid))
                .is_err()
            {
                return;
            }
            if self.detached(piece.shmid, pid).is_err() {
                return;
            }
        }
    }

    /// Takes the first record of `slot`'s list that `which` picks off the
    /// list: its offset and its piece.
    fn unlink_attachment(
        &self,
        slot: &'m ProcSlot,
        which: impl Fn(&Piece) -> bool,
    ) -> Result<Option<(u32, Piece)>> {
        let mut own = Txn::begin(self, &slot.lock)?;
        let bound = self.layout.limits.heap_bytes / Attachment::SIZE;
        let mut link = &slot.attach_head;
        for _ in 0..bound {
            let at = link.get();
            if at == 0 {
                return Ok(None);
            }
            let record = self.attachment(at)?;
            let piece = Self::piece(record);
            if which(&piece) {
                own.set(link, record.next.get())?;
                own.commit();
                return Ok(Some((at, piece)));
            }
            link = &record.next;
        }
        Err(Errno::CORRUPT)
    }

    /// The attachment record at `at`, checked to be one.
    fn attachment(&self, at: u32) -> Result<&'m Attachment> {
        let block = at
            .checked_sub(crate::heap::BLOCK_HEADER)
            .ok_or(Errno::CORRUPT)?;
        let info = crate::heap::block_info(&self.arena, &self.layout, block, self.layout.heap_end)?;
        if !info.allocated || info.owner_kind != OWNER_SHM {
            return Err(Errno::CORRUPT);
        }
        self.arena.get(Off::<Attachment>::new(at))
    }

    /// After an attachment of `shmid` ended (by process `pid`, if it is the
    /// caller): stamps the segment, and destroys it if it was removed and
    /// that was its last attachment. Returns whether it went.
    fn detached(&self, shmid: i32, pid: Option<u32>) -> Result<bool> {
        let Ok(mut locked) = self.lock_object(Kind::Shm, shmid) else {
            // Gone already.
            return Ok(false);
        };
        let segment = Self::segment(&locked.object);
        if let Some(pid) = pid {
            locked.txn.set(&segment.lpid, pid)?;
        }
        locked
            .txn
            .set64(&segment.dtime, self.host.wall_clock() as u64)?;
        let removed = locked.object.perm().mode & SHM_DEST != 0;
        locked.commit();
        if !removed {
            return Ok(false);
        }
        self.destroy_if_unattached(shmid, None)
    }

    /// Removes segment `shmid` if it has no attachment (with the table and
    /// the segment locked); otherwise marks it `SHM_DEST`. `cred` is checked
    /// for ownership when given (`IPC_RMID`).
    fn destroy_if_unattached(&self, shmid: i32, cred: Option<&Cred<'_>>) -> Result<bool> {
        let (mut bytes, mut token) = (0, 0);
        let gone = self.ipc_remove_or_keep(Kind::Shm, shmid, cred, |txn, object| {
            if self.attachments(shmid)? > 0 {
                let mode = &object.perm_words().mode;
                txn.set(mode, mode.get() | SHM_DEST)?;
                return Ok(false);
            }
            let usage = self.table_usage(Kind::Shm)?;
            let segment = Self::segment(object);
            bytes = segment.bytes.get();
            token = segment.token.get();
            txn.set64(
                usage,
                usage.get().saturating_sub(pages(segment.segsz.get())),
            )?;
            Ok(true)
        })?;
        if gone {
            if bytes != 0 {
                self.heap_free(bytes, Self::bytes_owner(shmid))?;
            }
            self.host.segment_gone(shmid, token);
        }
        Ok(gone)
    }

    /// The attachments of segment `shmid`, over every live process's list
    /// (the segment locked by the caller).
    fn attachments(&self, shmid: i32) -> Result<u32> {
        let bound = self.layout.limits.heap_bytes / Attachment::SIZE;
        let mut count = 0;
        for (index, _) in self.registry.live_slots() {
            let slot = self.registry.slot_at(index)?;
            let own = Txn::begin(self, &slot.lock)?;
            let mut at = slot.attach_head.get();
            let mut steps = 0;
            while at != 0 {
                steps += 1;
                if steps > bound {
                    return Err(Errno::CORRUPT);
                }
                let record = self.attachment(at)?;
                if record.shmid.get() == shmid as u32 {
                    count += 1;
                }
                at = record.next.get();
            }
            own.commit();
        }
        Ok(count)
    }

    fn shmid_ds(&self, object: &Object<'m>) -> Result<ShmidDs> {
        let segment = Self::segment(object);
        Ok(ShmidDs {
            perm: object.perm(),
            segsz: segment.segsz.get(),
            atime: segment.atime.get() as i64,
            dtime: segment.dtime.get() as i64,
            ctime: object.ctime(),
            cpid: segment.cpid.get() as i32,
            lpid: segment.lpid.get() as i32,
            nattch: u64::from(self.attachments(object.id())?),
        })
    }

    /// `shmctl(IPC_STAT)`.
    pub fn shm_stat(&self, shmid: i32, cred: &Cred<'_>) -> Result<ShmidDs> {
        if shmid < 0 {
            return Err(Errno::EINVAL);
        }
        self.reap_dead(Reap::Holding);
        let locked = self.lock_object(Kind::Shm, shmid)?;
        if !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        self.shmid_ds(&locked.object)
    }

    /// `shmctl(SHM_STAT)` (`any`: `SHM_STAT_ANY`, without the read check):
    /// the segment in slot `index`, and its id.
    pub fn shm_stat_index(&self, index: i32, any: bool, cred: &Cred<'_>) -> Result<(i32, ShmidDs)> {
        self.reap_dead(Reap::Holding);
        let locked = self.lock_index(Kind::Shm, index)?;
        if !any && !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        Ok((locked.object.id(), self.shmid_ds(&locked.object)?))
    }

    /// `shmctl(IPC_SET)`: owner, group and permission bits. Returns the
    /// platform's token for the segment's bytes (0 for bytes in the arena),
    /// for the platform to carry the change over to them.
    pub fn shm_set(
        &self,
        shmid: i32,
        cred: &Cred<'_>,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<u64> {
        if shmid < 0 {
            return Err(Errno::EINVAL);
        }
        let mut locked = self.lock_object(Kind::Shm, shmid)?;
        self.ipc_set_perm(&mut locked, cred, uid, gid, mode)?;
        let token = Self::segment(&locked.object).token.get();
        locked.commit();
        Ok(token)
    }

    /// `shmctl(IPC_RMID)`: removes the segment now if nothing is attached,
    /// else marks it `SHM_DEST` and frees its key. Returns whether it went
    /// (the host has been told: [`Host::segment_gone`]).
    pub fn shm_remove(&self, shmid: i32, cred: &Cred<'_>) -> Result<bool> {
        if shmid < 0 {
            return Err(Errno::EINVAL);
        }
        self.reap_dead(Reap::Holding);
        self.destroy_if_unattached(shmid, Some(cred))
    }

    /// `shmctl(SHM_LOCK)` (`lock`) or `shmctl(SHM_UNLOCK)`: sets or clears
    /// `SHM_LOCKED`. Without `CAP_IPC_LOCK` (not modelled: `cred` has none)
    /// only the owner or creator may.
    pub fn shm_lock(&self, shmid: i32, cred: &Cred<'_>, lock: bool) -> Result<()> {
        if shmid < 0 {
            return Err(Errno::EINVAL);
        }
        let mut locked = self.lock_object(Kind::Shm, shmid)?;
        let perm = locked.object.perm();
        if cred.euid != perm.uid && cred.euid != perm.cuid {
            return Err(Errno::EPERM);
        }
        let mode = &locked.object.perm_words().mode;
        let bits = if lock {
            mode.get() | SHM_LOCKED
        } else {
            mode.get() & !SHM_LOCKED
        };
        locked.txn.set(mode, bits)?;
        locked.commit();
        Ok(())
    }

    /// `shmctl(IPC_INFO)`, and the value the call returns: the highest index
    /// in use, or 0.
    pub fn shm_info(&self) -> (i32, ShmInfo) {
        let l = &self.layout.limits;
        let info = ShmInfo {
            shmmax: l.shmmax,
            shmmin: 1,
            shmmni: u64::from(l.shmmni),
            shmseg: u64::from(l.shmmni),
            shmall: l.shmall,
        };
        (self.max_index(Kind::Shm).max(0), info)
    }

    /// `shmctl(SHM_INFO)`, and the value the call returns.
    pub fn shm_usage(&self) -> (i32, ShmUsage) {
        let pages = self.table_usage(Kind::Shm).map_or(0, Word64::get);
        let usage = ShmUsage {
            used_ids: self.in_use(Kind::Shm).min(i32::MAX as u32) as i32,
            shm_tot: pages,
            shm_rss: pages,
            shm_swp: 0,
        };
        (self.max_index(Kind::Shm).max(0), usage)
    }
}
