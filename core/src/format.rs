//! Arena format version 3: the header and where every region lies.
//!
//! (Version 3 changed no byte of the layout but what a shared memory
//! segment's platform token means: on Linux, its file's creator and inode,
//! the file named by slot index and creator, where version 2 named it by id.
//! A version-2 arena's segments could not be found, so it is refused.)
//!
//! ```text
//! offset 0   Header: magic, version, state, size, limits, region offsets, creation time
//!            process registry   bitmap of slots ever used, its summary, [ProcSlot; procs]
//!            sem table          TableHeader, bitmap, key buckets, [ObjectSlot; slots]
//!            msg table          (same)
//!            shm table          (same)
//!            heap               HeapHeader, then heap_bytes of blocks
//! ```
//!
//! Every region's place follows from the limits alone ([`Layout::compute`]).
//! The header records the offsets too; opening an arena recomputes them from
//! the recorded limits and refuses an arena whose record disagrees. From then
//! on the process uses its own copy of the layout and never re-reads the
//! header, so a header scribbled over later cannot send it astray.
//!
//! The arena must be zero-filled before it is formatted (a new file, fresh
//! WebAssembly memory and `.bss` all are); formatting writes only the header
//! and the table and heap headers, so the rest of a sparse file stays unbacked
//! until used.
//!
//! # The ready state
//!
//! `state` goes `BLANK → INITIALISING → READY`. Whoever moves it out of `BLANK`
//! with a compare-and-swap formats the arena and publishes `READY` with a
//! release store; everyone else waits for `READY`. File-backed arenas are
//! formatted privately and published by `link(2)`, so their path only ever
//! names a `READY` arena.

use core::fmt;
use core::sync::atomic::Ordering;

use crate::arena::{Arena, Off, Record, Word, Word64};
use crate::heap::HeapHeader;
use crate::host::{Deadline, Host};
use crate::ids::{ObjectSlot, TableHeader, KINDS};
use crate::limits::{BadLimit, Limits, IPCMNI};
use crate::registry::SLOT_SIZE;

/// "usysv-ar" in two little-endian words.
pub const MAGIC: [u32; 2] = [u32::from_le_bytes(*b"usys"), u32::from_le_bytes(*b"v-ar")];

/// The format this build reads and writes (see the module documentation).
pub const FORMAT_VERSION: u32 = 8;

const BLANK: u32 = 0;
const INITIALISING: u32 = 1;
const READY: u32 = 2;

#[repr(C)]
struct LimitsRecord {
    semmni: Word,
    semmsl: Word,
    semmns: Word,
    semopm: Word,
    semvmx: Word,
    msgmni: Word,
    msgmax: Word,
    msgmnb: Word,
    shmmni: Word,
    shmmax: Word64,
    shmall: Word64,
    procs: Word,
    heap_bytes: Word,
}

// SAFETY: `repr(C)`, words and word pairs only, no padding.
unsafe impl Record for LimitsRecord {}

/// Words recording the region offsets: the registry, six per table, three for the heap.
const REGION_WORDS: usize = 1 + 6 * 3 + 3;

/// The arena header at offset 0.
#[repr(C)]
pub struct Header {
    magic: [Word; 2],
    version: Word,
    state: Word,
    size: Word,
    limits: LimitsRecord,
    regions: [Word; REGION_WORDS],
    created: Word64,
    /// When the next sweep for dead processes may start: the host's
    /// monotonic clock in milliseconds, wrapping (see
    /// `Namespace::sweep_now_and_then`).
    sweep_after: Word,
}

// SAFETY: `repr(C)`, words, word arrays and records of words only, no padding.
unsafe impl Record for Header {}

const HEADER: Off<Header> = Off::new(0);

/// Where one kind's table lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLayout {
    /// The table header.
    pub header: u32,
    /// The bitmap of slots in use, one bit per slot.
    pub bitmap: u32,
    /// The key hash buckets (slot number + 1, 0 for empty).
    pub buckets: u32,
    /// The first object slot.
    pub slots: u32,
    /// The number of object slots: the index window Linux allocates ids in.
    pub slot_count: u32,
    /// log2 of the number of buckets.
    pub bucket_bits: u32,
}

/// Where every region of an arena lies, computed from its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The limits the arena was created with.
    pub limits: Limits,
    /// Total size in bytes (a whole number of 4 KiB pages).
    pub size: u32,
    /// The process registry: a bitmap of the slots ever used, then the slots
    /// at the next 64-byte boundary ([`Layout::registry_slots`]).
    pub registry: u32,
    /// The object tables, indexed by [`crate::Kind`].
    pub tables: [TableLayout; 3],
    /// The heap header.
    pub heap: u32,
    /// The first byte of heap blocks.
    pub heap_start: u32,
    /// One past the last byte of heap blocks.
    pub heap_end: u32,
}

/// Why memory is not a usable arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Too small to hold even the header.
    TooSmall {
        /// Its size in bytes.
        len: u32,
    },
    /// The magic number is missing: this is not a usysv arena.
    NotAnArena,
    /// An arena of another format version.
    Version {
        /// The version found.
        found: u32,
    },
    /// Its creator has not finished (or died before finishing) formatting it.
    Unfinished,
    /// A recorded limit is impossible.
    BadLimits(BadLimit),
    /// The limits need more memory than there is (an arena cut short, or limits
    /// too large for 32-bit offsets).
    Truncated {
        /// The size the limits need, in bytes (saturated at `u32::MAX`).
        needed: u32,
        /// The size there is.
        actual: u32,
    },
    /// The recorded size or region offsets disagree with the recorded limits.
    Inconsistent,
    /// Formatting was asked of memory that is already (being) formatted.
    NotBlank,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::TooSmall { len } => {
                write!(f, "not a usysv arena ({len} bytes, smaller than a header)")
            }
            FormatError::NotAnArena => f.write_str("not a usysv arena (no usysv magic number)"),
            FormatError::Version { found } => write!(
                f,
                "usysv arena format version {found}, but this usysv reads version {FORMAT_VERSION}"
            ),
            FormatError::Unfinished => f.write_str("usysv arena whose creation never finished"),
            FormatError::BadLimits(bad) => write!(f, "corrupt usysv arena header: {bad}"),
            FormatError::Truncated { needed, actual } => write!(
                f,
                "truncated usysv arena ({actual} bytes, its limits need {needed})"
            ),
            FormatError::Inconsistent => {
                f.write_str("corrupt usysv arena header (regions disagree with limits)")
            }
            FormatError::NotBlank => f.write_str("memory is already a usysv arena"),
        }
    }
}

fn align_up(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

impl Layout {
    /// Places every region for `limits`.
    pub fn compute(limits: &Limits) -> Result<Layout, FormatError> {
        limits.validate().map_err(FormatError::BadLimits)?;
        let mut at = align_up(u64::from(Header::SIZE), 64);
        let registry = at;
        let bitmap_words = limits.procs.div_ceil(32);
        at = align_up(
            at + u64::from(bitmap_words + bitmap_words.div_ceil(32)) * 4,
            64,
        );
        at += u64::from(limits.procs) * u64::from(SLOT_SIZE);
        let mut tables = [TableLayout {
            header: 0,
            bitmap: 0,
            buckets: 0,
            slots: 0,
            slot_count: 0,
            bucket_bits: 0,
        }; 3];
        for kind in KINDS {
            let limit = kind.limit(limits);
            // Linux allocates indices below max(in_use * 3 / 2, 64), capped at
            // IPCMNI, with in_use < limit: this many slots hold every index.
            let slot_count = ((limit - 1) * 3 / 2).clamp(64, IPCMNI);
            let bucket_bits = slot_count.next_power_of_two().trailing_zeros();
            at = align_up(at, 64);
            let header = at;
            at += u64::from(TableHeader::SIZE);
            let bitmap = at;
            at += u64::from(slot_count.div_ceil(32)) * 4;
            let buckets = at;
            at += (1u64 << bucket_bits) * 4;
            at = align_up(at, 64);
            let slots = at;
            at += u64::from(slot_count) * u64::from(ObjectSlot::SIZE);
            tables[kind as usize] = TableLayout {
                header: header as u32,
                bitmap: bitmap as u32,
                buckets: buckets as u32,
                slots: slots as u32,
                slot_count,
                bucket_bits,
            };
        }
        at = align_up(at, 64);
        let heap = at;
        at = align_up(at + u64::from(HeapHeader::SIZE), 64);
        let heap_start = at;
        let heap_end = heap_start + u64::from(limits.heap_bytes);
        let size = align_up(heap_end, 4096);
        if size > u64::from(u32::MAX - 4095) {
            return Err(FormatError::Truncated {
                needed: u32::MAX,
                actual: u32::MAX,
            });
        }
        // Every offset is below `size`, which fits in a u32 (checked above).
        Ok(Layout {
            limits: *limits,
            size: size as u32,
            registry: registry as u32,
            tables,
            heap: heap as u32,
            heap_start: heap_start as u32,
            heap_end: heap_end as u32,
        })
    }

    /// Where the summary of the registry's bitmap lies (a bit for each
    /// bitmap word that has a bit set), after the bitmap.
    pub fn registry_summary(&self) -> u32 {
        self.registry + self.limits.procs.div_ceil(32) * 4
    }

    /// Where the registry's slots start, after its bitmap and the summary.
    pub fn registry_slots(&self) -> u32 {
        let bitmap_words = self.limits.procs.div_ceil(32);
        (self.registry_summary() + bitmap_words.div_ceil(32) * 4).div_ceil(64) * 64
    }

    fn region_words(&self) -> [u32; REGION_WORDS] {
        let mut words = [0; REGION_WORDS];
        words[0] = self.registry;
        for (i, table) in self.tables.iter().enumerate() {
            let at = 1 + 6 * i;
            words[at..at + 6].copy_from_slice(&[
                table.header,
                table.bitmap,
                table.buckets,
                table.slots,
                table.slot_count,
                table.bucket_bits,
            ]);
        }
        words[REGION_WORDS - 3..].copy_from_slice(&[self.heap, self.heap_start, self.heap_end]);
        words
    }
}

fn write_limits(record: &LimitsRecord, limits: &Limits) {
    record.semmni.set(limits.semmni);
    record.semmsl.set(limits.semmsl);
    record.semmns.set(limits.semmns);
    record.semopm.set(limits.semopm);
    record.semvmx.set(limits.semvmx);
    record.msgmni.set(limits.msgmni);
    record.msgmax.set(limits.msgmax);
    record.msgmnb.set(limits.msgmnb);
    record.shmmni.set(limits.shmmni);
    record.shmmax.set(limits.shmmax);
    record.shmall.set(limits.shmall);
    record.procs.set(limits.procs);
    record.heap_bytes.set(limits.heap_bytes);
}

fn read_limits(record: &LimitsRecord) -> Limits {
    Limits {
        semmni: record.semmni.get(),
        semmsl: record.semmsl.get(),
        semmns: record.semmns.get(),
        semopm: record.semopm.get(),
        semvmx: record.semvmx.get(),
        msgmni: record.msgmni.get(),
        msgmax: record.msgmax.get(),
        msgmnb: record.msgmnb.get(),
        shmmni: record.shmmni.get(),
        shmmax: record.shmmax.get(),
        shmall: record.shmall.get(),
        procs: record.procs.get(),
        heap_bytes: record.heap_bytes.get(),
    }
}

fn header<'m>(arena: &Arena<'m>) -> Result<&'m Header, FormatError> {
    arena
        .get(HEADER)
        .map_err(|_| FormatError::TooSmall { len: arena.len() })
}

/// Formats blank (zero-filled) memory as an arena with `limits`, created at
/// wall-clock time `now`, without opening it (a platform that publishes arena
/// files formats them privately first).
pub fn format_memory(
    memory: &[core::sync::atomic::AtomicU32],
    limits: &Limits,
    now: i64,
) -> Result<Layout, FormatError> {
    format(&Arena::new(memory), limits, now)
}

/// Reads and checks the header of memory that should hold an arena.
pub fn read_memory(memory: &[core::sync::atomic::AtomicU32]) -> Result<Layout, FormatError> {
    read(&Arena::new(memory))
}

/// Formats blank (zero-filled) memory as an arena with `limits`.
pub(crate) fn format(arena: &Arena<'_>, limits: &Limits, now: i64) -> Result<Layout, FormatError> {
    let layout = Layout::compute(limits)?;
    let header = header(arena)?;
    if arena.len() < layout.size {
        return Err(FormatError::Truncated {
            needed: layout.size,
            actual: arena.len(),
        });
    }
    header
        .state
        .atomic()
        .compare_exchange(BLANK, INITIALISING, Ordering::Acquire, Ordering::Acquire)
        .map_err(|_| FormatError::NotBlank)?;
    write_header(arena, header, &layout, now);
    Ok(layout)
}

fn write_header(arena: &Arena<'_>, header: &Header, layout: &Layout, now: i64) {
    header.magic[0].set(MAGIC[0]);
    header.magic[1].set(MAGIC[1]);
    header.version.set(FORMAT_VERSION);
    header.size.set(layout.size);
    write_limits(&header.limits, &layout.limits);
    for (word, value) in header.regions.iter().zip(layout.region_words()) {
        word.set(value);
    }
    header.created.set(now as u64);
    crate::ids::format_tables(arena, layout);
    crate::heap::format_heap(arena, layout);
    header.state.atomic().store(READY, Ordering::Release);
}

/// Formats blank shared memory, or waits for the party that won the race to
/// format it, then reads it: for arenas without a file to publish (WebAssembly
/// memory shared by workers, a static arena shared by tasks).
pub(crate) fn format_or_wait<H: Host>(
    arena: &Arena<'_>,
    limits: &Limits,
    host: &H,
) -> Result<Layout, FormatError> {
    match format(arena, limits, host.wall_clock()) {
        Err(FormatError::NotBlank) => {}
        other => return other,
    }
    let state = header(arena)?.state.atomic();
    loop {
        let seen = state.load(Ordering::Acquire);
        if seen != INITIALISING {
            return read(arena);
        }
        host.wait(
            state,
            INITIALISING,
            Some(Deadline::after(host.now(), 1_000_000)),
        );
    }
}

/// Reads and checks the header of an existing arena.
pub(crate) fn read(arena: &Arena<'_>) -> Result<Layout, FormatError> {
    let header = header(arena)?;
    if [header.magic[0].get(), header.magic[1].get()] != MAGIC {
        return Err(FormatError::NotAnArena);
    }
    match header.version.get() {
        FORMAT_VERSION => {}
        found => return Err(FormatError::Version { found }),
    }
    if header.state.atomic().load(Ordering::Acquire) != READY {
        return Err(FormatError::Unfinished);
    }
    let layout = Layout::compute(&read_limits(&header.limits))?;
    if header.size.get() != layout.size
        || header
            .regions
            .iter()
            .map(Word::get)
            .ne(layout.region_words())
    {
        return Err(FormatError::Inconsistent);
    }
    if arena.len() < layout.size {
        return Err(FormatError::Truncated {
            needed: layout.size,
            actual: arena.len(),
        });
    }
    Ok(layout)
}

/// When the arena was formatted (wall-clock seconds).
pub(crate) fn created(arena: &Arena<'_>) -> i64 {
    arena.get(HEADER).map_or(0, |h| h.created.get() as i64)
}

/// The header word that elects the next sweep for dead processes.
pub(crate) fn sweep_after<'m>(arena: &Arena<'m>) -> Option<&'m Word> {
    arena.get(HEADER).ok().map(|h| &h.sweep_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEFAULT_LIMITS;

    #[test]
    fn default_layout_fits_and_regions_do_not_overlap() {
        let layout = Layout::compute(&DEFAULT_LIMITS).unwrap();
        let mut previous_end = u64::from(Header::SIZE);
        assert!(u64::from(layout.registry) >= previous_end);
        assert_eq!(layout.registry_summary(), layout.registry + 4096);
        assert_eq!(layout.registry_slots(), layout.registry + 4096 + 128);
        previous_end = u64::from(layout.registry_slots()) + 32768 * 16;
        for table in layout.tables {
            assert!(u64::from(table.header) >= previous_end);
            assert!(table.bitmap >= table.header + TableHeader::SIZE);
            assert!(table.buckets >= table.bitmap + table.slot_count.div_ceil(32) * 4);
            assert!(table.slots >= table.buckets + (4 << table.bucket_bits));
            assert_eq!(table.slots % 64, 0);
            previous_end =
                u64::from(table.slots) + u64::from(table.slot_count) * u64::from(ObjectSlot::SIZE);
        }
        assert_eq!(layout.tables[0].slot_count, 32768);
        assert_eq!(layout.tables[2].slot_count, 6142);
        assert!(u64::from(layout.heap) >= previous_end);
        assert_eq!(layout.heap_end - layout.heap_start, 64 << 20);
        assert_eq!(layout.size % 4096, 0);
    }

    #[test]
    fn tiny_limits_keep_the_kernel_index_window() {
        let limits = Limits {
            semmni: 4,
            msgmni: 4,
            shmmni: 4,
            procs: 8,
            heap_bytes: 4096,
            ..DEFAULT_LIMITS
        };
        let layout = Layout::compute(&limits).unwrap();
        assert_eq!(layout.tables[0].slot_count, 64);
        assert!(layout.size < 128 * 1024);
    }

    #[test]
    fn the_largest_limits_fit_in_32_bit_offsets_and_bad_ones_are_named() {
        let limits = Limits {
            heap_bytes: 3 << 30,
            procs: crate::limits::MAX_PROCS,
            ..DEFAULT_LIMITS
        };
        let layout = Layout::compute(&limits).unwrap();
        assert!(layout.heap_end > 3 << 30);
        let bad = Limits {
            semvmx: 40000,
            ..DEFAULT_LIMITS
        };
        assert!(matches!(
            Layout::compute(&bad),
            Err(FormatError::BadLimits(BadLimit { name: "semvmx", .. }))
        ));
        let no_slots = Limits {
            procs: 0,
            ..DEFAULT_LIMITS
        };
        assert!(matches!(
            Layout::compute(&no_slots),
            Err(FormatError::BadLimits(BadLimit { name: "procs", .. }))
        ));
    }
}
