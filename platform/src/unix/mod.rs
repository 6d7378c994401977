//! What the Linux and DragonFly layers share: arenas kept in `mmap`'d files,
//! shared memory segments as files beside them, the fork and exit handlers,
//! the clocks and credentials, and the host built on them.
//!
//! This is POSIX code. What differs by system comes from `crate::os` (the
//! `linux` or `dragonfly` module), which offers the same names on each:
//!
//! - `wait` and `wake`: sleeping on a shared word (futex, `umtx`);
//! - `process`: identity (pid and start time), liveness, the program image,
//!   `may_control`, the thread count, and privileges;
//! - `files`: the default arena directory, how to open a file only to name
//!   it, the checks of the memory behind a new segment, how to map at an
//!   address only if it is free, and the error numbering.

mod arena_file;
mod host;
pub(crate) mod lifecycle;
pub(crate) mod process;
pub(crate) mod segments;

pub use arena_file::{
    default_arena_path, ArenaError, ArenaFile, ArenaProblem, ARENA_ENV, DEFAULT_MODE,
};
pub use host::SystemHost;
pub use process::Credentials;
pub use segments::SegmentFiles;
