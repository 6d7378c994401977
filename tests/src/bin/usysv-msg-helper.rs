//! A process for the message-queue tests (`msg_kernel.rs`, `msg_processes.rs`)
//! to start.
//!
//! usage: usysv-msg-helper COMMAND ARENA [ARGS]
//!
//! ARENA is a usysv arena file, or `kernel` for the kernel's own System V
//! message queues (through libc). Every command prints its results one line
//! at a time; a call's result is "ok …" or "err ENAME".
//!
//!   produce ARENA ID COUNT SEED
//!                          print "ready", then send COUNT messages of mixed
//!                          types (1 to 6; type 6 always empty) and sizes (0
//!                          to MSGMAX) to queue ID, blocking when it is full,
//!                          each carrying its number within its type; then
//!                          print "done SUM COUNTS" (the sum of every
//!                          message's hash, and how many of each type)
//!   consume ARENA ID COUNT SEED
//!                          print "ready", then receive COUNT messages from
//!                          queue ID in a mix of ways (any type, by type,
//!                          lowest type, MSG_EXCEPT, MSG_COPY then a receive
//!                          of the same message), checking each message's
//!                          contents and that each type's numbers come in
//!                          order with none missing; then check that the
//!                          queue is empty and print "done SUM COUNTS", or
//!                          at the first fault "err WHAT" (and exit 1)
//!   stat-server ARENA KEY  create queue KEY (IPC_CREAT | IPC_EXCL), print
//!                          "ready ID", then serve requests (type 1: a reply
//!                          queue id, a request number and a path) by
//!                          sending the path's stat(2) — or its errno — to
//!                          the reply queue as a message whose type is the
//!                          request number + 1, taking requests before a
//!                          shutdown (type 2, receive type -2); on shutdown
//!                          print "served N"
//!   stat-client ARENA KEY CLIENT N PATH...
//!                          find queue KEY, create a private reply queue and
//!                          print "queue ID", then make N requests for the
//!                          PATHs in batches of 1 to 3, reading each batch's
//!                          answers newest first (by type), and check every
//!                          answer against its own stat(2); remove the reply
//!                          queue and print "ok N" (or "err WHAT", exit 1)
//!   recv ARENA ID [sigusr1] BUFSZ MSGTYP [nowait|noerror|except|copy]...
//!                          print "ready", make one msgrcv and print its
//!                          result: "ok type=T len=L data=TEXT" or "err
//!                          ENAME", then " handled=N" with `sigusr1` (a
//!                          SIGUSR1 handler, installed with SA_RESTART,
//!                          counts its calls)
//!   send ARENA ID [sigusr1] MTYPE LEN [nowait]
//!                          print "ready", send one message of LEN bytes and
//!                          print "ok" or "err ENAME" (and " handled=N")
//!   perm-probe ARENA KEY ID (capless | as=UID:GID) MODE
//!                          drop CAP_IPC_OWNER and CAP_SYS_ADMIN from the
//!                          effective set (`capless`) or become UID:GID with
//!                          no supplementary groups, then try every call on
//!                          queue ID (key KEY, made by root, mode MODE, whose
//!                          first message is the 5 bytes "probe" of type 7),
//!                          one line per call ("what = result"), and "end";
//!                          as UID:GID, IPC_RMID last
//!
//! Every command gives up after 60 seconds (SIGALRM), so a helper that a broken
//! test forgets can never outlive it for long.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use usysv_platform::usysv_core::msg::{MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE};
use usysv_platform::usysv_core::{Errno, DEFAULT_LIMITS};
use usysv_platform::{Credentials, Ipc};
use usysv_tests::Rng;

fn main() {
    // SAFETY: alarm only schedules SIGALRM, whose default action ends the process.
    unsafe { libc::alarm(60) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, arena, rest @ ..] = args.as_slice() else {
        eprintln!("usage: usysv-msg-helper COMMAND ARENA [ARGS]");
        std::process::exit(2);
    };
    match command.as_str() {
        "produce" => produce(arena, rest),
        "consume" => consume(arena, rest),
        "stat-server" => stat_server(arena, rest),
        "stat-client" => stat_client(arena, rest),
        "recv" => recv(arena, rest),
        "send" => send(arena, rest),
        "perm-probe" => perm_probe(arena, rest),
        other => {
            eprintln!("usysv-msg-helper: unknown command {other}");
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------------------
// The two worlds.

/// Where the queues live.
enum World {
    Kernel,
    Usysv(Box<Ipc>, Credentials),
}

use usysv_tests::kernel::checked;

fn raw<T>(result: Result<T, Errno>) -> Result<T, i32> {
    result.map_err(Errno::raw)
}

/// MSGMAX, the same in both worlds (usysv's arenas are made with the
/// kernel's limits).
fn msgmax() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_LIMITS.msgmax as usize)
}

/// What `IPC_STAT` says, in the fields the probe shows.
struct Stat {
    mode: u32,
    qnum: u64,
    cbytes: u64,
    qbytes: u64,
}

impl World {
    fn open(arena: &str) -> World {
        if arena == "kernel" {
            return World::Kernel;
        }
        let ipc = Ipc::open(Path::new(arena), &DEFAULT_LIMITS, 0o600)
            .unwrap_or_else(|err| panic!("{err}"));
        World::Usysv(Box::new(ipc), Credentials::current())
    }

    fn msgget(&self, key: i32, flags: i32) -> Result<i32, i32> {
        match self {
            // SAFETY: msgget has no memory arguments.
            World::Kernel => {
                checked(unsafe { libc::msgget(key, flags) }.into()).map(|id| id as i32)
            }
            World::Usysv(ipc, _) => raw(ipc.msgget(key, flags)),
        }
    }

    fn send(&self, id: i32, mtype: i64, data: &[u8], flags: i32) -> Result<(), i32> {
        match self {
            World::Kernel => usysv_tests::kernel::msgsnd(id, mtype, data, flags),
            World::Usysv(ipc, _) => raw(ipc.msgsnd(id, mtype, data, flags)),
        }
    }

    /// `msgrcv` with buffer size `bufsz` (any value): the type and the text.
    fn recv(&self, id: i32, bufsz: i64, msgtyp: i64, flags: i32) -> Result<(i64, Vec<u8>), i32> {
        let max = msgmax();
        match self {
            World::Kernel => {
                let mut buf = vec![0u64; 1 + max.div_ceil(8)];
                // SAFETY: `buf` holds a long and MSGMAX bytes; the kernel
                // writes (and with MSG_COPY reads) at most that many.
                let ret = unsafe {
                    libc::msgrcv(id, buf.as_mut_ptr().cast(), bufsz as usize, msgtyp, flags)
                };
                let n = checked(ret as i64)? as usize;
                // SAFETY: the kernel wrote `n` ≤ MSGMAX bytes after the type.
                let text =
                    unsafe { std::slice::from_raw_parts(buf.as_ptr().add(1).cast::<u8>(), n) };
                Ok((buf[0] as i64, text.to_vec()))
            }
            World::Usysv(ipc, creds) => {
                let mut out = vec![0u8; max];
                let (mtype, n) = raw(ipc.namespace().msgrcv(
                    id,
                    bufsz,
                    msgtyp,
                    flags,
                    &mut out,
                    &creds.as_cred(),
                ))?;
                out.truncate(n);
                Ok((mtype, out))
            }
        }
    }

    fn stat(&self, id: i32) -> Result<Stat, i32> {
        match self {
            World::Kernel => {
                // SAFETY: an all-zero msqid_ds is a valid value (integers only).
                let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
                // SAFETY: the kernel fills `ds` in.
                let ret = unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) };
                checked(ret.into())?;
                Ok(Stat {
                    mode: u32::from(ds.msg_perm.mode),
                    qnum: ds.msg_qnum,
                    cbytes: ds.__msg_cbytes,
                    qbytes: ds.msg_qbytes,
                })
            }
            World::Usysv(ipc, _) => {
                let ds = raw(ipc.msgctl_stat(id))?;
                Ok(Stat {
                    mode: ds.perm.mode,
                    qnum: ds.qnum,
                    cbytes: ds.cbytes,
                    qbytes: ds.qbytes,
                })
            }
        }
    }

    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) -> Result<(), i32> {
        match self {
            World::Kernel => {
                // SAFETY: as in `stat`.
                let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
                ds.msg_perm.uid = uid;
                ds.msg_perm.gid = gid;
                ds.msg_perm.mode = mode as u16;
                ds.msg_qbytes = qbytes;
                // SAFETY: the kernel reads `ds`.
                let ret = unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) };
                checked(ret.into()).map(drop)
            }
            World::Usysv(ipc, _) => raw(ipc.msgctl_set(id, uid, gid, mode, qbytes)),
        }
    }

    fn rmid(&self, id: i32) -> Result<(), i32> {
        match self {
            World::Kernel => {
                // SAFETY: IPC_RMID takes no buffer.
                let ret = unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
                checked(ret.into()).map(drop)
            }
            World::Usysv(ipc, _) => raw(ipc.msgctl_rmid(id)),
        }
    }
}

fn errno_text(errno: i32) -> String {
    match Errno::from_raw(errno).name() {
        "E?" => format!("errno {errno}"),
        name => name.to_string(),
    }
}

fn number<T: std::str::FromStr>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a number"))
}

/// Prints "err WHAT" and exits with status 1.
fn fail(what: impl std::fmt::Display) -> ! {
    println!("err {what}");
    std::process::exit(1);
}

/// A message's text as a transcript shows it: printable ASCII as it is,
/// anything else as its length and hash.
fn text(data: &[u8]) -> String {
    if data.len() <= 32 && data.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(data).into_owned()
    } else {
        format!("#{:016x}", fnv(0, data))
    }
}

/// FNV-1a, continuing from `hash` (0 to start).
fn fnv(hash: u64, data: &[u8]) -> u64 {
    let mut hash = if hash == 0 {
        0xcbf2_9ce4_8422_2325
    } else {
        hash
    };
    for &byte in data {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

use usysv_tests::{install_sigusr1_handler, sigusr1_handled};

// ---------------------------------------------------------------------------
// Producer and consumer.

/// The type whose messages are always empty.
const EMPTY_TYPE: i64 = 6;

/// The text of message `seq` of type `mtype`, `len` bytes (0, or at least
/// 8: the number and the length, then bytes made from all three).
fn payload(mtype: i64, seq: u32, len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    let mut data = Vec::with_capacity(len);
    data.extend_from_slice(&seq.to_le_bytes());
    data.extend_from_slice(&(len as u32).to_le_bytes());
    let mix = seq.wrapping_mul(0x9E37_79B9) ^ (mtype as u32).wrapping_mul(0x85EB_CA6B);
    data.extend((8..len).map(|j| (mix.rotate_left(j as u32 % 32) as u8) ^ (j as u8)));
    data
}

/// A message's contribution to the checksum.
fn message_hash(mtype: i64, data: &[u8]) -> u64 {
    fnv(fnv(0, &mtype.to_le_bytes()), data)
}

fn counts_text(counts: &[u64]) -> String {
    let parts: Vec<String> = counts[1..].iter().map(u64::to_string).collect();
    parts.join(",")
}

fn produce(arena: &str, rest: &[String]) {
    let world = World::open(arena);
    let id: i32 = number(&rest[0]);
    let count: u64 = number(&rest[1]);
    let mut rng = Rng::new(number(&rest[2]));
    let max = msgmax() as u64;
    let mut seqs = [0u32; EMPTY_TYPE as usize + 1];
    let mut counts = [0u64; EMPTY_TYPE as usize + 1];
    let mut sum = 0u64;
    println!("ready");
    for _ in 0..count {
        let mtype = 1 + rng.below(EMPTY_TYPE as u64) as i64;
        let len = if mtype == EMPTY_TYPE {
            0
        } else {
            8 + match rng.below(100) {
                0..=69 => rng.below(57),
                70..=94 => 57 + rng.below(1000),
                _ => 1057 + rng.below(max - 8 - 1057 + 1),
            }
        };
        let seq = &mut seqs[mtype as usize];
        let data = payload(mtype, *seq, len as usize);
        *seq += 1;
        if let Err(errno) = world.send(id, mtype, &data, 0) {
            fail(format!("msgsnd: {}", errno_text(errno)));
        }
        counts[mtype as usize] += 1;
        sum = sum.wrapping_add(message_hash(mtype, &data));
    }
    println!("done {sum:016x} {}", counts_text(&counts));
}

fn consume(arena: &str, rest: &[String]) {
    let world = World::open(arena);
    let id: i32 = number(&rest[0]);
    let count: u64 = number(&rest[1]);
    let mut rng = Rng::new(number::<u64>(&rest[2]) ^ 0xC0FF_EE00);
    let bufsz = msgmax() as i64;
    let mut next = [0u32; EMPTY_TYPE as usize + 1];
    let mut counts = [0u64; EMPTY_TYPE as usize + 1];
    let mut sum = 0u64;
    let take = |msgtyp: i64, flags: i32| match world.recv(id, bufsz, msgtyp, flags) {
        Ok(message) => Some(message),
        Err(libc::ENOMSG) if flags & IPC_NOWAIT != 0 => None,
        Err(errno) => fail(format!(
            "msgrcv type {msgtyp} flags {flags:#o}: {}",
            errno_text(errno)
        )),
    };
    // Without IPC_NOWAIT, the first message of any type, which always comes.
    let any = || take(0, 0).unwrap();
    println!("ready");
    for received in 0..count {
        let t = 1 + rng.below(EMPTY_TYPE as u64) as i64;
        let (mtype, data) = match rng.below(100) {
            0..=49 => any(),
            50..=64 => take(t, IPC_NOWAIT)
                .inspect(|(mtype, _)| {
                    if *mtype != t {
                        fail(format!("asked for type {t}, got {mtype}"));
                    }
                })
                .unwrap_or_else(any),
            65..=79 => take(-t, IPC_NOWAIT)
                .inspect(|(mtype, _)| {
                    if *mtype > t {
                        fail(format!("asked for type ≤ {t}, got {mtype}"));
                    }
                })
                .unwrap_or_else(any),
            80..=89 => take(t, IPC_NOWAIT | MSG_EXCEPT)
                .inspect(|(mtype, _)| {
                    if *mtype == t {
                        fail(format!("asked for any type but {t}, got it"));
                    }
                })
                .unwrap_or_else(any),
            _ => {
                // Only this process takes messages: the first one stays first.
                let copy = take(0, IPC_NOWAIT | MSG_COPY);
                let message = any();
                if copy.as_ref().is_some_and(|copy| *copy != message) {
                    fail(format!("message {received}: MSG_COPY saw another message"));
                }
                message
            }
        };
        if !(1..=EMPTY_TYPE).contains(&mtype) {
            fail(format!("message {received}: type {mtype}"));
        }
        let seq = &mut next[mtype as usize];
        if mtype == EMPTY_TYPE {
            if !data.is_empty() {
                fail(format!(
                    "message {received}: {} bytes of type 6",
                    data.len()
                ));
            }
        } else {
            if data.len() < 8 {
                fail(format!("message {received}: {} bytes", data.len()));
            }
            let number = u32::from_le_bytes(data[..4].try_into().unwrap());
            if number != *seq {
                fail(format!(
                    "message {received}: type {mtype} number {number}, expected {seq}"
                ));
            }
            if data != payload(mtype, number, data.len()) {
                fail(format!(
                    "message {received}: type {mtype} number {number}: wrong contents"
                ));
            }
        }
        *seq += 1;
        counts[mtype as usize] += 1;
        sum = sum.wrapping_add(message_hash(mtype, &data));
    }
    if let Some((mtype, data)) = take(0, IPC_NOWAIT) {
        fail(format!(
            "a message too many: type {mtype}, {} bytes",
            data.len()
        ));
    }
    println!("done {sum:016x} {}", counts_text(&counts));
}

// ---------------------------------------------------------------------------
// The stat server and its clients.

/// A request's type, and a shutdown's.
const REQUEST: i64 = 1;
const SHUTDOWN: i64 = 2;

/// An answer: the request number, then 0 or the errno, then stat(2)'s size,
/// mode, inode and link count (zero with an errno).
fn answer(seq: u32, path: &Path) -> Vec<u8> {
    let (errno, size, mode, ino, nlink) = match std::fs::metadata(path) {
        Ok(meta) => (0, meta.size(), meta.mode(), meta.ino(), meta.nlink()),
        Err(err) => (err.raw_os_error().unwrap_or(-1), 0, 0, 0, 0),
    };
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&seq.to_le_bytes());
    data.extend_from_slice(&errno.to_le_bytes());
    data.extend_from_slice(&size.to_le_bytes());
    data.extend_from_slice(&mode.to_le_bytes());
    data.extend_from_slice(&ino.to_le_bytes());
    data.extend_from_slice(&nlink.to_le_bytes());
    data
}

fn stat_server(arena: &str, rest: &[String]) {
    let world = World::open(arena);
    let key: i32 = number(&rest[0]);
    let id = world
        .msgget(key, IPC_CREAT | IPC_EXCL | 0o600)
        .unwrap_or_else(|errno| fail(format!("msgget: {}", errno_text(errno))));
    println!("ready {id}");
    let mut served = 0u64;
    loop {
        // Requests (type 1) before a shutdown (type 2).
        let (mtype, request) = world
            .recv(id, 4096, -SHUTDOWN, 0)
            .unwrap_or_else(|errno| fail(format!("msgrcv: {}", errno_text(errno))));
        if mtype == SHUTDOWN {
            break;
        }
        if mtype != REQUEST || request.len() < 12 {
            fail(format!(
                "a bad request: type {mtype}, {} bytes",
                request.len()
            ));
        }
        let reply = i32::from_le_bytes(request[..4].try_into().unwrap());
        let seq = u32::from_le_bytes(request[8..12].try_into().unwrap());
        let path = std::str::from_utf8(&request[12..]).unwrap_or_else(|_| fail("a bad path"));
        let data = answer(seq, Path::new(path));
        if let Err(errno) = world.send(reply, i64::from(seq) + 1, &data, 0) {
            fail(format!("msgsnd to {reply}: {}", errno_text(errno)));
        }
        served += 1;
    }
    println!("served {served}");
}

fn stat_client(arena: &str, rest: &[String]) {
    let world = World::open(arena);
    let key: i32 = number(&rest[0]);
    let client: u32 = number(&rest[1]);
    let requests: u32 = number(&rest[2]);
    let paths = &rest[3..];
    let server = world
        .msgget(key, 0)
        .unwrap_or_else(|errno| fail(format!("msgget(KEY): {}", errno_text(errno))));
    let reply = world
        .msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
        .unwrap_or_else(|errno| fail(format!("msgget(PRIVATE): {}", errno_text(errno))));
    println!("queue {reply}");
    let mut seq = 0u32;
    while seq < requests {
        let batch = (1 + (seq + client) % 3).min(requests - seq);
        let path_of = |seq: u32| &paths[((seq + client) as usize) % paths.len()];
        for n in seq..seq + batch {
            let mut request = Vec::new();
            request.extend_from_slice(&reply.to_le_bytes());
            request.extend_from_slice(&client.to_le_bytes());
            request.extend_from_slice(&n.to_le_bytes());
            request.extend_from_slice(path_of(n).as_bytes());
            if let Err(errno) = world.send(server, REQUEST, &request, 0) {
                fail(format!("msgsnd request {n}: {}", errno_text(errno)));
            }
        }
        // The batch's answers, newest first: each by its own type.
        for n in (seq..seq + batch).rev() {
            let (mtype, got) = world
                .recv(reply, 64, i64::from(n) + 1, 0)
                .unwrap_or_else(|errno| fail(format!("msgrcv {n}: {}", errno_text(errno))));
            let expected = answer(n, Path::new(path_of(n)));
            if mtype != i64::from(n) + 1 || got != expected {
                fail(format!(
                    "answer {n} for {}: type {mtype}, {got:?}, expected {expected:?}",
                    path_of(n)
                ));
            }
        }
        seq += batch;
    }
    match world.stat(reply) {
        Ok(stat) if stat.qnum == 0 => {}
        Ok(stat) => fail(format!("{} messages left in the reply queue", stat.qnum)),
        Err(errno) => fail(format!("IPC_STAT: {}", errno_text(errno))),
    }
    if let Err(errno) = world.rmid(reply) {
        fail(format!("IPC_RMID: {}", errno_text(errno)));
    }
    println!("ok {requests}");
}

// ---------------------------------------------------------------------------
// One blocking call.

fn recv(arena: &str, rest: &[String]) {
    let world = World::open(arena);
    let id: i32 = number(&rest[0]);
    let mut args = &rest[1..];
    let handler = args.first().is_some_and(|arg| arg == "sigusr1");
    if handler {
        args = &args[1..];
        install_sigusr1_handler();
    }
    let bufsz: i64 = number(&args[0]);
    let msgtyp: i64 = number(&args[1]);
    let flags = args[2..].iter().fold(0, |flags, arg| {
        flags
            | match arg.as_str() {
                "nowait" => IPC_NOWAIT,
                "noerror" => MSG_NOERROR,
                "except" => MSG_EXCEPT,
                "copy" => MSG_COPY,
                other => panic!("bad flag {other:?}"),
            }
    });
    println!("ready");
    let mut line = match world.recv(id, bufsz, msgtyp, flags) {
        Ok((mtype, data)) => format!("ok type={mtype} len={} data={}", data.len(), text(&data)),
        Err(errno) => format!("err {}", errno_text(errno)),
    };
    if handler {
        line.push_str(&format!(" handled={}", sigusr1_handled()));
    }
    println!("{line}");
}

fn send(arena: &str, rest: &[String]) {
    let world = World::open(arena);
    let id: i32 = number(&rest[0]);
    let mut args = &rest[1..];
    let handler = args.first().is_some_and(|arg| arg == "sigusr1");
    if handler {
        args = &args[1..];
        install_sigusr1_handler();
    }
    let mtype: i64 = number(&args[0]);
    let len: usize = number(&args[1]);
    let flags = match args.get(2).map(String::as_str) {
        None => 0,
        Some("nowait") => IPC_NOWAIT,
        Some(other) => panic!("bad flag {other:?}"),
    };
    let data: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    println!("ready");
    let mut line = match world.send(id, mtype, &data, flags) {
        Ok(()) => "ok".to_string(),
        Err(errno) => format!("err {}", errno_text(errno)),
    };
    if handler {
        line.push_str(&format!(" handled={}", sigusr1_handled()));
    }
    println!("{line}");
}

// ---------------------------------------------------------------------------
// Permissions.

use usysv_tests::kernel::{drop_effective_capabilities, CAP_IPC_OWNER, CAP_SYS_ADMIN};

/// Becomes `uid`:`gid` with no supplementary groups (which, from root, also
/// empties every capability set).
fn become_user(uid: u32, gid: u32) {
    // SAFETY: plain system calls on this process's credentials.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setresgid(gid, gid, gid), 0, "setresgid");
        assert_eq!(libc::setresuid(uid, uid, uid), 0, "setresuid");
    }
}

fn outcome<T>(result: &Result<T, i32>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(errno) => format!("err {}", errno_text(*errno)),
    }
}

fn perm_probe(arena: &str, rest: &[String]) {
    let key: i32 = number(&rest[0]);
    let id: i32 = number(&rest[1]);
    match rest[2].as_str() {
        "capless" => drop_effective_capabilities(&[CAP_IPC_OWNER, CAP_SYS_ADMIN]),
        who => {
            let ids = who.strip_prefix("as=").expect("capless or as=UID:GID");
            let (uid, gid) = ids.split_once(':').expect("as=UID:GID");
            become_user(number(uid), number(gid));
        }
    }
    // Opened afterwards: usysv reads the credentials when it opens.
    let world = World::open(arena);
    let max = msgmax();
    for flags in [0, 0o400, 0o200, 0o600, 0o040, 0o004, IPC_CREAT | 0o600] {
        let got = match world.msgget(key, flags) {
            Ok(got) if got == id => "the queue".to_string(),
            Ok(_) => "another queue".to_string(),
            Err(errno) => format!("err {}", errno_text(errno)),
        };
        println!("msgget(KEY, {flags:#o}) = {got}");
    }
    let sends: [(&str, i64, usize); 3] = [
        ("type 1, 1 byte", 1, 1),
        ("type 0, 1 byte", 0, 1),
        ("type 1, MSGMAX + 1 bytes", 1, max + 1),
    ];
    for (what, mtype, len) in sends {
        let sent = world.send(id, mtype, &vec![b'x'; len], IPC_NOWAIT);
        println!("msgsnd({what}, NOWAIT) = {}", outcome(&sent));
    }
    let receives: [(&str, i64, i64, i32); 7] = [
        ("bufsz 1, any type, NOWAIT", 1, 0, IPC_NOWAIT),
        ("bufsz 100, type 1, NOWAIT", 100, 1, IPC_NOWAIT),
        ("bufsz 100, type 1, NOWAIT, again", 100, 1, IPC_NOWAIT),
        (
            "bufsz 100, position 0, COPY|NOWAIT",
            100,
            0,
            MSG_COPY | IPC_NOWAIT,
        ),
        ("bufsz 100, position 0, COPY", 100, 0, MSG_COPY),
        ("bufsz -1, any type, NOWAIT", -1, 0, IPC_NOWAIT),
        ("bufsz 100, type 9, NOWAIT", 100, 9, IPC_NOWAIT),
    ];
    for (what, bufsz, msgtyp, flags) in receives {
        let got = match world.recv(id, bufsz, msgtyp, flags) {
            Ok((mtype, data)) => format!("type {mtype} {}", text(&data)),
            Err(errno) => format!("err {}", errno_text(errno)),
        };
        println!("msgrcv({what}) = {got}");
    }
    let stat = world.stat(id);
    match &stat {
        Ok(s) => println!(
            "IPC_STAT = mode {:#o} qnum {} cbytes {} qbytes {}",
            s.mode, s.qnum, s.cbytes, s.qbytes
        ),
        Err(errno) => println!("IPC_STAT = err {}", errno_text(*errno)),
    }
    // IPC_SET to what the queue has (as its creator, root, made it), then
    // past MSGMNB.
    let mode: u32 = number(&rest[3]);
    let msgmnb: u64 = std::fs::read_to_string("/proc/sys/kernel/msgmnb")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_LIMITS.msgmnb.into());
    println!(
        "IPC_SET(same) = {}",
        outcome(&world.set(id, 0, 0, mode, msgmnb))
    );
    println!(
        "IPC_SET(qbytes MSGMNB + 1) = {}",
        outcome(&world.set(id, 0, 0, mode, msgmnb + 1))
    );
    if rest[2] != "capless" {
        println!("IPC_RMID = {}", outcome(&world.rmid(id)));
    }
    println!("end");
}
