//! A model of the Linux kernel's System V IPC in plain Rust — lists, maps
//! and counters, no arena — for
//! `operation_sequences_agree_with_a_model_of_the_kernel`.
//!
//! It follows `ipc/util.c`, `ipc/sem.c`, `ipc/msg.c` and `ipc/shm.c`: the
//! order in which each call checks its arguments, ids, permissions and
//! limits; `ipc_idr_alloc`'s choice of index and sequence number; and where
//! the kernel was unclear, what it did on this machine when asked by a
//! small C program. Calls that would sleep are not made (the test turns a
//! `semop` that would into one with a zero timeout), so no process ever
//! waits, and the counts of waiters stay 0.
//!
//! Times are compared as set or not (the seconds are not deterministic).
//! `IPC_INFO` figures that the kernel takes from compile-time constants
//! rather than from its sysctls (`SEMMAP`, `SEMMNU`, `SEMUME`, `MSGPOOL`,
//! `MSGMAP`, `MSGTQL`, `SHMSEG`) are not compared: an arena takes them
//! from its own limits.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::limits::IPCMNI;
use crate::msg::{MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use crate::perm::{IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE, MODE_BITS};
use crate::sem::{SemBuf, SemQuery, Timeout, SEM_UNDO};
use crate::shm::{PAGE_SIZE, SHM_DEST, SHM_EXEC, SHM_LOCKED, SHM_RDONLY};
use crate::{Cred, Errno, IpcPerm, Kind, Limits};

/// Who makes a call: the usual owner of the objects, a member of the
/// owner's group, or someone else. None has a capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Who {
    Owner,
    Peer,
    Stranger,
}

impl Who {
    pub(super) fn cred(self) -> Cred<'static> {
        let (euid, egid) = match self {
            Who::Owner => (1000, 1000),
            Who::Peer => (2000, 1000),
            Who::Stranger => (3000, 3000),
        };
        Cred {
            euid,
            egid,
            groups: &[],
            ipc_owner: false,
            sys_admin: false,
            sys_resource: false,
        }
    }
}

/// How a call names an object: the `n`th live object of its kind (by
/// index), the `n`th id of its kind handed out so far (removed ones
/// included), or a made-up id.
#[derive(Clone, Copy, Debug)]
pub(super) enum Obj {
    Live(u8),
    Made(u8),
    Raw(i32),
}

/// One call of the System V interface, as a process makes it.
#[derive(Clone, Debug)]
pub(super) enum Call {
    SemGet {
        key: i32,
        nsems: i32,
        flags: i32,
    },
    /// `semtimedop`; no timeout for `semop`.
    SemOp {
        set: Obj,
        sops: Vec<SemBuf>,
        timeout: Option<Timeout>,
    },
    SemSetVal {
        set: Obj,
        num: i32,
        value: i32,
    },
    /// `GETVAL`, `GETPID`, `GETNCNT`, `GETZCNT`.
    SemQuery {
        set: Obj,
        num: i32,
        query: SemQuery,
    },
    SemGetAll {
        set: Obj,
    },
    /// `SETALL`, the values repeated over the set.
    SemSetAll {
        set: Obj,
        values: Vec<u16>,
    },
    SemStat {
        set: Obj,
    },
    SemSet {
        set: Obj,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    SemRemove {
        set: Obj,
    },
    SemInfo {
        usage: bool,
    },
    SemStatIndex {
        index: i32,
        any: bool,
    },
    MsgGet {
        key: i32,
        flags: i32,
    },
    /// `msgsnd` with `IPC_NOWAIT` of `len` bytes made from `fill`.
    MsgSnd {
        queue: Obj,
        mtype: i64,
        len: u16,
        fill: u8,
    },
    MsgRcv {
        queue: Obj,
        bufsz: i64,
        msgtyp: i64,
        flags: i32,
    },
    MsgStat {
        queue: Obj,
    },
    MsgSet {
        queue: Obj,
        uid: u32,
        gid: u32,
        mode: u32,
        qbytes: u64,
    },
    MsgRemove {
        queue: Obj,
    },
    MsgInfo {
        usage: bool,
    },
    MsgStatIndex {
        index: i32,
        any: bool,
    },
    ShmGet {
        key: i32,
        size: u64,
        flags: i32,
    },
    /// `shmat` at the next free address.
    ShmAttach {
        segment: Obj,
        flags: i32,
    },
    /// `shmdt` of the caller's `which`th attachment (by address), or of an
    /// address it has none at.
    ShmDetach {
        which: u8,
    },
    ShmStat {
        segment: Obj,
    },
    ShmSet {
        segment: Obj,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    ShmRemove {
        segment: Obj,
    },
    ShmLock {
        segment: Obj,
        lock: bool,
    },
    ShmInfo {
        usage: bool,
    },
    ShmStatIndex {
        index: i32,
        any: bool,
    },
    /// The process exits (and another takes its place).
    Exit,
}

/// A semaphore set's `IPC_STAT`, times as set or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SemSeen {
    pub perm: IpcPerm,
    pub otime: bool,
    pub ctime: bool,
    pub nsems: u32,
}

/// A queue's `IPC_STAT`, times as set or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MsgSeen {
    pub perm: IpcPerm,
    pub stime: bool,
    pub rtime: bool,
    pub ctime: bool,
    pub cbytes: u64,
    pub qnum: u64,
    pub qbytes: u64,
    pub lspid: i32,
    pub lrpid: i32,
}

/// A segment's `IPC_STAT`, times as set or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ShmSeen {
    pub perm: IpcPerm,
    pub segsz: u64,
    pub atime: bool,
    pub dtime: bool,
    pub ctime: bool,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
}

/// What a call answers when it succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    Done,
    Id(i32),
    Value(i32),
    Values(Vec<u16>),
    Received(i64, Vec<u8>),
    Sem(SemSeen),
    Msg(MsgSeen),
    Shm(ShmSeen),
    /// A `*_STAT` by index: the id, and the object.
    Indexed(i32, std::boxed::Box<Answer>),
    /// `IPC_INFO` or `*_INFO`: the highest index in use (or 0), and the
    /// figures compared (see the module docs), in the order of the C
    /// structure.
    Info(i32, Vec<i64>),
    Attached(u64),
    Detached {
        shmid: i32,
        len: u64,
        destroyed: bool,
    },
    Removed(bool),
}

/// The bytes of a message of `len` bytes made from `fill`.
pub(super) fn message_bytes(len: u16, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill.wrapping_add((i as u8).wrapping_mul(7)))
        .collect()
}

/// An object's `kern_ipc_perm`.
#[derive(Clone, Copy, Debug)]
struct Perm {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
}

impl Perm {
    /// `ipcperms()`.
    fn allows(&self, cred: &Cred<'_>, flag: u32) -> bool {
        let requested = (flag >> 6) | (flag >> 3) | flag;
        let granted = if cred.euid == self.cuid || cred.euid == self.uid {
            self.mode >> 6
        } else if cred.in_group(self.cgid) || cred.in_group(self.gid) {
            self.mode >> 3
        } else {
            self.mode
        };
        requested & !granted & 0o7 == 0
    }

    /// `ipcctl_obtain_check()`: the owner or the creator.
    fn owned_by(&self, cred: &Cred<'_>) -> bool {
        cred.euid == self.cuid || cred.euid == self.uid
    }

    /// `ipc_update_perm()`.
    fn update(&mut self, uid: u32, gid: u32, mode: u32) {
        self.uid = uid;
        self.gid = gid;
        self.mode = (self.mode & !MODE_BITS) | (mode & MODE_BITS);
    }

    fn seen(&self, id: i32) -> IpcPerm {
        IpcPerm {
            key: self.key,
            uid: self.uid,
            gid: self.gid,
            cuid: self.cuid,
            cgid: self.cgid,
            mode: self.mode,
            seq: id as u32 / IPCMNI,
        }
    }
}

struct Object<T> {
    id: i32,
    perm: Perm,
    body: T,
}

/// One kind's `ipc_ids`: the objects by index, and the state of
/// `ipc_idr_alloc`.
struct Table<T> {
    objects: BTreeMap<u32, Object<T>>,
    seq: u32,
    last: Option<u32>,
    next: u32,
    limit: u32,
}

/// What `ipcget()` found for a key.
enum Lookup {
    Found(i32),
    Create,
}

impl<T> Table<T> {
    fn new(limit: u32) -> Self {
        Table {
            objects: BTreeMap::new(),
            seq: 0,
            last: None,
            next: 0,
            limit,
        }
    }

    /// `ipc_obtain_object_check()`.
    fn get(&self, id: i32) -> Option<&Object<T>> {
        let id = u32::try_from(id).ok()?;
        self.objects
            .get(&(id % IPCMNI))
            .filter(|object| object.id as u32 == id)
    }

    fn get_mut(&mut self, id: i32) -> Option<&mut Object<T>> {
        let id = u32::try_from(id).ok()?;
        self.objects
            .get_mut(&(id % IPCMNI))
            .filter(|object| object.id as u32 == id)
    }

    /// `ipc_obtain_object_idr()`, for the `*_STAT` commands.
    fn at_index(&self, index: i32) -> Option<&Object<T>> {
        let index = u32::try_from(index).ok()?;
        self.objects.get(&(index % IPCMNI))
    }

    fn max_index(&self) -> i32 {
        self.objects
            .keys()
            .next_back()
            .map_or(0, |&index| index as i32)
    }

    /// `ipcget()` up to the creation: an existing object (after `check`,
    /// then the permission check for the mode bits of `flags`), or the
    /// go-ahead to make one.
    fn lookup(
        &self,
        key: i32,
        flags: i32,
        cred: &Cred<'_>,
        check: impl FnOnce(&T) -> Result<(), Errno>,
    ) -> Result<Lookup, Errno> {
        if key == IPC_PRIVATE {
            return Ok(Lookup::Create);
        }
        let found = self.objects.values().find(|object| object.perm.key == key);
        match found {
            Some(object) => {
                if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                check(&object.body)?;
                if !object.perm.allows(cred, flags as u32) {
                    return Err(Errno::EACCES);
                }
                Ok(Lookup::Found(object.id))
            }
            None if flags & IPC_CREAT == 0 => Err(Errno::ENOENT),
            None => Ok(Lookup::Create),
        }
    }

    /// `ipc_addid()`: `ENOSPC` at the limit; the index and sequence number
    /// as `ipc_idr_alloc()` chooses them (`idr_alloc_cyclic` below
    /// max(in_use × 3/2, 64)).
    fn add(&mut self, key: i32, flags: i32, cred: &Cred<'_>, body: T) -> Result<i32, Errno> {
        let in_use = self.objects.len() as u32;
        if in_use >= self.limit {
            return Err(Errno::ENOSPC);
        }
        let window = (in_use * 3 / 2).clamp(64, IPCMNI);
        let free = |from: u32| (from..window).find(|index| !self.objects.contains_key(index));
        let index = free(self.next).or_else(|| free(0)).ok_or(Errno::ENOSPC)?;
        if self.last.is_some_and(|last| index <= last) {
            self.seq = (self.seq + 1) % 65536;
        }
        self.last = Some(index);
        self.next = index + 1;
        let id = (self.seq * IPCMNI + index) as i32;
        let perm = Perm {
            key,
            uid: cred.euid,
            gid: cred.egid,
            cuid: cred.euid,
            cgid: cred.egid,
            mode: flags as u32 & MODE_BITS,
        };
        self.objects.insert(index, Object { id, perm, body });
        Ok(id)
    }

    fn remove(&mut self, id: i32) -> Option<Object<T>> {
        self.objects.remove(&(id as u32 % IPCMNI))
    }
}

struct SemSet {
    values: Vec<u16>,
    pids: Vec<u32>,
    otime: bool,
}

struct Queue {
    messages: Vec<Message>,
    qbytes: u64,
    lspid: u32,
    lrpid: u32,
    stime: bool,
    rtime: bool,
}

impl Queue {
    fn cbytes(&self) -> u64 {
        self.messages.iter().map(|m| m.1.len() as u64).sum()
    }
}

struct Segment {
    segsz: u64,
    cpid: u32,
    lpid: u32,
    atime: bool,
    dtime: bool,
}

struct Attachment {
    pid: u32,
    addr: u64,
    shmid: i32,
    len: u64,
}

/// What a `semop` would do now.
pub(super) enum Plan {
    /// Succeed, leaving these values and the caller's adjustments.
    Apply(Vec<u16>, Option<Vec<i32>>),
    /// Sleep (without `IPC_NOWAIT` on the operation that blocks).
    Sleep,
}

fn pages(size: u64) -> u64 {
    size.div_ceil(PAGE_SIZE)
}

fn valid_timeout(timeout: &Timeout) -> bool {
    timeout.sec >= 0 && (0..1_000_000_000).contains(&timeout.nsec)
}

/// The kernel's System V IPC state, for a namespace made with `limits`.
pub(super) struct Kernel {
    limits: Limits,
    sems: Table<SemSet>,
    queues: Table<Queue>,
    segments: Table<Segment>,
    /// `SEM_UNDO` adjustments by process and set (`struct sem_undo`).
    undo: BTreeMap<(u32, i32), Vec<i32>>,
    attachments: Vec<Attachment>,
    used_sems: u32,
    shm_pages: u64,
    next_addr: u64,
    /// Every id handed out, by kind, for [`Obj::Made`].
    made: [Vec<i32>; 3],
}

impl Kernel {
    pub(super) fn new(limits: Limits) -> Self {
        Kernel {
            limits,
            sems: Table::new(limits.semmni),
            queues: Table::new(limits.msgmni),
            segments: Table::new(limits.shmmni),
            undo: BTreeMap::new(),
            attachments: Vec::new(),
            used_sems: 0,
            shm_pages: 0,
            next_addr: 0x7f00_0000_0000,
            made: [Vec::new(), Vec::new(), Vec::new()],
        }
    }

    /// The id `obj` names among the objects of `kind`: with none live, the
    /// `n`th made; with none made, `n`.
    pub(super) fn resolve(&self, kind: Kind, obj: Obj) -> i32 {
        let live: Vec<i32> = match kind {
            Kind::Sem => self.sems.objects.values().map(|o| o.id).collect(),
            Kind::Msg => self.queues.objects.values().map(|o| o.id).collect(),
            Kind::Shm => self.segments.objects.values().map(|o| o.id).collect(),
        };
        let made = &self.made[kind as usize];
        let nth = |ids: &[i32], n: u8| ids.get(usize::from(n) % ids.len().max(1)).copied();
        match obj {
            Obj::Live(n) => nth(&live, n).or(nth(made, n)).unwrap_or(i32::from(n)),
            Obj::Made(n) => nth(made, n).unwrap_or(i32::from(n)),
            Obj::Raw(id) => id,
        }
    }

    /// The address the next `shmat` returns.
    pub(super) fn next_address(&self) -> u64 {
        self.next_addr
    }

    /// The address `shmdt` of the `which`th attachment of `pid` takes (in
    /// the order they were made), or for `which` from 224 on, or with none,
    /// one it has no attachment at.
    pub(super) fn detach_address(&self, pid: u32, which: u8) -> u64 {
        let mine: Vec<u64> = self
            .attachments
            .iter()
            .filter(|a| a.pid == pid)
            .map(|a| a.addr)
            .collect();
        match mine.len() {
            0 => 0x1000,
            _ if which >= 224 => 0x1000,
            n => mine[usize::from(which) % n],
        }
    }

    /// Makes `call` as process `pid` with `cred`. A `semop` that would
    /// sleep must have a timeout (see [`Kernel::semop_plan`]).
    pub(super) fn call(&mut self, pid: u32, cred: &Cred<'_>, call: &Call) -> Result<Answer, Errno> {
        match *call {
            Call::SemGet { key, nsems, flags } => self.semget(key, nsems, flags, cred),
            Call::SemOp {
                set,
                ref sops,
                timeout,
            } => {
                let semid = self.resolve(Kind::Sem, set);
                self.semop(pid, cred, semid, sops, timeout)
            }
            Call::SemSetVal { set, num, value } => {
                let semid = self.resolve(Kind::Sem, set);
                self.sem_setval(pid, cred, semid, num, value)
            }
            Call::SemQuery { set, num, query } => {
                let object = self.sem_readable(self.resolve(Kind::Sem, set), cred)?;
                let index = usize::try_from(num).map_err(|_| Errno::EINVAL)?;
                let set = &object.body;
                let value = *set.values.get(index).ok_or(Errno::EINVAL)?;
                Ok(Answer::Value(match query {
                    SemQuery::Value => i32::from(value),
                    SemQuery::Pid => set.pids[index] as i32,
                    SemQuery::WaitingToDecrease | SemQuery::WaitingForZero => 0,
                }))
            }
            Call::SemGetAll { set } => {
                let object = self.sem_readable(self.resolve(Kind::Sem, set), cred)?;
                Ok(Answer::Values(object.body.values.clone()))
            }
            Call::SemSetAll { set, ref values } => {
                let semid = self.resolve(Kind::Sem, set);
                self.sem_setall(pid, cred, semid, values)
            }
            Call::SemStat { set } => {
                let object = self.sem_readable(self.resolve(Kind::Sem, set), cred)?;
                Ok(Answer::Sem(Self::sem_seen(object)))
            }
            Call::SemSet {
                set,
                uid,
                gid,
                mode,
            } => {
                let semid = self.resolve(Kind::Sem, set);
                let object = Self::owned(self.sems.get_mut(semid), semid, cred)?;
                object.perm.update(uid, gid, mode);
                Ok(Answer::Done)
            }
            Call::SemRemove { set } => {
                let semid = self.resolve(Kind::Sem, set);
                Self::owned(self.sems.get_mut(semid), semid, cred)?;
                let object = self.sems.remove(semid).ok_or(Errno::EINVAL)?;
                self.used_sems -= object.body.values.len() as u32;
                self.undo.retain(|&(_, of), _| of != semid);
                Ok(Answer::Done)
            }
            Call::SemInfo { usage } => {
                let l = &self.limits;
                let (semusz, semaem) = if usage {
                    (self.sems.objects.len() as i64, i64::from(self.used_sems))
                } else {
                    (20, i64::from(l.semvmx))
                };
                Ok(Answer::Info(
                    self.sems.max_index(),
                    std::vec![
                        i64::from(l.semmni),
                        i64::from(l.semmns),
                        i64::from(l.semmsl),
                        i64::from(l.semopm),
                        semusz,
                        i64::from(l.semvmx),
                        semaem,
                    ],
                ))
            }
            Call::SemStatIndex { index, any } => {
                let object = self.sems.at_index(index).ok_or(Errno::EINVAL)?;
                if !any && !object.perm.allows(cred, 0o444) {
                    return Err(Errno::EACCES);
                }
                Ok(Answer::Indexed(
                    object.id,
                    std::boxed::Box::new(Answer::Sem(Self::sem_seen(object))),
                ))
            }
            Call::MsgGet { key, flags } => {
                let id = match self.queues.lookup(key, flags, cred, |_| Ok(()))? {
                    Lookup::Found(id) => id,
                    Lookup::Create => {
                        let queue = Queue {
                            messages: Vec::new(),
                            qbytes: u64::from(self.limits.msgmnb),
                            lspid: 0,
                            lrpid: 0,
                            stime: false,
                            rtime: false,
                        };
                        let id = self.queues.add(key, flags, cred, queue)?;
                        self.made[Kind::Msg as usize].push(id);
                        id
                    }
                };
                Ok(Answer::Id(id))
            }
            Call::MsgSnd {
                queue,
                mtype,
                len,
                fill,
            } => {
                let msqid = self.resolve(Kind::Msg, queue);
                self.msgsnd(pid, cred, msqid, mtype, message_bytes(len, fill))
            }
            Call::MsgRcv {
                queue,
                bufsz,
                msgtyp,
                flags,
            } => {
                let msqid = self.resolve(Kind::Msg, queue);
                self.msgrcv(pid, cred, msqid, bufsz, msgtyp, flags)
            }
            Call::MsgStat { queue } => {
                let msqid = self.resolve(Kind::Msg, queue);
                let object = self.queues.get(msqid).ok_or(Errno::EINVAL)?;
                if !object.perm.allows(cred, 0o444) {
                    return Err(Errno::EACCES);
                }
                Ok(Answer::Msg(Self::msg_seen(object)))
            }
            Call::MsgSet {
                queue,
                uid,
                gid,
                mode,
                qbytes,
            } => {
                let msqid = self.resolve(Kind::Msg, queue);
                let msgmnb = self.limits.msgmnb;
                let object = Self::owned(self.queues.get_mut(msqid), msqid, cred)?;
                // What reaches the kernel is the low 32 bits, compared as
                // a signed int (measured: 0x1_0000_0005 is taken as 5).
                let qbytes = qbytes as u32 as i32;
                if !(0..=msgmnb as i32).contains(&qbytes) {
                    return Err(Errno::EPERM);
                }
                object.perm.update(uid, gid, mode);
                object.body.qbytes = u64::from(qbytes as u32);
                Ok(Answer::Done)
            }
            Call::MsgRemove { queue } => {
                let msqid = self.resolve(Kind::Msg, queue);
                Self::owned(self.queues.get_mut(msqid), msqid, cred)?;
                self.queues.remove(msqid);
                Ok(Answer::Done)
            }
            Call::MsgInfo { usage } => {
                let l = &self.limits;
                let mut figures = std::vec![
                    i64::from(l.msgmax),
                    i64::from(l.msgmnb),
                    i64::from(l.msgmni),
                    16,
                    0xffff,
                ];
                if usage {
                    let queues = self.queues.objects.values();
                    figures.extend([
                        self.queues.objects.len() as i64,
                        queues.clone().map(|q| q.body.messages.len() as i64).sum(),
                        queues.map(|q| q.body.cbytes() as i64).sum(),
                    ]);
                }
                Ok(Answer::Info(self.queues.max_index(), figures))
            }
            Call::MsgStatIndex { index, any } => {
                let object = self.queues.at_index(index).ok_or(Errno::EINVAL)?;
                if !any && !object.perm.allows(cred, 0o444) {
                    return Err(Errno::EACCES);
                }
                Ok(Answer::Indexed(
                    object.id,
                    std::boxed::Box::new(Answer::Msg(Self::msg_seen(object))),
                ))
            }
            Call::ShmGet { key, size, flags } => self.shmget(pid, cred, key, size, flags),
            Call::ShmAttach { segment, flags } => {
                let shmid = self.resolve(Kind::Shm, segment);
                self.shmat(pid, cred, shmid, flags)
            }
            Call::ShmDetach { which } => {
                let addr = self.detach_address(pid, which);
                self.shmdt(pid, addr)
            }
            Call::ShmStat { segment } => {
                let shmid = self.resolve(Kind::Shm, segment);
                let object = self.segments.get(shmid).ok_or(Errno::EINVAL)?;
                if !object.perm.allows(cred, 0o444) {
                    return Err(Errno::EACCES);
                }
                Ok(Answer::Shm(self.shm_seen(object)))
            }
            Call::ShmSet {
                segment,
                uid,
                gid,
                mode,
            } => {
                let shmid = self.resolve(Kind::Shm, segment);
                let object = Self::owned(self.segments.get_mut(shmid), shmid, cred)?;
                object.perm.update(uid, gid, mode);
                Ok(Answer::Done)
            }
            Call::ShmRemove { segment } => {
                let shmid = self.resolve(Kind::Shm, segment);
                Self::owned(self.segments.get_mut(shmid), shmid, cred)?;
                Ok(Answer::Removed(self.shm_rmid(shmid)))
            }
            Call::ShmLock { segment, lock } => {
                let shmid = self.resolve(Kind::Shm, segment);
                let object = self.segments.get_mut(shmid).ok_or(Errno::EINVAL)?;
                // Without CAP_IPC_LOCK: the owner or the creator only.
                if cred.euid != object.perm.uid && cred.euid != object.perm.cuid {
                    return Err(Errno::EPERM);
                }
                if lock {
                    object.perm.mode |= SHM_LOCKED;
                } else {
                    object.perm.mode &= !SHM_LOCKED;
                }
                Ok(Answer::Done)
            }
            Call::ShmInfo { usage } => {
                let figures = if usage {
                    std::vec![self.segments.objects.len() as i64, self.shm_pages as i64]
                } else {
                    let l = &self.limits;
                    std::vec![l.shmmax as i64, 1, i64::from(l.shmmni), l.shmall as i64]
                };
                Ok(Answer::Info(self.segments.max_index(), figures))
            }
            Call::ShmStatIndex { index, any } => {
                let object = self.segments.at_index(index).ok_or(Errno::EINVAL)?;
                if !any && !object.perm.allows(cred, 0o444) {
                    return Err(Errno::EACCES);
                }
                Ok(Answer::Indexed(
                    object.id,
                    std::boxed::Box::new(Answer::Shm(self.shm_seen(object))),
                ))
            }
            Call::Exit => {
                self.exit(pid);
                Ok(Answer::Done)
            }
        }
    }

    /// The object `id` names if `cred` may change or remove it (`EINVAL`
    /// for no object, `EPERM` for another's).
    fn owned<'a, T>(
        object: Option<&'a mut Object<T>>,
        id: i32,
        cred: &Cred<'_>,
    ) -> Result<&'a mut Object<T>, Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        let object = object.ok_or(Errno::EINVAL)?;
        if !object.perm.owned_by(cred) {
            return Err(Errno::EPERM);
        }
        Ok(object)
    }

    fn semget(
        &mut self,
        key: i32,
        nsems: i32,
        flags: i32,
        cred: &Cred<'_>,
    ) -> Result<Answer, Errno> {
        if nsems < 0 || nsems as u32 > self.limits.semmsl {
            return Err(Errno::EINVAL);
        }
        let lookup = self.sems.lookup(key, flags, cred, |set| {
            if nsems as usize > set.values.len() {
                return Err(Errno::EINVAL);
            }
            Ok(())
        })?;
        if let Lookup::Found(id) = lookup {
            return Ok(Answer::Id(id));
        }
        // newary(), then ipc_addid().
        if nsems == 0 {
            return Err(Errno::EINVAL);
        }
        if self.used_sems + nsems as u32 > self.limits.semmns {
            return Err(Errno::ENOSPC);
        }
        let set = SemSet {
            values: std::vec![0; nsems as usize],
            pids: std::vec![0; nsems as usize],
            otime: false,
        };
        let id = self.sems.add(key, flags, cred, set)?;
        self.used_sems += nsems as u32;
        self.made[Kind::Sem as usize].push(id);
        Ok(Answer::Id(id))
    }

    fn sem_readable(&self, semid: i32, cred: &Cred<'_>) -> Result<&Object<SemSet>, Errno> {
        let object = self.sems.get(semid).ok_or(Errno::EINVAL)?;
        if !object.perm.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        Ok(object)
    }

    fn sem_seen(object: &Object<SemSet>) -> SemSeen {
        SemSeen {
            perm: object.perm.seen(object.id),
            otime: object.body.otime,
            ctime: true,
            nsems: object.body.values.len() as u32,
        }
    }

    /// `do_semtimedop()` up to the point where it applies the operations or
    /// sleeps. A call with `SEM_UNDO` on a live set gets its undo structure
    /// (`find_alloc_undo()`) before the checks that follow the id's.
    pub(super) fn semop_plan(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        semid: i32,
        sops: &[SemBuf],
        timeout: Option<Timeout>,
    ) -> Result<Plan, Errno> {
        if sops.len() > self.limits.semopm as usize {
            return Err(Errno::E2BIG);
        }
        if sops.is_empty() || semid < 0 {
            return Err(Errno::EINVAL);
        }
        if timeout.is_some_and(|t| !valid_timeout(&t)) {
            return Err(Errno::EINVAL);
        }
        let undo = sops.iter().any(|op| op.sem_flg & SEM_UNDO != 0);
        let object = self.sems.get(semid).ok_or(Errno::EINVAL)?;
        let nsems = object.body.values.len();
        if undo {
            self.undo
                .entry((pid, semid))
                .or_insert_with(|| std::vec![0; nsems]);
        }
        let max = sops
            .iter()
            .map(|op| usize::from(op.sem_num))
            .max()
            .unwrap_or(0);
        if max >= nsems {
            return Err(Errno::EFBIG);
        }
        let alter = sops.iter().any(|op| op.sem_op != 0);
        if !object.perm.allows(cred, if alter { 0o222 } else { 0o444 }) {
            return Err(Errno::EACCES);
        }
        // perform_atomic_semop_slow().
        let semvmx = self.limits.semvmx as i32;
        let mut values = object.body.values.clone();
        let mut adjustments = self.undo.get(&(pid, semid)).cloned();
        for op in sops {
            let num = usize::from(op.sem_num);
            let value = i32::from(values[num]);
            let result = value + i32::from(op.sem_op);
            if (op.sem_op == 0 && value != 0) || result < 0 {
                return if i32::from(op.sem_flg) & IPC_NOWAIT != 0 {
                    Err(Errno::EAGAIN)
                } else {
                    Ok(Plan::Sleep)
                };
            }
            if result > semvmx {
                return Err(Errno::ERANGE);
            }
            if op.sem_flg & SEM_UNDO != 0 {
                let adjustment = &mut adjustments.as_mut().expect("made above")[num];
                let undo = *adjustment - i32::from(op.sem_op);
                if undo < -semvmx - 1 || undo > semvmx {
                    return Err(Errno::ERANGE);
                }
                *adjustment = undo;
            }
            values[num] = result as u16;
        }
        Ok(Plan::Apply(values, adjustments))
    }

    fn semop(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        semid: i32,
        sops: &[SemBuf],
        timeout: Option<Timeout>,
    ) -> Result<Answer, Errno> {
        match self.semop_plan(pid, cred, semid, sops, timeout)? {
            // Nothing wakes it: the timeout passes.
            Plan::Sleep if timeout.is_some() => Err(Errno::EAGAIN),
            Plan::Sleep => panic!("a semop that sleeps for good is not made"),
            Plan::Apply(values, adjustments) => {
                let set = &mut self.sems.get_mut(semid).expect("planned").body;
                set.values = values;
                for op in sops {
                    set.pids[usize::from(op.sem_num)] = pid;
                }
                set.otime = true;
                if let Some(adjustments) = adjustments {
                    self.undo.insert((pid, semid), adjustments);
                }
                Ok(Answer::Done)
            }
        }
    }

    fn sem_setval(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        semid: i32,
        num: i32,
        value: i32,
    ) -> Result<Answer, Errno> {
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        if value < 0 || value > self.limits.semvmx as i32 {
            return Err(Errno::ERANGE);
        }
        let object = self.sems.get_mut(semid).ok_or(Errno::EINVAL)?;
        let index = usize::try_from(num)
            .ok()
            .filter(|&index| index < object.body.values.len())
            .ok_or(Errno::EINVAL)?;
        if !object.perm.allows(cred, 0o222) {
            return Err(Errno::EACCES);
        }
        object.body.values[index] = value as u16;
        object.body.pids[index] = pid;
        for (_, adjustments) in self.undo.iter_mut().filter(|((_, of), _)| *of == semid) {
            adjustments[index] = 0;
        }
        Ok(Answer::Done)
    }

    fn sem_setall(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        semid: i32,
        values: &[u16],
    ) -> Result<Answer, Errno> {
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let semvmx = self.limits.semvmx;
        let object = self.sems.get_mut(semid).ok_or(Errno::EINVAL)?;
        if !object.perm.allows(cred, 0o222) {
            return Err(Errno::EACCES);
        }
        let set = &mut object.body;
        let new: Vec<u16> = values
            .iter()
            .copied()
            .cycle()
            .take(set.values.len())
            .collect();
        if new.iter().any(|&value| u32::from(value) > semvmx) {
            return Err(Errno::ERANGE);
        }
        set.values = new;
        set.pids.fill(pid);
        for (_, adjustments) in self.undo.iter_mut().filter(|((_, of), _)| *of == semid) {
            adjustments.fill(0);
        }
        Ok(Answer::Done)
    }

    fn msgsnd(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        msqid: i32,
        mtype: i64,
        data: Vec<u8>,
    ) -> Result<Answer, Errno> {
        if data.len() as u64 > u64::from(self.limits.msgmax) || msqid < 0 || mtype < 1 {
            return Err(Errno::EINVAL);
        }
        let object = self.queues.get_mut(msqid).ok_or(Errno::EINVAL)?;
        if !object.perm.allows(cred, 0o222) {
            return Err(Errno::EACCES);
        }
        let queue = &mut object.body;
        // msg_fits_inqueue().
        let fits = queue.cbytes() + data.len() as u64 <= queue.qbytes
            && (queue.messages.len() as u64) < queue.qbytes;
        if !fits {
            return Err(Errno::EAGAIN);
        }
        queue.lspid = pid;
        queue.stime = true;
        queue.messages.push((mtype, data));
        Ok(Answer::Done)
    }

    /// `do_msgrcv()` with `convert_mode()`, `find_msg()` and `testmsg()`.
    fn msgrcv(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        msqid: i32,
        bufsz: i64,
        msgtyp: i64,
        flags: i32,
    ) -> Result<Answer, Errno> {
        if msqid < 0 || bufsz < 0 {
            return Err(Errno::EINVAL);
        }
        let copy = flags & MSG_COPY != 0;
        if copy && (flags & MSG_EXCEPT != 0 || flags & IPC_NOWAIT == 0) {
            return Err(Errno::EINVAL);
        }
        let object = self.queues.get_mut(msqid).ok_or(Errno::EINVAL)?;
        if !object.perm.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        let queue = &mut object.body;
        let messages = &queue.messages;
        let found = if copy {
            usize::try_from(msgtyp).ok().filter(|&n| n < messages.len())
        } else if msgtyp == 0 {
            (!messages.is_empty()).then_some(0)
        } else if msgtyp < 0 {
            let limit = msgtyp.checked_neg().unwrap_or(i64::MAX);
            let lowest = messages.iter().map(|m| m.0).filter(|&t| t <= limit).min();
            lowest.and_then(|lowest| messages.iter().position(|m| m.0 == lowest))
        } else if flags & MSG_EXCEPT != 0 {
            messages.iter().position(|m| m.0 != msgtyp)
        } else {
            messages.iter().position(|m| m.0 == msgtyp)
        };
        let Some(at) = found else {
            assert!(
                flags & IPC_NOWAIT != 0,
                "a msgrcv that sleeps for good is not made"
            );
            return Err(Errno::ENOMSG);
        };
        let len = messages[at].1.len() as u64;
        if len > bufsz as u64 {
            if flags & MSG_NOERROR == 0 {
                return Err(Errno::E2BIG);
            }
            // copy_msg() into a copy of bufsz bytes.
            if copy {
                return Err(Errno::EINVAL);
            }
        }
        let (mtype, mut data) = if copy {
            messages[at].clone()
        } else {
            queue.rtime = true;
            queue.lrpid = pid;
            queue.messages.remove(at)
        };
        data.truncate(bufsz as usize);
        Ok(Answer::Received(mtype, data))
    }

    fn msg_seen(object: &Object<Queue>) -> MsgSeen {
        let queue = &object.body;
        MsgSeen {
            perm: object.perm.seen(object.id),
            stime: queue.stime,
            rtime: queue.rtime,
            ctime: true,
            cbytes: queue.cbytes(),
            qnum: queue.messages.len() as u64,
            qbytes: queue.qbytes,
            lspid: queue.lspid as i32,
            lrpid: queue.lrpid as i32,
        }
    }

    /// `ksys_shmget()`, `shm_more_checks()` and `newseg()`.
    fn shmget(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        key: i32,
        size: u64,
        flags: i32,
    ) -> Result<Answer, Errno> {
        let lookup = self.segments.lookup(key, flags, cred, |segment| {
            if segment.segsz < size {
                return Err(Errno::EINVAL);
            }
            Ok(())
        })?;
        if let Lookup::Found(id) = lookup {
            return Ok(Answer::Id(id));
        }
        if size < 1 || size > self.limits.shmmax {
            return Err(Errno::EINVAL);
        }
        let total = self.shm_pages.checked_add(pages(size));
        if total.is_none_or(|total| total > self.limits.shmall) {
            return Err(Errno::ENOSPC);
        }
        let segment = Segment {
            segsz: size,
            cpid: pid,
            lpid: 0,
            atime: false,
            dtime: false,
        };
        let id = self.segments.add(key, flags, cred, segment)?;
        self.shm_pages += pages(size);
        self.made[Kind::Shm as usize].push(id);
        Ok(Answer::Id(id))
    }

    /// `do_shmat()` at the next address (`SHM_DEST` segments included).
    fn shmat(
        &mut self,
        pid: u32,
        cred: &Cred<'_>,
        shmid: i32,
        flags: i32,
    ) -> Result<Answer, Errno> {
        if shmid < 0 {
            return Err(Errno::EINVAL);
        }
        let object = self.segments.get_mut(shmid).ok_or(Errno::EINVAL)?;
        let mut access = 0o444;
        if flags & SHM_RDONLY == 0 {
            access |= 0o222;
        }
        if flags & SHM_EXEC != 0 {
            access |= 0o111;
        }
        if !object.perm.allows(cred, access) {
            return Err(Errno::EACCES);
        }
        let segment = &mut object.body;
        segment.atime = true;
        segment.lpid = pid;
        let addr = self.next_addr;
        self.next_addr += 0x10_0000;
        self.attachments.push(Attachment {
            pid,
            addr,
            shmid,
            len: pages(segment.segsz) * PAGE_SIZE,
        });
        Ok(Answer::Attached(segment.segsz))
    }

    /// `shmdt()`: `shm_close()` of the attachment at `addr`.
    fn shmdt(&mut self, pid: u32, addr: u64) -> Result<Answer, Errno> {
        let at = self
            .attachments
            .iter()
            .position(|a| a.pid == pid && a.addr == addr)
            .ok_or(Errno::EINVAL)?;
        let attachment = self.attachments.remove(at);
        let destroyed = self.shm_close(attachment.shmid, pid);
        Ok(Answer::Detached {
            shmid: attachment.shmid,
            len: attachment.len,
            destroyed,
        })
    }

    /// One attachment of `shmid` ended: stamps it, and destroys a removed
    /// segment at its last. Returns whether it went.
    fn shm_close(&mut self, shmid: i32, pid: u32) -> bool {
        let attached = self.attachments.iter().any(|a| a.shmid == shmid);
        let object = self.segments.get_mut(shmid).expect("attached");
        object.body.lpid = pid;
        object.body.dtime = true;
        if attached || object.perm.mode & SHM_DEST == 0 {
            return false;
        }
        self.shm_destroy(shmid);
        true
    }

    fn shm_destroy(&mut self, shmid: i32) {
        let object = self.segments.remove(shmid).expect("live");
        self.shm_pages -= pages(object.body.segsz);
    }

    /// `do_shm_rmid()`: destroys the segment, or marks it and makes it
    /// private while it is attached. Returns whether it went.
    fn shm_rmid(&mut self, shmid: i32) -> bool {
        if self.attachments.iter().any(|a| a.shmid == shmid) {
            let object = self.segments.get_mut(shmid).expect("owned");
            object.perm.mode |= SHM_DEST;
            object.perm.key = IPC_PRIVATE;
            return false;
        }
        self.shm_destroy(shmid);
        true
    }

    fn shm_seen(&self, object: &Object<Segment>) -> ShmSeen {
        let segment = &object.body;
        ShmSeen {
            perm: object.perm.seen(object.id),
            segsz: segment.segsz,
            atime: segment.atime,
            dtime: segment.dtime,
            ctime: true,
            cpid: segment.cpid as i32,
            lpid: segment.lpid as i32,
            nattch: self
                .attachments
                .iter()
                .filter(|a| a.shmid == object.id)
                .count() as u64,
        }
    }

    /// Process `pid` exits: `exit_sem()` (each undo structure of a live set
    /// applied, values clamped to 0..=SEMVMX and stamped with the pid, and
    /// `sem_otime` stamped, whatever the adjustments), then its
    /// attachments end.
    pub(super) fn exit(&mut self, pid: u32) {
        let semvmx = self.limits.semvmx as i32;
        let mine: Vec<(i32, Vec<i32>)> = self
            .undo
            .iter()
            .filter(|((owner, _), _)| *owner == pid)
            .map(|(&(_, semid), adjustments)| (semid, adjustments.clone()))
            .collect();
        for (semid, adjustments) in mine {
            self.undo.remove(&(pid, semid));
            let Some(object) = self.sems.get_mut(semid) else {
                continue;
            };
            let set = &mut object.body;
            for (index, &adjustment) in adjustments.iter().enumerate() {
                if adjustment != 0 {
                    let value = (i32::from(set.values[index]) + adjustment).clamp(0, semvmx);
                    set.values[index] = value as u16;
                    set.pids[index] = pid;
                }
            }
            set.otime = true;
        }
        while let Some(at) = self.attachments.iter().position(|a| a.pid == pid) {
            let attachment = self.attachments.remove(at);
            self.shm_close(attachment.shmid, pid);
        }
    }

    /// Every live object as `IPC_STAT` shows it, with its values and pids
    /// (sets) or messages (queues), and every undo adjustment that counts.
    pub(super) fn observe(&self) -> Observed {
        Observed {
            sems: self
                .sems
                .objects
                .values()
                .map(|o| {
                    (
                        o.id,
                        Self::sem_seen(o),
                        o.body.values.clone(),
                        o.body.pids.clone(),
                    )
                })
                .collect(),
            queues: self
                .queues
                .objects
                .values()
                .map(|o| (o.id, Self::msg_seen(o), o.body.messages.clone()))
                .collect(),
            segments: self
                .segments
                .objects
                .values()
                .map(|o| (o.id, self.shm_seen(o)))
                .collect(),
            adjustments: self
                .undo
                .iter()
                .flat_map(|(&(pid, semid), adjustments)| {
                    (0u32..)
                        .zip(adjustments)
                        .filter(|(_, &value)| value != 0)
                        .map(move |(semnum, &value)| (pid, semid, semnum, value))
                })
                .collect(),
        }
    }
}

/// A message: its type and its bytes.
pub(super) type Message = (i64, Vec<u8>);

/// The state an observer can read, in index order: sets (id, `IPC_STAT`,
/// `GETALL`, each `GETPID`), queues (id, `IPC_STAT`, the messages by
/// `MSG_COPY`), segments (id, `IPC_STAT`), and the undo adjustments that
/// count (pid, set, semaphore, value), sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Observed {
    pub sems: Vec<(i32, SemSeen, Vec<u16>, Vec<u32>)>,
    pub queues: Vec<(i32, MsgSeen, Vec<Message>)>,
    pub segments: Vec<(i32, ShmSeen)>,
    pub adjustments: Vec<(u32, i32, u32, i32)>,
}
