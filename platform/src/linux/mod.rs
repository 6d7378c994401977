//! Linux: shared futexes, `/proc`, and arena files on `/dev/shm`.
//!
//! The arena and segment files, the fork and exit handlers and the host are
//! shared with DragonFly (`crate::unix`); this module holds what only Linux
//! has: the futex, process identity and capabilities from `/proc`, and the
//! file and memory details of segments.

pub(crate) mod files;
mod futex;
pub(crate) mod process;

pub(crate) use futex::{wait, wake};

/// The host on Linux: futex waits, `/proc` for process identity and
/// liveness, and the files of shared memory segments beside the arena file.
pub type LinuxHost = crate::SystemHost;
