//! The core as a microcontroller runs it: tasks (threads here) sharing one
//! static arena, each with its own `Namespace`, waiting with the spin waiter
//! of `usysv-embedded`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use usysv_core::host::Deadline;
use usysv_core::perm::{Cred, IPC_CREAT};
use usysv_core::sem::SemBuf;
use usysv_core::shm::Placement;
use usysv_core::{Layout, Limits, Namespace, DEFAULT_LIMITS};
use usysv_embedded::{Spin, TaskHost};
use usysv_tests::Watchdog;

const LIMITS: Limits = Limits {
    semmni: 16,
    msgmni: 8,
    shmmni: 8,
    procs: 16,
    heap_bytes: 256 << 10,
    ..DEFAULT_LIMITS
};

const WORDS: usize = 1 << 20;
static ARENA: [AtomicU32; WORDS] = [const { AtomicU32::new(0) }; WORDS];

const TASK: Cred<'static> = Cred {
    euid: 1000,
    egid: 1000,
    groups: &[],
    ipc_owner: false,
    sys_admin: false,
    sys_resource: false,
};

fn now() -> Deadline {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    Deadline(EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64)
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

fn host(task: u32) -> TaskHost {
    TaskHost {
        task,
        spin: Spin {
            now,
            relax: std::thread::yield_now,
        },
        wall_clock,
    }
}

fn arena() -> &'static [AtomicU32] {
    let bytes = Layout::compute(&LIMITS).unwrap().size as usize;
    assert!(
        bytes <= WORDS * 4,
        "the static arena is too small for LIMITS"
    );
    &ARENA[..bytes / 4]
}

/// Task `task` opens the shared arena (the first to come formats it).
fn open(task: u32) -> Namespace<'static, TaskHost> {
    Namespace::create_or_open(arena(), &LIMITS, host(task)).unwrap()
}

fn op(sem_num: u16, sem_op: i16) -> [SemBuf; 1] {
    [SemBuf {
        sem_num,
        sem_op,
        sem_flg: 0,
    }]
}

/// The words of segment `key` (4 KiB, placed in the arena), attached.
fn segment(ns: &Namespace<'static, TaskHost>, key: i32) -> &'static [AtomicU32] {
    let in_arena = |_: i32, _: u64, _: &usysv_core::IpcPerm| Ok(Placement::Arena);
    let shmid = ns
        .shmget(key, 4096, IPC_CREAT | 0o600, &TASK, in_arena)
        .unwrap();
    let at = ns.shm_attach_check(shmid, 0, &TASK).unwrap();
    let offset = at.arena_offset.expect("placed in the arena");
    ns.shm_attached(shmid, u64::from(offset), 4096).unwrap();
    let start = offset as usize / 4;
    &arena()[start..start + 1024]
}

#[test]
fn the_spin_waiter_conforms() {
    let _watchdog = Watchdog::new("the_spin_waiter_conforms", Duration::from_secs(120));
    if let Err(failure) = usysv_core::conformance::run_on_threads(|me| host(me + 1), 4) {
        panic!("the spin waiter: {failure}");
    }
}

#[test]
fn tasks_share_semaphores_queues_and_segments_in_a_static_arena() {
    let _watchdog = Watchdog::new("tasks over a static arena", Duration::from_secs(120));
    const ROUNDS: u32 = 5_000;
    const WORKERS: u32 = 4;
    const INCREMENTS: u32 = 2_000;
    const MESSAGES: u32 = 10_000;
    const TYPES: u32 = 5;

    let tasks: Vec<std::thread::JoinHandle<()>> = (1..=WORKERS)
        .map(|task| {
            std::thread::spawn(move || {
                let ns = open(task);
                let shared = segment(&ns, 0x5e9);
                let pingpong = ns.semget(0x5e1, 2, IPC_CREAT | 0o600, &TASK).unwrap();
                let mutex = ns.semget(0x5e2, 1, IPC_CREAT | 0o600, &TASK).unwrap();
                let queue = ns.msgget(0x5e3, IPC_CREAT | 0o600, &TASK).unwrap();
                // Task 1 makes the mutex free.
                if task == 1 {
                    ns.semop(mutex, &op(0, 1), &TASK).unwrap();
                }
                match task {
                    // Ping: serves the ball, waits for it to come back turned over.
                    1 => {
                        for round in 1..=ROUNDS {
                            shared[0].store(round, Ordering::Relaxed);
                            ns.semop(pingpong, &op(1, 1), &TASK).unwrap();
                            ns.semop(pingpong, &op(0, -1), &TASK).unwrap();
                            assert_eq!(shared[0].load(Ordering::Relaxed), !round);
                        }
                    }
                    2 => {
                        for round in 1..=ROUNDS {
                            ns.semop(pingpong, &op(1, -1), &TASK).unwrap();
                            assert_eq!(shared[0].load(Ordering::Relaxed), round);
                            shared[0].store(!round, Ordering::Relaxed);
                            ns.semop(pingpong, &op(0, 1), &TASK).unwrap();
                        }
                    }
                    // Producer: mixed types, each type numbered from 0; a
                    // full queue blocks it.
                    3 => {
                        for n in 0..MESSAGES {
                            let mtype = 1 + n % TYPES;
                            let payload = (n / TYPES).to_le_bytes().repeat(4);
                            ns.msgsnd(queue, i64::from(mtype), &payload, 0, &TASK)
                                .unwrap();
                        }
                    }
                    // Consumer: an empty queue blocks it.
                    _ => {
                        let mut next = [0u32; TYPES as usize];
                        let mut buf = [0u8; 64];
                        for _ in 0..MESSAGES {
                            let (mtype, len) = ns.msgrcv(queue, 64, 0, 0, &mut buf, &TASK).unwrap();
                            assert_eq!(len, 16);
                            let seq = u32::from_le_bytes(buf[..4].try_into().unwrap());
                            assert_eq!(&buf[..16], &seq.to_le_bytes().repeat(4)[..]);
                            let slot = &mut next[(mtype - 1) as usize];
                            assert_eq!(seq, *slot, "type {mtype} out of order");
                            *slot += 1;
                        }
                        assert_eq!(next, [MESSAGES / TYPES; TYPES as usize]);
                    }
                }
                // Everyone: increments under the mutex, a plain read and
                // write. Until task 1 posts the mutex, takers block.
                for _ in 0..INCREMENTS {
                    ns.semop(mutex, &op(0, -1), &TASK).unwrap();
                    let value = shared[1].load(Ordering::Relaxed);
                    shared[1].store(value + 1, Ordering::Relaxed);
                    ns.semop(mutex, &op(0, 1), &TASK).unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.join().expect("a task failed");
    }

    let ns = open(WORKERS + 1);
    let shared = segment(&ns, 0x5e9);
    assert_eq!(shared[1].load(Ordering::Relaxed), WORKERS * INCREMENTS);
    ns.check(&|_, _| true, &mut |problem| panic!("{problem}"));
}
