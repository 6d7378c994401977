//! usysv on a microcontroller: tasks that share a static arena and wait by
//! spinning.
//!
//! A microcontroller has no futex and usually no processes: its tasks (or
//! cores) share RAM. The core needs only a [`Waiter`] and a [`Host`], so this
//! crate gives a [`Spin`] waiter, which polls the word and offers the
//! processor between polls, and a [`TaskHost`] that numbers the tasks. The
//! board supplies the clocks and the way to offer the processor, as plain
//! functions, and the arena is any `static` array of `AtomicU32`:
//!
//! ```ignore
//! static ARENA: [AtomicU32; WORDS] = [const { AtomicU32::new(0) }; WORDS];
//! let host = TaskHost { task: 1, spin: Spin { now: board_now, relax: rtos_yield }, wall_clock: rtc_seconds };
//! let ns = Namespace::create_or_open(&ARENA, &LIMITS, host)?;
//! ```
//!
//! `no_std`, without an allocator; nothing here can panic.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

use core::sync::atomic::{AtomicU32, Ordering};

use usysv_core::host::{Deadline, Host, Image, Liveness, ProcessId, Waiter, Wake};

/// A waiter that polls: it returns when the word no longer holds the expected
/// value or the deadline has passed, and calls `relax` between polls.
///
/// Waking is a no-op: a sleeper sees the store itself. With tasks of
/// different priorities on one core, `relax` must let a lower-priority task
/// run (an RTOS yield or delay), or a high-priority waiter spins forever;
/// with one task per core, `core::hint::spin_loop` will do.
#[derive(Clone, Copy, Debug)]
pub struct Spin {
    /// The monotonic clock, for deadlines.
    pub now: fn() -> Deadline,
    /// Called between polls.
    pub relax: fn(),
}

impl Waiter for Spin {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
        loop {
            if word.load(Ordering::Acquire) != expected {
                return Wake::Woken;
            }
            if deadline.is_some_and(|deadline| (self.now)() >= deadline) {
                return Wake::TimedOut;
            }
            (self.relax)();
        }
    }

    fn wake(&self, _word: &AtomicU32, _count: u32) {}

    fn yield_now(&self) {
        (self.relax)();
    }
}

/// The host of one task: its number, the spin waiter, and the wall clock for
/// the `*_time` fields.
///
/// Tasks are numbered by the application, from 1; the number stands for the
/// pid (`sempid`, `msg_lspid`, ...). Tasks are taken to live as long as the
/// arena: a task that ends should leave first (drop its `Namespace`), which
/// applies its `SEM_UNDO` adjustments as an exit does.
#[derive(Clone, Copy, Debug)]
pub struct TaskHost {
    /// The task's number (its "pid").
    pub task: u32,
    /// How the task waits.
    pub spin: Spin,
    /// Wall-clock seconds since the epoch (0 if the board has no clock).
    pub wall_clock: fn() -> i64,
}

impl Waiter for TaskHost {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
        self.spin.wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32, count: u32) {
        self.spin.wake(word, count)
    }

    fn yield_now(&self) {
        self.spin.yield_now()
    }
}

impl Host for TaskHost {
    fn now(&self) -> Deadline {
        (self.spin.now)()
    }

    fn wall_clock(&self) -> i64 {
        (self.wall_clock)()
    }

    fn current_process(&self) -> ProcessId {
        ProcessId {
            pid: self.task,
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
