//! The engine of usysv: a whole System V IPC namespace — semaphore sets,
//! message queues, shared memory — kept in one shared arena.
//!
//! `#![no_std]` and without an allocator, so the same engine runs between
//! Linux processes, WebAssembly workers and microcontroller tasks. It talks to
//! the system only through [`host::Host`] and [`host::Waiter`].
//!
//! - [`arena`]: checked access to the shared memory (the only `unsafe` code).
//! - [`format`]: the arena's header, layout and ready state.
//! - `ids`: object tables with Linux's keys, ids and permission rules
//!   ([`Namespace::ipc_get`], [`Namespace::lock_object`], [`Namespace::ipc_remove`]).
//! - `lock`: robust locks with an undo journal ([`Txn`]).
//! - `heap`: variable-size records ([`Namespace::heap_alloc`]).
//! - `registry`: the processes using the arena.
//! - `check`: every invariant, verified ([`Namespace::check`]).
//! - [`sem`]: semaphore sets ([`Namespace::semget`], [`Namespace::semtimedop`], `semctl`).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod arena;
mod check;
pub mod errno;
pub mod format;
mod heap;
pub mod host;
mod ids;
pub mod limits;
mod lock;
pub mod perm;
mod registry;
pub mod sem;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sem;

use core::fmt;
use core::sync::atomic::AtomicU32;

pub use check::{Area, CheckSummary, Problem, Severity};
pub use errno::{Errno, Result};
pub use format::{FormatError, Layout};
pub use heap::{BlockOwner, BLOCK_HEADER};
pub use ids::{Kind, Object, ObjectTxn, EXT_WORDS, KINDS};
pub use limits::{Limits, DEFAULT_LIMITS};
pub use lock::Txn;
pub use perm::{Cred, IpcPerm};
pub use registry::Tag;

use arena::{Arena, Off};
use host::Host;
use registry::Registry;

/// Why an arena could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The memory is not a usable arena.
    Format(FormatError),
    /// Every process slot is taken.
    NoProcessSlot,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Format(err) => err.fmt(f),
            OpenError::NoProcessSlot => {
                f.write_str("every process slot of the usysv arena is taken")
            }
        }
    }
}

impl From<FormatError> for OpenError {
    fn from(err: FormatError) -> Self {
        OpenError::Format(err)
    }
}

/// An arena opened by this process: the memory, the layout read from it when
/// it was opened, the host, and this process's registry slot.
///
/// One `Namespace` serves every thread of a process (it is `Sync` when the
/// host is). Dropping it frees the process slot.
pub struct Namespace<'m, H: Host> {
    pub(crate) arena: Arena<'m>,
    pub(crate) layout: Layout,
    pub(crate) host: H,
    pub(crate) me: Tag,
    /// This process's pid, read once (`sempid` and friends need it on every
    /// operation, and `getpid()` is a system call).
    pub(crate) pid: u32,
    pub(crate) registry: Registry<'m>,
}

impl<'m, H: Host> Namespace<'m, H> {
    /// Formats blank (zero-filled) memory as a new arena with `limits`, and opens it.
    pub fn create(
        memory: &'m [AtomicU32],
        limits: &Limits,
        host: H,
    ) -> core::result::Result<Self, OpenError> {
        let arena = Arena::new(memory);
        let layout = format::format(&arena, limits, host.wall_clock())?;
        Self::attach(arena, layout, host)
    }

    /// Opens an existing arena, checking its header.
    pub fn open(memory: &'m [AtomicU32], host: H) -> core::result::Result<Self, OpenError> {
        let arena = Arena::new(memory);
        let layout = format::read(&arena)?;
        Self::attach(arena, layout, host)
    }

    /// Opens shared memory that other parties may be formatting at the same
    /// time: the first formats it, the others wait until it is ready. For
    /// arenas that are not files (WebAssembly memory, a static arena).
    pub fn create_or_open(
        memory: &'m [AtomicU32],
        limits: &Limits,
        host: H,
    ) -> core::result::Result<Self, OpenError> {
        let arena = Arena::new(memory);
        let layout = format::format_or_wait(&arena, limits, &host)?;
        Self::attach(arena, layout, host)
    }

    fn attach(arena: Arena<'m>, layout: Layout, host: H) -> core::result::Result<Self, OpenError> {
        let registry = Registry::new(
            arena,
            Off::new(layout.registry),
            Off::new(layout.registry_slots()),
            layout.limits.procs,
        );
        let process = host.current_process();
        let me = registry
            .register(process)
            .map_err(|_| OpenError::NoProcessSlot)?;
        Ok(Namespace {
            arena,
            layout,
            host,
            me,
            pid: process.pid,
            registry,
        })
    }

    /// Where every region lies, and the limits.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The limits the arena was created with.
    pub fn limits(&self) -> &Limits {
        &self.layout.limits
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// This process's registry tag.
    pub fn tag(&self) -> Tag {
        self.me
    }

    /// When the arena was created (wall-clock seconds).
    pub fn created(&self) -> i64 {
        format::created(&self.arena)
    }

    /// The number of registered processes.
    pub fn processes(&self) -> usize {
        self.registry.live_slots().count()
    }
}

impl<H: Host> Drop for Namespace<'_, H> {
    fn drop(&mut self) {
        self.registry.unregister(self.me);
    }
}
