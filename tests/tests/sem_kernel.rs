//! Differential tests: usysv's semaphores against the Linux kernel's.
//!
//! Every scenario is written once, generic over [`SysV`], and run twice: on
//! the kernel (its real `semget`, `semop`, `semtimedop` and `semctl`, through
//! `libc`) and on a fresh usysv arena. Each run writes a transcript of every
//! call and its result; the two transcripts must be equal.
//!
//! Ids, keys and pids differ between the two worlds, so a transcript never
//! holds one: sets are named by tokens in order of appearance (`set0`,
//! `set1`, …), keys likewise (`k0`, …), a pid by what it is (`0`, `me`,
//! `other`) and a time by whether it is `0` or `now`. Numbers that mean the
//! same in both worlds (uids, modes, values, errnos) appear as they are.
//!
//! Every kernel set a scenario makes is removed when its world is dropped,
//! whether or not the scenario got that far. `USYSV_SHOW_TRANSCRIPTS=1` (with
//! `--nocapture`) prints the kernel's transcript of every scenario, and
//! `USYSV_TRACE=1` every line of both as it happens.

use std::fmt::Display;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE};
use usysv_platform::usysv_core::sem::{SemBuf, SemQuery, Timeout, SEM_UNDO};
use usysv_platform::usysv_core::{Errno, Limits};
use usysv_platform::{Credentials, Ipc};
use usysv_tests::{Helper, TempDir, Watchdog, SMALL_LIMITS};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-test-helper");

/// A call's result: the value, or the errno.
type R<T> = Result<T, i32>;

/// The `semctl` questions about one semaphore.
#[derive(Clone, Copy, Debug)]
enum Query {
    /// `GETVAL`.
    Val,
    /// `GETPID`.
    Pid,
    /// `GETNCNT`.
    Ncnt,
    /// `GETZCNT`.
    Zcnt,
}

/// What `IPC_STAT` says, in the fields both worlds have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    nsems: u64,
    otime: i64,
    ctime: i64,
}

/// The semaphore calls of System V IPC, as one world offers them.
trait SysV: Sync {
    /// "kernel" or "usysv".
    fn name(&self) -> &'static str;
    /// A key that names no set yet.
    fn new_key(&self) -> i32;
    /// `semget`.
    fn semget(&self, key: i32, nsems: i32, flags: i32) -> R<i32>;
    /// `semop`.
    fn semop(&self, id: i32, ops: &[SemBuf]) -> R<()>;
    /// `semtimedop`, with the timeout's two fields as given (they may be bad).
    fn semtimedop(&self, id: i32, ops: &[SemBuf], sec: i64, nsec: i64) -> R<()>;
    /// `semctl(GETVAL | GETPID | GETNCNT | GETZCNT)`.
    fn query(&self, id: i32, num: i32, query: Query) -> R<i32>;
    /// `semctl(GETALL)`.
    fn getall(&self, id: i32) -> R<Vec<u16>>;
    /// `semctl(SETVAL)`.
    fn setval(&self, id: i32, num: i32, value: i32) -> R<()>;
    /// `semctl(SETALL)`: `values` holds one value per semaphore.
    fn setall(&self, id: i32, values: &[u16]) -> R<()>;
    /// `semctl(IPC_STAT)`.
    fn stat(&self, id: i32) -> R<Stat>;
    /// `semctl(IPC_SET)`.
    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32) -> R<()>;
    /// `semctl(IPC_RMID)`.
    fn rmid(&self, id: i32) -> R<()>;
    /// Removes every set this world made: ends a scenario that hangs.
    fn purge(&self);
}

/// The kernel's `/proc/sys/kernel/sem`: SEMMSL, SEMMNS, SEMOPM, SEMMNI.
fn kernel_sem_limits() -> [u32; 4] {
    let text = std::fs::read_to_string("/proc/sys/kernel/sem").unwrap();
    let values: Vec<u32> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    [values[0], values[1], values[2], values[3]]
}

fn semmsl() -> i32 {
    kernel_sem_limits()[0] as i32
}

fn semopm() -> usize {
    kernel_sem_limits()[2] as usize
}

/// The usysv limits that match the kernel's semaphore limits.
fn usysv_limits() -> Limits {
    let [semmsl, semmns, semopm, _] = kernel_sem_limits();
    Limits {
        semmsl,
        semmns,
        semopm,
        ..SMALL_LIMITS
    }
}

// ---------------------------------------------------------------------------
// The kernel.

/// The kernel's System V semaphores; removes every set it made when dropped.
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

use usysv_tests::kernel::last_errno;

fn checked(ret: libc::c_long) -> R<i32> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(ret as i32)
    }
}

/// `semctl` for the commands that take an integer or no argument.
fn semctl_int(id: i32, num: i32, cmd: i32, arg: libc::c_long) -> R<i32> {
    // SAFETY: for these commands the kernel reads `union semun` as an integer
    // (or not at all); a `long` fills the union's register slot.
    checked(unsafe { libc::semctl(id, num, cmd, arg) }.into())
}

impl SysV for Kernel {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn new_key(&self) -> i32 {
        // SAFETY: semget has no memory arguments.
        usysv_tests::kernel::unused_key(|key| unsafe { libc::semget(key, 0, 0) })
    }

    fn semget(&self, key: i32, nsems: i32, flags: i32) -> R<i32> {
        // SAFETY: semget has no memory arguments.
        let id = checked(unsafe { libc::semget(key, nsems, flags) }.into())?;
        self.made.lock().unwrap().push(id);
        Ok(id)
    }

    fn semop(&self, id: i32, ops: &[SemBuf]) -> R<()> {
        // SAFETY: `SemBuf` is `#[repr(C)]` with the layout of `struct sembuf`;
        // the kernel reads `ops.len()` of them and writes none.
        let ret = unsafe { libc::semop(id, ops.as_ptr() as *mut libc::sembuf, ops.len()) };
        checked(ret.into()).map(drop)
    }

    fn semtimedop(&self, id: i32, ops: &[SemBuf], sec: i64, nsec: i64) -> R<()> {
        let timeout = libc::timespec {
            tv_sec: sec as libc::time_t,
            tv_nsec: nsec as libc::c_long,
        };
        // SAFETY: as for semop, and `timeout` lives on this frame.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_semtimedop,
                id,
                ops.as_ptr(),
                ops.len(),
                &timeout as *const libc::timespec,
            )
        };
        checked(ret).map(drop)
    }

    fn query(&self, id: i32, num: i32, query: Query) -> R<i32> {
        let cmd = match query {
            Query::Val => libc::GETVAL,
            Query::Pid => libc::GETPID,
            Query::Ncnt => libc::GETNCNT,
            Query::Zcnt => libc::GETZCNT,
        };
        semctl_int(id, num, cmd, 0)
    }

    fn getall(&self, id: i32) -> R<Vec<u16>> {
        // Room for the largest set: the kernel writes `sem_nsems` values.
        let mut values = vec![0u16; semmsl().max(1) as usize];
        // SAFETY: `values` has room for any set's values.
        let ret = unsafe { libc::semctl(id, 0, libc::GETALL, values.as_mut_ptr()) };
        checked(ret.into())?;
        values.truncate(self.stat(id)?.nsems as usize);
        Ok(values)
    }

    fn setval(&self, id: i32, num: i32, value: i32) -> R<()> {
        semctl_int(id, num, libc::SETVAL, libc::c_long::from(value)).map(drop)
    }

    fn setall(&self, id: i32, values: &[u16]) -> R<()> {
        // SAFETY: the caller passes one value per semaphore; the kernel reads
        // that many and writes none.
        let ret = unsafe { libc::semctl(id, 0, libc::SETALL, values.as_ptr()) };
        checked(ret.into()).map(drop)
    }

    fn stat(&self, id: i32) -> R<Stat> {
        // SAFETY: an all-zero semid_ds is a valid value (integers only).
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a semid_ds the kernel (through glibc) fills in.
        let ret = unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) };
        checked(ret.into())?;
        Ok(Stat {
            key: ds.sem_perm.__key,
            uid: ds.sem_perm.uid,
            gid: ds.sem_perm.gid,
            cuid: ds.sem_perm.cuid,
            cgid: ds.sem_perm.cgid,
            mode: u32::from(ds.sem_perm.mode),
            nsems: ds.sem_nsems,
            otime: ds.sem_otime,
            ctime: ds.sem_ctime,
        })
    }

    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32) -> R<()> {
        // SAFETY: as in `stat`.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        ds.sem_perm.uid = uid;
        ds.sem_perm.gid = gid;
        ds.sem_perm.mode = mode as u16;
        // SAFETY: the kernel reads `ds`.
        let ret = unsafe { libc::semctl(id, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds) };
        checked(ret.into()).map(drop)
    }

    fn rmid(&self, id: i32) -> R<()> {
        semctl_int(id, 0, libc::IPC_RMID, 0).map(drop)
    }

    fn purge(&self) {
        for &id in self.made.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // Already removed is fine: EINVAL.
            let _ = semctl_int(id, 0, libc::IPC_RMID, 0);
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
    fn new(test: &str) -> Usysv {
        let dir = TempDir::new(&format!("semk-{test}"));
        let ipc = Ipc::open(&dir.join("arena"), &usysv_limits(), 0o600).unwrap();
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

    fn semget(&self, key: i32, nsems: i32, flags: i32) -> R<i32> {
        let id = raw(self.ipc.semget(key, nsems, flags))?;
        self.made.lock().unwrap().push(id);
        Ok(id)
    }

    fn semop(&self, id: i32, ops: &[SemBuf]) -> R<()> {
        raw(self.ipc.semop(id, ops))
    }

    fn semtimedop(&self, id: i32, ops: &[SemBuf], sec: i64, nsec: i64) -> R<()> {
        // The namespace takes the raw fields, bad ones included.
        raw(self.ipc.namespace().semtimedop(
            id,
            ops,
            Some(Timeout { sec, nsec }),
            &self.creds.as_cred(),
        ))
    }

    fn query(&self, id: i32, num: i32, query: Query) -> R<i32> {
        let query = match query {
            Query::Val => SemQuery::Value,
            Query::Pid => SemQuery::Pid,
            Query::Ncnt => SemQuery::WaitingToDecrease,
            Query::Zcnt => SemQuery::WaitingForZero,
        };
        raw(self.ipc.semctl_query(id, num, query))
    }

    fn getall(&self, id: i32) -> R<Vec<u16>> {
        raw(self.ipc.semctl_getall(id))
    }

    fn setval(&self, id: i32, num: i32, value: i32) -> R<()> {
        raw(self.ipc.semctl_setval(id, num, value))
    }

    fn setall(&self, id: i32, values: &[u16]) -> R<()> {
        raw(self.ipc.semctl_setall(id, values))
    }

    fn stat(&self, id: i32) -> R<Stat> {
        let ds = raw(self.ipc.semctl_stat(id))?;
        Ok(Stat {
            key: ds.perm.key,
            uid: ds.perm.uid,
            gid: ds.perm.gid,
            cuid: ds.perm.cuid,
            cgid: ds.perm.cgid,
            mode: ds.perm.mode,
            nsems: u64::from(ds.nsems),
            otime: ds.otime,
            ctime: ds.ctime,
        })
    }

    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32) -> R<()> {
        raw(self.ipc.semctl_set(id, uid, gid, mode))
    }

    fn rmid(&self, id: i32) -> R<()> {
        raw(self.ipc.semctl_rmid(id))
    }

    fn purge(&self) {
        for &id in self.made.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = self.ipc.semctl_rmid(id);
        }
    }
}

// ---------------------------------------------------------------------------
// Transcripts.

use usysv_tests::{errno_name, euid_egid, ok_or_errno, pid_name, trace, Names};

/// An operation.
fn op(num: u16, op: i16) -> SemBuf {
    SemBuf {
        sem_num: num,
        sem_op: op,
        sem_flg: 0,
    }
}

/// An operation with `IPC_NOWAIT`.
fn nw(num: u16, op: i16) -> SemBuf {
    SemBuf {
        sem_num: num,
        sem_op: op,
        sem_flg: IPC_NOWAIT as i16,
    }
}

fn op_text(op: &SemBuf) -> String {
    let mut text = format!("{}:{:+}", op.sem_num, op.sem_op);
    if i32::from(op.sem_flg) & IPC_NOWAIT != 0 {
        text.push_str(":nowait");
    }
    if op.sem_flg & SEM_UNDO != 0 {
        text.push_str(":undo");
    }
    text
}

fn ops_text(ops: &[SemBuf]) -> String {
    if ops.len() > 8 {
        return format!("[{} ops, the first {}]", ops.len(), op_text(&ops[0]));
    }
    let parts: Vec<String> = ops.iter().map(op_text).collect();
    format!("[{}]", parts.join(" "))
}

/// One world's run of a scenario: the world, and the transcript so far.
struct Run<'w, W: SysV> {
    w: &'w W,
    lines: Vec<String>,
    names: Names,
}

impl<'w, W: SysV> Run<'w, W> {
    fn new(w: &'w W) -> Self {
        Run {
            w,
            lines: Vec::new(),
            names: Names::new("set"),
        }
    }

    fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        trace(self.w.name(), &line);
        self.lines.push(line);
    }

    fn result<T: Display>(result: &R<T>) -> String {
        match result {
            Ok(value) => value.to_string(),
            Err(errno) => errno_name(*errno),
        }
    }

    fn new_key(&mut self) -> i32 {
        let key = self.w.new_key();
        self.names.learn_key(key);
        key
    }

    /// `semget`; the id, or -1.
    fn semget(&mut self, key: i32, nsems: i32, flags: i32) -> i32 {
        let result = self.w.semget(key, nsems, flags);
        let shown = self.names.returned_id(result);
        let key = self.names.key(key);
        self.note(format!("semget({key}, {nsems}, {flags:#o}) = {shown}"));
        result.unwrap_or(-1)
    }

    fn semop(&mut self, id: i32, ops: &[SemBuf]) {
        let result = self.w.semop(id, ops);
        let line = format!(
            "semop({}, {}) = {}",
            self.names.id(id),
            ops_text(ops),
            ok_or_errno(&result)
        );
        self.note(line);
    }

    fn timed(&mut self, id: i32, ops: &[SemBuf], sec: i64, nsec: i64) {
        let result = self.w.semtimedop(id, ops, sec, nsec);
        let line = format!(
            "semtimedop({}, {}, {sec}s {nsec}ns) = {}",
            self.names.id(id),
            ops_text(ops),
            ok_or_errno(&result)
        );
        self.note(line);
    }

    fn query(&mut self, id: i32, num: i32, query: Query) {
        let result = self.w.query(id, num, query);
        let shown = match (query, result) {
            (Query::Pid, Ok(pid)) => pid_name(pid).to_string(),
            (_, result) => Self::result(&result),
        };
        let name = match query {
            Query::Val => "GETVAL",
            Query::Pid => "GETPID",
            Query::Ncnt => "GETNCNT",
            Query::Zcnt => "GETZCNT",
        };
        let line = format!("{name}({}, {num}) = {shown}", self.names.id(id));
        self.note(line);
    }

    fn getval(&mut self, id: i32, num: i32) {
        self.query(id, num, Query::Val);
    }

    fn getall(&mut self, id: i32) {
        let result = self.w.getall(id);
        let shown = match &result {
            Ok(values) if values.len() > 8 => {
                let nonzero: Vec<String> = (0..)
                    .zip(values)
                    .filter(|(_, &v)| v != 0)
                    .map(|(i, v)| format!("[{i}]={v}"))
                    .take(16)
                    .collect();
                format!("{} values, nonzero: {}", values.len(), nonzero.join(" "))
            }
            Ok(values) => format!("{values:?}"),
            Err(errno) => errno_name(*errno),
        };
        let line = format!("GETALL({}) = {shown}", self.names.id(id));
        self.note(line);
    }

    fn setval(&mut self, id: i32, num: i32, value: i32) {
        let result = self.w.setval(id, num, value);
        let line = format!(
            "SETVAL({}, {num}, {value}) = {}",
            self.names.id(id),
            ok_or_errno(&result)
        );
        self.note(line);
    }

    fn setall(&mut self, id: i32, values: &[u16]) {
        let result = self.w.setall(id, values);
        let line = format!(
            "SETALL({}, {values:?}) = {}",
            self.names.id(id),
            ok_or_errno(&result)
        );
        self.note(line);
    }

    fn stat(&mut self, id: i32) {
        let result = self.w.stat(id);
        let shown = match &result {
            Ok(s) => format!(
                "key={} uid={} gid={} cuid={} cgid={} mode={:#o} nsems={} otime={} ctime={}",
                self.names.key(s.key),
                s.uid,
                s.gid,
                s.cuid,
                s.cgid,
                s.mode,
                s.nsems,
                self.names.time(s.otime),
                self.names.time(s.ctime),
            ),
            Err(errno) => errno_name(*errno),
        };
        let line = format!("IPC_STAT({}) = {shown}", self.names.id(id));
        self.note(line);
    }

    fn set(&mut self, id: i32, uid: u32, gid: u32, mode: u32) {
        let result = self.w.set(id, uid, gid, mode);
        let line = format!(
            "IPC_SET({}, uid {uid}, gid {gid}, mode {mode:#o}) = {}",
            self.names.id(id),
            ok_or_errno(&result)
        );
        self.note(line);
    }

    /// `IPC_SET` keeping this process as owner.
    fn set_mode(&mut self, id: i32, mode: u32) {
        let (uid, gid) = euid_egid();
        self.set(id, uid, gid, mode);
    }

    fn rmid(&mut self, id: i32) {
        let result = self.w.rmid(id);
        let line = format!("IPC_RMID({}) = {}", self.names.id(id), ok_or_errno(&result));
        self.note(line);
    }

    /// Polls `what` for up to 5 s; notes whether it came true.
    fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&W) -> bool) -> bool {
        let start = Instant::now();
        let mut held = cond(self.w);
        while !held && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
            held = cond(self.w);
        }
        self.note(format!(
            "until {what}: {}",
            if held { "yes" } else { "NEVER" }
        ));
        held
    }

    /// Joins a thread blocked in a call on set `id`, noting its result. If it
    /// does not finish within 5 s the set is removed, so that it does.
    fn join(&mut self, name: &str, id: i32, thread: ScopedJoinHandle<'_, R<()>>) {
        let start = Instant::now();
        while !thread.is_finished() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if !thread.is_finished() {
            self.note(format!("{name} still blocked after 5 s: removing the set"));
            let _ = self.w.rmid(id);
        }
        let result = thread.join().unwrap();
        self.note(format!("{name} returned {}", ok_or_errno(&result)));
    }
}

/// Runs `scenario` on the kernel and on usysv and compares the transcripts.
macro_rules! differential {
    ($(#[$attr:meta])* $test:ident => $scenario:ident) => {
        $(#[$attr])*
        #[test]
        fn $test() {
            let _watchdog = Watchdog::new(stringify!($test), Duration::from_secs(60));
            let kernel = transcript(&Kernel::new(), $scenario::<Kernel>);
            let usysv = transcript(&Usysv::new(stringify!($test)), $scenario::<Usysv>);
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

fn semget_errors<W: SysV>(r: &mut Run<W>) {
    let msl = semmsl();
    // IPC_PRIVATE: the size is checked first.
    r.semget(IPC_PRIVATE, 0, IPC_CREAT | 0o600);
    r.semget(IPC_PRIVATE, -1, IPC_CREAT | 0o600);
    r.semget(IPC_PRIVATE, i32::MIN, IPC_CREAT | 0o600);
    r.semget(IPC_PRIVATE, msl + 1, IPC_CREAT | 0o600);
    r.semget(IPC_PRIVATE, i32::MAX, IPC_CREAT | 0o600);
    // The largest set there may be.
    let big = r.semget(IPC_PRIVATE, msl, IPC_CREAT | 0o600);
    r.stat(big);
    r.getall(big);
    r.rmid(big);
    // IPC_PRIVATE needs no IPC_CREAT, and IPC_EXCL changes nothing.
    let private = r.semget(IPC_PRIVATE, 1, 0o640);
    r.stat(private);
    let another = r.semget(IPC_PRIVATE, 1, IPC_CREAT | IPC_EXCL | 0o600);
    r.rmid(private);
    r.rmid(another);
    // A key.
    let key = r.new_key();
    r.semget(key, 1, 0);
    r.semget(key, 1, IPC_EXCL | 0o600);
    r.semget(key, 0, IPC_CREAT | 0o600);
    r.semget(key, -1, IPC_CREAT | 0o600);
    let set = r.semget(key, 2, IPC_CREAT | IPC_EXCL | 0o640);
    r.semget(key, 2, IPC_CREAT | IPC_EXCL | 0o640);
    r.semget(key, 3, IPC_CREAT | IPC_EXCL);
    r.semget(key, 1, IPC_CREAT | IPC_EXCL);
    r.semget(key, msl + 1, IPC_CREAT | IPC_EXCL);
    r.semget(key, 3, 0);
    r.semget(key, 3, IPC_CREAT | 0o600);
    r.semget(key, msl + 1, 0);
    r.semget(key, -1, 0);
    r.semget(key, 2, 0);
    r.semget(key, 1, 0);
    r.semget(key, 0, 0);
    r.semget(key, 0, IPC_EXCL);
    r.semget(key, 2, IPC_CREAT | 0o600);
    r.semget(key, 1, 0o600);
    r.stat(set);
    r.rmid(set);
    r.semget(key, 0, 0);
    r.semget(key, 2, 0);
    let again = r.semget(key, 1, IPC_CREAT | 0o600);
    r.note(format!("the new set has a new id: {}", again != set));
    r.stat(again);
    r.semget(key, 2, 0);
    r.rmid(again);
}

fn semop_errors_in_order<W: SysV>(r: &mut Run<W>) {
    let set = r.semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600);
    let stale = r.semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600);
    r.rmid(stale);
    let too_many = vec![op(0, 1); semopm() + 1];
    let too_many_far = vec![op(9, 1); semopm() + 1];
    let most = vec![op(0, 0); semopm()];
    // nsops 0.
    r.semop(set, &[]);
    r.semop(stale, &[]);
    r.timed(set, &[], -1, 0);
    // nsops above SEMOPM, before the id (a positive one), the sem_num and the timeout.
    r.semop(set, &too_many);
    r.semop(stale, &too_many);
    r.semop(set, &too_many_far);
    r.timed(set, &too_many, 0, 1_000_000_000);
    r.timed(stale, &too_many, -1, 0);
    // SEMOPM operations are allowed.
    r.semop(set, &most);
    // A bad timeout, before the id and the sem_num.
    r.timed(set, &[op(0, 1)], 0, 1_000_000_000);
    r.timed(set, &[op(0, 1)], 0, -1);
    r.timed(set, &[op(0, 1)], -1, 0);
    r.timed(set, &[op(0, 1)], i64::MIN, 0);
    r.timed(stale, &[op(0, 1)], 0, 1_000_000_000);
    r.timed(set, &[op(7, 1)], 0, 1_000_000_000);
    r.getall(set);
    // The id, before the sem_num.
    r.semop(-1, &[op(0, 1)]);
    r.semop(stale, &[op(0, 1)]);
    r.semop(stale, &[op(9, 1)]);
    r.semop(i32::MAX, &[op(0, 1)]);
    // The sem_num, before an operation that would block.
    r.semop(set, &[op(2, 1)]);
    r.semop(set, &[op(u16::MAX, 1)]);
    r.semop(set, &[nw(0, -1), op(2, 1)]);
    r.semop(set, &[op(0, 1), nw(1, -1), op(5, 0)]);
    r.timed(set, &[op(0, -1), op(2, 1)], 0, 0);
    r.getall(set);
    // Blocking with IPC_NOWAIT, and a timeout: nothing changes.
    r.semop(set, &[nw(0, -1)]);
    r.semop(set, &[op(0, 1), nw(1, -1)]);
    r.semop(set, &[op(0, 1), op(1, 1), nw(1, -2)]);
    r.getall(set);
    r.timed(set, &[op(1, -1)], 0, 20_000_000);
    r.timed(set, &[op(0, 1), op(1, -1)], 0, 0);
    r.timed(set, &[op(0, 1), op(1, 0)], 0, 0);
    r.getall(set);
    r.query(set, 0, Query::Ncnt);
    r.query(set, 1, Query::Ncnt);
    // The same calls succeed once they can.
    r.semop(set, &[op(1, 1)]);
    r.timed(set, &[op(1, -1)], 0, 20_000_000);
    r.timed(set, &[op(1, 0)], 5, 0);
    r.getall(set);
    r.rmid(set);
}

fn erange_and_all_or_nothing<W: SysV>(r: &mut Run<W>) {
    erange_and_all_or_nothing_on(r, 2);
}

/// As [`erange_and_all_or_nothing`], on a set too large for usysv to keep
/// in the object slot (it keeps up to 29 semaphores there).
fn erange_and_all_or_nothing_on_a_large_set<W: SysV>(r: &mut Run<W>) {
    erange_and_all_or_nothing_on(r, 32);
}

fn erange_and_all_or_nothing_on<W: SysV>(r: &mut Run<W>, nsems: i32) {
    let set = r.semget(IPC_PRIVATE, nsems, IPC_CREAT | 0o600);
    r.semop(set, &[op(0, i16::MAX)]);
    r.semop(set, &[op(0, 1)]);
    r.semop(set, &[nw(0, 1)]);
    r.getall(set);
    // All or nothing: an earlier operation is undone.
    r.semop(set, &[op(1, 5), op(0, 1)]);
    r.semop(set, &[op(1, 5), op(1, i16::MAX)]);
    r.getall(set);
    // In order: whichever fails first decides.
    r.semop(set, &[op(0, 1), nw(1, -1)]);
    r.semop(set, &[nw(1, -1), op(0, 1)]);
    r.timed(set, &[op(0, 1), op(1, -1)], 0, 20_000_000);
    r.timed(set, &[op(1, -1), op(0, 1)], 0, 20_000_000);
    // Down and up again within one call stays in range.
    r.semop(set, &[op(0, -1), op(0, 1)]);
    r.semop(set, &[op(0, 1), op(0, -1)]);
    r.semop(set, &[op(0, i16::MIN + 1), op(0, i16::MAX)]);
    r.getall(set);
    // The most negative operation.
    r.semop(set, &[nw(0, i16::MIN)]);
    r.semop(set, &[op(1, 1), nw(0, i16::MIN)]);
    r.getall(set);
    r.semop(set, &[op(0, -1), op(1, 1), nw(1, i16::MIN)]);
    r.getall(set);
    // SETVAL to the top, then more.
    r.setval(set, 1, 32767);
    r.semop(set, &[op(1, 1)]);
    r.timed(set, &[op(1, 0)], 0, 0);
    r.semop(set, &[nw(1, 0)]);
    r.getall(set);
    r.rmid(set);
}

fn same_semaphore_twice_and_wait_for_zero<W: SysV>(r: &mut Run<W>) {
    let set = r.semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600);
    // Wait-for-zero on zero succeeds at once.
    r.semop(set, &[op(0, 0)]);
    r.semop(set, &[op(0, 0), op(1, 0)]);
    r.semop(set, &[op(0, 2), op(0, -1)]);
    r.getall(set);
    r.semop(set, &[nw(0, -2), op(0, 5)]);
    r.semop(set, &[op(0, 1), op(0, -2)]);
    r.getall(set);
    r.semop(set, &[op(0, 1), nw(0, 0)]);
    r.semop(set, &[op(0, 0), op(0, 1)]);
    r.getall(set);
    r.semop(set, &[nw(0, 0)]);
    r.timed(set, &[op(0, 0)], 0, 20_000_000);
    r.query(set, 0, Query::Zcnt);
    r.semop(set, &[op(0, -1), op(0, 0)]);
    r.semop(set, &[op(0, 1), op(0, -1), op(0, 0)]);
    r.semop(set, &[op(1, 3), op(1, -3), op(1, 1), nw(0, 0)]);
    r.semop(set, &[op(1, -1), nw(1, -1), op(1, 2)]);
    r.getall(set);
    r.semop(set, &[nw(1, 0), op(1, -1), op(1, 0)]);
    r.semop(set, &[op(1, -1), op(1, 0), op(1, 1), op(1, 1), op(1, -2)]);
    r.getall(set);
    r.rmid(set);
    // Semaphores 64 apart (the kernel's duplicate detection works modulo 64).
    let wide = r.semget(IPC_PRIVATE, 130, IPC_CREAT | 0o600);
    r.semop(wide, &[op(0, 1), nw(64, -1)]);
    r.semop(wide, &[op(64, 1), op(0, 1), op(128, 1), nw(64, -2)]);
    r.semop(wide, &[op(64, 1), op(0, 1), op(128, 0)]);
    r.semop(wide, &[op(0, 1), op(64, -1)]);
    r.getall(wide);
    r.query(wide, 64, Query::Val);
    r.rmid(wide);
}

fn stat_otime_pid_and_ipc_set<W: SysV>(r: &mut Run<W>) {
    let (uid, gid) = euid_egid();
    let key = r.new_key();
    let set = r.semget(key, 3, IPC_CREAT | IPC_EXCL | 0o600);
    r.stat(set);
    r.query(set, 0, Query::Pid);
    r.getall(set);
    // Neither SETVAL, SETALL, IPC_SET nor a failed semop is an operation.
    r.setval(set, 0, 1);
    r.setall(set, &[1, 2, 0]);
    r.query(set, 0, Query::Pid);
    r.semop(set, &[nw(2, -1)]);
    r.semop(set, &[op(3, 1)]);
    r.set(set, uid, gid, 0o660);
    r.stat(set);
    // A successful semop, even one that alters nothing, is.
    r.semop(set, &[op(2, 0)]);
    r.stat(set);
    r.query(set, 2, Query::Pid);
    r.semop(set, &[op(1, -1)]);
    r.query(set, 1, Query::Pid);
    r.stat(set);
    // IPC_SET keeps the permission bits only.
    r.set(set, uid, gid, 0o1777);
    r.stat(set);
    r.set(set, uid, gid, 0o177_777);
    r.stat(set);
    r.set(set, uid, gid, 0o400);
    r.stat(set);
    r.set(set, uid, gid, 0o600);
    r.set(-1, uid, gid, 0o600);
    r.rmid(set);
    // A fresh set in the freed space starts at zero, with no pid.
    let fresh = r.semget(key, 3, IPC_CREAT | 0o600);
    r.getall(fresh);
    r.query(fresh, 0, Query::Pid);
    r.stat(fresh);
    r.rmid(fresh);
}

fn setval_setall_getall<W: SysV>(r: &mut Run<W>) {
    let set = r.semget(IPC_PRIVATE, 3, IPC_CREAT | 0o600);
    let stale = r.semget(IPC_PRIVATE, 3, IPC_CREAT | 0o600);
    r.rmid(stale);
    r.setval(set, 0, 32767);
    r.getval(set, 0);
    r.setval(set, 0, 32768);
    r.setval(set, 0, -1);
    r.setval(set, 0, i32::MAX);
    r.setval(set, 0, i32::MIN);
    r.getval(set, 0);
    r.setval(set, 0, 0);
    r.setval(set, 3, 1);
    r.setval(set, -1, 1);
    // The value is checked before the semaphore number and the id.
    r.setval(set, 3, -1);
    r.setval(set, -1, 32768);
    r.setval(stale, 0, -1);
    r.setval(stale, 0, 32768);
    r.setval(stale, 0, 5);
    r.setval(stale, 9, 5);
    r.setval(i32::MAX, 0, 5);
    for query in [Query::Val, Query::Pid, Query::Ncnt, Query::Zcnt] {
        r.query(set, 3, query);
        r.query(set, -1, query);
        r.query(stale, 0, query);
        r.query(-1, 0, query);
        r.query(set, 2, query);
    }
    r.setall(set, &[1, 2, 3]);
    r.getall(set);
    r.setall(set, &[4, 32768, 5]);
    r.setall(set, &[4, 5, 65535]);
    r.getall(set);
    r.setall(set, &[32767, 0, 32767]);
    r.getall(set);
    for num in 0..3 {
        r.query(set, num, Query::Pid);
    }
    r.setall(stale, &[1, 2, 3]);
    r.setall(-1, &[1, 2, 3]);
    r.getall(stale);
    r.getall(-1);
    r.setall(set, &[0, 0, 0]);
    r.getall(set);
    r.rmid(set);
}

fn setval_with_a_negative_id<W: SysV>(r: &mut Run<W>) {
    r.setval(-1, 0, 5);
    r.setval(-1, 0, -1);
    r.setval(-1, 0, 32768);
    r.setval(i32::MIN, 0, -1);
}

fn semop_with_a_negative_id<W: SysV>(r: &mut Run<W>) {
    r.semop(-1, &[]);
    r.semop(-1, &[op(0, 1)]);
    r.semop(-1, &vec![op(0, 1); semopm() + 1]);
    r.timed(-1, &[op(0, 1)], 0, 1_000_000_000);
    r.timed(-1, &vec![op(0, 1); semopm() + 1], 0, 1_000_000_000);
    r.semop(i32::MIN, &vec![op(0, 1); semopm() + 1]);
}

fn a_removed_set_is_gone<W: SysV>(r: &mut Run<W>) {
    let (uid, gid) = euid_egid();
    let key = r.new_key();
    let set = r.semget(key, 2, IPC_CREAT | 0o600);
    r.semop(set, &[op(0, 1)]);
    r.rmid(set);
    r.semop(set, &[op(0, 1)]);
    r.semop(set, &[nw(0, -5)]);
    r.timed(set, &[op(0, -1)], 0, 1_000_000);
    for query in [Query::Val, Query::Pid, Query::Ncnt, Query::Zcnt] {
        r.query(set, 0, query);
    }
    r.getall(set);
    r.setval(set, 0, 1);
    r.setall(set, &[1, 1]);
    r.stat(set);
    r.set(set, uid, gid, 0o600);
    r.rmid(set);
    r.rmid(-1);
    r.semget(key, 0, 0);
    // A new set under the key has another id; the old one stays dead.
    let again = r.semget(key, 2, IPC_CREAT | 0o600);
    r.note(format!("the new set has a new id: {}", again != set));
    r.getall(again);
    r.semop(set, &[op(0, 1)]);
    r.getval(set, 0);
    r.rmid(set);
    r.rmid(again);
    r.rmid(again);
}

/// Mode bits, as far as they can be seen without another uid: a root caller
/// (CAP_IPC_OWNER) passes every check in both worlds, anyone else is refused
/// in both.
fn permission_bits<W: SysV>(r: &mut Run<W>) {
    let key = r.new_key();
    let set = r.semget(key, 2, IPC_CREAT | IPC_EXCL);
    r.stat(set);
    r.semget(key, 0, 0);
    r.semget(key, 0, IPC_CREAT);
    r.semget(key, 0, 0o400);
    r.semget(key, 0, 0o200);
    r.semget(key, 0, 0o600);
    r.semget(key, 0, 0o004);
    r.semget(key, 2, 0o400);
    // Too many semaphores is reported before the permission.
    r.semget(key, 3, 0o600);
    probe(r, set);
    for mode in [0o400, 0o200, 0o040, 0o004, 0o077, 0o600] {
        r.set_mode(set, mode);
        probe(r, set);
    }
    r.rmid(set);
}

/// Every call's check of the mode bits, on set `set` (two semaphores).
fn probe<W: SysV>(r: &mut Run<W>, set: i32) {
    r.semop(set, &[nw(0, 0)]);
    r.semop(set, &[nw(0, 1)]);
    r.semop(set, &[nw(0, -1)]);
    r.semop(set, &[nw(0, 0), nw(1, 0)]);
    r.semop(set, &[nw(2, 0)]);
    r.getval(set, 0);
    r.getval(set, 5);
    r.query(set, 0, Query::Ncnt);
    r.getall(set);
    r.stat(set);
    r.setval(set, 1, 0);
    r.setval(set, 5, 0);
    r.setval(set, 1, -1);
    r.setall(set, &[0, 0]);
    r.setall(set, &[0, 40000]);
}

/// Waiters, from threads of this process: GETNCNT and GETZCNT, who is woken
/// by what, and EIDRM.
fn waiters_counts_and_wakeups<W: SysV>(r: &mut Run<W>) {
    waiters_counts_and_wakeups_on(r, 2);
}

/// As [`waiters_counts_and_wakeups`], on a set of 32 semaphores.
fn waiters_counts_and_wakeups_on_a_large_set<W: SysV>(r: &mut Run<W>) {
    waiters_counts_and_wakeups_on(r, 32);
}

/// Sets of 1 to 32 semaphores (usysv keeps small sets in the object slot,
/// larger ones in the heap), each made twice so that the second has another
/// sequence number: single and multiple operations, SETVAL and GETVAL must
/// all see the same values.
fn sets_of_every_size_hold_their_values<W: SysV>(r: &mut Run<W>) {
    for nsems in [1, 2, 19, 20, 21, 22, 23, 32] {
        for _ in 0..2 {
            let set = r.semget(IPC_PRIVATE, nsems, IPC_CREAT | 0o600);
            let last = nsems as u16 - 1;
            r.semop(set, &[op(0, 5)]);
            r.getval(set, 0);
            r.semop(set, &[op(last, 7)]);
            r.getval(set, last.into());
            r.semop(set, &[op(0, -2), op(last, -3)]);
            r.getall(set);
            r.semop(set, &[nw(0, -4)]);
            r.semop(set, &[nw(0, 0)]);
            r.setval(set, 0, 32767);
            r.semop(set, &[op(0, 1)]);
            r.getval(set, 0);
            r.semop(set, &[op(0, -32767)]);
            r.semop(set, &[op(0, 0)]);
            r.getval(set, 0);
            r.query(set, 0, Query::Pid);
            r.rmid(set);
        }
    }
}

fn waiters_counts_and_wakeups_on<W: SysV>(r: &mut Run<W>, nsems: i32) {
    let w = r.w;
    let set = r.semget(IPC_PRIVATE, nsems, IPC_CREAT | 0o600);
    std::thread::scope(|s| {
        let a = s.spawn(move || w.semop(set, &[op(0, -1)]));
        r.wait_for("A waits", |w| w.query(set, 0, Query::Ncnt) == Ok(1));
        r.setval(set, 1, 1);
        let b = s.spawn(move || w.semop(set, &[op(1, 0)]));
        r.wait_for("B waits", |w| w.query(set, 1, Query::Zcnt) == Ok(1));
        // C passes its first operation and blocks on its second.
        let c = s.spawn(move || w.semop(set, &[op(1, -1), op(0, -2)]));
        r.wait_for("C waits", |w| w.query(set, 0, Query::Ncnt) == Ok(2));
        for num in 0..2 {
            r.query(set, num, Query::Ncnt);
            r.query(set, num, Query::Zcnt);
        }
        r.getall(set);
        // One unit: A, first in line, takes it; C still cannot go.
        r.semop(set, &[op(0, 1)]);
        r.join("A", set, a);
        r.getall(set);
        r.query(set, 0, Query::Ncnt);
        // Two units: C goes, which brings semaphore 1 to zero: B goes.
        r.semop(set, &[op(0, 2)]);
        r.join("C", set, c);
        r.join("B", set, b);
        r.getall(set);
        for num in 0..2 {
            r.query(set, num, Query::Ncnt);
            r.query(set, num, Query::Zcnt);
            r.query(set, num, Query::Pid);
        }
        // A large request does not hold back a small one queued after it.
        let big = s.spawn(move || w.semop(set, &[op(0, -3)]));
        r.wait_for("the large request waits", |w| {
            w.query(set, 0, Query::Ncnt) == Ok(1)
        });
        let small = s.spawn(move || w.semop(set, &[op(0, -1)]));
        r.wait_for("the small request waits", |w| {
            w.query(set, 0, Query::Ncnt) == Ok(2)
        });
        r.semop(set, &[op(0, 1)]);
        r.join("the small request", set, small);
        r.query(set, 0, Query::Ncnt);
        r.semop(set, &[op(0, 3)]);
        r.join("the large request", set, big);
        r.getall(set);
        // A waiter whose timeout passes leaves the queue.
        let timed = s.spawn(move || w.semtimedop(set, &[op(1, -1)], 0, 50_000_000));
        r.join("a waiter with a timeout", set, timed);
        r.query(set, 1, Query::Ncnt);
        // Removal wakes every waiter with EIDRM.
        r.setval(set, 1, 1);
        let d = s.spawn(move || w.semop(set, &[op(0, -1)]));
        let e = s.spawn(move || w.semop(set, &[op(0, 1), op(1, 0), op(1, -1)]));
        let f = s.spawn(move || w.semtimedop(set, &[op(1, 0)], 30, 0));
        r.wait_for("D, E and F wait", |w| {
            w.query(set, 0, Query::Ncnt) == Ok(1) && w.query(set, 1, Query::Zcnt) == Ok(2)
        });
        r.rmid(set);
        r.join("D", set, d);
        r.join("E", set, e);
        r.join("F", set, f);
    });
}

/// SETVAL or SETALL that completes a waiting semop stamps `sem_otime`, as
/// that semop's success would.
fn setval_completing_a_waiter_sets_otime<W: SysV>(r: &mut Run<W>) {
    let w = r.w;
    for setall in [false, true] {
        let set = r.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600);
        std::thread::scope(|s| {
            let waiter = s.spawn(move || w.semop(set, &[op(0, -1)]));
            r.wait_for("the waiter waits", |w| {
                w.query(set, 0, Query::Ncnt) == Ok(1)
            });
            r.stat(set);
            if setall {
                r.setall(set, &[1]);
            } else {
                r.setval(set, 0, 1);
            }
            r.join("the waiter", set, waiter);
            r.stat(set);
            r.query(set, 0, Query::Pid);
            r.rmid(set);
        });
    }
}

/// `SEM_UNDO` within one process: accepted, checked in the usual order, and
/// an adjustment past ±SEMAEM is `ERANGE` (`sem_processes.rs` sees it applied
/// at exit).
fn sem_undo_is_accepted<W: SysV>(r: &mut Run<W>) {
    let undo = |num, op| SemBuf {
        sem_num: num,
        sem_op: op,
        sem_flg: SEM_UNDO,
    };
    let set = r.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600);
    let stale = r.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600);
    r.rmid(stale);
    r.semop(set, &[undo(0, 1)]);
    r.semop(set, &[undo(0, -1)]);
    r.getall(set);
    r.semop(stale, &[undo(0, 1)]);
    r.semop(set, &[undo(1, 1)]);
    r.semop(set, &[op(0, 1), undo(0, i16::MAX)]);
    r.getall(set);
    // An adjustment beyond -(SEMAEM + 1)..=SEMAEM is ERANGE.
    r.setval(set, 0, 0);
    r.semop(set, &[op(0, i16::MAX)]);
    r.semop(set, &[undo(0, -i16::MAX)]);
    r.semop(set, &[op(0, 1)]);
    r.semop(set, &[undo(0, -1)]);
    r.semop(set, &[op(0, 1), undo(0, -1)]);
    r.getall(set);
    r.setval(set, 0, 0);
    r.semop(set, &[undo(0, i16::MAX)]);
    r.semop(set, &[op(0, -i16::MAX)]);
    r.semop(set, &[undo(0, 1)]);
    r.semop(set, &[op(0, -1)]);
    r.semop(set, &[undo(0, 1)]);
    r.semop(set, &[undo(0, 1), nw(0, -5)]);
    r.getall(set);
    // Undo and non-undo operations in one call.
    r.setval(set, 0, 3);
    r.semop(set, &[undo(0, -1), op(0, -1), undo(0, 2)]);
    r.getall(set);
    r.rmid(set);
}

differential!(semget_checks_sizes_keys_and_flags_as_the_kernel_does => semget_errors);
differential!(semop_reports_its_errors_in_the_kernels_order => semop_errors_in_order);
differential!(erange_and_all_or_nothing_match_the_kernel => erange_and_all_or_nothing);
differential!(
    erange_and_all_or_nothing_on_a_large_set_match_the_kernel
        => erange_and_all_or_nothing_on_a_large_set
);
differential!(
    sets_of_every_size_hold_their_values_as_in_the_kernel => sets_of_every_size_hold_their_values
);
differential!(
    one_call_may_touch_a_semaphore_twice_and_wait_for_zero
        => same_semaphore_twice_and_wait_for_zero
);
differential!(ipc_stat_otime_sempid_and_ipc_set_match_the_kernel => stat_otime_pid_and_ipc_set);
differential!(setval_setall_and_getall_match_the_kernel => setval_setall_getall);
differential!(
    setval_with_a_negative_id_fails_as_in_the_kernel => setval_with_a_negative_id
);
differential!(semop_with_a_negative_id_fails_as_in_the_kernel => semop_with_a_negative_id);
differential!(every_call_on_a_removed_set_fails_with_einval => a_removed_set_is_gone);
differential!(mode_bits_are_checked_as_the_kernel_checks_them => permission_bits);
differential!(waiters_are_counted_woken_and_removed_as_in_the_kernel => waiters_counts_and_wakeups);
differential!(
    waiters_on_a_large_set_are_counted_woken_and_removed_as_in_the_kernel
        => waiters_counts_and_wakeups_on_a_large_set
);
differential!(
    setval_that_completes_a_waiter_sets_otime_as_in_the_kernel
        => setval_completing_a_waiter_sets_otime
);
differential!(sem_undo_is_accepted_and_bounded_as_by_the_kernel => sem_undo_is_accepted);

// ---------------------------------------------------------------------------
// Permission checks that bite even for root: a helper process drops
// CAP_IPC_OWNER and CAP_SYS_ADMIN from its effective set (a no-op for a
// non-root user, who has neither) and probes a set of mode 0 in each world.

/// Makes a set of mode 0 with a fresh key and runs the helper's probe on it.
fn capless_probe<W: SysV>(w: &W, arena: &str) -> Vec<String> {
    let key = w.new_key();
    let set = w.semget(key, 2, IPC_CREAT | IPC_EXCL).unwrap();
    let mut helper = Helper::spawn(
        std::path::Path::new(HELPER),
        &["perm-probe", arena, &key.to_string(), &set.to_string()],
    );
    let lines = helper.lines_until("end");
    assert!(helper.0.wait().unwrap().success(), "{lines:?}");
    w.rmid(set).unwrap();
    lines
}

#[test]
fn mode_bits_refuse_a_caller_without_cap_ipc_owner_as_in_the_kernel() {
    let _watchdog = Watchdog::new("capless probe", Duration::from_secs(60));
    let kernel = capless_probe(&Kernel::new(), "kernel");
    let usysv_world = Usysv::new("capless");
    let arena = usysv_world.ipc.file().path().to_str().unwrap().to_string();
    let usysv = capless_probe(&usysv_world, &arena);
    assert!(
        kernel.iter().any(|line| line.ends_with("EACCES")),
        "the probe never saw EACCES: did it keep CAP_IPC_OWNER? {kernel:?}"
    );
    usysv_tests::assert_same(&kernel, &usysv);
}
