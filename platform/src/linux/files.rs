//! What arena and segment files need of Linux: where arenas live, `O_PATH`,
//! the sticky bit as a mark, `MAP_FIXED_NOREPLACE`, and the kernel's checks
//! of the memory behind a segment.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use usysv_core::shm::{SHM_HUGETLB, SHM_NORESERVE};
use usysv_core::Errno;

/// The directory that holds each user's default arena directory: the tmpfs
/// every Linux system mounts for POSIX shared memory.
pub(crate) const ARENA_ROOT: &str = "/dev/shm";

/// How to open a file or directory only to name it (`fstat`, the `*at`
/// calls, `fchownat`), which needs no permission on the file itself.
pub(crate) const PATH_ONLY: libc::c_int = libc::O_PATH;

/// The mode bit that marks a segment file `IPC_SET` changed, so that it is
/// never taken for another segment: the sticky bit, which Linux ignores on
/// a regular file.
pub(crate) const CHANGED: Option<libc::mode_t> = Some(libc::S_ISVTX);

/// The `mmap` flag that maps at an address only if nothing is mapped there.
pub(crate) const MAP_FIXED_IF_FREE: libc::c_int = libc::MAP_FIXED_NOREPLACE;

/// Gives the file `fd` (opened with [`PATH_ONLY`]) owner `uid`, group `gid`
/// and mode `mode`, as far as the kernel lets this process: chown through
/// the descriptor itself, chmod through its `/proc` link (`fchmod` refuses
/// an `O_PATH` descriptor). Failures leave the file as it was.
pub(crate) fn change_owner_and_mode(fd: &OwnedFd, uid: u32, gid: u32, mode: libc::mode_t) {
    let link = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    // SAFETY: an empty path with AT_EMPTY_PATH names `fd`'s file, and
    // `link` is a NUL-terminated path to it; both calls only change the
    // file's metadata.
    unsafe {
        libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH);
        if let Ok(link) = link {
            libc::fchmodat(libc::AT_FDCWD, link.as_ptr(), mode, 0);
        }
    }
}

/// The core's number for the Linux errno `raw`: the same, as the core
/// numbers errors as Linux does.
pub(crate) fn errno(raw: i32) -> Errno {
    Errno::from_raw(raw)
}

/// Sizes below this are never refused for want of memory: the checks below
/// read `/proc` and need not run for them.
const SMALL: u64 = 16 << 20;

/// Linux's checks of the memory behind a new segment of `size` bytes: with
/// `SHM_HUGETLB`, `ENOMEM` unless enough huge pages are free (the segment is
/// then backed by ordinary pages); and, unless `SHM_NORESERVE`, the memory
/// accounting of `vm.overcommit_memory`: `ENOMEM` for more than memory and
/// swap together (0, the default), never (1), or past the commit limit (2).
pub(crate) fn memory_for(size: u64, flags: i32) -> Result<(), Errno> {
    if flags & SHM_HUGETLB != 0 {
        let huge_page = meminfo("Hugepagesize:").unwrap_or(2048) * 1024;
        let free = meminfo("HugePages_Free:").unwrap_or(0);
        if size.div_ceil(huge_page.max(1)) > free {
            return Err(Errno::ENOMEM);
        }
        return Ok(());
    }
    if size < SMALL {
        return Ok(());
    }
    let policy = std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let fits = match policy {
        1 => true,
        2 => {
            let limit = meminfo("CommitLimit:").unwrap_or(u64::MAX / 1024);
            let committed = meminfo("Committed_AS:").unwrap_or(0);
            size / 1024 <= limit.saturating_sub(committed)
        }
        _ if flags & SHM_NORESERVE != 0 => true,
        _ => {
            let total = meminfo("MemTotal:").unwrap_or(u64::MAX / 1024);
            let swap = meminfo("SwapTotal:").unwrap_or(0);
            size / 1024 <= total.saturating_add(swap)
        }
    };
    if fits {
        Ok(())
    } else {
        Err(Errno::ENOMEM)
    }
}

/// A figure from `/proc/meminfo` (kB, or a count).
fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}
