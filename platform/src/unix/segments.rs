//! Shared memory segment files, and mapping them.
//!
//! Each segment's bytes are a file beside the arena, named after its slot
//! index and its creator's user id: `ARENA.shm.INDEX.UID` (reached through
//! the directory, held open). The file is created exclusively with the
//! segment's permission bits and belongs to its creator, so that the kernel
//! itself refuses to open it for a process the segment's mode does not
//! admit, even one that rewrites the arena. It is sized to whole pages
//! (tmpfs keeps it sparse until touched).
//!
//! When the segment goes, its file is emptied (truncated to nothing, which
//! frees its pages; mappings made before then would see the end of the
//! file, and usysv leaves none), not removed: the next segment of that slot
//! and creator, with the same group and permission bits, takes the empty
//! file and sizes it, so it reads as zeros, and a segment's whole life
//! creates and unlinks no file. A file that is not empty, not exactly as
//! the new segment needs it, or changed by `IPC_SET` since it was made, is
//! replaced: no process that opened it could open less than the new one.
//! (On DragonFly, which offers no mark for a changed file, every file is
//! replaced: see [`os::files::CHANGED`].)
//!
//! A segment's token ([`Placement::Host`]) is its creator's uid (which
//! names the file) and the file's inode number (which tells the file from
//! any other that later takes the name). The files this process made stay
//! open (a few of them) while their segments live, so that its own attaches
//! and removals skip the path lookup.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use usysv_core::limits::IPCMNI;
use usysv_core::shm::{Placement, PAGE_SIZE, SHM_RDONLY, SHM_REMAP, SHM_RND};
use usysv_core::{Errno, IpcPerm};

use crate::os;

/// Files a process made and keeps open, at most.
const KEPT: usize = 16;

/// A file this process made, kept open while its segment lives.
#[derive(Debug)]
struct Kept {
    token: u64,
    fd: OwnedFd,
}

/// The segment files of one arena: its directory, open, and the arena's
/// file name, which segment file names start with.
#[derive(Debug)]
pub struct SegmentFiles {
    dir: OwnedFd,
    dir_path: PathBuf,
    arena_name: Vec<u8>,
    made: Mutex<Vec<Kept>>,
}

/// Room for a file name (NAME_MAX), the suffix and the NUL.
const NAME_ROOM: usize = 255 + 32;

/// A segment file's name, NUL-terminated.
struct Name([u8; NAME_ROOM]);

impl Name {
    fn as_ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }
}

/// The token of a segment whose file `uid` made, with inode number `ino`.
fn token(uid: u32, ino: u64) -> u64 {
    u64::from(uid) << 32 | (ino & 0xffff_ffff)
}

/// Whether inode number `ino` is the one `token` names.
fn same_file(token: u64, ino: u64) -> bool {
    token & 0xffff_ffff == ino & 0xffff_ffff
}

/// Segment `shmid`'s slot index.
fn index_of(shmid: i32) -> u32 {
    shmid as u32 % IPCMNI
}

/// The errno the last failed system call set.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `fstat` of an open file.
fn stat(fd: &OwnedFd) -> Option<libc::stat> {
    // SAFETY: `stat` is plain data for fstat to fill.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; `stat` is valid to write.
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } == 0).then_some(stat)
}

/// The inode number of the empty file `fd`, if a new segment of `perm`
/// with permission bits `mode` may take it: a regular file still in the
/// directory, empty, its creator's, of its group, with exactly those bits
/// (and never changed by `IPC_SET`, which marks a file with
/// [`os::files::CHANGED`]), so that no one could have opened it who may not
/// open the new segment's. Where the system has no such mark, no file is
/// taken again.
fn reusable(fd: &OwnedFd, perm: &IpcPerm, mode: u32) -> Option<u64> {
    os::files::CHANGED?;
    let stat = stat(fd)?;
    let fits = stat.st_mode & libc::S_IFMT == libc::S_IFREG
        && stat.st_nlink == 1
        && stat.st_size == 0
        && stat.st_uid == perm.cuid
        && stat.st_gid == perm.cgid
        && stat.st_mode & 0o7777 == mode as libc::mode_t;
    fits.then_some(stat.st_ino)
}

/// Opens `name` in directory `dir` with `flags` (and `mode`, when it
/// creates the file).
fn open_at(dir: &OwnedFd, name: &Name, flags: i32, mode: u32) -> Result<OwnedFd, i32> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a NUL-terminated string; openat returns a new fd
    // or -1.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl SegmentFiles {
    /// The segment files of the arena file at `arena`.
    pub fn for_arena(arena: &Path) -> std::io::Result<SegmentFiles> {
        let dir = match arena.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        // Absolute, so that listing the files still works after a chdir.
        let dir_path = std::path::absolute(dir)?;
        let dir = CString::new(dir.as_os_str().as_bytes())?;
        let flags = os::files::PATH_ONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: `dir` is a NUL-terminated string.
        let fd = unsafe { libc::open(dir.as_ptr(), flags) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let arena_name = arena.file_name().unwrap_or_default().as_bytes().to_vec();
        Ok(SegmentFiles {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            dir: unsafe { OwnedFd::from_raw_fd(fd) },
            dir_path,
            arena_name,
            made: Mutex::new(Vec::new()),
        })
    }

    /// The file name of slot `index`'s segments made by `uid`,
    /// `ARENA.shm.INDEX.UID`, NUL-terminated, built without allocating (a
    /// file name is at most 255 bytes).
    fn name(&self, index: u32, uid: u32) -> Name {
        use std::io::Write;
        let mut name = Name([0; NAME_ROOM]);
        let mut rest = &mut name.0[..NAME_ROOM - 1];
        let fits = rest
            .write_all(&self.arena_name)
            .and_then(|()| write!(rest, ".shm.{index}.{uid}"))
            .is_ok();
        if !fits {
            // Never a name cut short (it could be another segment's): an
            // empty one, which names no file.
            name.0[0] = 0;
        }
        name
    }

    /// Runs `work` with the file this process keeps for `token`'s segment,
    /// if it keeps one.
    fn with_kept<T>(&self, token: u64, work: impl FnOnce(&OwnedFd) -> T) -> Option<T> {
        let made = self.made.try_lock().ok()?;
        made.iter()
            .find(|kept| kept.token == token)
            .map(|kept| work(&kept.fd))
    }

    /// Makes the file of new segment `shmid`: `size` bytes, rounded up to
    /// whole pages, zero-filled, with the permission bits of `perm`, after
    /// the system's checks of the memory behind a segment (see
    /// `memory_for`; `flags` are `shmget`'s). The empty file the slot's last
    /// segment by this creator left is taken if it fits, else replaced; a
    /// failure is `ENOMEM` (`ENOSPC` when the filesystem is full), as the
    /// kernel reports a segment it cannot back.
    pub fn create(
        &self,
        shmid: i32,
        size: u64,
        flags: i32,
        perm: &IpcPerm,
    ) -> Result<Placement, Errno> {
        memory_for(size, flags)?;
        let index = index_of(shmid);
        let bytes = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let length = libc::off_t::try_from(bytes).map_err(|_| Errno::EINVAL)?;
        let mode = perm.mode & 0o777;
        let (fd, ino) = self.open_file(index, perm, mode)?;
        // SAFETY: `fd` is an open file descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), length) } != 0 {
            return Err(backing_errno(last_errno()));
        }
        let token = token(perm.cuid, ino);
        if let Ok(mut made) = self.made.try_lock() {
            if made.len() == KEPT {
                made.remove(0);
            }
            made.push(Kept { token, fd });
        }
        Ok(Placement::Host(token))
    }

    /// Opens slot `index`'s file for a new segment of `perm`: the empty
    /// one left there if it fits, else a new one (replacing one that does
    /// not). Returns it and its inode number.
    fn open_file(&self, index: u32, perm: &IpcPerm, mode: u32) -> Result<(OwnedFd, u64), Errno> {
        let name = self.name(index, perm.cuid);
        match open_at(&self.dir, &name, libc::O_RDWR, 0) {
            Ok(fd) => {
                if let Some(ino) = reusable(&fd, perm, mode) {
                    return Ok((fd, ino));
                }
            }
            Err(libc::ENOENT) => return self.create_file(&name, mode).map_err(backing_errno),
            Err(_) => {}
        }
        // Not one to take (a segment's whose remover has not emptied it
        // yet, or not as this one needs it): replaced.
        // SAFETY: `name` is a NUL-terminated string.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
        self.create_file(&name, mode).map_err(backing_errno)
    }

    /// Creates the file `name` with exactly the permission bits `mode`
    /// (whatever the umask): it and its inode number, or the errno.
    fn create_file(&self, name: &Name, mode: u32) -> Result<(OwnedFd, u64), i32> {
        let fd = open_at(
            &self.dir,
            name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            mode,
        )?;
        // SAFETY: `fd` is an open file descriptor.
        let moded = unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } == 0;
        if let Some(stat) = stat(&fd).filter(|_| moded) {
            return Ok((fd, stat.st_ino));
        }
        let errno = last_errno();
        // SAFETY: `name` is a NUL-terminated string.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
        Err(errno)
    }

    /// Empties segment `shmid`'s file (it went), freeing its pages, for the
    /// slot's next segment. By name, only a file that is still the
    /// segment's, and only if this process may write it (otherwise the next
    /// segment of the slot replaces it).
    pub fn remove(&self, shmid: i32, token: u64) {
        let kept = self.made.try_lock().ok().and_then(|mut made| {
            let at = made.iter().position(|kept| kept.token == token)?;
            Some(made.remove(at).fd)
        });
        if let Some(fd) = kept {
            // SAFETY: `fd` is an open file descriptor.
            unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
            return;
        }
        let name = self.name(index_of(shmid), (token >> 32) as u32);
        if let Ok(fd) = open_at(&self.dir, &name, libc::O_WRONLY, 0) {
            if stat(&fd).is_some_and(|stat| same_file(token, stat.st_ino)) {
                // SAFETY: `fd` is an open file descriptor.
                unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
            }
        }
    }

    /// After `IPC_SET` of segment `shmid` (whose token is `token`): gives
    /// the file the segment's new permission bits, and its new owner where
    /// the process may, and marks it changed (`os::files::CHANGED`). The
    /// kernel lets only the file's owner (or a privileged process) do either;
    /// otherwise the file keeps what it had and the segment's new mode
    /// governs only usysv's own checks.
    pub fn set_owner_and_mode(&self, shmid: i32, token: u64, uid: u32, gid: u32, mode: u32) {
        let name = self.name(index_of(shmid), (token >> 32) as u32);
        let Ok(fd) = open_at(&self.dir, &name, os::files::PATH_ONLY, 0) else {
            return;
        };
        if !stat(&fd).is_some_and(|stat| same_file(token, stat.st_ino)) {
            return;
        }
        // The file checked, not whatever the name holds by now.
        let mode = (mode & 0o777) as libc::mode_t | os::files::CHANGED.unwrap_or(0);
        os::files::change_owner_and_mode(&fd, uid, gid, mode);
    }

    /// Maps segment `shmid`'s file (see `map`): the one this process keeps,
    /// if `token` names it, else the file opened read-only or read-write, as
    /// the kernel lets this process (`EACCES`). A file already gone means the
    /// segment went: `EINVAL`, as for an id that names nothing. (A file that
    /// another segment took meanwhile is mapped, and the caller, finding the
    /// segment gone, unmaps it.)
    pub fn map(
        &self,
        shmid: i32,
        token: u64,
        at: Option<usize>,
        len: usize,
        flags: i32,
        exec: bool,
    ) -> Result<usize, Errno> {
        if let Some(mapped) = self.with_kept(token, |fd| map(fd, at, len, flags, exec)) {
            return mapped;
        }
        let name = self.name(index_of(shmid), (token >> 32) as u32);
        let access = if flags & SHM_RDONLY == 0 {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let fd = open_at(&self.dir, &name, access, 0).map_err(|errno| match errno {
            libc::EACCES | libc::EPERM => Errno::EACCES,
            libc::ENOENT => Errno::EINVAL,
            _ => Errno::ENOMEM,
        })?;
        map(&fd, at, len, flags, exec)
    }

    /// Pages the arena's segment files hold in memory (`shm_rss`): tmpfs
    /// allocates a page at its first touch, and the file's blocks say how
    /// many it has (an emptied file has none).
    pub fn resident_pages(&self) -> u64 {
        let mut pages = 0;
        self.each_file(|name| {
            // SAFETY: `stat` is plain data for fstatat to fill.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `name` is a NUL-terminated file name in the directory;
            // `stat` is valid to write.
            let found = unsafe {
                libc::fstatat(
                    self.dir.as_raw_fd(),
                    name.as_ptr(),
                    &mut stat,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            } == 0;
            if found {
                pages += (stat.st_blocks as u64 * 512).div_ceil(PAGE_SIZE);
            }
        });
        pages
    }

    /// Calls `each` with the name of every segment file of the arena.
    fn each_file(&self, mut each: impl FnMut(&Name)) {
        let Ok(entries) = std::fs::read_dir(&self.dir_path) else {
            return;
        };
        for entry in entries.flatten() {
            if let Some((index, uid)) = segment_of(&self.arena_name, entry.file_name().as_bytes()) {
                let name = self.name(index, uid);
                // Only the name usysv makes: not another spelling of the
                // numbers (`05`, `+5`) that would count one file twice.
                if name.0.split(|&b| b == 0).next() == Some(entry.file_name().as_bytes()) {
                    each(&name);
                }
            }
        }
    }

    /// Removes every segment file of the arena at `arena` (when the arena
    /// itself goes).
    pub fn remove_all(arena: &Path) {
        let Ok(files) = SegmentFiles::for_arena(arena) else {
            return;
        };
        files.each_file(|name| {
            // SAFETY: `name` is a NUL-terminated file name in the directory.
            unsafe { libc::unlinkat(files.dir.as_raw_fd(), name.as_ptr(), 0) };
        });
    }
}

/// The checks of the memory behind a new segment of `size` bytes (`flags`
/// are `shmget`'s): `EINVAL` past the largest file, then the system's own
/// ([`os::files::memory_for`]).
fn memory_for(size: u64, flags: i32) -> Result<(), Errno> {
    if size > i64::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    os::files::memory_for(size, flags)
}

fn backing_errno(errno: i32) -> Errno {
    match errno {
        libc::ENOSPC | libc::EDQUOT => Errno::ENOSPC,
        _ => Errno::ENOMEM,
    }
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
            os::files::MAP_FIXED_IF_FREE
        };
    }
    let addr = at.unwrap_or(0);
    // SAFETY: maps a file this process opened. Without SHM_REMAP nothing
    // mapped is replaced (MAP_FIXED_IF_FREE, or no fixed address); with
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
            errno => os::files::errno(errno),
        });
    }
    let mapped = mapped as usize;
    if at.is_some() && mapped != addr {
        // Taken as a hint: by a Linux older than MAP_FIXED_NOREPLACE, or
        // on DragonFly, which maps elsewhere when the address is taken.
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
/// arena's segment files, and of which slot index and creator.
pub(crate) fn segment_of(arena_name: &[u8], name: &[u8]) -> Option<(u32, u32)> {
    let rest = name.strip_prefix(arena_name)?.strip_prefix(b".shm.")?;
    let (index, uid) = std::str::from_utf8(rest).ok()?.split_once('.')?;
    let index = index.parse().ok().filter(|&index| index < IPCMNI)?;
    Some((index, uid.parse().ok()?))
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
        assert_eq!(segment_of(b"arena", b"arena.shm.5.1000"), Some((5, 1000)));
        assert_eq!(segment_of(b"arena", b"arena.shm.32767.0"), Some((32767, 0)));
        assert_eq!(segment_of(b"arena", b"arena.shm.32768.0"), None);
        assert_eq!(segment_of(b"arena", b"arena.shm.65536"), None);
        assert_eq!(segment_of(b"arena", b"arena2.shm.1.0"), None);
        assert_eq!(segment_of(b"arena", b"arena.shm.x.0"), None);
        assert_eq!(segment_of(b"arena", b"arena"), None);
    }

    #[test]
    fn a_token_names_the_creator_and_tells_the_file() {
        let t = token(1000, 0x1_2345_6789);
        assert_eq!(t >> 32, 1000);
        assert!(same_file(t, 0x2345_6789));
        assert!(!same_file(t, 0x2345_6788));
    }
}
