//! Shared memory: `usysv_shmget`, `usysv_shmat`, `usysv_shmdt`,
//! `usysv_shmctl`.

use std::ffi::{c_int, c_ulong, c_void};

use libc::{key_t, shmid_ds};
use usysv_platform::usysv_core::shm::{ShmInfo, ShmUsage, ShmidDs};
use usysv_platform::usysv_core::Errno;

use crate::call;
use crate::sem::{ipc_perm_from, read, write};

// The Linux commands the `libc` crate lacks.
const SHM_STAT: c_int = 13;
const SHM_INFO: c_int = 14;
const SHM_STAT_ANY: c_int = 15;

/// `struct shminfo` as glibc and musl lay it out (the `libc` crate has no
/// definition): what `IPC_INFO` writes through the `struct shmid_ds *`.
#[repr(C)]
struct ShmInfoC {
    shmmax: c_ulong,
    shmmin: c_ulong,
    shmmni: c_ulong,
    shmseg: c_ulong,
    shmall: c_ulong,
    reserved: [c_ulong; 4],
}

/// `struct shm_info`, likewise: what `SHM_INFO` writes.
#[repr(C)]
struct ShmUsageC {
    used_ids: c_int,
    shm_tot: c_ulong,
    shm_rss: c_ulong,
    shm_swp: c_ulong,
    swap_attempts: c_ulong,
    swap_successes: c_ulong,
}

/// `shmget(2)`: the id of the shared memory segment of `key`
/// (`IPC_PRIVATE` for a new one), creating it with `size` bytes, zeroed,
/// under `IPC_CREAT`.
#[no_mangle]
pub extern "C" fn usysv_shmget(key: key_t, size: usize, shmflg: c_int) -> c_int {
    call(-1, |ipc| ipc.shmget(key, size, shmflg))
}

/// `shmat(2)`: maps segment `shmid` at an address the system chooses
/// (`shmaddr` null) or at `shmaddr` (rounded down to `SHMLBA` with
/// `SHM_RND`), read-only with `SHM_RDONLY`, replacing what is mapped there
/// with `SHM_REMAP`. Returns the address, or `(void *) -1`.
///
/// # Safety
///
/// With `SHM_REMAP`, whatever was mapped at `shmaddr` is gone.
#[no_mangle]
pub unsafe extern "C" fn usysv_shmat(
    shmid: c_int,
    shmaddr: *const c_void,
    shmflg: c_int,
) -> *mut c_void {
    call(usize::MAX as *mut c_void, |ipc| {
        // SAFETY: the caller's promise for SHM_REMAP.
        let at = unsafe { ipc.shmat_raw(shmid, shmaddr as usize, shmflg)? };
        Ok(at.cast())
    })
}

/// `shmdt(2)`: ends the attachment made at `shmaddr` (`EINVAL` if none
/// was) and unmaps it.
///
/// # Safety
///
/// Nothing uses the attachment's memory any more.
#[no_mangle]
pub unsafe extern "C" fn usysv_shmdt(shmaddr: *const c_void) -> c_int {
    call(-1, |ipc| {
        // SAFETY: the caller's promise.
        unsafe { ipc.shmdt_raw(shmaddr.cast()) }.map(|()| 0)
    })
}

/// `shmctl(2)`: `IPC_STAT`, `SHM_STAT`, `SHM_STAT_ANY` and `IPC_SET`
/// through `buf`; `IPC_INFO` writes a `struct shminfo` and `SHM_INFO` a
/// `struct shm_info` through it; `IPC_RMID`, `SHM_LOCK` and `SHM_UNLOCK`
/// ignore it.
///
/// # Safety
///
/// `buf` is null (`EFAULT` where the command needs it) or points to what
/// the command reads or writes.
#[no_mangle]
pub unsafe extern "C" fn usysv_shmctl(shmid: c_int, cmd: c_int, buf: *mut shmid_ds) -> c_int {
    call(-1, |ipc| {
        if shmid < 0 || cmd < 0 {
            return Err(Errno::EINVAL);
        }
        match cmd {
            libc::IPC_STAT => {
                let ds = ipc.shmctl_stat(shmid)?;
                // SAFETY: the caller's promise for IPC_STAT.
                unsafe { write(buf, shmid_ds_from(&ds))? };
                Ok(0)
            }
            SHM_STAT | SHM_STAT_ANY => {
                let (id, ds) = ipc.shmctl_stat_index(shmid, cmd == SHM_STAT_ANY)?;
                // SAFETY: the caller's promise for SHM_STAT.
                unsafe { write(buf, shmid_ds_from(&ds))? };
                Ok(id)
            }
            libc::IPC_SET => {
                // SAFETY: the caller's promise for IPC_SET.
                let ds = unsafe { read(buf.cast_const())? };
                let perm = &ds.shm_perm;
                ipc.shmctl_set(shmid, perm.uid, perm.gid, u32::from(perm.mode))?;
                Ok(0)
            }
            libc::IPC_RMID => ipc.shmctl_rmid(shmid).map(|()| 0),
            libc::IPC_INFO => {
                let (index, info) = ipc.shmctl_info();
                // SAFETY: the caller's promise for IPC_INFO.
                unsafe { write(buf.cast(), shminfo_from(&info))? };
                Ok(index)
            }
            SHM_INFO => {
                let (index, usage) = ipc.shmctl_usage();
                // SAFETY: the caller's promise for SHM_INFO.
                unsafe { write(buf.cast(), shm_info_from(&usage))? };
                Ok(index)
            }
            libc::SHM_LOCK | libc::SHM_UNLOCK => {
                ipc.shmctl_lock(shmid, cmd == libc::SHM_LOCK).map(|()| 0)
            }
            _ => Err(Errno::EINVAL),
        }
    })
}

fn shmid_ds_from(ds: &ShmidDs) -> shmid_ds {
    // SAFETY: `shmid_ds` is plain integers; all zeros is a valid value.
    let mut out: shmid_ds = unsafe { std::mem::zeroed() };
    out.shm_perm = ipc_perm_from(&ds.perm);
    out.shm_segsz = ds.segsz as _;
    out.shm_atime = ds.atime;
    out.shm_dtime = ds.dtime;
    out.shm_ctime = ds.ctime;
    out.shm_cpid = ds.cpid;
    out.shm_lpid = ds.lpid;
    out.shm_nattch = ds.nattch as _;
    out
}

fn shminfo_from(info: &ShmInfo) -> ShmInfoC {
    ShmInfoC {
        shmmax: info.shmmax as _,
        shmmin: info.shmmin as _,
        shmmni: info.shmmni as _,
        shmseg: info.shmseg as _,
        shmall: info.shmall as _,
        reserved: [0; 4],
    }
}

fn shm_info_from(usage: &ShmUsage) -> ShmUsageC {
    ShmUsageC {
        used_ids: usage.used_ids,
        shm_tot: usage.shm_tot as _,
        shm_rss: usage.shm_rss as _,
        shm_swp: usage.shm_swp as _,
        swap_attempts: 0,
        swap_successes: 0,
    }
}
