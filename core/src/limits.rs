//! The limits of a namespace (`ipcs -l`), fixed when its arena is created.
//!
//! Defaults are the Linux kernel's (`/proc/sys/kernel/{sem,msgmni,msgmax,
//! msgmnb,shmmni,shmmax,shmall}`). Two limits are usysv's own: the number of
//! process slots and the size of the heap that holds semaphore arrays, message
//! rings and undo lists. The kernel's SEMMNS of 1,024,000,000 semaphores is a
//! ceiling, not a reservation, and the same is true here: what is really
//! available is the heap, and a creation that does not fit in it fails with
//! `ENOSPC`/`ENOMEM`.

use core::fmt;

/// The most objects of one kind, and the multiplier in an id (Linux `IPCMNI`).
pub const IPCMNI: u32 = 32768;

/// The limits of one arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// SEMMNI: semaphore sets.
    pub semmni: u32,
    /// SEMMSL: semaphores per set.
    pub semmsl: u32,
    /// SEMMNS: semaphores in all sets.
    pub semmns: u32,
    /// SEMOPM: operations per `semop` call.
    pub semopm: u32,
    /// SEMVMX: the largest semaphore value (also SEMAEM, the largest adjustment).
    pub semvmx: u32,
    /// MSGMNI: message queues.
    pub msgmni: u32,
    /// MSGMAX: the largest message, in bytes.
    pub msgmax: u32,
    /// MSGMNB: the default (and unprivileged maximum) `msg_qbytes` of a queue.
    pub msgmnb: u32,
    /// SHMMNI: shared memory segments.
    pub shmmni: u32,
    /// SHMMAX: the largest segment, in bytes.
    pub shmmax: u64,
    /// SHMALL: all segments together, in pages.
    pub shmall: u64,
    /// Process slots: how many processes can use the arena at once.
    pub procs: u32,
    /// Bytes of heap for variable-size records.
    pub heap_bytes: u32,
}

/// The kernel's defaults, with 32,768 process slots and a 64 MiB heap.
pub const DEFAULT_LIMITS: Limits = Limits {
    semmni: 32000,
    semmsl: 32000,
    semmns: 1_024_000_000,
    semopm: 500,
    semvmx: 32767,
    msgmni: 32000,
    msgmax: 8192,
    msgmnb: 16384,
    shmmni: 4096,
    shmmax: u64::MAX - (1 << 24),
    shmall: u64::MAX - (1 << 24),
    procs: 32768,
    heap_bytes: 64 << 20,
};

impl Default for Limits {
    fn default() -> Self {
        DEFAULT_LIMITS
    }
}

/// The most process slots a lock word can name (17 bits of slot number).
pub const MAX_PROCS: u32 = (1 << 17) - 2;

/// A limit out of its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLimit {
    /// The limit's name, as `ipcs -l` and sysctl know it.
    pub name: &'static str,
    /// The value given.
    pub value: u64,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
}

impl fmt::Display for BadLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "limit {} = {} is outside {}..={}",
            self.name, self.value, self.min, self.max
        )
    }
}

impl Limits {
    /// Checks every limit against the range the arena format can hold.
    pub fn validate(&self) -> Result<(), BadLimit> {
        let checks: [(&'static str, u64, u64, u64); 13] = [
            ("semmni", self.semmni.into(), 1, IPCMNI.into()),
            ("semmsl", self.semmsl.into(), 1, 65536),
            ("semmns", self.semmns.into(), 1, i32::MAX as u64),
            ("semopm", self.semopm.into(), 1, 65536),
            ("semvmx", self.semvmx.into(), 1, 32767),
            ("msgmni", self.msgmni.into(), 1, IPCMNI.into()),
            ("msgmax", self.msgmax.into(), 1, i32::MAX as u64),
            ("msgmnb", self.msgmnb.into(), 1, i32::MAX as u64),
            ("shmmni", self.shmmni.into(), 1, IPCMNI.into()),
            ("shmmax", self.shmmax, 1, u64::MAX),
            ("shmall", self.shmall, 1, u64::MAX),
            ("procs", self.procs.into(), 1, MAX_PROCS.into()),
            ("heap_bytes", self.heap_bytes.into(), 4096, 3 << 30),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(BadLimit {
                    name,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }
}
