//! Semaphore sets: `usysv_semget`, `usysv_semop`, `usysv_semtimedop`, and
//! `usysv_semctl` (its fixed-arity half).

use std::ffi::{c_int, c_void};
use std::mem::{offset_of, size_of};
use std::ptr;
use std::slice;

use libc::{key_t, sembuf, semid_ds, seminfo, timespec};
use usysv_platform::usysv_core::sem::{SemBuf, SemInfo, SemQuery, SemidDs, Timeout};
use usysv_platform::usysv_core::Errno;

use crate::call;

// The caller's `struct sembuf` array is read in place as the core's.
const _: () = {
    assert!(size_of::<sembuf>() == size_of::<SemBuf>());
    assert!(offset_of!(sembuf, sem_num) == offset_of!(SemBuf, sem_num));
    assert!(offset_of!(sembuf, sem_op) == offset_of!(SemBuf, sem_op));
    assert!(offset_of!(sembuf, sem_flg) == offset_of!(SemBuf, sem_flg));
};

/// `semget(2)`: the id of the semaphore set of `key` (`IPC_PRIVATE` for a
/// new one), creating it with `nsems` semaphores under `IPC_CREAT`.
#[no_mangle]
pub extern "C" fn usysv_semget(key: key_t, nsems: c_int, semflg: c_int) -> c_int {
    call(-1, |ipc| ipc.semget(key, nsems, semflg))
}

/// `semop(2)`: applies the `nsops` operations at `sops` to set `semid`, all
/// or none, waiting until they can be applied unless `IPC_NOWAIT`.
///
/// # Safety
///
/// `sops` points to `nsops` operations (or is null: `EFAULT`).
#[no_mangle]
pub unsafe extern "C" fn usysv_semop(semid: c_int, sops: *mut sembuf, nsops: usize) -> c_int {
    // SAFETY: the caller's promise, passed on; no timeout.
    unsafe { usysv_semtimedop(semid, sops, nsops, ptr::null()) }
}

/// `semtimedop(2)`: `usysv_semop` waiting at most `timeout` (no limit when
/// null); `EAGAIN` when it passes.
///
/// # Safety
///
/// `sops` points to `nsops` operations (or is null: `EFAULT`); `timeout` is
/// null or points to a `struct timespec`.
#[no_mangle]
pub unsafe extern "C" fn usysv_semtimedop(
    semid: c_int,
    sops: *mut sembuf,
    nsops: usize,
    timeout: *const timespec,
) -> c_int {
    call(-1, |ipc| {
        // The kernel takes the count as an unsigned int, and checks it and
        // the id's sign before it reads anything.
        let nsops = nsops as u32 as usize;
        if nsops == 0 || semid < 0 {
            return Err(Errno::EINVAL);
        }
        if nsops > ipc.namespace().limits().semopm as usize {
            return Err(Errno::E2BIG);
        }
        if sops.is_null() {
            return Err(Errno::EFAULT);
        }
        // SAFETY: the caller's promise: `sops` holds `nsops` operations,
        // which the assertions above show are laid out as `SemBuf`s.
        let ops = unsafe { slice::from_raw_parts(sops.cast::<SemBuf>(), nsops) };
        // SAFETY: the caller's promise: null or a `struct timespec`.
        let timeout = unsafe { timeout.as_ref() }.map(|t| Timeout {
            sec: t.tv_sec,
            nsec: t.tv_nsec,
        });
        ipc.namespace()
            .semtimedop(semid, ops, timeout, &ipc.cred())
            .map(|()| 0)
    })
}

/// `semctl(2)` with its fourth argument spelled out, for callers that cannot
/// pass a `union semun`: `val` for `SETVAL`, `ptr` (the union's `buf`,
/// `array` or `__buf`) for `IPC_STAT`, `IPC_SET`, `IPC_INFO`, `SEM_INFO`,
/// `SEM_STAT`, `SEM_STAT_ANY`, `GETALL` and `SETALL`; the other commands
/// read neither. `usysv_semctl` calls it.
///
/// # Safety
///
/// `ptr` is null (`EFAULT` where the command needs it) or points to what
/// the command reads or writes: a `struct semid_ds`, a `struct seminfo`, or
/// one `unsigned short` per semaphore of the set.
#[no_mangle]
pub unsafe extern "C" fn usysv_semctl_args(
    semid: c_int,
    semnum: c_int,
    cmd: c_int,
    val: c_int,
    ptr: *mut c_void,
) -> c_int {
    call(-1, |ipc| {
        // Linux refuses a negative id for every command, first.
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        match cmd {
            libc::IPC_STAT => {
                let ds = ipc.semctl_stat(semid)?;
                // SAFETY: the caller's promise for IPC_STAT.
                unsafe { write(ptr.cast(), semid_ds_from(&ds))? };
                Ok(0)
            }
            libc::SEM_STAT | libc::SEM_STAT_ANY => {
                let (id, ds) = ipc.semctl_stat_index(semid, cmd == libc::SEM_STAT_ANY)?;
                // SAFETY: the caller's promise for SEM_STAT.
                unsafe { write(ptr.cast(), semid_ds_from(&ds))? };
                Ok(id)
            }
            libc::IPC_SET => {
                // SAFETY: the caller's promise for IPC_SET.
                let ds = unsafe { read(ptr.cast::<semid_ds>())? };
                let perm = &ds.sem_perm;
                ipc.semctl_set(semid, perm.uid, perm.gid, u32::from(perm.mode))?;
                Ok(0)
            }
            libc::IPC_RMID => ipc.semctl_rmid(semid).map(|()| 0),
            libc::IPC_INFO | libc::SEM_INFO => {
                let (index, info) = ipc.semctl_info(cmd == libc::SEM_INFO);
                // SAFETY: the caller's promise for IPC_INFO and SEM_INFO.
                unsafe { write(ptr.cast(), seminfo_from(&info))? };
                Ok(index)
            }
            libc::GETVAL => ipc.semctl_query(semid, semnum, SemQuery::Value),
            libc::GETPID => ipc.semctl_query(semid, semnum, SemQuery::Pid),
            libc::GETNCNT => ipc.semctl_query(semid, semnum, SemQuery::WaitingToDecrease),
            libc::GETZCNT => ipc.semctl_query(semid, semnum, SemQuery::WaitingForZero),
            libc::GETALL => {
                let values = ipc.semctl_getall(semid)?;
                if ptr.is_null() {
                    return Err(Errno::EFAULT);
                }
                // SAFETY: the caller's promise for GETALL: room for one value
                // per semaphore, which is `values.len()`.
                unsafe {
                    ptr::copy_nonoverlapping(values.as_ptr(), ptr.cast::<u16>(), values.len())
                };
                Ok(0)
            }
            libc::SETVAL => ipc.semctl_setval(semid, semnum, val).map(|()| 0),
            libc::SETALL => {
                let nsems = ipc.namespace().sem_count(semid)? as usize;
                if ptr.is_null() {
                    return Err(Errno::EFAULT);
                }
                // SAFETY: the caller's promise for SETALL: one value per
                // semaphore of the set, whose size never changes.
                let values = unsafe { slice::from_raw_parts(ptr.cast::<u16>(), nsems) };
                ipc.semctl_setall(semid, values).map(|()| 0)
            }
            _ => Err(Errno::EINVAL),
        }
    })
}

/// Copies `value` out to the caller: `EFAULT` if `to` is null.
///
/// # Safety
///
/// `to` is null or valid for writing a `T`.
pub(crate) unsafe fn write<T>(to: *mut T, value: T) -> Result<(), Errno> {
    if to.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: not null, and valid by the caller's promise; C gives no
    // alignment promise beyond its own, so the write assumes none.
    unsafe { to.write_unaligned(value) };
    Ok(())
}

/// Copies a `T` in from the caller: `EFAULT` if `from` is null.
///
/// # Safety
///
/// `from` is null or valid for reading a `T`, every bit pattern of which is
/// valid (the C structures are plain integers).
pub(crate) unsafe fn read<T>(from: *const T) -> Result<T, Errno> {
    if from.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: not null, and valid by the caller's promise.
    Ok(unsafe { from.read_unaligned() })
}

/// The caller's `struct ipc_perm`, filled from the core's.
pub(crate) fn ipc_perm_from(perm: &usysv_platform::usysv_core::perm::IpcPerm) -> libc::ipc_perm {
    // SAFETY: `ipc_perm` is plain integers; all zeros is a valid value (and
    // what the kernel leaves in the padding).
    let mut out: libc::ipc_perm = unsafe { std::mem::zeroed() };
    out.__key = perm.key;
    out.uid = perm.uid;
    out.gid = perm.gid;
    out.cuid = perm.cuid;
    out.cgid = perm.cgid;
    out.mode = perm.mode as _;
    out.__seq = perm.seq as _;
    out
}

fn semid_ds_from(ds: &SemidDs) -> semid_ds {
    // SAFETY: plain integers, as above.
    let mut out: semid_ds = unsafe { std::mem::zeroed() };
    out.sem_perm = ipc_perm_from(&ds.perm);
    out.sem_otime = ds.otime;
    out.sem_ctime = ds.ctime;
    out.sem_nsems = ds.nsems as _;
    out
}

fn seminfo_from(info: &SemInfo) -> seminfo {
    seminfo {
        semmap: info.semmap,
        semmni: info.semmni,
        semmns: info.semmns,
        semmnu: info.semmnu,
        semmsl: info.semmsl,
        semopm: info.semopm,
        semume: info.semume,
        semusz: info.semusz,
        semvmx: info.semvmx,
        semaem: info.semaem,
    }
}
