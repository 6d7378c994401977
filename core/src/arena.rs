//! Checked access to the shared arena.
//!
//! The arena is one contiguous region shared by every process (or worker, or
//! task) that uses a namespace, mapped at a different address in each. Nothing
//! in it is a pointer: records refer to each other by byte offsets from the
//! start of the arena ([`Off`]), and every offset is resolved through
//! [`Arena::get`], which checks bounds and alignment. A bad offset read from the
//! arena is an [`Errno::CORRUPT`] error, never a wild read.
//!
//! # Why everything is an atomic
//!
//! Any process that can write the arena can write any byte of it at any time: a
//! bug, a crash half-way through a store sequence, or malice. A plain Rust
//! reference to memory that another process writes concurrently is undefined
//! behaviour, so the arena is viewed as a slice of [`Word`]s, each an
//! `AtomicU32`. Every bit pattern is a valid `Word`, and concurrent access to
//! atomics is defined; the worst another process can do is hand us a wrong
//! value, which the code that reads it must check. Fields that the locking
//! rules protect are accessed with `Relaxed` ordering ([`Word::get`],
//! [`Word::set`]): the lock provides the ordering. Only 32-bit atomics are used,
//! because some targets (thumbv7em) have no 64-bit ones.
//!
//! # Records
//!
//! A [`Record`] is a `#[repr(C)]` struct made only of `Word`s and arrays or
//! structs of them, so it is a run of words with named fields. `Arena::get`
//! turns an offset into `&Record` after checking that the whole record lies
//! inside the arena and is word-aligned; this is the one place where the core
//! uses `unsafe`.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::errno::{Errno, Result};

/// One 32-bit word of the arena.
#[repr(transparent)]
pub struct Word(AtomicU32);

impl Word {
    /// A word holding `value` (for arenas built in static memory).
    pub const fn new(value: u32) -> Word {
        Word(AtomicU32::new(value))
    }

    /// Reads a field protected by a lock (or one whose every value is checked).
    #[inline]
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Writes a field protected by a lock held by the caller.
    #[inline]
    pub fn set(&self, value: u32) {
        self.0.store(value, Ordering::Relaxed)
    }

    /// The atomic itself, for lock words and other fields touched without a lock.
    #[inline]
    pub fn atomic(&self) -> &AtomicU32 {
        &self.0
    }

    /// Asks the processor to fetch the word's cache line for writing, so
    /// that a store soon after need not wait for another core to give the
    /// line up. A hint: it changes nothing, and does nothing on processors
    /// without such a prefetch.
    #[inline]
    pub(crate) fn prefetch_for_write(&self) {
        #[cfg(target_arch = "x86_64")]
        if prefetchw::supported() {
            // SAFETY: the processor has PREFETCHW, as `supported` read from CPUID.
            unsafe { prefetchw::line(self) }
        }
    }
}

/// PREFETCHW, which x86-64 processors have had since Broadwell (and AMD's
/// since the first), found by CPUID once per process.
#[cfg(target_arch = "x86_64")]
mod prefetchw {
    use core::arch::x86_64::__cpuid;
    use core::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const ABSENT: u8 = 1;
    const PRESENT: u8 = 2;

    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether the processor has PREFETCHW (CPUID leaf 0x8000_0001, ECX bit 8).
    #[inline]
    pub(super) fn supported() -> bool {
        match STATE.load(Ordering::Relaxed) {
            UNKNOWN => {
                let present = __cpuid(0x8000_0000).eax >= 0x8000_0001
                    && __cpuid(0x8000_0001).ecx & (1 << 8) != 0;
                STATE.store(if present { PRESENT } else { ABSENT }, Ordering::Relaxed);
                present
            }
            state => state == PRESENT,
        }
    }

    /// Prefetches `word`'s line for writing.
    ///
    /// # Safety
    ///
    /// The processor has PREFETCHW ([`supported`]).
    #[inline]
    pub(super) unsafe fn line(word: &super::Word) {
        // SAFETY: the caller checked the instruction exists; it reads the
        // address only as a hint (it cannot fault), writes no memory, no
        // register and no flag.
        unsafe {
            core::arch::asm!(
                "prefetchw byte ptr [{0}]",
                in(reg) word as *const super::Word,
                options(nostack, preserves_flags, readonly)
            );
        }
    }
}

/// A pair of words holding a 64-bit value (low word first). Written only under
/// the lock that protects it, so the two halves are always seen together.
#[repr(C)]
pub struct Word64 {
    lo: Word,
    hi: Word,
}

impl Word64 {
    /// Reads the value.
    pub fn get(&self) -> u64 {
        u64::from(self.lo.get()) | (u64::from(self.hi.get()) << 32)
    }

    /// Writes the value.
    pub fn set(&self, value: u64) {
        self.lo.set(value as u32);
        self.hi.set((value >> 32) as u32);
    }

    /// The two halves, for journaled writes.
    pub(crate) fn halves(&self) -> (&Word, &Word) {
        (&self.lo, &self.hi)
    }
}

/// A run of words with named fields, viewable in place in the arena.
///
/// # Safety
///
/// The implementing type must be `#[repr(C)]` and contain only [`Word`]s,
/// arrays of records, and other records, with no padding. Then its size is a
/// multiple of 4, its alignment is 4, every bit pattern is a valid value, and
/// all of it may be shared between threads and processes.
pub unsafe trait Record: Sized {
    /// Size in bytes; checked at compile time to be a multiple of the word size.
    const SIZE: u32 = {
        assert!(size_of::<Self>() % 4 == 0 && align_of::<Self>() == 4);
        assert!(size_of::<Self>() <= u32::MAX as usize);
        size_of::<Self>() as u32
    };
}

// SAFETY: a `Word` is a transparent `AtomicU32`: 4 bytes, alignment 4, any bits valid.
unsafe impl Record for Word {}
// SAFETY: `repr(C)` pair of `Word`s, no padding.
unsafe impl Record for Word64 {}
// SAFETY: an array of records is a run of records with no padding between them.
unsafe impl<T: Record, const N: usize> Record for [T; N] {}

/// Views a run of `N` words as the record `T` (which must fit in them): for
/// records that overlay a reserved area of another record, such as a kind's
/// fields in an object slot.
pub fn overlay<T: Record, const N: usize>(words: &[Word; N]) -> &T {
    const { assert!(size_of::<T>() <= N * 4) };
    // SAFETY: `words` is `N` contiguous, 4-aligned words, at least as many
    // bytes as `T` (checked at compile time); `T: Record` is a `repr(C)` run of
    // `Word`s with any bit pattern valid, borrowed for as long as `words`.
    unsafe { &*words.as_ptr().cast::<T>() }
}

/// The byte offset of a `T` in the arena. Creating one checks nothing;
/// resolving it through [`Arena::get`] checks everything.
pub struct Off<T> {
    raw: u32,
    record: PhantomData<fn() -> T>,
}

impl<T> Clone for Off<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Off<T> {}
impl<T> PartialEq for Off<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T> Eq for Off<T> {}
impl<T> core::fmt::Debug for Off<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Off({:#x})", self.raw)
    }
}

impl<T> Off<T> {
    /// An offset from its raw byte value.
    pub const fn new(raw: u32) -> Self {
        Off {
            raw,
            record: PhantomData,
        }
    }

    /// The raw byte value.
    pub const fn raw(self) -> u32 {
        self.raw
    }
}

impl<T: Record> Off<T> {
    /// The offset of element `index` in an array of `T` starting here; an
    /// overflow gives [`Errno::CORRUPT`].
    pub fn index(self, index: u32) -> Result<Off<T>> {
        index
            .checked_mul(T::SIZE)
            .and_then(|delta| self.raw.checked_add(delta))
            .map(Off::new)
            .ok_or(Errno::CORRUPT)
    }
}

/// A view of an arena: a run of words shared with other processes.
///
/// It is `Copy`: it only borrows the memory, which the platform keeps mapped
/// for `'m`.
#[derive(Clone, Copy)]
pub struct Arena<'m> {
    words: &'m [Word],
}

impl<'m> Arena<'m> {
    /// Views shared memory as an arena. Its length is a whole number of words;
    /// at most `u32::MAX` bytes of it are addressable, since offsets are 32-bit.
    pub fn new(words: &'m [AtomicU32]) -> Arena<'m> {
        let usable = words.len().min(u32::MAX as usize / 4);
        // SAFETY: `Word` is `repr(transparent)` over `AtomicU32`, so a slice of one
        // is a slice of the other with the same length, layout and lifetime.
        let words = unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<Word>(), usable) };
        Arena { words }
    }

    /// Size in bytes.
    pub fn len(&self) -> u32 {
        // Fits: `new` caps the length at `u32::MAX / 4` words.
        (self.words.len() * 4) as u32
    }

    /// Whether the arena has no words at all.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Resolves an offset: the record must lie wholly inside the arena and be
    /// word-aligned, else [`Errno::CORRUPT`].
    #[inline]
    pub fn get<T: Record>(&self, off: Off<T>) -> Result<&'m T> {
        let words = self.words_at(off.raw, T::SIZE as usize / 4)?;
        // SAFETY: `words` lies inside the arena and holds exactly `T::SIZE`
        // bytes (`words_at`), 4-aligned, and `T: Record` is a `repr(C)` run of
        // `Word`s with any bit pattern valid, so they are a valid `T` for as
        // long as the arena is borrowed.
        Ok(unsafe { &*words.as_ptr().cast::<T>() })
    }

    /// Resolves `count` consecutive records starting at `off`.
    pub fn slice<T: Record>(&self, off: Off<T>, count: u32) -> Result<&'m [T]> {
        let len = (count as usize)
            .checked_mul(T::SIZE as usize / 4)
            .ok_or(Errno::CORRUPT)?;
        let words = self.words_at(off.raw, len)?;
        // SAFETY: as in `get`: the words lie inside the arena, 4-aligned, and
        // `count` records of `T` occupy exactly these `len` words.
        Ok(unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<T>(), count as usize) })
    }

    /// The `len` words starting at byte offset `at`, which must be
    /// word-aligned, all inside the arena, else [`Errno::CORRUPT`].
    #[inline]
    fn words_at(&self, at: u32, len: usize) -> Result<&'m [Word]> {
        if at % 4 != 0 {
            return Err(Errno::CORRUPT);
        }
        let first = (at / 4) as usize;
        let end = first.checked_add(len).ok_or(Errno::CORRUPT)?;
        self.words.get(first..end).ok_or(Errno::CORRUPT)
    }

    /// Copies `bytes` into the arena at word-aligned offset `at`, in little-endian
    /// words; the last word is zero-padded.
    pub(crate) fn write_bytes(&self, at: u32, bytes: &[u8]) -> Result<()> {
        let count = u32::try_from(bytes.len().div_ceil(4)).map_err(|_| Errno::CORRUPT)?;
        let mut words = self.slice(Off::<Word>::new(at), count)?.iter();
        let quads = bytes.chunks_exact(4);
        let tail = quads.remainder();
        // The chunks lead the zip: it stops before taking the tail's word.
        for (quad, word) in quads.zip(words.by_ref()) {
            let mut le = [0u8; 4];
            le.copy_from_slice(quad);
            word.set(u32::from_le_bytes(le));
        }
        if let Some(word) = words.next() {
            let mut le = [0u8; 4];
            for (byte, &value) in le.iter_mut().zip(tail) {
                *byte = value;
            }
            word.set(u32::from_le_bytes(le));
        }
        Ok(())
    }

    /// Copies `out.len()` bytes out of the arena from word-aligned offset `at`.
    pub(crate) fn read_bytes(&self, at: u32, out: &mut [u8]) -> Result<()> {
        let count = u32::try_from(out.len().div_ceil(4)).map_err(|_| Errno::CORRUPT)?;
        let mut words = self.slice(Off::<Word>::new(at), count)?.iter();
        let mut quads = out.chunks_exact_mut(4);
        // The chunks lead the zip: it stops before taking the tail's word.
        for (quad, word) in quads.by_ref().zip(words.by_ref()) {
            quad.copy_from_slice(&word.get().to_le_bytes());
        }
        if let Some(word) = words.next() {
            for (byte, value) in quads
                .into_remainder()
                .iter_mut()
                .zip(word.get().to_le_bytes())
            {
                *byte = value;
            }
        }
        Ok(())
    }

    /// The offset of a word that lies inside this arena (for the undo journal).
    pub(crate) fn offset_of(&self, word: &Word) -> Result<u32> {
        let base = self.words.as_ptr() as usize;
        let at = word as *const Word as usize;
        at.checked_sub(base)
            .filter(|delta| *delta < self.words.len() * 4)
            .map(|delta| delta as u32)
            .ok_or(Errno::CORRUPT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Pair {
        a: Word,
        b: Word,
    }
    // SAFETY: `repr(C)`, two words, no padding.
    unsafe impl Record for Pair {}

    fn memory(words: usize) -> std::vec::Vec<AtomicU32> {
        (0..words).map(|_| AtomicU32::new(0)).collect()
    }

    #[test]
    fn resolves_records_inside_and_rejects_the_rest() {
        let mem = memory(4);
        let arena = Arena::new(&mem);
        assert_eq!(arena.len(), 16);
        let pair = arena.get(Off::<Pair>::new(8)).unwrap();
        pair.b.set(7);
        assert_eq!(mem[3].load(Ordering::Relaxed), 7);
        assert_eq!(arena.get(Off::<Pair>::new(12)).err(), Some(Errno::CORRUPT));
        assert_eq!(arena.get(Off::<Pair>::new(2)).err(), Some(Errno::CORRUPT));
        assert_eq!(
            arena.get(Off::<Pair>::new(u32::MAX)).err(),
            Some(Errno::CORRUPT)
        );
        assert_eq!(arena.slice(Off::<Pair>::new(0), 2).unwrap().len(), 2);
        assert!(arena.slice(Off::<Pair>::new(0), 3).is_err());
        assert!(arena.slice(Off::<Pair>::new(4), u32::MAX).is_err());
        assert!(Off::<Pair>::new(u32::MAX - 4).index(1).is_err());
        assert_eq!(arena.offset_of(&pair.b).unwrap(), 12);
    }

    #[test]
    fn bytes_round_trip_through_words() {
        let mem = memory(4);
        let arena = Arena::new(&mem);
        arena.write_bytes(4, b"hello").unwrap();
        let mut out = [0u8; 5];
        arena.read_bytes(4, &mut out).unwrap();
        assert_eq!(&out, b"hello");
        assert_eq!(
            mem[2].load(Ordering::Relaxed),
            u32::from(b'o'),
            "zero-padded"
        );
        assert!(arena.write_bytes(8, &[1; 9]).is_err());
        assert!(arena.read_bytes(2, &mut out).is_err());

        arena.write_bytes(0, b"abcdefgh").unwrap();
        assert_eq!(mem[1].load(Ordering::Relaxed), u32::from_le_bytes(*b"efgh"));
        assert_eq!(mem[2].load(Ordering::Relaxed), u32::from(b'o'), "untouched");
        let mut whole = [0u8; 8];
        arena.read_bytes(0, &mut whole).unwrap();
        assert_eq!(&whole, b"abcdefgh");
        let mut cut = [0u8; 7];
        arena.read_bytes(0, &mut cut).unwrap();
        assert_eq!(&cut, b"abcdefg");
    }

    #[test]
    fn word64_round_trips() {
        let mem = memory(2);
        let arena = Arena::new(&mem);
        let w = arena.get(Off::<Word64>::new(0)).unwrap();
        w.set(0x1234_5678_9abc_def0);
        assert_eq!(w.get(), 0x1234_5678_9abc_def0);
    }
}
