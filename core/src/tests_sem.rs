//! Semaphore sets, with threads standing for processes.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use std::vec::Vec;

use crate::perm::{IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE};
use crate::sem::{SemBuf, SemQuery, Timeout, SEM_UNDO};
use crate::tests::{
    assert_clean, die_inside, eventually, fresh_namespace, memory, park_dead, small_limits,
    spawn_process, TestHost, USER,
};
use crate::{Cred, Errno, Namespace};

fn op(sem_num: u16, sem_op: i16, sem_flg: i16) -> SemBuf {
    SemBuf {
        sem_num,
        sem_op,
        sem_flg,
    }
}

const NOWAIT: i16 = IPC_NOWAIT as i16;

fn value(ns: &Namespace<'_, TestHost>, id: i32, num: i32) -> i32 {
    ns.sem_query(id, num, SemQuery::Value, &USER).unwrap()
}

/// GETNCNT: how many wait to decrease semaphore `num`.
fn ncnt(ns: &Namespace<'_, TestHost>, id: i32, num: i32) -> Result<i32, Errno> {
    ns.sem_query(id, num, SemQuery::WaitingToDecrease, &USER)
}

/// Starts processes 2, 3 and 4, each blocking to take 1 from semaphore 0 of
/// set `id`, and waits until all three are queued; their semop results.
fn queue_three_decrements(
    host: &TestHost,
    mem: &'static [AtomicU32],
    ns: &Namespace<'_, TestHost>,
    id: i32,
) -> Vec<JoinHandle<Result<(), Errno>>> {
    let waiters = (2..5)
        .map(|pid| {
            spawn_process(host, pid, mem, move |ns| {
                ns.semop(id, &[op(0, -1, 0)], &USER)
            })
        })
        .collect();
    eventually("queued", || ncnt(ns, id, 0) == Ok(3));
    waiters
}

#[test]
fn semget_checks_sizes_and_keys_like_the_kernel() {
    let (_, _, ns) = fresh_namespace();
    assert_eq!(ns.semget(IPC_PRIVATE, 0, 0o600, &USER), Err(Errno::EINVAL));
    assert_eq!(ns.semget(IPC_PRIVATE, -1, 0o600, &USER), Err(Errno::EINVAL));
    assert_eq!(
        ns.semget(IPC_PRIVATE, 32001, 0o600, &USER),
        Err(Errno::EINVAL)
    );
    let id = ns.semget(77, 3, IPC_CREAT | 0o600, &USER).unwrap();
    assert_eq!(ns.semget(77, 0, 0, &USER), Ok(id), "0 opens any size");
    assert_eq!(ns.semget(77, 3, 0, &USER), Ok(id));
    assert_eq!(ns.semget(77, 4, 0, &USER), Err(Errno::EINVAL));
    assert_eq!(
        ns.semget(77, 1, IPC_CREAT | IPC_EXCL, &USER),
        Err(Errno::EEXIST)
    );
    assert_eq!(ns.semget(78, 1, 0, &USER), Err(Errno::ENOENT));
    let stranger = Cred {
        euid: 5,
        egid: 5,
        ..USER
    };
    assert_eq!(ns.semget(77, 1, 0o400, &stranger), Err(Errno::EACCES));
    let ds = ns.sem_stat(id, &USER).unwrap();
    assert_eq!(
        (ds.nsems, ds.otime, ds.perm.mode, ds.perm.key),
        (3, 0, 0o600, 77)
    );
    assert!(ds.ctime > 0);
    assert_clean(&ns);
}

#[test]
fn semmns_is_a_limit_across_sets() {
    let limits = crate::Limits {
        semmns: 10,
        ..small_limits()
    };
    let mem = memory(&limits);
    let ns = Namespace::create(&mem, &limits, TestHost::family()).unwrap();
    let a = ns.semget(IPC_PRIVATE, 6, 0o600, &USER).unwrap();
    assert_eq!(ns.semget(IPC_PRIVATE, 5, 0o600, &USER), Err(Errno::ENOSPC));
    ns.semget(IPC_PRIVATE, 4, 0o600, &USER).unwrap();
    assert_eq!(ns.sem_info(true).1.semaem, 10);
    ns.sem_remove(a, &USER).unwrap();
    ns.semget(IPC_PRIVATE, 5, 0o600, &USER).unwrap();
    assert_eq!(ns.sem_info(true).1.semusz, 2);
}

#[test]
fn semop_errors_come_in_the_kernels_order() {
    let (_, _, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 3, 0o600, &USER).unwrap();
    let many = vec![op(0, 1, 0); 501];
    assert_eq!(ns.semop(id, &[], &USER), Err(Errno::EINVAL));
    assert_eq!(ns.semop(id, &many, &USER), Err(Errno::E2BIG));
    assert_eq!(
        ns.semop(-1, &many, &USER),
        Err(Errno::E2BIG),
        "E2BIG before the id"
    );
    assert_eq!(ns.semop(-1, &[op(0, 1, 0)], &USER), Err(Errno::EINVAL));
    let bad = Timeout { sec: 0, nsec: -1 };
    assert_eq!(
        ns.semtimedop(id, &[op(0, -1, 0)], Some(bad), &USER),
        Err(Errno::EINVAL)
    );
    let bad = Timeout {
        sec: 0,
        nsec: 1_000_000_000,
    };
    assert_eq!(
        ns.semtimedop(id, &[op(0, -1, 0)], Some(bad), &USER),
        Err(Errno::EINVAL)
    );
    assert_eq!(ns.semop(id, &[op(5, 1, 0)], &USER), Err(Errno::EFBIG));
    assert_eq!(
        ns.semop(id, &[op(5, 1, 0), op(0, -1, NOWAIT)], &USER),
        Err(Errno::EFBIG),
        "EFBIG before EAGAIN"
    );
    assert_eq!(
        ns.semop(id, &[op(0, -1, NOWAIT)], &USER),
        Err(Errno::EAGAIN)
    );
    let short = Timeout { sec: 0, nsec: 1000 };
    assert_eq!(
        ns.semtimedop(id, &[op(0, -1, 0)], Some(short), &USER),
        Err(Errno::EAGAIN)
    );
    assert_eq!(
        ns.semop(id, &[op(0, 32767, 0), op(0, 1, 0)], &USER),
        Err(Errno::ERANGE)
    );
    assert_eq!(value(&ns, id, 0), 0, "all or nothing");
    let reader = Cred {
        euid: 5,
        egid: 5,
        ..USER
    };
    let mut locked = ns.lock_object(crate::Kind::Sem, id).unwrap();
    ns.ipc_set_perm(&mut locked, &USER, 1000, 1000, 0o604)
        .unwrap();
    locked.commit();
    assert_eq!(
        ns.semop(id, &[op(0, 1, 0)], &reader),
        Err(Errno::EACCES),
        "altering needs write"
    );
    assert_eq!(
        ns.semop(id, &[op(0, 0, 0)], &reader),
        Ok(()),
        "waiting for zero needs read"
    );
    assert_clean(&ns);
}

#[test]
fn operations_apply_all_or_nothing_in_order() {
    let (_, _, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 3, 0o600, &USER).unwrap();
    assert_eq!(ns.sem_stat(id, &USER).unwrap().otime, 0);
    ns.semop(id, &[op(0, 2, 0), op(1, 1, 0)], &USER).unwrap();
    assert!(ns.sem_stat(id, &USER).unwrap().otime > 0);
    assert_eq!(
        ns.semop(id, &[op(0, -1, 0), op(1, -2, NOWAIT)], &USER),
        Err(Errno::EAGAIN)
    );
    assert_eq!((value(&ns, id, 0), value(&ns, id, 1)), (2, 1));
    // The same semaphore twice: applied in order.
    ns.semop(id, &[op(2, 1, 0), op(2, -1, 0), op(2, 5, 0)], &USER)
        .unwrap();
    assert_eq!(value(&ns, id, 2), 5);
    assert_eq!(ns.sem_query(id, 2, SemQuery::Pid, &USER), Ok(1));
    assert_eq!(
        ns.sem_query(id, 3, SemQuery::Value, &USER),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ns.sem_query(id, -1, SemQuery::Value, &USER),
        Err(Errno::EINVAL)
    );
    // Many operations at once use a journal lent from the heap.
    let ops: Vec<SemBuf> = (0..300).map(|i| op(i % 3, 1, 0)).collect();
    ns.semop(id, &ops, &USER).unwrap();
    assert_eq!(
        (value(&ns, id, 0), value(&ns, id, 1), value(&ns, id, 2)),
        (102, 101, 105)
    );
    let mut all = Vec::new();
    ns.sem_getall(id, &USER, &mut |i, v| all.push((i, v)))
        .unwrap();
    assert_eq!(all, [(0, 102), (1, 101), (2, 105)]);
    assert_clean(&ns);
}

#[test]
fn setval_and_setall_check_ranges_and_set_ctime() {
    let (_, _, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 2, 0o600, &USER).unwrap();
    assert_eq!(ns.sem_setval(id, 0, -1, &USER), Err(Errno::ERANGE));
    assert_eq!(
        ns.sem_setval(-5, 0, -1, &USER),
        Err(Errno::EINVAL),
        "a negative id before the range"
    );
    assert_eq!(
        ns.sem_setval(id + 1, 0, -1, &USER),
        Err(Errno::ERANGE),
        "the range before looking the id up"
    );
    assert_eq!(ns.sem_setval(-5, 0, 1, &USER), Err(Errno::EINVAL));
    assert_eq!(ns.sem_setval(id, 9, 1, &USER), Err(Errno::EINVAL));
    assert_eq!(ns.sem_setval(id, 0, 32768, &USER), Err(Errno::ERANGE));
    ns.sem_setval(id, 1, 7, &USER).unwrap();
    assert_eq!(value(&ns, id, 1), 7);
    assert_eq!(
        ns.sem_stat(id, &USER).unwrap().otime,
        0,
        "SETVAL is not a semop"
    );
    assert_eq!(
        ns.sem_setall(id, &USER, &|i| if i == 0 { 40000 } else { 1 }),
        Err(Errno::ERANGE)
    );
    assert_eq!(value(&ns, id, 1), 7, "all or nothing");
    ns.sem_setall(id, &USER, &|i| 10 + i as u16).unwrap();
    assert_eq!((value(&ns, id, 0), value(&ns, id, 1)), (10, 11));
    let (max, info) = ns.sem_info(false);
    assert_eq!(
        (max, info.semmsl, info.semopm, info.semusz, info.semaem),
        (id, 32000, 500, 20, 32767)
    );
    let (found, ds) = ns.sem_stat_index(id, false, &USER).unwrap();
    assert_eq!((found, ds.nsems), (id, 2));
    assert_eq!(
        ns.sem_stat_index(id + 1, false, &USER).err(),
        Some(Errno::EINVAL)
    );
    assert_clean(&ns);
}

#[test]
fn a_blocked_caller_is_completed_by_the_waker_in_fifo_order() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for pid in 2..6 {
        let order = Arc::clone(&order);
        workers.push(spawn_process(&host, pid, mem, move |ns| {
            ns.semop(id, &[op(0, -1, 0)], &USER).unwrap();
            order.lock().unwrap().push(pid);
        }));
        // Queue them up one after another.
        eventually("queued", || ncnt(&ns, id, 0) == Ok(pid as i32 - 1));
    }
    for released in 1..=4 {
        ns.semop(id, &[op(0, 1, 0)], &USER).unwrap();
        eventually("completed", || order.lock().unwrap().len() == released);
    }
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [2, 3, 4, 5]);
    assert_eq!(value(&ns, id, 0), 0);
    assert_eq!(
        ns.sem_query(id, 0, SemQuery::Pid, &USER),
        Ok(5),
        "the sleeper's pid, set by the waker"
    );
    assert_clean(&ns);
}

#[test]
fn a_small_request_is_not_held_behind_a_large_one() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 2, 0o600, &USER).unwrap();
    let large = spawn_process(&host, 2, mem, move |ns| {
        ns.semop(id, &[op(0, -5, 0)], &USER)
    });
    eventually("large queued", || ncnt(&ns, id, 0) == Ok(1));
    let small = spawn_process(&host, 3, mem, move |ns| {
        ns.semop(id, &[op(0, -1, 0)], &USER)
    });
    eventually("small queued", || ncnt(&ns, id, 0) == Ok(2));
    // A multi-op waiter counts only on the semaphore it is blocked on.
    let zero = spawn_process(&host, 4, mem, move |ns| {
        ns.semop(id, &[op(1, 0, 0), op(0, -9, 0)], &USER)
    });
    eventually("zero queued", || ncnt(&ns, id, 0) == Ok(3));
    assert_eq!(ns.sem_query(id, 1, SemQuery::WaitingForZero, &USER), Ok(0));
    ns.semop(id, &[op(0, 1, 0)], &USER).unwrap();
    assert_eq!(small.join().unwrap(), Ok(()));
    assert_eq!(ncnt(&ns, id, 0), Ok(2));
    ns.sem_setval(id, 0, 5, &USER).unwrap();
    assert_eq!(large.join().unwrap(), Ok(()));
    assert_eq!(value(&ns, id, 0), 0);
    ns.sem_remove(id, &USER).unwrap();
    assert_eq!(zero.join().unwrap(), Err(Errno::EIDRM));
    assert_clean(&ns);
}

#[test]
fn wait_for_zero_is_served_before_altering_waiters() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    ns.sem_setval(id, 0, 1, &USER).unwrap();
    let down = spawn_process(&host, 2, mem, move |ns| {
        ns.semop(id, &[op(0, -2, 0)], &USER)
    });
    eventually("down queued", || ncnt(&ns, id, 0) == Ok(1));
    let zero = spawn_process(&host, 3, mem, move |ns| ns.semop(id, &[op(0, 0, 0)], &USER));
    eventually("zero queued", || {
        ns.sem_query(id, 0, SemQuery::WaitingForZero, &USER) == Ok(1)
    });
    // 1 → 2 lets the decrement through, which brings it to 0, which lets the zero-waiter through.
    ns.semop(id, &[op(0, 1, 0)], &USER).unwrap();
    assert_eq!(down.join().unwrap(), Ok(()));
    assert_eq!(zero.join().unwrap(), Ok(()));
    assert_clean(&ns);
}

#[test]
fn timeouts_and_removal_end_a_wait() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let t = Timeout {
        sec: 0,
        nsec: 30_000_000,
    };
    let start = std::time::Instant::now();
    assert_eq!(
        ns.semtimedop(id, &[op(0, -1, 0)], Some(t), &USER),
        Err(Errno::EAGAIN)
    );
    assert!(start.elapsed() >= Duration::from_millis(29));
    assert_eq!(ncnt(&ns, id, 0), Ok(0), "unqueued");
    let waiters = queue_three_decrements(&host, mem, &ns, id);
    ns.sem_remove(id, &USER).unwrap();
    for waiter in waiters {
        assert_eq!(waiter.join().unwrap(), Err(Errno::EIDRM));
    }
    assert_eq!(ns.heap_used(), 0, "waiter records and the array are freed");
    assert_clean(&ns);
}

#[test]
fn waiters_are_still_served_after_a_holder_of_the_set_lock_dies() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let waiters = queue_three_decrements(&host, mem, &ns, id);
    // Dies holding the set's lock with a half-made change.
    die_inside(&host, 9, mem, move |ns, host| {
        let mut locked = ns.lock_object(crate::Kind::Sem, id).unwrap();
        let ext = locked.object.ext();
        locked.txn.set(&ext[0], 99).unwrap();
        park_dead(host);
    });
    // The next operation recovers the lock, and the +3 completes all three.
    ns.semop(id, &[op(0, 3, 0)], &USER).unwrap();
    for waiter in waiters {
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }
    assert_eq!(value(&ns, id, 0), 0);
    assert_eq!(
        ns.sem_stat(id, &USER).unwrap().nsems,
        1,
        "the half-made change was rolled back"
    );
    assert_clean(&ns);
}

const UNDO: i16 = SEM_UNDO;

/// Runs `work` as process `pid` with its own namespace, and returns after the
/// namespace has been dropped: the process has left.
fn as_process<T: Send + 'static>(
    host: &TestHost,
    pid: u32,
    mem: &'static [AtomicU32],
    work: impl FnOnce(&Namespace<'static, TestHost>) -> T + Send + 'static,
) -> T {
    spawn_process(host, pid, mem, work).join().unwrap()
}

#[test]
fn undo_is_applied_when_the_process_leaves_and_clamped() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 3, 0o600, &USER).unwrap();
    as_process(&host, 2, mem, move |ns| {
        ns.semop(id, &[op(0, 2, UNDO)], &USER).unwrap();
        ns.semop(id, &[op(0, 2, UNDO), op(1, 1, 0)], &USER).unwrap();
        assert_eq!(value(ns, id, 0), 4);
    });
    assert_eq!(
        (value(&ns, id, 0), value(&ns, id, 1)),
        (0, 1),
        "only the SEM_UNDO operations are undone"
    );
    assert_eq!(
        ns.sem_query(id, 0, SemQuery::Pid, &USER),
        Ok(2),
        "the leaving process operated last"
    );
    // Clamped at 0: the process's +3 was taken by another process meanwhile.
    as_process(&host, 3, mem, move |ns| {
        ns.semop(id, &[op(2, 3, UNDO)], &USER).unwrap();
        ns.semop(id, &[op(2, -3, 0)], &USER).unwrap();
    });
    assert_eq!(value(&ns, id, 2), 0);
    // Clamped at SEMVMX.
    ns.sem_setval(id, 1, 32767, &USER).unwrap();
    as_process(&host, 4, mem, move |ns| {
        ns.semop(id, &[op(1, -5, UNDO)], &USER).unwrap();
        ns.semop(id, &[op(1, 5, 0)], &USER).unwrap();
    });
    assert_eq!(value(&ns, id, 1), 32767);
    assert_clean(&ns);
}

#[test]
fn adjustments_stay_within_semaem() {
    let (_, _, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    ns.semop(id, &[op(0, 32767, UNDO)], &USER).unwrap();
    ns.semop(id, &[op(0, -32767, 0)], &USER).unwrap();
    ns.semop(id, &[op(0, 1, UNDO)], &USER).unwrap();
    assert_eq!(
        ns.semop(id, &[op(0, 1, UNDO)], &USER),
        Err(Errno::ERANGE),
        "adjustment -32769"
    );
    assert_eq!(value(&ns, id, 0), 1, "nothing applied");
    ns.semop(id, &[op(0, -1, UNDO)], &USER).unwrap();
    ns.semop(id, &[op(0, 1, UNDO)], &USER).unwrap();
}

#[test]
fn an_exit_stamps_otime_of_each_set_it_called_with_sem_undo_even_in_vain() {
    // Linux `find_alloc_undo` makes the undo structure before it checks the
    // semaphore numbers and the permission, and `exit_sem` stamps
    // `sem_otime` for each structure of a live set (measured here).
    let (mem, host, ns) = fresh_namespace();
    let [blocked, too_far, forbidden, without] =
        [(); 4].map(|()| ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap());
    as_process(&host, 2, mem, move |ns| {
        let stranger = Cred {
            euid: 5,
            egid: 5,
            ..USER
        };
        let undo = UNDO | NOWAIT;
        assert_eq!(
            ns.semop(blocked, &[op(0, -1, undo)], &USER),
            Err(Errno::EAGAIN)
        );
        assert_eq!(
            ns.semop(too_far, &[op(5, -1, undo)], &USER),
            Err(Errno::EFBIG)
        );
        assert_eq!(
            ns.semop(forbidden, &[op(0, 1, undo)], &stranger),
            Err(Errno::EACCES)
        );
        assert_eq!(
            ns.semop(without, &[op(0, -1, NOWAIT)], &USER),
            Err(Errno::EAGAIN)
        );
    });
    let otime = |id| ns.sem_stat(id, &USER).unwrap().otime;
    assert!([blocked, too_far, forbidden]
        .iter()
        .all(|&id| otime(id) > 0));
    assert_eq!(otime(without), 0, "no SEM_UNDO, no undo structure");
    assert_clean(&ns);
}

#[test]
fn setval_clears_one_adjustment_and_setall_all_of_them() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 2, 0o600, &USER).unwrap();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let worker = spawn_process(&host, 2, mem, move |ns| {
        ns.semop(id, &[op(0, 5, UNDO), op(1, 7, UNDO)], &USER)
            .unwrap();
        done.send(()).unwrap();
        wait.recv().unwrap();
    });
    finished.recv().unwrap();
    ns.sem_setval(id, 0, 3, &USER).unwrap();
    go.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!((value(&ns, id, 0), value(&ns, id, 1)), (3, 0));

    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let worker = spawn_process(&host, 3, mem, move |ns| {
        ns.semop(id, &[op(0, 5, UNDO), op(1, 7, UNDO)], &USER)
            .unwrap();
        done.send(()).unwrap();
        wait.recv().unwrap();
        // Detached by SETALL: a new SEM_UNDO operation starts from zero.
        ns.semop(id, &[op(1, 1, UNDO)], &USER).unwrap();
    });
    finished.recv().unwrap();
    ns.sem_setall(id, &USER, &|i| [20, 30][i as usize]).unwrap();
    go.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!((value(&ns, id, 0), value(&ns, id, 1)), (20, 30));
    assert_clean(&ns);
}

#[test]
fn a_sleeper_completed_by_the_waker_gets_its_adjustment() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let sleeper = spawn_process(&host, 2, mem, move |ns| {
        ns.semop(id, &[op(0, -1, UNDO)], &USER)
    });
    eventually("queued", || ncnt(&ns, id, 0) == Ok(1));
    ns.semop(id, &[op(0, 1, 0)], &USER).unwrap();
    assert_eq!(sleeper.join().unwrap(), Ok(()));
    assert_eq!(value(&ns, id, 0), 1, "its -1 undone when it left");
    assert_clean(&ns);
}

#[test]
fn records_of_a_removed_set_are_void_and_dropped() {
    let (mem, host, ns) = fresh_namespace();
    let used = ns.heap_used();
    let old = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let (go, wait) = std::sync::mpsc::channel::<i32>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let worker = spawn_process(&host, 2, mem, move |ns| {
        ns.semop(old, &[op(0, 1, UNDO)], &USER).unwrap();
        done.send(()).unwrap();
        let new = wait.recv().unwrap();
        // The stale record is dropped when the process makes its next one.
        ns.semop(new, &[op(0, 2, UNDO)], &USER).unwrap();
    });
    finished.recv().unwrap();
    ns.sem_remove(old, &USER).unwrap();
    let new = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    go.send(new).unwrap();
    worker.join().unwrap();
    assert_eq!(value(&ns, new, 0), 0);
    ns.sem_remove(new, &USER).unwrap();
    assert_eq!(ns.heap_used(), used, "every record and array freed");
    assert_clean(&ns);
}

#[test]
fn registrations_of_one_process_share_its_adjustments() {
    let (mem, host, first) = fresh_namespace();
    let second = Namespace::open(mem, host.clone()).unwrap();
    assert_eq!(first.tag(), second.tag());
    let id = first.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    first.semop(id, &[op(0, 1, UNDO)], &USER).unwrap();
    second.semop(id, &[op(0, 1, UNDO)], &USER).unwrap();
    drop(first);
    assert_eq!(value(&second, id, 0), 2, "the process has not left");
    let observer = Namespace::open(mem, host.sibling(5)).unwrap();
    drop(second);
    assert_eq!(value(&observer, id, 0), 0);
}

/// Eight processes add to a counter with a deliberately racy
/// read-modify-write, each inside P and V on a binary semaphore with
/// `flags`: only the semaphore makes the total exact.
fn counter_under_a_binary_semaphore(flags: i16, rounds: u32) {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    ns.sem_setval(id, 0, 1, &USER).unwrap();
    let counter = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (2..10)
        .map(|pid| {
            let counter = Arc::clone(&counter);
            spawn_process(&host, pid, mem, move |ns| {
                for _ in 0..rounds {
                    ns.semop(id, &[op(0, -1, flags)], &USER).unwrap();
                    let seen = counter.load(std::sync::atomic::Ordering::Relaxed);
                    std::hint::spin_loop();
                    counter.store(seen + 1, std::sync::atomic::Ordering::Relaxed);
                    ns.semop(id, &[op(0, 1, flags)], &USER).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(
        counter.load(std::sync::atomic::Ordering::Relaxed),
        8 * rounds
    );
    assert_eq!(value(&ns, id, 0), 1);
    assert_clean(&ns);
}

#[test]
fn a_counter_guarded_by_a_binary_semaphore_ends_exact() {
    counter_under_a_binary_semaphore(0, 500);
}

#[test]
fn a_counter_guarded_by_a_sem_undo_semaphore_ends_exact() {
    counter_under_a_binary_semaphore(UNDO, 300);
}

/// Runs `work` as process `pid`, which then dies without leaving (as by
/// `_exit` or a signal): its namespace is never dropped.
fn dies_after<T: Send + 'static>(
    host: &TestHost,
    pid: u32,
    mem: &'static [AtomicU32],
    work: impl FnOnce(&Namespace<'static, TestHost>) -> T + Send + 'static,
) -> T {
    let result = as_process(host, pid, mem, move |ns| {
        let result = work(ns);
        std::mem::forget(Namespace::open(mem, ns.host().clone()));
        result
    });
    host.kill(pid);
    result
}

#[test]
fn a_dead_processs_adjustments_are_applied_when_a_value_is_read() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 2, 0o600, &USER).unwrap();
    ns.sem_setval(id, 0, 1, &USER).unwrap();
    dies_after(&host, 2, mem, move |ns| {
        ns.semop(id, &[op(0, -1, UNDO), op(1, 3, UNDO)], &USER)
            .unwrap();
    });
    assert_eq!(value(&ns, id, 0), 1, "the lock the dead process held");
    assert_eq!(value(&ns, id, 1), 0);
    assert_eq!(ns.sem_query(id, 0, SemQuery::Pid, &USER), Ok(2));
    // Settled once: a later read, by this process or another, changes nothing.
    ns.semop(id, &[op(1, 4, 0)], &USER).unwrap();
    assert_eq!(value(&ns, id, 1), 4);
    let other = Namespace::open(mem, host.sibling(3)).unwrap();
    assert_eq!(value(&other, id, 1), 4);
    assert_clean(&ns);
}

#[test]
fn a_sleeper_gets_what_a_dead_holder_had_taken_with_sem_undo() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    ns.sem_setval(id, 0, 1, &USER).unwrap();
    let holding = Arc::new(Mutex::new(()));
    let held = holding.lock().unwrap();
    let holder = {
        let holding = Arc::clone(&holding);
        spawn_process(&host, 2, mem, move |ns| {
            ns.semop(id, &[op(0, -1, UNDO)], &USER).unwrap();
            drop(holding.lock().unwrap());
            std::mem::forget(Namespace::open(mem, ns.host().clone()));
        })
    };
    eventually("the holder takes the lock", || value(&ns, id, 0) == 0);
    let sleeper = spawn_process(&host, 3, mem, move |ns| {
        ns.semop(id, &[op(0, -1, UNDO)], &USER)
    });
    eventually("the sleeper waits", || ncnt(&ns, id, 0) == Ok(1));
    drop(held);
    holder.join().unwrap();
    host.kill(2);
    assert_eq!(sleeper.join().unwrap(), Ok(()), "woken by its own recheck");
    assert_eq!(value(&ns, id, 0), 1, "the sleeper left, undoing its own");
    assert_clean(&ns);
}

#[test]
fn a_process_killed_while_waiting_is_reaped_whole() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let queue = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    ns.sem_setval(id, 0, 1, &USER).unwrap();
    // Process 2 takes semaphore 0 (SEM_UNDO), then waits to take more.
    let _waiting = spawn_process(&host, 2, mem, move |ns| {
        ns.semop(id, &[op(0, -1, UNDO)], &USER).unwrap();
        ns.semop(id, &[op(0, -1, 0)], &USER)
    });
    eventually("process 2 waits", || ncnt(&ns, id, 0) == Ok(1));
    // Process 3 waits for a message.
    let used = ns.heap_used();
    let _receiving = spawn_process(&host, 3, mem, move |ns| {
        let mut buf = [0u8; 16];
        ns.msgrcv(queue, 16, 0, 0, &mut buf, &USER)
    });
    eventually("process 3 waits", || ns.heap_used() > used);
    let registered = ns.processes();
    host.kill(2);
    host.kill(3);

    assert_eq!(ns.collect_dead(), 2);
    assert_eq!(ns.processes(), registered - 2, "their slots are free");
    assert_eq!(value(&ns, id, 0), 1, "process 2's adjustment was applied");
    assert_eq!(ncnt(&ns, id, 0), Ok(0), "and its wait left the queue");
    ns.semop(id, &[op(0, -1, NOWAIT)], &USER).unwrap();
    ns.msgsnd(queue, 7, b"kept", 0, &USER).unwrap();
    assert_eq!(
        ns.msg_stat(queue, &USER).unwrap().qnum,
        1,
        "the message stays queued, not handed to the dead receiver"
    );
    assert_eq!(ns.collect_dead(), 0, "reaped once");
    let summary = ns.check(&|_, _| true, &mut |_| {});
    assert_eq!((summary.corrupt, summary.stale), (0, 0));
}
