//! Differential tests: usysv's message queues against the Linux kernel's.
//!
//! Every scenario is written once, generic over [`SysV`], and run twice: on
//! the kernel (its real `msgget`, `msgsnd`, `msgrcv` and `msgctl`, through
//! `libc`) and on a fresh usysv arena with the kernel's limits. Each run
//! writes a transcript of every call and its result; the two transcripts
//! must be equal.
//!
//! Ids, keys and pids differ between the two worlds, so a transcript never
//! holds one: queues are named by tokens in order of appearance (`q0`, `q1`,
//! …), keys likewise (`k0`, …), a pid by what it is (`0`, `me`, `other`) and
//! a time by whether it is `0` or `now` (and, across a second boundary, by
//! whether it moved). Numbers that mean the same in both worlds (uids, modes,
//! sizes, types, errnos) appear as they are; a message's text appears as
//! itself when short and printable, else as its length and hash.
//!
//! usysv's `msgsnd` takes a slice, so a negative `msgsz` cannot be expressed
//! there; a negative `msgrcv` buffer size can, and is compared.
//!
//! Every kernel queue a scenario makes is removed when its world is dropped,
//! whether or not the scenario got that far. `USYSV_SHOW_TRANSCRIPTS=1` (with
//! `--nocapture`) prints the kernel's transcript of every scenario, and
//! `USYSV_TRACE=1` every line of both as it happens.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use usysv_platform::usysv_core::msg::{MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE};
use usysv_platform::usysv_core::{Errno, Limits, DEFAULT_LIMITS};
use usysv_platform::{Credentials, Ipc};
use usysv_tests::kernel::read_limit;
use usysv_tests::{Helper, Rng, TempDir, Watchdog};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-msg-helper");

/// A call's result: the value, or the errno.
type R<T> = Result<T, i32>;

/// What `IPC_STAT` says, in the fields both worlds have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    stime: i64,
    rtime: i64,
    ctime: i64,
    cbytes: u64,
    qnum: u64,
    qbytes: u64,
    lspid: i32,
    lrpid: i32,
}

/// What `IPC_INFO` says (`struct msginfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Info {
    msgpool: i32,
    msgmap: i32,
    msgmax: i32,
    msgmnb: i32,
    msgmni: i32,
    msgssz: i32,
    msgtql: i32,
    msgseg: u16,
}

/// The message-queue calls of System V IPC, as one world offers them.
trait SysV: Sync {
    /// "kernel" or "usysv".
    fn name(&self) -> &'static str;
    /// A key that names no queue yet.
    fn new_key(&self) -> i32;
    /// `msgget`.
    fn msgget(&self, key: i32, flags: i32) -> R<i32>;
    /// `msgsnd` of a message of type `mtype` holding `data`.
    fn msgsnd(&self, id: i32, mtype: i64, data: &[u8], flags: i32) -> R<()>;
    /// `msgrcv` with buffer size `bufsz` (any value, negative included): the
    /// message's type and text.
    fn msgrcv(&self, id: i32, bufsz: i64, msgtyp: i64, flags: i32) -> R<(i64, Vec<u8>)>;
    /// `msgctl(IPC_STAT)`.
    fn stat(&self, id: i32) -> R<Stat>;
    /// `msgctl(IPC_SET)`.
    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) -> R<()>;
    /// `msgctl(IPC_RMID)`.
    fn rmid(&self, id: i32) -> R<()>;
    /// `msgctl(IPC_INFO)`: whether the value returned (the highest index in
    /// use) is at least 0, and the limits.
    fn info(&self) -> R<(bool, Info)>;
    /// Removes every queue this world made: ends a scenario that hangs.
    fn purge(&self);
}

/// The kernel's MSGMAX.
fn msgmax() -> usize {
    read_limit::<u32>("msgmax") as usize
}

/// The kernel's MSGMNB.
fn msgmnb() -> u64 {
    read_limit::<u32>("msgmnb").into()
}

/// The usysv limits that match the kernel's message-queue limits.
fn usysv_limits() -> Limits {
    Limits {
        msgmax: read_limit("msgmax"),
        msgmnb: read_limit("msgmnb"),
        msgmni: read_limit("msgmni"),
        ..DEFAULT_LIMITS
    }
}

// ---------------------------------------------------------------------------
// The kernel.

/// The kernel's System V message queues; removes every queue it made when
/// dropped.
struct Kernel {
    made: Mutex<Vec<i32>>,
}

impl Kernel {
    fn new() -> Kernel {
        Kernel {
            made: Mutex::new(Vec::new()),
        }
    }
}

use usysv_tests::kernel::checked;

/// `msgctl` with a `struct msqid_ds` (or no buffer, for IPC_RMID).
fn msgctl(id: i32, cmd: i32, ds: Option<&mut libc::msqid_ds>) -> R<i64> {
    let ptr = ds.map_or(std::ptr::null_mut(), |ds| ds as *mut libc::msqid_ds);
    // SAFETY: `ptr` is null (IPC_RMID reads nothing) or a whole msqid_ds,
    // which the kernel reads or fills in.
    checked(unsafe { libc::msgctl(id, cmd, ptr) }.into())
}

impl SysV for Kernel {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn new_key(&self) -> i32 {
        // SAFETY: msgget has no memory arguments.
        usysv_tests::kernel::unused_key(|key| unsafe { libc::msgget(key, 0) })
    }

    fn msgget(&self, key: i32, flags: i32) -> R<i32> {
        // SAFETY: msgget has no memory arguments.
        let id = checked(unsafe { libc::msgget(key, flags) }.into())? as i32;
        self.made.lock().unwrap().push(id);
        Ok(id)
    }

    fn msgsnd(&self, id: i32, mtype: i64, data: &[u8], flags: i32) -> R<()> {
        usysv_tests::kernel::msgsnd(id, mtype, data, flags)
    }

    fn msgrcv(&self, id: i32, bufsz: i64, msgtyp: i64, flags: i32) -> R<(i64, Vec<u8>)> {
        let max = msgmax();
        let mut buf = vec![0u64; 1 + max.div_ceil(8)];
        // SAFETY: `buf` holds a long and MSGMAX bytes. The kernel writes at
        // most the message (≤ MSGMAX bytes) and, with MSG_COPY, first reads
        // min(bufsz, MSGMAX) bytes; a negative `bufsz` is refused unread.
        let ret =
            unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), bufsz as usize, msgtyp, flags) };
        let n = checked(ret as i64)? as usize;
        assert!(n <= max, "the kernel said {n} bytes");
        // SAFETY: the kernel wrote `n` bytes after the type.
        let text = unsafe { std::slice::from_raw_parts(buf.as_ptr().add(1).cast::<u8>(), n) };
        Ok((buf[0] as i64, text.to_vec()))
    }

    fn stat(&self, id: i32) -> R<Stat> {
        // SAFETY: an all-zero msqid_ds is a valid value (integers only).
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        msgctl(id, libc::IPC_STAT, Some(&mut ds))?;
        Ok(Stat {
            key: ds.msg_perm.__key,
            uid: ds.msg_perm.uid,
            gid: ds.msg_perm.gid,
            cuid: ds.msg_perm.cuid,
            cgid: ds.msg_perm.cgid,
            mode: u32::from(ds.msg_perm.mode),
            stime: ds.msg_stime,
            rtime: ds.msg_rtime,
            ctime: ds.msg_ctime,
            cbytes: ds.__msg_cbytes,
            qnum: ds.msg_qnum,
            qbytes: ds.msg_qbytes,
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
        })
    }

    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) -> R<()> {
        // SAFETY: as in `stat`.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        ds.msg_perm.uid = uid;
        ds.msg_perm.gid = gid;
        ds.msg_perm.mode = mode as u16;
        ds.msg_qbytes = qbytes;
        msgctl(id, libc::IPC_SET, Some(&mut ds)).map(drop)
    }

    fn rmid(&self, id: i32) -> R<()> {
        msgctl(id, libc::IPC_RMID, None).map(drop)
    }

    fn info(&self) -> R<(bool, Info)> {
        // The kernel writes a `struct msginfo`, which is smaller than the
        // msqid_ds it is given.
        // SAFETY: as in `stat`.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        let max_index = msgctl(0, libc::IPC_INFO, Some(&mut ds))?;
        // SAFETY: the msqid_ds is larger than a msginfo and as aligned, and
        // the kernel filled a msginfo in at its start.
        let info = unsafe { *(&ds as *const libc::msqid_ds).cast::<libc::msginfo>() };
        Ok((
            max_index >= 0,
            Info {
                msgpool: info.msgpool,
                msgmap: info.msgmap,
                msgmax: info.msgmax,
                msgmnb: info.msgmnb,
                msgmni: info.msgmni,
                msgssz: info.msgssz,
                msgtql: info.msgtql,
                msgseg: info.msgseg,
            },
        ))
    }

    fn purge(&self) {
        for &id in self.made.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // Already removed is fine: EINVAL.
            let _ = msgctl(id, libc::IPC_RMID, None);
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.purge();
    }
}

// ---------------------------------------------------------------------------
// usysv.

/// usysv on a fresh arena file of its own.
struct Usysv {
    // Declared before `_dir`: the arena goes before its directory.
    ipc: Ipc,
    creds: Credentials,
    next_key: AtomicI32,
    made: Mutex<Vec<i32>>,
    _dir: TempDir,
}

impl Usysv {
    /// An arena of mode 0600.
    fn new(test: &str) -> Usysv {
        Usysv::with_mode(test, 0o600)
    }

    /// An arena of file mode `mode` (0666 lets other users' processes in).
    fn with_mode(test: &str, mode: u32) -> Usysv {
        let dir = TempDir::new(&format!("msgk-{test}"));
        let ipc = Ipc::open(&dir.join("arena"), &usysv_limits(), mode).unwrap();
        Usysv {
            ipc,
            creds: Credentials::current(),
            next_key: AtomicI32::new(1000),
            made: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }
}

fn raw<T>(result: Result<T, Errno>) -> R<T> {
    result.map_err(Errno::raw)
}

impl SysV for Usysv {
    fn name(&self) -> &'static str {
        "usysv"
    }

    fn new_key(&self) -> i32 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    fn msgget(&self, key: i32, flags: i32) -> R<i32> {
        let id = raw(self.ipc.msgget(key, flags))?;
        self.made.lock().unwrap().push(id);
        Ok(id)
    }

    fn msgsnd(&self, id: i32, mtype: i64, data: &[u8], flags: i32) -> R<()> {
        raw(self.ipc.msgsnd(id, mtype, data, flags))
    }

    fn msgrcv(&self, id: i32, bufsz: i64, msgtyp: i64, flags: i32) -> R<(i64, Vec<u8>)> {
        // The namespace takes the buffer size as given, bad ones included.
        let mut out = vec![0u8; msgmax()];
        let (mtype, n) = raw(self.ipc.namespace().msgrcv(
            id,
            bufsz,
            msgtyp,
            flags,
            &mut out,
            &self.creds.as_cred(),
        ))?;
        out.truncate(n);
        Ok((mtype, out))
    }

    fn stat(&self, id: i32) -> R<Stat> {
        let ds = raw(self.ipc.msgctl_stat(id))?;
        Ok(Stat {
            key: ds.perm.key,
            uid: ds.perm.uid,
            gid: ds.perm.gid,
            cuid: ds.perm.cuid,
            cgid: ds.perm.cgid,
            mode: ds.perm.mode,
            stime: ds.stime,
            rtime: ds.rtime,
            ctime: ds.ctime,
            cbytes: ds.cbytes,
            qnum: ds.qnum,
            qbytes: ds.qbytes,
            lspid: ds.lspid,
            lrpid: ds.lrpid,
        })
    }

    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) -> R<()> {
        raw(self.ipc.msgctl_set(id, uid, gid, mode, qbytes))
    }

    fn rmid(&self, id: i32) -> R<()> {
        raw(self.ipc.msgctl_rmid(id))
    }

    fn info(&self) -> R<(bool, Info)> {
        let (max_index, info) = self.ipc.msgctl_info(false);
        Ok((
            max_index >= 0,
            Info {
                msgpool: info.msgpool,
                msgmap: info.msgmap,
                msgmax: info.msgmax,
                msgmnb: info.msgmnb,
                msgmni: info.msgmni,
                msgssz: info.msgssz,
                msgtql: info.msgtql,
                msgseg: info.msgseg,
            },
        ))
    }

    fn purge(&self) {
        for &id in self.made.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = self.ipc.msgctl_rmid(id);
        }
    }
}

// ---------------------------------------------------------------------------
// Transcripts.

use usysv_tests::{
    bytes_text, errno_name, euid_egid, ok_or_errno, pid_name, seeded_bytes, trace,
    wait_for_the_next_second, Names,
};

/// `msgsnd`/`msgrcv` flags by name.
fn flags_text(flags: i32) -> String {
    usysv_tests::flags_text(
        flags,
        &[
            (IPC_NOWAIT, "NOWAIT"),
            (MSG_NOERROR, "NOERROR"),
            (MSG_EXCEPT, "EXCEPT"),
            (MSG_COPY, "COPY"),
        ],
    )
}

/// One world's run of a scenario: the world, and the transcript so far.
struct Run<'w, W: SysV> {
    w: &'w W,
    lines: Vec<String>,
    names: Names,
    /// The step of a random run, shown before each line.
    step: Option<usize>,
}

impl<'w, W: SysV> Run<'w, W> {
    fn new(w: &'w W) -> Self {
        Run {
            w,
            lines: Vec::new(),
            names: Names::new("q"),
            step: None,
        }
    }

    fn note(&mut self, line: impl Into<String>) {
        let mut line = line.into();
        if let Some(step) = self.step {
            line = format!("[{step}] {line}");
        }
        trace(self.w.name(), &line);
        self.lines.push(line);
    }

    fn new_key(&mut self) -> i32 {
        let key = self.w.new_key();
        self.names.learn_key(key);
        key
    }

    /// `msgget`; the id, or -1.
    fn msgget(&mut self, key: i32, flags: i32) -> i32 {
        let result = self.w.msgget(key, flags);
        let shown = self.names.returned_id(result);
        let key = self.names.key(key);
        self.note(format!("msgget({key}, {flags:#o}) = {shown}"));
        result.unwrap_or(-1)
    }

    /// A new private queue.
    fn queue(&mut self) -> i32 {
        self.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
    }

    /// `msgsnd`; whether it succeeded.
    fn snd(&mut self, id: i32, mtype: i64, data: &[u8], flags: i32) -> bool {
        let result = self.w.msgsnd(id, mtype, data, flags);
        let line = format!(
            "msgsnd({}, type {mtype}, {}, {}) = {}",
            self.names.id(id),
            bytes_text(data),
            flags_text(flags),
            ok_or_errno(&result)
        );
        self.note(line);
        result.is_ok()
    }

    /// `msgrcv`; whether it succeeded.
    fn rcv(&mut self, id: i32, bufsz: i64, msgtyp: i64, flags: i32) -> bool {
        let result = self.w.msgrcv(id, bufsz, msgtyp, flags);
        let shown = match &result {
            Ok((mtype, data)) => format!("type {mtype} {}", bytes_text(data)),
            Err(errno) => errno_name(*errno),
        };
        let line = format!(
            "msgrcv({}, bufsz {bufsz}, msgtyp {msgtyp}, {}) = {shown}",
            self.names.id(id),
            flags_text(flags),
        );
        self.note(line);
        result.is_ok()
    }

    /// `msgrcv` with room for any message and IPC_NOWAIT.
    fn take(&mut self, id: i32, msgtyp: i64) -> bool {
        self.rcv(id, msgmax() as i64, msgtyp, IPC_NOWAIT)
    }

    /// `msgrcv(MSG_COPY | IPC_NOWAIT)` of the message at `position`.
    fn copy(&mut self, id: i32, position: i64) -> bool {
        self.rcv(id, msgmax() as i64, position, MSG_COPY | IPC_NOWAIT)
    }

    fn stat(&mut self, id: i32) -> Option<Stat> {
        let result = self.w.stat(id);
        let shown = match &result {
            Ok(s) => format!(
                "key={} uid={} gid={} cuid={} cgid={} mode={:#o} qnum={} cbytes={} \
                 qbytes={} lspid={} lrpid={} stime={} rtime={} ctime={}",
                self.names.key(s.key),
                s.uid,
                s.gid,
                s.cuid,
                s.cgid,
                s.mode,
                s.qnum,
                s.cbytes,
                s.qbytes,
                pid_name(s.lspid),
                pid_name(s.lrpid),
                self.names.time(s.stime),
                self.names.time(s.rtime),
                self.names.time(s.ctime),
            ),
            Err(errno) => errno_name(*errno),
        };
        let line = format!("IPC_STAT({}) = {shown}", self.names.id(id));
        self.note(line);
        result.ok()
    }

    fn set_ids(&mut self, id: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) {
        let result = self.w.set(id, uid, gid, mode, qbytes);
        let line = format!(
            "IPC_SET({}, uid {uid}, gid {gid}, mode {mode:#o}, qbytes {qbytes}) = {}",
            self.names.id(id),
            ok_or_errno(&result)
        );
        self.note(line);
    }

    /// `IPC_SET` keeping this process as owner.
    fn set(&mut self, id: i32, mode: u32, qbytes: u64) {
        let (uid, gid) = euid_egid();
        self.set_ids(id, uid, gid, mode, qbytes);
    }

    fn rmid(&mut self, id: i32) {
        let result = self.w.rmid(id);
        let line = format!("IPC_RMID({}) = {}", self.names.id(id), ok_or_errno(&result));
        self.note(line);
    }

    /// Waits for the wall clock's second to change, so that a time stamped
    /// from now on differs from every earlier one.
    fn tick(&mut self) {
        wait_for_the_next_second();
        self.note("(a second passes)");
    }
}

/// Runs `scenario` on the kernel and on usysv and compares the transcripts.
macro_rules! differential {
    ($(#[$attr:meta])* $test:ident => $scenario:ident) => {
        $(#[$attr])*
        #[test]
        fn $test() {
            let _watchdog = Watchdog::new(stringify!($test), Duration::from_secs(60));
            // The two worlds at once, so that their waits for the clock overlap.
            let (kernel, usysv) = std::thread::scope(|s| {
                let kernel = s.spawn(|| transcript(&Kernel::new(), $scenario::<Kernel>));
                let usysv = transcript(&Usysv::new(stringify!($test)), $scenario::<Usysv>);
                (kernel.join().unwrap(), usysv)
            });
            usysv_tests::show_transcript(stringify!($test), &kernel);
            usysv_tests::assert_same(&kernel, &usysv);
        }
    };
}

/// Runs `scenario` on `world` and returns its transcript (see
/// [`usysv_tests::transcript`]).
fn transcript<W: SysV>(world: &W, scenario: fn(&mut Run<'_, W>)) -> Vec<String> {
    usysv_tests::transcript(
        || {
            let mut run = Run::new(world);
            scenario(&mut run);
            run.lines
        },
        || world.purge(),
    )
}

// ---------------------------------------------------------------------------
// Scenarios.

fn msgget_flags_and_errors<W: SysV>(r: &mut Run<W>) {
    // IPC_PRIVATE needs no IPC_CREAT, and IPC_EXCL changes nothing.
    let private = r.msgget(IPC_PRIVATE, 0o640);
    r.stat(private);
    let another = r.msgget(IPC_PRIVATE, IPC_CREAT | IPC_EXCL | 0o600);
    r.note(format!("two private queues differ: {}", private != another));
    // Only the permission bits of the flags are kept.
    let wide = r.msgget(IPC_PRIVATE, IPC_CREAT | IPC_NOWAIT | 0o7777);
    r.stat(wide);
    r.rmid(private);
    r.rmid(another);
    r.rmid(wide);
    // A key.
    let key = r.new_key();
    r.msgget(key, 0);
    r.msgget(key, IPC_EXCL | 0o600);
    r.msgget(key, 0o600);
    let queue = r.msgget(key, IPC_CREAT | IPC_EXCL | 0o640);
    r.stat(queue);
    r.msgget(key, IPC_CREAT | IPC_EXCL | 0o640);
    r.msgget(key, IPC_CREAT | IPC_EXCL);
    r.msgget(key, IPC_CREAT | 0o600);
    r.msgget(key, IPC_CREAT);
    r.msgget(key, 0);
    r.msgget(key, IPC_EXCL);
    r.msgget(key, 0o777);
    r.msgget(key, IPC_NOWAIT);
    // A second key names a second queue.
    let key2 = r.new_key();
    let other = r.msgget(key2, IPC_CREAT | 0o600);
    r.note(format!(
        "the second key's queue differs: {}",
        other != queue
    ));
    r.msgget(key2, 0);
    r.stat(other);
    r.stat(queue);
    // Existing queues keep their mode whatever msgget asks.
    r.msgget(key, IPC_CREAT | 0o666);
    r.stat(queue);
    r.rmid(queue);
    r.msgget(key, 0);
    r.msgget(key, IPC_EXCL);
    let again = r.msgget(key, IPC_CREAT | IPC_EXCL | 0o600);
    r.note(format!("the new queue has a new id: {}", again != queue));
    r.stat(again);
    r.msgget(key, 0);
    r.rmid(again);
    r.rmid(other);
    r.msgget(key2, 0);
}

fn msgsnd_errors_in_order<W: SysV>(r: &mut Run<W>) {
    let max = msgmax();
    let q = r.queue();
    let stale = r.queue();
    r.rmid(stale);
    // The type must be positive.
    r.snd(q, 0, b"x", 0);
    r.snd(q, -1, b"x", 0);
    r.snd(q, i64::MIN, b"x", IPC_NOWAIT);
    r.snd(q, i64::MAX, b"x", 0);
    r.snd(q, 1, b"x", 0);
    // The size: MSGMAX bytes, not one more.
    r.snd(q, 2, &seeded_bytes(1, max), 0);
    r.snd(q, 2, &seeded_bytes(2, max + 1), 0);
    r.snd(q, 2, &seeded_bytes(2, max + 1), IPC_NOWAIT);
    r.snd(q, 2, &seeded_bytes(3, 2 * max), 0);
    r.stat(q);
    // The size and the type before the id.
    r.snd(stale, 0, b"x", 0);
    r.snd(stale, 1, &seeded_bytes(4, max + 1), 0);
    r.snd(-1, 0, b"x", 0);
    r.snd(-1, 1, &seeded_bytes(4, max + 1), 0);
    // The id.
    r.snd(stale, 1, b"x", 0);
    r.snd(stale, 1, b"x", IPC_NOWAIT);
    r.snd(-1, 1, b"x", 0);
    r.snd(i32::MIN, 1, b"x", 0);
    r.snd(i32::MAX, 1, b"x", 0);
    // Zero-length messages are messages: counted, no bytes.
    r.snd(q, 3, b"", 0);
    r.snd(q, 3, b"", IPC_NOWAIT);
    r.stat(q);
    // Flags msgsnd does not use change nothing.
    r.snd(q, 4, b"flags", MSG_NOERROR | MSG_EXCEPT | MSG_COPY);
    r.snd(q, 4, b"more", 0o777);
    r.stat(q);
    // A full queue: the type and the size still come first.
    r.set(q, 0o600, 0);
    r.snd(q, 1, b"", IPC_NOWAIT);
    r.snd(q, 0, b"", IPC_NOWAIT);
    r.snd(q, 1, &seeded_bytes(5, max + 1), IPC_NOWAIT);
    r.stat(q);
    r.rmid(q);
}

fn full_by_bytes_and_by_count<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    r.stat(q);
    // By bytes.
    r.set(q, 0o600, 100);
    r.stat(q);
    r.snd(q, 1, &seeded_bytes(1, 60), IPC_NOWAIT);
    r.snd(q, 2, &seeded_bytes(2, 40), IPC_NOWAIT);
    r.stat(q);
    r.snd(q, 3, &seeded_bytes(3, 1), IPC_NOWAIT);
    // A full queue still takes an empty message while the count allows.
    r.snd(q, 3, b"", IPC_NOWAIT);
    r.stat(q);
    // A message larger than the queue can ever hold.
    r.snd(q, 3, &seeded_bytes(4, 101), IPC_NOWAIT);
    r.take(q, 1);
    r.snd(q, 3, &seeded_bytes(4, 61), IPC_NOWAIT);
    r.snd(q, 3, &seeded_bytes(5, 60), IPC_NOWAIT);
    r.stat(q);
    // By count: lowering msg_qbytes keeps what is queued.
    r.set(q, 0o600, 3);
    r.stat(q);
    r.snd(q, 4, b"", IPC_NOWAIT);
    for _ in 0..3 {
        r.take(q, 0);
    }
    r.stat(q);
    r.snd(q, 5, b"", IPC_NOWAIT);
    r.snd(q, 5, b"a", IPC_NOWAIT);
    r.snd(q, 5, b"bc", IPC_NOWAIT);
    r.stat(q);
    r.snd(q, 5, b"", IPC_NOWAIT);
    r.take(q, 0);
    r.snd(q, 5, b"", IPC_NOWAIT);
    r.snd(q, 5, b"", IPC_NOWAIT);
    r.stat(q);
    // msg_qbytes 0 takes nothing, not even an empty message.
    r.set(q, 0o600, 0);
    r.snd(q, 6, b"", IPC_NOWAIT);
    r.take(q, 0);
    r.snd(q, 6, b"", IPC_NOWAIT);
    r.stat(q);
    // msg_qbytes 1: one empty message.
    r.set(q, 0o600, 1);
    r.take(q, 0);
    r.take(q, 0);
    r.snd(q, 6, b"", IPC_NOWAIT);
    r.snd(q, 6, b"", IPC_NOWAIT);
    r.snd(q, 6, b"x", IPC_NOWAIT);
    r.stat(q);
    r.take(q, 0);
    r.snd(q, 6, b"x", IPC_NOWAIT);
    r.snd(q, 6, b"", IPC_NOWAIT);
    r.stat(q);
    // Back to MSGMNB: two messages of MSGMAX fill it by bytes.
    r.set(q, 0o600, msgmnb());
    r.take(q, 0);
    let max = msgmax();
    let mut sent = 0;
    while sent < 4 && r.snd(q, 7, &seeded_bytes(6 + sent, max), IPC_NOWAIT) {
        sent += 1;
    }
    r.snd(q, 7, b"", IPC_NOWAIT);
    r.snd(q, 7, b"x", IPC_NOWAIT);
    r.stat(q);
    r.take(q, 7);
    r.snd(q, 7, &seeded_bytes(20, max - 1), IPC_NOWAIT);
    r.snd(q, 7, b"x", IPC_NOWAIT);
    r.snd(q, 7, b"y", IPC_NOWAIT);
    r.stat(q);
    r.rmid(q);
}

/// msg_qbytes messages fill a queue by count: 16,384 empty messages at the
/// default msg_qbytes, each found again by position and by type.
fn full_by_count_at_msgmnb<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    let limit = msgmnb();
    let mut sent = 0u64;
    let mut first_error = None;
    for i in 0..=limit {
        match r.w.msgsnd(q, 1 + (i % 5) as i64, b"", IPC_NOWAIT) {
            Ok(()) => sent += 1,
            Err(errno) => {
                first_error = Some((i, errno_name(errno)));
                break;
            }
        }
    }
    r.note(format!("sent {sent} empty messages, then {first_error:?}"));
    r.stat(q);
    r.snd(q, 1, b"", IPC_NOWAIT);
    r.copy(q, 0);
    r.copy(q, limit as i64 - 1);
    r.copy(q, limit as i64);
    r.take(q, 5);
    r.take(q, -3);
    r.take(q, 2);
    r.rcv(q, 0, 4, IPC_NOWAIT | MSG_EXCEPT);
    r.stat(q);
    r.snd(q, 9, b"", IPC_NOWAIT);
    r.snd(q, 9, b"", IPC_NOWAIT);
    r.snd(q, 9, b"", IPC_NOWAIT);
    r.snd(q, 9, b"", IPC_NOWAIT);
    r.snd(q, 9, b"", IPC_NOWAIT);
    r.copy(q, limit as i64 - 1);
    r.take(q, 9);
    let mut by_type = [0u64; 10];
    let mut received = 0u64;
    let mut last = Ok((0, Vec::new()));
    while received <= limit {
        last = r.w.msgrcv(q, 0, 0, IPC_NOWAIT);
        match &last {
            Ok((mtype, _)) => {
                by_type[*mtype as usize % 10] += 1;
                received += 1;
            }
            Err(_) => break,
        }
    }
    r.note(format!(
        "received {received} more, by type {by_type:?}, then {:?}",
        last.map_err(errno_name)
    ));
    r.stat(q);
    r.rmid(q);
}

/// Messages of types 3 1 2 1 3 2 (texts a to f) received by type.
fn fill_abcdef<W: SysV>(r: &mut Run<W>, q: i32) {
    for (mtype, text) in [(3, "a"), (1, "b"), (2, "c"), (1, "d"), (3, "e"), (2, "f")] {
        r.snd(q, mtype, text.as_bytes(), 0);
    }
}

/// Drains a queue with msgtyp 0, noting every message.
fn drain<W: SysV>(r: &mut Run<W>, q: i32) {
    for _ in 0..100 {
        if !r.take(q, 0) {
            break;
        }
    }
}

fn msgrcv_by_type<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    // msgtyp 0: the first message.
    fill_abcdef(r, q);
    r.take(q, 0);
    r.take(q, 0);
    // msgtyp > 0: the first of that type.
    r.take(q, 2);
    r.take(q, 2);
    r.take(q, 2);
    r.take(q, 4);
    drain(r, q);
    // msgtyp < 0: the lowest type ≤ |msgtyp|, the first among equals.
    fill_abcdef(r, q);
    r.take(q, -2);
    r.take(q, -3);
    r.take(q, -1);
    r.take(q, -1);
    r.take(q, -2);
    r.take(q, -1000);
    r.take(q, -2);
    r.take(q, i64::MIN);
    r.take(q, -3);
    r.stat(q);
    // MSG_EXCEPT: the first of another type; with msgtyp ≤ 0 it means
    // nothing.
    fill_abcdef(r, q);
    r.rcv(q, 100, 3, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 100, 1, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 100, 0, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 100, -1, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 100, -2, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 100, 3, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 100, 2, IPC_NOWAIT | MSG_EXCEPT);
    r.stat(q);
    r.rcv(q, 100, 2, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 100, 2, IPC_NOWAIT);
    // ENOMSG: nothing of the type, or nothing at all.
    r.take(q, 0);
    r.take(q, 1);
    r.take(q, -5);
    r.rcv(q, 100, 1, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 0, 0, IPC_NOWAIT);
    r.snd(q, 5, b"five", 0);
    r.take(q, 4);
    r.take(q, -4);
    r.rcv(q, 100, 5, IPC_NOWAIT | MSG_EXCEPT);
    // Without IPC_NOWAIT, a message that is there comes at once.
    r.rcv(q, 100, 5, 0);
    r.snd(q, 6, b"six", 0);
    r.rcv(q, 100, -6, MSG_NOERROR);
    r.snd(q, 7, b"seven", 0);
    r.rcv(q, 100, 6, MSG_EXCEPT);
    r.stat(q);
    // Types at the extremes.
    r.snd(q, i64::MAX, b"max", 0);
    r.snd(q, i64::MAX - 1, b"max-1", 0);
    r.snd(q, 1, b"one", 0);
    r.take(q, -(i64::MAX - 2));
    r.take(q, -(i64::MAX - 2));
    r.take(q, i64::MIN);
    r.take(q, i64::MAX);
    r.take(q, -i64::MAX);
    r.rcv(q, 100, i64::MAX, IPC_NOWAIT | MSG_EXCEPT);
    r.stat(q);
    // A bad id.
    let stale = r.queue();
    r.rmid(stale);
    r.take(stale, 0);
    r.rcv(stale, 100, 0, 0);
    r.take(-1, 0);
    r.rcv(-1, 100, 0, 0);
    r.take(i32::MAX, 0);
    r.take(i32::MIN, 1);
    r.rmid(q);
}

fn msgrcv_buffer_sizes<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    let max = msgmax() as i64;
    r.snd(q, 1, b"0123456789", 0);
    // Too small: E2BIG, and the message stays.
    r.rcv(q, 4, 0, IPC_NOWAIT);
    r.rcv(q, 9, 1, IPC_NOWAIT);
    r.rcv(q, 0, -1, IPC_NOWAIT);
    r.rcv(q, 4, 1, 0);
    r.stat(q);
    // MSG_NOERROR: truncated, and gone whole.
    r.rcv(q, 4, 0, IPC_NOWAIT | MSG_NOERROR);
    r.stat(q);
    r.take(q, 0);
    // Exactly the size.
    r.snd(q, 1, b"0123456789", 0);
    r.rcv(q, 10, 0, IPC_NOWAIT);
    // Size 0: an empty message fits, any other does not.
    r.snd(q, 2, b"", 0);
    r.snd(q, 2, b"z", 0);
    r.rcv(q, 0, 0, IPC_NOWAIT);
    r.rcv(q, 0, 0, IPC_NOWAIT);
    r.rcv(q, 0, 0, IPC_NOWAIT | MSG_NOERROR);
    r.stat(q);
    // E2BIG comes from the message found, not from others.
    r.snd(q, 3, &seeded_bytes(1, 300), 0);
    r.snd(q, 4, b"small", 0);
    r.rcv(q, 10, 0, IPC_NOWAIT);
    r.rcv(q, 10, 4, IPC_NOWAIT);
    r.rcv(q, 10, -4, IPC_NOWAIT);
    r.rcv(q, 10, 3, IPC_NOWAIT | MSG_EXCEPT);
    r.rcv(q, 299, 3, IPC_NOWAIT);
    r.rcv(q, 300, 3, IPC_NOWAIT);
    // Larger than MSGMAX, and the largest there is.
    r.snd(q, 5, &seeded_bytes(2, max as usize), 0);
    r.rcv(q, max - 1, 0, IPC_NOWAIT);
    r.rcv(q, max + 1, 0, IPC_NOWAIT | MSG_COPY);
    r.rcv(q, i64::MAX, 0, IPC_NOWAIT);
    r.snd(q, 5, b"five", 0);
    r.rcv(q, 1 << 40, 5, IPC_NOWAIT);
    // A negative size: EINVAL, before the id and before ENOMSG.
    r.snd(q, 6, b"six", 0);
    r.rcv(q, -1, 0, IPC_NOWAIT);
    r.rcv(q, -1, 0, 0);
    r.rcv(q, i64::MIN, 0, IPC_NOWAIT | MSG_NOERROR);
    r.rcv(q, -1, 99, IPC_NOWAIT);
    r.rcv(q, -1, 0, IPC_NOWAIT | MSG_COPY);
    let stale = r.queue();
    r.rmid(stale);
    r.rcv(stale, -1, 0, IPC_NOWAIT);
    r.rcv(-1, -1, 0, IPC_NOWAIT);
    r.stat(q);
    r.rmid(q);
}

fn msg_copy<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    // An empty queue.
    r.copy(q, 0);
    r.snd(q, 1, b"a", 0);
    r.snd(q, 2, b"bb", 0);
    r.snd(q, 1, b"ccc", 0);
    r.snd(q, 3, b"", 0);
    // Positions from 0; past the end or negative: ENOMSG.
    for position in [0, 1, 2, 3, 4, 5, -1, i64::MIN, i64::MAX] {
        r.copy(q, position);
    }
    // Nothing moved, and no receive is recorded.
    r.stat(q);
    // MSG_COPY needs IPC_NOWAIT and refuses MSG_EXCEPT.
    r.rcv(q, 100, 0, MSG_COPY);
    r.rcv(q, 100, 0, MSG_COPY | MSG_EXCEPT);
    r.rcv(q, 100, 0, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT);
    r.rcv(q, 100, 9, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT);
    r.rcv(q, 100, 1, MSG_COPY | MSG_NOERROR | IPC_NOWAIT);
    // … before the id.
    let stale = r.queue();
    r.rmid(stale);
    r.rcv(stale, 100, 0, MSG_COPY);
    r.rcv(-1, 100, 0, MSG_COPY | MSG_EXCEPT);
    r.rcv(stale, 100, 0, MSG_COPY | IPC_NOWAIT);
    r.rcv(-1, 100, 0, MSG_COPY | IPC_NOWAIT);
    // A buffer too small: E2BIG, or with MSG_NOERROR …
    r.rcv(q, 2, 2, MSG_COPY | IPC_NOWAIT);
    r.rcv(q, 1, 1, MSG_COPY | IPC_NOWAIT);
    r.rcv(q, 0, 3, MSG_COPY | IPC_NOWAIT);
    r.rcv(q, 2, 1, MSG_COPY | IPC_NOWAIT);
    r.stat(q);
    // Positions shift when a message before them goes.
    r.take(q, 2);
    r.copy(q, 1);
    r.copy(q, 2);
    r.copy(q, 3);
    r.take(q, 0);
    r.copy(q, 0);
    r.stat(q);
    r.rmid(q);
}

fn msg_copy_with_noerror_and_a_small_buffer<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    r.snd(q, 1, b"0123456789", 0);
    r.rcv(q, 4, 0, MSG_COPY | MSG_NOERROR | IPC_NOWAIT);
    r.rcv(q, 0, 0, MSG_COPY | MSG_NOERROR | IPC_NOWAIT);
    r.rcv(q, 10, 0, MSG_COPY | MSG_NOERROR | IPC_NOWAIT);
    r.rcv(q, 11, 0, MSG_COPY | MSG_NOERROR | IPC_NOWAIT);
    r.stat(q);
    r.rmid(q);
}

/// Whether each time moved between two IPC_STATs.
fn moved<W: SysV>(r: &mut Run<W>, what: &str, before: Option<Stat>, after: Option<Stat>) {
    if let (Some(b), Some(a)) = (before, after) {
        r.note(format!(
            "{what}: stime moved {}, rtime moved {}, ctime moved {}",
            a.stime != b.stime,
            a.rtime != b.rtime,
            a.ctime != b.ctime
        ));
    }
}

/// IPC_STAT after each step: counts, pids, times; and which calls stamp
/// which time. After a second boundary, a time stamped again differs from
/// before it: each call's stamps show against the IPC_STAT before it.
fn stat_after_each_step<W: SysV>(r: &mut Run<W>) {
    let key = r.new_key();
    let q = r.msgget(key, IPC_CREAT | IPC_EXCL | 0o640);
    r.stat(q);
    r.snd(q, 1, b"hello", 0);
    r.stat(q);
    r.snd(q, 2, b"", 0);
    r.stat(q);
    r.take(q, 2);
    r.stat(q);
    r.take(q, 1);
    r.stat(q);
    r.take(q, 0);
    r.snd(q, 1, b"x", 0);
    r.set(q, 0o640, 1);
    let before = r.stat(q);
    r.tick();
    // Calls that fail stamp nothing, and neither does MSG_COPY.
    r.snd(q, 1, b"y", IPC_NOWAIT);
    r.rcv(q, 0, 0, IPC_NOWAIT);
    r.take(q, 5);
    r.rcv(q, -1, 0, IPC_NOWAIT);
    r.snd(q, 0, b"z", 0);
    r.snd(q, 1, &seeded_bytes(1, msgmax() + 1), 0);
    r.set(q, 0o644, msgmnb() + 1);
    r.copy(q, 0);
    let after = r.stat(q);
    moved(r, "after failed calls and MSG_COPY", before, after);
    // A receive stamps rtime only, IPC_SET ctime only, a send stime only.
    r.take(q, 0);
    let after_take = r.stat(q);
    moved(r, "after a receive", after, after_take);
    r.set(q, 0o600, msgmnb());
    let after_set = r.stat(q);
    moved(r, "after IPC_SET", after_take, after_set);
    r.snd(q, 3, b"three", 0);
    let after_send = r.stat(q);
    moved(r, "after a send", after_set, after_send);
    r.tick();
    // IPC_SET to the same values still stamps ctime.
    r.set(q, 0o600, msgmnb());
    let after_same = r.stat(q);
    moved(
        r,
        "after an IPC_SET that changes nothing",
        after_send,
        after_same,
    );
    r.rmid(q);
}

fn ipc_set<W: SysV>(r: &mut Run<W>) {
    let (uid, gid) = euid_egid();
    let q = r.queue();
    // The permission bits only.
    r.set(q, 0o640, msgmnb());
    r.stat(q);
    r.set(q, 0o7777, msgmnb());
    r.stat(q);
    r.set(q, 0o177_777, msgmnb());
    r.stat(q);
    r.set(q, 0, msgmnb());
    r.stat(q);
    // Root may still use a queue of mode 0 (CAP_IPC_OWNER).
    r.snd(q, 1, b"mode 0", 0);
    r.copy(q, 0);
    // msg_qbytes: lowering keeps the messages; above MSGMNB needs
    // CAP_SYS_RESOURCE, which root here lacks, and nothing changes.
    r.snd(q, 1, &seeded_bytes(1, 1000), 0);
    r.set(q, 0o600, 10);
    r.stat(q);
    r.set(q, 0o644, msgmnb() + 1);
    r.set(q, 0o644, u64::MAX);
    r.set(q, 0o644, i32::MAX as u64 + 1);
    r.set(q, 0o644, u32::MAX.into());
    r.stat(q);
    r.set(q, 0o600, msgmnb());
    r.stat(q);
    r.set(q, 0o600, msgmnb() - 1);
    r.stat(q);
    // Owner and group.
    r.set_ids(q, 4242, 4343, 0o660, msgmnb());
    r.stat(q);
    r.set_ids(q, uid, gid, 0o600, msgmnb());
    r.stat(q);
    // Bad ids.
    let stale = r.queue();
    r.rmid(stale);
    r.set(stale, 0o600, msgmnb());
    r.set(-1, 0o600, msgmnb());
    r.set(stale, 0o600, msgmnb() + 1);
    r.set(i32::MAX, 0o600, 10);
    r.stat(stale);
    r.stat(-1);
    r.stat(i32::MIN);
    r.rmid(-1);
    r.rmid(i32::MAX);
    r.rmid(q);
}

/// msg_qbytes of 2^32 and more: the kernel reads the value IPC_SET gives as
/// an `int` (`msgctl_down`), so only its low 32 bits count.
fn ipc_set_qbytes_beyond_32_bits<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    r.snd(q, 1, b"x", 0);
    r.set(q, 0o600, 1 << 32);
    r.stat(q);
    r.snd(q, 1, b"y", IPC_NOWAIT);
    r.set(q, 0o600, (1 << 32) + 100);
    r.stat(q);
    r.set(q, 0o600, 0xffff_ffff_0000_4000);
    r.stat(q);
    r.set(q, 0o600, (1 << 33) + msgmnb() + 1);
    r.stat(q);
    r.rmid(q);
}

/// IPC_SET with a uid or gid that is no id (-1): EINVAL, nothing changed.
fn ipc_set_refuses_uid_and_gid_minus_one<W: SysV>(r: &mut Run<W>) {
    let (uid, gid) = euid_egid();
    let q = r.queue();
    r.set_ids(q, u32::MAX, gid, 0o640, msgmnb());
    r.set_ids(q, uid, u32::MAX, 0o640, msgmnb());
    r.set_ids(q, u32::MAX, u32::MAX, 0o640, msgmnb());
    r.stat(q);
    r.rmid(q);
}

fn a_removed_queue_is_gone<W: SysV>(r: &mut Run<W>) {
    let key = r.new_key();
    let q = r.msgget(key, IPC_CREAT | 0o600);
    r.snd(q, 1, b"one", 0);
    r.snd(q, 2, b"two", 0);
    r.rmid(q);
    r.snd(q, 1, b"x", 0);
    r.snd(q, 1, b"x", IPC_NOWAIT);
    r.take(q, 0);
    r.rcv(q, 100, 0, 0);
    r.rcv(q, 100, 1, MSG_EXCEPT);
    r.copy(q, 0);
    r.rcv(q, 0, 0, IPC_NOWAIT);
    r.stat(q);
    r.set(q, 0o600, msgmnb());
    r.rmid(q);
    r.msgget(key, 0);
    // A new queue under the key has another id, and is empty; the old id
    // stays dead.
    let again = r.msgget(key, IPC_CREAT | 0o600);
    r.note(format!("the new queue has a new id: {}", again != q));
    r.stat(again);
    r.take(again, 0);
    r.snd(q, 1, b"x", 0);
    r.take(q, 0);
    r.rmid(again);
    r.rmid(again);
}

fn ipc_info<W: SysV>(r: &mut Run<W>) {
    let q = r.queue();
    let result = r.w.info();
    r.note(format!("IPC_INFO = {result:?}"));
    r.rmid(q);
}

/// A long random run on two queues: sends and IPC_NOWAIT receives of random
/// types, sizes and flags, IPC_STAT, IPC_SET of msg_qbytes, and now and then
/// a queue removed (and used once more) and made anew.
fn random_traffic<W: SysV>(r: &mut Run<W>, seed: u64) {
    const STEPS: usize = 3000;
    let mut rng = Rng::new(seed);
    let max = msgmax() as u64;
    let mnb = msgmnb();
    let mut queues = [r.queue(), r.queue()];
    for step in 0..STEPS {
        r.step = Some(step);
        let which = rng.below(2) as usize;
        let q = queues[which];
        match rng.below(100) {
            0..=44 => {
                let mtype = match rng.below(25) {
                    0 => 0,
                    1 => -1 - rng.below(3) as i64,
                    2 => i64::MAX - rng.below(2) as i64,
                    _ => 1 + rng.below(6) as i64,
                };
                let len = match rng.below(20) {
                    0..=5 => rng.below(8),
                    6..=14 => rng.below(100),
                    15..=18 => rng.below(2000),
                    _ => max - 1 + rng.below(3),
                };
                let data = seeded_bytes(rng.next_u64(), len as usize);
                let flags = IPC_NOWAIT | if rng.below(10) == 0 { MSG_NOERROR } else { 0 };
                r.snd(q, mtype, &data, flags);
            }
            45..=89 => {
                let mut flags = IPC_NOWAIT;
                if rng.below(5) == 0 {
                    flags |= MSG_EXCEPT;
                }
                if rng.below(4) == 0 {
                    flags |= MSG_NOERROR;
                }
                let msgtyp = if rng.below(6) == 0 {
                    flags |= MSG_COPY;
                    if rng.below(10) == 0 {
                        // Without IPC_NOWAIT: EINVAL, never a wait.
                        flags &= !IPC_NOWAIT;
                    }
                    rng.below(6) as i64 - 1
                } else {
                    match rng.below(12) {
                        0..=2 => 0,
                        3..=5 => 1 + rng.below(7) as i64,
                        6..=8 => -1 - rng.below(7) as i64,
                        9 => i64::MIN,
                        10 => i64::MAX,
                        _ => -i64::MAX,
                    }
                };
                let bufsz = match rng.below(12) {
                    0 => 0,
                    1..=3 => rng.below(64) as i64,
                    4..=7 => max as i64,
                    8..=9 => rng.below(3000) as i64,
                    10 => -1,
                    _ => [i64::MIN, i64::MAX, max as i64 + 1][rng.below(3) as usize],
                };
                r.rcv(q, bufsz, msgtyp, flags);
            }
            90..=94 => {
                r.stat(q);
            }
            95..=97 => {
                let qbytes = match rng.below(5) {
                    0 => rng.below(50),
                    1 => rng.below(2000),
                    2 => rng.below(mnb),
                    3 => mnb,
                    _ => mnb + 1 + rng.below(1000),
                };
                let mode = 0o600 | rng.below(0o100) as u32;
                r.set(q, mode, qbytes);
            }
            _ => {
                r.rmid(q);
                r.snd(q, 1, b"late", IPC_NOWAIT);
                r.take(q, 0);
                queues[which] = r.queue();
            }
        }
    }
    r.step = None;
    for q in queues {
        r.stat(q);
        drain(r, q);
        r.rmid(q);
    }
}

fn random_traffic_seed_1<W: SysV>(r: &mut Run<W>) {
    random_traffic(r, 1);
}

fn random_traffic_seed_2<W: SysV>(r: &mut Run<W>) {
    random_traffic(r, 2);
}

fn random_traffic_seed_3<W: SysV>(r: &mut Run<W>) {
    random_traffic(r, 0x5eed);
}

differential!(msgget_checks_keys_and_flags_as_the_kernel_does => msgget_flags_and_errors);
differential!(msgsnd_reports_its_errors_in_the_kernels_order => msgsnd_errors_in_order);
differential!(a_queue_is_full_by_bytes_and_by_count_as_in_the_kernel => full_by_bytes_and_by_count);
differential!(msgmnb_empty_messages_fill_a_queue_by_count_as_in_the_kernel => full_by_count_at_msgmnb);
differential!(msgrcv_selects_by_type_as_the_kernel_does => msgrcv_by_type);
differential!(msgrcv_checks_buffer_sizes_as_the_kernel_does => msgrcv_buffer_sizes);
differential!(msg_copy_copies_by_position_as_the_kernel_does => msg_copy);
differential!(
    msg_copy_with_noerror_and_a_small_buffer_fails_as_in_the_kernel
        => msg_copy_with_noerror_and_a_small_buffer
);
differential!(ipc_stat_counts_pids_and_times_as_the_kernel_does => stat_after_each_step);
differential!(ipc_set_changes_mode_owner_and_qbytes_as_in_the_kernel => ipc_set);
differential!(
    ipc_set_uses_the_low_32_bits_of_qbytes_as_the_kernel_does => ipc_set_qbytes_beyond_32_bits
);
differential!(
    ipc_set_refuses_uid_or_gid_minus_one_as_the_kernel_does => ipc_set_refuses_uid_and_gid_minus_one
);
differential!(every_call_on_a_removed_queue_fails_with_einval => a_removed_queue_is_gone);
differential!(ipc_info_reports_the_kernels_limits => ipc_info);
differential!(
    random_traffic_matches_the_kernel_seed_1 => random_traffic_seed_1
);
differential!(
    random_traffic_matches_the_kernel_seed_2 => random_traffic_seed_2
);
differential!(
    random_traffic_matches_the_kernel_seed_3 => random_traffic_seed_3
);

// ---------------------------------------------------------------------------
// Permission checks that bite even for root: a helper process either drops
// CAP_IPC_OWNER and CAP_SYS_ADMIN from its effective set (and so is the
// queue's owner with no privilege), or becomes another user, in the queue's
// group or not; it probes a queue under a series of modes, in each world.

/// The helper's identities: the owner without privileges, a user of the
/// queue's group, and a stranger.
const PROBERS: [&str; 3] = ["capless", "as=4242:0", "as=4242:4343"];

/// The modes probed.
const MODES: [u32; 9] = [0, 0o400, 0o200, 0o600, 0o040, 0o020, 0o004, 0o002, 0o066];

/// Makes a queue with a fresh key holding "probe" (type 7), and runs the
/// helper's probe on it as each prober under each mode.
fn permission_probe<W: SysV>(w: &W, arena: &str) -> Vec<String> {
    let key = w.new_key();
    let mut lines = Vec::new();
    let mut id = w.msgget(key, IPC_CREAT | IPC_EXCL | 0o600).unwrap();
    w.msgsnd(id, 7, b"probe", 0).unwrap();
    let (uid, gid) = euid_egid();
    for mode in MODES {
        let set = w.set(id, uid, gid, mode, msgmnb());
        lines.push(format!("mode {mode:#o}: IPC_SET = {set:?}"));
        for prober in PROBERS {
            let mut helper = Helper::spawn(
                std::path::Path::new(HELPER),
                &[
                    "perm-probe",
                    arena,
                    &key.to_string(),
                    &id.to_string(),
                    prober,
                    &mode.to_string(),
                ],
            );
            for line in helper.lines_until("end") {
                lines.push(format!("mode {mode:#o}, {prober}: {line}"));
            }
            let status = helper.0.wait().unwrap();
            lines.push(format!("mode {mode:#o}, {prober}: {status}"));
            // A prober that removed the queue: start again with a new one.
            if w.stat(id) == Err(libc::EINVAL) {
                id = w.msgget(key, IPC_CREAT | IPC_EXCL | 0o600).unwrap();
                w.msgsnd(id, 7, b"probe", 0).unwrap();
            }
        }
    }
    w.rmid(id).unwrap();
    lines
}

#[test]
fn mode_bits_and_owners_are_checked_as_the_kernel_checks_them() {
    let _watchdog = Watchdog::new("permission probe", Duration::from_secs(60));
    let kernel = permission_probe(&Kernel::new(), "kernel");
    // Other users must be able to open the arena.
    let usysv_world = Usysv::with_mode("perm", 0o666);
    let arena = usysv_world.ipc.file().path().to_str().unwrap().to_string();
    let usysv = permission_probe(&usysv_world, &arena);
    usysv_tests::show_transcript("permission probe", &kernel);
    assert!(
        kernel.iter().any(|line| line.ends_with("err EACCES")),
        "the probe never saw EACCES: did it keep CAP_IPC_OWNER? {kernel:?}"
    );
    usysv_tests::assert_same(&kernel, &usysv);
}
