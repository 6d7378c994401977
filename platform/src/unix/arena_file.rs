//! Arena files: where they live, how they are created and opened, and the
//! mapping that holds one in memory.
//!
//! # Where
//!
//! `USYSV_ARENA` names the arena file. Without it, each user has a default
//! arena, `ROOT/usysv-UID/arena`, where `ROOT` is the system's tmpfs
//! (`/dev/shm` on Linux, `/var/run/shm` on DragonFly), in a directory of
//! mode 0700 that must belong to that user (a directory someone else made,
//! or one open to others, is refused: whoever controls it controls the
//! arena). The file's own mode is 0600 unless the creator asks for another.
//!
//! # Creation
//!
//! Opening an arena that does not exist creates it. The creator formats a
//! private temporary file beside the final path and publishes it with
//! `link(2)`, which fails if another process published first; the loser
//! discards its copy and opens the winner's. A path thus only ever names a
//! whole, formatted arena, however many processes race to create it.
//!
//! The file is sparse: `ftruncate` sizes it from the limits, and tmpfs backs
//! only the pages that are touched. If the filesystem fills up, touching a new
//! page raises `SIGBUS`, as with any mapped file; keep the heap within what
//! the filesystem can hold.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;

use usysv_core::format::{format_memory, FormatError};
use usysv_core::{Limits, Namespace, OpenError};

use super::{process, SegmentFiles, SystemHost};
use crate::os;

/// The environment variable that names the arena file.
pub const ARENA_ENV: &str = "USYSV_ARENA";

/// The default mode of a new arena file.
pub const DEFAULT_MODE: u32 = 0o600;

/// What went wrong with an arena file.
#[derive(Debug)]
pub enum ArenaProblem {
    /// A system call failed.
    Io(&'static str, std::io::Error),
    /// The file is not a usable arena.
    Format(FormatError),
    /// Every process slot is taken.
    NoProcessSlot,
    /// The directory that holds the default arena is not safe to use.
    UnsafeDirectory(&'static str),
    /// The file exists (when creation was asked for).
    Exists,
}

/// An error about one arena file: its path and the problem, shown on one line.
#[derive(Debug)]
pub struct ArenaError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: ArenaProblem,
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match &self.problem {
            ArenaProblem::Io(call, err) => write!(f, "{call}: {err}"),
            ArenaProblem::Format(err) => err.fmt(f),
            ArenaProblem::NoProcessSlot => OpenError::NoProcessSlot.fmt(f),
            ArenaProblem::UnsafeDirectory(why) => write!(f, "refusing to use it: {why}"),
            ArenaProblem::Exists => f.write_str("an arena already exists here"),
        }
    }
}

impl std::error::Error for ArenaError {}

impl ArenaError {
    fn new(path: &Path, problem: ArenaProblem) -> ArenaError {
        ArenaError {
            path: path.to_path_buf(),
            problem,
        }
    }

    fn io(path: &Path, call: &'static str) -> ArenaError {
        Self::new(
            path,
            ArenaProblem::Io(call, std::io::Error::last_os_error()),
        )
    }

    /// The errno behind an I/O problem, if that is what it is.
    pub fn raw_os_error(&self) -> Option<i32> {
        match &self.problem {
            ArenaProblem::Io(_, err) => err.raw_os_error(),
            _ => None,
        }
    }
}

/// The arena path this process uses: `USYSV_ARENA`, or the user's default
/// under the system's tmpfs (`/dev/shm` on Linux, `/var/run/shm` on
/// DragonFly), whose directory is created and checked.
pub fn default_arena_path() -> Result<PathBuf, ArenaError> {
    if let Some(path) = std::env::var_os(ARENA_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let dir = Path::new(os::files::ARENA_ROOT).join(format!("usysv-{uid}"));
    ensure_private_dir(&dir, uid)?;
    Ok(dir.join("arena"))
}

fn ensure_private_dir(dir: &Path, uid: u32) -> Result<(), ArenaError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(ArenaError::new(dir, ArenaProblem::Io("mkdir", err))),
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|err| ArenaError::new(dir, ArenaProblem::Io("lstat", err)))?;
    let why = if !meta.file_type().is_dir() {
        Some("it is not a directory")
    } else if meta.uid() != uid {
        Some("the directory belongs to another user")
    } else if meta.mode() & 0o077 != 0 {
        Some("the directory is open to other users (it must be mode 0700)")
    } else {
        None
    };
    match why {
        Some(why) => Err(ArenaError::new(dir, ArenaProblem::UnsafeDirectory(why))),
        None => Ok(()),
    }
}

fn c_path(path: &Path) -> Result<CString, ArenaError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        ArenaError::new(
            path,
            ArenaProblem::Io("path", std::io::Error::from_raw_os_error(libc::EINVAL)),
        )
    })
}

/// An arena file mapped into this process (`MAP_SHARED`, read and write).
pub struct ArenaFile {
    path: PathBuf,
    fd: libc::c_int,
    base: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is shared memory accessed only as atomics (through
// `words`); the pointer is not tied to any thread.
unsafe impl Send for ArenaFile {}
// SAFETY: as above: every access through `&ArenaFile` is to atomics.
unsafe impl Sync for ArenaFile {}

impl ArenaFile {
    /// Opens the arena at `path`, creating it with `limits` and file mode
    /// `mode` if there is none.
    pub fn open_or_create(
        path: &Path,
        limits: &Limits,
        mode: u32,
    ) -> Result<ArenaFile, ArenaError> {
        match Self::open(path) {
            Err(ArenaError {
                problem: ArenaProblem::Io(_, err),
                ..
            }) if err.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        match Self::create(path, limits, mode) {
            Err(ArenaError {
                problem: ArenaProblem::Exists,
                ..
            }) => Self::open(path),
            other => other,
        }
    }

    /// Opens the default arena ([`default_arena_path`]), creating it with the
    /// default limits if need be.
    pub fn open_default() -> Result<ArenaFile, ArenaError> {
        Self::open_or_create(&default_arena_path()?, &Limits::default(), DEFAULT_MODE)
    }

    /// Opens an existing arena, checking its header.
    pub fn open(path: &Path) -> Result<ArenaFile, ArenaError> {
        let c_path = c_path(path)?;
        // SAFETY: `c_path` is a NUL-terminated path.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(ArenaError::io(path, "open"));
        }
        let file = Self::map_fd(path, fd)?;
        usysv_core::format::read_memory(file.words())
            .map_err(|err| ArenaError::new(path, ArenaProblem::Format(err)))?;
        Ok(file)
    }

    /// Creates a new arena with `limits` and file mode `mode`; fails if one exists.
    pub fn create(path: &Path, limits: &Limits, mode: u32) -> Result<ArenaFile, ArenaError> {
        let layout = usysv_core::Layout::compute(limits)
            .map_err(|err| ArenaError::new(path, ArenaProblem::Format(err)))?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map_or("arena".into(), |n| n.to_string_lossy());
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let nanos = process::monotonic_now().0;
        let temp = dir.join(format!(".{name}.{pid}.{nanos}.new"));
        let c_temp = c_path(&temp)?;
        let c_final = c_path(path)?;
        // SAFETY: `c_temp` is a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c_temp.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(ArenaError::io(path, "open"));
        }
        let published = (|| {
            // The umask may have cleared bits the creator asked for.
            // SAFETY: `fd` is an open file of ours.
            if unsafe { libc::fchmod(fd, mode as libc::mode_t) } != 0 {
                return Err(Self::close_after(fd, ArenaError::io(path, "fchmod")));
            }
            // SAFETY: as above.
            if unsafe { libc::ftruncate(fd, libc::off_t::from(layout.size)) } != 0 {
                return Err(Self::close_after(fd, ArenaError::io(path, "ftruncate")));
            }
            let file = Self::map_fd(path, fd)?;
            let now = process::wall_clock();
            format_memory(file.words(), limits, now)
                .map_err(|err| ArenaError::new(path, ArenaProblem::Format(err)))?;
            // SAFETY: both are NUL-terminated paths.
            if unsafe { libc::link(c_temp.as_ptr(), c_final.as_ptr()) } != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EEXIST) {
                    return Err(ArenaError::new(path, ArenaProblem::Exists));
                }
                return Err(ArenaError::new(path, ArenaProblem::Io("link", err)));
            }
            Ok(file)
        })();
        // SAFETY: `c_temp` is a NUL-terminated path.
        unsafe { libc::unlink(c_temp.as_ptr()) };
        published
    }

    /// Closes `fd`, ours, after the failure `err` (its errno already read).
    fn close_after(fd: libc::c_int, err: ArenaError) -> ArenaError {
        // SAFETY: `fd` is ours and nothing else holds it.
        unsafe { libc::close(fd) };
        err
    }

    /// Maps the open file `fd`, which the result owns (or which is closed on failure).
    fn map_fd(path: &Path, fd: libc::c_int) -> Result<ArenaFile, ArenaError> {
        Self::map_owned_fd(path, fd).map_err(|err| Self::close_after(fd, err))
    }

    fn map_owned_fd(path: &Path, fd: libc::c_int) -> Result<ArenaFile, ArenaError> {
        // SAFETY: an all-zero `stat` is a valid buffer for fstat to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open and `st` is writable.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(ArenaError::io(path, "fstat"));
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(ArenaError::new(
                path,
                ArenaProblem::Format(FormatError::NotAnArena),
            ));
        }
        let len = st.st_size as u64;
        if len < 4096 {
            return Err(ArenaError::new(
                path,
                ArenaProblem::Format(FormatError::TooSmall { len: len as u32 }),
            ));
        }
        // Offsets are 32-bit: map at most 4 GiB; the header check catches the rest.
        let len = len.min(u64::from(u32::MAX) & !4095) as usize;
        // SAFETY: mapping a regular file we opened read-write, shared, at an
        // address of the kernel's choice; `len` is non-zero.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(ArenaError::io(path, "mmap"));
        }
        Ok(ArenaFile {
            path: path.to_path_buf(),
            fd,
            base,
            len,
        })
    }

    /// Whether the byte range `offset..offset + len` of the file may hold data:
    /// false only where `lseek(SEEK_DATA)` shows a hole (never written).
    pub fn may_hold_data(&self, offset: u32, len: u32) -> bool {
        // SAFETY: `fd` is the open arena file; lseek only moves its offset.
        let data = unsafe { libc::lseek(self.fd, libc::off_t::from(offset), libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data at or after `offset`. Anything else: assume data.
            return std::io::Error::last_os_error().raw_os_error() != Some(libc::ENXIO);
        }
        data < libc::off_t::from(offset) + libc::off_t::from(len)
    }

    /// Checks every invariant of the arena ([`Namespace::check`]), skipping
    /// the file's holes so that the check backs no new pages.
    pub fn check(
        &self,
        ns: &Namespace<'_, SystemHost>,
        report: &mut dyn FnMut(usysv_core::Problem),
    ) -> usysv_core::CheckSummary {
        ns.check(&|offset, len| self.may_hold_data(offset, len), report)
    }

    /// The arena's words.
    pub fn words(&self) -> &[AtomicU32] {
        // SAFETY: `base` is a live, page-aligned mapping of `len` bytes (a
        // multiple of 4) that stays mapped until `self` drops; other processes
        // write it concurrently, which `AtomicU32` permits.
        unsafe { std::slice::from_raw_parts(self.base.cast::<AtomicU32>(), self.len / 4) }
    }

    /// Opens the namespace the arena holds, registering this process in it.
    pub fn namespace(&self) -> Result<Namespace<'_, SystemHost>, ArenaError> {
        Namespace::open(self.words(), SystemHost::for_arena(&self.path)).map_err(|err| {
            let problem = match err {
                OpenError::Format(err) => ArenaProblem::Format(err),
                OpenError::NoProcessSlot => ArenaProblem::NoProcessSlot,
            };
            ArenaError::new(&self.path, problem)
        })
    }

    /// Deletes the arena file at `path` and its segments' files. Processes
    /// that have them open or mapped keep them until they let go, as with any
    /// unlinked file.
    pub fn remove(path: &Path) -> Result<(), ArenaError> {
        std::fs::remove_file(path)
            .map_err(|err| ArenaError::new(path, ArenaProblem::Io("unlink", err)))?;
        SegmentFiles::remove_all(path);
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is mapped (never, for an opened arena).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for ArenaFile {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `map_fd` and `fd` the file
        // it owns; nothing borrows them any more, since borrows of `words` end
        // before `self` drops.
        unsafe {
            libc::munmap(self.base, self.len);
            libc::close(self.fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("usysv-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn refusal(dir: &Path, uid: u32) -> Option<&'static str> {
        match ensure_private_dir(dir, uid) {
            Err(ArenaError {
                problem: ArenaProblem::UnsafeDirectory(why),
                ..
            }) => Some(why),
            Err(other) => panic!("{other}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn the_default_directory_must_be_private_and_ours() {
        // SAFETY: no preconditions.
        let uid = unsafe { libc::geteuid() };
        let dir = scratch("private");
        assert_eq!(refusal(&dir, uid), None, "created");
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(refusal(&dir, uid), None, "reused");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            refusal(&dir, uid),
            Some("the directory is open to other users (it must be mode 0700)")
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            refusal(&dir, uid + 1),
            Some("the directory belongs to another user")
        );
        let link = scratch("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert_eq!(refusal(&link, uid), Some("it is not a directory"));
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
