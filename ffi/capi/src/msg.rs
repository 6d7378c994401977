//! Message queues: `usysv_msgget`, `usysv_msgsnd`, `usysv_msgrcv`,
//! `usysv_msgctl`.

use std::ffi::{c_int, c_long, c_void};
use std::mem::size_of;
use std::slice;

use libc::{key_t, msginfo, msqid_ds, ssize_t};
use usysv_platform::usysv_core::msg::{MsgInfo, MsqidDs};
use usysv_platform::usysv_core::Errno;

use crate::call;
use crate::sem::{ipc_perm_from, read, write};

/// `MSG_STAT_ANY` (Linux 4.17), which the `libc` crate lacks.
const MSG_STAT_ANY: c_int = 13;

/// Where a message's bytes start in the caller's `struct msgbuf`: after its
/// `long mtype`.
const MTEXT: usize = size_of::<c_long>();

/// `msgget(2)`: the id of the message queue of `key` (`IPC_PRIVATE` for a
/// new one), creating it under `IPC_CREAT`.
#[no_mangle]
pub extern "C" fn usysv_msgget(key: key_t, msgflg: c_int) -> c_int {
    call(-1, |ipc| ipc.msgget(key, msgflg))
}

/// `msgsnd(2)`: queues the message at `msgp` (a `long` type above 0, then
/// `msgsz` bytes), waiting for room unless `IPC_NOWAIT`.
///
/// # Safety
///
/// `msgp` is null (`EFAULT`) or points to a `long` followed by `msgsz`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn usysv_msgsnd(
    msqid: c_int,
    msgp: *const c_void,
    msgsz: usize,
    msgflg: c_int,
) -> c_int {
    call(-1, |ipc| {
        // Linux reads the type before it checks anything else.
        // SAFETY: the caller's promise: null or a `long` first.
        let mtype = unsafe { read(msgp.cast::<c_long>())? };
        if msgsz > ipc.namespace().limits().msgmax as usize {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the caller's promise: `msgsz` bytes after the type.
        let data = unsafe { slice::from_raw_parts(msgp.cast::<u8>().add(MTEXT), msgsz) };
        ipc.msgsnd(msqid, mtype, data, msgflg).map(|()| 0)
    })
}

/// `msgrcv(2)`: takes a message into `msgp` (its type, then up to `msgsz`
/// bytes): the first (`msgtyp` 0), the first of type `msgtyp` (above 0,
/// or any other type with `MSG_EXCEPT`), or the first of the lowest type
/// up to `-msgtyp` (below 0); with `MSG_COPY`, a copy of the one at
/// position `msgtyp`. Returns the bytes received.
///
/// # Safety
///
/// `msgp` is null (`EFAULT`) or points to room for a `long` followed by
/// `msgsz` bytes.
#[no_mangle]
pub unsafe extern "C" fn usysv_msgrcv(
    msqid: c_int,
    msgp: *mut c_void,
    msgsz: usize,
    msgtyp: c_long,
    msgflg: c_int,
) -> ssize_t {
    call(-1, |ipc| {
        let bufsz = msgsz as isize as i64;
        if msqid < 0 || bufsz < 0 {
            return Err(Errno::EINVAL);
        }
        if msgp.is_null() {
            return Err(Errno::EFAULT);
        }
        // No message is longer than MSGMAX, so no more of the buffer is
        // ever written.
        let room = msgsz.min(ipc.namespace().limits().msgmax as usize);
        // SAFETY: the caller's promise: `msgsz` bytes after the type.
        let out = unsafe { slice::from_raw_parts_mut(msgp.cast::<u8>().add(MTEXT), room) };
        let (mtype, len) =
            ipc.namespace()
                .msgrcv(msqid, bufsz, msgtyp, msgflg, out, &ipc.cred())?;
        // SAFETY: the caller's promise: room for a `long` first.
        unsafe { write(msgp.cast::<c_long>(), mtype)? };
        Ok(len as ssize_t)
    })
}

/// `msgctl(2)`: `IPC_STAT`, `MSG_STAT`, `MSG_STAT_ANY` and `IPC_SET` through
/// `buf`; `IPC_INFO` and `MSG_INFO` write a `struct msginfo` through it;
/// `IPC_RMID` ignores it.
///
/// # Safety
///
/// `buf` is null (`EFAULT` where the command needs it) or points to what
/// the command reads or writes.
#[no_mangle]
pub unsafe extern "C" fn usysv_msgctl(msqid: c_int, cmd: c_int, buf: *mut msqid_ds) -> c_int {
    call(-1, |ipc| {
        if msqid < 0 || cmd < 0 {
            return Err(Errno::EINVAL);
        }
        match cmd {
            libc::IPC_STAT => {
                let ds = ipc.msgctl_stat(msqid)?;
                // SAFETY: the caller's promise for IPC_STAT.
                unsafe { write(buf, msqid_ds_from(&ds))? };
                Ok(0)
            }
            libc::MSG_STAT | MSG_STAT_ANY => {
                let (id, ds) = ipc.msgctl_stat_index(msqid, cmd == MSG_STAT_ANY)?;
                // SAFETY: the caller's promise for MSG_STAT.
                unsafe { write(buf, msqid_ds_from(&ds))? };
                Ok(id)
            }
            libc::IPC_SET => {
                // SAFETY: the caller's promise for IPC_SET.
                let ds = unsafe { read(buf.cast_const())? };
                let perm = &ds.msg_perm;
                ipc.msgctl_set(
                    msqid,
                    perm.uid,
                    perm.gid,
                    u32::from(perm.mode),
                    ds.msg_qbytes,
                )?;
                Ok(0)
            }
            libc::IPC_RMID => ipc.msgctl_rmid(msqid).map(|()| 0),
            libc::IPC_INFO | libc::MSG_INFO => {
                let (index, info) = ipc.msgctl_info(cmd == libc::MSG_INFO);
                // SAFETY: the caller's promise for IPC_INFO and MSG_INFO.
                unsafe { write(buf.cast(), msginfo_from(&info))? };
                Ok(index)
            }
            _ => Err(Errno::EINVAL),
        }
    })
}

fn msqid_ds_from(ds: &MsqidDs) -> msqid_ds {
    // SAFETY: `msqid_ds` is plain integers; all zeros is a valid value.
    let mut out: msqid_ds = unsafe { std::mem::zeroed() };
    out.msg_perm = ipc_perm_from(&ds.perm);
    out.msg_stime = ds.stime;
    out.msg_rtime = ds.rtime;
    out.msg_ctime = ds.ctime;
    out.__msg_cbytes = ds.cbytes as _;
    out.msg_qnum = ds.qnum as _;
    out.msg_qbytes = ds.qbytes as _;
    out.msg_lspid = ds.lspid;
    out.msg_lrpid = ds.lrpid;
    out
}

fn msginfo_from(info: &MsgInfo) -> msginfo {
    msginfo {
        msgpool: info.msgpool,
        msgmap: info.msgmap,
        msgmax: info.msgmax,
        msgmnb: info.msgmnb,
        msgmni: info.msgmni,
        msgssz: info.msgssz,
        msgtql: info.msgtql,
        msgseg: info.msgseg,
    }
}
