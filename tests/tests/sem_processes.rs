//! usysv's semaphores across real processes: helpers block in `semop`, are
//! woken, time out, are interrupted, see their set removed, and share a
//! counter under a binary semaphore.
//!
//! Every test runs three times: on usysv (an arena file of its own) with
//! small sets, whose semaphores live in the object slot; on usysv with sets
//! of at least 32 semaphores, which live in the heap; and on the kernel's
//! System V semaphores (the helper takes `kernel` for the arena), so each
//! expectation is checked against the kernel too. Blocked helpers are found
//! by polling GETNCNT/GETZCNT (and `/proc/PID/stat`), never by sleeping;
//! every wait is bounded and every test carries a watchdog.

use std::path::Path;
use std::time::{Duration, Instant};

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_PRIVATE};
use usysv_platform::usysv_core::sem::{SemBuf, SemQuery};
use usysv_platform::usysv_core::Errno;
use usysv_platform::Ipc;
use usysv_tests::{asleep, eventually, Helper, TempDir, Watchdog, PATIENCE, SMALL_LIMITS};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-test-helper");

fn helper(args: &[&str]) -> Helper {
    Helper::spawn(Path::new(HELPER), args)
}

/// Where the semaphores live: a usysv arena, or the kernel (whose sets are
/// removed on drop).
enum World {
    Usysv {
        // Declared before `dir`: the arena goes before its directory.
        ipc: Box<Ipc>,
        dir: TempDir,
        /// Every set made has at least this many semaphores.
        min_nsems: i32,
    },
    Kernel {
        made: Vec<i32>,
        dir: TempDir,
    },
}

use usysv_tests::kernel::last_errno;

fn checked(ret: libc::c_int) -> Result<i32, i32> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

impl World {
    fn usysv(test: &str) -> World {
        let dir = TempDir::new(&format!("semp-{test}"));
        let ipc = Ipc::open(&dir.join("arena"), &SMALL_LIMITS, 0o600).unwrap();
        World::Usysv {
            ipc: Box::new(ipc),
            dir,
            min_nsems: 1,
        }
    }

    /// usysv, with sets too large to keep their semaphores in the object
    /// slot (usysv's inline fast path holds up to 29): the heap path.
    fn usysv_large_sets(test: &str) -> World {
        let mut world = World::usysv(&format!("{test}-large"));
        if let World::Usysv { min_nsems, .. } = &mut world {
            *min_nsems = 32;
        }
        world
    }

    fn kernel(test: &str) -> World {
        World::Kernel {
            made: Vec::new(),
            dir: TempDir::new(&format!("semp-kernel-{test}")),
        }
    }

    /// The helpers' ARENA argument.
    fn arena(&self) -> String {
        match self {
            World::Usysv { ipc, .. } => ipc.file().path().to_str().unwrap().to_string(),
            World::Kernel { .. } => "kernel".to_string(),
        }
    }

    /// A directory for the test's own files.
    fn dir(&self) -> &TempDir {
        match self {
            World::Usysv { dir, .. } | World::Kernel { dir, .. } => dir,
        }
    }

    /// A new private set of `nsems` semaphores, all zero.
    fn create(&mut self, nsems: i32) -> i32 {
        match self {
            World::Usysv { ipc, min_nsems, .. } => ipc
                .semget(IPC_PRIVATE, nsems.max(*min_nsems), IPC_CREAT | 0o600)
                .unwrap(),
            World::Kernel { made, .. } => {
                // SAFETY: semget has no memory arguments.
                let id = checked(unsafe { libc::semget(IPC_PRIVATE, nsems, IPC_CREAT | 0o600) })
                    .unwrap();
                made.push(id);
                id
            }
        }
    }

    fn semop(&self, id: i32, ops: &[SemBuf]) -> Result<(), i32> {
        match self {
            World::Usysv { ipc, .. } => ipc.semop(id, ops).map_err(Errno::raw),
            World::Kernel { .. } => {
                // SAFETY: `SemBuf` has the layout of `struct sembuf`; the
                // kernel reads `ops.len()` of them.
                let ret = unsafe { libc::semop(id, ops.as_ptr() as *mut libc::sembuf, ops.len()) };
                checked(ret).map(drop)
            }
        }
    }

    fn query(&self, id: i32, num: i32, query: SemQuery) -> Result<i32, i32> {
        match self {
            World::Usysv { ipc, .. } => ipc.semctl_query(id, num, query).map_err(Errno::raw),
            World::Kernel { .. } => {
                let cmd = match query {
                    SemQuery::Value => libc::GETVAL,
                    SemQuery::Pid => libc::GETPID,
                    SemQuery::WaitingToDecrease => libc::GETNCNT,
                    SemQuery::WaitingForZero => libc::GETZCNT,
                };
                // SAFETY: these commands take no argument.
                checked(unsafe { libc::semctl(id, num, cmd, 0 as libc::c_long) })
            }
        }
    }

    fn getval(&self, id: i32, num: i32) -> i32 {
        self.query(id, num, SemQuery::Value).unwrap()
    }

    fn getpid(&self, id: i32, num: i32) -> u32 {
        self.query(id, num, SemQuery::Pid).unwrap() as u32
    }

    fn ncnt(&self, id: i32, num: i32) -> i32 {
        self.query(id, num, SemQuery::WaitingToDecrease).unwrap()
    }

    fn zcnt(&self, id: i32, num: i32) -> i32 {
        self.query(id, num, SemQuery::WaitingForZero).unwrap()
    }

    fn setval(&self, id: i32, num: i32, value: i32) {
        match self {
            World::Usysv { ipc, .. } => ipc.semctl_setval(id, num, value).unwrap(),
            World::Kernel { .. } => {
                // SAFETY: SETVAL reads `union semun` as an integer.
                let ret = unsafe { libc::semctl(id, num, libc::SETVAL, libc::c_long::from(value)) };
                checked(ret).unwrap();
            }
        }
    }

    fn rmid(&self, id: i32) {
        match self {
            World::Usysv { ipc, .. } => ipc.semctl_rmid(id).unwrap(),
            World::Kernel { .. } => {
                // SAFETY: IPC_RMID takes no argument.
                checked(unsafe { libc::semctl(id, 0, libc::IPC_RMID, 0 as libc::c_long) }).unwrap();
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let World::Kernel { made, .. } = self {
            for &id in made.iter() {
                // Removed already is fine (EINVAL).
                // SAFETY: IPC_RMID takes no argument.
                unsafe { libc::semctl(id, 0, libc::IPC_RMID, 0 as libc::c_long) };
            }
        }
    }
}

fn op(num: u16, op: i16) -> SemBuf {
    SemBuf {
        sem_num: num,
        sem_op: op,
        sem_flg: 0,
    }
}

/// Starts `semop ARENA ID ARGS…` and waits for its "ready".
fn start_semop(w: &World, id: i32, args: &[&str]) -> Helper {
    let arena = w.arena();
    let id = id.to_string();
    let mut all = vec!["semop", arena.as_str(), id.as_str()];
    all.extend_from_slice(args);
    let mut child = helper(&all);
    assert_eq!(child.read_line(), "ready");
    child
}

/// Runs a test body on usysv (with small sets, and with large ones) and on
/// the kernel.
macro_rules! both {
    ($name:ident => $body:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn usysv() {
                let what = concat!(stringify!($name), " (usysv)");
                let _watchdog = Watchdog::new(what, Duration::from_secs(30));
                $body(&mut World::usysv(stringify!($name)));
            }

            #[test]
            fn usysv_large_set() {
                let what = concat!(stringify!($name), " (usysv, large set)");
                let _watchdog = Watchdog::new(what, Duration::from_secs(30));
                $body(&mut World::usysv_large_sets(stringify!($name)));
            }

            #[test]
            fn kernel() {
                let what = concat!(stringify!($name), " (kernel)");
                let _watchdog = Watchdog::new(what, Duration::from_secs(30));
                $body(&mut World::kernel(stringify!($name)));
            }
        }
    };
}

/// A helper blocked on -2 stays blocked after +1 and goes after another +1;
/// the waker completes its operation (value and sempid) before returning.
fn blocked_semop_is_woken_by_another_process(w: &mut World) {
    let id = w.create(2);
    let mut waiter = start_semop(w, id, &["0:-2"]);
    eventually("the helper waits", || w.ncnt(id, 0) == 1);
    w.semop(id, &[op(0, 1)]).unwrap();
    assert_eq!(
        (w.getval(id, 0), w.ncnt(id, 0)),
        (1, 1),
        "one unit is not enough"
    );
    assert!(!waiter.exited());
    w.semop(id, &[op(0, 1)]).unwrap();
    assert_eq!(
        (w.getval(id, 0), w.ncnt(id, 0)),
        (0, 0),
        "completed by the waker"
    );
    assert_eq!(w.getpid(id, 0), waiter.0.id(), "sempid is the waiter's");
    assert_eq!(waiter.finish(), "ok");

    // Waiting for zero, likewise.
    w.setval(id, 1, 2);
    let mut zero = start_semop(w, id, &["1:0"]);
    eventually("the helper waits for zero", || w.zcnt(id, 1) == 1);
    w.semop(id, &[op(1, -1)]).unwrap();
    assert_eq!(w.zcnt(id, 1), 1);
    w.semop(id, &[op(1, -1)]).unwrap();
    assert_eq!(w.zcnt(id, 1), 0);
    assert_eq!(w.getpid(id, 1), zero.0.id());
    assert_eq!(zero.finish(), "ok");
    w.rmid(id);
}

/// Four helpers queue on -1 in a known order; each +1 lets exactly the
/// first remaining one through.
fn waiters_are_woken_in_fifo_order(w: &mut World) {
    let id = w.create(1);
    let mut waiters: Vec<Helper> = Vec::new();
    for queued in 1..=4 {
        waiters.push(start_semop(w, id, &["0:-1"]));
        eventually("the helper joins the queue", || w.ncnt(id, 0) == queued);
    }
    let mut order = Vec::new();
    let mut left: Vec<usize> = (0..4).collect();
    for round in 0..4 {
        w.semop(id, &[op(0, 1)]).unwrap();
        assert_eq!(w.ncnt(id, 0), 3 - round);
        assert_eq!(w.getval(id, 0), 0);
        let through = w.getpid(id, 0);
        // The one that got through exits; the others stay blocked.
        let mut gone = None;
        eventually("a helper gets through", || {
            gone = left.iter().copied().find(|&i| waiters[i].exited());
            gone.is_some()
        });
        let gone = gone.unwrap();
        assert_eq!(
            waiters[gone].0.id(),
            through,
            "sempid names the one that went"
        );
        assert_eq!(waiters[gone].read_line(), "ok");
        left.retain(|&i| i != gone);
        order.push(gone);
    }
    assert_eq!(order, [0, 1, 2, 3], "first come, first served");
    w.rmid(id);
}

/// Removing the set fails every blocked call with EIDRM.
fn removal_fails_blocked_calls_with_eidrm(w: &mut World) {
    let id = w.create(2);
    w.setval(id, 1, 1);
    let mut down = start_semop(w, id, &["0:-1"]);
    let mut zero = start_semop(w, id, &["1:0"]);
    let mut timed = start_semop(w, id, &["timeout=20000", "0:-1", "1:-1"]);
    eventually("three helpers wait", || {
        w.ncnt(id, 0) == 2 && w.zcnt(id, 1) == 1
    });
    w.rmid(id);
    assert_eq!(down.finish(), "err EIDRM");
    assert_eq!(zero.finish(), "err EIDRM");
    assert!(timed.finish().starts_with("err EIDRM "));
}

/// A signal whose handler has SA_RESTART still ends a blocked semop with
/// EINTR: System V calls are never restarted. The waiter leaves the queue.
fn a_signal_interrupts_semop_despite_sa_restart(w: &mut World) {
    let id = w.create(1);
    let mut waiter = start_semop(w, id, &["sigusr1", "0:-1"]);
    let pid = waiter.0.id();
    eventually("the helper sleeps in semop", || {
        w.ncnt(id, 0) == 1 && asleep(pid)
    });
    // SAFETY: signalling our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) }, 0);
    assert_eq!(waiter.finish(), "err EINTR handled=1");
    assert_eq!(w.ncnt(id, 0), 0, "the interrupted call left the queue");
    // Nothing is owed to it: a unit added now stays.
    w.semop(id, &[op(0, 1)]).unwrap();
    assert_eq!(w.getval(id, 0), 1);
    w.rmid(id);
}

/// semtimedop gives up with EAGAIN once its timeout passes, and goes through
/// if it can before then.
fn semtimedop_times_out_with_eagain(w: &mut World) {
    let id = w.create(1);
    let start = Instant::now();
    let mut waiter = start_semop(w, id, &["timeout=200", "0:-1"]);
    let line = waiter.finish();
    let ms: u64 = line
        .strip_prefix("err EAGAIN ms=")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    assert!((200..2000).contains(&ms), "{ms} ms for a 200 ms timeout");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!((w.ncnt(id, 0), w.getval(id, 0)), (0, 0));

    let mut waiter = start_semop(w, id, &["timeout=20000", "0:-1"]);
    eventually("the helper waits", || w.ncnt(id, 0) == 1);
    w.semop(id, &[op(0, 1)]).unwrap();
    let line = waiter.finish();
    let ms: u64 = line
        .strip_prefix("ok ms=")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    assert!(ms < 20000);
    assert_eq!(w.getval(id, 0), 0);
    w.rmid(id);
}

/// Eight helpers each add 1 to a counter in a file N times, by pread and
/// pwrite, holding a binary SEM_UNDO semaphore around each read-modify-write:
/// the total is exact and the semaphore ends at 1.
fn a_binary_semaphore_keeps_a_shared_counter_exact(w: &mut World) {
    const HELPERS: usize = 8;
    const ROUNDS: u64 = 250;
    let id = w.create(2);
    w.setval(id, 0, 1);
    let counter = w.dir().join("counter");
    std::fs::write(&counter, 0u64.to_le_bytes()).unwrap();
    let arena = w.arena();
    let id_text = id.to_string();
    let rounds = ROUNDS.to_string();
    let mut workers: Vec<Helper> = (0..HELPERS)
        .map(|_| {
            helper(&[
                "counter",
                &arena,
                &id_text,
                counter.to_str().unwrap(),
                &rounds,
            ])
        })
        .collect();
    for worker in &mut workers {
        assert_eq!(worker.read_line(), "ready");
    }
    // All at the starting gate, then off at once.
    eventually("every helper is at the gate", || {
        w.ncnt(id, 1) == HELPERS as i32
    });
    w.semop(id, &[op(1, HELPERS as i16)]).unwrap();
    for worker in &mut workers {
        assert_eq!(worker.line_within(Duration::from_secs(20)), "done");
    }
    for worker in &mut workers {
        assert!(worker.0.wait().unwrap().success());
    }
    let bytes: [u8; 8] = std::fs::read(&counter).unwrap().try_into().unwrap();
    assert_eq!(u64::from_le_bytes(bytes), HELPERS as u64 * ROUNDS);
    assert_eq!(w.getval(id, 0), 1);
    assert_eq!(w.getval(id, 1), 0);
    assert_eq!((w.ncnt(id, 0), w.ncnt(id, 1)), (0, 0));
    w.rmid(id);
}

/// SEM_UNDO adjustments are applied when the process exits, each result
/// clamped at 0; SETVAL clears them.
fn sem_undo_is_applied_at_exit(w: &mut World) {
    let id = w.create(2);
    w.setval(id, 0, 5);
    let mut down = start_semop(w, id, &["0:-1:undo"]);
    assert_eq!(down.finish(), "ok");
    assert_eq!(w.getval(id, 0), 5, "the -1 was undone at exit");

    // +3 with undo, then wait at a gate (semaphore 1) to be let go.
    let mut up = start_semop(w, id, &["0:3:undo", "then", "1:-1"]);
    assert_eq!(up.line_within(PATIENCE), "ok");
    assert_eq!(w.getval(id, 0), 8);
    eventually("the helper waits at the gate", || w.ncnt(id, 1) == 1);
    w.semop(id, &[op(0, -8)]).unwrap();
    w.semop(id, &[op(1, 1)]).unwrap();
    assert_eq!(up.finish(), "ok");
    assert_eq!(w.getval(id, 0), 0, "-3 applied to 0 is clamped to 0");

    let mut reset = start_semop(w, id, &["0:2:undo", "then", "1:-1"]);
    assert_eq!(reset.line_within(PATIENCE), "ok");
    eventually("the helper waits at the gate", || w.ncnt(id, 1) == 1);
    w.setval(id, 0, 7);
    w.semop(id, &[op(1, 1)]).unwrap();
    assert_eq!(reset.finish(), "ok");
    assert_eq!(w.getval(id, 0), 7, "SETVAL cleared the adjustment");
    w.rmid(id);
}

/// A process killed with SIGKILL has its SEM_UNDO adjustments applied too.
fn sem_undo_of_a_killed_process_is_applied(w: &mut World) {
    let id = w.create(1);
    let mut holder = start_semop(w, id, &["park", "0:4:undo"]);
    assert_eq!(holder.line_within(PATIENCE), "ok");
    assert_eq!(w.getval(id, 0), 4);
    holder.sigkill();
    holder.0.wait().unwrap();
    eventually("the killed process's +4 is undone", || w.getval(id, 0) == 0);
    w.rmid(id);
}

both!(sem_undo_adjustments_are_applied_when_a_process_exits => sem_undo_is_applied_at_exit);

mod sem_undo_of_a_killed_process_is_applied {
    use super::*;

    #[test]
    #[ignore = "usysv differs until issue 7 (reaping): a process killed with SIGKILL keeps its SEM_UNDO adjustments"]
    fn usysv() {
        let _watchdog = Watchdog::new("killed undo (usysv)", Duration::from_secs(30));
        sem_undo_of_a_killed_process_is_applied(&mut World::usysv("killed-undo"));
    }

    #[test]
    #[ignore = "usysv differs until issue 7 (reaping): a process killed with SIGKILL keeps its SEM_UNDO adjustments"]
    fn usysv_large_set() {
        let _watchdog = Watchdog::new("killed undo (usysv, large)", Duration::from_secs(30));
        sem_undo_of_a_killed_process_is_applied(&mut World::usysv_large_sets("killed-undo"));
    }

    #[test]
    fn kernel() {
        let _watchdog = Watchdog::new("killed undo (kernel)", Duration::from_secs(30));
        sem_undo_of_a_killed_process_is_applied(&mut World::kernel("killed-undo"));
    }
}

both!(a_blocked_semop_is_woken_by_another_process => blocked_semop_is_woken_by_another_process);
both!(four_waiters_are_woken_in_fifo_order => waiters_are_woken_in_fifo_order);
both!(removing_the_set_fails_blocked_calls_with_eidrm => removal_fails_blocked_calls_with_eidrm);
both!(a_signal_with_sa_restart_still_interrupts_semop => a_signal_interrupts_semop_despite_sa_restart);
both!(semtimedop_in_a_helper_times_out_with_eagain => semtimedop_times_out_with_eagain);
both!(a_binary_semaphore_keeps_a_counter_exact_across_8_processes => a_binary_semaphore_keeps_a_shared_counter_exact);
