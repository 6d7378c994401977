//! Message queues: `msgget`, `msgsnd`, `msgrcv` and `msgctl`, with the
//! semantics of Linux `ipc/msg.c`.
//!
//! # User-visible behaviour
//!
//! - `msgsnd` appends a message of type > 0 (`EINVAL` otherwise) and up to
//!   MSGMAX bytes (zero is fine). The queue is full when the bytes, or the
//!   number of messages, would pass `msg_qbytes`; then the caller waits, or
//!   gets `EAGAIN` with `IPC_NOWAIT`.
//! - `msgrcv` takes the first message (`msgtyp` 0), the first of type
//!   `msgtyp` (> 0), the first of the lowest type ≤ |`msgtyp`| (< 0), or with
//!   `MSG_EXCEPT` the first of another type. A message longer than the buffer
//!   is `E2BIG` and stays queued, unless `MSG_NOERROR` truncates it. With
//!   nothing to take the caller waits, or gets `ENOMSG` with `IPC_NOWAIT`.
//!   `MSG_COPY` (with `IPC_NOWAIT`) copies the message at position `msgtyp`
//!   and leaves it queued.
//! - Waiting ends with success, `EIDRM` when the queue is removed, `EINTR`
//!   on a signal, never restarted.
//! - `msgctl`: `IPC_STAT`, `IPC_SET` (raising `msg_qbytes` above MSGMNB needs
//!   `CAP_SYS_RESOURCE`), `IPC_RMID`, `IPC_INFO`, `MSG_INFO`, `MSG_STAT`,
//!   `MSG_STAT_ANY`, with `msg_qnum`, `msg_cbytes`, the pids and the times
//!   kept as the kernel keeps them.
//!
//! # Internals
//!
//! A queue's slot keeps its counters and the offset of its **ring**, a heap
//! block of records in arrival order, allocated at the first send. A record
//! is 16-byte aligned: length, state, the 64-bit type, then the payload. A
//! receive from the middle (by type) marks its record taken; the head moves
//! past taken records when they reach it. A message that does not fit in the
//! ring's free run (holes left by typed receives, or a small ring) makes the
//! sender copy the live records, in order, into a new ring — as large as
//! needed, at most what `msg_qbytes` can require — and publish it with one
//! journaled store (copy on write).
//!
//! **Waiting receivers** queue up in the arena, first come first served,
//! each with the type it wants, how long a message it accepts, and room for
//! one. A sender hands a new message straight to the first that wants it
//! (Linux `pipelined_send`): it copies the message into the receiver's
//! record, unlinks it and stores its status in one critical section, then
//! wakes it if it sleeps. A receiver acts on a final status only after taking
//! the lock once, as with semaphores, so a sender that died before committing
//! leaves it waiting, not robbed.
//!
//! **Waiting senders** watch a sequence word that every receive bumps,
//! spinning first and sleeping (counted) only after that — a system call only
//! when someone sleeps — and try again when it moves. Linux wakes, in order,
//! only the waiting senders whose message now fits; they too race for the
//! room, so which gets in first may differ.
//!
//! # Locking
//!
//! Everything is under the queue's object lock. The senders' sequence word
//! and sleeper count, and a waiting receiver's status word, are atomics also
//! touched without it. Receiver records are freed only by their owners,
//! under the lock. `MSG_INFO` totals
//! are summed over the live queues when asked for.

use core::sync::atomic::Ordering;

use crate::arena::{Off, Record, Word, Word64};
use crate::errno::{Errno, Result};
use crate::heap::BlockOwner;
use crate::host::{Deadline, Host, Wake};
use crate::ids::{Kind, Object, ObjectTxn};
use crate::lock::Txn;
use crate::perm::{Cred, IpcPerm, IPC_NOWAIT};
use crate::Namespace;

/// `MSG_NOERROR`: truncate a message longer than the buffer.
pub const MSG_NOERROR: i32 = 0o10000;
/// `MSG_EXCEPT`: receive the first message of a type other than `msgtyp`.
pub const MSG_EXCEPT: i32 = 0o20000;
/// `MSG_COPY`: copy the message at position `msgtyp`, leaving it queued.
pub const MSG_COPY: i32 = 0o40000;

/// What `IPC_STAT` reports (`struct msqid_ds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsqidDs {
    /// Ownership and permissions.
    pub perm: IpcPerm,
    /// Time of the last `msgsnd`.
    pub stime: i64,
    /// Time of the last `msgrcv`.
    pub rtime: i64,
    /// Time of creation or of the last `IPC_SET`.
    pub ctime: i64,
    /// Bytes queued.
    pub cbytes: u64,
    /// Messages queued.
    pub qnum: u64,
    /// The most bytes (and messages) the queue holds.
    pub qbytes: u64,
    /// The pid of the last `msgsnd`.
    pub lspid: i32,
    /// The pid of the last `msgrcv`.
    pub lrpid: i32,
}

/// What `IPC_INFO` and `MSG_INFO` report (`struct msginfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgInfo {
    /// `IPC_INFO`: MSGPOOL (kilobytes for messages); `MSG_INFO`: queues in use.
    pub msgpool: i32,
    /// `IPC_INFO`: MSGMAP; `MSG_INFO`: messages queued in all queues.
    pub msgmap: i32,
    /// MSGMAX.
    pub msgmax: i32,
    /// MSGMNB.
    pub msgmnb: i32,
    /// MSGMNI.
    pub msgmni: i32,
    /// MSGSSZ.
    pub msgssz: i32,
    /// `IPC_INFO`: MSGTQL; `MSG_INFO`: bytes queued in all queues.
    pub msgtql: i32,
    /// MSGSEG.
    pub msgseg: u16,
}

/// A queue's part of its object slot.
#[repr(C)]
struct Queue {
    qbytes: Word,
    qnum: Word,
    cbytes: Word,
    lspid: Word,
    lrpid: Word,
    stime: Word64,
    rtime: Word64,
    /// The ring: offset (0 until the first send), capacity, and the byte
    /// offsets of the first record and of the free run's start, and the
    /// bytes between them (taken records included).
    ring: Word,
    capacity: Word,
    head: Word,
    tail: Word,
    used: Word,
    /// Bumped whenever a waiting sender may now fit, and the senders asleep
    /// on it.
    send_seq: Word,
    senders_asleep: Word,
    /// Receivers waiting for a message, first come first served.
    receivers_head: Word,
    receivers_tail: Word,
}

// SAFETY: `repr(C)`, words and word pairs, no padding.
unsafe impl Record for Queue {}

/// A record's header in the ring; the payload follows, padded to 16 bytes.
#[repr(C)]
struct MsgHeader {
    len: Word,
    state: Word,
    mtype: Word64,
}

// SAFETY: `repr(C)`, words and a word pair, no padding.
unsafe impl Record for MsgHeader {}

/// A receiver waiting for a message; room for `max_size` payload bytes
/// (at most MSGMAX) follows.
#[repr(C)]
struct Receiver {
    next: Word,
    prev: Word,
    /// `WAITING`, `ASLEEP`, then 0 (delivered) or an errno.
    status: Word,
    search: Word,
    search_type: Word64,
    /// The longest message it accepts (`u32::MAX` with MSG_NOERROR), and the
    /// room it has.
    accepts: Word,
    room: Word,
    /// The message delivered.
    len: Word,
    mtype: Word64,
    pid: Word,
}

// SAFETY: `repr(C)`, words and word pairs, no padding.
unsafe impl Record for Receiver {}

const WAITING: u32 = u32::MAX;
const ASLEEP: u32 = u32::MAX - 1;
const OWNER_RECEIVER: u32 = 4;

/// Record states.
const LIVE: u32 = 1;
const TAKEN: u32 = 2;
/// Fills the end of the ring when a record did not fit there.
const SKIP: u32 = 3;

const ALIGN: u32 = 16;
const OWNER_RING: u32 = 2;
/// The smallest ring.
const MIN_RING: u32 = 1024;
/// How often a sleeper wakes on its own to look again.
const RECHECK_NS: u64 = 100_000_000;
/// Spins on the sequence word before sleeping: rounds of spins, with the
/// processor offered to others between rounds.
const SPINS: u32 = 500;
const SPIN_ROUNDS: u32 = 4;

/// `base + offset`, both read from the arena: an overflow is corruption.
fn at(base: u32, offset: u32) -> Result<u32> {
    base.checked_add(offset).ok_or(Errno::CORRUPT)
}

/// Bytes a record of `len` payload bytes takes.
fn record_size(len: u32) -> u32 {
    MsgHeader::SIZE + len.div_ceil(ALIGN) * ALIGN
}

/// Which message `msgrcv` looks for (Linux `convert_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    Any,
    Equal(i64),
    NotEqual(i64),
    LessEqual(i64),
    Number(i64),
}

impl Search {
    fn encode(self) -> (u32, i64) {
        match self {
            Search::Any => (0, 0),
            Search::Equal(t) => (1, t),
            Search::NotEqual(t) => (2, t),
            Search::LessEqual(t) => (3, t),
            Search::Number(n) => (4, n),
        }
    }

    fn decode(kind: u32, t: i64) -> Result<Search> {
        Ok(match kind {
            0 => Search::Any,
            1 => Search::Equal(t),
            2 => Search::NotEqual(t),
            3 => Search::LessEqual(t),
            _ => return Err(Errno::CORRUPT),
        })
    }

    /// Whether a new message of type `mtype` is one this search takes
    /// (Linux `testmsg`).
    fn matches(self, mtype: i64) -> bool {
        match self {
            Search::Any => true,
            Search::Equal(t) => mtype == t,
            Search::NotEqual(t) => mtype != t,
            Search::LessEqual(t) => mtype <= t,
            Search::Number(_) => false,
        }
    }

    fn new(msgtyp: i64, flags: i32) -> Search {
        if flags & MSG_COPY != 0 {
            Search::Number(msgtyp)
        } else if msgtyp == 0 {
            Search::Any
        } else if msgtyp < 0 {
            Search::LessEqual(msgtyp.checked_neg().unwrap_or(i64::MAX))
        } else if flags & MSG_EXCEPT != 0 {
            Search::NotEqual(msgtyp)
        } else {
            Search::Equal(msgtyp)
        }
    }
}

/// A live record found in the ring.
#[derive(Clone, Copy)]
struct Found {
    at: u32,
    len: u32,
    mtype: i64,
}

/// A queue, resolved.
struct QueueView<'m> {
    queue: &'m Queue,
    id: i32,
}

/// Receivers to wake once the lock is released (up to a batch; more are woken
/// at once, and an early wake is harmless).
#[derive(Default)]
struct Wakes {
    words: [u32; 8],
    len: usize,
}

impl Wakes {
    fn push<H: Host>(&mut self, ns: &Namespace<'_, H>, word: &Word) {
        match ns.arena.offset_of(word) {
            Ok(offset) if self.len < self.words.len() => {
                self.words[self.len] = offset;
                self.len += 1;
            }
            _ => ns.host.wake(word.atomic(), 1),
        }
    }
}

impl<'m, H: Host> Namespace<'m, H> {
    fn queue_view(&self, object: &Object<'m>) -> QueueView<'m> {
        QueueView {
            queue: object.ext_as::<Queue>(),
            id: object.id(),
        }
    }

    /// `msgget`: the queue `key` names, or a new one.
    pub fn msgget(&self, key: i32, flags: i32, cred: &Cred<'_>) -> Result<i32> {
        let msgmnb = self.layout.limits.msgmnb;
        self.ipc_get(
            Kind::Msg,
            key,
            flags,
            cred,
            |_| Ok(()),
            |_, object| {
                // Not live yet: no journal needed.
                object.ext_as::<Queue>().qbytes.set(msgmnb);
                Ok(())
            },
        )
    }

    /// The ring's records in order, from the head (bounded; a bad record is
    /// an error). Calls `visit` with each live record until it says stop.
    fn walk(&self, q: &QueueView<'m>, mut visit: impl FnMut(Found) -> bool) -> Result<()> {
        let queue = q.queue;
        let (ring, capacity) = (queue.ring.get(), queue.capacity.get());
        let (mut at, tail) = (queue.head.get(), queue.tail.get());
        let mut left = queue.used.get();
        if left > capacity || at >= capacity.max(1) || tail >= capacity.max(1) {
            return if left == 0 {
                Ok(())
            } else {
                Err(Errno::CORRUPT)
            };
        }
        while left > 0 {
            let header = self.arena.get(Off::<MsgHeader>::new(
                ring.checked_add(at).ok_or(Errno::CORRUPT)?,
            ))?;
            let (len, state) = (header.len.get(), header.state.get());
            let size = match state {
                SKIP => capacity - at,
                LIVE | TAKEN if len <= self.layout.limits.msgmax => record_size(len),
                _ => return Err(Errno::CORRUPT),
            };
            if size > left || at + size > capacity {
                return Err(Errno::CORRUPT);
            }
            if state == LIVE {
                let found = Found {
                    at,
                    len,
                    mtype: header.mtype.get() as i64,
                };
                if !visit(found) {
                    return Ok(());
                }
            }
            left -= size;
            at = if at + size == capacity { 0 } else { at + size };
        }
        Ok(())
    }

    fn find(&self, q: &QueueView<'m>, search: Search) -> Result<Option<Found>> {
        let mut best: Option<Found> = None;
        let mut position = 0;
        self.walk(q, |m| {
            let take = match search {
                Search::Any => true,
                Search::Equal(t) => m.mtype == t,
                Search::NotEqual(t) => m.mtype != t,
                Search::LessEqual(t) => {
                    if m.mtype <= t && best.is_none_or(|b| m.mtype < b.mtype) {
                        best = Some(m);
                    }
                    // The lowest possible type cannot be beaten.
                    return !(m.mtype <= 1 && best.is_some());
                }
                Search::Number(n) => {
                    position += 1;
                    position - 1 == n
                }
            };
            if take {
                best = Some(m);
            }
            !take
        })?;
        Ok(best)
    }

    /// Whether a message of `len` bytes fits (Linux `msg_fits_inqueue`).
    fn fits(queue: &Queue, len: u32) -> bool {
        let qbytes = u64::from(queue.qbytes.get());
        u64::from(queue.cbytes.get()) + u64::from(len) <= qbytes
            && u64::from(queue.qnum.get()) < qbytes
    }

    /// `msgsnd`: queues a message of type `mtype` holding `data`.
    pub fn msgsnd(
        &self,
        msqid: i32,
        mtype: i64,
        data: &[u8],
        flags: i32,
        cred: &Cred<'_>,
    ) -> Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        if len > self.layout.limits.msgmax || msqid < 0 || mtype < 1 {
            return Err(Errno::EINVAL);
        }
        let pid = self.identity()?.1;
        loop {
            let mut locked = self.lock_object(Kind::Msg, msqid)?;
            let q = self.queue_view(&locked.object);
            if !locked.object.allows(cred, 0o222) {
                return Err(Errno::EACCES);
            }
            if Self::fits(q.queue, len) {
                let mut wakes = Wakes::default();
                let delivered = self.deliver(&mut locked.txn, &q, mtype, data, &mut wakes)?;
                let old_ring = if delivered {
                    let queue = q.queue;
                    locked.txn.set(&queue.lspid, pid)?;
                    locked
                        .txn
                        .set64(&queue.stime, self.host.wall_clock() as u64)?;
                    None
                } else {
                    self.append(&mut locked, &q, mtype, data, pid)?
                };
                locked.commit();
                self.wake_receivers(&wakes);
                if let Some(ring) = old_ring {
                    self.free_ring(ring, msqid)?;
                }
                return Ok(());
            }
            if flags & IPC_NOWAIT != 0 {
                return Err(Errno::EAGAIN);
            }
            self.wait(locked, &q.queue.send_seq, &q.queue.senders_asleep, None)?;
        }
    }

    /// Appends a record (the queue has room by `msg_qbytes`). Returns a ring
    /// replaced by a larger one, to be freed after commit.
    fn append(
        &self,
        locked: &mut ObjectTxn<'_, 'm, H>,
        q: &QueueView<'m>,
        mtype: i64,
        data: &[u8],
        pid: u32,
    ) -> Result<Option<u32>> {
        let queue = q.queue;
        let len = data.len() as u32;
        let size = record_size(len);
        let replaced = if self.room_at_tail(queue, size).is_none() {
            Some(self.grow(locked, q, size)?)
        } else {
            None
        };
        let (tail, skip) = self.room_at_tail(queue, size).ok_or(Errno::CORRUPT)?;
        let ring = queue.ring.get();
        let txn = &mut locked.txn;
        // Past the tail nothing is reachable until the tail moves (journaled).
        if skip > 0 {
            let filler = self
                .arena
                .get(Off::<MsgHeader>::new(ring + queue.tail.get()))?;
            filler.len.set(skip - MsgHeader::SIZE);
            filler.state.set(SKIP);
        }
        let header = self.arena.get(Off::<MsgHeader>::new(at(ring, tail)?))?;
        header.len.set(len);
        header.mtype.set(mtype as u64);
        header.state.set(LIVE);
        self.arena
            .write_bytes(ring + tail + MsgHeader::SIZE, data)?;
        let capacity = queue.capacity.get();
        let new_tail = if tail + size == capacity {
            0
        } else {
            tail + size
        };
        txn.set(&queue.tail, new_tail)?;
        txn.set(&queue.used, queue.used.get() + skip + size)?;
        txn.set(&queue.qnum, queue.qnum.get() + 1)?;
        txn.set(&queue.cbytes, queue.cbytes.get() + len)?;
        txn.set(&queue.lspid, pid)?;
        txn.set64(&queue.stime, self.host.wall_clock() as u64)?;
        Ok(replaced.flatten())
    }

    /// Where a record of `size` bytes goes: its offset, and the bytes of
    /// filler needed first to wrap to the ring's start; `None` if it does not
    /// fit in the free run.
    fn room_at_tail(&self, queue: &Queue, size: u32) -> Option<(u32, u32)> {
        if queue.ring.get() == 0 {
            return None;
        }
        let (capacity, tail, used) = (queue.capacity.get(), queue.tail.get(), queue.used.get());
        let free = capacity.checked_sub(used)?;
        if tail >= capacity {
            return None;
        }
        let to_end = capacity - tail;
        if size <= to_end {
            (size <= free).then_some((tail, 0))
        } else {
            // Wrap: the filler to the end, then the record at 0.
            (u64::from(to_end) + u64::from(size) <= u64::from(free)).then_some((0, to_end))
        }
    }

    /// Copies the live records into a new ring with room for `size` more
    /// bytes and publishes it; returns the old ring (0 if none).
    fn grow(
        &self,
        locked: &mut ObjectTxn<'_, 'm, H>,
        q: &QueueView<'m>,
        size: u32,
    ) -> Result<Option<u32>> {
        let queue = q.queue;
        let mut live = 0u32;
        self.walk(q, |m| {
            live += record_size(m.len);
            true
        })?;
        // The most a queue can need: every message a minimal record.
        let qbytes = queue.qbytes.get().max(1);
        let most = qbytes
            .saturating_mul(MsgHeader::SIZE + ALIGN)
            .saturating_add(qbytes)
            .max(MIN_RING);
        let wanted = live
            .saturating_add(size)
            .saturating_mul(2)
            .clamp(MIN_RING, most.max(live + size));
        let capacity = wanted
            .checked_next_power_of_two()
            .unwrap_or(wanted)
            .min(self.layout.limits.heap_bytes)
            & !(ALIGN - 1);
        if capacity < live.saturating_add(size) {
            return Err(Errno::ENOMEM);
        }
        let owner = BlockOwner {
            kind: OWNER_RING,
            id: locked.object.id() as u32,
        };
        let fresh = self.heap_alloc(capacity, owner)?;
        let mut written = 0u32;
        let mut copy = [0u8; 256];
        let old = queue.ring.get();
        let copied = self.walk(q, |m| {
            let (Ok(from), Ok(to)) = (at(old, m.at), at(fresh, written)) else {
                return false;
            };
            let header = match self.arena.get(Off::<MsgHeader>::new(to)) {
                Ok(header) => header,
                Err(_) => return false,
            };
            header.len.set(m.len);
            header.mtype.set(m.mtype as u64);
            header.state.set(LIVE);
            let mut done = 0;
            while done < m.len {
                let n = (m.len - done).min(copy.len() as u32);
                let chunk = &mut copy[..n as usize];
                let moved = self
                    .arena
                    .read_bytes(from + MsgHeader::SIZE + done, chunk)
                    .and_then(|()| self.arena.write_bytes(to + MsgHeader::SIZE + done, chunk));
                if moved.is_err() {
                    return false;
                }
                done += n;
            }
            written += record_size(m.len);
            true
        });
        if copied.is_err() || written != live {
            self.heap_free(fresh, owner)?;
            return Err(Errno::CORRUPT);
        }
        let txn = &mut locked.txn;
        txn.set(&queue.ring, fresh)?;
        txn.set(&queue.capacity, capacity)?;
        txn.set(&queue.head, 0)?;
        txn.set(&queue.tail, if live == capacity { 0 } else { live })?;
        txn.set(&queue.used, live)?;
        Ok((old != 0).then_some(old))
    }

    fn free_ring(&self, ring: u32, msqid: i32) -> Result<()> {
        let owner = BlockOwner {
            kind: OWNER_RING,
            id: msqid as u32,
        };
        self.heap_free(ring, owner)
    }

    /// Bumps a sequence word, with the lock held; returns whether anyone
    /// sleeps on it (then the caller wakes them once it releases the lock).
    /// Not journaled: a bump whose change is rolled back only wakes a waiter
    /// early, and it looks again.
    fn bump(seq: &Word, asleep: &Word) -> bool {
        seq.atomic().fetch_add(1, Ordering::AcqRel);
        asleep.atomic().load(Ordering::Acquire) != 0
    }

    /// Sleeps until `seq` moves (or a periodic check is due), then returns for
    /// the caller to try again; `EIDRM` if the queue went meanwhile, `EINTR`
    /// on a signal, `EAGAIN` past `deadline`.
    fn wait(
        &self,
        locked: ObjectTxn<'_, 'm, H>,
        seq: &'m Word,
        asleep: &'m Word,
        deadline: Option<Deadline>,
    ) -> Result<()> {
        let id = locked.object.id();
        let seen = seq.atomic().load(Ordering::Acquire);
        drop(locked);
        // Spin first (yielding between rounds): a change made meanwhile costs
        // no system call on either side.
        let mut moved = false;
        for _ in 0..SPIN_ROUNDS {
            for _ in 0..SPINS {
                if seq.atomic().load(Ordering::Acquire) != seen {
                    moved = true;
                    break;
                }
                core::hint::spin_loop();
            }
            if moved {
                break;
            }
            self.host.yield_now();
        }
        let mut woke = Wake::Woken;
        if !moved {
            // Counted only now: a change after `seen` either shows in the
            // word (the wait returns at once) or finds us counted and wakes us.
            asleep.atomic().fetch_add(1, Ordering::AcqRel);
            let recheck = Deadline::after(self.host.now(), RECHECK_NS);
            let until = deadline.map_or(recheck, |d| d.min(recheck));
            woke = self.host.wait(seq.atomic(), seen, Some(until));
            asleep.atomic().fetch_sub(1, Ordering::AcqRel);
        }
        match self.lock_object(Kind::Msg, id) {
            Err(Errno::EINVAL) => return Err(Errno::EIDRM),
            Err(err) => return Err(err),
            Ok(_) => {}
        }
        if woke == Wake::Interrupted {
            return Err(Errno::EINTR);
        }
        if deadline.is_some_and(|d| self.host.now() >= d) {
            return Err(Errno::EAGAIN);
        }
        Ok(())
    }

    /// `msgrcv`: takes (or with `MSG_COPY` copies) a message into `out`, which
    /// holds up to `bufsz` bytes (`out.len()` ≥ `bufsz.min(MSGMAX)`). Returns
    /// the message's type and the bytes copied.
    pub fn msgrcv(
        &self,
        msqid: i32,
        bufsz: i64,
        msgtyp: i64,
        flags: i32,
        out: &mut [u8],
        cred: &Cred<'_>,
    ) -> Result<(i64, usize)> {
        if msqid < 0 || bufsz < 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MSG_COPY != 0 && (flags & MSG_EXCEPT != 0 || flags & IPC_NOWAIT == 0) {
            return Err(Errno::EINVAL);
        }
        let search = Search::new(msgtyp, flags);
        let pid = self.identity()?.1;
        let mut locked = self.lock_object(Kind::Msg, msqid)?;
        let q = self.queue_view(&locked.object);
        if !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        if let Some(found) = self.find(&q, search)? {
            if u64::from(found.len) > bufsz as u64 {
                if flags & MSG_NOERROR == 0 {
                    return Err(Errno::E2BIG);
                }
                // Linux copies into a buffer of `bufsz` bytes, which refuses
                // a longer message even with MSG_NOERROR.
                if flags & MSG_COPY != 0 {
                    return Err(Errno::EINVAL);
                }
            }
            let n = (found.len as usize).min(bufsz as usize).min(out.len());
            let payload = at(at(q.queue.ring.get(), found.at)?, MsgHeader::SIZE)?;
            self.arena.read_bytes(payload, &mut out[..n])?;
            if flags & MSG_COPY != 0 {
                return Ok((found.mtype, n));
            }
            self.take(&mut locked.txn, &q, found, pid)?;
            let wake = Self::bump(&q.queue.send_seq, &q.queue.senders_asleep);
            locked.commit();
            if wake {
                self.host.wake(q.queue.send_seq.atomic(), u32::MAX);
            }
            return Ok((found.mtype, n));
        }
        if flags & IPC_NOWAIT != 0 {
            return Err(Errno::ENOMSG);
        }
        let accepts = if flags & MSG_NOERROR != 0 {
            u32::MAX
        } else {
            u32::try_from(bufsz).unwrap_or(u32::MAX)
        };
        let room = u32::try_from(bufsz)
            .unwrap_or(u32::MAX)
            .min(self.layout.limits.msgmax)
            .min(out.len() as u32);
        self.wait_for_message(locked, &q, search, accepts, room, pid, out)
    }

    /// Queues the caller as a receiver and waits until a sender delivers to
    /// it; then copies the message out.
    #[allow(clippy::too_many_arguments)] // one blocked msgrcv, whole
    fn wait_for_message(
        &self,
        mut locked: ObjectTxn<'_, 'm, H>,
        q: &QueueView<'m>,
        search: Search,
        accepts: u32,
        room: u32,
        pid: u32,
        out: &mut [u8],
    ) -> Result<(i64, usize)> {
        let msqid = locked.object.id();
        let owner = BlockOwner {
            kind: OWNER_RECEIVER,
            id: msqid as u32,
        };
        let at = self.heap_alloc(Receiver::SIZE + room, owner)?;
        let receiver = self.arena.get(Off::<Receiver>::new(at))?;
        // Fresh: reachable once linked (journaled, below).
        let (kind, search_type) = search.encode();
        receiver.status.set(WAITING);
        receiver.search.set(kind);
        receiver.search_type.set(search_type as u64);
        receiver.accepts.set(accepts);
        receiver.room.set(room);
        receiver.pid.set(pid);
        receiver.next.set(0);
        let queue = q.queue;
        let tail = queue.receivers_tail.get();
        receiver.prev.set(tail);
        let linked = match tail {
            0 => locked.txn.set(&queue.receivers_head, at),
            tail => self
                .receiver(tail, msqid)
                .and_then(|last| locked.txn.set(&last.next, at)),
        }
        .and_then(|()| locked.txn.set(&queue.receivers_tail, at));
        if let Err(err) = linked {
            drop(locked);
            self.heap_free(at, owner)?;
            return Err(err);
        }
        locked.commit();
        let result = self.wait_for_delivery(msqid, receiver, at, out);
        self.heap_free(at, owner)?;
        result
    }

    fn wait_for_delivery(
        &self,
        msqid: i32,
        receiver: &'m Receiver,
        at: u32,
        out: &mut [u8],
    ) -> Result<(i64, usize)> {
        let status = receiver.status.atomic();
        loop {
            let mut woke = Wake::Woken;
            let mut pending = true;
            'spin: for _ in 0..SPIN_ROUNDS {
                for _ in 0..SPINS {
                    if status.load(Ordering::Acquire) < ASLEEP {
                        pending = false;
                        break 'spin;
                    }
                    core::hint::spin_loop();
                }
                self.host.yield_now();
            }
            if pending
                && status
                    .compare_exchange(WAITING, ASLEEP, Ordering::AcqRel, Ordering::Acquire)
                    .map_or_else(|seen| seen == ASLEEP, |_| true)
            {
                let recheck = Deadline::after(self.host.now(), RECHECK_NS);
                woke = self.host.wait(status, ASLEEP, Some(recheck));
            }
            // Decide under the lock: a final status read there is committed.
            let (mut txn, object) = self.lock_slot_of(Kind::Msg, msqid)?;
            match receiver.status.get() {
                0 => {
                    let len = receiver
                        .len
                        .get()
                        .min(receiver.room.get())
                        .min(out.len() as u32);
                    self.arena
                        .read_bytes(at + Receiver::SIZE, &mut out[..len as usize])?;
                    let mtype = receiver.mtype.get() as i64;
                    txn.commit();
                    return Ok((mtype, len as usize));
                }
                WAITING | ASLEEP => {}
                err => {
                    txn.commit();
                    return Err(Errno::from_raw(err as i32));
                }
            }
            let Some(object) = object else {
                txn.commit();
                return Err(Errno::EIDRM);
            };
            if woke == Wake::Interrupted {
                let queue = self.queue_view(&object).queue;
                self.unlink_receiver(&mut txn, queue, receiver, msqid)?;
                txn.commit();
                return Err(Errno::EINTR);
            }
            txn.commit();
        }
    }

    fn receiver(&self, at: u32, msqid: i32) -> Result<&'m Receiver> {
        let block = at
            .checked_sub(crate::heap::BLOCK_HEADER)
            .ok_or(Errno::CORRUPT)?;
        let info = crate::heap::block_info(&self.arena, &self.layout, block, self.layout.heap_end)?;
        let owner = self.arena.get(Off::<Word>::new(block + 4))?.get();
        if !info.allocated || info.owner_kind != OWNER_RECEIVER || owner != msqid as u32 {
            return Err(Errno::CORRUPT);
        }
        let receiver = self.arena.get(Off::<Receiver>::new(at))?;
        if u64::from(Receiver::SIZE) + u64::from(receiver.room.get())
            > u64::from(info.size - crate::heap::BLOCK_HEADER)
        {
            return Err(Errno::CORRUPT);
        }
        Ok(receiver)
    }

    fn unlink_receiver(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        queue: &'m Queue,
        receiver: &'m Receiver,
        msqid: i32,
    ) -> Result<()> {
        let (prev, next) = (receiver.prev.get(), receiver.next.get());
        match prev {
            0 => txn.set(&queue.receivers_head, next)?,
            prev => txn.set(&self.receiver(prev, msqid)?.next, next)?,
        }
        match next {
            0 => txn.set(&queue.receivers_tail, prev),
            next => txn.set(&self.receiver(next, msqid)?.prev, prev),
        }
    }

    /// Linux `pipelined_send`: hands the message to the first waiting receiver
    /// that wants it (one whose buffer is too short gets E2BIG and leaves the
    /// queue). Returns whether it was delivered. Each receiver served is a
    /// checkpoint of its own.
    fn deliver(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        q: &QueueView<'m>,
        mtype: i64,
        data: &[u8],
        wakes: &mut Wakes,
    ) -> Result<bool> {
        let queue = q.queue;
        let msqid = q.id;
        let len = data.len() as u32;
        let bound = self.layout.limits.heap_bytes / Receiver::SIZE;
        let mut at = queue.receivers_head.get();
        for _ in 0..bound {
            if at == 0 {
                return Ok(false);
            }
            let receiver = self.receiver(at, msqid)?;
            let next = receiver.next.get();
            let search = Search::decode(receiver.search.get(), receiver.search_type.get() as i64)?;
            if search.matches(mtype) {
                self.unlink_receiver(txn, queue, receiver, msqid)?;
                let status = if len > receiver.accepts.get() {
                    Errno::E2BIG.raw() as u32
                } else {
                    // The receiver reads these only once its status, below, is final.
                    let n = len.min(receiver.room.get());
                    self.arena
                        .write_bytes(at + Receiver::SIZE, &data[..n as usize])?;
                    receiver.len.set(len);
                    receiver.mtype.set(mtype as u64);
                    txn.set(&queue.lrpid, receiver.pid.get())?;
                    txn.set64(&queue.rtime, self.host.wall_clock() as u64)?;
                    0
                };
                if txn.swap(&receiver.status, status)? == ASLEEP {
                    wakes.push(self, &receiver.status);
                }
                if status == 0 {
                    return Ok(true);
                }
                txn.checkpoint();
            }
            at = next;
        }
        Err(Errno::CORRUPT)
    }

    fn wake_receivers(&self, wakes: &Wakes) {
        for &offset in &wakes.words[..wakes.len] {
            if let Ok(word) = self.arena.get(Off::<Word>::new(offset)) {
                self.host.wake(word.atomic(), 1);
            }
        }
    }

    /// Removes a record: the head moves past it (and past taken records and
    /// filler after it) if it is first, else it is marked taken.
    fn take(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        q: &QueueView<'m>,
        found: Found,
        pid: u32,
    ) -> Result<()> {
        let queue = q.queue;
        let ring = queue.ring.get();
        let header = self.arena.get(Off::<MsgHeader>::new(at(ring, found.at)?))?;
        txn.set(&header.state, TAKEN)?;
        // Advance the head over whatever is no longer live.
        let capacity = queue.capacity.get();
        let (mut head, mut used) = (queue.head.get(), queue.used.get());
        while used > 0 {
            let first = self.arena.get(Off::<MsgHeader>::new(at(ring, head)?))?;
            let size = match first.state.get() {
                SKIP => capacity.checked_sub(head).ok_or(Errno::CORRUPT)?,
                TAKEN => record_size(first.len.get()),
                _ => break,
            };
            if size > used {
                return Err(Errno::CORRUPT);
            }
            used -= size;
            head = if head + size >= capacity {
                0
            } else {
                head + size
            };
        }
        if used == 0 {
            // Empty: start again at the ring's start.
            txn.set(&queue.tail, 0)?;
            head = 0;
        }
        txn.set(&queue.head, head)?;
        txn.set(&queue.used, used)?;
        txn.set(&queue.qnum, queue.qnum.get().saturating_sub(1))?;
        txn.set(&queue.cbytes, queue.cbytes.get().saturating_sub(found.len))?;
        txn.set(&queue.lrpid, pid)?;
        txn.set64(&queue.rtime, self.host.wall_clock() as u64)
    }

    fn msqid_ds(&self, object: &Object<'m>) -> MsqidDs {
        let queue = self.queue_view(object).queue;
        MsqidDs {
            perm: object.perm(),
            stime: queue.stime.get() as i64,
            rtime: queue.rtime.get() as i64,
            ctime: object.ctime(),
            cbytes: u64::from(queue.cbytes.get()),
            qnum: u64::from(queue.qnum.get()),
            qbytes: u64::from(queue.qbytes.get()),
            lspid: queue.lspid.get() as i32,
            lrpid: queue.lrpid.get() as i32,
        }
    }

    /// `msgctl(IPC_STAT)`.
    pub fn msg_stat(&self, msqid: i32, cred: &Cred<'_>) -> Result<MsqidDs> {
        if msqid < 0 {
            return Err(Errno::EINVAL);
        }
        let locked = self.lock_object(Kind::Msg, msqid)?;
        if !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        Ok(self.msqid_ds(&locked.object))
    }

    /// `msgctl(MSG_STAT)` (`any`: `MSG_STAT_ANY`, without the read check): the
    /// queue in slot `index`, and its id.
    pub fn msg_stat_index(&self, index: i32, any: bool, cred: &Cred<'_>) -> Result<(i32, MsqidDs)> {
        let locked = self.lock_index(Kind::Msg, index)?;
        if !any && !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        Ok((locked.object.id(), self.msqid_ds(&locked.object)))
    }

    /// `msgctl(IPC_SET)`: owner, group, permission bits and `msg_qbytes`
    /// (above MSGMNB only with `CAP_SYS_RESOURCE`; like Linux, only the low
    /// 32 bits of `qbytes` count, read as a signed `int`).
    pub fn msg_set(
        &self,
        msqid: i32,
        cred: &Cred<'_>,
        uid: u32,
        gid: u32,
        mode: u32,
        qbytes: u64,
    ) -> Result<()> {
        if msqid < 0 {
            return Err(Errno::EINVAL);
        }
        let mut locked = self.lock_object(Kind::Msg, msqid)?;
        if !locked.object.perm().owned_by(cred) {
            return Err(Errno::EPERM);
        }
        // Linux takes only the low 32 bits of `msg_qbytes`, as a signed int.
        let qbytes = qbytes as u32 as i32;
        let allowed = 0..=self.layout.limits.msgmnb as i32;
        if !allowed.contains(&qbytes) && !cred.sys_resource {
            return Err(Errno::EPERM);
        }
        let qbytes = qbytes as u32;
        self.ipc_set_perm(&mut locked, cred, uid, gid, mode)?;
        let queue = self.queue_view(&locked.object).queue;
        locked.txn.set(&queue.qbytes, qbytes)?;
        // Senders may fit now.
        let wake = Self::bump(&queue.send_seq, &queue.senders_asleep);
        locked.commit();
        if wake {
            self.host.wake(queue.send_seq.atomic(), u32::MAX);
        }
        Ok(())
    }

    /// `msgctl(IPC_RMID)`: removes the queue and its messages; every sleeper
    /// gets `EIDRM`.
    pub fn msg_remove(&self, msqid: i32, cred: &Cred<'_>) -> Result<()> {
        if msqid < 0 {
            return Err(Errno::EINVAL);
        }
        let ring = self.ipc_remove_then(
            Kind::Msg,
            msqid,
            cred,
            |_, object| Ok(self.queue_view(object).queue),
            |_, queue| {
                queue.send_seq.atomic().fetch_add(1, Ordering::AcqRel);
                if queue.senders_asleep.atomic().load(Ordering::Acquire) != 0 {
                    self.host.wake(queue.send_seq.atomic(), u32::MAX);
                }
                // The removal is permanent and the lock still held: wake every
                // receiver, whose record cannot be freed before we let go.
                let bound = self.layout.limits.heap_bytes / Receiver::SIZE;
                let mut at = queue.receivers_head.get();
                for _ in 0..bound {
                    let Ok(receiver) = self.receiver(at, msqid) else {
                        break;
                    };
                    self.host.wake(receiver.status.atomic(), 1);
                    at = receiver.next.get();
                }
                queue.ring.get()
            },
        )?;
        if ring == 0 {
            return Ok(());
        }
        self.free_ring(ring, msqid)
    }

    /// `msgctl(IPC_INFO)` (`usage: false`) or `msgctl(MSG_INFO)` (`usage:
    /// true`), and the value the call returns: the highest index in use, or 0.
    pub fn msg_info(&self, usage: bool) -> (i32, MsgInfo) {
        let l = &self.layout.limits;
        let narrow = |value: u64| value.min(i32::MAX as u64) as i32;
        let mut info = MsgInfo {
            msgpool: narrow(u64::from(l.msgmni) * u64::from(l.msgmnb) / 1024),
            msgmap: narrow(u64::from(l.msgmnb)),
            msgmax: narrow(u64::from(l.msgmax)),
            msgmnb: narrow(u64::from(l.msgmnb)),
            msgmni: narrow(u64::from(l.msgmni)),
            msgssz: 16,
            msgtql: narrow(u64::from(l.msgmnb)),
            msgseg: 0xffff,
        };
        if usage {
            let (mut messages, mut bytes) = (0u64, 0u64);
            for (id, _) in self.objects(Kind::Msg) {
                if let Ok(locked) = self.lock_object(Kind::Msg, id) {
                    let queue = self.queue_view(&locked.object).queue;
                    messages += u64::from(queue.qnum.get());
                    bytes += u64::from(queue.cbytes.get());
                }
            }
            info.msgpool = narrow(u64::from(self.in_use(Kind::Msg)));
            info.msgmap = narrow(messages);
            info.msgtql = narrow(bytes);
        }
        (self.max_index(Kind::Msg).max(0), info)
    }
}
