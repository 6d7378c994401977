//! DragonFly BSD: `umtx_sleep` and `umtx_wakeup`, the `kern.proc.pid`
//! sysctl, and arena files on `/var/run/shm`.
//!
//! The arena and segment files, the fork and exit handlers and the host are
//! shared with Linux (`crate::unix`); this module holds what DragonFly does
//! its own way: the wait primitive, process identity, and the file and
//! memory details of segments.
//!
//! There is no DragonFly machine where usysv is built: this layer is
//! type-checked (`cargo +nightly check -Zbuild-std --target
//! x86_64-unknown-dragonfly`), never run.

pub(crate) mod files;
pub(crate) mod process;
mod umtx;

pub(crate) use umtx::{wait, wake};

/// The host on DragonFly: `umtx` waits, the `kern.proc.pid` sysctl for
/// process identity and liveness, and the files of shared memory segments
/// beside the arena file.
pub type DragonFlyHost = crate::SystemHost;
