//! usysv's message queues across real processes: a producer and a consumer
//! moving 100,000 messages, a stat server answering several clients on their
//! own queues, and helpers blocked in `msgsnd` and `msgrcv` that are woken,
//! interrupted, or see their queue removed.
//!
//! Every test runs on usysv (an arena file of its own) and on the kernel's
//! System V message queues (the helper takes `kernel` for the arena), so each
//! expectation is checked against the kernel too. A helper is known to be
//! blocked when it sleeps (`/proc/PID/stat`) in the call that blocks it
//! (`/proc/PID/syscall`: `msgsnd`/`msgrcv` on the kernel, `futex` on
//! usysv), never by sleeping; every wait is bounded and every test carries a
//! watchdog.

use std::path::Path;
use std::time::Duration;

use usysv_platform::usysv_core::msg::MSG_COPY;
use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_NOWAIT, IPC_PRIVATE};
use usysv_platform::usysv_core::{Errno, DEFAULT_LIMITS};
use usysv_platform::Ipc;
use usysv_tests::{asleep, eventually, Helper, TempDir, Watchdog, PATIENCE};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-msg-helper");

fn helper(args: &[&str]) -> Helper {
    Helper::spawn(Path::new(HELPER), args)
}

/// What `IPC_STAT` says, in the fields these tests look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    qnum: u64,
    cbytes: u64,
    qbytes: u64,
    lspid: u32,
    lrpid: u32,
}

/// Where the queues live: a usysv arena, or the kernel (whose queues are
/// removed on drop).
enum World {
    Usysv {
        // Declared before `dir`: the arena goes before its directory.
        ipc: Box<Ipc>,
        dir: TempDir,
    },
    Kernel {
        made: Vec<i32>,
        dir: TempDir,
    },
}

use usysv_tests::kernel::checked;

/// `msgctl` on the kernel with a `struct msqid_ds` (or none, for IPC_RMID).
fn kernel_msgctl(id: i32, cmd: i32, ds: Option<&mut libc::msqid_ds>) -> Result<i64, i32> {
    let ptr = ds.map_or(std::ptr::null_mut(), |ds| ds as *mut libc::msqid_ds);
    // SAFETY: `ptr` is null (IPC_RMID reads nothing) or a whole msqid_ds,
    // which the kernel reads or fills in.
    checked(unsafe { libc::msgctl(id, cmd, ptr) }.into())
}

impl World {
    fn usysv(test: &str) -> World {
        let dir = TempDir::new(&format!("msgp-{test}"));
        let ipc = Ipc::open(&dir.join("arena"), &DEFAULT_LIMITS, 0o600).unwrap();
        World::Usysv {
            ipc: Box::new(ipc),
            dir,
        }
    }

    fn kernel(test: &str) -> World {
        World::Kernel {
            made: Vec::new(),
            dir: TempDir::new(&format!("msgp-kernel-{test}")),
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

    /// A key that names no queue yet.
    fn new_key(&self) -> i32 {
        match self {
            World::Usysv { .. } => 0x5157,
            World::Kernel { .. } => {
                // SAFETY: msgget has no memory arguments.
                usysv_tests::kernel::unused_key(|key| unsafe { libc::msgget(key, 0) })
            }
        }
    }

    /// Notes a queue a helper made, for removal if the test does not get to
    /// remove it.
    fn track(&mut self, id: i32) {
        if let World::Kernel { made, .. } = self {
            made.push(id);
        }
    }

    /// A new private queue.
    fn create(&mut self) -> i32 {
        let id = match self {
            World::Usysv { ipc, .. } => ipc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600).unwrap(),
            // SAFETY: msgget has no memory arguments.
            World::Kernel { .. } => {
                checked(unsafe { libc::msgget(IPC_PRIVATE, IPC_CREAT | 0o600) }.into()).unwrap()
                    as i32
            }
        };
        self.track(id);
        id
    }

    fn send(&self, id: i32, mtype: i64, data: &[u8], flags: i32) -> Result<(), i32> {
        match self {
            World::Usysv { ipc, .. } => ipc.msgsnd(id, mtype, data, flags).map_err(Errno::raw),
            World::Kernel { .. } => usysv_tests::kernel::msgsnd(id, mtype, data, flags),
        }
    }

    /// `msgrcv` into a buffer of `bufsz` bytes (at most MSGMAX).
    fn recv(&self, id: i32, bufsz: usize, msgtyp: i64, flags: i32) -> Result<(i64, Vec<u8>), i32> {
        match self {
            World::Usysv { ipc, .. } => {
                let mut buf = vec![0u8; bufsz];
                let (mtype, n) = ipc
                    .msgrcv(id, &mut buf, msgtyp, flags)
                    .map_err(Errno::raw)?;
                buf.truncate(n);
                Ok((mtype, buf))
            }
            World::Kernel { .. } => {
                let mut buf = vec![0u64; 1 + bufsz.div_ceil(8)];
                // SAFETY: `buf` holds a long and `bufsz` bytes, the most the
                // kernel writes (or, with MSG_COPY, reads).
                let ret =
                    unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), bufsz, msgtyp, flags) };
                let n = checked(ret as i64)? as usize;
                // SAFETY: the kernel wrote `n` ≤ `bufsz` bytes after the type.
                let text =
                    unsafe { std::slice::from_raw_parts(buf.as_ptr().add(1).cast::<u8>(), n) };
                Ok((buf[0] as i64, text.to_vec()))
            }
        }
    }

    fn stat(&self, id: i32) -> Result<Stat, i32> {
        match self {
            World::Usysv { ipc, .. } => {
                let ds = ipc.msgctl_stat(id).map_err(Errno::raw)?;
                Ok(Stat {
                    qnum: ds.qnum,
                    cbytes: ds.cbytes,
                    qbytes: ds.qbytes,
                    lspid: ds.lspid as u32,
                    lrpid: ds.lrpid as u32,
                })
            }
            World::Kernel { .. } => {
                // SAFETY: an all-zero msqid_ds is a valid value (integers only).
                let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
                kernel_msgctl(id, libc::IPC_STAT, Some(&mut ds))?;
                Ok(Stat {
                    qnum: ds.msg_qnum,
                    cbytes: ds.__msg_cbytes,
                    qbytes: ds.msg_qbytes,
                    lspid: ds.msg_lspid as u32,
                    lrpid: ds.msg_lrpid as u32,
                })
            }
        }
    }

    /// IPC_SET of msg_qbytes (mode 0600, owner this process).
    fn set_qbytes(&self, id: i32, qbytes: u64) {
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        match self {
            World::Usysv { ipc, .. } => ipc.msgctl_set(id, uid, gid, 0o600, qbytes).unwrap(),
            World::Kernel { .. } => {
                // SAFETY: as in `stat`.
                let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
                ds.msg_perm.uid = uid;
                ds.msg_perm.gid = gid;
                ds.msg_perm.mode = 0o600;
                ds.msg_qbytes = qbytes;
                kernel_msgctl(id, libc::IPC_SET, Some(&mut ds)).unwrap();
            }
        }
    }

    fn rmid(&self, id: i32) -> Result<(), i32> {
        match self {
            World::Usysv { ipc, .. } => ipc.msgctl_rmid(id).map_err(Errno::raw),
            World::Kernel { .. } => kernel_msgctl(id, libc::IPC_RMID, None).map(drop),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let World::Kernel { made, .. } = self {
            for &id in made.iter() {
                // Removed already is fine (EINVAL).
                let _ = kernel_msgctl(id, libc::IPC_RMID, None);
            }
        }
    }
}

/// Whether process `pid` sleeps (state `S`) in the system call a blocked
/// `msgsnd` or `msgrcv` sleeps in: the call itself on the kernel, `futex`
/// on usysv.
fn blocked(pid: u32) -> bool {
    if !asleep(pid) {
        return false;
    }
    let Ok(syscall) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return false;
    };
    let number: Option<libc::c_long> = syscall
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok());
    matches!(number, Some(n) if n == libc::SYS_msgrcv || n == libc::SYS_msgsnd || n == libc::SYS_futex)
}

/// Starts a helper command on queue `id` and waits for its "ready".
fn start(w: &World, command: &str, id: i32, args: &[&str]) -> Helper {
    let arena = w.arena();
    let id = id.to_string();
    let mut all = vec![command, arena.as_str(), id.as_str()];
    all.extend_from_slice(args);
    let mut child = helper(&all);
    assert_eq!(child.line_within(PATIENCE), "ready");
    child
}

/// Starts a helper command that must block, and waits until it does.
fn start_blocked(w: &World, command: &str, id: i32, args: &[&str]) -> Helper {
    let mut child = start(w, command, id, args);
    let pid = child.0.id();
    eventually(&format!("`{command} {args:?}` blocks"), || {
        assert!(!child.exited(), "`{command} {args:?}` did not block");
        blocked(pid)
    });
    child
}

/// Checks that a blocked helper stays blocked a while.
fn stays_blocked(child: &mut Helper) {
    std::thread::sleep(Duration::from_millis(100));
    assert!(!child.exited(), "the helper should still be blocked");
    let pid = child.0.id();
    eventually("the helper still blocks", || blocked(pid));
}

/// Runs a test body on usysv and on the kernel.
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
            fn kernel() {
                let what = concat!(stringify!($name), " (kernel)");
                let _watchdog = Watchdog::new(what, Duration::from_secs(30));
                $body(&mut World::kernel(stringify!($name)));
            }
        }
    };
}

/// A producer process sends 100,000 messages of six types and sizes from 0
/// to MSGMAX through a queue that fills up, and a consumer process takes
/// them in a mix of ways (any type, by type, lowest type, MSG_EXCEPT,
/// MSG_COPY): each type's messages arrive complete, in order, none lost or
/// duplicated, and the two checksums agree.
fn producer_and_consumer_move_messages_intact(w: &mut World) {
    const COUNT: &str = "100000";
    const SEED: &str = "20240611";
    let id = w.create();
    let mut consumer = start(w, "consume", id, &[COUNT, SEED]);
    let mut producer = start(w, "produce", id, &[COUNT, SEED]);
    let produced = producer.line_within(Duration::from_secs(25));
    let consumed = consumer.line_within(Duration::from_secs(25));
    assert!(produced.starts_with("done "), "producer: {produced}");
    assert_eq!(consumed, produced, "what was received is what was sent");
    let counts: u64 = produced
        .rsplit(' ')
        .next()
        .unwrap()
        .split(',')
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, 100_000);
    let (producer_pid, consumer_pid) = (producer.0.id(), consumer.0.id());
    assert!(producer.0.wait().unwrap().success());
    assert!(consumer.0.wait().unwrap().success());
    let stat = w.stat(id).unwrap();
    assert_eq!((stat.qnum, stat.cbytes), (0, 0));
    assert_eq!((stat.lspid, stat.lrpid), (producer_pid, consumer_pid));
    w.rmid(id).unwrap();
}

/// A stat server takes requests on a well-known queue (by key); four client
/// processes at once each make a private reply queue, send requests naming
/// it, and read the answers (newest first, by type) from it: every answer
/// is the right one.
fn stat_server_answers_clients_on_their_own_queues(w: &mut World) {
    const CLIENTS: usize = 4;
    const REQUESTS: &str = "150";
    let files = w.dir().join("files");
    std::fs::create_dir(&files).unwrap();
    let mut paths = Vec::new();
    for (name, size) in [("empty", 0), ("small", 100), ("large", 5000)] {
        let path = files.join(name);
        std::fs::write(&path, vec![b'x'; size]).unwrap();
        paths.push(path.to_str().unwrap().to_string());
    }
    paths.push(files.to_str().unwrap().to_string());
    paths.push(files.join("missing").to_str().unwrap().to_string());

    let key = w.new_key().to_string();
    let mut server = helper(&["stat-server", &w.arena(), &key]);
    let ready = server.line_within(PATIENCE);
    let server_queue: i32 = ready
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("server: {ready}"))
        .parse()
        .unwrap();
    w.track(server_queue);

    let arena = w.arena();
    let mut clients: Vec<Helper> = (0..CLIENTS)
        .map(|client| {
            let client = client.to_string();
            let mut args = vec!["stat-client", &arena, &key, &client, REQUESTS];
            args.extend(paths.iter().map(String::as_str));
            helper(&args)
        })
        .collect();
    let mut reply_queues = Vec::new();
    for client in &mut clients {
        let line = client.line_within(PATIENCE);
        let queue: i32 = line
            .strip_prefix("queue ")
            .unwrap_or_else(|| panic!("client: {line}"))
            .parse()
            .unwrap();
        w.track(queue);
        reply_queues.push(queue);
    }
    for client in &mut clients {
        assert_eq!(
            client.line_within(Duration::from_secs(20)),
            format!("ok {REQUESTS}")
        );
        assert!(client.0.wait().unwrap().success());
    }
    // Each client removed its own queue.
    for queue in reply_queues {
        assert_eq!(w.stat(queue), Err(libc::EINVAL));
    }
    // Shut down: type 2, taken only once no request (type 1) is left.
    w.send(server_queue, 2, b"", 0).unwrap();
    assert_eq!(server.finish(), format!("served {}", 150 * CLIENTS));
    let stat = w.stat(server_queue).unwrap();
    assert_eq!((stat.qnum, stat.lrpid), (0, server.0.id()));
    w.rmid(server_queue).unwrap();
}

/// Removing a queue fails a blocked msgrcv, and a msgsnd blocked on the full
/// queue, with EIDRM.
fn removal_fails_blocked_calls_with_eidrm(w: &mut World) {
    let id = w.create();
    w.set_qbytes(id, 100);
    w.send(id, 1, &[7; 100], 0).unwrap();
    let mut receiver = start_blocked(w, "recv", id, &["100", "2"]);
    let mut sender = start_blocked(w, "send", id, &["1", "10"]);
    w.rmid(id).unwrap();
    assert_eq!(receiver.finish(), "err EIDRM");
    assert_eq!(sender.finish(), "err EIDRM");
    assert_eq!(w.stat(id), Err(libc::EINVAL));
}

/// A sender blocked on a full queue stays blocked while the room made is
/// too small, and goes once a receiver process makes enough; likewise for a
/// queue full by count.
fn blocked_sender_is_woken_when_a_receiver_makes_room(w: &mut World) {
    let id = w.create();
    w.set_qbytes(id, 100);
    w.send(id, 1, &[1; 50], 0).unwrap();
    w.send(id, 2, &[2; 50], 0).unwrap();
    let mut sender = start_blocked(w, "send", id, &["3", "60"]);
    let mut first = start(w, "recv", id, &["100", "1"]);
    assert!(first.finish().starts_with("ok type=1 len=50 "));
    // 50 bytes free: not enough for 60.
    stays_blocked(&mut sender);
    let mut second = start(w, "recv", id, &["100", "2"]);
    assert!(second.finish().starts_with("ok type=2 len=50 "));
    assert_eq!(sender.finish(), "ok");
    let stat = w.stat(id).unwrap();
    assert_eq!((stat.qnum, stat.cbytes), (1, 60));
    assert_eq!(
        (stat.lspid, stat.lrpid),
        (sender.0.id(), second.0.id()),
        "the last sender and receiver"
    );

    // Full by count: msg_qbytes 2 holds two messages, even empty ones.
    let mut taker = start(w, "recv", id, &["100", "0"]);
    assert!(taker.finish().starts_with("ok type=3 len=60 "));
    w.set_qbytes(id, 2);
    w.send(id, 4, b"", 0).unwrap();
    w.send(id, 5, b"", 0).unwrap();
    assert_eq!(w.send(id, 6, b"", IPC_NOWAIT), Err(libc::EAGAIN));
    let mut sender = start_blocked(w, "send", id, &["6", "0"]);
    let mut taker = start(w, "recv", id, &["100", "5"]);
    assert_eq!(taker.finish(), "ok type=5 len=0 data=");
    assert_eq!(sender.finish(), "ok");
    let stat = w.stat(id).unwrap();
    assert_eq!((stat.qnum, stat.cbytes, stat.qbytes), (2, 0, 2));
    assert_eq!(w.recv(id, 10, 0, IPC_NOWAIT), Ok((4, Vec::new())));
    assert_eq!(w.recv(id, 10, 0, IPC_NOWAIT), Ok((6, Vec::new())));
    w.rmid(id).unwrap();
}

/// A signal whose handler has SA_RESTART still ends a blocked msgrcv (and a
/// blocked msgsnd) with EINTR: System V calls are never restarted. The
/// interrupted calls take and leave nothing.
fn a_signal_interrupts_blocked_calls_despite_sa_restart(w: &mut World) {
    let id = w.create();
    let mut receiver = start_blocked(w, "recv", id, &["sigusr1", "100", "0"]);
    // SAFETY: signalling our own unreaped child.
    assert_eq!(
        unsafe { libc::kill(receiver.0.id() as libc::pid_t, libc::SIGUSR1) },
        0
    );
    assert_eq!(receiver.finish(), "err EINTR handled=1");
    // Nobody waits any more: a message sent now stays.
    w.send(id, 1, b"after", 0).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let stat = w.stat(id).unwrap();
    assert_eq!((stat.qnum, stat.lrpid), (1, 0));

    w.set_qbytes(id, 5);
    let mut sender = start_blocked(w, "send", id, &["sigusr1", "2", "3"]);
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::kill(sender.0.id() as libc::pid_t, libc::SIGUSR1) },
        0
    );
    assert_eq!(sender.finish(), "err EINTR handled=1");
    let stat = w.stat(id).unwrap();
    assert_eq!((stat.qnum, stat.cbytes), (1, 5));
    assert_eq!(w.recv(id, 10, 0, IPC_NOWAIT), Ok((1, b"after".to_vec())));
    w.rmid(id).unwrap();
}

/// Blocked receivers get what their type and buffer allow: one waiting for
/// type 2 ignores a type 1; one whose buffer is too small gets E2BIG from a
/// large message, which stays queued; MSG_NOERROR truncates; MSG_EXCEPT
/// ignores its own type.
fn blocked_receivers_get_what_their_type_and_buffer_allow(w: &mut World) {
    let id = w.create();
    let mut typed = start_blocked(w, "recv", id, &["100", "2"]);
    let mut small = start_blocked(w, "recv", id, &["4", "0"]);
    w.send(id, 1, b"0123456789", 0).unwrap();
    assert_eq!(small.finish(), "err E2BIG");
    stays_blocked(&mut typed);
    assert_eq!(w.stat(id).unwrap().qnum, 1, "the large message stays");
    w.send(id, 2, b"two", 0).unwrap();
    assert_eq!(typed.finish(), "ok type=2 len=3 data=two");
    let stat = w.stat(id).unwrap();
    assert_eq!(
        (stat.qnum, stat.lspid, stat.lrpid),
        (1, std::process::id(), typed.0.id()),
        "the waiting receiver is the last receiver"
    );

    let mut truncating = start_blocked(w, "recv", id, &["4", "5", "noerror"]);
    w.send(id, 5, b"abcdefghij", 0).unwrap();
    assert_eq!(truncating.finish(), "ok type=5 len=4 data=abcd");
    let stat = w.stat(id).unwrap();
    assert_eq!(
        (stat.qnum, stat.cbytes),
        (1, 10),
        "truncated and gone whole"
    );

    let mut except = start_blocked(w, "recv", id, &["100", "1", "except"]);
    w.send(id, 1, b"one", 0).unwrap();
    stays_blocked(&mut except);
    w.send(id, 3, b"three", 0).unwrap();
    assert_eq!(except.finish(), "ok type=3 len=5 data=three");

    // A lowest-type receiver waits for a type low enough.
    let (_, _) = w.recv(id, 100, 1, IPC_NOWAIT).unwrap();
    let (_, _) = w.recv(id, 100, 1, IPC_NOWAIT).unwrap();
    w.send(id, 9, b"nine", 0).unwrap();
    let mut lowest = start_blocked(w, "recv", id, &["100", "-4"]);
    w.send(id, 7, b"seven", 0).unwrap();
    stays_blocked(&mut lowest);
    w.send(id, 4, b"four", 0).unwrap();
    assert_eq!(lowest.finish(), "ok type=4 len=4 data=four");
    assert_eq!(
        w.recv(id, 100, 0, IPC_NOWAIT | MSG_COPY),
        Ok((9, b"nine".to_vec()))
    );
    assert_eq!(w.stat(id).unwrap().qnum, 2);
    w.rmid(id).unwrap();
}

/// Three receivers block in turn on a queue; each message sent goes to the
/// one that has waited longest.
fn waiting_receivers_are_served_in_arrival_order(w: &mut World) {
    let id = w.create();
    let mut receivers: Vec<Helper> = (0..3)
        .map(|_| start_blocked(w, "recv", id, &["100", "0"]))
        .collect();
    let mut left: Vec<usize> = (0..3).collect();
    let mut order = Vec::new();
    for round in 0..3 {
        w.send(id, 1, format!("m{round}").as_bytes(), 0).unwrap();
        let mut gone = None;
        eventually("a receiver gets the message", || {
            gone = left.iter().copied().find(|&i| receivers[i].exited());
            gone.is_some()
        });
        let gone = gone.unwrap();
        assert_eq!(
            receivers[gone].read_line(),
            format!("ok type=1 len=2 data=m{round}")
        );
        left.retain(|&i| i != gone);
        order.push(gone);
        for &i in &left {
            stays_blocked(&mut receivers[i]);
        }
    }
    assert_eq!(order, [0, 1, 2], "first come, first served");
    w.rmid(id).unwrap();
}

both!(a_producer_and_a_consumer_move_100000_messages_intact => producer_and_consumer_move_messages_intact);
both!(a_stat_server_answers_concurrent_clients_on_their_own_queues => stat_server_answers_clients_on_their_own_queues);
both!(removing_the_queue_fails_blocked_calls_with_eidrm => removal_fails_blocked_calls_with_eidrm);
both!(a_blocked_sender_is_woken_when_a_receiver_makes_room => blocked_sender_is_woken_when_a_receiver_makes_room);
both!(a_signal_with_sa_restart_still_interrupts_msgrcv_and_msgsnd => a_signal_interrupts_blocked_calls_despite_sa_restart);
both!(blocked_receivers_get_what_their_type_and_buffer_allow => blocked_receivers_get_what_their_type_and_buffer_allow);

mod waiting_receivers_are_served_in_arrival_order {
    use super::*;

    #[test]
    fn usysv() {
        let _watchdog = Watchdog::new("arrival order (usysv)", Duration::from_secs(30));
        waiting_receivers_are_served_in_arrival_order(&mut World::usysv("arrival-order"));
    }

    #[test]
    fn kernel() {
        let _watchdog = Watchdog::new("arrival order (kernel)", Duration::from_secs(30));
        waiting_receivers_are_served_in_arrival_order(&mut World::kernel("arrival-order"));
    }
}
