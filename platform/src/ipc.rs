//! The safe Rust API: an open arena and the System V calls on it.
//!
//! [`Ipc`] owns the mapping, this process's registration in it, and the
//! credentials its permission checks use (read once: a process that changes
//! its ids calls [`Ipc::refresh_credentials`]). Every call returns the errno
//! the kernel would, as an [`Errno`].
//!
//! ```no_run
//! use usysv_platform::Ipc;
//! use usysv_platform::usysv_core::sem::SemBuf;
//! use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_PRIVATE};
//!
//! let ipc = Ipc::open_default()?;
//! let set = ipc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600)?;
//! ipc.semop(set, &[SemBuf { sem_num: 0, sem_op: 1, sem_flg: 0 }])?;
//! assert_eq!(ipc.semctl_getval(set, 0)?, 1);
//! ipc.semctl_rmid(set)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU8};
use std::time::Duration;

use usysv_core::host::ProcessId;
use usysv_core::msg::{MsgInfo, MsqidDs};
use usysv_core::perm::Cred;
use usysv_core::sem::{SemBuf, SemInfo, SemQuery, SemidDs, Timeout};
use usysv_core::shm::{ShmInfo, ShmUsage, ShmidDs, SHM_EXEC, SHM_REMAP};
use usysv_core::{Errno, Limits, Namespace, OpenError};

use crate::unix::{lifecycle, segments};
use crate::unix::{ArenaError, ArenaFile, ArenaProblem, Credentials, SegmentFiles, SystemHost};
use crate::UndoList;

/// An open arena: System V IPC for this process.
pub struct Ipc {
    // Declared before `file`, so dropped first: it borrows the mapping. Boxed
    // so that the fork and exit handlers can find it while it is listed.
    ns: Box<Namespace<'static, SystemHost>>,
    file: Box<ArenaFile>,
    creds: Credentials,
}

impl Ipc {
    /// Opens the default arena (`USYSV_ARENA`, or the user's under the
    /// system's tmpfs: [`crate::default_arena_path`]), creating it if need
    /// be.
    pub fn open_default() -> Result<Ipc, ArenaError> {
        Self::with_file(ArenaFile::open_default()?)
    }

    /// Opens the arena at `path`, creating it with `limits` and file mode
    /// `mode` if there is none.
    pub fn open(path: &Path, limits: &Limits, mode: u32) -> Result<Ipc, ArenaError> {
        Self::with_file(ArenaFile::open_or_create(path, limits, mode)?)
    }

    /// Registers this process in an arena file already open.
    pub fn with_file(file: ArenaFile) -> Result<Ipc, ArenaError> {
        let file = Box::new(file);
        // SAFETY: the words are the mapping owned by `file`. The box keeps the
        // `ArenaFile` at one address and it unmaps only when dropped, which
        // happens after `ns` (field order); `ns` is reachable only through
        // `&self`, which shortens the lifetime again.
        let words: &'static [AtomicU32] = unsafe { &*(file.words() as *const [AtomicU32]) };
        let host = SystemHost::for_arena(file.path());
        let ns = Namespace::open(words, host).map_err(|err| ArenaError {
            path: file.path().to_path_buf(),
            problem: match err {
                OpenError::Format(err) => ArenaProblem::Format(err),
                OpenError::NoProcessSlot => ArenaProblem::NoProcessSlot,
            },
        })?;
        let ns = Box::new(ns);
        lifecycle::track(&ns);
        Ok(Ipc {
            ns,
            file,
            creds: Credentials::current(),
        })
    }

    /// The namespace, for everything the engine offers beyond these calls.
    pub fn namespace(&self) -> &Namespace<'_, SystemHost> {
        &self.ns
    }

    /// The arena file.
    pub fn file(&self) -> &ArenaFile {
        &self.file
    }

    /// The credentials the permission checks use, for calling the
    /// [`namespace`](Ipc::namespace) directly.
    pub fn cred(&self) -> Cred<'_> {
        self.creds.as_cred()
    }

    /// Re-reads the credentials after the process changed its ids.
    pub fn refresh_credentials(&mut self) {
        self.creds = Credentials::current();
    }

    /// `semget(2)`.
    pub fn semget(&self, key: i32, nsems: i32, flags: i32) -> Result<i32, Errno> {
        self.ns.semget(key, nsems, flags, &self.creds.as_cred())
    }

    /// `semop(2)`.
    #[inline]
    pub fn semop(&self, semid: i32, sops: &[SemBuf]) -> Result<(), Errno> {
        self.ns.semop(semid, sops, &self.creds.as_cred())
    }

    /// `semtimedop(2)`.
    pub fn semtimedop(&self, semid: i32, sops: &[SemBuf], timeout: Duration) -> Result<(), Errno> {
        let timeout = Timeout {
            sec: timeout.as_secs().min(i64::MAX as u64) as i64,
            nsec: i64::from(timeout.subsec_nanos()),
        };
        self.ns
            .semtimedop(semid, sops, Some(timeout), &self.creds.as_cred())
    }

    /// `semctl(IPC_STAT)`.
    pub fn semctl_stat(&self, semid: i32) -> Result<SemidDs, Errno> {
        self.ns.sem_stat(semid, &self.creds.as_cred())
    }

    /// `semctl(SEM_STAT)`, or with `any`, `semctl(SEM_STAT_ANY)`: the set in
    /// table slot `index`, and its id.
    pub fn semctl_stat_index(&self, index: i32, any: bool) -> Result<(i32, SemidDs), Errno> {
        self.ns.sem_stat_index(index, any, &self.creds.as_cred())
    }

    /// `semctl(IPC_SET)`.
    pub fn semctl_set(&self, semid: i32, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
        self.ns
            .sem_set(semid, &self.creds.as_cred(), uid, gid, mode)
    }

    /// `semctl(IPC_RMID)`.
    pub fn semctl_rmid(&self, semid: i32) -> Result<(), Errno> {
        self.ns.sem_remove(semid, &self.creds.as_cred())
    }

    /// `semctl(IPC_INFO)` or, with `usage`, `semctl(SEM_INFO)`.
    pub fn semctl_info(&self, usage: bool) -> (i32, SemInfo) {
        self.ns.sem_info(usage)
    }

    /// `semctl(GETVAL)`.
    pub fn semctl_getval(&self, semid: i32, semnum: i32) -> Result<i32, Errno> {
        self.ns
            .sem_query(semid, semnum, SemQuery::Value, &self.creds.as_cred())
    }

    /// `semctl(GETPID | GETNCNT | GETZCNT | GETVAL)`.
    pub fn semctl_query(&self, semid: i32, semnum: i32, query: SemQuery) -> Result<i32, Errno> {
        self.ns
            .sem_query(semid, semnum, query, &self.creds.as_cred())
    }

    /// `semctl(GETALL)`.
    pub fn semctl_getall(&self, semid: i32) -> Result<Vec<u16>, Errno> {
        let mut values = Vec::new();
        self.ns
            .sem_getall(semid, &self.creds.as_cred(), &mut |_, value| {
                values.push(value)
            })?;
        Ok(values)
    }

    /// `semctl(SETVAL)`.
    pub fn semctl_setval(&self, semid: i32, semnum: i32, value: i32) -> Result<(), Errno> {
        self.ns
            .sem_setval(semid, semnum, value, &self.creds.as_cred())
    }

    /// `semctl(SETALL)`: `values` must hold one value per semaphore.
    pub fn semctl_setall(&self, semid: i32, values: &[u16]) -> Result<(), Errno> {
        let nsems = self.ns.sem_count(semid)?;
        if values.len() < nsems as usize {
            return Err(Errno::EFAULT);
        }
        self.ns.sem_setall(semid, &self.creds.as_cred(), &|index| {
            values[index as usize]
        })
    }

    /// Reads the `SEM_UNDO` list of the registered process `pid` (running,
    /// or dead with a kept list); with `hold`, also marks it checkpointed, so
    /// that if the process dies without leaving the list is kept for
    /// [`Ipc::undo_import`] instead of being applied (`EPERM` unless the
    /// process is this one, one of the same user, or the caller has
    /// `CAP_SYS_ADMIN`). See [`usysv_core::checkpoint`].
    pub fn undo_export(&self, pid: u32, hold: bool) -> Result<UndoList, Errno> {
        let mut adjustments = Vec::new();
        let process = self
            .ns
            .undo_export(pid, hold, &self.creds.as_cred(), &mut |a| {
                adjustments.push(a)
            })?;
        Ok(UndoList {
            process,
            adjustments,
        })
    }

    /// In a restarted process: takes over the list that `list`'s process
    /// kept when it died, if it holds exactly `list`'s adjustments (those of
    /// sets removed since aside); this process then applies them when it
    /// exits. Call it before the first `SEM_UNDO` operation (`EBUSY` after).
    pub fn undo_import(&self, list: &UndoList) -> Result<(), Errno> {
        self.ns.undo_import(list.process, &list.adjustments)
    }

    /// Gives up `process`'s checkpoint: a kept list is applied as its exit
    /// would have applied it; a running process's list is no longer held.
    pub fn undo_release(&self, process: ProcessId) -> Result<(), Errno> {
        self.ns.undo_release(process, &self.creds.as_cred())
    }

    /// `msgget(2)`.
    pub fn msgget(&self, key: i32, flags: i32) -> Result<i32, Errno> {
        self.ns.msgget(key, flags, &self.creds.as_cred())
    }

    /// `msgsnd(2)`: a message of type `mtype` holding `data`.
    pub fn msgsnd(&self, msqid: i32, mtype: i64, data: &[u8], flags: i32) -> Result<(), Errno> {
        self.ns
            .msgsnd(msqid, mtype, data, flags, &self.creds.as_cred())
    }

    /// `msgrcv(2)` into `buf` (its length is `msgsz`): the message's type and
    /// the bytes received.
    pub fn msgrcv(
        &self,
        msqid: i32,
        buf: &mut [u8],
        msgtyp: i64,
        flags: i32,
    ) -> Result<(i64, usize), Errno> {
        let bufsz = i64::try_from(buf.len()).map_err(|_| Errno::EINVAL)?;
        self.ns
            .msgrcv(msqid, bufsz, msgtyp, flags, buf, &self.creds.as_cred())
    }

    /// `msgctl(IPC_STAT)`.
    pub fn msgctl_stat(&self, msqid: i32) -> Result<MsqidDs, Errno> {
        self.ns.msg_stat(msqid, &self.creds.as_cred())
    }

    /// `msgctl(MSG_STAT)`, or with `any`, `msgctl(MSG_STAT_ANY)`.
    pub fn msgctl_stat_index(&self, index: i32, any: bool) -> Result<(i32, MsqidDs), Errno> {
        self.ns.msg_stat_index(index, any, &self.creds.as_cred())
    }

    /// `msgctl(IPC_SET)`.
    pub fn msgctl_set(
        &self,
        msqid: i32,
        uid: u32,
        gid: u32,
        mode: u32,
        qbytes: u64,
    ) -> Result<(), Errno> {
        self.ns
            .msg_set(msqid, &self.creds.as_cred(), uid, gid, mode, qbytes)
    }

    /// `msgctl(IPC_RMID)`.
    pub fn msgctl_rmid(&self, msqid: i32) -> Result<(), Errno> {
        self.ns.msg_remove(msqid, &self.creds.as_cred())
    }

    /// `msgctl(IPC_INFO)` or, with `usage`, `msgctl(MSG_INFO)`.
    pub fn msgctl_info(&self, usage: bool) -> (i32, MsgInfo) {
        self.ns.msg_info(usage)
    }

    /// `shmget(2)`: a new segment's bytes are a file beside the arena.
    pub fn shmget(&self, key: i32, size: usize, flags: i32) -> Result<i32, Errno> {
        self.ns.shmget(
            key,
            size as u64,
            flags,
            &self.creds.as_cred(),
            |id, size, perm| self.segments()?.create(id, size, flags, perm),
        )
    }

    /// `shmat(2)`: attaches segment `shmid` at an address the system
    /// chooses (`addr` 0) or at `addr` (`SHM_RND` rounds it down), read-only
    /// with `SHM_RDONLY`. The attachment detaches when dropped. An address
    /// already mapped is `EINVAL`; replacing a mapping (`SHM_REMAP`) is for
    /// [`Ipc::shmat_raw`] only, and is `EINVAL` here.
    pub fn shmat(&self, shmid: i32, addr: usize, flags: i32) -> Result<Attachment<'_>, Errno> {
        if flags & SHM_REMAP != 0 {
            return Err(Errno::EINVAL);
        }
        let (at, segsz) = self.attach(shmid, addr, flags)?;
        Ok(Attachment {
            ipc: self,
            addr: NonNull::new(at as *mut u8).ok_or(Errno::EINVAL)?,
            segsz: segsz as usize,
        })
    }

    /// `shmat(2)` with the C interface: the address of the attachment, which
    /// lasts until [`Ipc::shmdt_raw`].
    ///
    /// # Safety
    ///
    /// With `SHM_REMAP`, whatever the process had mapped at the address is
    /// replaced: nothing may use that memory any more.
    pub unsafe fn shmat_raw(&self, shmid: i32, addr: usize, flags: i32) -> Result<*mut u8, Errno> {
        Ok(self.attach(shmid, addr, flags)?.0 as *mut u8)
    }

    /// `shmdt(2)` with the C interface: ends the attachment made at `addr`
    /// (`EINVAL` if there is none) and unmaps it, every piece of it.
    ///
    /// # Safety
    ///
    /// Nothing may use the attachment's memory any more.
    pub unsafe fn shmdt_raw(&self, addr: *const u8) -> Result<(), Errno> {
        self.detach(addr as usize)
    }

    /// The segment files: `ENOMEM` if the arena's directory could not be
    /// opened, as the kernel fails a segment it cannot back.
    fn segments(&self) -> Result<&SegmentFiles, Errno> {
        self.ns.host().segments().ok_or(Errno::ENOMEM)
    }

    fn attach(&self, shmid: i32, addr: usize, flags: i32) -> Result<(usize, u64), Errno> {
        if shmid < 0 {
            return Err(Errno::EINVAL);
        }
        let at = segments::attach_address(addr, flags)?;
        let _held = lifecycle::hold_attachments();
        let info = self
            .ns
            .shm_attach_check(shmid, flags, &self.creds.as_cred())?;
        let len = segments::mapped_len(info.segsz)?;
        let mapped =
            self.segments()?
                .map(shmid, info.token, at, len, flags, flags & SHM_EXEC != 0)?;
        if flags & SHM_REMAP != 0 {
            // What the new mapping covered of earlier attachments is gone,
            // as the kernel's mappings are when replaced.
            if let Err(err) = self.ns.shm_unmapped(mapped as u64, len as u64) {
                segments::unmap(mapped, len);
                return Err(err);
            }
        }
        if let Err(err) = self.ns.shm_attached(shmid, mapped as u64, len as u64) {
            segments::unmap(mapped, len);
            return Err(err);
        }
        Ok((mapped, info.segsz))
    }

    fn detach(&self, addr: usize) -> Result<(), Errno> {
        let _held = lifecycle::hold_attachments();
        self.ns.shm_detach(addr as u64, &mut |start, len| {
            segments::unmap(start as usize, len as usize)
        })?;
        Ok(())
    }

    /// `shmctl(IPC_STAT)`.
    pub fn shmctl_stat(&self, shmid: i32) -> Result<ShmidDs, Errno> {
        self.ns.shm_stat(shmid, &self.creds.as_cred())
    }

    /// `shmctl(SHM_STAT)`, or with `any`, `shmctl(SHM_STAT_ANY)`.
    pub fn shmctl_stat_index(&self, index: i32, any: bool) -> Result<(i32, ShmidDs), Errno> {
        self.ns.shm_stat_index(index, any, &self.creds.as_cred())
    }

    /// `shmctl(IPC_SET)`: the segment's file follows where the kernel lets
    /// this process change it.
    pub fn shmctl_set(&self, shmid: i32, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
        let token = self
            .ns
            .shm_set(shmid, &self.creds.as_cred(), uid, gid, mode)?;
        if let Ok(segments) = self.segments() {
            segments.set_owner_and_mode(shmid, token, uid, gid, mode);
        }
        Ok(())
    }

    /// `shmctl(IPC_RMID)`.
    pub fn shmctl_rmid(&self, shmid: i32) -> Result<(), Errno> {
        self.ns.shm_remove(shmid, &self.creds.as_cred())?;
        Ok(())
    }

    /// `shmctl(SHM_LOCK)`, or with `lock` false, `shmctl(SHM_UNLOCK)`.
    pub fn shmctl_lock(&self, shmid: i32, lock: bool) -> Result<(), Errno> {
        self.ns.shm_lock(shmid, &self.creds.as_cred(), lock)
    }

    /// `shmctl(IPC_INFO)`.
    pub fn shmctl_info(&self) -> (i32, ShmInfo) {
        self.ns.shm_info()
    }

    /// `shmctl(SHM_INFO)`: `shm_rss` counts the pages the segments' files
    /// hold, as the kernel counts the pages its segments have touched.
    pub fn shmctl_usage(&self) -> (i32, ShmUsage) {
        let (index, mut usage) = self.ns.shm_usage();
        if let Some(segments) = self.ns.host().segments() {
            usage.shm_rss = segments.resident_pages();
        }
        (index, usage)
    }
}

impl Drop for Ipc {
    fn drop(&mut self) {
        lifecycle::forget(&self.ns);
    }
}

/// A shared memory attachment: detached when dropped.
///
/// The memory is shared with other processes, so it is offered as atomics
/// ([`Attachment::bytes`], [`Attachment::words`]) or copied in and out
/// ([`Attachment::read`], [`Attachment::write`]); order accesses with a
/// semaphore or with the atomics, as C programs do. Writing to a read-only
/// attachment faults, as in the kernel.
pub struct Attachment<'a> {
    ipc: &'a Ipc,
    addr: NonNull<u8>,
    segsz: usize,
}

impl Attachment<'_> {
    /// Where the attachment starts.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.segsz
    }

    /// Whether the segment is empty (it never is: SHMMIN is 1).
    pub fn is_empty(&self) -> bool {
        self.segsz == 0
    }

    /// The segment's bytes.
    pub fn bytes(&self) -> &[AtomicU8] {
        // SAFETY: the mapping holds `segsz` bytes and lasts while `self`
        // does; atomics allow other processes to access them concurrently.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().cast(), self.segsz) }
    }

    /// The segment's whole 32-bit words (the attachment is page-aligned).
    pub fn words(&self) -> &[AtomicU32] {
        // SAFETY: as for `bytes`; the start is page-aligned, so aligned for
        // `AtomicU32`, and the words end within the segment.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().cast(), self.segsz / 4) }
    }

    /// Copies bytes out, from `offset`. Panics past the segment's end.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        let bytes = &self.bytes()[offset..offset + buf.len()];
        for (out, byte) in buf.iter_mut().zip(bytes) {
            *out = byte.load(std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Copies bytes in, at `offset`. Panics past the segment's end.
    pub fn write(&self, offset: usize, data: &[u8]) {
        let bytes = &self.bytes()[offset..offset + data.len()];
        for (byte, value) in bytes.iter().zip(data) {
            byte.store(*value, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `shmdt(2)`, reporting its error.
    pub fn detach(self) -> Result<(), Errno> {
        let this = std::mem::ManuallyDrop::new(self);
        this.ipc.detach(this.addr.as_ptr() as usize)
    }
}

impl Drop for Attachment<'_> {
    fn drop(&mut self) {
        let _ = self.ipc.detach(self.addr.as_ptr() as usize);
    }
}
