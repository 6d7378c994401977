//! `usysv run`: an unmodified System V program, and the program it execs,
//! served from a usysv arena through the preload library, with the kernel's
//! System V system calls blocked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use usysv_platform::usysv_core::{Errno, Limits};
use usysv_platform::Ipc;
use usysv_tests::{install_usysv, TempDir, Watchdog};

/// A program written for the kernel's <sys/sem.h>: `counter KEY` creates
/// the set of KEY with value 7, then execs `counter KEY child`, which adds
/// one and prints the value it reads back.
const COUNTER: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/sem.h>

union semun { int val; struct semid_ds *buf; unsigned short *array; };

static void fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    key_t key = (key_t) atoi(argv[1]);
    if (argc == 2) {
        int id = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
        if (id < 0) fail("semget");
        union semun arg = { .val = 7 };
        if (semctl(id, 0, SETVAL, arg) < 0) fail("semctl");
        execl(argv[0], argv[0], argv[1], "child", (char *) NULL);
        fail("execl");
    }
    int id = semget(key, 0, 0);
    if (id < 0) fail("semget child");
    struct sembuf up = { 0, 1, 0 };
    if (semop(id, &up, 1) < 0) fail("semop");
    int value = semctl(id, 0, GETVAL);
    if (value < 0) fail("GETVAL");
    printf("value %d\n", value);
    return 0;
}
"#;

/// Compiles C `source` (or the file `source_file`) into `dir/name`.
fn compile(dir: &TempDir, name: &str, source: &str) -> PathBuf {
    let src = dir.join(&format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    compile_file(dir, name, &src)
}

fn compile_file(dir: &TempDir, name: &str, src: &Path) -> PathBuf {
    let out = dir.join(name);
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(compiler)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .unwrap();
    assert!(status.success(), "cc {}", src.display());
    out
}

fn output(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// A key no other test uses, in the kernel or in an arena.
fn unique_key() -> i32 {
    0x5eed_0000 | (std::process::id() as i32 & 0xffff)
}

#[test]
fn an_unmodified_program_and_the_program_it_execs_run_on_usysv_without_the_kernel() {
    let _watchdog = Watchdog::new("usysv run", Duration::from_secs(60));
    let dir = TempDir::new("cli-run");
    let usysv = install_usysv(&dir, true);
    let counter = compile(&dir, "counter", COUNTER);
    let no_sysv = compile_file(
        &dir,
        "no_sysv",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/no_sysv.c"),
    );
    let arena = dir.join("arena");
    let key = unique_key();

    // The kernel's System V calls fail under the filter: whatever works
    // below is usysv's.
    let (code, _, stderr) = output(Command::new(&no_sysv).arg(&counter).arg(key.to_string()));
    assert_ne!(code, 0);
    assert!(stderr.contains("Function not implemented"), "{stderr}");

    let (code, stdout, stderr) = output(
        Command::new(&no_sysv)
            .arg(&usysv)
            .args(["run", "--arena"])
            .arg(&arena)
            .arg("--")
            .arg(&counter)
            .arg(key.to_string()),
    );
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout, "value 8\n");

    // The set is in the arena, and only there.
    let ipc = Ipc::open(&arena, &Limits::default(), 0o600).unwrap();
    let id = ipc.semget(key, 0, 0).unwrap();
    assert_eq!(ipc.semctl_getval(id, 0), Ok(8));
    ipc.semctl_rmid(id).unwrap();
    // SAFETY: semget has no memory arguments.
    let kernel = unsafe { libc::semget(key, 0, 0) };
    assert_eq!(kernel, -1);
    assert_eq!(
        Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap()),
        Errno::ENOENT
    );
}

#[test]
fn usysv_run_explains_what_is_missing_in_one_line() {
    let dir = TempDir::new("cli-run-errors");
    let arena = dir.join("arena");

    let usysv = install_usysv(&dir, true);
    let (code, stdout, stderr) = output(Command::new(&usysv).arg("run"));
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        "usysv: usysv run needs a program to run (see `usysv run --help`)\n"
    );

    let (code, _, stderr) = output(
        Command::new(&usysv)
            .args(["run", "--arena"])
            .arg(&arena)
            .args(["--", "/nonexistent/program"]),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("usysv: cannot run /nonexistent/program: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);

    let (code, stdout, _) = output(Command::new(&usysv).args(["run", "--help"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("usage: usysv run"), "{stdout}");

    let bare = TempDir::new("cli-run-no-library");
    let usysv = install_usysv(&bare, false);
    let (code, _, stderr) = output(
        Command::new(&usysv)
            .args(["run", "--arena"])
            .arg(&arena)
            .args(["--", "true"]),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("libusysv_preload.so is missing"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}
