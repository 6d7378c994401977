//! Shared memory segment files, and mapping them.
//!
//! Each segment's bytes are a file beside the arena, named after it:
//! `ARENA.shm.ID`. The file is created exclusively with the segment's
//! permission bits and belongs to its creator, so that the kernel itself
//! refuses to open it for a process the segment's mode does not admit, even
//! one that rewrites the arena. It is sized to whole pages (tmpfs keeps it
//! sparse until touched, and a new file reads as zeros) and unlinked when the
//! segment goes; mappings made before then stay valid, as in the kernel.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use usysv_core::shm::{Placement, PAGE_SIZE, SHM_RDONLY, SHM_REMAP, SHM_RND};
use usysv_core::{Errno, IpcPerm};

/// The path of segment `shmid`'s file, for the arena at `arena`.
pub(crate) fn path(arena: &Path, shmid: i32) -> CString {
    let mut name = OsString::from(arena.as_os_str());
    name.push(format!(".shm.{shmid}"));
    // An arena path has no NUL byte (it was opened), and the suffix adds none.
    CString::new(name.into_vec()).unwrap_or_default()
}

/// The errno the last failed system call set.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Makes the file of new segment `shmid`: `size` bytes, rounded up to whole
/// pages, zero-filled, with the permission bits of `perm`. A stale file of
/// this name (left by a process that died) is replaced; a failure is
/// `ENOMEM` (`ENOSPC` when the filesystem is full), as the kernel reports a
/// segment it cannot back.
pub(crate) fn create(
    arena: &Path,
    shmid: i32,
    size: u64,
    perm: &IpcPerm,
) -> Result<Placement, Errno> {
    let path = path(arena, shmid);
    let bytes = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let length = libc::off_t::try_from(bytes).map_err(|_| Errno::ENOMEM)?;
    let mode = perm.mode & 0o777;
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut replaced = false;
    let fd = loop {
        // SAFETY: `path` is a NUL-terminated string; open returns a new fd or -1.
        let fd = unsafe { libc::open(path.as_ptr(), flags, mode as libc::c_uint) };
        if fd >= 0 {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            break unsafe { OwnedFd::from_raw_fd(fd) };
        }
        let errno = last_errno();
        // SAFETY: `path` is a NUL-terminated string.
        if errno == libc::EEXIST && !replaced && unsafe { libc::unlink(path.as_ptr()) } == 0 {
            replaced = true;
            continue;
        }
        return Err(backing_errno(errno));
    };
    // The umask narrowed the mode open applied: set it exactly.
    // SAFETY: `fd` is an open file descriptor.
    let sized = unsafe {
        libc::fchmod(fd.as_raw_fd(), mode) == 0 && libc::ftruncate(fd.as_raw_fd(), length) == 0
    };
    if !sized {
        let errno = last_errno();
        // SAFETY: `path` is a NUL-terminated string.
        unsafe { libc::unlink(path.as_ptr()) };
        return Err(backing_errno(errno));
    }
    Ok(Placement::Host)
}

fn backing_errno(errno: i32) -> Errno {
    match errno {
        libc::ENOSPC | libc::EDQUOT => Errno::ENOSPC,
        _ => Errno::ENOMEM,
    }
}

/// Removes segment `shmid`'s file (it went). Mappings stay valid.
pub(crate) fn remove(arena: &Path, shmid: i32) {
    let path = path(arena, shmid);
    // SAFETY: `path` is a NUL-terminated string.
    unsafe { libc::unlink(path.as_ptr()) };
}

/// After `IPC_SET`: gives the file the segment's new permission bits, and
/// its new owner where the process may. The kernel lets only the file's
/// owner (or a privileged process) do either; otherwise the file keeps what
/// it had and the segment's new mode governs only usysv's own checks.
pub(crate) fn set_owner_and_mode(arena: &Path, shmid: i32, uid: u32, gid: u32, mode: u32) {
    let path = path(arena, shmid);
    // SAFETY: `path` is a NUL-terminated string; both calls only change
    // the file's metadata, and failures are left as documented.
    unsafe {
        libc::chown(path.as_ptr(), uid, gid);
        libc::chmod(path.as_ptr(), mode & 0o777);
    }
}

/// Opens segment `shmid`'s file to map it: read-only or read-write. The
/// kernel checks the file's mode: `EACCES`. A file already gone means the
/// segment went: `EINVAL`, as for an id that names nothing.
pub(crate) fn open(arena: &Path, shmid: i32, writable: bool) -> Result<OwnedFd, Errno> {
    let path = path(arena, shmid);
    let access = if writable {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    };
    // SAFETY: `path` is a NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), access | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(match last_errno() {
            libc::EACCES | libc::EPERM => Errno::EACCES,
            libc::ENOENT => Errno::EINVAL,
            _ => Errno::ENOMEM,
        });
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SHMLBA: the alignment an attach address needs (the page size on Linux's
/// common architectures).
pub(crate) fn shmlba() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(PAGE_SIZE as usize)
}

/// The address `shmat` asks for, checked as Linux `do_shmat` checks it
/// before anything else: `None` for the system's choice (address 0), or the
/// fixed address `addr`, aligned to SHMLBA (rounded down with `SHM_RND`,
/// possibly to 0, which the mapping then refuses); `SHM_REMAP` needs an
/// address.
pub(crate) fn attach_address(addr: usize, flags: i32) -> Result<Option<usize>, Errno> {
    let lba = shmlba();
    if addr == 0 {
        if flags & SHM_REMAP != 0 {
            return Err(Errno::EINVAL);
        }
        return Ok(None);
    }
    if addr % lba == 0 {
        return Ok(Some(addr));
    }
    if flags & SHM_RND == 0 {
        return Err(Errno::EINVAL);
    }
    let rounded = addr - addr % lba;
    if rounded == 0 && flags & SHM_REMAP != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(rounded))
}

/// Maps `len` bytes of `fd` shared, anywhere or at the fixed address `at`
/// (replacing what is mapped there only with `SHM_REMAP`), and returns the
/// address. An occupied address is `EINVAL`, as in the kernel; other
/// failures are the mapping's own errno.
pub(crate) fn map(
    fd: &OwnedFd,
    at: Option<usize>,
    len: usize,
    flags: i32,
    exec: bool,
) -> Result<usize, Errno> {
    let mut prot = libc::PROT_READ;
    if flags & SHM_RDONLY == 0 {
        prot |= libc::PROT_WRITE;
    }
    if exec {
        prot |= libc::PROT_EXEC;
    }
    let mut map_flags = libc::MAP_SHARED;
    if at.is_some() {
        map_flags |= if flags & SHM_REMAP != 0 {
            libc::MAP_FIXED
        } else {
            libc::MAP_FIXED_NOREPLACE
        };
    }
    let addr = at.unwrap_or(0);
    // SAFETY: maps a file this process opened. Without SHM_REMAP nothing
    // mapped is replaced (MAP_FIXED_NOREPLACE, or no fixed address); with
    // it the caller of the unsafe `shmat` entry point answered for the
    // memory at `addr`.
    let mapped = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            map_flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return Err(match last_errno() {
            libc::EEXIST => Errno::EINVAL,
            errno => Errno::from_raw(errno),
        });
    }
    let mapped = mapped as usize;
    if at.is_some() && mapped != addr {
        // A kernel older than MAP_FIXED_NOREPLACE took it as a hint.
        unmap(mapped, len);
        return Err(Errno::EINVAL);
    }
    Ok(mapped)
}

/// Unmaps an attachment.
pub(crate) fn unmap(addr: usize, len: usize) {
    // SAFETY: `addr..addr + len` is an attachment this process mapped and
    // whose record it just ended; nothing may use it any more (the callers'
    // contracts).
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
}

/// The length mapped for a segment of `segsz` bytes.
pub(crate) fn mapped_len(segsz: u64) -> Result<usize, Errno> {
    usize::try_from(segsz.div_ceil(PAGE_SIZE) * PAGE_SIZE).map_err(|_| Errno::ENOMEM)
}

/// Whether `name` (a file name in the arena's directory) is one of the
/// arena's segment files, and of which segment.
pub(crate) fn segment_of(arena_name: &[u8], name: &[u8]) -> Option<i32> {
    let rest = name.strip_prefix(arena_name)?.strip_prefix(b".shm.")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Removes every segment file of the arena at `arena` (when the arena itself
/// goes).
pub(crate) fn remove_all(arena: &Path) {
    let (Some(dir), Some(name)) = (arena.parent(), arena.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(shmid) = segment_of(name.as_bytes(), entry.file_name().as_bytes()) {
            remove(arena, shmid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_addresses_follow_do_shmat() {
        let lba = shmlba();
        assert_eq!(attach_address(0, 0), Ok(None));
        assert_eq!(attach_address(0, SHM_REMAP), Err(Errno::EINVAL));
        assert_eq!(attach_address(5 * lba, 0), Ok(Some(5 * lba)));
        assert_eq!(attach_address(5 * lba + 1, 0), Err(Errno::EINVAL));
        assert_eq!(attach_address(5 * lba + 1, SHM_RND), Ok(Some(5 * lba)));
        assert_eq!(attach_address(1, SHM_RND), Ok(Some(0)));
        assert_eq!(attach_address(1, SHM_RND | SHM_REMAP), Err(Errno::EINVAL));
    }

    #[test]
    fn segment_file_names_belong_to_their_arena() {
        assert_eq!(segment_of(b"arena", b"arena.shm.65536"), Some(65536));
        assert_eq!(segment_of(b"arena", b"arena2.shm.1"), None);
        assert_eq!(segment_of(b"arena", b"arena.shm.x"), None);
        assert_eq!(segment_of(b"arena", b"arena"), None);
    }
}
