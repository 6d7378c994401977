//! Fuzz properties of the engine, generated and shrunk by proptest:
//!
//! - [`arbitrary_words_over_a_live_arena_never_crash_or_hang_the_core`]:
//!   words written anywhere over an arena full of real state (with a bias
//!   toward its metadata) make every call of the namespace return, `Ok` or
//!   `Err`, never panic, never hang;
//! - [`operation_sequences_agree_with_a_model_of_the_kernel`]: sequences of
//!   calls that do not block give the answers, and leave the state, that a
//!   plain model of the Linux kernel's System V IPC gives and leaves
//!   (`tests_fuzz_model.rs`).
//!
//! Each runs a fixed number of cases from a fixed seed, so `cargo test` is
//! deterministic and a failure in CI fails again on a rerun. proptest's
//! environment variables run them longer or elsewhere:
//! `PROPTEST_CASES=100000` (more cases from the same seed),
//! `PROPTEST_RNG_SEED=N` (another seed). Failures are not persisted to files:
//! a failure prints its shrunk input, from which a unit test is written.
//!
//! A case that runs longer than [`CASE_LIMIT`] aborts the test binary with
//! its input on standard error ([`Watchdog`]): a hang fails instead of
//! blocking CI.

use std::collections::HashSet;
use std::fmt::Debug;
use std::io::Write;
use std::mem::size_of;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use std::vec::Vec;

use proptest::prelude::*;
use proptest::test_runner::{
    contextualize_config, Config, RngSeed, TestCaseError, TestError, TestRunner,
};

use crate::arena::{Off, Record};
use crate::checkpoint::Adjustment;
use crate::heap::{block_info, heap_bump, HeapHeader};
use crate::host::{Deadline, Host, Image, Liveness, ProcessId, Waiter, Wake};
use crate::ids::{ObjectSlot, TableHeader, EXT_OFFSET};
use crate::lock::{LockHead, LockRecord};
use crate::msg::{KEPT_EXT_WORDS, MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use crate::perm::{IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE};
use crate::registry::{Owner, ProcSlot};
use crate::sem::{SemBuf, SemQuery, Timeout, SEM_UNDO};
use crate::shm::{Placement, SHM_EXEC, SHM_RDONLY};
use crate::tests::{memory, TestHost, USER};
use crate::*;

#[path = "tests_fuzz_model.rs"]
mod model;

use model::{Answer, Call, Kernel, MsgSeen, Obj, Observed, Plan, SemSeen, ShmSeen, Who};

/// The longest one case may run before the watchdog calls it a hang.
const CASE_LIMIT: Duration = Duration::from_secs(20);

/// The configuration of a property: `cases` cases from `seed`, shrinking
/// at most 2,000 steps, nothing persisted; proptest's environment variables
/// (`PROPTEST_CASES`, `PROPTEST_RNG_SEED`, …) override it.
fn config(cases: u32, seed: u64) -> Config {
    contextualize_config(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    })
}

/// Runs `property` over `strategy` under a [`Watchdog`], and panics with
/// the shrunk input if a case fails.
fn check_property<S: Strategy>(
    name: &'static str,
    config: Config,
    strategy: S,
    property: impl Fn(S::Value) -> core::result::Result<(), TestCaseError>,
) where
    S::Value: Debug,
{
    let watchdog = Watchdog::new(name);
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&strategy, |input| {
        let _case = watchdog.case(&input);
        property(input)
    });
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => {
            panic!("{name}: {reason}\nshrunk input: {input:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

/// Aborts the test binary when one case of a property runs longer than
/// [`CASE_LIMIT`], printing the case's number and input. A thread of its
/// own, polling; disarmed on drop.
struct Watchdog {
    state: Arc<WatchdogState>,
}

struct WatchdogState {
    /// The running case: its number, when it started and its input.
    case: Mutex<Option<(u32, Instant, String)>>,
    cases: AtomicU32,
    done: AtomicBool,
}

impl Watchdog {
    fn new(property: &'static str) -> Watchdog {
        let state = Arc::new(WatchdogState {
            case: Mutex::new(None),
            cases: AtomicU32::new(0),
            done: AtomicBool::new(false),
        });
        let watched = Arc::clone(&state);
        std::thread::spawn(move || {
            while !watched.done.load(Ordering::Acquire) {
                if let Some((number, started, input)) = &*watched.case.lock().unwrap() {
                    if started.elapsed() > CASE_LIMIT {
                        // Past the test harness's capture, which `eprintln!`
                        // in a thread a test spawned goes to.
                        let _ = writeln!(
                            std::io::stderr(),
                            "watchdog: {property}: case {number} still running after \
                             {CASE_LIMIT:?}, a hang; its input:\n{input}"
                        );
                        std::process::abort();
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Watchdog { state }
    }

    /// Arms the watchdog for one case, until the guard drops.
    fn case(&self, input: &dyn Debug) -> CaseGuard<'_> {
        let number = self.state.cases.fetch_add(1, Ordering::Relaxed);
        *self.state.case.lock().unwrap() =
            Some((number, Instant::now(), std::format!("{input:#?}")));
        CaseGuard(self)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.done.store(true, Ordering::Release);
    }
}

struct CaseGuard<'w>(&'w Watchdog);

impl Drop for CaseGuard<'_> {
    fn drop(&mut self) {
        *self.0.state.case.lock().unwrap() = None;
    }
}

fn sop(sem_num: u16, sem_op: i16, sem_flg: i16) -> SemBuf {
    SemBuf {
        sem_num,
        sem_op,
        sem_flg,
    }
}

// ---------------------------------------------------------------------------
// Arbitrary words over a live arena.

/// Small limits, so that one case's arena is quick to make and every region
/// is dense with real state.
fn scribble_limits() -> Limits {
    Limits {
        semmni: 40,
        msgmni: 40,
        shmmni: 40,
        procs: 8,
        heap_bytes: 32 * 1024,
        ..DEFAULT_LIMITS
    }
}

/// Where in the arena a scribble lands: a region, and a number that picks
/// the word within it.
#[derive(Clone, Copy, Debug)]
enum Region {
    /// The header (limits, region offsets, sweep time).
    Header,
    /// The process registry: bitmaps and slots (locks, undo and attachment
    /// lists, fork states).
    Registry,
    /// The three table headers (locks, counts, sequence, next index).
    TableHeaders,
    /// The tables' bitmaps and hash buckets.
    TableIndex,
    /// The object slots' own words: their locks' heads (owner, journal
    /// length, overflow), state, sequence, key, hash link, permissions.
    SlotHeads,
    /// The kinds' fields in the object slots (sizes, counters, list and
    /// ring offsets, inline semaphores, a queue's receive lock).
    SlotFields,
    /// The journals of the object slots' locks (read when a dead holder's
    /// lock is taken over).
    SlotJournals,
    /// The heap header (lock, bump pointer, free lists).
    HeapHeader,
    /// The two header words of a heap block, or the first of its payload
    /// (a free block's link).
    BlockHeaders,
    /// Anywhere in the heap's used part.
    Heap,
    /// Anywhere.
    Anywhere,
}

/// What a scribble writes.
#[derive(Clone, Copy, Debug)]
enum Value {
    Zero,
    Small(u8),
    /// `u32::MAX - n`.
    NearMax(u8),
    /// The tag of the process that makes the calls.
    OwnTag,
    /// The tag of a process that died holding locks, undo records and
    /// attachments.
    DeadTag,
    /// An offset into the arena.
    Offset(u32),
    /// The offset of a heap block or of its payload.
    BlockOffset(u32),
    /// The word as it was, with one bit flipped.
    Flip(u8),
    /// The word as it was, plus `n`.
    Nudge(i8),
    Random(u32),
}

#[derive(Clone, Copy, Debug)]
struct Scribble {
    region: Region,
    pick: u32,
    value: Value,
}

fn region() -> impl Strategy<Value = Region> {
    prop_oneof![
        1 => Just(Region::Header),
        3 => Just(Region::Registry),
        2 => Just(Region::TableHeaders),
        2 => Just(Region::TableIndex),
        4 => Just(Region::SlotHeads),
        4 => Just(Region::SlotFields),
        1 => Just(Region::SlotJournals),
        2 => Just(Region::HeapHeader),
        4 => Just(Region::BlockHeaders),
        3 => Just(Region::Heap),
        1 => Just(Region::Anywhere),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(Value::Zero),
        3 => (0u8..64).prop_map(Value::Small),
        2 => (0u8..4).prop_map(Value::NearMax),
        2 => Just(Value::OwnTag),
        2 => Just(Value::DeadTag),
        2 => any::<u32>().prop_map(Value::Offset),
        2 => any::<u32>().prop_map(Value::BlockOffset),
        3 => (0u8..32).prop_map(Value::Flip),
        2 => (-3i8..=3).prop_map(Value::Nudge),
        1 => any::<u32>().prop_map(Value::Random),
    ]
}

fn scribble() -> impl Strategy<Value = Scribble> {
    (region(), any::<u32>(), value()).prop_map(|(region, pick, value)| Scribble {
        region,
        pick,
        value,
    })
}

/// An id as a call names it: one of the arena's real objects (of the kind
/// the call takes), that object's id with another sequence number, or a
/// made-up one.
#[derive(Clone, Copy, Debug)]
enum Target {
    Real(u8),
    Stale(u8),
    Raw(i32),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        6 => any::<u8>().prop_map(Target::Real),
        1 => any::<u8>().prop_map(Target::Stale),
        1 => prop_oneof![
            Just(-1),
            Just(0),
            Just(1),
            Just(i32::MAX),
            Just(i32::MIN),
            0..200_000i32,
        ]
        .prop_map(Target::Raw),
    ]
}

fn key() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(IPC_PRIVATE),
        1..24i32,
        Just(0x5e),
        Just(0x51),
        Just(0x53),
        any::<i32>()
    ]
}

fn get_flags() -> impl Strategy<Value = i32> {
    (
        0..4i32,
        prop_oneof![Just(0o600), Just(0o400), Just(0), Just(0o777)],
    )
        .prop_map(|(create, mode)| {
            [0, IPC_CREAT, IPC_CREAT | IPC_EXCL, IPC_EXCL][create as usize] | mode
        })
}

fn sem_num() -> impl Strategy<Value = u16> {
    prop_oneof![0..3u16, Just(5), Just(29), Just(30), any::<u16>()]
}

fn sem_op_value() -> impl Strategy<Value = i16> {
    prop_oneof![-2..=2i16, Just(i16::MAX), Just(i16::MIN), any::<i16>()]
}

/// How long a probe's `semop` may wait: not at all (every operation has
/// `IPC_NOWAIT`), a zero timeout, or a timeout the call refuses.
#[derive(Clone, Copy, Debug)]
enum Patience {
    NoWait,
    Zero,
    Invalid,
}

/// A `semctl`, `msgctl` or `shmctl` command (a kind without the command
/// takes `IPC_STAT` instead).
#[derive(Clone, Copy, Debug)]
enum Ctl {
    Stat,
    /// `*_STAT` of an index, or `*_STAT_ANY`.
    StatIndex(i32, bool),
    /// `IPC_SET`: uid, gid, mode, and a queue's `msg_qbytes`.
    Set(u32, u32, u32, u64),
    Remove,
    /// `*_INFO`, or `IPC_INFO`.
    Info(bool),
    /// `GETVAL`, `GETPID`, `GETNCNT` or `GETZCNT` of a semaphore.
    Query(i32, u8),
    GetAll,
    /// The number of semaphores (what `GETALL` callers size for).
    Count,
    SetVal(i32, i32),
    /// `SETALL`: this value plus each semaphore's number.
    SetAll(u16),
    /// `SHM_LOCK`, or `SHM_UNLOCK`.
    Lock(bool),
}

fn ctl() -> impl Strategy<Value = Ctl> {
    prop_oneof![
        Just(Ctl::Stat),
        (prop_oneof![0..8i32, any::<i32>()], any::<bool>())
            .prop_map(|(i, any)| Ctl::StatIndex(i, any)),
        (
            prop_oneof![Just(1000u32), Just(2000), any::<u32>()],
            prop_oneof![Just(1000u32), any::<u32>()],
            prop_oneof![Just(0o600u32), Just(0o400), any::<u32>()],
            prop_oneof![Just(0u64), 1..20_000u64, any::<u64>()],
        )
            .prop_map(|(uid, gid, mode, qbytes)| Ctl::Set(uid, gid, mode, qbytes)),
        Just(Ctl::Remove),
        any::<bool>().prop_map(Ctl::Info),
        (prop_oneof![0..3i32, Just(29), any::<i32>()], 0u8..4).prop_map(|(n, q)| Ctl::Query(n, q)),
        Just(Ctl::GetAll),
        Just(Ctl::Count),
        (
            prop_oneof![0..3i32, Just(29), any::<i32>()],
            prop_oneof![0..4i32, Just(32767), any::<i32>()]
        )
            .prop_map(|(n, v)| Ctl::SetVal(n, v)),
        prop_oneof![0..4u16, Just(32767), Just(u16::MAX)].prop_map(Ctl::SetAll),
        any::<bool>().prop_map(Ctl::Lock),
    ]
}

/// A call made after the scribbles.
#[derive(Clone, Debug)]
enum Probe {
    SemGet(i32, i32, i32),
    SemOp(Target, Vec<(u16, i16, bool)>, Patience),
    SemCtl(Target, Ctl),
    MsgGet(i32, i32),
    MsgSnd(Target, i64, u16),
    MsgRcv(Target, i64, i64, i32),
    MsgCtl(Target, Ctl),
    ShmGet(i32, u64, i32, bool),
    /// `shmat` as the platform makes it: the check, then the record of an
    /// attachment at the address (the check's answer aside: the platform
    /// may be another process's, or the segment changed between).
    ShmAttach(Target, i32, u64),
    ShmDetach(u64),
    ShmUnmapped(u64, u64),
    ShmCtl(Target, Ctl),
    /// `ipc_get`, `lock_object` (writing an ext word), `lock_index` and
    /// `ipc_remove` through the generic table calls.
    Generic(u8, Target, i32),
    HeapAlloc(u32),
    /// Frees one of the blocks made before the scribbles, or a made-up offset.
    HeapFree(Target),
    Check,
    RecoverLocks,
    CollectDead,
    Exit,
    /// Another process opens the arena, operates with `SEM_UNDO` and
    /// attaches, optionally takes over the checkpointed undo list of the
    /// process that died holding one, and leaves.
    Visit(bool),
    /// A process with an attachment forks; the child claims its slot, or
    /// the fork fails.
    Fork(bool),
    UndoExport(u32, bool),
    UndoRelease(u32),
}

fn probe() -> impl Strategy<Value = Probe> {
    let sops = proptest::collection::vec((sem_num(), sem_op_value(), any::<bool>()), 0..5);
    let wait = prop_oneof![
        Just(Patience::NoWait),
        Just(Patience::Zero),
        Just(Patience::Invalid)
    ];
    let mtype = prop_oneof![1..7i64, Just(0), Just(-1), Just(i64::MAX)];
    let msgtyp = prop_oneof![-7..=7i64, Just(i64::MIN), Just(i64::MAX)];
    let rcv_flags = (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(e, n, c)| {
        (if e { MSG_EXCEPT } else { 0 })
            | (if n { MSG_NOERROR } else { 0 })
            | (if c { MSG_COPY } else { 0 })
    });
    let addr = prop_oneof![Just(0x10000u64), Just(0x40000), Just(0x80000), any::<u64>()];
    let pid = prop_oneof![Just(1u32), Just(2), Just(3), any::<u32>()];
    prop_oneof![
        2 => (key(), prop_oneof![0..4i32, Just(30), any::<i32>()], get_flags())
            .prop_map(|(k, n, f)| Probe::SemGet(k, n, f)),
        8 => (target(), sops, wait).prop_map(|(t, s, w)| Probe::SemOp(t, s, w)),
        6 => (target(), ctl()).prop_map(|(t, c)| Probe::SemCtl(t, c)),
        1 => (key(), get_flags()).prop_map(|(k, f)| Probe::MsgGet(k, f)),
        5 => (target(), mtype, prop_oneof![0..64u16, 0..9000u16])
            .prop_map(|(t, m, l)| Probe::MsgSnd(t, m, l)),
        6 => (target(), prop_oneof![Just(8192i64), 0..400i64, Just(-1)], msgtyp, rcv_flags)
            .prop_map(|(t, b, m, f)| Probe::MsgRcv(t, b, m, f)),
        4 => (target(), ctl()).prop_map(|(t, c)| Probe::MsgCtl(t, c)),
        1 => (key(), prop_oneof![1..9000u64, Just(0), any::<u64>()], get_flags(), any::<bool>())
            .prop_map(|(k, s, f, a)| Probe::ShmGet(k, s, f, a)),
        3 => (target(), prop_oneof![Just(0), Just(SHM_RDONLY)], addr.clone())
            .prop_map(|(t, f, a)| Probe::ShmAttach(t, f, a)),
        2 => addr.clone().prop_map(Probe::ShmDetach),
        1 => (addr, prop_oneof![Just(4096u64), any::<u64>()])
            .prop_map(|(a, l)| Probe::ShmUnmapped(a, l)),
        3 => (target(), ctl()).prop_map(|(t, c)| Probe::ShmCtl(t, c)),
        3 => (0u8..12, target(), key()).prop_map(|(op, t, k)| Probe::Generic(op, t, k)),
        2 => prop_oneof![8..200u32, 0..40_000u32].prop_map(Probe::HeapAlloc),
        2 => target().prop_map(Probe::HeapFree),
        1 => Just(Probe::Check),
        1 => Just(Probe::RecoverLocks),
        2 => Just(Probe::CollectDead),
        1 => Just(Probe::Exit),
        2 => any::<bool>().prop_map(Probe::Visit),
        1 => any::<bool>().prop_map(Probe::Fork),
        1 => (pid.clone(), any::<bool>()).prop_map(|(p, h)| Probe::UndoExport(p, h)),
        1 => pid.prop_map(Probe::UndoRelease),
    ]
}

/// One case: the scribbles, then the probes.
#[derive(Clone, Debug)]
struct Corruption {
    scribbles: Vec<Scribble>,
    probes: Vec<Probe>,
}

fn corruption() -> impl Strategy<Value = Corruption> {
    (
        proptest::collection::vec(scribble(), 1..64),
        proptest::collection::vec(probe(), 0..40),
    )
        .prop_map(|(scribbles, probes)| Corruption { scribbles, probes })
}

/// What the arena was filled with, for the scribbles to aim at and the calls
/// to name.
struct Populated {
    sems: Vec<i32>,
    queues: Vec<i32>,
    segments: Vec<i32>,
    blocks: Vec<(u32, BlockOwner)>,
    /// Offsets of the slots of the objects made.
    slots: Vec<u32>,
    /// Offsets of every heap block's header, and the heap's used end.
    block_starts: Vec<u32>,
    heap_used_end: u32,
    /// The owner word of every lock (table, object, receive, heap, registry).
    lock_owners: HashSet<u32>,
    own_tag: u32,
    dead_tag: u32,
}

const OWNER_TEST: u32 = 6;
/// The process that died holding locks, undo records and attachments, and
/// the one that died with its undo list checkpointed.
const DEAD: u32 = 2;
const CHECKPOINTED: u32 = 3;

fn host_placement(_: i32, _: u64, _: &IpcPerm) -> Result<Placement> {
    Ok(Placement::Host(77))
}

fn arena_placement(_: i32, _: u64, _: &IpcPerm) -> Result<Placement> {
    Ok(Placement::Arena)
}

/// Fills the arena of `ns` with real state of every sort, two dead
/// processes' included, and records where it lies.
fn populate(mem: &[AtomicU32], host: &TestHost, ns: &Namespace<'_, TestHost>) -> Populated {
    let small = ns.semget(IPC_PRIVATE, 3, 0o600, &USER).unwrap();
    let big = ns.semget(IPC_PRIVATE, 30, 0o600, &USER).unwrap();
    let keyed = ns.semget(0x5e, 2, IPC_CREAT | 0o600, &USER).unwrap();
    ns.semop(small, &[sop(0, 2, SEM_UNDO)], &USER).unwrap();
    ns.semop(big, &[sop(5, 1, 0), sop(29, 1, SEM_UNDO)], &USER)
        .unwrap();
    let mut sems = std::vec![small, big, keyed];
    for key in 1..12 {
        sems.push(ns.semget(key, 1, IPC_CREAT | 0o600, &USER).unwrap());
    }

    let queue = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    for (mtype, len) in [(1, 0), (2, 5), (3, 300), (4, 40), (5, 1000), (6, 17)] {
        ns.msgsnd(queue, mtype, &std::vec![mtype as u8; len], 0, &USER)
            .unwrap();
    }
    let mut out = [0u8; 8192];
    // Taken from the middle: a hole in the ring.
    ns.msgrcv(queue, 8192, 3, IPC_NOWAIT, &mut out, &USER)
        .unwrap();
    let second = ns.msgget(0x51, IPC_CREAT | 0o600, &USER).unwrap();
    ns.msgsnd(second, 9, b"kept", 0, &USER).unwrap();
    ns.msgsnd(second, 2, &[1; 90], 0, &USER).unwrap();

    let outside = ns
        .shmget(IPC_PRIVATE, 10_000, 0o600, &USER, host_placement)
        .unwrap();
    let carved = ns
        .shmget(0x53, 5000, IPC_CREAT | 0o600, &USER, arena_placement)
        .unwrap();
    let doomed = ns
        .shmget(IPC_PRIVATE, 4096, 0o600, &USER, host_placement)
        .unwrap();
    ns.shm_attached(outside, 0x10000, 12_288).unwrap();
    ns.shm_attached(carved, 0x40000, 8192).unwrap();
    ns.shm_attached(doomed, 0x80000, 4096).unwrap();
    assert!(
        !ns.shm_remove(doomed, &USER).unwrap(),
        "attached: marked only"
    );

    let mut blocks = Vec::new();
    for id in 0..6 {
        let owner = BlockOwner {
            kind: OWNER_TEST,
            id,
        };
        blocks.push((ns.heap_alloc(24 + id * 40, owner).unwrap(), owner));
    }
    let (freed, owner) = blocks.remove(2);
    ns.heap_free(freed, owner).unwrap();

    // Dies holding adjustments and an attachment, inside a critical section.
    let dead = Namespace::open(mem, host.sibling(DEAD)).unwrap();
    dead.semop(small, &[sop(1, 1, SEM_UNDO)], &USER).unwrap();
    dead.semop(big, &[sop(3, 2, SEM_UNDO)], &USER).unwrap();
    dead.shm_attached(outside, 0x20000, 12_288).unwrap();
    let mut locked = dead.lock_object(Kind::Sem, keyed).unwrap();
    locked.txn.set(&locked.object.ext()[3], 7).unwrap();
    let dead_tag = dead.tag().unwrap().raw();
    core::mem::forget(locked);
    core::mem::forget(dead);
    host.kill(DEAD);

    // Dies with its undo list checkpointed.
    let kept = Namespace::open(mem, host.sibling(CHECKPOINTED)).unwrap();
    kept.semop(keyed, &[sop(0, 1, SEM_UNDO)], &USER).unwrap();
    kept.undo_export(CHECKPOINTED, true, &USER, &mut |_| {})
        .unwrap();
    core::mem::forget(kept);
    host.kill(CHECKPOINTED);

    let layout = *ns.layout();
    let mut slots = Vec::new();
    for (kind, ids) in [
        (Kind::Sem, &sems),
        (Kind::Msg, &std::vec![queue, second]),
        (Kind::Shm, &std::vec![outside, carved, doomed]),
    ] {
        let table = layout.tables[kind as usize];
        for &id in ids {
            slots.push(table.slots + (id as u32 % limits::IPCMNI) * ObjectSlot::SIZE);
        }
    }

    let arena = ns.arena;
    let heap = arena.get(Off::<HeapHeader>::new(layout.heap)).unwrap();
    let heap_used_end = heap_bump(heap).get();
    let mut block_starts = Vec::new();
    let mut at = layout.heap_start;
    while at < heap_used_end {
        block_starts.push(at);
        at += block_info(&arena, &layout, at, heap_used_end).unwrap().size;
    }

    let mut lock_owners = HashSet::from([layout.heap]);
    for table in layout.tables {
        lock_owners.insert(table.header);
        for index in 0..table.slot_count {
            lock_owners.insert(table.slots + index * ObjectSlot::SIZE);
        }
    }
    let queue_table = layout.tables[Kind::Msg as usize];
    let receive_lock = EXT_OFFSET as u32 + (EXT_WORDS - KEPT_EXT_WORDS) as u32 * 4;
    for index in 0..queue_table.slot_count {
        lock_owners.insert(queue_table.slots + index * ObjectSlot::SIZE + receive_lock);
    }
    let registry_lock = core::mem::offset_of!(ProcSlot, lock) as u32;
    for index in 0..layout.limits.procs {
        lock_owners.insert(layout.registry_slots() + index * ProcSlot::SIZE + registry_lock);
    }
    Populated {
        sems,
        queues: std::vec![queue, second],
        segments: std::vec![outside, carved, doomed],
        blocks,
        slots,
        block_starts,
        heap_used_end,
        lock_owners,
        own_tag: ns.tag().unwrap().raw(),
        dead_tag,
    }
}

/// `CONTENDED`, the bit a lock word's waiters set (see `lock`).
const CONTENDED: u32 = 1 << 31;

impl Populated {
    /// The offset of the word a scribble lands on.
    fn aim(&self, layout: &Layout, region: Region, pick: u32) -> u32 {
        let within = |start: u32, end: u32| start + pick % ((end - start) / 4).max(1) * 4;
        let one_of = |offsets: &[u32]| offsets[pick as usize % offsets.len()];
        let rest = |count: usize| pick / count as u32;
        match region {
            Region::Header => within(0, layout.registry),
            Region::Registry => within(layout.registry, layout.tables[0].header),
            Region::TableHeaders => {
                let table = layout.tables[pick as usize % 3];
                table.header + rest(3) % (TableHeader::SIZE / 4) * 4
            }
            Region::TableIndex => {
                let table = layout.tables[pick as usize % 3];
                table.bitmap + rest(3) % ((table.slots - table.bitmap) / 4) * 4
            }
            Region::SlotHeads | Region::SlotFields | Region::SlotJournals => {
                // Word ranges of a slot: the lock's head, its journal, the
                // slot's own words, the kind's fields.
                let head = size_of::<LockHead>() as u32 / 4;
                let journal_end = size_of::<LockRecord<32>>() as u32 / 4;
                let fields = EXT_OFFSET as u32 / 4;
                let own = journal_end..fields;
                let words: Vec<u32> = match region {
                    Region::SlotHeads => (0..head).chain(own).collect(),
                    Region::SlotFields => (fields..ObjectSlot::SIZE / 4).collect(),
                    _ => (head..journal_end).collect(),
                };
                let slot = one_of(&self.slots);
                slot + words[rest(self.slots.len()) as usize % words.len()] * 4
            }
            Region::HeapHeader => within(layout.heap, layout.heap_start),
            Region::BlockHeaders => {
                one_of(&self.block_starts) + rest(self.block_starts.len()) % 3 * 4
            }
            Region::Heap => within(layout.heap_start, self.heap_used_end),
            Region::Anywhere => within(0, layout.size),
        }
    }

    /// What a scribble writes over `old`.
    fn value(&self, layout: &Layout, value: Value, old: u32) -> u32 {
        match value {
            Value::Zero => 0,
            Value::Small(n) => u32::from(n),
            Value::NearMax(n) => u32::MAX - u32::from(n),
            Value::OwnTag => self.own_tag,
            Value::DeadTag => self.dead_tag,
            Value::Offset(pick) => (pick % layout.size) & !7,
            Value::BlockOffset(pick) => {
                let count = self.block_starts.len() as u32;
                self.block_starts[(pick % count) as usize] + pick / count % 2 * BLOCK_HEADER
            }
            Value::Flip(bit) => old ^ 1 << bit,
            Value::Nudge(n) => old.wrapping_add_signed(i32::from(n)),
            Value::Random(value) => value,
        }
    }

    /// After the scribbles: a lock word that names a process that lives (the
    /// registry read as the scribbles left it) is a lock that process holds,
    /// and its callers rightly wait for it as long as the process lives. The
    /// only one living is the caller, which waits for no other thread: such
    /// a word names the dead process instead.
    fn free_the_living(&self, ns: &Namespace<'_, TestHost>, mem: &[AtomicU32]) {
        for &at in &self.lock_owners {
            let word = &mem[(at / 4) as usize];
            let seen = word.load(Ordering::Relaxed);
            let owner = ns.registry.owner(Tag::from_raw(seen & !CONTENDED));
            if let Owner::Process(process) = owner {
                if ns.host().liveness(process) == Liveness::Alive {
                    word.store(self.dead_tag | (seen & CONTENDED), Ordering::Relaxed);
                }
            }
        }
    }
}

/// The test host for the processes that visit the arena during the probes,
/// except that a process asking about itself is told it is dead. The probes
/// run one process at a time: one that finds a lock word naming itself (a
/// scribble can forge its tag) waits for good, as no other thread of it
/// runs to release the lock; told it is dead, it takes the lock over.
#[derive(Clone)]
struct Visitor(TestHost);

impl Waiter for Visitor {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
        self.0.wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32, count: u32) {
        self.0.wake(word, count)
    }
}

impl Host for Visitor {
    fn now(&self) -> Deadline {
        self.0.now()
    }

    fn wall_clock(&self) -> i64 {
        self.0.wall_clock()
    }

    fn current_process(&self) -> ProcessId {
        self.0.current_process()
    }

    fn current_image(&self) -> Image {
        self.0.current_image()
    }

    fn fork_generation(&self) -> u32 {
        self.0.fork_generation()
    }

    fn liveness(&self, process: ProcessId) -> Liveness {
        if process == self.current_process() {
            Liveness::Dead
        } else {
            self.0.liveness(process)
        }
    }
}

/// The objects a case's calls name, growing as calls make more.
struct Named {
    sems: Vec<i32>,
    queues: Vec<i32>,
    segments: Vec<i32>,
    blocks: Vec<(u32, BlockOwner)>,
    /// The last pid given to a process that visits the arena.
    next_pid: u32,
}

impl Named {
    fn id(ids: &[i32], target: Target) -> i32 {
        match target {
            Target::Real(i) => ids[usize::from(i) % ids.len()],
            Target::Stale(i) => ids[usize::from(i) % ids.len()].wrapping_add(limits::IPCMNI as i32),
            Target::Raw(id) => id,
        }
    }

    fn pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }
}

const QUERIES: [SemQuery; 4] = [
    SemQuery::Value,
    SemQuery::Pid,
    SemQuery::WaitingToDecrease,
    SemQuery::WaitingForZero,
];

/// Makes one probe; returns the error of its main call, if any. What it
/// returns does not matter to the property, only that it returns.
fn make_probe(
    ns: &Namespace<'_, TestHost>,
    mem: &[AtomicU32],
    host: &TestHost,
    named: &mut Named,
    probe: &Probe,
) -> Option<Errno> {
    let mut out = [0u8; 8192];
    match *probe {
        Probe::SemGet(key, nsems, flags) => {
            let made = ns.semget(key, nsems, flags, &USER);
            named.sems.extend(made.ok());
            made.err()
        }
        Probe::SemOp(target, ref sops, wait) => {
            let id = Named::id(&named.sems, target);
            let nowait = match wait {
                Patience::NoWait => IPC_NOWAIT as i16,
                Patience::Zero | Patience::Invalid => 0,
            };
            let sops: Vec<SemBuf> = sops
                .iter()
                .map(|&(num, op, undo)| sop(num, op, nowait | if undo { SEM_UNDO } else { 0 }))
                .collect();
            let timeout = match wait {
                Patience::NoWait => None,
                Patience::Zero => Some(Timeout { sec: 0, nsec: 0 }),
                Patience::Invalid => Some(Timeout { sec: -1, nsec: 0 }),
            };
            ns.semtimedop(id, &sops, timeout, &USER).err()
        }
        Probe::SemCtl(target, ctl) => {
            let id = Named::id(&named.sems, target);
            match ctl {
                Ctl::StatIndex(index, any) => ns.sem_stat_index(index, any, &USER).err(),
                Ctl::Set(uid, gid, mode, _) => ns.sem_set(id, &USER, uid, gid, mode).err(),
                Ctl::Remove => ns.sem_remove(id, &USER).err(),
                Ctl::Info(usage) => {
                    ns.sem_info(usage);
                    None
                }
                Ctl::Query(num, query) => ns
                    .sem_query(id, num, QUERIES[usize::from(query)], &USER)
                    .err(),
                Ctl::GetAll => ns.sem_getall(id, &USER, &mut |_, _| {}).err(),
                Ctl::Count => ns.sem_count(id).err(),
                Ctl::SetVal(num, value) => ns.sem_setval(id, num, value, &USER).err(),
                Ctl::SetAll(value) => ns
                    .sem_setall(id, &USER, &|i| value.wrapping_add(i as u16))
                    .err(),
                Ctl::Stat | Ctl::Lock(_) => ns.sem_stat(id, &USER).err(),
            }
        }
        Probe::MsgGet(key, flags) => {
            let made = ns.msgget(key, flags, &USER);
            named.queues.extend(made.ok());
            made.err()
        }
        Probe::MsgSnd(target, mtype, len) => {
            let id = Named::id(&named.queues, target);
            let data = std::vec![len as u8; usize::from(len)];
            ns.msgsnd(id, mtype, &data, IPC_NOWAIT, &USER).err()
        }
        Probe::MsgRcv(target, bufsz, msgtyp, flags) => {
            let id = Named::id(&named.queues, target);
            ns.msgrcv(id, bufsz, msgtyp, flags | IPC_NOWAIT, &mut out, &USER)
                .err()
        }
        Probe::MsgCtl(target, ctl) => {
            let id = Named::id(&named.queues, target);
            match ctl {
                Ctl::StatIndex(index, any) => ns.msg_stat_index(index, any, &USER).err(),
                Ctl::Set(uid, gid, mode, qbytes) => {
                    ns.msg_set(id, &USER, uid, gid, mode, qbytes).err()
                }
                Ctl::Remove => ns.msg_remove(id, &USER).err(),
                Ctl::Info(usage) => {
                    ns.msg_info(usage);
                    None
                }
                _ => ns.msg_stat(id, &USER).err(),
            }
        }
        Probe::ShmGet(key, size, flags, in_arena) => {
            let placement = if in_arena {
                arena_placement
            } else {
                host_placement
            };
            let made = ns.shmget(key, size, flags, &USER, placement);
            named.segments.extend(made.ok());
            made.err()
        }
        Probe::ShmAttach(target, flags, addr) => {
            let id = Named::id(&named.segments, target);
            let checked = ns.shm_attach_check(id, flags, &USER).err();
            ns.shm_attached(id, addr, 3 * 4096).err().or(checked)
        }
        Probe::ShmDetach(addr) => ns.shm_detach(addr, &mut |_, _| {}).err(),
        Probe::ShmUnmapped(addr, len) => ns.shm_unmapped(addr, len).err(),
        Probe::ShmCtl(target, ctl) => {
            let id = Named::id(&named.segments, target);
            match ctl {
                Ctl::StatIndex(index, any) => ns.shm_stat_index(index, any, &USER).err(),
                Ctl::Set(uid, gid, mode, _) => ns.shm_set(id, &USER, uid, gid, mode).err(),
                Ctl::Remove => ns.shm_remove(id, &USER).err(),
                Ctl::Info(usage) => {
                    if usage {
                        ns.shm_usage();
                    } else {
                        ns.shm_info();
                    }
                    None
                }
                Ctl::Lock(lock) => ns.shm_lock(id, &USER, lock).err(),
                _ => ns.shm_stat(id, &USER).err(),
            }
        }
        Probe::Generic(op, target, key) => {
            let kind = KINDS[usize::from(op % 3)];
            let ids = match kind {
                Kind::Sem => &named.sems,
                Kind::Msg => &named.queues,
                Kind::Shm => &named.segments,
            };
            let id = Named::id(ids, target);
            match op / 3 {
                0 => ns
                    .ipc_get(
                        kind,
                        key,
                        IPC_CREAT | 0o600,
                        &USER,
                        |_| Ok(()),
                        |_, _| Ok(()),
                    )
                    .err(),
                1 => match ns.lock_object(kind, id) {
                    Ok(mut locked) => {
                        let written = locked.txn.set(&locked.object.ext()[0], 1);
                        locked.commit();
                        written.err()
                    }
                    Err(err) => Some(err),
                },
                2 => {
                    let _ = (
                        ns.max_index(kind),
                        ns.in_use(kind),
                        ns.objects(kind).count(),
                    );
                    ns.lock_index(kind, id).err()
                }
                _ => ns.ipc_remove(kind, id, &USER, |_, _| Ok(())).err(),
            }
        }
        Probe::HeapAlloc(bytes) => {
            let owner = BlockOwner {
                kind: OWNER_TEST,
                id: 99,
            };
            let made = ns.heap_alloc(bytes, owner);
            named.blocks.extend(made.map(|block| (block, owner)).ok());
            made.err()
        }
        Probe::HeapFree(target) => {
            let (block, owner) = match target {
                Target::Real(i) => named.blocks[usize::from(i) % named.blocks.len()],
                Target::Stale(i) => {
                    let (block, owner) = named.blocks[usize::from(i) % named.blocks.len()];
                    (block + BLOCK_HEADER, owner)
                }
                Target::Raw(at) => (
                    at as u32,
                    BlockOwner {
                        kind: OWNER_TEST,
                        id: 0,
                    },
                ),
            };
            ns.heap_free(block, owner).err()
        }
        Probe::Check => {
            ns.check(&|_, _| true, &mut |_| {});
            None
        }
        Probe::RecoverLocks => {
            ns.recover_abandoned_locks(&|_, _| true);
            None
        }
        Probe::CollectDead => {
            let _ = (ns.collect_dead(), ns.processes(), ns.running().count());
            None
        }
        Probe::Exit => {
            ns.exit(false);
            None
        }
        Probe::Visit(import) => {
            let visitor = Namespace::open(mem, Visitor(host.sibling(named.pid()))).ok()?;
            let undo = SEM_UNDO | IPC_NOWAIT as i16;
            let operated = visitor.semop(named.sems[0], &[sop(0, 1, undo)], &USER);
            let attached = visitor.shm_attached(named.segments[0], 0x30000, 3 * 4096);
            let imported = if import {
                let kept = ProcessId {
                    pid: CHECKPOINTED,
                    start: u64::from(CHECKPOINTED) * 1000,
                };
                let expected = [Adjustment {
                    semid: named.sems[2],
                    semnum: 0,
                    value: -1,
                }];
                visitor.undo_import(kept, &expected)
            } else {
                Ok(())
            };
            operated.and(attached).and(imported).err()
        }
        Probe::Fork(claimed) => {
            let pid = named.pid();
            let parent_host = host.sibling(pid);
            let forked = Namespace::open(mem, Visitor(parent_host.clone()))
                .ok()
                .map(|parent| {
                    parent.shm_attached(named.segments[0], 0x50000, 3 * 4096)?;
                    let Some(reserved) = parent.fork_prepare()? else {
                        return Ok(());
                    };
                    if claimed {
                        // From here `parent` stands for the child.
                        parent_host.fork_into(pid + 1000);
                        parent.fork_child(reserved)
                    } else {
                        parent.fork_failed(reserved);
                        Ok(())
                    }
                });
            // The parent of a fork the child claimed never left: it dies.
            host.kill(pid);
            forked?.err()
        }
        Probe::UndoExport(pid, hold) => ns.undo_export(pid, hold, &USER, &mut |_| {}).err(),
        Probe::UndoRelease(pid) => {
            let process = ProcessId {
                pid,
                start: u64::from(pid) * 1000,
            };
            ns.undo_release(process, &USER).err()
        }
    }
}

/// Arbitrary words written over an arena full of real state — aimed mostly
/// at its metadata — then calls of every sort that does not block, through
/// every public operation of the namespace, on real and made-up ids: each
/// call returns, `Ok` or `Err`, without a panic, and the case ends.
#[test]
fn arbitrary_words_over_a_live_arena_never_crash_or_hang_the_core() {
    let config = config(1500, 0x5c81_bb1e);
    let cases = config.cases;
    // Probes that met the damage: the scribbles reach what calls read.
    let corrupt = AtomicU32::new(0);
    check_property(
        "arbitrary words over a live arena",
        config,
        corruption(),
        |case| {
            corrupt.fetch_add(corrupt_and_probe(&case), Ordering::Relaxed);
            Ok(())
        },
    );
    let corrupt = corrupt.into_inner();
    assert!(
        corrupt >= cases / 2,
        "only {corrupt} probes in {cases} cases met the damage"
    );
}

/// One case of the property: a fresh arena, populated, scribbled over and
/// probed, then checked, left, and opened again. Returns how many probes
/// answered that the arena is corrupt.
fn corrupt_and_probe(case: &Corruption) -> u32 {
    let limits = scribble_limits();
    let mem = memory(&limits);
    let host = TestHost::family();
    let ns = Namespace::create(&mem, &limits, host.clone()).unwrap();
    let populated = populate(&mem, &host, &ns);
    let layout = *ns.layout();
    for scribble in &case.scribbles {
        let at = populated.aim(&layout, scribble.region, scribble.pick);
        let word = &mem[(at / 4) as usize];
        let value = populated.value(&layout, scribble.value, word.load(Ordering::Relaxed));
        word.store(value, Ordering::Relaxed);
    }
    populated.free_the_living(&ns, &mem);
    let mut named = Named {
        sems: populated.sems.clone(),
        queues: populated.queues.clone(),
        segments: populated.segments.clone(),
        blocks: populated.blocks.clone(),
        next_pid: 10,
    };
    let mut corrupt = 0;
    for probe in &case.probes {
        if make_probe(&ns, &mem, &host, &mut named, probe) == Some(Errno::CORRUPT) {
            corrupt += 1;
        }
    }
    ns.check(&|_, _| true, &mut |_| {});
    drop(ns);
    if let Ok(ns) = Namespace::open(&mem, host.sibling(named.pid())) {
        let _ = ns.semget(IPC_PRIVATE, 1, 0o600, &USER);
        ns.check(&|_, _| true, &mut |_| {});
    }
    corrupt
}

// ---------------------------------------------------------------------------
// Operation sequences against a model of the kernel.

/// Limits small enough that sequences reach them: four objects of each
/// kind, sets of up to 40 semaphores (inline up to 29, in the heap above),
/// 100 semaphores in all, 6 operations per call, messages of up to 200
/// bytes in queues of 600, segments of up to 20,000 bytes and 10 pages in
/// all.
fn model_limits() -> Limits {
    Limits {
        semmni: 4,
        semmsl: 40,
        semmns: 100,
        semopm: 6,
        msgmni: 4,
        msgmax: 200,
        msgmnb: 600,
        shmmni: 4,
        shmmax: 20_000,
        shmall: 10,
        procs: 8,
        heap_bytes: 1 << 20,
        ..DEFAULT_LIMITS
    }
}

/// One step: a call made by one of two processes (0 or 1) as one of three
/// users.
#[derive(Clone, Debug)]
struct Step {
    process: usize,
    who: Who,
    call: Call,
}

fn obj() -> impl Strategy<Value = Obj> {
    prop_oneof![
        16 => any::<u8>().prop_map(Obj::Live),
        2 => any::<u8>().prop_map(Obj::Made),
        1 => prop_oneof![Just(-1), Just(0), Just(1), Just(32768), Just(i32::MAX), 0..100_000i32]
            .prop_map(Obj::Raw),
    ]
}

fn model_key() -> impl Strategy<Value = i32> {
    prop_oneof![Just(IPC_PRIVATE), 1..4i32]
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => Just(0o600u32),
        1 => Just(0o660),
        1 => Just(0o640),
        1 => Just(0o644),
        1 => Just(0o400),
        1 => Just(0o200),
        1 => Just(0),
        1 => Just(0o666),
        1 => Just(0o1777),
    ]
}

fn model_get_flags() -> impl Strategy<Value = i32> {
    (
        prop_oneof![Just(0), Just(IPC_CREAT), Just(IPC_CREAT | IPC_EXCL)],
        mode(),
    )
        .prop_map(|(create, mode)| create | mode as i32)
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![8 => Just(Who::Owner), 2 => Just(Who::Peer), 1 => Just(Who::Stranger)]
}

fn uid() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(1000u32), 1 => Just(2000), 1 => Just(3000)]
}

fn gid() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(1000u32), 1 => Just(3000)]
}

fn model_sops() -> impl Strategy<Value = Vec<SemBuf>> {
    let num = prop_oneof![
        30 => Just(0u16),
        10 => 1..3u16,
        1 => Just(29),
        1 => Just(30),
        1 => Just(39),
        1 => Just(40),
        1 => Just(u16::MAX),
    ];
    let op = prop_oneof![
        8 => -2..=2i16,
        1 => Just(i16::MAX),
        1 => Just(i16::MIN),
        1 => Just(16384),
        1 => Just(-16384),
    ];
    let flags = prop_oneof![
        Just(0),
        Just(IPC_NOWAIT as i16),
        Just(SEM_UNDO),
        Just(SEM_UNDO | IPC_NOWAIT as i16),
    ];
    let sop = (num, op, flags).prop_map(|(num, op, flags)| sop(num, op, flags));
    prop_oneof![
        20 => proptest::collection::vec(sop.clone(), 1..3),
        10 => proptest::collection::vec(sop.clone(), 3..5),
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(sop, 7),
    ]
}

fn semop_timeout() -> impl Strategy<Value = Option<Timeout>> {
    prop_oneof![
        12 => Just(None),
        6 => Just(Some(Timeout { sec: 0, nsec: 0 })),
        1 => prop_oneof![
            Just(Timeout { sec: -1, nsec: 0 }),
            Just(Timeout { sec: 0, nsec: -1 }),
            Just(Timeout { sec: 0, nsec: 1_000_000_000 }),
        ]
        .prop_map(Some),
    ]
}

fn sem_call() -> BoxedStrategy<Call> {
    let num = prop_oneof![
        16 => Just(0),
        8 => 1..3i32,
        1 => Just(29),
        1 => Just(39),
        1 => Just(40),
        1 => Just(-1),
    ];
    let value = prop_oneof![12 => 0..4i32, 1 => Just(32767), 1 => Just(32768), 1 => Just(-1)];
    let query = prop_oneof![
        Just(SemQuery::Value),
        Just(SemQuery::Pid),
        Just(SemQuery::WaitingToDecrease),
        Just(SemQuery::WaitingForZero),
    ];
    let values = proptest::collection::vec(
        prop_oneof![24 => 0..4u16, 1 => Just(32767), 1 => Just(32768), 1 => Just(u16::MAX)],
        1..4,
    );
    let nsems = prop_oneof![
        6 => 1..4i32,
        1 => Just(0),
        1 => Just(29),
        1 => Just(30),
        1 => Just(40),
        1 => Just(41),
        1 => Just(-1),
    ];
    prop_oneof![
        3 => (model_key(), nsems, model_get_flags())
            .prop_map(|(key, nsems, flags)| Call::SemGet { key, nsems, flags }),
        8 => (obj(), model_sops(), semop_timeout())
            .prop_map(|(set, sops, timeout)| Call::SemOp { set, sops, timeout }),
        3 => (obj(), num.clone(), value)
            .prop_map(|(set, num, value)| Call::SemSetVal { set, num, value }),
        2 => (obj(), num, query).prop_map(|(set, num, query)| Call::SemQuery { set, num, query }),
        1 => obj().prop_map(|set| Call::SemGetAll { set }),
        2 => (obj(), values).prop_map(|(set, values)| Call::SemSetAll { set, values }),
        1 => obj().prop_map(|set| Call::SemStat { set }),
        1 => (obj(), uid(), gid(), mode())
            .prop_map(|(set, uid, gid, mode)| Call::SemSet { set, uid, gid, mode }),
        1 => obj().prop_map(|set| Call::SemRemove { set }),
        1 => any::<bool>().prop_map(|usage| Call::SemInfo { usage }),
        1 => (prop_oneof![0..6i32, Just(-1), Just(32769)], any::<bool>())
            .prop_map(|(index, any)| Call::SemStatIndex { index, any }),
    ]
    .boxed()
}

fn msg_call() -> BoxedStrategy<Call> {
    let mtype = prop_oneof![24 => 1..5i64, 1 => Just(0), 1 => Just(-1), 1 => Just(i64::MAX)];
    let len =
        prop_oneof![18 => 0..24u16, 4 => Just(100), 1 => Just(199), 1 => Just(200), 1 => Just(201)];
    let bufsz = prop_oneof![
        12 => Just(200i64),
        1 => Just(0),
        1 => Just(5),
        1 => Just(16),
        1 => Just(1000),
        1 => Just(-1),
    ];
    let msgtyp = prop_oneof![8 => -5..=5i64, 1 => Just(i64::MIN), 1 => Just(i64::MAX)];
    // Shrinks toward false: a flag left out.
    let one_in = |n: u32| (0..n).prop_map(move |draw| draw == n - 1);
    let flags = prop_oneof![
        24 => (one_in(4), one_in(3), one_in(4)).prop_map(|(except, noerror, copy)| {
            IPC_NOWAIT
                | if except { MSG_EXCEPT } else { 0 }
                | if noerror { MSG_NOERROR } else { 0 }
                | if copy { MSG_COPY } else { 0 }
        }),
        1 => Just(MSG_COPY),
    ];
    let qbytes = prop_oneof![
        2 => 0..1200u64,
        1 => Just(600),
        1 => Just(601),
        1 => Just(0x1_0000_0005),
        1 => Just(0x8000_0000),
    ];
    prop_oneof![
        3 => (model_key(), model_get_flags()).prop_map(|(key, flags)| Call::MsgGet { key, flags }),
        8 => (obj(), mtype, len, any::<u8>())
            .prop_map(|(queue, mtype, len, fill)| Call::MsgSnd { queue, mtype, len, fill }),
        8 => (obj(), bufsz, msgtyp, flags)
            .prop_map(|(queue, bufsz, msgtyp, flags)| Call::MsgRcv { queue, bufsz, msgtyp, flags }),
        1 => obj().prop_map(|queue| Call::MsgStat { queue }),
        2 => (obj(), uid(), gid(), mode(), qbytes).prop_map(|(queue, uid, gid, mode, qbytes)| {
            Call::MsgSet { queue, uid, gid, mode, qbytes }
        }),
        1 => obj().prop_map(|queue| Call::MsgRemove { queue }),
        1 => any::<bool>().prop_map(|usage| Call::MsgInfo { usage }),
        1 => (prop_oneof![0..6i32, Just(-1), Just(32769)], any::<bool>())
            .prop_map(|(index, any)| Call::MsgStatIndex { index, any }),
    ]
    .boxed()
}

fn shm_call() -> BoxedStrategy<Call> {
    let size = prop_oneof![
        2 => Just(4096u64),
        1 => Just(0),
        1 => Just(1),
        1 => Just(4097),
        1 => Just(10_000),
        1 => Just(20_000),
        1 => Just(20_001),
    ];
    let flags = prop_oneof![3 => Just(0), 1 => Just(SHM_RDONLY), 1 => Just(SHM_EXEC)];
    prop_oneof![
        3 => (model_key(), size, model_get_flags())
            .prop_map(|(key, size, flags)| Call::ShmGet { key, size, flags }),
        4 => (obj(), flags).prop_map(|(segment, flags)| Call::ShmAttach { segment, flags }),
        3 => any::<u8>().prop_map(|which| Call::ShmDetach { which }),
        1 => obj().prop_map(|segment| Call::ShmStat { segment }),
        1 => (obj(), uid(), gid(), mode())
            .prop_map(|(segment, uid, gid, mode)| Call::ShmSet { segment, uid, gid, mode }),
        2 => obj().prop_map(|segment| Call::ShmRemove { segment }),
        1 => (obj(), any::<bool>()).prop_map(|(segment, lock)| Call::ShmLock { segment, lock }),
        1 => any::<bool>().prop_map(|usage| Call::ShmInfo { usage }),
        1 => (prop_oneof![0..6i32, Just(-1), Just(32769)], any::<bool>())
            .prop_map(|(index, any)| Call::ShmStatIndex { index, any }),
    ]
    .boxed()
}

fn step() -> impl Strategy<Value = Step> {
    let call = prop_oneof![
        10 => sem_call(),
        10 => msg_call(),
        6 => shm_call(),
        1 => Just(Call::Exit),
    ];
    (prop_oneof![3 => Just(0usize), 1 => Just(1)], who(), call)
        .prop_map(|(process, who, call)| Step { process, who, call })
}

/// A first step that makes an object of `kind` (most often), so that
/// the steps after it have objects to work on.
fn making_step(kind: Kind) -> impl Strategy<Value = Step> {
    let create = prop_oneof![4 => Just(IPC_CREAT), 1 => Just(0)];
    let nsems = prop_oneof![6 => 1..4i32, 1 => Just(30)];
    let call = (
        model_key(),
        create,
        prop_oneof![3 => Just(0o600u32), 1 => mode()],
        nsems,
    )
        .prop_map(move |(key, create, mode, nsems)| {
            let flags = create | mode as i32;
            match kind {
                Kind::Sem => Call::SemGet { key, nsems, flags },
                Kind::Msg => Call::MsgGet { key, flags },
                Kind::Shm => Call::ShmGet {
                    key,
                    size: 4096,
                    flags,
                },
            }
        });
    (
        prop_oneof![3 => Just(0usize), 1 => Just(1)],
        prop_oneof![4 => Just(Who::Owner), 1 => who()],
        call,
    )
        .prop_map(|(process, who, call)| Step { process, who, call })
}

/// A sequence: steps that make an object of each kind (each left out
/// now and then, and first to go when a case shrinks), then any steps.
fn sequence() -> impl Strategy<Value = Vec<Step>> {
    let making = |kind| proptest::option::weighted(0.9, making_step(kind));
    (
        making(Kind::Sem),
        making(Kind::Msg),
        making(Kind::Shm),
        proptest::collection::vec(step(), 1..60),
    )
        .prop_map(|(sem, msg, shm, more)| {
            [sem, msg, shm].into_iter().flatten().chain(more).collect()
        })
}

impl From<crate::sem::SemidDs> for SemSeen {
    fn from(ds: crate::sem::SemidDs) -> Self {
        SemSeen {
            perm: ds.perm,
            otime: ds.otime != 0,
            ctime: ds.ctime != 0,
            nsems: ds.nsems,
        }
    }
}

impl From<crate::msg::MsqidDs> for MsgSeen {
    fn from(ds: crate::msg::MsqidDs) -> Self {
        MsgSeen {
            perm: ds.perm,
            stime: ds.stime != 0,
            rtime: ds.rtime != 0,
            ctime: ds.ctime != 0,
            cbytes: ds.cbytes,
            qnum: ds.qnum,
            qbytes: ds.qbytes,
            lspid: ds.lspid,
            lrpid: ds.lrpid,
        }
    }
}

impl From<crate::shm::ShmidDs> for ShmSeen {
    fn from(ds: crate::shm::ShmidDs) -> Self {
        ShmSeen {
            perm: ds.perm,
            segsz: ds.segsz,
            atime: ds.atime != 0,
            dtime: ds.dtime != 0,
            ctime: ds.ctime != 0,
            cpid: ds.cpid,
            lpid: ds.lpid,
            nattch: ds.nattch,
        }
    }
}

fn indexed<T>(found: (i32, T), answer: impl FnOnce(T) -> Answer) -> Answer {
    Answer::Indexed(found.0, std::boxed::Box::new(answer(found.1)))
}

/// Makes `call` on the core as process `pid` (namespace `ns`) with `cred`.
/// `kernel` is the model before the call: it names the objects and the
/// addresses.
fn on_core(
    ns: &Namespace<'_, TestHost>,
    pid: u32,
    cred: &Cred<'_>,
    call: &Call,
    kernel: &Kernel,
) -> Result<Answer> {
    let sem = |set| kernel.resolve(Kind::Sem, set);
    let queue = |queue| kernel.resolve(Kind::Msg, queue);
    let segment = |segment| kernel.resolve(Kind::Shm, segment);
    let done = |()| Answer::Done;
    match *call {
        Call::SemGet { key, nsems, flags } => ns.semget(key, nsems, flags, cred).map(Answer::Id),
        Call::SemOp {
            set,
            ref sops,
            timeout,
        } => ns.semtimedop(sem(set), sops, timeout, cred).map(done),
        Call::SemSetVal { set, num, value } => ns.sem_setval(sem(set), num, value, cred).map(done),
        Call::SemQuery { set, num, query } => {
            ns.sem_query(sem(set), num, query, cred).map(Answer::Value)
        }
        Call::SemGetAll { set } => {
            let mut values = Vec::new();
            ns.sem_getall(sem(set), cred, &mut |_, value| values.push(value))?;
            Ok(Answer::Values(values))
        }
        Call::SemSetAll { set, ref values } => ns
            .sem_setall(sem(set), cred, &|i| values[i as usize % values.len()])
            .map(done),
        Call::SemStat { set } => ns.sem_stat(sem(set), cred).map(|ds| Answer::Sem(ds.into())),
        Call::SemSet {
            set,
            uid,
            gid,
            mode,
        } => ns.sem_set(sem(set), cred, uid, gid, mode).map(done),
        Call::SemRemove { set } => ns.sem_remove(sem(set), cred).map(done),
        Call::SemInfo { usage } => {
            let (max, info) = ns.sem_info(usage);
            let figures = [
                info.semmni,
                info.semmns,
                info.semmsl,
                info.semopm,
                info.semusz,
                info.semvmx,
                info.semaem,
            ];
            Ok(Answer::Info(max, figures.map(i64::from).to_vec()))
        }
        Call::SemStatIndex { index, any } => ns
            .sem_stat_index(index, any, cred)
            .map(|found| indexed(found, |ds| Answer::Sem(ds.into()))),
        Call::MsgGet { key, flags } => ns.msgget(key, flags, cred).map(Answer::Id),
        Call::MsgSnd {
            queue: q,
            mtype,
            len,
            fill,
        } => {
            let data = model::message_bytes(len, fill);
            ns.msgsnd(queue(q), mtype, &data, IPC_NOWAIT, cred)
                .map(done)
        }
        Call::MsgRcv {
            queue: q,
            bufsz,
            msgtyp,
            flags,
        } => {
            let mut out = std::vec![0; ns.limits().msgmax as usize];
            let (mtype, len) = ns.msgrcv(queue(q), bufsz, msgtyp, flags, &mut out, cred)?;
            out.truncate(len);
            Ok(Answer::Received(mtype, out))
        }
        Call::MsgStat { queue: q } => ns.msg_stat(queue(q), cred).map(|ds| Answer::Msg(ds.into())),
        Call::MsgSet {
            queue: q,
            uid,
            gid,
            mode,
            qbytes,
        } => ns.msg_set(queue(q), cred, uid, gid, mode, qbytes).map(done),
        Call::MsgRemove { queue: q } => ns.msg_remove(queue(q), cred).map(done),
        Call::MsgInfo { usage } => {
            let (max, info) = ns.msg_info(usage);
            let mut figures = std::vec![
                info.msgmax,
                info.msgmnb,
                info.msgmni,
                info.msgssz,
                i32::from(info.msgseg)
            ];
            if usage {
                figures.extend([info.msgpool, info.msgmap, info.msgtql]);
            }
            Ok(Answer::Info(
                max,
                figures.into_iter().map(i64::from).collect(),
            ))
        }
        Call::MsgStatIndex { index, any } => ns
            .msg_stat_index(index, any, cred)
            .map(|found| indexed(found, |ds| Answer::Msg(ds.into()))),
        Call::ShmGet { key, size, flags } => ns
            .shmget(key, size, flags, cred, |_, _, _| Ok(Placement::Host(0)))
            .map(Answer::Id),
        Call::ShmAttach { segment: s, flags } => {
            let shmid = segment(s);
            let info = ns.shm_attach_check(shmid, flags, cred)?;
            let len = info.segsz.div_ceil(shm::PAGE_SIZE) * shm::PAGE_SIZE;
            ns.shm_attached(shmid, kernel.next_address(), len)?;
            Ok(Answer::Attached(info.segsz))
        }
        Call::ShmDetach { which } => {
            let detached = ns.shm_detach(kernel.detach_address(pid, which), &mut |_, _| {})?;
            Ok(Answer::Detached {
                shmid: detached.shmid,
                len: detached.len,
                destroyed: detached.destroyed,
            })
        }
        Call::ShmStat { segment: s } => ns
            .shm_stat(segment(s), cred)
            .map(|ds| Answer::Shm(ds.into())),
        Call::ShmSet {
            segment: s,
            uid,
            gid,
            mode,
        } => ns
            .shm_set(segment(s), cred, uid, gid, mode)
            .map(|_| Answer::Done),
        Call::ShmRemove { segment: s } => ns.shm_remove(segment(s), cred).map(Answer::Removed),
        Call::ShmLock { segment: s, lock } => ns.shm_lock(segment(s), cred, lock).map(done),
        Call::ShmInfo { usage } => {
            if usage {
                let (max, usage) = ns.shm_usage();
                Ok(Answer::Info(
                    max,
                    std::vec![i64::from(usage.used_ids), usage.shm_tot as i64],
                ))
            } else {
                let (max, info) = ns.shm_info();
                let figures = [info.shmmax, info.shmmin, info.shmmni, info.shmall];
                Ok(Answer::Info(max, figures.map(|f| f as i64).to_vec()))
            }
        }
        Call::ShmStatIndex { index, any } => ns
            .shm_stat_index(index, any, cred)
            .map(|found| indexed(found, |ds| Answer::Shm(ds.into()))),
        Call::Exit => unreachable!("a process exits by dropping its namespace"),
    }
}

/// Reads everything the model's [`Kernel::observe`] reports, through the
/// namespace of a privileged observer.
fn observe(ns: &Namespace<'_, TestHost>, pids: [u32; 2]) -> Result<Observed> {
    let observer = Cred {
        euid: 0,
        egid: 0,
        ipc_owner: true,
        sys_admin: true,
        ..USER
    };
    let by_index = |kind| {
        let mut ids: Vec<i32> = ns.objects(kind).map(|(id, _)| id).collect();
        ids.sort_by_key(|&id| id as u32 % limits::IPCMNI);
        ids
    };
    let mut observed = Observed {
        sems: Vec::new(),
        queues: Vec::new(),
        segments: Vec::new(),
        adjustments: Vec::new(),
    };
    for id in by_index(Kind::Sem) {
        let seen = ns.sem_stat(id, &observer)?.into();
        let mut values = Vec::new();
        ns.sem_getall(id, &observer, &mut |_, value| values.push(value))?;
        let pids = (0..values.len() as i32)
            .map(|num| {
                ns.sem_query(id, num, SemQuery::Pid, &observer)
                    .map(|pid| pid as u32)
            })
            .collect::<Result<Vec<u32>>>()?;
        observed.sems.push((id, seen, values, pids));
    }
    for id in by_index(Kind::Msg) {
        let seen: MsgSeen = ns.msg_stat(id, &observer)?.into();
        let mut out = std::vec![0; ns.limits().msgmax as usize];
        let mut messages = Vec::new();
        for at in 0..seen.qnum as i64 {
            let bufsz = i64::from(ns.limits().msgmax);
            let (mtype, len) =
                ns.msgrcv(id, bufsz, at, IPC_NOWAIT | MSG_COPY, &mut out, &observer)?;
            messages.push((mtype, out[..len].to_vec()));
        }
        observed.queues.push((id, seen, messages));
    }
    for id in by_index(Kind::Shm) {
        observed
            .segments
            .push((id, ns.shm_stat(id, &observer)?.into()));
    }
    for pid in pids {
        ns.undo_export(pid, false, &observer, &mut |a| {
            observed.adjustments.push((pid, a.semid, a.semnum, a.value))
        })?;
    }
    observed.adjustments.sort_unstable();
    Ok(observed)
}

/// Sequences of calls that do not block — every semaphore, queue and
/// segment call the kernel has, by two processes as three users, on
/// objects made during the sequence and on made-up ids — give the answers
/// the model of the kernel gives, and leave the state it leaves (every
/// object's `IPC_STAT`, values, pids and messages, and the undo
/// adjustments), after every step.
#[test]
fn operation_sequences_agree_with_a_model_of_the_kernel() {
    let limits = model_limits();
    check_property(
        "operation sequences against a model of the kernel",
        config(1000, 0x6b65_726e_656c),
        sequence(),
        |steps| {
            let mem = memory(&limits);
            let host = TestHost::family();
            let first = Namespace::create(&mem, &limits, host.clone()).unwrap();
            let second = Namespace::open(&mem, host.sibling(2)).unwrap();
            let mut processes = [first, second];
            let mut pids = [1, 2];
            let mut kernel = Kernel::new(limits);
            for (number, step) in steps.iter().enumerate() {
                let Step { process, who, .. } = *step;
                let (pid, cred) = (pids[process], who.cred());
                let mut call = step.call.clone();
                if let Call::SemOp {
                    set,
                    ref sops,
                    ref mut timeout,
                } = call
                {
                    let semid = kernel.resolve(Kind::Sem, set);
                    if timeout.is_none()
                        && matches!(
                            kernel.semop_plan(pid, &cred, semid, sops, None),
                            Ok(Plan::Sleep)
                        )
                    {
                        // It would sleep for good: let it wait no time at all.
                        *timeout = Some(Timeout { sec: 0, nsec: 0 });
                    }
                }
                if let Call::Exit = call {
                    let next = pids[0].max(pids[1]) + 1;
                    processes[process] = Namespace::open(&mem, host.sibling(next)).unwrap();
                    kernel.exit(pid);
                    pids[process] = next;
                } else {
                    let answer = on_core(&processes[process], pid, &cred, &call, &kernel);
                    let expected = kernel.call(pid, &cred, &call);
                    prop_assert_eq!(
                        answer,
                        expected,
                        "step {}: {:?} by {:?} in process {}",
                        number,
                        call,
                        who,
                        pid
                    );
                }
                let (seen, expected) = (observe(&processes[0], pids), kernel.observe());
                let seen = seen.map_err(|err| {
                    TestCaseError::fail(std::format!("after step {number}: {call:?}: {err:?}"))
                })?;
                let after = || std::format!("after step {number}: {call:?}");
                prop_assert_eq!(seen.sems, expected.sems, "sets {}", after());
                prop_assert_eq!(seen.queues, expected.queues, "queues {}", after());
                prop_assert_eq!(seen.segments, expected.segments, "segments {}", after());
                prop_assert_eq!(seen.adjustments, expected.adjustments, "undo {}", after());
            }
            Ok(())
        },
    );
}
