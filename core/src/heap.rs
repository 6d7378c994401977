//! The heap: variable-size records inside the arena.
//!
//! Semaphore arrays, message rings and undo lists live here. The allocator is
//! a segregated-fit one: block sizes come in classes 16, 24, 32, 48, 64, 96,
//! … (powers of two and the midpoints between them, so no block wastes more
//! than a third), each class has a free list, and a bump pointer carves new
//! blocks from the untouched end. Allocation and release are O(1), touch only
//! the pages they hand out (a sparse arena file stays sparse), and change at
//! most five words, all under the heap lock and its journal.
//!
//! # Blocks
//!
//! Every block starts with two header words: a tag (magic, allocated flag,
//! owner kind, size class) and the owner's id. The payload follows, 8-byte
//! aligned and zero-filled on allocation. A free block keeps the offset of the
//! next free block of its class in its first payload word.
//!
//! Tag layout: bits 24..=31 `0xB1`, bit 16 allocated, bits 8..=10 owner kind,
//! bits 0..=5 size class.
//!
//! # Crash safety with other locks
//!
//! Allocation and release are transactions of their own under the heap lock
//! (the innermost lock). An operation that allocates while it holds a table or
//! object lock may die before it commits; then the block it allocated is
//! leaked — never handed out twice — and its owner tag lets a later collection
//! find it. Blocks are released only after the operation that unlinks them has
//! committed, so a rollback never resurrects a reference to a freed block.

use crate::arena::{Arena, Off, Record, Word};
use crate::errno::{Errno, Result};
use crate::format::Layout;
use crate::host::Host;
use crate::lock::{LockRecord, Txn};
use crate::Namespace;

/// Size classes: 16 and 24 bytes times every power of two, up to the largest heap (3 GiB).
pub(crate) const CLASSES: usize = 56;

/// Bytes of block header before the payload.
pub const BLOCK_HEADER: u32 = 8;

const TAG_MAGIC: u32 = 0xB1 << 24;
const TAG_ALLOCATED: u32 = 1 << 16;

/// The heap header: its lock, the bump pointer, bytes in use and the free lists.
#[repr(C)]
pub(crate) struct HeapHeader {
    lock: LockRecord<8>,
    bump: Word,
    used: Word,
    free: [Word; CLASSES],
}

// SAFETY: `repr(C)`, a lock record, words and a word array, no padding.
unsafe impl Record for HeapHeader {}

/// Who a block belongs to, recorded in its header for checks and collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOwner {
    /// What the block is: 1 a semaphore array, 2 a message ring, 4 a waiting
    /// message receiver, 5 a waiting semaphore operation, 6 a lent journal,
    /// 7 an undo record (3 is kept for shared memory).
    pub kind: u32,
    /// The owner's id (or slot number).
    pub id: u32,
}

/// The size in bytes of class `class`.
fn class_size(class: usize) -> u64 {
    let base: u64 = if class % 2 == 0 { 16 } else { 24 };
    base << (class / 2)
}

/// The smallest class that holds `bytes`.
fn class_for(bytes: u64) -> Option<usize> {
    (0..CLASSES).find(|&class| class_size(class) >= bytes)
}

fn tag(allocated: bool, owner_kind: u32, class: usize) -> u32 {
    TAG_MAGIC | if allocated { TAG_ALLOCATED } else { 0 } | (owner_kind & 7) << 8 | class as u32
}

/// A block's header, read and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockInfo {
    pub allocated: bool,
    pub owner_kind: u32,
    pub class: usize,
    pub size: u32,
}

/// Reads the header of the block at `block`, which must lie wholly between
/// the heap's start and `limit`.
pub(crate) fn block_info(
    arena: &Arena<'_>,
    layout: &Layout,
    block: u32,
    limit: u32,
) -> Result<BlockInfo> {
    if block < layout.heap_start || block % 8 != 0 {
        return Err(Errno::CORRUPT);
    }
    let raw = arena.get(Off::<Word>::new(block))?.get();
    let class = (raw & 0x3f) as usize;
    if raw & 0xff00_0000 != TAG_MAGIC || raw & 0x00fe_f8c0 != 0 || class >= CLASSES {
        return Err(Errno::CORRUPT);
    }
    let size = class_size(class);
    if u64::from(block) + size > u64::from(limit) {
        return Err(Errno::CORRUPT);
    }
    Ok(BlockInfo {
        allocated: raw & TAG_ALLOCATED != 0,
        owner_kind: (raw >> 8) & 7,
        class,
        size: size as u32,
    })
}

pub(crate) fn format_heap(arena: &Arena<'_>, layout: &Layout) {
    if let Ok(heap) = arena.get(Off::<HeapHeader>::new(layout.heap)) {
        heap.bump.set(layout.heap_start);
    }
}

impl<'m, H: Host> Namespace<'m, H> {
    fn heap(&self) -> Result<&'m HeapHeader> {
        self.arena.get(Off::new(self.layout.heap))
    }

    /// Allocates a zero-filled block with room for `bytes` and returns the
    /// offset of its payload: `ENOMEM` when the heap has no room.
    pub fn heap_alloc(&self, bytes: u32, owner: BlockOwner) -> Result<u32> {
        let class = class_for(u64::from(bytes) + u64::from(BLOCK_HEADER)).ok_or(Errno::ENOMEM)?;
        let size = class_size(class);
        let heap = self.heap()?;
        // `class_for` gives no class past the last.
        let free = heap.free.get(class).ok_or(Errno::ENOMEM)?;
        let mut txn = Txn::begin(self, &heap.lock)?;
        let head = free.get();
        let block = if head != 0 {
            let info = block_info(&self.arena, &self.layout, head, self.layout.heap_end)?;
            if info.allocated || info.class != class {
                return Err(Errno::CORRUPT);
            }
            let next = self.arena.get(Off::<Word>::new(head + BLOCK_HEADER))?;
            let after = next.get();
            if after != 0 && (after < self.layout.heap_start || after >= self.layout.heap_end) {
                return Err(Errno::CORRUPT);
            }
            txn.set(free, after)?;
            txn.set(next, 0)?;
            head
        } else {
            let bump = heap.bump.get();
            if bump < self.layout.heap_start || bump % 8 != 0 || bump > self.layout.heap_end {
                return Err(Errno::CORRUPT);
            }
            let end = u64::from(bump) + size;
            if end > u64::from(self.layout.heap_end) {
                return Err(Errno::ENOMEM);
            }
            // `end` ≤ heap_end, a u32.
            txn.set(&heap.bump, end as u32)?;
            bump
        };
        let [tag_word, owner_word] = self.arena.get(Off::<[Word; 2]>::new(block))?;
        txn.set(tag_word, tag(true, owner.kind, class))?;
        txn.set(owner_word, owner.id)?;
        txn.set(&heap.used, heap.used.get().wrapping_add(size as u32))?;
        // The payload is unreachable until the caller publishes its offset, and
        // a rollback frees the block again: zero-filling it needs no journal.
        let payload_words = ((size - u64::from(BLOCK_HEADER)) / 4) as u32;
        for word in self
            .arena
            .slice(Off::<Word>::new(block + BLOCK_HEADER), payload_words)?
        {
            word.set(0);
        }
        txn.commit();
        Ok(block + BLOCK_HEADER)
    }

    /// Releases the block whose payload is at `payload`. The block's header must
    /// name `owner`, so that an offset scribbled over by someone else cannot
    /// free another object's memory.
    pub fn heap_free(&self, payload: u32, owner: BlockOwner) -> Result<()> {
        let block = payload.checked_sub(BLOCK_HEADER).ok_or(Errno::CORRUPT)?;
        let heap = self.heap()?;
        let mut txn = Txn::begin(self, &heap.lock)?;
        let bump = heap.bump.get().min(self.layout.heap_end);
        let info = block_info(&self.arena, &self.layout, block, bump)?;
        let [tag_word, owner_word, next_free] = self.arena.get(Off::<[Word; 3]>::new(block))?;
        if !info.allocated || info.owner_kind != owner.kind & 7 || owner_word.get() != owner.id {
            return Err(Errno::CORRUPT);
        }
        // `block_info` gives no class past the last.
        let free = heap.free.get(info.class).ok_or(Errno::CORRUPT)?;
        txn.set(next_free, free.get())?;
        txn.set(tag_word, tag(false, 0, info.class))?;
        txn.set(owner_word, 0)?;
        txn.set(free, block)?;
        txn.set(&heap.used, heap.used.get().wrapping_sub(info.size))?;
        txn.commit();
        Ok(())
    }

    /// Frees each allocated block of owner kind `kind` that `take` gives up:
    /// `take(payload, owner id)` runs with no lock held (a block found may
    /// change as soon as the heap lock is released), checks the block again
    /// under the lock of what it belongs to, unlinks it there and returns
    /// `true` once that is committed.
    pub(crate) fn sweep_blocks(&self, kind: u32, mut take: impl FnMut(u32, u32) -> bool) {
        let mut from = 0;
        while let Ok(Some((at, id, next))) = self.next_block_of(kind, from) {
            from = next;
            if take(at, id) {
                let _ = self.heap_free(at, BlockOwner { kind, id });
            }
        }
    }

    /// The first allocated block of owner kind `kind` at or after block
    /// offset `from`, read under the heap lock: its payload offset and owner
    /// id, and where to look for the next.
    fn next_block_of(&self, kind: u32, from: u32) -> Result<Option<(u32, u32, u32)>> {
        let heap = self.heap()?;
        let held = Txn::begin(self, &heap.lock)?;
        let bump = heap.bump.get().min(self.layout.heap_end);
        let mut at = from.max(self.layout.heap_start);
        while at < bump {
            let info = block_info(&self.arena, &self.layout, at, bump)?;
            if info.allocated && info.owner_kind == kind {
                let id = self.arena.get(Off::<Word>::new(at + 4))?.get();
                held.commit();
                return Ok(Some((at + BLOCK_HEADER, id, at + info.size)));
            }
            at += info.size;
        }
        held.commit();
        Ok(None)
    }

    /// Bytes of heap in use (block headers and rounding included).
    pub fn heap_used(&self) -> u32 {
        self.heap().map_or(0, |heap| heap.used.get())
    }

    /// The heap's bump pointer, free-list heads and the count of bytes in use.
    pub(crate) fn heap_state(&self) -> Result<(u32, [u32; CLASSES], u32)> {
        let heap = self.heap()?;
        let mut free = [0; CLASSES];
        for (head, word) in free.iter_mut().zip(&heap.free) {
            *head = word.get();
        }
        Ok((heap.bump.get(), free, heap.used.get()))
    }

    /// The heap lock (for checks).
    pub(crate) fn heap_lock(&self) -> Result<&'m LockRecord<8>> {
        Ok(&self.heap()?.lock)
    }
}

/// The bump pointer word (for tests that simulate a holder dying mid-allocation).
#[cfg(test)]
pub(crate) fn heap_bump(heap: &HeapHeader) -> &Word {
    &heap.bump
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_grow_by_halves_and_cover_four_gib() {
        assert_eq!(class_size(0), 16);
        assert_eq!(class_size(1), 24);
        assert_eq!(class_size(2), 32);
        assert_eq!(class_size(3), 48);
        assert!(
            class_size(CLASSES - 1) >= 3 << 30,
            "the largest heap fits one block"
        );
        assert_eq!(class_for(17), Some(1));
        assert_eq!(class_for(16 * 1024 + 8), Some(21));
        for bytes in [8u64, 100, 5000, 1 << 20, (3 << 30) - 8] {
            let class = class_for(bytes).unwrap();
            assert!(class_size(class) >= bytes);
            assert!(class == 0 || class_size(class - 1) < bytes);
            assert!(class_size(class) * 2 <= bytes * 3 + 16);
        }
    }
}
