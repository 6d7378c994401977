//! What arena and segment files need of DragonFly: where arenas live, how
//! files are opened to be named, `MAP_TRYFIXED`, and error numbers.

use std::os::fd::{AsRawFd, OwnedFd};

use usysv_core::Errno;

/// The directory that holds each user's default arena directory. DragonFly
/// mounts a tmpfs at `/var/run/shm` for POSIX shared memory (shm_open(3)),
/// so arenas there live in memory, as under Linux's `/dev/shm`; `/tmp` is
/// often on disk, where every page of the arena would be written back.
pub(crate) const ARENA_ROOT: &str = "/var/run/shm";

/// How to open a file or directory only to name it (`fstat`, the `*at`
/// calls, `fchown`). DragonFly has no `O_PATH`: read-only, which needs read
/// permission, so `IPC_SET` leaves alone a segment file its caller cannot
/// read.
pub(crate) const PATH_ONLY: libc::c_int = libc::O_RDONLY;

/// No mode bit marks a segment file `IPC_SET` changed: DragonFly refuses
/// the sticky bit on a regular file to anyone but the superuser (`EFTYPE`),
/// and the set-id bits would be dangerous on a file that may be executable.
/// So no segment file is taken again: each new segment replaces the one its
/// slot's last segment left.
pub(crate) const CHANGED: Option<libc::mode_t> = None;

/// The `mmap` flag that asks for an address: `MAP_TRYFIXED` from
/// `<sys/mman.h>` (which the libc crate lacks), a hint honoured even inside
/// the range kept for the heap. DragonFly maps elsewhere when the address is
/// taken, and the caller then unmaps and refuses.
pub(crate) const MAP_FIXED_IF_FREE: libc::c_int = 0x0001_0000;

/// Gives the file `fd` (opened with [`PATH_ONLY`]) owner `uid`, group `gid`
/// and mode `mode`, as far as the kernel lets this process. Failures leave
/// the file as it was.
pub(crate) fn change_owner_and_mode(fd: &OwnedFd, uid: u32, gid: u32, mode: libc::mode_t) {
    // SAFETY: `fd` is an open file; both calls only change its metadata.
    unsafe {
        libc::fchown(fd.as_raw_fd(), uid, gid);
        libc::fchmod(fd.as_raw_fd(), mode);
    }
}

/// The core's number for the DragonFly errno `raw` of a failed mapping: the
/// core numbers errors as Linux does. Numbers 1 to 34 are Version 7's on
/// both systems, but for 11 (`EDEADLK` here, `EAGAIN` on Linux); `EAGAIN`
/// moved to 35. Anything else, which `mmap` is not documented to return, is
/// `ENOMEM`, as the kernel fails a segment it cannot back.
pub(crate) fn errno(raw: i32) -> Errno {
    match raw {
        libc::EAGAIN => Errno::EAGAIN,
        1..=34 if raw != libc::EDEADLK => Errno::from_raw(raw),
        _ => Errno::ENOMEM,
    }
}

/// DragonFly's checks of the memory behind a new segment: its kernel
/// checks a segment only against its limits, which the core applies, so
/// none here. `SHM_HUGETLB` and `SHM_NORESERVE` are Linux's and change
/// nothing: the segment is backed by ordinary pages of tmpfs.
pub(crate) fn memory_for(_size: u64, _flags: i32) -> Result<(), Errno> {
    Ok(())
}
