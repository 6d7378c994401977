//! Process identity, liveness, threads and privileges on DragonFly BSD,
//! from the `kern.proc.pid.PID` sysctl (`struct kinfo_proc`).
//!
//! A process is named by its pid and its start time (`kp_start`, as the
//! kernel recorded it at fork, in microseconds), so that a pid reused by a
//! new process is not taken for the old one. The sysctl shows no zombie (the kernel's
//! `pfind` skips them), so a zombie counts as dead, as on Linux. Nor does
//! it show a process in another jail: an arena shared across a jail's
//! boundary would take such a process for dead.

use core::ptr::addr_of;
use std::mem::{size_of, MaybeUninit};
use std::sync::OnceLock;

use usysv_core::host::{Image, Liveness, ProcessId};

use crate::unix::process::{liveness_by_signal, Privileges};

/// What `kern.proc.pid.PID` tells of a process.
struct ProcInfo {
    /// `kp_start`, in microseconds.
    start: u64,
    /// A zombie (`kp_stat`; the sysctl hides zombies today, this is in case
    /// a kernel shows them).
    ended: bool,
    /// Real, effective and saved user ids.
    uids: [u32; 3],
    /// Real, effective (the first of `kp_groups`, if it has any) and saved
    /// group ids.
    gids: [Option<u32>; 3],
    /// `kp_nthreads`.
    threads: libc::c_int,
}

/// Reads `kern.proc.pid.PID`: the process, `None` if none is visible (no
/// such process, a zombie, or one in another jail), or the errno of a
/// failed sysctl (a kernel whose `kinfo_proc` has another size among them).
fn proc_info(pid: u32) -> Result<Option<ProcInfo>, i32> {
    let Ok(pid) = libc::c_int::try_from(pid) else {
        return Ok(None);
    };
    let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
    let mut info = MaybeUninit::<libc::kinfo_proc>::uninit();
    let mut len = size_of::<libc::kinfo_proc>();
    // SAFETY: `mib` names a read-only sysctl of four levels; `info` has room
    // for `len` bytes, at most which the kernel writes, setting `len` to the
    // count written; no new value is given.
    let ret = unsafe {
        libc::sysctl(
            mib.as_ptr(),
            mib.len() as libc::c_uint,
            info.as_mut_ptr().cast(),
            &mut len,
            core::ptr::null(),
            0,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    if len == 0 {
        return Ok(None);
    }
    if len != size_of::<libc::kinfo_proc>() {
        return Err(libc::EINVAL);
    }
    let info = info.as_ptr();
    // SAFETY: the kernel wrote the whole structure (`len` is its size). Each
    // field is read by value through its address, without a reference to
    // the structure; `kp_stat`, a C enum that the libc crate types as a Rust
    // enum, is read as the `u32` it is, so that a state the Rust enum lacks
    // is only a number.
    unsafe {
        let stat = addr_of!((*info).kp_stat).cast::<u32>().read();
        let start = addr_of!((*info).kp_start).read();
        let ngroups = addr_of!((*info).kp_ngroups).read();
        let groups = addr_of!((*info).kp_groups).read();
        Ok(Some(ProcInfo {
            start: (start.tv_sec as u64)
                .wrapping_mul(1_000_000)
                .wrapping_add(start.tv_usec as u64),
            ended: stat == libc::procstat::SZOMB as u32,
            uids: [
                addr_of!((*info).kp_ruid).read(),
                addr_of!((*info).kp_uid).read(),
                addr_of!((*info).kp_svuid).read(),
            ],
            gids: [
                Some(addr_of!((*info).kp_rgid).read()),
                (ngroups > 0).then_some(groups[0]),
                Some(addr_of!((*info).kp_svgid).read()),
            ],
            threads: addr_of!((*info).kp_nthreads).read(),
        }))
    }
}

/// The calling process's pid.
fn own_pid() -> u32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// The program image: a random number drawn once per loaded image, kept in
/// its memory, so that `execve` replaces it and `fork` copies it, as Linux's
/// `AT_RANDOM` bytes are. DragonFly's libc offers no way to read per-exec
/// random bytes from the auxiliary vector (no `getauxval`, no
/// `elf_aux_info`). The price: two copies of usysv loaded in one process
/// (the preload library and a program linked with libusysv) draw two
/// numbers, and each takes the other's registration for an image that
/// exec'd; on DragonFly a program uses one or the other.
pub(crate) fn image() -> Image {
    static IMAGE: OnceLock<u32> = OnceLock::new();
    // SAFETY: arc4random has no preconditions and cannot fail.
    Image(*IMAGE.get_or_init(|| unsafe { libc::arc4random() }))
}

/// The calling process (start time 0 if the sysctl cannot be read).
pub(crate) fn current() -> ProcessId {
    let pid = own_pid();
    let start = proc_info(pid).ok().flatten().map_or(0, |info| info.start);
    ProcessId { pid, start }
}

/// Whether `process` still runs.
pub(crate) fn liveness(process: ProcessId) -> Liveness {
    match proc_info(process.pid) {
        Ok(Some(info)) if !info.ended && info.start == process.start => Liveness::Alive,
        Ok(_) => Liveness::Dead,
        // The sysctl failed: fall back on kill(pid, 0).
        Err(_) => liveness_by_signal(process.pid),
    }
}

/// Whether the calling process may control `process` as `ptrace` would let
/// it: the same process (pid and start time) still running, whose real,
/// effective and saved user and group ids are all the caller's real ones.
pub(crate) fn may_control(process: ProcessId) -> bool {
    let Ok(Some(info)) = proc_info(process.pid) else {
        return false;
    };
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    !info.ended
        && info.start == process.start
        && info.uids == [uid; 3]
        && info.gids == [Some(gid); 3]
}

/// The number of threads in this process (`kp_nthreads`).
pub(crate) fn threads() -> Option<u32> {
    let info = proc_info(own_pid()).ok()??;
    u32::try_from(info.threads).ok()
}

/// The privileges of a process whose effective uid is `euid`: DragonFly has
/// no capabilities, and the superuser holds every privilege, as its own
/// System V IPC grants them.
pub(crate) fn privileges(euid: u32) -> Privileges {
    let root = euid == 0;
    Privileges {
        ipc_owner: root,
        sys_admin: root,
        sys_resource: root,
    }
}
