//! Helpers shared by usysv's integration tests and their helper process.

pub mod diff;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use usysv_platform::usysv_core::{Limits, DEFAULT_LIMITS};

/// Limits small enough that tests create arenas quickly.
pub const SMALL_LIMITS: Limits = Limits {
    semmni: 128,
    msgmni: 128,
    shmmni: 128,
    procs: 1024,
    heap_bytes: 1 << 20,
    ..DEFAULT_LIMITS
};

/// Fails the whole test binary if a test outlives its time: a hang fails
/// instead of blocking CI. Disarmed on drop.
pub struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    /// Arms a watchdog for `what`, firing after `limit`.
    pub fn new(what: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        std::thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(Ordering::Acquire) {
                if start.elapsed() > limit {
                    eprintln!("watchdog: `{what}` still running after {limit:?}: a hang");
                    std::process::exit(99);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A directory on tmpfs for one test, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory named after `test`.
    pub fn new(test: &str) -> TempDir {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("usysv-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped on drop, so no test leaves one behind.
pub struct Helper(pub Child);

impl Helper {
    /// Starts `program` with `args`, its standard output piped.
    pub fn spawn(program: &Path, args: &[&str]) -> Helper {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Helper(child)
    }

    /// Starts `program` with `args`, its standard input and output piped.
    pub fn spawn_with_input(program: &Path, args: &[&str]) -> Helper {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Helper(child)
    }

    /// Reads the rest of its output, and waits for it to exit successfully.
    pub fn output(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        self.0
            .stdout
            .as_mut()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.0.wait().unwrap();
        assert!(
            status.success(),
            "the helper failed: {status:?} after {out:?}"
        );
        out
    }

    /// Reads one line of its output.
    pub fn read_line(&mut self) -> String {
        use std::io::Read;
        let out = self.0.stdout.as_mut().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8(line).unwrap()
    }

    /// Reads its lines up to the first that is empty or `last` (neither
    /// returned); the end of its output reads as an empty line.
    pub fn lines_until(&mut self, last: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line();
            if line.is_empty() || line == last {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Its next line, failing the test if none comes within `limit` (a helper
    /// blocked where it should not be).
    pub fn line_within(&mut self, limit: Duration) -> String {
        use std::os::fd::AsRawFd;
        let fd = self.0.stdout.as_ref().unwrap().as_raw_fd();
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the helpers write whole lines at once.
        let ready = unsafe { libc::poll(&mut poll, 1, limit.as_millis() as libc::c_int) };
        assert_eq!(ready, 1, "no line from the helper within {limit:?}");
        self.read_line()
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.0.try_wait().unwrap().is_some()
    }

    /// Waits, for at most [`PATIENCE`], for it to print its last line and
    /// exit successfully; returns that line.
    pub fn finish(&mut self) -> String {
        let line = self.line_within(PATIENCE);
        let start = Instant::now();
        while !self.exited() {
            assert!(start.elapsed() < PATIENCE, "the helper did not exit");
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = self.0.wait().unwrap();
        assert!(
            status.success(),
            "the helper failed: {status:?} after {line:?}"
        );
        line
    }

    /// Sends SIGKILL, without reaping (the child stays a zombie until dropped).
    pub fn sigkill(&mut self) {
        // SAFETY: signalling our own child, which is not yet reaped, so its pid
        // cannot have been reused.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGKILL) };
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `usysv` command, built beside the test binaries (in the directory
/// above `deps`) by `cargo test --workspace`.
pub fn usysv_command() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("usysv");
    assert!(
        path.exists(),
        "{} is missing: build the workspace",
        path.display()
    );
    path
}

/// A directory in `dir` holding a copy of `usysv` and, with `with_library`,
/// `libusysv_preload.so` beside it, as `cargo build` leaves them; returns
/// the copy's path. (`cargo test` builds the library as a dependency of the
/// tests, in the directory of the test binaries, not beside `usysv`.)
pub fn install_usysv(dir: &TempDir, with_library: bool) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(usysv_command(), bin.join("usysv")).unwrap();
    if with_library {
        let exe = std::env::current_exe().unwrap();
        let lib = exe.with_file_name("libusysv_preload.so");
        std::fs::copy(&lib, bin.join("libusysv_preload.so"))
            .unwrap_or_else(|err| panic!("{}: {err}", lib.display()));
    }
    bin.join("usysv")
}

/// How long a multi-process test waits for anything that should happen.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Waits, polling, for at most [`PATIENCE`] until `cond` holds.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether process `pid` is asleep (state `S` in `/proc/PID/stat`).
pub fn asleep(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name.split_whitespace().next() == Some("S")
}

/// A small deterministic random generator (xorshift64).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// Files that are not usable arenas, made in `dir`, each with the words its
/// error message must contain.
pub fn bad_arena_files(dir: &TempDir) -> Vec<(PathBuf, &'static str)> {
    let good = dir.join("good");
    drop(usysv_platform::ArenaFile::create(&good, &SMALL_LIMITS, 0o600).unwrap());
    let bytes = std::fs::read(&good).unwrap();
    std::fs::remove_file(&good).unwrap();
    let patched = |at: usize, value: u32| {
        let mut copy = bytes.clone();
        copy[at..at + 4].copy_from_slice(&value.to_le_bytes());
        copy
    };
    let mut rng = Rng::new(7);
    let random: Vec<u8> = (0..65536).map(|_| rng.next_u64() as u8).collect();
    let files: [(&str, Vec<u8>, &'static str); 5] = [
        (
            "random",
            random,
            "not a usysv arena (no usysv magic number)",
        ),
        (
            "empty",
            Vec::new(),
            "not a usysv arena (0 bytes, smaller than a header)",
        ),
        (
            "truncated",
            bytes[..bytes.len() / 2].to_vec(),
            "truncated usysv arena",
        ),
        (
            "version",
            patched(8, 9),
            "usysv arena format version 9, but this usysv reads version 8",
        ),
        (
            "limits",
            patched(20, 0),
            "corrupt usysv arena header: limit semmni = 0",
        ),
    ];
    let mut cases: Vec<(PathBuf, &'static str)> = files
        .into_iter()
        .map(|(name, contents, expected)| {
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            (path, expected)
        })
        .collect();
    cases.push((dir.path().to_path_buf(), "open: Is a directory"));
    cases.push((dir.join("missing"), "open: No such file or directory"));
    cases
}

/// A scenario that runs longer than this is stuck in a call that the other
/// world would not block in.
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(5);

/// Runs `scenario` (which returns its transcript) on a thread of its own. If
/// it hangs — a call blocks where the other world's did not — `purge`
/// removes every object the scenario's world made, which ends the blocked
/// calls with an error, and the transcript then says so (and will differ
/// from the other world's).
pub fn transcript(
    scenario: impl FnOnce() -> Vec<String> + Send,
    purge: impl Fn() + Sync,
) -> Vec<String> {
    std::thread::scope(|s| {
        let thread = s.spawn(scenario);
        let start = Instant::now();
        let mut purges: u32 = 0;
        while !thread.is_finished() {
            // Once past the limit, and again every 2 s (the scenario may make
            // new objects and block again).
            if start.elapsed() > SCENARIO_LIMIT + Duration::from_secs(2) * purges {
                purge();
                purges += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut lines = match thread.join() {
            Ok(lines) => lines,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if purges > 0 {
            lines.push(format!(
                "HUNG: ended by removing every object after {SCENARIO_LIMIT:?}"
            ));
        }
        lines
    })
}

/// How a differential transcript names what differs between the kernel and
/// usysv: an object by a token in order of appearance (`PREFIX0`, …), a key
/// likewise (`k0`, …), and a time by whether it is `0` or `now`.
pub struct Names {
    prefix: &'static str,
    ids: Vec<i32>,
    keys: Vec<i32>,
    start: i64,
}

impl Names {
    /// Names for a run starting now, objects named `prefix0`, `prefix1`, …
    pub fn new(prefix: &'static str) -> Names {
        Names {
            prefix,
            ids: Vec::new(),
            keys: Vec::new(),
            start: now(),
        }
    }

    /// Gives `id` (a call's result) the next token, unless it has one.
    pub fn learn_id(&mut self, id: i32) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }

    /// Shows the result of a call that returns an id: the id's token (given
    /// it first, as by [`Names::learn_id`]), or the errno's name.
    pub fn returned_id(&mut self, result: Result<i32, i32>) -> String {
        match result {
            Ok(id) => {
                self.learn_id(id);
                self.id(id)
            }
            Err(errno) => errno_name(errno),
        }
    }

    /// Gives `key` (one the run made) the next token.
    pub fn learn_key(&mut self, key: i32) {
        self.keys.push(key);
    }

    /// An object's token (or the number itself, for ids no call returned).
    pub fn id(&self, id: i32) -> String {
        match self.ids.iter().position(|&known| known == id) {
            Some(index) => format!("{}{index}", self.prefix),
            None => id.to_string(),
        }
    }

    /// A key's token, `PRIVATE`, or the number itself.
    pub fn key(&self, key: i32) -> String {
        if key == usysv_platform::usysv_core::perm::IPC_PRIVATE {
            return "PRIVATE".into();
        }
        match self.keys.iter().position(|&known| known == key) {
            Some(index) => format!("k{index}"),
            None => format!("key {key}"),
        }
    }

    /// `0`, `now` (since the run began), or the number.
    pub fn time(&self, time: i64) -> String {
        if time == 0 {
            "0".into()
        } else if time >= self.start && time <= now() {
            "now".into()
        } else {
            format!("{time} (neither 0 nor now)")
        }
    }
}

/// Fails with the differing lines of the kernel's and usysv's transcripts,
/// each with the lines before it (at most the first 30 differences).
pub fn assert_same(kernel: &[String], usysv: &[String]) {
    if kernel == usysv {
        return;
    }
    const CONTEXT: usize = 3;
    const MOST: usize = 30;
    let differ = |index: usize| kernel.get(index) != usysv.get(index);
    let lines = kernel.len().max(usysv.len());
    let total = (0..lines).filter(|&i| differ(i)).count();
    let mut report =
        format!("usysv's transcript differs from the kernel's in {total} of {lines} lines:\n");
    let mut shown_to = 0;
    for (shown, index) in (0..lines).filter(|&i| differ(i)).enumerate() {
        if shown == MOST {
            report.push_str("    …\n");
            break;
        }
        let from = index.saturating_sub(CONTEXT).max(shown_to);
        if from > shown_to {
            report.push_str("    …\n");
        }
        for same in kernel.get(from..index).unwrap_or_default() {
            report.push_str(&format!("    {same}\n"));
        }
        let k = kernel.get(index).map_or("(none)", String::as_str);
        let u = usysv.get(index).map_or("(none)", String::as_str);
        report.push_str(&format!(" !! kernel: {k}\n !! usysv:  {u}\n"));
        shown_to = index + 1;
    }
    panic!("{report}");
}

/// An errno as a transcript shows it: its name (`EINVAL`), or its number.
pub fn errno_name(errno: i32) -> String {
    match usysv_platform::usysv_core::Errno::from_raw(errno).name() {
        "E?" => format!("errno {errno}"),
        name => name.to_string(),
    }
}

/// How a transcript shows the result of a call that returns nothing: `ok`,
/// or the errno's name.
pub fn ok_or_errno(result: &Result<(), i32>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(errno) => errno_name(*errno),
    }
}

/// How a transcript shows a pid: `0`, `me` (this process) or `other`.
pub fn pid_name(pid: i32) -> &'static str {
    match pid {
        0 => "0",
        pid if pid == my_pid() => "me",
        _ => "other",
    }
}

/// How a transcript shows flags: the names of those in `names` that are
/// set, joined by `|`, then any other bits in octal; `0` for none.
pub fn flags_text(flags: i32, names: &[(i32, &str)]) -> String {
    let mut parts = Vec::new();
    let mut left = flags;
    for &(bit, name) in names {
        if flags & bit != 0 {
            parts.push(name.to_string());
            left &= !bit;
        }
    }
    if left != 0 {
        parts.push(format!("{left:#o}"));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// How a transcript shows bytes: themselves when short and printable, else
/// their length and hash (FNV-1a, 32 bits).
pub fn bytes_text(data: &[u8]) -> String {
    if data.len() <= 24 && data.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(data))
    } else {
        let fnv = data.iter().fold(0x811c_9dc5_u32, |hash, &byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        format!("{} bytes #{fnv:08x}", data.len())
    }
}

/// `len` bytes made from `seed` (the same in both worlds).
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Prints a line of `world`'s transcript as it is written, if
/// `USYSV_TRACE` is set.
pub fn trace(world: &str, line: &str) {
    if std::env::var_os("USYSV_TRACE").is_some() {
        eprintln!("{world}: {line}");
    }
}

/// Prints the kernel's transcript of `what`, if `USYSV_SHOW_TRANSCRIPTS`
/// is set (with `--nocapture`).
pub fn show_transcript(what: &str, kernel: &[String]) {
    if std::env::var_os("USYSV_SHOW_TRANSCRIPTS").is_some() {
        eprintln!("{what}:\n    {}", kernel.join("\n    "));
    }
}

/// Waits for the wall clock's second to change, so that a time stamped
/// from now on differs from every earlier one.
pub fn wait_for_the_next_second() {
    let second = now();
    while now() == second {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Both worlds stamp times from a coarse clock, which may lag the
    // precise one by a clock tick.
    std::thread::sleep(Duration::from_millis(50));
}

/// Wall-clock seconds since the epoch, from the clock System V times come
/// from: `time()`, the coarse clock the kernel stamps them with (and usysv
/// too). The fine clock can already show the next second when these do not.
pub fn now() -> i64 {
    // SAFETY: time(NULL) only returns the time.
    unsafe { libc::time(std::ptr::null_mut()) as i64 }
}

/// This process's pid.
pub fn my_pid() -> i32 {
    std::process::id() as i32
}

/// This process's effective user and group ids.
pub fn euid_egid() -> (u32, u32) {
    // SAFETY: no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

static SIGUSR1_HANDLED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn on_sigusr1(_: libc::c_int) {
    SIGUSR1_HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// Installs a SIGUSR1 handler with SA_RESTART: a restartable call would be
/// restarted, and System V calls must fail with EINTR all the same.
pub fn install_sigusr1_handler() {
    // SAFETY: an all-zero sigaction is a valid starting value; the handler
    // only touches an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
}

/// How many times the SIGUSR1 handler has run.
pub fn sigusr1_handled() -> u32 {
    SIGUSR1_HANDLED.load(Ordering::Relaxed)
}

/// The kernel's System V calls as the tests make them, for comparison.
pub mod kernel {
    use std::sync::atomic::{AtomicU32, Ordering};

    use usysv_platform::usysv_core::perm::IPC_PRIVATE;

    /// The errno of the last failed call.
    pub fn last_errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }

    /// A system call's result: the value, or the errno when it is -1.
    pub fn checked(ret: i64) -> Result<i64, i32> {
        if ret == -1 {
            Err(last_errno())
        } else {
            Ok(ret)
        }
    }

    /// A key of this process's own that names no object yet. `get` is the
    /// kind's get call without flags (`semget(key, 0, 0)`, …), which fails
    /// with ENOENT when no object has the key.
    pub fn unused_key(get: impl Fn(i32) -> libc::c_int) -> i32 {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            // 22 bits of pid, 9 of counter: positive, and this process's own.
            let key = ((std::process::id() & 0x3f_ffff) << 9 | (n & 0x1ff)) as i32;
            if key != IPC_PRIVATE && get(key) == -1 && last_errno() == libc::ENOENT {
                return key;
            }
        }
    }

    /// The kernel's limit `/proc/sys/kernel/NAME`.
    pub fn read_limit<T>(name: &str) -> T
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Debug,
    {
        let path = format!("/proc/sys/kernel/{name}");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{path}: {err}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// `msgsnd(2)` of a message of type `mtype` holding `data`.
    pub fn msgsnd(id: i32, mtype: i64, data: &[u8], flags: i32) -> Result<(), i32> {
        // A `struct msgbuf`: the long type, then the text.
        let mut buf = vec![0u64; 1 + data.len().div_ceil(8)];
        buf[0] = mtype as u64;
        // SAFETY: `buf` has room for the type and `data` after it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                buf.as_mut_ptr().add(1).cast::<u8>(),
                data.len(),
            );
        }
        // SAFETY: the kernel reads the type and at most `data.len()` bytes.
        let ret = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), data.len(), flags) };
        checked(ret.into()).map(drop)
    }

    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    /// `CAP_IPC_OWNER`: bypasses the mode bits of IPC objects.
    pub const CAP_IPC_OWNER: u32 = 15;
    /// `CAP_SYS_ADMIN`: may change or remove objects one does not own.
    pub const CAP_SYS_ADMIN: u32 = 21;

    /// Removes capabilities from this (single-threaded) process's effective set.
    pub fn drop_effective_capabilities(caps: &[u32]) {
        const VERSION_3: u32 = 0x2008_0522;
        let mut header = CapHeader {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: a version-3 header and two data records, as capget expects.
        let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
        for &cap in caps {
            data[(cap / 32) as usize].effective &= !(1 << (cap % 32));
        }
        // SAFETY: as above; lowering the effective set is always allowed.
        let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
    }
}
