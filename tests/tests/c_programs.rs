//! The classic System V programs in `tests/c`, compiled with `cc` and run on
//! the Linux kernel, and `no_sysv`, which switches the kernel's System V calls
//! off for the program it runs.
//!
//! Each program forks its own processes, uses only `IPC_PRIVATE` objects,
//! removes them before it exits, and prints only what must be the same on
//! every run. Each `check_*` function knows that output independently of the
//! program: it computes the sums, counts and checksums itself from the rule
//! the program follows (the same constants, restated here), so a program
//! whose processes lose an update, reorder a message or corrupt a byte fails
//! the check, not just one that differs from a recorded run.
//!
//! The same sources are meant to run on usysv too: built with `-DUSYSV_API`
//! against its C API, or unchanged under its LD_PRELOAD library and
//! `no_sysv`. A mode is a [`build`] with other arguments and a [`run`] of
//! another command; the `check_*` functions serve every mode.
//!
//! A hang fails: every program has a 20-second alarm of its own, [`execute`]
//! kills the program's whole process group after [`RUN_LIMIT`], and every
//! test carries a watchdog.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use usysv_tests::{TempDir, Watchdog};

/// Where the C sources are.
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/c");

/// How every program is compiled: warnings are errors.
const CFLAGS: &[&str] = &[
    "-std=c11",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O2",
];

/// A program still running after this is hung (its own alarm fires at 20 s).
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A test still running after this is hung, compiling included.
const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Compiles `tests/c/{program}.c` and returns the executable's path.
///
/// `extra_args` follow the source on `cc`'s command line, so they may name
/// libraries to link (`-lusysv`) as well as add definitions and include
/// directories. The executable lives in cargo's temporary directory for
/// integration tests (not on tmpfs, which may be mounted `noexec`), named
/// after the program and the arguments; it is written under a temporary name
/// and renamed into place, so tests building the same program at once never
/// see half of one. `CC` chooses another compiler.
fn build(program: &str, extra_args: &[&str]) -> PathBuf {
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_programs");
    std::fs::create_dir_all(&dir).unwrap();
    let variant: String = extra_args
        .iter()
        .flat_map(|arg| arg.chars().chain(['_']))
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let executable = dir.join(format!("{program}{variant}"));
    let partial = dir.join(format!(
        "{program}.{}.{}.partial",
        std::process::id(),
        BUILDS.fetch_add(1, Ordering::Relaxed)
    ));
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&compiler)
        .args(CFLAGS)
        .arg("-o")
        .arg(&partial)
        .arg(Path::new(SOURCES).join(format!("{program}.c")))
        .args(extra_args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{compiler}`: {e}"));
    assert!(
        out.status.success(),
        "compiling {program}.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &executable).unwrap();
    executable
}

/// What a program did, once it ended.
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Reads all of `stream` on a thread of its own; the text arrives on the
/// returned channel.
fn drain(mut stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let _ = sender.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    receiver
}

/// Everything a stream said: the program and every process it left behind
/// have closed it by now, or something outlived the program.
fn collected(stream: &mpsc::Receiver<String>, which: &str) -> String {
    stream
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("the program's {which} stayed open after it ended"))
}

/// Runs `cmd` in a process group of its own and waits at most [`RUN_LIMIT`]
/// for it to end; a program that takes longer is killed, with all its
/// processes, and the test fails.
fn execute(mut cmd: Command) -> Outcome {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let group = child.id() as libc::pid_t;
            // SAFETY: the group's leader is our child, not yet reaped, so
            // the group id is still its and no one else's.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {RUN_LIMIT:?}, a hang; it said:\n{}{}",
                collected(&stdout, "stdout"),
                collected(&stderr, "stderr")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        status,
        stdout: collected(&stdout, "stdout"),
        stderr: collected(&stderr, "stderr"),
    }
}

/// Runs `cmd`, which must succeed, and returns what it printed.
fn run(cmd: Command) -> String {
    let shown = format!("{cmd:?}");
    let outcome = execute(cmd);
    assert!(
        outcome.status.success(),
        "{shown} failed ({}) after printing:\n{}\nwith stderr:\n{}",
        outcome.status,
        outcome.stdout,
        outcome.stderr
    );
    outcome.stdout
}

/// The directory cargo built the C libraries in: they are dependencies of
/// this test crate, built beside its test binaries.
fn library_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where `usysv.h` is.
const INCLUDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../include");

/// `program` built with `-DUSYSV_API` against `usysv.h` and linked to
/// `libusysv.so`, to run on the arena `arena`.
fn on_the_c_api(program: &str, arena: &Path) -> Command {
    let lib = library_dir();
    let executable = build(
        program,
        &[
            "-DUSYSV_API",
            &format!("-I{INCLUDE}"),
            &format!("-L{}", lib.display()),
            "-lusysv",
            &format!("-Wl,-rpath,{}", lib.display()),
        ],
    );
    let mut cmd = Command::new(executable);
    cmd.env("USYSV_ARENA", arena);
    cmd
}

/// `program` built for the kernel, run unchanged under the preload library
/// on the arena `arena`, with the kernel's System V calls blocked
/// (`no_sysv`): whatever works, usysv did.
fn under_the_preload_library(program: &str, arena: &Path) -> Command {
    let mut cmd = Command::new(build("no_sysv", &[]));
    cmd.arg(build(program, &[]))
        .env("LD_PRELOAD", library_dir().join("libusysv_preload.so"))
        .env("USYSV_ARENA", arena);
    cmd
}

/// Runs `program` on the kernel, on the C API and under the preload
/// library: `check` must pass on each output, and the preload library's
/// must be the kernel's, line for line.
fn in_every_mode(program: &'static str, check: fn(&str)) {
    let _watchdog = Watchdog::new(program, TEST_LIMIT);
    let dir = TempDir::new(program);
    let kernel = run(Command::new(build(program, &[])));
    check(&kernel);
    let api = run(on_the_c_api(program, &dir.join("api.arena")));
    check(&api);
    let preload = run(under_the_preload_library(
        program,
        &dir.join("preload.arena"),
    ));
    check(&preload);
    assert_eq!(
        preload, kernel,
        "{program} under the preload library and on the kernel"
    );
}

/// Fails unless `output` is exactly the `expected` lines.
fn assert_lines(output: &str, expected: &[String]) {
    let lines: Vec<&str> = output.lines().collect();
    assert!(
        lines == expected,
        "the program printed:\n{output}\nbut should have printed:\n{}",
        expected.join("\n")
    );
}

/// The byte at `offset` of the stream the data-moving programs send
/// (`stream_byte` in sysv.h).
fn stream_byte(offset: u32) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 24) as u8
}

/// The 64-bit FNV-1a hash of the stream's first `length` bytes, as the
/// programs print it.
fn stream_checksum(length: u32) -> String {
    let hash = (0..length).fold(0xcbf2_9ce4_8422_2325_u64, |hash, offset| {
        (hash ^ u64::from(stream_byte(offset))).wrapping_mul(0x100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// 1 MiB through a 10 KiB segment whose first word is the chunk's length:
/// both sides count the same bytes and chunks, and both checksums are the
/// stream's.
fn check_shm_writer_reader(output: &str) {
    const TOTAL: u32 = 1 << 20;
    let chunk = (10240 - std::mem::size_of::<usize>()) as u32;
    let chunks = TOTAL.div_ceil(chunk);
    let checksum = stream_checksum(TOTAL);
    assert_lines(
        output,
        &[
            format!("writer: sent {TOTAL} bytes in {chunks} chunks, checksum {checksum}"),
            format!("reader: received {TOTAL} bytes in {chunks} chunks, checksum {checksum}"),
        ],
    );
}

/// Every round visits the five processes in order, and the token ends back
/// at process 0.
fn check_sem_chain(output: &str) {
    let mut expected: Vec<String> = (1..=4)
        .flat_map(|round| (0..5).map(move |process| format!("round {round}: process {process}")))
        .collect();
    expected.push("semaphores after the chain: 1 0 0 0 0".into());
    assert_lines(output, &expected);
}

/// No addition lost: eight times 1 + … + 2000; and the lock free again,
/// though its last holder exited holding it.
fn check_shared_sum(output: &str) {
    const WORKERS: u64 = 8;
    const TERMS: u64 = 2000;
    let sum = WORKERS * (1..=TERMS).sum::<u64>();
    assert_lines(
        output,
        &[
            format!("{WORKERS} processes added 1..{TERMS}: sum {sum}, expected {sum}"),
            "lock value after all exited: 1".into(),
        ],
    );
}

/// Every record arrives once, in order per producer and severity; the
/// startup backlog, queued all at once, comes out most severe first.
fn check_msg_logger(output: &str) {
    const NAMES: [&str; 5] = ["", "error", "warning", "info", "debug"];
    let severity = |number: usize| match number {
        n if n % 16 == 0 => 1,
        n if n % 4 == 0 => 2,
        n if n % 2 == 0 => 3,
        _ => 4,
    };
    let startup = [3, 4, 1, 2, 4, 1, 3];
    let producers: Vec<usize> = (0..3).map(|p| 100 + 20 * p).collect();
    let mut per_severity = [0; 5];
    for &records in &producers {
        for number in 0..records {
            per_severity[severity(number)] += 1;
        }
    }
    for &s in &startup {
        per_severity[s] += 1;
    }
    let mut received = startup;
    received.sort();
    let received: Vec<&str> = received.iter().map(|&s| NAMES[s]).collect();

    let mut expected = vec![format!(
        "startup backlog as received: {}",
        received.join(" ")
    )];
    for s in 1..=4 {
        expected.push(format!("{}: {} records", NAMES[s], per_severity[s]));
    }
    for (p, records) in producers.iter().enumerate() {
        expected.push(format!("producer {p}: {records} records, 0 out of order"));
    }
    expected.push(format!(
        "startup: {} records, 0 out of order",
        startup.len()
    ));
    let total = producers.iter().sum::<usize>() + startup.len();
    expected.push(format!("stop after {total} records"));
    expected.push("queue after the logger: 0 messages".into());
    assert_lines(output, &expected);
}

/// Each client's three answers, right whatever the other clients did; its
/// stat answered while its first two replies still waited, unread.
fn check_stat_server(output: &str) {
    let mut expected = Vec::new();
    for client in 0..4 {
        let k = client + 1;
        let numbers = [k, 2 * k, 3 * k, 100];
        let sum: i64 = numbers.iter().sum();
        let greeting = format!("hello from client {client}");
        expected.push(format!(
            "client {client}: add {} {} {} {} = {sum}",
            numbers[0], numbers[1], numbers[2], numbers[3]
        ));
        expected.push(format!(
            "client {client}: uppercase \"{greeting}\" = \"{}\"",
            greeting.to_uppercase()
        ));
        expected.push(format!(
            "client {client}: stat = 3 requests from you, 2 replies waiting for you"
        ));
    }
    expected.push("server: served 12 requests, then shut down".into());
    assert_lines(output, &expected);
}

/// The stream through the ring in writes whose sizes follow the producer's
/// rule: the consumer gets every byte, in order.
fn check_shm_pipe(output: &str) {
    const TOTAL: u32 = 300_000;
    let (mut sent, mut writes) = (0, 0);
    while sent < TOTAL {
        sent += (1 + writes * 7919 % 3000).min(TOTAL - sent);
        writes += 1;
    }
    let checksum = stream_checksum(TOTAL);
    assert_lines(
        output,
        &[
            format!("producer: wrote {TOTAL} bytes in {writes} writes, checksum {checksum}"),
            format!("consumer: read {TOTAL} bytes, checksum {checksum}"),
        ],
    );
}

#[test]
fn shm_writer_reader() {
    in_every_mode("shm_writer_reader", check_shm_writer_reader);
}

#[test]
fn sem_chain() {
    in_every_mode("sem_chain", check_sem_chain);
}

#[test]
fn shared_sum() {
    in_every_mode("shared_sum", check_shared_sum);
}

#[test]
fn msg_logger() {
    in_every_mode("msg_logger", check_msg_logger);
}

#[test]
fn stat_server() {
    in_every_mode("stat_server", check_stat_server);
}

#[test]
fn shm_pipe() {
    in_every_mode("shm_pipe", check_shm_pipe);
}

#[test]
fn undo_exec() {
    in_every_mode("undo_exec", check_undo_exec);
}

#[test]
fn structs() {
    in_every_mode("structs", check_structs);
}

#[test]
fn undo_checkpoint_on_the_c_api() {
    let _watchdog = Watchdog::new("undo_checkpoint", TEST_LIMIT);
    let dir = TempDir::new("undo_checkpoint");
    let output = run(on_the_c_api("undo_checkpoint", &dir.join("api.arena")));
    assert_lines(
        &output,
        &[
            "the list holds the worker's +1: yes".into(),
            "after the kill: 0".into(),
            "garbage: EINVAL".into(),
            "unknown flags: EINVAL".into(),
            "the dead worker's list is still readable: yes".into(),
            "the restarted process finds the semaphore at 0".into(),
            "importing again: ESRCH".into(),
            "after the restarted process exited: 1".into(),
        ],
    );
}

/// Exec undoes nothing; the new image's exit applies the old image's
/// adjustment.
fn check_undo_exec(output: &str) {
    assert_lines(
        output,
        &[
            "the new image finds the semaphore at 0".into(),
            "after the new image exited: 1".into(),
        ],
    );
}

/// Every field where the program knows what it must hold: the same ids,
/// pids and times it made, and an errno for each call made wrongly. (That
/// usysv's output is the kernel's, line for line, [`in_every_mode`] checks.)
fn check_structs(output: &str) {
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 46, "{output}");
    for word in [" other", "another id", "wrong"] {
        assert!(!output.contains(word), "`{word}` in:\n{output}");
    }
    for line in lines.iter().filter(|line| line.contains(": -1 ")) {
        assert!(
            line.ends_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit()),
            "{line}"
        );
    }
}

/// The six programs, each with the call it makes first.
const PROGRAMS: [(&str, &str); 6] = [
    ("shm_writer_reader", "shmget"),
    ("sem_chain", "semget"),
    ("shared_sum", "shmget"),
    ("msg_logger", "msgget"),
    ("stat_server", "msgget"),
    ("shm_pipe", "shmget"),
];

#[test]
fn under_no_sysv_the_kernels_system_v_calls_fail_with_enosys() {
    let _watchdog = Watchdog::new("programs under no_sysv", TEST_LIMIT);
    let no_sysv = build("no_sysv", &[]);
    for (program, first_call) in PROGRAMS {
        let mut cmd = Command::new(&no_sysv);
        cmd.arg(build(program, &[]));
        let outcome = execute(cmd);
        assert_eq!(
            outcome.status.code(),
            Some(1),
            "{program} under no_sysv: {}",
            outcome.stderr
        );
        assert_eq!(outcome.stdout, "", "{program} under no_sysv");
        assert_eq!(
            outcome.stderr,
            format!("{program}: {first_call}: Function not implemented\n")
        );
    }
}

#[test]
fn under_no_sysv_other_programs_run_as_ever() {
    let _watchdog = Watchdog::new("echo under no_sysv", TEST_LIMIT);
    let mut cmd = Command::new(build("no_sysv", &[]));
    // Found on PATH, as execvp does.
    cmd.args(["echo", "hi"]);
    assert_eq!(run(cmd), "hi\n");
}

#[test]
fn the_static_library_serves_a_program_too() {
    let _watchdog = Watchdog::new("static libusysv", TEST_LIMIT);
    let dir = TempDir::new("static-libusysv");
    let archive = library_dir().join("libusysv.a");
    // What the archive needs of the system (`rustc --print
    // native-static-libs`), as the pkg-config file's Libs.private says.
    let executable = build(
        "shared_sum",
        &[
            "-DUSYSV_API",
            &format!("-I{INCLUDE}"),
            archive.to_str().unwrap(),
            "-lgcc_s",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lrt",
            "-lutil",
        ],
    );
    let mut cmd = Command::new(executable);
    cmd.env("USYSV_ARENA", dir.join("arena"));
    check_shared_sum(&run(cmd));
}

#[test]
fn installed_with_pkg_config_a_program_builds_with_one_command() {
    let _watchdog = Watchdog::new("pkg-config", TEST_LIMIT);
    let dir = TempDir::new("pkg-config");
    let prefix =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prefix-{}", std::process::id()));
    let install = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ffi/capi/install.sh"
    ))
    .arg(&prefix)
    .env("USYSV_LIB_DIR", library_dir())
    .output()
    .unwrap();
    assert!(
        install.status.success(),
        "install.sh: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let pkgconfig = prefix.join("lib/pkgconfig");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "usysv"])
        .env("PKG_CONFIG_PATH", &pkgconfig)
        .output()
        .expect("pkg-config is not installed (.ci/run installs it)");
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let mut args = vec!["-DUSYSV_API"];
    args.extend(flags.split_whitespace());
    let mut cmd = Command::new(build("sem_chain", &args));
    cmd.env("USYSV_ARENA", dir.join("arena"))
        .env("LD_LIBRARY_PATH", prefix.join("lib"));
    check_sem_chain(&run(cmd));
    std::fs::remove_dir_all(&prefix).unwrap();
}

#[test]
fn a_program_that_makes_no_system_v_call_sees_no_difference() {
    let _watchdog = Watchdog::new("no System V calls", TEST_LIMIT);
    let dir = TempDir::new("no-sysv-calls");
    let arena = dir.join("arena");
    let script = "echo out; echo err >&2; exec sh -c 'exit 3'";
    let plain = execute({
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    });
    let preloaded = execute({
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .env("LD_PRELOAD", library_dir().join("libusysv_preload.so"))
            .env("USYSV_ARENA", &arena);
        cmd
    });
    assert_eq!(
        (
            plain.status.code(),
            plain.stdout.as_str(),
            plain.stderr.as_str()
        ),
        (Some(3), "out\n", "err\n")
    );
    assert_eq!(
        (preloaded.status.code(), preloaded.stdout, preloaded.stderr),
        (plain.status.code(), plain.stdout, plain.stderr)
    );
    assert!(
        !arena.exists(),
        "the arena is opened by the first call, not by loading"
    );
}
