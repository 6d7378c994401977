//! A worker process of a differential run: it makes the calls it is sent,
//! through the C library's `semget`, `semop`, … (the kernel's, or usysv's
//! when the preload library is loaded), and answers each with one line.
//!
//! Protocol, one line each way:
//! - `pids P0 P1 …`: the pids of this world's workers, so that a pid prints
//!   as the worker it is (`w1`), the same in both worlds;
//! - `step LABEL CALL`: makes the call (ids already resolved) and answers
//!   `ok …` or `err ERRNO`;
//! - `observe sem|msg|shm ID`: answers the object's whole observable state.
//!
//! Times print as `0`, `now` or their value, pids as `0`, `wN` or their
//! value: ids, keys, modes and values as they are.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};

use libc::{
    GETALL, GETNCNT, GETPID, GETZCNT, IPC_INFO, IPC_SET, IPC_STAT, MSG_COPY, MSG_INFO, MSG_STAT,
    SEM_INFO, SEM_STAT, SEM_STAT_ANY, SETALL,
};

use super::call::{Call, Target, MSG_STAT_ANY, SHM_INFO, SHM_STAT, SHM_STAT_ANY};

/// `semctl`'s GETALL and SETALL buffers: SEMMSL's default, so any set fits.
const MAX_SEMS: usize = 32_000;
/// Largest message buffer (MSGMAX is 8192; bigger sizes are refused first).
const MAX_MESSAGE: usize = 1 << 16;
/// Messages `observe msg` lists at most.
const MAX_LISTED: i64 = 64;

#[repr(C)]
struct SemBuf {
    sem_num: u16,
    sem_op: i16,
    sem_flg: i16,
}

extern "C" {
    // glibc's wrapper (the `libc` crate has none): the symbol the preload
    // library replaces, as a raw system call would not be.
    fn semtimedop(
        semid: libc::c_int,
        sops: *mut SemBuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

/// The errno of the call that just failed.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A failed call's answer.
fn failed() -> String {
    format!("err {}", errno_name(errno()))
}

/// The errnos System V calls give, by name.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::E2BIG => "E2BIG",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ENOMSG => "ENOMSG",
        libc::EIDRM => "EIDRM",
        other => return other.to_string(),
    };
    name.to_string()
}

/// The owner IPC_SET gives: the caller's own ids, so that it changes the mode
/// (and `msg_qbytes`) only.
fn owner() -> (libc::uid_t, libc::gid_t) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// The bytes `msgsnd` of `mtype` sends.
fn payload(mtype: i64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (mtype as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// FNV-1a, to print a message's bytes in a few characters.
fn digest(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// An attachment this worker made, named by the step that made it.
struct Attached {
    addr: *mut u8,
    len: usize,
    read_only: bool,
}

/// One worker's state: the names of pids, and its attachments.
pub struct Worker {
    pids: Vec<i32>,
    attached: HashMap<u32, Attached>,
    /// The start of [`HOLE`] bytes of address space that were free when
    /// the worker learnt the pids, for attachments at an address of its
    /// choosing.
    hole: usize,
}

/// The signal an `interrupt` step sends.
pub const INTERRUPT: i32 = libc::SIGUSR1;

/// Installs a handler for [`INTERRUPT`] that returns at once, so that the
/// signal ends a blocked System V call with `EINTR` (they are never
/// restarted) instead of the process.
fn catch_interrupts() {
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: all-zero is a valid sigaction to fill in; the handler is a
    // function that does nothing, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(INTERRUPT, &action, std::ptr::null_mut());
    }
}

/// Bytes of address space a worker keeps free for `shmat` at an address.
const HOLE: usize = 64 << 20;

/// The start of a range of [`HOLE`] free bytes: mapped, then unmapped, so
/// that nothing the worker maps later is likely to land there.
fn free_range() -> usize {
    // SAFETY: an anonymous mapping at an address the system chooses, touching
    // no existing memory; unmapped again at once.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            HOLE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if at == libc::MAP_FAILED {
            return 0;
        }
        libc::munmap(at, HOLE);
        at as usize
    }
}

impl Worker {
    fn pid(&self, pid: i32) -> String {
        match self.pids.iter().position(|&p| p == pid) {
            _ if pid == 0 => "0".to_string(),
            Some(worker) => format!("w{worker}"),
            None => pid.to_string(),
        }
    }

    fn time(time: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        if time == 0 {
            "0".to_string()
        } else if (time - now).abs() <= 120 {
            "now".to_string()
        } else {
            time.to_string()
        }
    }

    fn perm(perm: &libc::ipc_perm) -> String {
        format!(
            "key={:#x} uid={} gid={} cuid={} cgid={} mode={:#o} seq={}",
            perm.__key, perm.uid, perm.gid, perm.cuid, perm.cgid, perm.mode, perm.__seq
        )
    }

    /// What `cmd` (`IPC_STAT`, or `SEM_STAT`/`SEM_STAT_ANY` of an index,
    /// whose id leads the text) says of the set.
    fn sem_stat(&self, id: i32, cmd: i32) -> Result<(String, usize), String> {
        // SAFETY: all-zero is a valid semid_ds (integers only).
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: the command writes one semid_ds through the pointer, which
        // points to `ds`.
        let ret = unsafe { libc::semctl(id, 0, cmd, &mut ds as *mut libc::semid_ds) };
        if ret < 0 {
            return Err(failed());
        }
        let text = format!(
            "{}stat {} nsems={} otime={} ctime={}",
            Self::stat_id(cmd, ret),
            Self::perm(&ds.sem_perm),
            ds.sem_nsems,
            Self::time(ds.sem_otime),
            Self::time(ds.sem_ctime)
        );
        Ok((text, ds.sem_nsems as usize))
    }

    /// What `cmd` (`IPC_STAT`, or `MSG_STAT`/`MSG_STAT_ANY` of an index,
    /// whose id leads the text) says of the queue.
    fn msg_stat(&self, id: i32, cmd: i32) -> Result<(String, u64), String> {
        // SAFETY: all-zero is a valid msqid_ds (integers only).
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: the command writes one msqid_ds to `ds`.
        let ret = unsafe { libc::msgctl(id, cmd, &mut ds) };
        if ret < 0 {
            return Err(failed());
        }
        let text = format!(
            "{}stat {} qnum={} cbytes={} qbytes={} lspid={} lrpid={} stime={} rtime={} ctime={}",
            Self::stat_id(cmd, ret),
            Self::perm(&ds.msg_perm),
            ds.msg_qnum,
            ds.__msg_cbytes,
            ds.msg_qbytes,
            self.pid(ds.msg_lspid),
            self.pid(ds.msg_lrpid),
            Self::time(ds.msg_stime),
            Self::time(ds.msg_rtime),
            Self::time(ds.msg_ctime)
        );
        Ok((text, ds.msg_qnum))
    }

    /// What `cmd` (`IPC_STAT`, or `SHM_STAT`/`SHM_STAT_ANY` of an index,
    /// whose id leads the text) says of the segment.
    fn shm_stat(&self, id: i32, cmd: i32) -> Result<(String, usize), String> {
        // SAFETY: all-zero is a valid shmid_ds (integers only).
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: the command writes one shmid_ds to `ds`.
        let ret = unsafe { libc::shmctl(id, cmd, &mut ds) };
        if ret < 0 {
            return Err(failed());
        }
        let text = format!(
            "{}stat {} segsz={} atime={} dtime={} ctime={} cpid={} lpid={} nattch={}",
            Self::stat_id(cmd, ret),
            Self::perm(&ds.shm_perm),
            ds.shm_segsz,
            Self::time(ds.shm_atime),
            Self::time(ds.shm_dtime),
            Self::time(ds.shm_ctime),
            self.pid(ds.shm_cpid),
            self.pid(ds.shm_lpid),
            ds.shm_nattch
        );
        Ok((text, ds.shm_segsz))
    }

    /// What `semctl(IPC_INFO)` or `semctl(SEM_INFO)` says: the highest
    /// index in use, the limits, and for SEM_INFO the sets and semaphores.
    fn sem_info(cmd: i32) -> Result<String, String> {
        // SAFETY: all-zero is a valid seminfo (integers only).
        let mut info: libc::seminfo = unsafe { std::mem::zeroed() };
        // SAFETY: the command writes one seminfo through the pointer.
        let ret = unsafe { libc::semctl(0, 0, cmd, &mut info as *mut libc::seminfo) };
        if ret < 0 {
            return Err(failed());
        }
        Ok(format!(
            "info {ret} map={} mni={} mns={} mnu={} msl={} opm={} ume={} usz={} vmx={} aem={}",
            info.semmap,
            info.semmni,
            info.semmns,
            info.semmnu,
            info.semmsl,
            info.semopm,
            info.semume,
            info.semusz,
            info.semvmx,
            info.semaem
        ))
    }

    /// What `msgctl(IPC_INFO)` or `msgctl(MSG_INFO)` says: the highest
    /// index in use, the limits, and for MSG_INFO the queues, messages and
    /// bytes.
    fn msg_info(cmd: i32) -> Result<String, String> {
        // SAFETY: all-zero is a valid msginfo (integers only).
        let mut info: libc::msginfo = unsafe { std::mem::zeroed() };
        // SAFETY: the command writes one msginfo through the pointer.
        let ret = unsafe { libc::msgctl(0, cmd, (&mut info as *mut libc::msginfo).cast()) };
        if ret < 0 {
            return Err(failed());
        }
        Ok(format!(
            "info {ret} pool={} map={} max={} mnb={} mni={} ssz={} tql={} seg={}",
            info.msgpool,
            info.msgmap,
            info.msgmax,
            info.msgmnb,
            info.msgmni,
            info.msgssz,
            info.msgtql,
            info.msgseg
        ))
    }

    /// What `shmctl(IPC_INFO)` (the limits) or `shmctl(SHM_INFO)` (the
    /// segments and their pages) says, after the highest index in use.
    fn shm_info(cmd: i32) -> Result<String, String> {
        /// `struct shminfo` and `struct shm_info` (`<sys/shm.h>`), which the
        /// libc crate does not define; the larger is `shminfo`.
        #[repr(C)]
        #[derive(Default)]
        struct ShmInfo {
            words: [libc::c_ulong; 9],
        }
        let mut info = ShmInfo::default();
        // SAFETY: the command writes one shminfo (nine unsigned longs) or
        // one shm_info (an int, padded, and five unsigned longs) to `info`.
        let ret = unsafe { libc::shmctl(0, cmd, (&mut info as *mut ShmInfo).cast()) };
        if ret < 0 {
            return Err(failed());
        }
        let w = info.words;
        Ok(if cmd == SHM_INFO {
            format!(
                "info {ret} used={} tot={} rss={} swp={} swap_attempts={} swap_successes={}",
                w[0] as libc::c_int, w[1], w[2], w[3], w[4], w[5]
            )
        } else {
            format!(
                "info {ret} max={} min={} mni={} seg={} all={}",
                w[0], w[1], w[2], w[3], w[4]
            )
        })
    }

    /// The id a stat-by-index command returned, to lead its text.
    fn stat_id(cmd: i32, ret: i32) -> String {
        if cmd == IPC_STAT {
            String::new()
        } else {
            format!("id {ret} ")
        }
    }

    /// `semctl` with an `int` argument (or none), as GETVAL and friends take.
    fn semctl_int(id: i32, num: i32, cmd: i32, arg: i32) -> Result<i32, String> {
        // SAFETY: these commands read no pointer: the argument is an int.
        let ret = unsafe { libc::semctl(id, num, cmd, arg) };
        if ret < 0 {
            Err(failed())
        } else {
            Ok(ret)
        }
    }

    fn getall(id: i32) -> Result<String, String> {
        let mut values = vec![u16::MAX; MAX_SEMS];
        // SAFETY: GETALL writes at most SEMMSL values to the array, which
        // holds that many.
        if unsafe { libc::semctl(id, 0, GETALL, values.as_mut_ptr()) } < 0 {
            return Err(failed());
        }
        // Values are at most SEMVMX (32767): the first untouched one ends them.
        let set: Vec<String> = values
            .iter()
            .take_while(|&&v| v != u16::MAX)
            .map(u16::to_string)
            .collect();
        Ok(format!("[{}]", set.join(" ")))
    }

    fn semctl(&self, id: i32, num: i32, cmd: i32, arg: i32) -> Result<String, String> {
        match cmd {
            IPC_STAT | SEM_STAT | SEM_STAT_ANY => self.sem_stat(id, cmd).map(|(text, _)| text),
            IPC_INFO | SEM_INFO => Self::sem_info(cmd),
            IPC_SET => {
                // SAFETY: all-zero is a valid semid_ds.
                let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
                (ds.sem_perm.uid, ds.sem_perm.gid) = owner();
                ds.sem_perm.mode = arg as u16 as _;
                // SAFETY: IPC_SET reads one semid_ds from `ds`.
                if unsafe { libc::semctl(id, num, IPC_SET, &mut ds as *mut libc::semid_ds) } < 0 {
                    return Err(failed());
                }
                Ok(String::new())
            }
            GETALL => Self::getall(id),
            SETALL => {
                let mut values = vec![arg as u16; MAX_SEMS];
                // SAFETY: SETALL reads at most SEMMSL values from the array.
                if unsafe { libc::semctl(id, 0, SETALL, values.as_mut_ptr()) } < 0 {
                    return Err(failed());
                }
                Ok(String::new())
            }
            GETPID => Self::semctl_int(id, num, cmd, 0).map(|pid| self.pid(pid)),
            _ => Self::semctl_int(id, num, cmd, arg).map(|value| value.to_string()),
        }
    }

    fn msgrcv(&self, id: i32, size: i64, mtype: i64, flags: i32) -> Result<String, String> {
        let room = usize::try_from(size).unwrap_or(0).min(MAX_MESSAGE);
        let mut buf = vec![0u8; 8 + room];
        // SAFETY: the buffer holds a long and `size` bytes (or the call is
        // refused before any copy: size < 0 or > MAX_MESSAGE > MSGMAX).
        let got = unsafe {
            libc::msgrcv(
                id,
                buf.as_mut_ptr().cast(),
                size as libc::size_t,
                mtype as libc::c_long,
                flags,
            )
        };
        if got < 0 {
            return Err(failed());
        }
        let received = i64::from_ne_bytes(buf[..8].try_into().unwrap_or_default());
        let bytes = &buf[8..8 + (got as usize).min(room)];
        Ok(format!("type={received} len={got} {:08x}", digest(bytes)))
    }

    fn call(&mut self, label: u32, call: &Call) -> Result<String, String> {
        let raw = |target: &Target| match *target {
            Target::Raw(id) => id,
            Target::Got(_) => -1,
        };
        match call {
            Call::SemGet { key, nsems, flags } => {
                // SAFETY: semget takes integers only.
                let id = unsafe { libc::semget(*key, *nsems, *flags) };
                if id < 0 {
                    Err(failed())
                } else {
                    Ok(id.to_string())
                }
            }
            Call::SemOp { id, ops, timeout } => {
                let mut sops: Vec<SemBuf> = ops
                    .iter()
                    .map(|&(sem_num, sem_op, sem_flg)| SemBuf {
                        sem_num,
                        sem_op,
                        sem_flg,
                    })
                    .collect();
                let ret = match timeout {
                    // SAFETY: `sops` holds `sops.len()` operations laid out
                    // as `struct sembuf`.
                    None => unsafe { libc::semop(raw(id), sops.as_mut_ptr().cast(), sops.len()) },
                    Some((sec, nsec)) => {
                        let time = libc::timespec {
                            tv_sec: *sec,
                            tv_nsec: *nsec,
                        };
                        // SAFETY: as for semop; the timeout points to `time`.
                        unsafe { semtimedop(raw(id), sops.as_mut_ptr(), sops.len(), &time) }
                    }
                };
                if ret < 0 {
                    Err(failed())
                } else {
                    Ok(String::new())
                }
            }
            Call::SemCtl { id, num, cmd, arg } => self.semctl(raw(id), *num, *cmd, *arg),
            Call::MsgGet { key, flags } => {
                // SAFETY: msgget takes integers only.
                let id = unsafe { libc::msgget(*key, *flags) };
                if id < 0 {
                    Err(failed())
                } else {
                    Ok(id.to_string())
                }
            }
            Call::MsgSnd {
                id,
                mtype,
                size,
                flags,
            } => {
                let room = usize::try_from(*size).unwrap_or(0).min(MAX_MESSAGE);
                let mut buf = mtype.to_ne_bytes().to_vec();
                buf.extend(payload(*mtype, room));
                // SAFETY: the buffer holds a long and `size` bytes (or the
                // call is refused before reading them).
                let ret = unsafe {
                    libc::msgsnd(raw(id), buf.as_ptr().cast(), *size as libc::size_t, *flags)
                };
                if ret < 0 {
                    Err(failed())
                } else {
                    Ok(String::new())
                }
            }
            Call::MsgRcv {
                id,
                size,
                mtype,
                flags,
            } => self.msgrcv(raw(id), *size, *mtype, *flags),
            Call::MsgCtl {
                id,
                cmd,
                arg,
                qbytes,
            } => match *cmd {
                cmd @ (IPC_STAT | MSG_STAT | MSG_STAT_ANY) => {
                    self.msg_stat(raw(id), cmd).map(|(text, _)| text)
                }
                cmd @ (IPC_INFO | MSG_INFO) => Self::msg_info(cmd),
                cmd => {
                    // SAFETY: all-zero is a valid msqid_ds.
                    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
                    (ds.msg_perm.uid, ds.msg_perm.gid) = owner();
                    ds.msg_perm.mode = *arg as u16 as _;
                    ds.msg_qbytes = *qbytes as _;
                    // SAFETY: IPC_SET reads one msqid_ds from `ds`; other
                    // commands read nothing or write one to it.
                    if unsafe { libc::msgctl(raw(id), cmd, &mut ds) } < 0 {
                        return Err(failed());
                    }
                    Ok(String::new())
                }
            },
            Call::ShmGet { key, size, flags } => {
                // SAFETY: shmget takes integers only.
                let id = unsafe { libc::shmget(*key, *size as libc::size_t, *flags) };
                if id < 0 {
                    Err(failed())
                } else {
                    Ok(id.to_string())
                }
            }
            Call::ShmAt { id, flags, at } => {
                let wanted = match *at {
                    0 => std::ptr::null(),
                    at => (self.hole + at as usize) as *const libc::c_void,
                };
                // SAFETY: a null address lets the system choose where; any
                // other lies in the range kept free for attachments (or, with
                // SHM_REMAP, replaces an attachment this worker made there).
                let addr = unsafe { libc::shmat(raw(id), wanted, *flags) };
                if addr as isize == -1 {
                    return Err(failed());
                }
                let len = self.shm_stat(raw(id), IPC_STAT).map_or(0, |(_, len)| len);
                let read_only = flags & libc::SHM_RDONLY != 0;
                self.attached.insert(
                    label,
                    Attached {
                        addr: addr.cast(),
                        len,
                        read_only,
                    },
                );
                Ok(String::new())
            }
            Call::ShmDt { at } => {
                // An address that is no attachment when step `at` made none here.
                let addr = self
                    .attached
                    .get(at)
                    .map_or(0x1000 as *mut u8, |attached| attached.addr);
                // SAFETY: shmdt only unmaps an attachment; this worker keeps
                // no reference into it past this call.
                if unsafe { libc::shmdt(addr.cast()) } < 0 {
                    return Err(failed());
                }
                self.attached.remove(at);
                Ok(String::new())
            }
            Call::ShmCtl { id, cmd, arg } => match *cmd {
                cmd @ (IPC_STAT | SHM_STAT | SHM_STAT_ANY) => {
                    self.shm_stat(raw(id), cmd).map(|(text, _)| text)
                }
                cmd @ (IPC_INFO | SHM_INFO) => Self::shm_info(cmd),
                cmd => {
                    // SAFETY: all-zero is a valid shmid_ds.
                    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
                    (ds.shm_perm.uid, ds.shm_perm.gid) = owner();
                    ds.shm_perm.mode = *arg as u16 as _;
                    // SAFETY: IPC_SET reads one shmid_ds from `ds`; other
                    // commands read nothing or write one to it.
                    if unsafe { libc::shmctl(raw(id), cmd, &mut ds) } < 0 {
                        return Err(failed());
                    }
                    Ok(String::new())
                }
            },
            Call::Poke { at, offset, byte } => {
                let attached = self.attached.get(at).ok_or("err unattached")?;
                let offset = *offset as usize;
                if attached.read_only || offset >= attached.len {
                    return Err("err outside".to_string());
                }
                // SAFETY: the attachment is mapped writable for `len` bytes
                // and `offset` is inside them.
                unsafe { attached.addr.add(offset).write_volatile(*byte) };
                Ok(String::new())
            }
            Call::Interrupt => Err("err interrupt is the driver's".to_string()),
            Call::Peek { at, offset, len } => {
                let attached = self.attached.get(at).ok_or("err unattached")?;
                let start = (*offset as usize).min(attached.len);
                let end = start.saturating_add(*len as usize).min(attached.len);
                let mut text = String::new();
                for at in start..end {
                    // SAFETY: the attachment is mapped readable for `len`
                    // bytes and `at` is inside them.
                    let byte = unsafe { attached.addr.add(at).read_volatile() };
                    let _ = write!(text, "{byte:02x}");
                }
                Ok(text)
            }
        }
    }

    /// The bytes of every attachment this worker holds, as a hash each, in
    /// the order the steps that made them ran: what the segments hold, read
    /// without a system call (so without changing any object's state).
    fn bytes(&self) -> String {
        let mut labels: Vec<&u32> = self.attached.keys().collect();
        labels.sort();
        let mut text = "bytes".to_string();
        for label in labels {
            let attached = &self.attached[label];
            // FNV-1a over the attachment's bytes.
            let mut hash: u32 = 0x811c_9dc5;
            for at in 0..attached.len {
                // SAFETY: the attachment is mapped readable for `len` bytes
                // and `at` is inside them.
                let byte = unsafe { attached.addr.add(at).read_volatile() };
                hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
            }
            let _ = write!(text, " @{label}:{hash:08x}");
        }
        text
    }

    fn observe(&self, kind: &str, id: i32) -> String {
        let state = match kind {
            "sem" => self.sem_stat(id, IPC_STAT).and_then(|(stat, nsems)| {
                let mut text = format!("{stat} values={}", Self::getall(id)?);
                for num in 0..nsems.min(64) as i32 {
                    let ncnt = Self::semctl_int(id, num, GETNCNT, 0)?;
                    let zcnt = Self::semctl_int(id, num, GETZCNT, 0)?;
                    let pid = self.pid(Self::semctl_int(id, num, GETPID, 0)?);
                    let _ = write!(text, " {num}:n{ncnt}:z{zcnt}:{pid}");
                }
                Ok(text)
            }),
            "msg" => self.msg_stat(id, IPC_STAT).and_then(|(stat, qnum)| {
                let mut text = stat;
                for position in 0..(qnum as i64).min(MAX_LISTED) {
                    let flags = MSG_COPY | libc::IPC_NOWAIT;
                    let message = self.msgrcv(id, MAX_MESSAGE as i64, position, flags)?;
                    let _ = write!(text, " [{message}]");
                }
                Ok(text)
            }),
            _ => self.shm_stat(id, IPC_STAT).map(|(text, _)| text),
        };
        state.unwrap_or_else(|err| err)
    }

    /// Serves the driver on standard input and output until it closes them.
    pub fn serve() {
        catch_interrupts();
        let mut worker = Worker {
            pids: Vec::new(),
            attached: HashMap::new(),
            hole: 0,
        };
        let stdin = std::io::stdin();
        let mut stdout = std::io::stdout();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { return };
            let answer = match line.split_once(' ') {
                Some(("pids", pids)) => {
                    worker.pids = pids.split(' ').filter_map(|p| p.parse().ok()).collect();
                    // A first call, so that usysv maps its arena before the
                    // free range is looked for (the kernel maps nothing).
                    let _ = Self::shm_info(libc::IPC_INFO);
                    worker.hole = free_range();
                    "ok".to_string()
                }
                Some(("step", rest)) => {
                    let parsed = rest
                        .split_once(' ')
                        .and_then(|(label, call)| Some((label.parse().ok()?, call.parse().ok()?)));
                    match parsed {
                        Some((label, call)) => match worker.call(label, &call) {
                            Ok(text) if text.is_empty() => "ok".to_string(),
                            Ok(text) => format!("ok {text}"),
                            Err(text) => text,
                        },
                        None => format!("bad step: {rest}"),
                    }
                }
                Some(("observe", rest)) => match rest.split_once(' ') {
                    Some((kind, id)) => worker.observe(kind, id.parse().unwrap_or(-1)),
                    None => format!("bad observe: {rest}"),
                },
                _ if line == "bytes" => worker.bytes(),
                _ => format!("bad line: {line}"),
            };
            if writeln!(stdout, "{answer}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return;
            }
        }
    }
}
