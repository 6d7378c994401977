//! The operating-system layers of usysv, and the safe Rust API over the core.
//!
//! The core ([`usysv_core`]) holds every rule of System V IPC and needs from
//! the system only a way to wait on a shared word, a clock, and whether a
//! process lives. This crate supplies them, one small module per system over
//! the POSIX code they share:
//!
//! - Linux and DragonFly alike: arenas kept in `mmap`'d files on tmpfs
//!   ([`ArenaFile`]), shared memory segments as files beside them
//!   ([`SegmentFiles`]), the fork and exit handlers that keep attachment
//!   counts and `SEM_UNDO` exact, and the host built on them
//!   ([`SystemHost`]).
//! - Linux (`linux`): shared futexes (`FUTEX_WAIT_BITSET`, absolute
//!   `CLOCK_MONOTONIC` deadlines, never `FUTEX_PRIVATE_FLAG`), process
//!   identity and capabilities from `/proc`.
//! - DragonFly BSD (`dragonfly`): `umtx_sleep` and `umtx_wakeup`, process
//!   identity from the `kern.proc.pid` sysctl. Only type-checked so far.
//! - [`Ipc`]: the safe Rust API, one method per System V call, and
//!   [`Attachment`], a shared memory attachment that detaches when dropped.
//! - [`UndoList`]: a process's exported `SEM_UNDO` list as text, for
//!   checkpoint/restart ([`Ipc::undo_export`], [`Ipc::undo_import`]).
#![deny(missing_docs)]

#[cfg(target_os = "dragonfly")]
pub mod dragonfly;
#[cfg(any(target_os = "linux", target_os = "dragonfly"))]
mod ipc;
#[cfg(target_os = "linux")]
pub mod linux;
mod undo;
#[cfg(any(target_os = "linux", target_os = "dragonfly"))]
mod unix;

/// This system's layer, which `unix` builds on.
#[cfg(target_os = "dragonfly")]
use dragonfly as os;
/// This system's layer, which `unix` builds on.
#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_os = "dragonfly")]
pub use dragonfly::DragonFlyHost;
#[cfg(any(target_os = "linux", target_os = "dragonfly"))]
pub use ipc::{Attachment, Ipc};
#[cfg(target_os = "linux")]
pub use linux::LinuxHost;
pub use undo::{UndoList, UndoParseError};
#[cfg(any(target_os = "linux", target_os = "dragonfly"))]
pub use unix::{
    default_arena_path, ArenaError, ArenaFile, ArenaProblem, Credentials, SegmentFiles, SystemHost,
    ARENA_ENV, DEFAULT_MODE,
};
pub use usysv_core;
