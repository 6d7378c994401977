//! Helpers shared by usysv's integration tests and their helper process.

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
            "usysv arena format version 9, but this usysv reads version 1",
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
