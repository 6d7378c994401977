//! The C API library of usysv: `libusysv.so` and `libusysv.a`.
//!
//! Twelve functions, `usysv_shmget` … `usysv_msgctl`, with the signatures of
//! the platform libc's System V calls and its structures (`struct semid_ds`
//! and the others come from `<sys/sem.h>`, `<sys/msg.h>` and `<sys/shm.h>`,
//! which `usysv.h` includes). Each returns what libc's does, and on failure
//! `-1` (`(void *) -1` from `usysv_shmat`) with `errno` set to what the
//! kernel would set. The calls are served from the arena named by
//! `USYSV_ARENA`, or the user's default arena, opened (created if need be) on
//! the first call; a failure to open it is reported by that call's errno.
//!
//! A panic inside usysv never unwinds into C: the call fails with `EIO`.
//! A pointer that is null where the kernel would copy through it gives
//! `EFAULT`; any other invalid pointer is the caller's to avoid, as with any
//! C library.
//!
//! Three more, `usysv_undo_export`, `usysv_undo_import` and
//! `usysv_undo_release`, checkpoint and restart a process's `SEM_UNDO`
//! list, which the kernel keeps out of reach.
//!
//! The preload library (`usysv-preload`) serves the standard names from
//! these same functions.

mod msg;
mod sem;
mod shm;
mod trampoline;
mod undo;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use usysv_platform::usysv_core::Errno;
use usysv_platform::ArenaProblem;
use usysv_platform::{ArenaError, Ipc};

pub use msg::{usysv_msgctl, usysv_msgget, usysv_msgrcv, usysv_msgsnd};
pub use sem::{usysv_semctl_args, usysv_semget, usysv_semop, usysv_semtimedop};
pub use shm::{usysv_shmat, usysv_shmctl, usysv_shmdt, usysv_shmget};
#[doc(hidden)]
pub use trampoline::usysv_semctl_variadic;
pub use undo::{usysv_undo_export, usysv_undo_import, usysv_undo_release, USYSV_UNDO_HOLD};

/// This process's arena, opened by the first call that needs it.
static IPC: OnceLock<Ipc> = OnceLock::new();

/// Serializes the opening, so that two threads' first calls open it once.
static OPENING: Mutex<()> = Mutex::new(());

/// The open arena, opening it if this is the first call. A failure is not
/// remembered: the next call tries again.
fn ipc() -> Result<&'static Ipc, Errno> {
    if let Some(ipc) = IPC.get() {
        return Ok(ipc);
    }
    let _opening = OPENING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(ipc) = IPC.get() {
        return Ok(ipc);
    }
    let ipc = Ipc::open_default().map_err(|err| open_errno(&err))?;
    Ok(IPC.get_or_init(|| ipc))
}

/// The errno for an arena that could not be opened: the system's own for
/// a failed system call; for an arena that is not usable, `EUCLEAN`, as for
/// any damage usysv finds; `ENOSPC` when every process slot is taken.
fn open_errno(err: &ArenaError) -> Errno {
    match &err.problem {
        ArenaProblem::Io(_, io) => Errno::from_raw(io.raw_os_error().unwrap_or(libc::EIO)),
        ArenaProblem::Format(_) => Errno::CORRUPT,
        ArenaProblem::NoProcessSlot => Errno::ENOSPC,
        ArenaProblem::UnsafeDirectory(_) | ArenaProblem::Exists => Errno::EACCES,
    }
}

/// Runs one call on the open arena: its value, or `failed` with `errno`
/// set. A panic is caught here (`EIO`), never unwound into the C caller.
fn call<T>(failed: T, body: impl FnOnce(&'static Ipc) -> Result<T, Errno>) -> T {
    match catch_unwind(AssertUnwindSafe(|| ipc().and_then(body))) {
        Ok(Ok(value)) => value,
        Ok(Err(errno)) => {
            set_errno(errno.raw());
            failed
        }
        Err(_) => {
            set_errno(libc::EIO);
            failed
        }
    }
}

fn set_errno(errno: i32) {
    // SAFETY: `__errno_location` returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() = errno };
}
