//! What the core needs from the system it runs on.
//!
//! The core never names an operating system. It waits and wakes through
//! [`Waiter`] (a shared futex on Linux, `umtx` on DragonFly,
//! `memory.atomic.wait32` in WebAssembly, a spin loop on a microcontroller) and
//! asks [`Host`] for the time and for whether a process is still alive. Each
//! platform implements both in one small file.

use core::sync::atomic::AtomicU32;

/// An absolute point on the host's monotonic clock, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub u64);

impl Deadline {
    /// The deadline `nanos` after `now`, saturating far in the future.
    pub fn after(now: Deadline, nanos: u64) -> Deadline {
        Deadline(now.0.saturating_add(nanos))
    }
}

/// Why a wait returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word no longer held the expected value, or a spurious
    /// return: the caller re-reads the word and decides.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// A signal arrived (System V calls report it as `EINTR`).
    Interrupted,
}

/// Blocking on a word of shared memory, across processes.
pub trait Waiter {
    /// Sleeps while `word` holds `expected`, until woken, the deadline passes,
    /// or a signal arrives. Returns at once if the word holds another value.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake;

    /// Wakes up to `count` sleepers on `word`.
    fn wake(&self, word: &AtomicU32, count: u32);

    /// Offers the processor to another runnable thread, between rounds of
    /// spinning (a no-op where there is no scheduler to offer it to).
    fn yield_now(&self) {}
}

/// The identity of a process: its pid and its start time, so that a pid reused
/// by a new process is not taken for the old one. Hosts without processes
/// (WebAssembly workers, microcontroller tasks) number their parties instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// The process id.
    pub pid: u32,
    /// When the process started, in the host's own unit (clock ticks since boot on Linux).
    pub start: u64,
}

/// The program image a process runs: it changes at `execve`, while the pid
/// and start time stay (Linux: bytes of `AT_RANDOM`). Two registrations with
/// the same process and image belong to one program and share a slot; the
/// same process with another image has exec'd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image(pub u32);

/// Whether a process is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (or cannot be shown to have ended).
    Alive,
    /// It has exited or been killed; a zombie counts as dead.
    Dead,
}

/// Everything else the core asks of its host.
pub trait Host: Waiter {
    /// The monotonic clock, for deadlines.
    fn now(&self) -> Deadline;

    /// Wall-clock seconds since the epoch, for the `*_time` fields.
    fn wall_clock(&self) -> i64;

    /// The calling process.
    fn current_process(&self) -> ProcessId;

    /// The calling process's program image.
    fn current_image(&self) -> Image;

    /// A number that changes in the child of every `fork` (0 where there is
    /// no fork): a namespace whose number changed belongs to the parent and
    /// registers the child afresh.
    fn fork_generation(&self) -> u32 {
        0
    }

    /// Whether `process` still runs.
    fn liveness(&self, process: ProcessId) -> Liveness;

    /// Whether the calling process may control `process` as a debugger
    /// could (Linux: the same user, as `ptrace` requires), which lets it
    /// hold that process's undo list for a restart. None may by default.
    fn may_control(&self, process: ProcessId) -> bool {
        let _ = process;
        false
    }

    /// A shared memory segment went (removed, and its last attachment
    /// ended): the host releases the bytes it placed for it (on Linux, its
    /// file), which it named `token` ([`crate::shm::Placement::Host`]).
    /// Called after the removal is permanent, by whichever process made it
    /// so.
    fn segment_gone(&self, shmid: i32, token: u64) {
        let _ = (shmid, token);
    }
}
