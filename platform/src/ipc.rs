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
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use usysv_core::msg::{MsgInfo, MsqidDs};
use usysv_core::sem::{SemBuf, SemInfo, SemQuery, SemidDs, Timeout};
use usysv_core::{Errno, Limits, Namespace, OpenError};

use crate::linux::{ArenaError, ArenaFile, ArenaProblem, Credentials, LinuxHost};

/// An open arena: System V IPC for this process.
pub struct Ipc {
    // Declared before `file`, so dropped first: it borrows the mapping.
    ns: Namespace<'static, LinuxHost>,
    file: Box<ArenaFile>,
    creds: Credentials,
}

impl Ipc {
    /// Opens the default arena (`USYSV_ARENA`, or the user's under
    /// `/dev/shm`), creating it if need be.
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
        let ns = Namespace::open(words, LinuxHost).map_err(|err| ArenaError {
            path: file.path().to_path_buf(),
            problem: match err {
                OpenError::Format(err) => ArenaProblem::Format(err),
                OpenError::NoProcessSlot => ArenaProblem::NoProcessSlot,
            },
        })?;
        Ok(Ipc {
            ns,
            file,
            creds: Credentials::current(),
        })
    }

    /// The namespace, for everything the engine offers beyond these calls.
    pub fn namespace(&self) -> &Namespace<'_, LinuxHost> {
        &self.ns
    }

    /// The arena file.
    pub fn file(&self) -> &ArenaFile {
        &self.file
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
}
