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
//! journaled store (copy on write). The ring is never completely full, so
//! head and tail alone tell how much of it is in use.
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
//! **Waiting senders** count themselves and watch a sequence word that a
//! receive bumps only while someone waits, spinning first and sleeping
//! (counted) only after that — a system call only when someone sleeps — and
//! try again when it moves. Linux wakes, in order, only the waiting senders
//! whose message now fits; they too race for the room, so which gets in
//! first may differ.
//!
//! # Locking
//!
//! Two locks, so that a producer and a consumer do not take turns on one
//! lock and its journal: the object lock is the **send lock** (appending,
//! the tail, the send counters, and everything administrative), and a
//! second lock in the slot is the **receive lock** (the head, the receive
//! counters, record states, the waiting receivers). An operation that needs
//! both (handing a message to a waiting receiver, growing the ring,
//! `IPC_STAT`, `IPC_RMID`) takes the send lock first. Their words sit on
//! separate cache lines.
//!
//! Each side reads the other's position only as a **published** copy,
//! stored after its own changes are committed: a receiver reads records up to
//! the published tail, a sender reuses ring space up to the published head
//! and counts the queue with the published receive counters. A copy left
//! behind by a process that died between committing and publishing is only
//! conservative (fewer messages visible, less room), and the next holder of
//! that side's lock publishes it again. Ring replacement holds both locks and
//! journals the copies with everything else.
//!
//! Each side also keeps the other's copy as it **last read** it, and reads
//! the other side's line again only when that says the queue is empty (for
//! a receiver) or full (for a sender). A receiver that has taken every
//! message it knew of waits a few spins first, so that a streaming sender
//! publishes several messages on a line it keeps, and the receiver learns of
//! them at one read.
//!
//! The rare transitions take both locks, so the common paths need no fence:
//! a receiver starts to wait by looking once more and linking itself with
//! both held (a sender sees waiting receivers under its own lock alone), and
//! a sender starts to wait for room by counting itself with both held (a
//! receive sees the count under its own lock alone). Receiver records are
//! freed only by their owners, or by the reaper of an owner that died, once
//! unlinked. `MSG_INFO` totals are summed
//! over the live queues when asked for.

use core::mem::{offset_of, size_of};
use core::sync::atomic::Ordering;

use crate::arena::{Off, Record, Word, Word64};
use crate::errno::{Errno, Result};
use crate::handoff::{await_status, ASLEEP, WAITING};
use crate::heap::BlockOwner;
use crate::host::{Deadline, Host, Wake};
use crate::ids::{Kind, Object, ObjectTxn, EXT_OFFSET, EXT_WORDS};
use crate::lock::{LockRecord, Txn};
use crate::perm::{Cred, IpcPerm, IPC_NOWAIT};
use crate::registry::Tag;
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

/// A queue's part of its object slot, placed by cache line: `qbytes` on the
/// slot header's line (only read), then a line that senders write once per
/// message and receivers read, the send side's own line, and the receive
/// side's words and its lock on the two lines after (checked below). Each
/// side reads the other's line only to learn something new there, so that a
/// receiver watching for a message does not take the send side's line away
/// from a sender at every store, nor a sender the receive side's.
#[repr(C)]
struct Queue {
    /// The most bytes (and messages) the queue holds.
    qbytes: Word,
    // Published by senders for receivers.
    /// The tail as receivers may use it: stored once a send has committed.
    pub_tail: Word,
    _pub_line: [Word; 15],
    // The send side, under the object lock.
    /// The byte offset of the ring's free run, and the value last stored to
    /// `pub_tail` (a sender that died between its commit and its store
    /// leaves them apart).
    tail: Word,
    published: Word,
    /// The send side's copies of `ring` and `capacity`.
    send_ring: Word,
    send_capacity: Word,
    /// Messages and bytes ever queued (wrapping), the last sender, the time.
    sent_count: Word,
    sent_bytes: Word,
    lspid: Word,
    stime: Word64,
    /// Receivers waiting for a message, first come first served: linked
    /// under both locks (so a sender sees them under its own), unlinked
    /// under the receive lock.
    receivers_head: Word,
    receivers_tail: Word,
    /// The receive side's published copies as senders last read them: the
    /// queue has at least this much room, so a sender reads the receive
    /// side's line only when these say it is full.
    seen_head: Word,
    seen_recv_count: Word,
    seen_recv_bytes: Word,
    /// Senders asleep waiting for room (see `send_seq`).
    senders_asleep: Word,
    /// Fills the send side's cache line.
    _send_line: Word,
    // The receive side, under the receive lock.
    /// The byte offset of the first record, and the copy senders read.
    head: Word,
    pub_head: Word,
    /// Messages and bytes ever taken (wrapping), and the copies senders read.
    recv_count: Word,
    recv_bytes: Word,
    pub_recv_count: Word,
    pub_recv_bytes: Word,
    lrpid: Word,
    rtime: Word64,
    /// Bumped after a receive while senders wait (they count themselves
    /// under both locks); the senders waiting, spinning or asleep.
    send_seq: Word,
    senders_waiting: Word,
    /// `pub_tail` as receivers last read it: they take the records before
    /// it without reading the published line again.
    seen_tail: Word,
    /// The ring: offset (0 until the first send) and capacity, changed only
    /// under both locks (the send side keeps its own copies).
    ring: Word,
    capacity: Word,
    recv_lock: LockRecord<RECV_JOURNAL>,
}

// SAFETY: `repr(C)`, words, word pairs and a lock record, no padding.
unsafe impl Record for Queue {}

/// The receive lock's journal: a receive changes at most a record's state,
/// the head, two counters, the pid and the time (two words); unlinking a
/// receiver, two links.
const RECV_JOURNAL: usize = 7;

/// The ext words at the end of a queue's slot that outlive the queue: the
/// receive lock (see [`crate::ids`]).
pub(crate) const KEPT_EXT_WORDS: usize = size_of::<LockRecord<RECV_JOURNAL>>() / 4;

const _: () = {
    assert!(size_of::<Queue>() == EXT_WORDS * 4);
    assert!(offset_of!(Queue, recv_lock) == (EXT_WORDS - KEPT_EXT_WORDS) * 4);
    assert!((EXT_OFFSET + offset_of!(Queue, pub_tail)) % 64 == 0);
    assert!((EXT_OFFSET + offset_of!(Queue, recv_lock) + 8) % 64 == 0);
    assert!((EXT_OFFSET + offset_of!(Queue, tail)) % 64 == 0);
    assert!((EXT_OFFSET + offset_of!(Queue, head)) % 64 == 0);
};

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
    /// The waiting process's tag, so that a reaper finds the record.
    owner: Word,
}

// SAFETY: `repr(C)`, words and word pairs, no padding.
unsafe impl Record for Receiver {}

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
/// Spins a receiver waits, having taken every message it knew of, before it
/// reads the published tail again: a sender in the middle of a send then
/// finishes it, and more, without losing the published line to the
/// receiver at each one, and the receiver learns of several at one read.
const PATIENCE: u32 = 16;

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
        } else if msgtyp == 0 || (cfg!(feature = "planted-bug") && msgtyp < 0) {
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

/// What a waiting receiver wants: the search, the longest message it
/// accepts (`u32::MAX` with MSG_NOERROR), the room it has, and its pid.
#[derive(Clone, Copy)]
struct Wanted {
    search: Search,
    accepts: u32,
    room: u32,
    pid: u32,
    owner: Tag,
}

/// The arena offset of byte `offset` of a queue's ring.
fn at_ring(queue: &Queue, offset: u32) -> Result<u32> {
    at(queue.ring.get(), offset)
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

/// Up to this many receivers are woken after the lock is released; more are
/// woken at once.
type Wakes = crate::handoff::Wakes<8>;

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

    /// Takes the send lock (the object lock) of queue `msqid`, publishing a
    /// tail left unpublished by a sender that died.
    fn lock_send(&self, msqid: i32) -> Result<(ObjectTxn<'_, 'm, H>, QueueView<'m>)> {
        let locked = self.lock_object(Kind::Msg, msqid)?;
        let q = self.queue_view(&locked.object);
        if q.queue.published.get() != q.queue.tail.get() {
            Self::publish_tail(q.queue);
        }
        Ok((locked, q))
    }

    /// Stores the tail for receivers (after it is committed or
    /// checkpointed), and notes it on the send side's line.
    fn publish_tail(queue: &Queue) {
        let tail = queue.tail.get();
        queue.pub_tail.atomic().store(tail, Ordering::Release);
        queue.published.atomic().store(tail, Ordering::Relaxed);
    }

    /// Takes the receive lock of the queue `msqid` names, or named: the
    /// object is `None` when the queue is gone. Publishes a receive side left
    /// unpublished by a receiver that died.
    fn lock_receive(&self, msqid: i32) -> Result<(Txn<'_, 'm, H>, Option<Object<'m>>)> {
        let (txn, object) = self.lock_second(Kind::Msg, msqid, |ext| {
            &crate::arena::overlay::<Queue, EXT_WORDS>(ext).recv_lock
        })?;
        if let Some(object) = &object {
            let queue = self.queue_view(object).queue;
            if queue.pub_head.get() != queue.head.get()
                || queue.pub_recv_count.get() != queue.recv_count.get()
            {
                Self::publish_receive_side(queue);
            }
        }
        Ok((txn, object))
    }

    /// Stores the receive side's copies (after its changes are committed or
    /// checkpointed): the counters first, then the head.
    fn publish_receive_side(queue: &Queue) {
        let store = |word: &Word, value: u32| word.atomic().store(value, Ordering::Release);
        store(&queue.pub_recv_count, queue.recv_count.get());
        store(&queue.pub_recv_bytes, queue.recv_bytes.get());
        store(&queue.pub_head, queue.head.get());
    }

    /// Moves the senders' sequence word and wakes the sleepers.
    fn bump_senders(&self, queue: &Queue) {
        queue.send_seq.atomic().fetch_add(1, Ordering::SeqCst);
        if queue.senders_asleep.atomic().load(Ordering::SeqCst) != 0 {
            self.host.wake(queue.send_seq.atomic(), u32::MAX);
        }
    }

    /// The ring's records in order, from the head up to `end` (a tail),
    /// bounded; a bad record is an error. Calls `visit` with each live record
    /// until it says stop.
    fn walk(&self, queue: &Queue, end: u32, mut visit: impl FnMut(Found) -> bool) -> Result<()> {
        let (ring, capacity) = (queue.ring.get(), queue.capacity.get());
        let mut at = queue.head.get();
        if at == end {
            return Ok(());
        }
        if ring == 0
            || capacity > self.layout.limits.heap_bytes
            || at >= capacity
            || end >= capacity
        {
            return Err(Errno::CORRUPT);
        }
        // At most one lap of the ring: a walk that goes further never
        // reaches `end` (a broken record chain).
        let mut travelled = 0u64;
        for _ in 0..=capacity / ALIGN {
            if at == end {
                return Ok(());
            }
            let header = self.arena.get(Off::<MsgHeader>::new(self::at(ring, at)?))?;
            let (len, state) = (header.len.get(), header.state.get());
            let size = match state {
                SKIP => capacity - at,
                LIVE | TAKEN if len <= self.layout.limits.msgmax => record_size(len),
                _ => return Err(Errno::CORRUPT),
            };
            travelled += u64::from(size);
            if u64::from(at) + u64::from(size) > u64::from(capacity)
                || travelled > u64::from(capacity)
            {
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
            at = if at + size == capacity { 0 } else { at + size };
        }
        Err(Errno::CORRUPT)
    }

    /// The first message up to `end` that `search` takes.
    fn find(&self, queue: &Queue, search: Search, end: u32) -> Result<Option<Found>> {
        let mut best: Option<Found> = None;
        let mut position = 0;
        self.walk(queue, end, |m| {
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

    /// The message `search` takes among those published: the first up to the
    /// tail the receive side last read, then, if none, up to the tail
    /// published now, read after [`PATIENCE`] spins if `patient`. (The lowest
    /// type is looked for up to the tail published now: a lower one may
    /// follow.) Returns the tail searched up to. Under the receive lock.
    fn find_published(
        &self,
        queue: &Queue,
        search: Search,
        patient: bool,
    ) -> Result<(u32, Option<Found>)> {
        let seen = queue.seen_tail.get();
        let lowest = matches!(search, Search::LessEqual(_));
        if !lowest {
            if let Some(found) = self.find(queue, search, seen)? {
                return Ok((seen, Some(found)));
            }
            if patient {
                for _ in 0..PATIENCE {
                    core::hint::spin_loop();
                }
            }
        }
        let tail = queue.pub_tail.atomic().load(Ordering::Acquire);
        if tail == seen && !lowest {
            return Ok((seen, None));
        }
        // A hint, not journaled: any published tail is one the queue has had.
        queue.seen_tail.atomic().store(tail, Ordering::Relaxed);
        Ok((tail, self.find(queue, search, tail)?))
    }

    /// Whether a message of `len` bytes fits (Linux `msg_fits_inqueue`) when
    /// `taken` messages of `taken_bytes` bytes have left (under the send lock).
    fn fits(queue: &Queue, len: u32, taken: u32, taken_bytes: u32) -> bool {
        let qbytes = u64::from(queue.qbytes.get());
        let qnum = queue.sent_count.get().wrapping_sub(taken);
        let cbytes = queue.sent_bytes.get().wrapping_sub(taken_bytes);
        u64::from(cbytes) + u64::from(len) <= qbytes && u64::from(qnum) < qbytes
    }

    /// [`Namespace::fits`] by the receive side as senders last saw it, then,
    /// if that says no, as it is published now.
    fn fits_seen(queue: &Queue, len: u32) -> bool {
        let seen = |word: &Word| word.atomic().load(Ordering::Relaxed);
        if Self::fits(
            queue,
            len,
            seen(&queue.seen_recv_count),
            seen(&queue.seen_recv_bytes),
        ) {
            return true;
        }
        Self::refresh_seen(queue);
        Self::fits(
            queue,
            len,
            seen(&queue.seen_recv_count),
            seen(&queue.seen_recv_bytes),
        )
    }

    /// Reads the receive side's published copies into the send side's line
    /// (under the send lock; hints, not journaled: any published value is
    /// one the receive side has been at).
    fn refresh_seen(queue: &Queue) {
        let copy = |from: &Word, to: &Word| {
            to.atomic()
                .store(from.atomic().load(Ordering::Acquire), Ordering::Relaxed)
        };
        copy(&queue.pub_recv_count, &queue.seen_recv_count);
        copy(&queue.pub_recv_bytes, &queue.seen_recv_bytes);
        copy(&queue.pub_head, &queue.seen_head);
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
        if let Some(object) = self.peek_object(Kind::Msg, msqid) {
            self.prefetch_tail(object.ext_as::<Queue>(), record_size(len));
        }
        loop {
            let (mut locked, q) = self.lock_send(msqid)?;
            let queue = q.queue;
            if !locked.object.allows(cred, 0o222) {
                return Err(Errno::EACCES);
            }
            if !Self::fits_seen(queue, len) {
                if flags & IPC_NOWAIT != 0 {
                    return Err(Errno::EAGAIN);
                }
                self.wait_for_room(locked, queue, len)?;
                continue;
            }
            // With receivers waiting (they link themselves under both locks,
            // so none is halfway), or the ring to replace, the receive side
            // is needed too.
            let waiting = queue.receivers_head.get() != 0;
            let size = record_size(len);
            if self.room_at_tail(queue, size).is_none() {
                Self::refresh_seen(queue);
            }
            let both = waiting || self.room_at_tail(queue, size).is_none();
            if both {
                locked.txn.lock_nested(&queue.recv_lock)?;
            }
            let mut wakes = Wakes::new();
            let delivered =
                waiting && self.deliver(&mut locked.txn, &q, mtype, data, &mut wakes)?;
            let old_ring = if delivered {
                locked.txn.set(&queue.lspid, pid)?;
                locked
                    .txn
                    .set64(&queue.stime, self.host.wall_clock() as u64)?;
                None
            } else {
                self.append(&mut locked, &q, mtype, data, pid)?
            };
            locked.txn.checkpoint();
            Self::publish_tail(queue);
            locked.commit();
            wakes.wake(self);
            if let Some(ring) = old_ring {
                self.free_ring(ring, msqid)?;
            }
            return Ok(());
        }
    }

    /// Fetches for writing the lines a record of `size` bytes will most
    /// likely take, read without the lock (hints only), so that their
    /// transfer from the core of a receiver, which read them a lap ago,
    /// overlaps with taking the lock.
    fn prefetch_tail(&self, queue: &Queue, size: u32) {
        let (ring, capacity) = (queue.send_ring.get(), queue.send_capacity.get());
        let tail = queue.tail.get();
        let end = tail.saturating_add(size).min(capacity);
        for at in (tail..end).step_by(64) {
            if let Ok(word) = self.arena.get(Off::<Word>::new(ring.wrapping_add(at))) {
                word.prefetch_for_write();
            }
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
        let ring = queue.send_ring.get();
        let txn = &mut locked.txn;
        // Past the tail nothing is reachable until the tail moves (journaled).
        if skip > 0 {
            let filler = self
                .arena
                .get(Off::<MsgHeader>::new(at(ring, queue.tail.get())?))?;
            filler
                .len
                .set(skip.checked_sub(MsgHeader::SIZE).ok_or(Errno::CORRUPT)?);
            filler.state.set(SKIP);
        }
        let header = self.arena.get(Off::<MsgHeader>::new(at(ring, tail)?))?;
        header.len.set(len);
        header.mtype.set(mtype as u64);
        header.state.set(LIVE);
        self.arena
            .write_bytes(at(at(ring, tail)?, MsgHeader::SIZE)?, data)?;
        let capacity = queue.send_capacity.get();
        let new_tail = if tail + size == capacity {
            0
        } else {
            tail + size
        };
        txn.set(&queue.tail, new_tail)?;
        txn.set(&queue.sent_count, queue.sent_count.get().wrapping_add(1))?;
        txn.set(&queue.sent_bytes, queue.sent_bytes.get().wrapping_add(len))?;
        txn.set(&queue.lspid, pid)?;
        txn.set64(&queue.stime, self.host.wall_clock() as u64)?;
        Ok(replaced.flatten())
    }

    /// Where a record of `size` bytes goes: its offset, and the bytes of
    /// filler needed first to wrap to the ring's start; `None` if it does not
    /// fit in the free run (up to the head as senders last saw it, short of
    /// filling the ring).
    fn room_at_tail(&self, queue: &Queue, size: u32) -> Option<(u32, u32)> {
        let (ring, capacity) = (queue.send_ring.get(), queue.send_capacity.get());
        let (tail, head) = (queue.tail.get(), queue.seen_head.get());
        // Read from the arena: a ring outside the heap is one to replace.
        let in_heap = ring >= self.layout.heap_start
            && u64::from(ring) + u64::from(capacity) <= u64::from(self.layout.heap_end);
        if !in_heap || tail >= capacity || head >= capacity {
            return None;
        }
        let used = if tail >= head {
            tail - head
        } else {
            capacity - head + tail
        };
        let free = u64::from(capacity - used);
        let to_end = capacity - tail;
        if size <= to_end {
            (u64::from(size) < free).then_some((tail, 0))
        } else {
            // Wrap: the filler to the end, then the record at 0.
            (u64::from(to_end) + u64::from(size) < free).then_some((0, to_end))
        }
    }

    /// Copies the live records into a new ring with room for `size` more
    /// bytes and publishes it; returns the old ring (0 if none). Both locks
    /// are held.
    fn grow(
        &self,
        locked: &mut ObjectTxn<'_, 'm, H>,
        q: &QueueView<'m>,
        size: u32,
    ) -> Result<Option<u32>> {
        let queue = q.queue;
        let tail = queue.tail.get();
        let mut live = 0u32;
        self.walk(queue, tail, |m| {
            live += record_size(m.len);
            true
        })?;
        // The most a queue can need: every message a minimal record.
        let qbytes = queue.qbytes.get().max(1);
        let needed = live.saturating_add(size).saturating_add(ALIGN);
        let most = qbytes
            .saturating_mul(MsgHeader::SIZE + ALIGN)
            .saturating_add(qbytes)
            .max(MIN_RING);
        let wanted = needed.saturating_mul(2).clamp(MIN_RING, most.max(needed));
        let capacity = wanted
            .checked_next_power_of_two()
            .unwrap_or(wanted)
            .min(self.layout.limits.heap_bytes)
            & !(ALIGN - 1);
        if capacity < needed {
            return Err(Errno::ENOMEM);
        }
        let owner = BlockOwner {
            kind: OWNER_RING,
            id: locked.object.id() as u32,
        };
        let fresh = self.heap_alloc(capacity, owner)?;
        let mut written = 0u32;
        let old = queue.ring.get();
        let copied = self.walk(queue, tail, |m| {
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
            let copied = at(from, MsgHeader::SIZE)
                .and_then(|from| Ok((from, at(to, MsgHeader::SIZE)?)))
                .and_then(|(from, to)| self.copy_payload(from, to, m.len));
            if copied.is_err() {
                return false;
            }
            written += record_size(m.len);
            true
        });
        if copied.is_err() || written != live {
            self.heap_free(fresh, owner)?;
            return Err(Errno::CORRUPT);
        }
        // Both sides' copies are journaled with the rest: a ring replaced
        // halfway is never published.
        let txn = &mut locked.txn;
        for (word, value) in [
            (&queue.ring, fresh),
            (&queue.capacity, capacity),
            (&queue.send_ring, fresh),
            (&queue.send_capacity, capacity),
            (&queue.head, 0),
            (&queue.pub_head, 0),
            (&queue.seen_head, 0),
            (&queue.tail, live),
            (&queue.pub_tail, live),
            (&queue.seen_tail, live),
            (&queue.published, live),
        ] {
            txn.set(word, value)?;
        }
        Ok((old != 0).then_some(old))
    }

    /// Copies `len` payload bytes from arena offset `from` to `to`.
    fn copy_payload(&self, from: u32, to: u32, len: u32) -> Result<()> {
        let mut chunk = [0u8; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len() as u32);
            let part = &mut chunk[..n as usize];
            self.arena.read_bytes(at(from, done)?, part)?;
            self.arena.write_bytes(at(to, done)?, part)?;
            done += n;
        }
        Ok(())
    }

    fn free_ring(&self, ring: u32, msqid: i32) -> Result<()> {
        let owner = BlockOwner {
            kind: OWNER_RING,
            id: msqid as u32,
        };
        self.heap_free(ring, owner)
    }

    /// A sender whose message does not fit waits until a receive (or
    /// `IPC_SET`, or `IPC_RMID`) may have made room, then returns for it to
    /// try again: `EIDRM` if the queue went meanwhile, `EINTR` on a signal.
    fn wait_for_room(
        &self,
        mut locked: ObjectTxn<'_, 'm, H>,
        queue: &'m Queue,
        len: u32,
    ) -> Result<()> {
        let id = locked.object.id();
        // Counted under both locks: a receive after this finds us counted,
        // one before shows in the counters.
        locked.txn.lock_nested(&queue.recv_lock)?;
        if Self::fits(queue, len, queue.recv_count.get(), queue.recv_bytes.get()) {
            // It fits after all: by copies a receiver that died left
            // unpublished, perhaps, which the sender reads next.
            Self::publish_receive_side(queue);
            return Ok(());
        }
        let waiting = queue.senders_waiting.atomic();
        waiting.fetch_add(1, Ordering::SeqCst);
        let seen = queue.send_seq.atomic().load(Ordering::SeqCst);
        drop(locked);
        let result = self.wait(id, queue, seen);
        waiting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Sleeps until the senders' sequence word moves from `seen` (or a
    /// periodic check is due).
    fn wait(&self, id: i32, queue: &'m Queue, seen: u32) -> Result<()> {
        let seq = queue.send_seq.atomic();
        // Spin first (yielding between rounds): a change made meanwhile costs
        // no system call on either side.
        let mut moved = false;
        for _ in 0..SPIN_ROUNDS {
            for _ in 0..SPINS {
                if seq.load(Ordering::Acquire) != seen {
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
            let asleep = queue.senders_asleep.atomic();
            asleep.fetch_add(1, Ordering::SeqCst);
            let until = Deadline::after(self.host.now(), RECHECK_NS);
            woke = self.host.wait(seq, seen, Some(until));
            asleep.fetch_sub(1, Ordering::SeqCst);
        }
        match self.lock_object(Kind::Msg, id) {
            Err(Errno::EINVAL) => return Err(Errno::EIDRM),
            Err(err) => return Err(err),
            Ok(_) => {}
        }
        if woke == Wake::Interrupted {
            return Err(Errno::EINTR);
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
        let (me, pid) = self.identity()?;
        let mut spun = false;
        loop {
            let (mut txn, object) = self.lock_receive(msqid)?;
            let object = object.ok_or(Errno::EINVAL)?;
            if !object.allows(cred, 0o444) {
                return Err(Errno::EACCES);
            }
            let queue = self.queue_view(&object).queue;
            let (end, found) = self.find_published(queue, search, !spun)?;
            if let Some(found) = found {
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
                let n = (found.len as usize)
                    .min(usize::try_from(bufsz).unwrap_or(usize::MAX))
                    .min(out.len());
                let payload = at(at(queue.ring.get(), found.at)?, MsgHeader::SIZE)?;
                self.arena.read_bytes(payload, &mut out[..n])?;
                if flags & MSG_COPY != 0 {
                    return Ok((found.mtype, n));
                }
                self.take(&mut txn, queue, found, pid, end)?;
                txn.checkpoint();
                Self::publish_receive_side(queue);
                let senders = queue.senders_waiting.get() != 0;
                txn.commit();
                if senders {
                    self.bump_senders(queue);
                }
                return Ok((found.mtype, n));
            }
            if flags & IPC_NOWAIT != 0 {
                return Err(Errno::ENOMSG);
            }
            if !spun {
                // A sender about to send costs less than a wait: watch the
                // published tail for a while first.
                spun = true;
                drop(txn);
                let tail = queue.pub_tail.atomic();
                'spin: for _ in 0..SPIN_ROUNDS {
                    for _ in 0..SPINS {
                        if tail.load(Ordering::Relaxed) != end {
                            break 'spin;
                        }
                        core::hint::spin_loop();
                    }
                    self.host.yield_now();
                }
                continue;
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
            drop(txn);
            // Start waiting under both locks, so that every later sender sees
            // this receiver under its own lock.
            let mut locked = match self.lock_send(msqid) {
                Err(Errno::EINVAL) => return Err(Errno::EIDRM),
                other => other?.0,
            };
            if !locked.object.allows(cred, 0o444) {
                return Err(Errno::EACCES);
            }
            locked.txn.lock_nested(&queue.recv_lock)?;
            if self.find(queue, search, queue.tail.get())?.is_some() {
                continue;
            }
            let wanted = Wanted {
                search,
                accepts,
                room,
                pid,
                owner: me,
            };
            return self.wait_for_message(locked.txn, queue, msqid, wanted, out, cred);
        }
    }

    /// Queues the caller as a receiver (both locks held, nothing it wants in
    /// the queue) and waits until a sender delivers to it; then copies the
    /// message out.
    fn wait_for_message(
        &self,
        mut txn: Txn<'_, 'm, H>,
        queue: &'m Queue,
        msqid: i32,
        wanted: Wanted,
        out: &mut [u8],
        cred: &Cred<'_>,
    ) -> Result<(i64, usize)> {
        let owner = BlockOwner {
            kind: OWNER_RECEIVER,
            id: msqid as u32,
        };
        let at = self.heap_alloc(Receiver::SIZE + wanted.room, owner)?;
        let receiver = self.arena.get(Off::<Receiver>::new(at))?;
        // Fresh: reachable once linked (journaled, below).
        let (kind, search_type) = wanted.search.encode();
        receiver.status.set(WAITING);
        receiver.search.set(kind);
        receiver.search_type.set(search_type as u64);
        receiver.accepts.set(wanted.accepts);
        receiver.room.set(wanted.room);
        receiver.pid.set(wanted.pid);
        receiver.owner.set(wanted.owner.raw());
        receiver.next.set(0);
        let tail = queue.receivers_tail.get();
        receiver.prev.set(tail);
        let linked = match tail {
            0 => txn.set(&queue.receivers_head, at),
            tail => self
                .receiver(tail, msqid)
                .and_then(|last| txn.set(&last.next, at)),
        }
        .and_then(|()| txn.set(&queue.receivers_tail, at));
        if let Err(err) = linked {
            drop(txn);
            self.heap_free(at, owner)?;
            return Err(err);
        }
        txn.commit();
        let result = self.wait_for_delivery(msqid, receiver, at, out, cred);
        self.heap_free(at, owner)?;
        result
    }

    fn wait_for_delivery(
        &self,
        msqid: i32,
        receiver: &'m Receiver,
        at: u32,
        out: &mut [u8],
        cred: &Cred<'_>,
    ) -> Result<(i64, usize)> {
        let status = receiver.status.atomic();
        loop {
            let woke = await_status(&self.host, status, SPIN_ROUNDS, SPINS, || {
                Deadline::after(self.host.now(), RECHECK_NS)
            });
            // Decide under the lock: a final status read there is committed.
            let (mut txn, object) = self.lock_receive(msqid)?;
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
            // Permission changes only by IPC_SET, which wakes every
            // receiver to look again, as Linux does.
            let refused = !object.allows(cred, 0o444);
            if refused || woke == Wake::Interrupted {
                let queue = self.queue_view(&object).queue;
                self.unlink_receiver(&mut txn, queue, receiver, msqid)?;
                txn.commit();
                return Err(if refused { Errno::EACCES } else { Errno::EINTR });
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

    /// For the check: whether a block that names a queue as its owner is
    /// that queue's ring (`None` for blocks of other owners).
    pub(crate) fn msg_holds_block(&self, kind: u32, id: u32, payload: u32) -> Option<bool> {
        (kind == OWNER_RING).then(|| {
            self.peek_object(Kind::Msg, id as i32)
                .is_some_and(|object| self.queue_view(&object).queue.ring.get() == payload)
        })
    }

    /// For the check: the invariants of live queue `msqid` — its ring a
    /// block of its own, the send side's copies of it current, the records
    /// from head to tail well formed and as many as the counters say, the
    /// waiting receivers' list well linked — each broken one reported.
    pub(crate) fn check_queue(&self, msqid: i32, report: &mut dyn FnMut(&'static str)) {
        let Some(object) = self.peek_object(Kind::Msg, msqid) else {
            return;
        };
        let queue = self.queue_view(&object).queue;
        let (ring, capacity) = (queue.ring.get(), queue.capacity.get());
        if queue.send_ring.get() != ring || queue.send_capacity.get() != capacity {
            report("the send side's copy of the ring differs from the ring");
        }
        if ring != 0 {
            let holds = ring
                .checked_sub(crate::heap::BLOCK_HEADER)
                .and_then(|block| {
                    let info = crate::heap::block_info(
                        &self.arena,
                        &self.layout,
                        block,
                        self.layout.heap_end,
                    )
                    .ok()?;
                    let owner = self.arena.get(Off::<Word>::new(block + 4)).ok()?.get();
                    Some(
                        info.allocated
                            && info.owner_kind == OWNER_RING
                            && owner == msqid as u32
                            && capacity <= info.size - crate::heap::BLOCK_HEADER,
                    )
                });
            if holds != Some(true) {
                return report(
                    "the ring is not a heap block of this queue's as large as its capacity",
                );
            }
        }
        let (mut count, mut bytes) = (0u32, 0u32);
        let walked = self.walk(queue, queue.tail.get(), |found| {
            count = count.wrapping_add(1);
            bytes = bytes.wrapping_add(found.len);
            true
        });
        if walked.is_err() {
            report("the ring's records from head to tail are broken");
        } else if count != queue.sent_count.get().wrapping_sub(queue.recv_count.get())
            || bytes != queue.sent_bytes.get().wrapping_sub(queue.recv_bytes.get())
        {
            report("the message or byte count disagrees with the records in the ring");
        }
        let bound = self.layout.limits.heap_bytes / Receiver::SIZE;
        let (mut at, mut prev) = (queue.receivers_head.get(), 0);
        for _ in 0..bound {
            if at == 0 {
                if queue.receivers_tail.get() != prev {
                    report("the waiting receivers' list does not end at its tail");
                }
                return;
            }
            match self.receiver(at, msqid) {
                Ok(receiver) if receiver.prev.get() == prev => {
                    (prev, at) = (at, receiver.next.get());
                }
                _ => return report("the waiting receivers' list is broken"),
            }
        }
        report("the waiting receivers' list is broken");
    }

    /// Takes the receiver records of the dead process in registry slot
    /// `index` out of their queues and frees them, so that no sender hands
    /// a message to it. Run by the reaper that claimed the slot.
    pub(crate) fn remove_dead_receivers(&self, index: u32) {
        self.sweep_blocks(OWNER_RECEIVER, |at, msqid| {
            let msqid = msqid as i32;
            let Ok((mut txn, object)) = self.lock_receive(msqid) else {
                return false;
            };
            let Ok(receiver) = self.receiver(at, msqid) else {
                return false;
            };
            if Tag::from_raw(receiver.owner.get()).slot() != Some(index) {
                return false;
            }
            if let (Some(object), WAITING | ASLEEP) = (object, receiver.status.get()) {
                let queue = self.queue_view(&object).queue;
                if self
                    .unlink_receiver(&mut txn, queue, receiver, msqid)
                    .is_err()
                {
                    return false;
                }
            }
            txn.commit();
            true
        });
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
    /// checkpoint of its own. Both locks are held.
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
                    let n = data.len().min(receiver.room.get() as usize);
                    self.arena.write_bytes(at + Receiver::SIZE, &data[..n])?;
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

    /// Wakes every waiting receiver, leaving its status as it is: it looks
    /// at the queue again. The receive lock is held, so no record can be
    /// freed before the wakes are done.
    fn wake_each_receiver(&self, queue: &'m Queue, msqid: i32) {
        let bound = self.layout.limits.heap_bytes / Receiver::SIZE;
        let mut at = queue.receivers_head.get();
        for _ in 0..bound {
            let Ok(receiver) = self.receiver(at, msqid) else {
                break;
            };
            self.host.wake(receiver.status.atomic(), 1);
            at = receiver.next.get();
        }
    }

    /// Removes a record (the receive lock held; `end` is the tail as the
    /// caller sees it): the head moves past it (and past taken records and
    /// filler after it) if it is first, else it is marked taken.
    fn take(
        &self,
        txn: &mut Txn<'_, 'm, H>,
        queue: &'m Queue,
        found: Found,
        pid: u32,
        end: u32,
    ) -> Result<()> {
        let capacity = queue.capacity.get();
        let mut head = queue.head.get();
        if found.at == head {
            // The first record: the head moves past it, unmarked.
            head = match head + record_size(found.len) {
                next if next == capacity => 0,
                next if next < capacity => next,
                _ => return Err(Errno::CORRUPT),
            };
        } else {
            let header = self
                .arena
                .get(Off::<MsgHeader>::new(at_ring(queue, found.at)?))?;
            txn.set(&header.state, TAKEN)?;
        }
        // Advance the head over whatever is no longer live.
        let mut steps = 0;
        while head != end {
            steps += 1;
            if steps > capacity / ALIGN + 1 || head >= capacity {
                return Err(Errno::CORRUPT);
            }
            let first = self
                .arena
                .get(Off::<MsgHeader>::new(at_ring(queue, head)?))?;
            let size = match first.state.get() {
                SKIP => capacity - head,
                TAKEN if first.len.get() <= self.layout.limits.msgmax => {
                    record_size(first.len.get())
                }
                LIVE => break,
                _ => return Err(Errno::CORRUPT),
            };
            head = match head.checked_add(size).ok_or(Errno::CORRUPT)? {
                next if next == capacity => 0,
                next if next < capacity => next,
                _ => return Err(Errno::CORRUPT),
            };
        }
        txn.set(&queue.head, head)?;
        txn.set(&queue.recv_count, queue.recv_count.get().wrapping_add(1))?;
        txn.set(
            &queue.recv_bytes,
            queue.recv_bytes.get().wrapping_add(found.len),
        )?;
        txn.set(&queue.lrpid, pid)?;
        txn.set64(&queue.rtime, self.host.wall_clock() as u64)
    }

    /// `msqid_ds` of a queue whose two locks the caller holds.
    fn msqid_ds(&self, object: &Object<'m>) -> MsqidDs {
        let queue = self.queue_view(object).queue;
        MsqidDs {
            perm: object.perm(),
            stime: queue.stime.get() as i64,
            rtime: queue.rtime.get() as i64,
            ctime: object.ctime(),
            cbytes: u64::from(queue.sent_bytes.get().wrapping_sub(queue.recv_bytes.get())),
            qnum: u64::from(queue.sent_count.get().wrapping_sub(queue.recv_count.get())),
            qbytes: u64::from(queue.qbytes.get()),
            lspid: queue.lspid.get() as i32,
            lrpid: queue.lrpid.get() as i32,
        }
    }

    /// Takes the receive lock too, under an object lock held.
    fn lock_both(&self, locked: &mut ObjectTxn<'_, 'm, H>) -> Result<()> {
        let queue = self.queue_view(&locked.object).queue;
        locked.txn.lock_nested(&queue.recv_lock)
    }

    /// `msgctl(IPC_STAT)`.
    pub fn msg_stat(&self, msqid: i32, cred: &Cred<'_>) -> Result<MsqidDs> {
        if msqid < 0 {
            return Err(Errno::EINVAL);
        }
        let mut locked = self.lock_object(Kind::Msg, msqid)?;
        if !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        self.lock_both(&mut locked)?;
        Ok(self.msqid_ds(&locked.object))
    }

    /// `msgctl(MSG_STAT)` (`any`: `MSG_STAT_ANY`, without the read check): the
    /// queue in slot `index`, and its id.
    pub fn msg_stat_index(&self, index: i32, any: bool, cred: &Cred<'_>) -> Result<(i32, MsqidDs)> {
        let mut locked = self.lock_index(Kind::Msg, index)?;
        if !any && !locked.object.allows(cred, 0o444) {
            return Err(Errno::EACCES);
        }
        self.lock_both(&mut locked)?;
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
        // Linux wakes every sleeper at IPC_SET, to check its permission
        // again (and senders, whether they fit now): wake each receiver
        // under the receive lock, which keeps its record from being freed.
        locked.txn.lock_nested(&queue.recv_lock)?;
        self.wake_each_receiver(queue, msqid);
        locked.commit();
        self.bump_senders(queue);
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
            |txn, object| {
                let queue = self.queue_view(object).queue;
                txn.lock_nested(&queue.recv_lock)?;
                Ok(queue)
            },
            |_, queue| {
                self.bump_senders(queue);
                // The removal is permanent and the lock still held.
                self.wake_each_receiver(queue, msqid);
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
                let Ok(mut locked) = self.lock_object(Kind::Msg, id) else {
                    continue;
                };
                if self.lock_both(&mut locked).is_ok() {
                    let ds = self.msqid_ds(&locked.object);
                    messages += ds.qnum;
                    bytes += ds.cbytes;
                }
            }
            info.msgpool = narrow(u64::from(self.in_use(Kind::Msg)));
            info.msgmap = narrow(messages);
            info.msgtql = narrow(bytes);
        }
        (self.max_index(Kind::Msg).max(0), info)
    }
}

#[cfg(test)]
#[path = "tests_msg_crash.rs"]
mod tests_crash;

#[cfg(test)]
#[path = "tests_msg_check.rs"]
mod tests_check;
