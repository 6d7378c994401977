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
//! - [`msg`]: message queues ([`Namespace::msgsnd`], [`Namespace::msgrcv`], `msgctl`).
//! - [`shm`]: shared memory bookkeeping ([`Namespace::shmget`],
//!   [`Namespace::shm_attached`], [`Namespace::shm_detach`], `shmctl`); the
//!   platform maps the bytes.
//! - `lifecycle`: fork, exec and exit ([`Namespace::fork_prepare`],
//!   [`Namespace::exit`]).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

// Only the conformance driver over threads needs std.
#[cfg(all(feature = "conformance-threads", not(test)))]
extern crate std;

pub mod arena;
/// The atomics [`protocol`] is written over: the processor's here, loom's
/// in `core/tests/loom.rs`.
mod atomic {
    pub(crate) use core::sync::atomic::{AtomicU32, Ordering};
}
mod check;
pub mod checkpoint;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod errno;
pub mod format;
mod handoff;
mod heap;
pub mod host;
mod ids;
mod lifecycle;
pub mod limits;
mod lock;
pub mod msg;
pub mod perm;
mod protocol;
mod registry;
pub mod sem;
pub mod shm;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_msg;
#[cfg(test)]
mod tests_sem;
#[cfg(test)]
mod tests_shm;

use core::fmt;
use core::num::NonZeroU32;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

pub use check::{Area, CheckSummary, Problem, Severity};
pub use errno::{Errno, Result};
pub use format::{FormatError, Layout};
pub use heap::{BlockOwner, BLOCK_HEADER};
pub use ids::{Kind, Object, ObjectTxn, EXT_WORDS, KINDS};
pub use limits::{Limits, DEFAULT_LIMITS};
pub use lock::Txn;
pub use perm::{Cred, IpcPerm};
pub use registry::{ForkSlot, Tag};

use arena::{Arena, Off};
use host::Host;
use registry::{Registered, Registry};

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
    /// This process's registry tag (raw), and its pid, read once (`sempid`
    /// and friends need it on every operation, and `getpid()` is a system
    /// call). Both change in the child of a `fork`, which registers afresh.
    me: AtomicU32,
    pid: AtomicU32,
    /// The host's fork generation when `me` and `pid` were set.
    fork_generation: AtomicU32,
    /// The registration has ended ([`Namespace::exit`]).
    left: AtomicBool,
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
        // `Layout::compute` allows no fewer than one slot; none would leave
        // no slot to take.
        let procs = NonZeroU32::new(layout.limits.procs).ok_or(OpenError::NoProcessSlot)?;
        let registry = Registry::new(
            arena,
            Off::new(layout.registry),
            Off::new(layout.registry_summary()),
            Off::new(layout.registry_slots()),
            procs,
        );
        let fork_generation = host.fork_generation();
        let process = host.current_process();
        let registered = registry
            .register(process, host.current_image())
            .map_err(|_| OpenError::NoProcessSlot)?;
        let me = match registered {
            Registered::Fresh(tag) | Registered::Adopted(tag) => tag,
        };
        let ns = Namespace {
            arena,
            layout,
            host,
            me: AtomicU32::new(me.raw()),
            pid: AtomicU32::new(process.pid),
            fork_generation: AtomicU32::new(fork_generation),
            left: AtomicBool::new(false),
            registry,
        };
        if let (Registered::Adopted(_), Some(slot)) = (registered, ns.registry.slot_of(me)) {
            // After execve: the old image's mappings are gone.
            ns.settle_attachments(slot, Some(process.pid));
        }
        ns.sweep_now_and_then();
        Ok(ns)
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

    /// This process's registry tag and pid. In the child of a `fork` the
    /// first call registers the child (`ENOSPC` if no slot is free).
    #[inline]
    pub(crate) fn identity(&self) -> Result<(Tag, u32)> {
        if self.host.fork_generation() != self.fork_generation.load(Ordering::Relaxed) {
            self.register_forked_child()?;
        }
        Ok((
            Tag::from_raw(self.me.load(Ordering::Relaxed)),
            self.pid.load(Ordering::Relaxed),
        ))
    }

    #[cold]
    pub(crate) fn register_forked_child(&self) -> Result<()> {
        let process = self.host.current_process();
        let tag = match self.registry.register(process, self.host.current_image())? {
            Registered::Fresh(tag) | Registered::Adopted(tag) => tag,
        };
        self.adopt_identity(tag, process.pid);
        Ok(())
    }

    /// Makes `tag` and `pid` this process's, in the child of a fork.
    pub(crate) fn adopt_identity(&self, tag: Tag, pid: u32) {
        self.me.store(tag.raw(), Ordering::Relaxed);
        self.pid.store(pid, Ordering::Relaxed);
        self.fork_generation
            .store(self.host.fork_generation(), Ordering::Relaxed);
    }

    /// Whether this namespace came from the parent across a fork and the
    /// child has not used it: its registration is the parent's.
    pub(crate) fn inherited(&self) -> bool {
        self.host.fork_generation() != self.fork_generation.load(Ordering::Relaxed)
    }

    /// This process's registry tag.
    pub fn tag(&self) -> Result<Tag> {
        Ok(self.identity()?.0)
    }

    /// When the arena was created (wall-clock seconds).
    pub fn created(&self) -> i64 {
        format::created(&self.arena)
    }

    /// The number of registered processes.
    pub fn processes(&self) -> usize {
        self.registry.live_slots().count()
    }

    /// The registered processes that may be running: neither a dead
    /// process's kept checkpoint nor a slot waiting for a fork child (for a
    /// watcher such as `usysv daemon`).
    pub fn running(&self) -> impl Iterator<Item = host::ProcessId> + '_ {
        self.registry
            .live_slots()
            .filter(|&(index, _)| {
                self.registry
                    .slot_at(index)
                    .is_ok_and(|slot| self.registry.is_ordinary(slot))
            })
            .map(|(_, process)| process)
    }
}

impl<H: Host> Drop for Namespace<'_, H> {
    /// Leaves the arena. The program's last registration to leave applies the
    /// process's `SEM_UNDO` adjustments and ends its shared memory
    /// attachments, as the kernel does at exit, and frees its slot. A
    /// namespace inherited across `fork` and never used by the child leaves
    /// nothing: the registration is the parent's.
    fn drop(&mut self) {
        self.leave();
    }
}
