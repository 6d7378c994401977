//! The LD_PRELOAD library of usysv: `libusysv_preload.so`.
//!
//! Loaded ahead of libc (`LD_PRELOAD`, or `usysv run`), it exports the
//! twelve standard names, `shmget` … `msgctl`, with libc's calling
//! conventions, so that an unmodified program's System V IPC is served from
//! a usysv arena (`USYSV_ARENA`, or the user's default) instead of the
//! kernel. Each name is the C API's call of the same name under the prefix
//! `usysv_`; nothing ever falls back to the kernel's system calls, so a
//! program runs where they are blocked.
//!
//! A program that makes no System V call is untouched: the arena is opened
//! by the first call, not when the library loads. `fork` and `exec` are
//! handled by the platform layer (the child gets its own registration and
//! the parent's attachments; a new image that also runs under the library
//! takes over its registration, `SEM_UNDO` adjustments included).

use std::ffi::{c_int, c_long, c_void};

use libc::{key_t, msqid_ds, sembuf, shmid_ds, ssize_t, timespec};

/// `semget(2)`.
#[no_mangle]
pub extern "C" fn semget(key: key_t, nsems: c_int, semflg: c_int) -> c_int {
    usysv::usysv_semget(key, nsems, semflg)
}

/// `semop(2)`.
///
/// # Safety
///
/// As for `semop(2)`.
#[no_mangle]
pub unsafe extern "C" fn semop(semid: c_int, sops: *mut sembuf, nsops: usize) -> c_int {
    // SAFETY: the caller's promises are `usysv_semop`'s.
    unsafe { usysv::usysv_semop(semid, sops, nsops) }
}

/// `semtimedop(2)`.
///
/// # Safety
///
/// As for `semtimedop(2)`.
#[no_mangle]
pub unsafe extern "C" fn semtimedop(
    semid: c_int,
    sops: *mut sembuf,
    nsops: usize,
    timeout: *const timespec,
) -> c_int {
    // SAFETY: the caller's promises are `usysv_semtimedop`'s.
    unsafe { usysv::usysv_semtimedop(semid, sops, nsops, timeout) }
}

usysv::semctl_trampoline!(
    /// `semctl(2)`, variadic: a jump to the C API's.
    semctl
);

/// `msgget(2)`.
#[no_mangle]
pub extern "C" fn msgget(key: key_t, msgflg: c_int) -> c_int {
    usysv::usysv_msgget(key, msgflg)
}

/// `msgsnd(2)`.
///
/// # Safety
///
/// As for `msgsnd(2)`.
#[no_mangle]
pub unsafe extern "C" fn msgsnd(
    msqid: c_int,
    msgp: *const c_void,
    msgsz: usize,
    msgflg: c_int,
) -> c_int {
    // SAFETY: the caller's promises are `usysv_msgsnd`'s.
    unsafe { usysv::usysv_msgsnd(msqid, msgp, msgsz, msgflg) }
}

/// `msgrcv(2)`.
///
/// # Safety
///
/// As for `msgrcv(2)`.
#[no_mangle]
pub unsafe extern "C" fn msgrcv(
    msqid: c_int,
    msgp: *mut c_void,
    msgsz: usize,
    msgtyp: c_long,
    msgflg: c_int,
) -> ssize_t {
    // SAFETY: the caller's promises are `usysv_msgrcv`'s.
    unsafe { usysv::usysv_msgrcv(msqid, msgp, msgsz, msgtyp, msgflg) }
}

/// `msgctl(2)`.
///
/// # Safety
///
/// As for `msgctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn msgctl(msqid: c_int, cmd: c_int, buf: *mut msqid_ds) -> c_int {
    // SAFETY: the caller's promises are `usysv_msgctl`'s.
    unsafe { usysv::usysv_msgctl(msqid, cmd, buf) }
}

/// `shmget(2)`.
#[no_mangle]
pub extern "C" fn shmget(key: key_t, size: usize, shmflg: c_int) -> c_int {
    usysv::usysv_shmget(key, size, shmflg)
}

/// `shmat(2)`.
///
/// # Safety
///
/// As for `shmat(2)`.
#[no_mangle]
pub unsafe extern "C" fn shmat(shmid: c_int, shmaddr: *const c_void, shmflg: c_int) -> *mut c_void {
    // SAFETY: the caller's promises are `usysv_shmat`'s.
    unsafe { usysv::usysv_shmat(shmid, shmaddr, shmflg) }
}

/// `shmdt(2)`.
///
/// # Safety
///
/// As for `shmdt(2)`.
#[no_mangle]
pub unsafe extern "C" fn shmdt(shmaddr: *const c_void) -> c_int {
    // SAFETY: the caller's promises are `usysv_shmdt`'s.
    unsafe { usysv::usysv_shmdt(shmaddr) }
}

/// `shmctl(2)`.
///
/// # Safety
///
/// As for `shmctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn shmctl(shmid: c_int, cmd: c_int, buf: *mut shmid_ds) -> c_int {
    // SAFETY: the caller's promises are `usysv_shmctl`'s.
    unsafe { usysv::usysv_shmctl(shmid, cmd, buf) }
}
