//! The WebAssembly host: `memory.atomic.wait32` and `memory.atomic.notify`
//! on the shared memory, a clock imported from JavaScript, and parties
//! numbered by JavaScript.
//!
//! `memory.atomic.wait32` takes a relative timeout in nanoseconds (-1: none)
//! and returns 0 (woken by a notify), 1 (the word did not hold the expected
//! value) or 2 (the timeout passed). The core's deadlines are absolute on
//! [`Host::now`], so a wait converts its deadline to a timeout when it
//! starts, and reports [`Wake::TimedOut`] only when the deadline has passed
//! on that clock: the engine's timer and the imported clock may disagree by
//! a little, and a wait that ends a little early is a spurious wake-up,
//! which the caller answers by reading the word and waiting again. There
//! are no signals between workers: a wait is never [`Wake::Interrupted`].
//!
//! A worker may only wait where its agent can block: Node.js workers and its
//! main thread, Web Workers; a browser's main thread traps.

use core::arch::wasm32;
use core::sync::atomic::AtomicU32;

use usysv_core::host::{Deadline, Host, Image, Liveness, ProcessId, Waiter, Wake};

#[link(wasm_import_module = "env")]
extern "C" {
    /// Milliseconds since the epoch, monotonic and the same for every
    /// worker: `performance.timeOrigin + performance.now()`.
    #[link_name = "usysv_now_ms"]
    fn now_ms() -> f64;
}

/// The host of one party (worker): its number, given by JavaScript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasmHost {
    party: u32,
}

impl WasmHost {
    /// The host of party `party` (`1..=`[`crate::MAX_PARTIES`]).
    pub const fn new(party: u32) -> WasmHost {
        WasmHost { party }
    }
}

fn milliseconds() -> f64 {
    // SAFETY: the import takes nothing and returns a number; JavaScript
    // supplies it at instantiation (a missing import fails instantiation).
    unsafe { now_ms() }
}

impl Waiter for WasmHost {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
        let timeout = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.0.saturating_sub(self.now().0);
                i64::try_from(left).unwrap_or(i64::MAX)
            }
        };
        // SAFETY: `word` is a live, aligned 32-bit atomic in the module's
        // linear memory, which is shared (the module imports it shared), so
        // the instruction is valid; it reads the word atomically and writes
        // nothing. An `i32` view of an `AtomicU32` has the same size and
        // alignment.
        let outcome =
            unsafe { wasm32::memory_atomic_wait32(word.as_ptr().cast(), expected as i32, timeout) };
        match (outcome, deadline) {
            (2, Some(deadline)) if self.now() >= deadline => Wake::TimedOut,
            // 0: notified; 1: the word had changed; 2 before the deadline on
            // our clock: spurious.
            _ => Wake::Woken,
        }
    }

    fn wake(&self, word: &AtomicU32, count: u32) {
        // SAFETY: as in `wait`: a live, aligned word of the shared memory;
        // notify only uses its address.
        unsafe {
            wasm32::memory_atomic_notify(word.as_ptr().cast(), count);
        }
    }
}

/// Liveness: every party counts as alive, as a worker's end is not seen
/// from inside the module. A worker that ends without
/// [`usysv_close`](crate::usysv_close) (it returned, was terminated, or its
/// module trapped) leaves its party open: its registry slot stays taken and
/// its `SEM_UNDO` adjustments stay unapplied until another instance closes
/// the party for it (JavaScript does, on the worker's `exit` event), which
/// is what a process's exit does. Not covered: a worker that ended inside a
/// call stays counted in (its party cannot be closed), and if the call held
/// an object's lock, that object stays locked and the parties that need it
/// wait for ever (on Linux the next locker sees the owner dead and rolls
/// its work back).
impl Host for WasmHost {
    fn now(&self) -> Deadline {
        // `as` saturates: a clock before the epoch reads 0.
        Deadline((milliseconds() * 1e6) as u64)
    }

    fn wall_clock(&self) -> i64 {
        (milliseconds() / 1e3) as i64
    }

    fn current_process(&self) -> ProcessId {
        ProcessId {
            pid: self.party,
            start: 0,
        }
    }

    fn current_image(&self) -> Image {
        Image(0)
    }

    fn liveness(&self, _process: ProcessId) -> Liveness {
        Liveness::Alive
    }
}
