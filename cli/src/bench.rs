//! `usysv bench`: usysv beside the kernel, measured in the same run.
//!
//! Every row runs the same work on a usysv arena and on the kernel's System V
//! IPC (and, where it is the natural yardstick, on POSIX semaphores), one
//! after the other, and prints both. Processes are made with `fork`; each
//! child opens the arena afresh (a registration is per process), reports a
//! failure on one line and leaves with `_exit`.

use std::time::{Duration, Instant};

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_PRIVATE};
use usysv_platform::usysv_core::sem::SemBuf;
use usysv_platform::usysv_core::Limits;
use usysv_platform::DEFAULT_MODE;
use usysv_platform::{default_arena_path, ArenaFile, Ipc};

use crate::args::Options;
use crate::Failure;

const HELP: &str = "\
usage: usysv bench [--arena PATH] [--seconds S]

Measures usysv and the kernel's System V IPC side by side and prints a table:
  uncontended P+V      one process, semop -1 then +1 (and POSIX sem_wait/sem_post)
  ping-pong            two processes handing a token back and forth
  contention           4 processes taking turns on one binary semaphore
  messages             a producer and a consumer, 8, 64 and 1024 bytes a message
  request/response     a 64-byte message there and back between two processes
  segment life         shmget, shmat, shmdt and IPC_RMID of a 4 KiB segment
S is the time per measurement (default 1). The arena defaults to a fresh
temporary one beside the default arena, removed afterwards.";

/// A semaphore set, in usysv or in the kernel. Failures are one line of text.
trait Sems {
    fn op(&self, num: u16, delta: i16) -> Result<(), String>;
    fn set(&self, num: i32, value: i32) -> Result<(), String>;
}

/// A usysv set, with this process's own registration in the arena.
struct Usysv {
    ipc: Ipc,
    id: i32,
}

impl Sems for Usysv {
    fn op(&self, num: u16, delta: i16) -> Result<(), String> {
        let sop = SemBuf {
            sem_num: num,
            sem_op: delta,
            sem_flg: 0,
        };
        self.ipc
            .semop(self.id, &[sop])
            .map_err(|err| format!("usysv semop: {err}"))
    }

    fn set(&self, num: i32, value: i32) -> Result<(), String> {
        self.ipc
            .semctl_setval(self.id, num, value)
            .map_err(|err| format!("usysv SETVAL: {err}"))
    }
}

/// A kernel set (a handle: [`KernelSet`] owns it).
#[derive(Clone, Copy)]
struct Kernel {
    id: i32,
}

impl Sems for Kernel {
    fn op(&self, num: u16, delta: i16) -> Result<(), String> {
        let mut sop = libc::sembuf {
            sem_num: num,
            sem_op: delta,
            sem_flg: 0,
        };
        // SAFETY: one valid sembuf.
        match unsafe { libc::semop(self.id, &mut sop, 1) } {
            0 => Ok(()),
            _ => Err(format!("kernel semop: {}", std::io::Error::last_os_error())),
        }
    }

    fn set(&self, num: i32, value: i32) -> Result<(), String> {
        // SAFETY: SETVAL takes the value as its fourth (int) argument.
        match unsafe { libc::semctl(self.id, num, libc::SETVAL, value) } {
            0 => Ok(()),
            _ => Err(format!(
                "kernel SETVAL: {}",
                std::io::Error::last_os_error()
            )),
        }
    }
}

/// A kernel set, removed on drop.
struct KernelSet(Kernel);

impl KernelSet {
    fn new(nsems: i32) -> Result<KernelSet, String> {
        // SAFETY: plain system call with integer arguments.
        let id = unsafe { libc::semget(IPC_PRIVATE, nsems, IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(format!(
                "kernel semget: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(KernelSet(Kernel { id }))
    }
}

impl Drop for KernelSet {
    fn drop(&mut self) {
        // SAFETY: removing a set this process created; IPC_RMID takes no fourth argument.
        unsafe { libc::semctl(self.0.id, 0, libc::IPC_RMID) };
    }
}

/// A message queue, in usysv or in the kernel.
trait Queue {
    fn send(&self, mtype: i64, data: &[u8]) -> Result<(), String>;
    fn receive(&self, mtype: i64, buf: &mut [u8]) -> Result<usize, String>;
}

struct UsysvQueue {
    ipc: Ipc,
    id: i32,
}

impl Queue for UsysvQueue {
    fn send(&self, mtype: i64, data: &[u8]) -> Result<(), String> {
        self.ipc
            .msgsnd(self.id, mtype, data, 0)
            .map_err(|err| format!("usysv msgsnd: {err}"))
    }

    fn receive(&self, mtype: i64, buf: &mut [u8]) -> Result<usize, String> {
        self.ipc
            .msgrcv(self.id, buf, mtype, 0)
            .map(|(_, n)| n)
            .map_err(|err| format!("usysv msgrcv: {err}"))
    }
}

/// A kernel queue (a handle: [`KernelQueueOwner`] owns it).
#[derive(Clone, Copy)]
struct KernelQueue {
    id: i32,
}

/// `struct msgbuf` with room for the largest benchmark message.
#[repr(C)]
struct MsgBuf {
    mtype: libc::c_long,
    mtext: [u8; 1024],
}

impl Queue for KernelQueue {
    fn send(&self, mtype: i64, data: &[u8]) -> Result<(), String> {
        let mut msg = MsgBuf {
            mtype,
            mtext: [0; 1024],
        };
        let n = data.len().min(msg.mtext.len());
        msg.mtext[..n].copy_from_slice(&data[..n]);
        // SAFETY: `msg` is a msgbuf with at least `n` bytes of text.
        match unsafe { libc::msgsnd(self.id, (&msg as *const MsgBuf).cast(), n, 0) } {
            0 => Ok(()),
            _ => Err(format!(
                "kernel msgsnd: {}",
                std::io::Error::last_os_error()
            )),
        }
    }

    fn receive(&self, mtype: i64, buf: &mut [u8]) -> Result<usize, String> {
        let mut msg = MsgBuf {
            mtype: 0,
            mtext: [0; 1024],
        };
        let size = buf.len().min(msg.mtext.len());
        // SAFETY: `msg` has room for `size` bytes of text.
        let got =
            unsafe { libc::msgrcv(self.id, (&mut msg as *mut MsgBuf).cast(), size, mtype, 0) };
        if got < 0 {
            return Err(format!(
                "kernel msgrcv: {}",
                std::io::Error::last_os_error()
            ));
        }
        let got = got as usize;
        buf[..got].copy_from_slice(&msg.mtext[..got]);
        Ok(got)
    }
}

/// A kernel queue, removed on drop.
struct KernelQueueOwner(KernelQueue);

impl KernelQueueOwner {
    fn new() -> Result<KernelQueueOwner, String> {
        // SAFETY: plain system call with integer arguments.
        let id = unsafe { libc::msgget(IPC_PRIVATE, IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(format!(
                "kernel msgget: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(KernelQueueOwner(KernelQueue { id }))
    }
}

impl Drop for KernelQueueOwner {
    fn drop(&mut self) {
        // SAFETY: removing a queue this process created; no buffer is passed.
        unsafe { libc::msgctl(self.0.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// Makes a child's own handle on the queue, after the fork.
type ChildQueue<'a> = &'a dyn Fn() -> Result<Box<dyn Queue>, String>;

/// A producer (this process) sends `count` messages of `size` bytes that a
/// consumer (a child) receives; returns messages per second, timed by the
/// consumer from its first message to its last, so that neither side's
/// start-up counts.
fn stream(
    queue: &dyn Queue,
    child_queue: ChildQueue<'_>,
    size: usize,
    count: u32,
) -> Result<f64, String> {
    let pipe = Pipe::new()?;
    let consumer = fork(|| {
        let queue = child_queue()?;
        let mut buf = vec![0u8; size];
        queue.receive(0, &mut buf)?;
        let start = Instant::now();
        for _ in 1..count {
            queue.receive(0, &mut buf)?;
        }
        pipe.send(start.elapsed().as_nanos() as u64);
        Ok(())
    })?;
    pipe.close_sending();
    let data = vec![7u8; size];
    for i in 0..count {
        queue.send(1 + i64::from(i % 4), &data)?;
    }
    let nanos = pipe.receive();
    reap(consumer)?;
    let nanos = nanos.ok_or("the consumer reported no time")?;
    Ok(f64::from(count - 1) * 1e9 / nanos.max(1) as f64)
}

/// A client (this process) sends a 64-byte request of type 1 and waits for
/// the reply of type 2 from a server (a child); returns nanoseconds per
/// round trip.
fn request_response(
    queue: &dyn Queue,
    child_queue: ChildQueue<'_>,
    rounds: u32,
) -> Result<f64, String> {
    let server = fork(|| {
        let queue = child_queue()?;
        let mut buf = [0u8; 64];
        for _ in 0..rounds {
            let n = queue.receive(1, &mut buf)?;
            queue.send(2, &buf[..n])?;
        }
        Ok(())
    })?;
    let request = [1u8; 64];
    let mut reply = [0u8; 64];
    let start = Instant::now();
    for _ in 0..rounds {
        queue.send(1, &request)?;
        queue.receive(2, &mut reply)?;
    }
    let elapsed = start.elapsed();
    reap(server)?;
    Ok(elapsed.as_nanos() as f64 / f64::from(rounds))
}

/// Makes a child's own handle on the semaphores, after the fork.
type ChildSems<'a> = &'a dyn Fn() -> Result<Box<dyn Sems>, String>;

/// Runs `body` repeatedly for about `time` and returns nanoseconds per call.
fn per_call(time: Duration, mut body: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut calls = 0u64;
    let start = Instant::now();
    let mut batch = 1u64;
    while start.elapsed() < time {
        for _ in 0..batch {
            body()?;
        }
        calls += batch;
        batch = (batch * 2).min(1 << 16);
    }
    Ok(start.elapsed().as_nanos() as f64 / calls as f64)
}

fn uncontended(sems: &dyn Sems, time: Duration) -> Result<f64, String> {
    sems.set(0, 1)?;
    per_call(time, || {
        sems.op(0, -1)?;
        sems.op(0, 1)
    })
}

fn posix_uncontended(time: Duration) -> Result<f64, String> {
    let mut sem = std::mem::MaybeUninit::<libc::sem_t>::uninit();
    // SAFETY: initialising a process-private semaphore in memory we own.
    if unsafe { libc::sem_init(sem.as_mut_ptr(), 0, 1) } != 0 {
        return Err(format!("sem_init: {}", std::io::Error::last_os_error()));
    }
    let sem = sem.as_mut_ptr();
    let ns = per_call(time, || {
        // SAFETY: `sem` was initialised above and lives until sem_destroy.
        unsafe {
            libc::sem_wait(sem);
            libc::sem_post(sem);
        }
        Ok(())
    });
    // SAFETY: no one waits on it.
    unsafe { libc::sem_destroy(sem) };
    ns
}

/// Forks a child that runs `child` and leaves with `_exit`: 0, or 1 after
/// printing its failure on one line.
fn fork(child: impl FnOnce() -> Result<(), String>) -> Result<libc::pid_t, String> {
    // SAFETY: the bench is single-threaded when it forks; the child only runs
    // `child` (system calls and the arena) and leaves with `_exit`, running no
    // destructor of the parent's state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let status = match child() {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("usysv: bench process {}: {err}", std::process::id());
                1
            }
        };
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(status) };
    }
    Ok(pid)
}

fn reap(pid: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!(
            "bench process {pid} failed (wait status {status:#x})"
        ))
    }
}

/// A pipe on which bench children report a number to the parent.
struct Pipe {
    fds: [libc::c_int; 2],
}

impl Pipe {
    fn new() -> Result<Pipe, String> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        Ok(Pipe { fds })
    }

    /// In a child: reports `value`.
    fn send(&self, value: u64) {
        let bytes = value.to_ne_bytes();
        // SAFETY: writing 8 bytes from a live buffer to our descriptor.
        unsafe { libc::write(self.fds[1], bytes.as_ptr().cast(), 8) };
    }

    /// In the parent, once the children are forked: closes its own writing
    /// end, so that children that die make [`Pipe::receive`] end instead of
    /// hang.
    fn close_sending(&self) {
        // SAFETY: our own descriptor; the children hold their copies.
        unsafe { libc::close(self.fds[1]) };
    }

    /// The next value a child reported, or `None` when none will come.
    fn receive(&self) -> Option<u64> {
        let mut bytes = [0u8; 8];
        // SAFETY: reading 8 bytes into a live buffer from our descriptor.
        let n = unsafe { libc::read(self.fds[0], bytes.as_mut_ptr().cast(), 8) };
        (n == 8).then(|| u64::from_ne_bytes(bytes))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: our own descriptor (the writing end is closed already, or
        // this is a child leaving with `_exit`, which runs no destructor).
        unsafe { libc::close(self.fds[0]) };
    }
}

/// Two processes pass a token through semaphores 0 and 1; returns
/// nanoseconds per round trip.
fn ping_pong(sems: &dyn Sems, child_sems: ChildSems<'_>, rounds: u32) -> Result<f64, String> {
    sems.set(0, 0)?;
    sems.set(1, 0)?;
    let child = fork(|| {
        let sems = child_sems()?;
        for _ in 0..rounds {
            sems.op(0, -1)?;
            sems.op(1, 1)?;
        }
        Ok(())
    })?;
    let start = Instant::now();
    for _ in 0..rounds {
        sems.op(0, 1)?;
        sems.op(1, -1)?;
    }
    let elapsed = start.elapsed();
    reap(child)?;
    Ok(elapsed.as_nanos() as f64 / f64::from(rounds))
}

/// `workers` processes take turns on binary semaphore 0 for `time`; returns
/// critical sections per second and the least-served worker's count over
/// the most-served's.
fn contention(
    sems: &dyn Sems,
    child_sems: ChildSems<'_>,
    workers: usize,
    time: Duration,
) -> Result<(f64, f64), String> {
    sems.set(0, 1)?;
    let pipe = Pipe::new()?;
    let start_at = Instant::now() + Duration::from_millis(100);
    let children = (0..workers)
        .map(|_| {
            fork(|| {
                let sems = child_sems()?;
                while Instant::now() < start_at {
                    std::hint::spin_loop();
                }
                let end = start_at + time;
                let mut count: u64 = 0;
                while Instant::now() < end {
                    sems.op(0, -1)?;
                    count += 1;
                    sems.op(0, 1)?;
                }
                pipe.send(count);
                Ok(())
            })
        })
        .collect::<Result<Vec<_>, _>>();
    pipe.close_sending();
    let counts: Vec<u64> = (0..workers).map_while(|_| pipe.receive()).collect();
    for child in children? {
        reap(child)?;
    }
    let total: u64 = counts.iter().sum();
    let least = *counts.iter().min().unwrap_or(&0) as f64;
    let most = *counts.iter().max().unwrap_or(&1) as f64;
    Ok((total as f64 / time.as_secs_f64(), least / most.max(1.0)))
}

pub fn run(args: &[&str]) -> Result<(), Failure> {
    if args.iter().any(|a| matches!(*a, "--help" | "-h")) {
        println!("{HELP}");
        return Ok(());
    }
    let opts = Options::parse(args, &["arena", "seconds"])?;
    let seconds = opts.number("seconds")?.unwrap_or(1).clamp(1, 3600);
    let time = Duration::from_secs(seconds);
    let (path, temporary) = match opts.value("arena") {
        Some(path) => (std::path::PathBuf::from(path), false),
        None => {
            // Beside the default arena: on tmpfs, where arenas belong.
            let name = format!("bench-{}", std::process::id());
            (default_arena_path()?.with_file_name(name), true)
        }
    };
    let ipc = Ipc::open(&path, &Limits::default(), DEFAULT_MODE)?;
    let id = ipc
        .semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600)
        .map_err(|err| Failure::failed(format!("semget: {err}")))?;
    let ours = Usysv { ipc, id };
    let kernel = KernelSet::new(2).map_err(Failure::failed)?;
    let child_usysv = || -> Result<Box<dyn Sems>, String> {
        let ipc =
            Ipc::open(&path, &Limits::default(), DEFAULT_MODE).map_err(|err| err.to_string())?;
        Ok(Box::new(Usysv { ipc, id }))
    };
    let theirs = kernel.0;
    let child_kernel = || -> Result<Box<dyn Sems>, String> { Ok(Box::new(theirs)) };
    let measured = measure(&ours, &theirs, &child_usysv, &child_kernel, time, seconds)
        .and_then(|()| measure_messages(&path, seconds))
        .and_then(|()| measure_segments(&ours.ipc, time));
    let _ = ours.ipc.semctl_rmid(id);
    drop(ours);
    drop(kernel);
    if temporary {
        let _ = ArenaFile::remove(&path);
    }
    measured.map_err(Failure::failed)
}

fn measure(
    ours: &Usysv,
    theirs: &Kernel,
    child_usysv: ChildSems<'_>,
    child_kernel: ChildSems<'_>,
    time: Duration,
    seconds: u64,
) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("usysv bench: {cores} cores, {seconds} s per semaphore measurement");
    println!(
        "{:<44} {:>12} {:>12} {:>9}",
        "benchmark", "usysv", "kernel", "speed-up"
    );

    let (u, k) = (uncontended(ours, time)?, uncontended(theirs, time)?);
    row("uncontended semop -1/+1 pair (ns)", u, k, k / u);
    let posix = posix_uncontended(time)?;
    println!(
        "{:<44} {posix:>12.1}",
        "  POSIX sem_wait/sem_post pair (ns)"
    );

    let rounds = (20_000 * seconds) as u32;
    let (u, k) = (
        ping_pong(ours, child_usysv, rounds)?,
        ping_pong(theirs, child_kernel, rounds)?,
    );
    row("two-process ping-pong round trip (ns)", u, k, k / u);

    let (u, k) = (
        contention(ours, child_usysv, 4, time)?,
        contention(theirs, child_kernel, 4, time)?,
    );
    row(
        "4 processes, one binary semaphore (k/s)",
        u.0 / 1e3,
        k.0 / 1e3,
        u.0 / k.0,
    );
    println!(
        "{:<44} {:>12.2} {:>12.2}",
        "  fairness: least / most served", u.1, k.1
    );
    Ok(())
}

fn measure_messages(path: &std::path::Path, seconds: u64) -> Result<(), String> {
    let open = || Ipc::open(path, &Limits::default(), DEFAULT_MODE).map_err(|err| err.to_string());
    let ipc = open()?;
    let id = ipc
        .msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
        .map_err(|err| format!("msgget: {err}"))?;
    let ours = UsysvQueue { ipc, id };
    let kernel = KernelQueueOwner::new()?;
    let theirs = kernel.0;
    let child_usysv =
        || -> Result<Box<dyn Queue>, String> { Ok(Box::new(UsysvQueue { ipc: open()?, id })) };
    let child_kernel = || -> Result<Box<dyn Queue>, String> { Ok(Box::new(theirs)) };
    let scale = seconds.min(u64::from(u32::MAX / 400_000)) as u32;
    for size in [8, 64, 1024] {
        let count = 200_000 * scale;
        let u = stream(&ours, &child_usysv, size, count)?;
        let k = stream(&theirs, &child_kernel, size, count)?;
        row(
            &format!("producer -> consumer, {size}-byte messages (k/s)"),
            u / 1e3,
            k / 1e3,
            u / k,
        );
    }
    let rounds = 20_000 * scale;
    let (u, k) = (
        request_response(&ours, &child_usysv, rounds)?,
        request_response(&theirs, &child_kernel, rounds)?,
    );
    row("64-byte request/response round trip (ns)", u, k, k / u);
    let _ = ours.ipc.msgctl_rmid(id);
    Ok(())
}

/// One whole life of a 4 KiB segment: made, attached, detached, removed.
fn segment_life(
    shmget: impl Fn() -> Result<i32, String>,
    shmat: impl Fn(i32) -> Result<*mut u8, String>,
    shmdt: impl Fn(*mut u8) -> Result<(), String>,
    rmid: impl Fn(i32) -> Result<(), String>,
    time: Duration,
) -> Result<f64, String> {
    per_call(time, || {
        let id = shmget()?;
        let at = shmat(id)?;
        shmdt(at)?;
        rmid(id)
    })
}

fn measure_segments(ipc: &Ipc, time: Duration) -> Result<(), String> {
    let ours = segment_life(
        || {
            ipc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
                .map_err(|err| format!("shmget: {err}"))
        },
        // SAFETY: no SHM_REMAP: nothing mapped is replaced.
        |id| unsafe { ipc.shmat_raw(id, 0, 0) }.map_err(|err| format!("shmat: {err}")),
        // SAFETY: the attachment is not used after.
        |at| unsafe { ipc.shmdt_raw(at) }.map_err(|err| format!("shmdt: {err}")),
        |id| ipc.shmctl_rmid(id).map_err(|err| format!("shmctl: {err}")),
        time,
    )?;
    let os_error = |call: &str| format!("{call}: {}", std::io::Error::last_os_error());
    let theirs = segment_life(
        || {
            // SAFETY: shmget takes no pointers.
            let id = unsafe { libc::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600) };
            if id < 0 {
                return Err(os_error("shmget"));
            }
            Ok(id)
        },
        |id| {
            // SAFETY: a null address lets the kernel choose; nothing is replaced.
            let at = unsafe { libc::shmat(id, std::ptr::null(), 0) };
            if at as isize == -1 {
                return Err(os_error("shmat"));
            }
            Ok(at.cast())
        },
        |at| {
            // SAFETY: the attachment is not used after.
            if unsafe { libc::shmdt(at.cast()) } != 0 {
                return Err(os_error("shmdt"));
            }
            Ok(())
        },
        |id| {
            // SAFETY: IPC_RMID reads no buffer.
            if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
                return Err(os_error("shmctl"));
            }
            Ok(())
        },
        time,
    )?;
    row(
        "4 KiB shmget+shmat+shmdt+IPC_RMID (ns)",
        ours,
        theirs,
        theirs / ours,
    );
    Ok(())
}

fn row(name: &str, ours: f64, theirs: f64, speedup: f64) {
    println!("{name:<44} {ours:>12.1} {theirs:>12.1} {speedup:>8.1}x");
}
