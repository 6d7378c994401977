//! The host: this system's wait primitive, clocks, process identity, and the
//! segment files beside the arena file.

use core::sync::atomic::AtomicU32;
use std::path::Path;
use std::sync::Arc;

use usysv_core::host::{Deadline, Host, Image, Liveness, ProcessId, Waiter, Wake};

use super::{lifecycle, process, SegmentFiles};
use crate::os;

/// The host usysv runs on here: waits on this system's primitive (a shared
/// futex on Linux, `umtx` on DragonFly), the monotonic and wall clocks, the
/// system's view of process identity and liveness, and the files of shared
/// memory segments beside the arena file.
#[derive(Clone, Debug, Default)]
pub struct SystemHost {
    /// The segment files beside the arena file (none for memory that is not
    /// a file, or whose directory cannot be opened: segments then cannot be
    /// made).
    segments: Option<Arc<SegmentFiles>>,
}

impl SystemHost {
    /// The host for the arena file at `arena`.
    pub fn for_arena(arena: &Path) -> SystemHost {
        SystemHost {
            segments: SegmentFiles::for_arena(arena).ok().map(Arc::new),
        }
    }

    /// The segment files this host keeps beside the arena.
    pub fn segments(&self) -> Option<&SegmentFiles> {
        self.segments.as_deref()
    }
}

impl Waiter for SystemHost {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
        os::wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32, count: u32) {
        os::wake(word, count)
    }

    fn yield_now(&self) {
        std::thread::yield_now();
    }
}

impl Host for SystemHost {
    fn now(&self) -> Deadline {
        process::monotonic_now()
    }

    fn wall_clock(&self) -> i64 {
        process::wall_clock()
    }

    fn current_process(&self) -> ProcessId {
        // Every namespace asks for the current process when it registers, so
        // the fork handlers are in place before any fork it could see.
        lifecycle::install();
        os::process::current()
    }

    fn current_image(&self) -> Image {
        os::process::image()
    }

    #[inline]
    fn fork_generation(&self) -> u32 {
        lifecycle::fork_generation()
    }

    fn liveness(&self, process: ProcessId) -> Liveness {
        os::process::liveness(process)
    }

    fn may_control(&self, process: ProcessId) -> bool {
        os::process::may_control(process)
    }

    fn segment_gone(&self, shmid: i32, token: u64) {
        if let Some(segments) = &self.segments {
            segments.remove(shmid, token);
        }
    }
}
