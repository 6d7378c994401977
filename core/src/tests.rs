//! Tests of the engine as a whole, over arenas in process memory, with
//! several `Namespace`s standing for several processes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use std::vec::Vec;

use crate::arena::Record;
use crate::heap::heap_bump;
use crate::host::{Deadline, Host, Image, Liveness, ProcessId, Waiter, Wake};
use crate::ids::ObjectSlot;
use crate::perm::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use crate::*;

/// A host whose processes are numbered and die when the test says so.
#[derive(Clone)]
pub(crate) struct TestHost {
    pub(crate) pid: u32,
    alive: Arc<Mutex<HashSet<u32>>>,
    epoch: Instant,
    /// What a simulated `fork` or `execve` changed: the pid (0: `pid`),
    /// the image, and the fork generation.
    life: Arc<[AtomicU32; 3]>,
}

impl TestHost {
    pub(crate) fn family() -> TestHost {
        TestHost {
            pid: 1,
            alive: Arc::new(Mutex::new(HashSet::from([1]))),
            epoch: Instant::now(),
            life: Arc::new([AtomicU32::new(0), AtomicU32::new(1), AtomicU32::new(0)]),
        }
    }

    pub(crate) fn sibling(&self, pid: u32) -> TestHost {
        self.alive.lock().unwrap().insert(pid);
        TestHost {
            pid,
            life: Arc::new([AtomicU32::new(0), AtomicU32::new(1), AtomicU32::new(0)]),
            ..self.clone()
        }
    }

    /// The process this host stands for is now the child `pid` of a fork.
    pub(crate) fn fork_into(&self, pid: u32) {
        self.alive.lock().unwrap().insert(pid);
        self.life[0].store(pid, Ordering::Relaxed);
        self.life[2].fetch_add(1, Ordering::Relaxed);
    }

    /// The process this host stands for runs a new program image.
    pub(crate) fn exec(&self) {
        self.life[1].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn kill(&self, pid: u32) {
        self.alive.lock().unwrap().remove(&pid);
    }
}

impl Waiter for TestHost {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Wake {
        if !self
            .alive
            .lock()
            .unwrap()
            .contains(&self.current_process().pid)
        {
            // Killed while waiting: a dead process runs no further.
            loop {
                std::thread::park();
            }
        }
        if word.load(Ordering::Acquire) != expected {
            return Wake::Woken;
        }
        std::thread::sleep(Duration::from_micros(50));
        match deadline {
            Some(deadline) if self.now() >= deadline => Wake::TimedOut,
            _ => Wake::Woken,
        }
    }

    fn wake(&self, _word: &AtomicU32, _count: u32) {}
}

impl Host for TestHost {
    fn now(&self) -> Deadline {
        Deadline(self.epoch.elapsed().as_nanos() as u64)
    }

    fn wall_clock(&self) -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn current_process(&self) -> ProcessId {
        let pid = match self.life[0].load(Ordering::Relaxed) {
            0 => self.pid,
            child => child,
        };
        ProcessId {
            pid,
            start: u64::from(pid) * 1000,
        }
    }

    fn current_image(&self) -> Image {
        Image(self.life[1].load(Ordering::Relaxed))
    }

    fn fork_generation(&self) -> u32 {
        self.life[2].load(Ordering::Relaxed)
    }

    fn liveness(&self, process: ProcessId) -> Liveness {
        let alive = self.alive.lock().unwrap().contains(&process.pid)
            && process.start == u64::from(process.pid) * 1000;
        if alive {
            Liveness::Alive
        } else {
            Liveness::Dead
        }
    }
}

pub(crate) fn small_limits() -> Limits {
    Limits {
        semmni: 128,
        msgmni: 128,
        shmmni: 128,
        procs: 64,
        heap_bytes: 1 << 20,
        ..DEFAULT_LIMITS
    }
}

pub(crate) fn memory(limits: &Limits) -> Vec<AtomicU32> {
    let size = Layout::compute(limits).unwrap().size;
    (0..size / 4).map(|_| AtomicU32::new(0)).collect()
}

pub(crate) const USER: Cred<'static> = Cred {
    euid: 1000,
    egid: 1000,
    groups: &[],
    ipc_owner: false,
    sys_admin: false,
    sys_resource: false,
};

fn create(ns: &Namespace<'_, TestHost>, kind: Kind, key: i32, flags: i32) -> Result<i32> {
    ns.ipc_get(kind, key, flags, &USER, |_| Ok(()), |_, _| Ok(()))
}

/// A zero-filled arena for the small limits, for the life of the test binary
/// (threads standing for processes borrow it).
pub(crate) fn leaked_arena() -> &'static [AtomicU32] {
    Vec::leak(memory(&small_limits()))
}

/// A fresh arena of the small limits ([`leaked_arena`]), the host of its
/// first process, and that process's namespace, which creates the arena.
pub(crate) fn fresh_namespace() -> (&'static [AtomicU32], TestHost, Namespace<'static, TestHost>) {
    let mem = leaked_arena();
    let host = TestHost::family();
    let ns = Namespace::create(mem, &small_limits(), host.clone()).unwrap();
    (mem, host, ns)
}

/// Starts `pid`'s work on its own thread, with its own namespace.
/// Waits (bounded) until `cond` holds.
pub(crate) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("never happened: {what}");
}

pub(crate) fn spawn_process<T: Send + 'static>(
    host: &TestHost,
    pid: u32,
    mem: &'static [AtomicU32],
    work: impl FnOnce(&Namespace<'static, TestHost>) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let host = host.sibling(pid);
    std::thread::spawn(move || {
        let ns = Namespace::open(mem, host).unwrap();
        work(&ns)
    })
}

pub(crate) fn assert_clean(ns: &Namespace<'_, TestHost>) {
    let mut problems = Vec::new();
    let summary = ns.check(&|_, _| true, &mut |p| problems.push(std::format!("{p}")));
    assert_eq!(summary.corrupt, 0, "{problems:?}");
}

#[test]
fn format_round_trip() {
    let limits = small_limits();
    let mem = memory(&limits);
    let host = TestHost::family();
    let created = Namespace::create(&mem, &limits, host.clone()).unwrap();
    let id = create(&created, Kind::Sem, 42, IPC_CREAT | 0o600).unwrap();
    let opened = Namespace::open(&mem, host.sibling(2)).unwrap();
    assert_eq!(opened.layout(), created.layout());
    assert_eq!(*opened.limits(), limits);
    assert_eq!(create(&opened, Kind::Sem, 42, 0).unwrap(), id);
    assert_eq!(opened.processes(), 2);
    assert!(created.created() > 0);
    assert_clean(&opened);
    assert_eq!(
        Namespace::create(&mem, &limits, host.sibling(3)).err(),
        Some(OpenError::Format(FormatError::NotBlank))
    );
}

#[test]
fn a_full_registry_refuses_another_process_until_one_leaves() {
    let limits = Limits {
        procs: 2,
        ..small_limits()
    };
    let mem = memory(&limits);
    let host = TestHost::family();
    let first = Namespace::create(&mem, &limits, host.clone()).unwrap();
    let second = Namespace::open(&mem, host.sibling(2)).unwrap();
    assert_eq!(
        Namespace::open(&mem, host.sibling(3)).err(),
        Some(OpenError::NoProcessSlot)
    );
    drop(second);
    let third = Namespace::open(&mem, host.sibling(3)).unwrap();
    assert_ne!(third.tag().unwrap(), first.tag().unwrap());
    assert_eq!(first.processes(), 2);
}

#[test]
fn a_process_that_died_holding_nothing_is_reaped_when_another_opens_the_arena() {
    let (mem, host, ns) = fresh_namespace();
    die_inside(&host, 2, mem, |_, host| park_dead(host));
    assert_eq!(ns.processes(), 2, "nothing else notices a death");
    // Opening the arena sweeps, at most once per interval for everyone.
    eventually("the dead process reaped", || {
        spawn_process(&host, 3, mem, |_| ()).join().unwrap();
        ns.processes() == 1
    });
    assert_clean(&ns);
}

#[test]
fn bad_memory_is_refused_with_the_reason() {
    let limits = small_limits();
    let host = TestHost::family();
    let tiny: Vec<AtomicU32> = (0..4).map(|_| AtomicU32::new(0)).collect();
    assert!(matches!(
        Namespace::open(&tiny, host.clone()).err(),
        Some(OpenError::Format(FormatError::TooSmall { len: 16 }))
    ));
    let mem = memory(&limits);
    assert_eq!(
        Namespace::open(&mem, host.clone()).err(),
        Some(OpenError::Format(FormatError::NotAnArena))
    );
    drop(Namespace::create(&mem, &limits, host.clone()).unwrap());
    let half = &mem[..mem.len() / 2];
    assert!(matches!(
        Namespace::open(half, host.clone()).err(),
        Some(OpenError::Format(FormatError::Truncated { .. }))
    ));
    mem[2].store(9, Ordering::Relaxed);
    assert_eq!(
        Namespace::open(&mem, host.clone()).err(),
        Some(OpenError::Format(FormatError::Version { found: 9 }))
    );
    mem[2].store(format::FORMAT_VERSION, Ordering::Relaxed);
    mem[5].store(0, Ordering::Relaxed); // semmni
    assert!(matches!(
        Namespace::open(&mem, host.clone()).err(),
        Some(OpenError::Format(FormatError::BadLimits(_)))
    ));
    mem[5].store(limits.semmni + 1, Ordering::Relaxed);
    assert_eq!(
        Namespace::open(&mem, host).err(),
        Some(OpenError::Format(FormatError::Inconsistent))
    );
}

#[test]
fn racing_creators_end_with_one_arena() {
    let limits = small_limits();
    let mem = memory(&limits);
    let host = TestHost::family();
    let ids: Vec<i32> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let host = host.sibling(10 + i);
                let mem = &mem;
                scope.spawn(move || {
                    let ns = Namespace::create_or_open(mem, &limits, host).unwrap();
                    create(&ns, Kind::Msg, 7, IPC_CREAT | 0o600).unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|&id| id == ids[0]));
    let ns = Namespace::open(&mem, host).unwrap();
    assert_eq!(ns.in_use(Kind::Msg), 1);
    assert_clean(&ns);
}

#[test]
fn ids_follow_the_kernel_and_stale_ids_are_refused() {
    let limits = small_limits();
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    // The sequence the kernel printed for: a, b, rm a, c, rm b, rm c, d.
    let a = create(&ns, Kind::Sem, IPC_PRIVATE, 0o600).unwrap();
    let b = create(&ns, Kind::Sem, IPC_PRIVATE, 0o600).unwrap();
    ns.ipc_remove(Kind::Sem, a, &USER, |_, _| Ok(())).unwrap();
    let c = create(&ns, Kind::Sem, IPC_PRIVATE, 0o600).unwrap();
    ns.ipc_remove(Kind::Sem, b, &USER, |_, _| Ok(())).unwrap();
    ns.ipc_remove(Kind::Sem, c, &USER, |_, _| Ok(())).unwrap();
    let d = create(&ns, Kind::Sem, IPC_PRIVATE, 0o600).unwrap();
    assert_eq!([a, b, c, d], [0, 1, 2, 3]);
    assert_eq!(ns.lock_object(Kind::Sem, a).err(), Some(Errno::EINVAL));
    assert_eq!(ns.lock_object(Kind::Sem, -1).err(), Some(Errno::EINVAL));
    assert_eq!(ns.lock_object(Kind::Sem, 40000).err(), Some(Errno::EINVAL));
    assert_eq!(ns.lock_object(Kind::Sem, d).unwrap().object.id(), d);
    // Cycle through the 64-slot window: index 0 comes back with sequence 1.
    ns.ipc_remove(Kind::Sem, d, &USER, |_, _| Ok(())).unwrap();
    let mut last = d;
    while last % 32768 != 0 || last == 0 {
        last = create(&ns, Kind::Sem, IPC_PRIVATE, 0o600).unwrap();
        ns.ipc_remove(Kind::Sem, last, &USER, |_, _| Ok(()))
            .unwrap();
    }
    assert_eq!(last, 32768, "index 0 again, with the sequence bumped");
    assert_eq!(ns.lock_object(Kind::Sem, 0).err(), Some(Errno::EINVAL));
    assert_clean(&ns);
}

#[test]
fn keys_and_flags_follow_ipcget() {
    let limits = small_limits();
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    assert_eq!(create(&ns, Kind::Shm, 5, 0o600).err(), Some(Errno::ENOENT));
    let id = create(&ns, Kind::Shm, 5, IPC_CREAT | 0o640).unwrap();
    assert_eq!(create(&ns, Kind::Shm, 5, IPC_CREAT | 0o600).unwrap(), id);
    assert_eq!(create(&ns, Kind::Shm, 5, 0).unwrap(), id);
    assert_eq!(
        create(&ns, Kind::Shm, 5, IPC_CREAT | IPC_EXCL | 0o600).err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        create(&ns, Kind::Sem, 5, 0).err(),
        Some(Errno::ENOENT),
        "tables are per kind"
    );
    let other = Cred {
        euid: 2000,
        egid: 2000,
        ..USER
    };
    let get =
        |cred: &Cred<'_>, flags| ns.ipc_get(Kind::Shm, 5, flags, cred, |_| Ok(()), |_, _| Ok(()));
    assert_eq!(get(&other, 0o400).err(), Some(Errno::EACCES));
    assert_eq!(
        get(&other, 0).unwrap(),
        id,
        "asking for no access is allowed"
    );
    let group = Cred {
        egid: 1000,
        ..other
    };
    assert_eq!(get(&group, 0o440).unwrap(), id);
    assert_eq!(get(&group, 0o660).err(), Some(Errno::EACCES));
    // The kind's own checks come before the permission check.
    assert_eq!(
        ns.ipc_get(
            Kind::Shm,
            5,
            0o400,
            &other,
            |_| Err(Errno::EINVAL),
            |_, _| Ok(())
        )
        .err(),
        Some(Errno::EINVAL)
    );
    let perm = ns.lock_object(Kind::Shm, id).unwrap().object.perm();
    assert_eq!(
        (perm.key, perm.uid, perm.cuid, perm.gid, perm.mode),
        (5, 1000, 1000, 1000, 0o640)
    );
    assert_eq!(
        ns.ipc_remove(Kind::Shm, id, &other, |_, _| Ok(())).err(),
        Some(Errno::EPERM)
    );
    let mut locked = ns.lock_object(Kind::Shm, id).unwrap();
    ns.ipc_set_perm(&mut locked, &USER, 2000, 2000, 0o1600)
        .unwrap();
    locked.commit();
    let perm = ns.lock_object(Kind::Shm, id).unwrap().object.perm();
    assert_eq!(
        (perm.uid, perm.gid, perm.cuid, perm.mode),
        (2000, 2000, 1000, 0o600)
    );
    ns.ipc_remove(Kind::Shm, id, &other, |_, _| Ok(())).unwrap();
    assert_eq!(create(&ns, Kind::Shm, 5, 0).err(), Some(Errno::ENOENT));
    assert_clean(&ns);
}

#[test]
fn a_full_table_refuses_a_bad_size_before_it_says_full() {
    // Linux `newary()` and `newseg()` check the size before `ipc_addid()`
    // finds the table full (measured here with SEMMNI and SHMMNI at 4).
    let limits = Limits {
        semmni: 4,
        shmmni: 4,
        ..small_limits()
    };
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    let segment = |key, size| {
        ns.shmget(key, size, IPC_CREAT | 0o600, &USER, |_, _, _| {
            Ok(shm::Placement::Arena)
        })
    };
    for key in 1..=4 {
        ns.semget(key, 1, IPC_CREAT | 0o600, &USER).unwrap();
        segment(key, 1).unwrap();
    }
    for key in [IPC_PRIVATE, 5] {
        assert_eq!(
            ns.semget(key, 0, IPC_CREAT | 0o600, &USER),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            ns.semget(key, 1, IPC_CREAT | 0o600, &USER),
            Err(Errno::ENOSPC)
        );
        assert_eq!(segment(key, 0), Err(Errno::EINVAL));
        assert_eq!(segment(key, 1), Err(Errno::ENOSPC));
    }
    assert_eq!(
        ns.semget(4, 0, 0, &USER),
        Ok(3),
        "an existing set opens at any size"
    );
    assert_clean(&ns);
}

#[test]
fn a_failed_creation_leaves_nothing() {
    let limits = small_limits();
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    let result = ns.ipc_get(
        Kind::Msg,
        9,
        IPC_CREAT | 0o600,
        &USER,
        |_| Ok(()),
        |txn, object| {
            txn.set(&object.ext()[0], 77)?;
            Err(Errno::ENOSPC)
        },
    );
    assert_eq!(result.err(), Some(Errno::ENOSPC));
    assert_eq!(ns.in_use(Kind::Msg), 0);
    assert_eq!(create(&ns, Kind::Msg, 9, 0).err(), Some(Errno::ENOENT));
    assert_eq!(
        create(&ns, Kind::Msg, 9, IPC_CREAT).unwrap(),
        0,
        "the index was not used up"
    );
    assert_clean(&ns);
}

#[test]
fn creation_stops_at_the_limit() {
    let limits = Limits {
        semmni: 3,
        ..small_limits()
    };
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    for _ in 0..3 {
        create(&ns, Kind::Sem, IPC_PRIVATE, 0o600).unwrap();
    }
    assert_eq!(
        create(&ns, Kind::Sem, IPC_PRIVATE, 0o600).err(),
        Some(Errno::ENOSPC)
    );
    assert_eq!(create(&ns, Kind::Msg, IPC_PRIVATE, 0o600).unwrap(), 0);
}

#[test]
fn key_lookup_with_32000_objects() {
    let limits = Limits {
        heap_bytes: 1 << 16,
        procs: 16,
        ..DEFAULT_LIMITS
    };
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    let key = |i: i32| i.wrapping_mul(7919) + 100;
    let ids: Vec<i32> = (0..32000)
        .map(|i| create(&ns, Kind::Msg, key(i), IPC_CREAT | IPC_EXCL | 0o600).unwrap())
        .collect();
    assert_eq!(
        create(&ns, Kind::Msg, 1, IPC_CREAT).err(),
        Some(Errno::ENOSPC)
    );
    for i in (0..32000).step_by(7) {
        assert_eq!(create(&ns, Kind::Msg, key(i), 0).unwrap(), ids[i as usize]);
    }
    assert_eq!(ns.objects(Kind::Msg).count(), 32000);
    for i in (0..32000).step_by(2) {
        ns.ipc_remove(Kind::Msg, ids[i as usize], &USER, |_, _| Ok(()))
            .unwrap();
    }
    for i in 0..32000 {
        let found = create(&ns, Kind::Msg, key(i), 0);
        if i % 2 == 0 {
            assert_eq!(found.err(), Some(Errno::ENOENT));
        } else {
            assert_eq!(found.unwrap(), ids[i as usize]);
        }
    }
    assert_clean(&ns);
}

#[test]
fn check_reports_a_block_that_its_object_no_longer_holds() {
    let (_, _, ns) = fresh_namespace();
    let leaks = |ns: &Namespace<'_, TestHost>| {
        let mut found = Vec::new();
        ns.check(&|_, _| true, &mut |p| {
            if p.what.contains("leaked") {
                found.push(p.at);
            }
        });
        found
    };
    let queue = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    ns.msgsnd(queue, 1, b"in the ring", 0, &USER).unwrap();
    let set = ns.semget(IPC_PRIVATE, 40, 0o600, &USER).unwrap();
    assert_eq!(
        leaks(&ns),
        [],
        "a queue's ring and a large set's array are held"
    );
    // What a process that died between a commit and the free after it
    // leaves: a ring the queue no longer points at, and the array of a
    // removed set.
    let ring = BlockOwner {
        kind: 2,
        id: queue as u32,
    };
    let old_ring = ns.heap_alloc(1024, ring).unwrap();
    let array = BlockOwner {
        kind: 1,
        id: set as u32,
    };
    let removed_array = ns.heap_alloc(40 * 8, array).unwrap();
    ns.sem_remove(set, &USER).unwrap();
    let header = crate::heap::BLOCK_HEADER;
    assert_eq!(
        leaks(&ns),
        [Some(old_ring - header), Some(removed_array - header)]
    );
    ns.heap_free(old_ring, ring).unwrap();
    ns.heap_free(removed_array, array).unwrap();
    assert_eq!(leaks(&ns), []);
    assert_clean(&ns);
}

#[test]
fn heap_allocates_reuses_and_runs_out_cleanly() {
    let limits = Limits {
        heap_bytes: 64 * 1024,
        ..small_limits()
    };
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    let owner = BlockOwner { kind: 6, id: 5 };
    let a = ns.heap_alloc(100, owner).unwrap();
    let b = ns.heap_alloc(100, owner).unwrap();
    assert_ne!(a, b);
    assert_eq!(ns.heap_used(), 2 * 128);
    let word = |off: u32| &mem[(off / 4) as usize];
    word(a).store(0xdead, Ordering::Relaxed);
    assert_eq!(
        ns.heap_free(a, BlockOwner { kind: 6, id: 6 }).err(),
        Some(Errno::CORRUPT)
    );
    ns.heap_free(a, owner).unwrap();
    assert_eq!(
        ns.heap_free(a, owner).err(),
        Some(Errno::CORRUPT),
        "double free"
    );
    assert_eq!(ns.heap_free(a + 4, owner).err(), Some(Errno::CORRUPT));
    let tag = word(b - BLOCK_HEADER).load(Ordering::Relaxed);
    word(b - BLOCK_HEADER).store(tag | 0x3f, Ordering::Relaxed);
    assert_eq!(
        ns.heap_free(b, owner).err(),
        Some(Errno::CORRUPT),
        "a size class past the last"
    );
    word(b - BLOCK_HEADER).store(tag, Ordering::Relaxed);
    let c = ns.heap_alloc(90, owner).unwrap();
    assert_eq!(c, a, "same class comes back from the free list");
    assert_eq!(word(c).load(Ordering::Relaxed), 0, "zero-filled");
    assert_eq!(ns.heap_alloc(1 << 20, owner).err(), Some(Errno::ENOMEM));
    let mut blocks = Vec::new();
    while let Ok(block) = ns.heap_alloc(1000, owner) {
        blocks.push(block);
    }
    assert!(blocks.len() > 40);
    assert_clean(&ns);
    for block in blocks {
        ns.heap_free(block, owner).unwrap();
    }
    ns.heap_free(b, owner).unwrap();
    ns.heap_free(c, owner).unwrap();
    assert_eq!(ns.heap_used(), 0);
    assert_clean(&ns);
}

#[test]
fn check_reports_damaged_bitmaps_hash_chains_and_free_lists() {
    let limits = small_limits();
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    let word = |off: u32| &mem[(off / 4) as usize];
    let problems = |ns: &Namespace<'_, TestHost>| {
        let mut found = Vec::new();
        ns.check(&|_, _| true, &mut |p| found.push((p.at, p.what)));
        found
    };
    let table = ns.layout().tables[Kind::Sem as usize];

    // The last bitmap word has bits for no slot.
    let words = table.slot_count.div_ceil(32);
    let past = words * 32 - 1;
    assert!(past >= table.slot_count);
    let last = word(table.bitmap + (words - 1) * 4);
    last.fetch_or(1 << (past % 32), Ordering::Relaxed);
    assert_eq!(
        problems(&ns),
        [(Some(past), "bitmap marks a slot past the table's end")]
    );
    last.fetch_and(!(1 << (past % 32)), Ordering::Relaxed);

    word(table.bitmap).fetch_or(1 << 5, Ordering::Relaxed);
    assert_eq!(
        problems(&ns),
        [(Some(5), "bitmap disagrees with the slot's state")]
    );
    word(table.bitmap).fetch_and(!(1 << 5), Ordering::Relaxed);

    // A public key's slot chained to itself: `hash_next` follows the key.
    let key = 0x5eed_c0de;
    let id = ns.semget(key, 1, IPC_CREAT | 0o600, &USER).unwrap();
    let index = id as u32 % limits::IPCMNI;
    let slot = table.slots + index * ObjectSlot::SIZE;
    let key_at = (slot..slot + ObjectSlot::SIZE)
        .step_by(4)
        .find(|&at| word(at).load(Ordering::Relaxed) == key as u32)
        .unwrap();
    let hash_next = word(key_at + 4);
    assert_eq!(hash_next.load(Ordering::Relaxed), 0);
    hash_next.store(index + 1, Ordering::Relaxed);
    assert_eq!(
        problems(&ns),
        [(Some(index), "slot is on a hash chain twice (or in a cycle)")]
    );
    hash_next.store(0, Ordering::Relaxed);

    // A free block listed as its own successor.
    let owner = BlockOwner { kind: 6, id: 1 };
    let payload = ns.heap_alloc(100, owner).unwrap();
    ns.heap_free(payload, owner).unwrap();
    let block = payload - BLOCK_HEADER;
    word(payload).store(block, Ordering::Relaxed);
    assert_eq!(
        problems(&ns),
        [(
            Some(block),
            "free list is longer than the free blocks (a cycle?)"
        )]
    );
    word(payload).store(0, Ordering::Relaxed);
    assert_clean(&ns);
}

/// Runs `work` as process `pid` on its own thread and returns once it has
/// "died": `work` marks its process dead and parks for good inside its
/// critical section ([`park_dead`]).
pub(crate) fn die_inside(
    host: &TestHost,
    pid: u32,
    mem: &'static [AtomicU32],
    work: impl FnOnce(&Namespace<'static, TestHost>, &TestHost) + Send + 'static,
) {
    let host = host.sibling(pid);
    let (tx, rx) = std::sync::mpsc::channel();
    let alive = Arc::clone(&host.alive);
    std::thread::spawn(move || {
        let ns = Namespace::open(mem, host.clone()).unwrap();
        let ns: &'static Namespace<'static, TestHost> =
            std::boxed::Box::leak(std::boxed::Box::new(ns));
        tx.send(()).unwrap();
        work(ns, &host);
    });
    rx.recv().unwrap();
    while alive.lock().unwrap().contains(&pid) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn park_dead(host: &TestHost) -> ! {
    host.kill(host.pid);
    loop {
        std::thread::park();
    }
}

#[test]
fn a_lock_naming_an_earlier_registration_of_the_callers_own_slot_is_taken_over() {
    let (mem, _host, ns) = fresh_namespace();
    let id = create(&ns, Kind::Sem, 21, IPC_CREAT | 0o600).unwrap();
    let me = ns.tag().unwrap();
    let holding = |tag: Tag| -> Vec<usize> {
        (0..mem.len())
            .filter(|&i| mem[i].load(Ordering::Relaxed) == tag.raw())
            .collect()
    };
    let before = holding(me);
    let locked = ns.lock_object(Kind::Sem, id).unwrap();
    let owner = *holding(me)
        .iter()
        .find(|i| !before.contains(i))
        .expect("the lock word");
    locked.commit();
    // The lock as a registration of this slot that died left it, and the
    // slot's words scribbled to agree with that registration: the registry
    // says a living process (this one) holds it.
    let earlier = ns.registry.forge_earlier(me);
    mem[owner].store(earlier.raw(), Ordering::Relaxed);

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if start.elapsed() > Duration::from_secs(20) {
                    eprintln!("the caller waits for a lock its own slot's past holds");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let locked = ns.lock_object(Kind::Sem, id);
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    locked.expect("taken over").commit();
}

#[test]
fn a_lock_whose_holder_died_is_recovered_and_rolled_back() {
    let limits = small_limits();
    let mem: &'static [AtomicU32] = std::vec::Vec::leak(memory(&limits));
    let host = TestHost::family();
    let ns = Namespace::create(mem, &limits, host.clone()).unwrap();
    let id = create(&ns, Kind::Sem, 11, IPC_CREAT | 0o600).unwrap();
    let mut locked = ns.lock_object(Kind::Sem, id).unwrap();
    locked.txn.set(&locked.object.ext()[3], 5).unwrap();
    locked.commit();

    // Dies half-way through changing the object.
    die_inside(&host, 2, mem, |ns, host| {
        let id = ns
            .ipc_get(Kind::Sem, 11, 0, &USER, |_| Ok(()), |_, _| Ok(()))
            .unwrap();
        let mut locked = ns.lock_object(Kind::Sem, id).unwrap();
        locked.txn.set(&locked.object.ext()[3], 6).unwrap();
        locked.txn.set(&locked.object.ext()[4], 9).unwrap();
        park_dead(host);
    });
    let locked = ns.lock_object(Kind::Sem, id).unwrap();
    assert_eq!(locked.object.ext()[3].get(), 5);
    assert_eq!(locked.object.ext()[4].get(), 0);
    locked.commit();

    // Dies half-way through creating an object (both table and object locks held).
    die_inside(&host, 3, mem, |ns, host| {
        let _ = ns.ipc_get(
            Kind::Sem,
            12,
            IPC_CREAT | 0o600,
            &USER,
            |_| Ok(()),
            |txn, object| {
                txn.set(&object.ext()[0], 1)?;
                park_dead(host)
            },
        );
    });
    // The half-created object's id is the next index; locking it by id recovers
    // the table first and finds no object.
    assert_eq!(ns.lock_object(Kind::Sem, id + 1).err(), Some(Errno::EINVAL));
    assert_eq!(create(&ns, Kind::Sem, 12, 0).err(), Some(Errno::ENOENT));
    let again = create(&ns, Kind::Sem, 12, IPC_CREAT | 0o600).unwrap();
    assert_eq!(ns.in_use(Kind::Sem), 2);

    // Dies half-way through removing it.
    die_inside(&host, 4, mem, move |ns, host| {
        let id = ns
            .ipc_get(Kind::Sem, 12, 0, &USER, |_| Ok(()), |_, _| Ok(()))
            .unwrap();
        let _: Result<()> = ns.ipc_remove(Kind::Sem, id, &USER, |txn, object| {
            txn.set(&object.ext()[1], 3)?;
            park_dead(host)
        });
    });
    assert_eq!(create(&ns, Kind::Sem, 12, 0).unwrap(), again);
    assert_eq!(
        ns.lock_object(Kind::Sem, again).unwrap().object.ext()[1].get(),
        0
    );

    // Dies inside the heap lock, having moved the bump pointer.
    let used = ns.heap_used();
    let first = ns.heap_alloc(8, BlockOwner { kind: 6, id: 1 }).unwrap();
    die_inside(&host, 5, mem, |ns, host| {
        let mut txn = crate::lock::Txn::begin(ns, ns.heap_lock().unwrap()).unwrap();
        let heap = ns
            .arena
            .get(arena::Off::<heap::HeapHeader>::new(ns.layout.heap))
            .unwrap();
        let bump = heap_bump(heap);
        txn.set(bump, bump.get() + 4096).unwrap();
        park_dead(host);
    });
    let second = ns.heap_alloc(8, BlockOwner { kind: 6, id: 1 }).unwrap();
    assert_eq!(second, first + 16, "the dead holder's bump was rolled back");
    assert_eq!(ns.heap_used(), used + 32);
    assert_clean(&ns);
    let mut stale = 0;
    ns.check(&|_, _| true, &mut |p| {
        if p.severity == Severity::Stale {
            stale += 1;
        }
    });
    assert_eq!(
        stale, 4,
        "dead processes' registrations are reported as stale"
    );
}

#[test]
fn savepoints_checkpoints_and_an_overflow_journal_survive_a_death() {
    let limits = small_limits();
    let mem: &'static [AtomicU32] = std::vec::Vec::leak(memory(&limits));
    let host = TestHost::family();
    let ns = Namespace::create(mem, &limits, host.clone()).unwrap();
    let id = create(&ns, Kind::Msg, 3, IPC_CREAT | 0o600).unwrap();
    let words = ns
        .heap_alloc(
            96 * 4,
            BlockOwner {
                kind: 6,
                id: id as u32,
            },
        )
        .unwrap();
    let word = |i: u32| {
        ns.arena
            .get(arena::Off::<arena::Word>::new(words + 4 * i))
            .unwrap()
    };

    let mut locked = ns.lock_object(Kind::Msg, id).unwrap();
    for i in 0..32 {
        locked.txn.set(word(i), 1).unwrap();
    }
    assert_eq!(
        locked.txn.set(word(32), 1).err(),
        Some(Errno::ENOMEM),
        "inline journal full"
    );
    let spare = ns
        .heap_alloc(
            64 * 8,
            BlockOwner {
                kind: 6,
                id: id as u32,
            },
        )
        .unwrap();
    locked.txn.lend_overflow(spare, 64).unwrap();
    let mark = locked.txn.savepoint();
    for i in 32..60 {
        locked.txn.set(word(i), 2).unwrap();
    }
    locked.txn.roll_back_to(mark).unwrap();
    assert_eq!((word(31).get(), word(32).get(), word(59).get()), (1, 0, 0));
    locked.txn.checkpoint();
    locked.txn.set(word(70), 3).unwrap();
    drop(locked);
    assert_eq!(
        (word(31).get(), word(70).get()),
        (1, 0),
        "checkpointed stays, the rest rolls back"
    );

    // A holder that dies with entries in its overflow journal.
    std::thread::scope(|scope| {
        let sibling = host.sibling(2);
        scope.spawn(move || {
            let ns2 = Namespace::open(mem, sibling.clone()).unwrap();
            let mut locked = ns2.lock_object(Kind::Msg, id).unwrap();
            locked.txn.lend_overflow(spare, 64).unwrap();
            for i in 0..80 {
                locked.txn.set(word(i), 9).unwrap();
            }
            sibling.kill(2);
            core::mem::forget(locked);
            core::mem::forget(ns2);
        });
    });
    let locked = ns.lock_object(Kind::Msg, id).unwrap();
    let values: Vec<u32> = (0..80).map(|i| word(i).get()).collect();
    assert_eq!(&values[..32], &[1; 32]);
    assert!(values[32..].iter().all(|v| *v == 0), "{values:?}");
    locked.commit();
    assert_clean(&ns);
}
