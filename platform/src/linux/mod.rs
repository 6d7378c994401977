//! Linux: shared futexes, `/proc`, and arena files on tmpfs.

mod arena_file;
mod futex;
pub(crate) mod lifecycle;
mod process;
pub(crate) mod segments;

pub use segments::SegmentFiles;

pub use arena_file::{
    default_arena_path, ArenaError, ArenaFile, ArenaProblem, ARENA_ENV, DEFAULT_MODE,
};
pub use process::Credentials;

use core::sync::atomic::AtomicU32;
use std::path::Path;
use std::sync::Arc;

use usysv_core::host::{Deadline, Host, Image, Liveness, ProcessId, Waiter, Wake};

/// The Linux host: futex waits, the monotonic and wall clocks, `/proc` for
/// process identity and liveness, and the files of shared memory segments
/// beside the arena file.
#[derive(Clone, Debug, Default)]
pub struct LinuxHost {
    /// The segment files beside the arena file (none for memory that is not
    /// a file, or whose directory cannot be opened: segments then cannot be
    /// made).
    segments: Option<Arc<SegmentFiles>>,
}

impl LinuxHost {
    /// The host for the arena file at `arena`.
    pub fn for_arena(arena: &Path) -> LinuxHost {
        LinuxHost {
            segments: SegmentFiles::for_arena(arena).ok().map(Arc::new),
        }
    }

    /// The segment files this host keeps beside the arena.
    pub fn segments(&self) -> Option<&SegmentFiles> {
        self.segments.as_deref()
    }
}

impl Waiter for LinuxHost {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
        futex::wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32, count: u32) {
        futex::wake(word, count)
    }

    fn yield_now(&self) {
        std::thread::yield_now();
    }
}

impl Host for LinuxHost {
    fn now(&self) -> Deadline {
        process::monotonic_now()
    }

    fn wall_clock(&self) -> i64 {
        process::wall_clock()
    }

    fn current_process(&self) -> ProcessId {
        process::current()
    }

    fn current_image(&self) -> Image {
        process::image()
    }

    #[inline]
    fn fork_generation(&self) -> u32 {
        process::fork_generation()
    }

    fn liveness(&self, process: ProcessId) -> Liveness {
        process::liveness(process)
    }

    fn may_control(&self, process: ProcessId) -> bool {
        process::may_control(process)
    }

    fn segment_gone(&self, shmid: i32, token: u64) {
        if let Some(segments) = &self.segments {
            segments.remove(shmid, token);
        }
    }
}
