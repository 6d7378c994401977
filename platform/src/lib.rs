//! The operating-system layers of usysv, and the safe Rust API over the core.
//!
//! The core ([`usysv_core`]) holds every rule of System V IPC and needs from
//! the system only a way to wait on a shared word, a clock, and whether a
//! process lives. This crate supplies them, one small module per system:
//!
//! - Linux ([`linux`]): shared futexes (`FUTEX_WAIT_BITSET`, absolute
//!   `CLOCK_MONOTONIC` deadlines, never `FUTEX_PRIVATE_FLAG`), process
//!   identity from `/proc`, arenas kept in `mmap`'d files on tmpfs, shared
//!   memory segments as files beside them, and the fork and exit handlers
//!   that keep attachment counts and `SEM_UNDO` exact.
//! - [`Ipc`]: the safe Rust API, one method per System V call, and
//!   [`Attachment`], a shared memory attachment that detaches when dropped.
//! - [`UndoList`]: a process's exported `SEM_UNDO` list as text, for
//!   checkpoint/restart ([`Ipc::undo_export`], [`Ipc::undo_import`]).
#![deny(missing_docs)]

#[cfg(target_os = "linux")]
mod ipc;
#[cfg(target_os = "linux")]
pub mod linux;
mod undo;

#[cfg(target_os = "linux")]
pub use ipc::{Attachment, Ipc};
#[cfg(target_os = "linux")]
pub use linux::{default_arena_path, ArenaError, ArenaFile, Credentials, LinuxHost, ARENA_ENV};
pub use undo::{UndoList, UndoParseError};
pub use usysv_core;
