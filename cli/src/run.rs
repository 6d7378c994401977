//! `usysv run`: runs a program, and every program it starts, on usysv.
//!
//! The program is executed with `libusysv_preload.so` (found beside this
//! binary) at the front of `LD_PRELOAD`, and with `USYSV_ARENA` naming the
//! arena when `--arena` is given, so its System V calls, and its children's,
//! are served from the arena instead of the kernel.

use std::env;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use usysv_platform::linux::DEFAULT_MODE;
use usysv_platform::usysv_core::Limits;
use usysv_platform::{ArenaFile, ARENA_ENV};

use crate::args::Options;
use crate::Failure;

const USAGE: &str = "\
usage: usysv run [--arena PATH] [--] PROGRAM [ARGS...]

Runs PROGRAM with its System V IPC (semget, semop, msgsnd, shmat and the
rest) served by usysv from the arena instead of the kernel, and so every
program it starts, through the preload library libusysv_preload.so found
beside this binary. The arena is created if missing.

Options:
  --arena PATH   the arena (default: $USYSV_ARENA, else /dev/shm/usysv-UID/arena)

Examples:
  usysv run -- ipcmk -S 3
  usysv run --arena /tmp/test.arena -- ./server --workers 4";

/// The preload library's file name, beside the `usysv` binary.
pub const PRELOAD_LIB: &str = "libusysv_preload.so";

/// `usysv run [--arena PATH] [--] PROGRAM ARGS...`: returns only on failure.
pub fn run(args: &[&str]) -> Result<(), Failure> {
    if matches!(args.first(), Some(&("--help" | "-h"))) {
        println!("{USAGE}");
        return Ok(());
    }
    // Options up to `--` or the first word that is not one or its value.
    let mut split = 0;
    while let Some(&arg) = args.get(split) {
        if arg == "--" || !arg.starts_with("--") {
            break;
        }
        split += if arg == "--arena" { 2 } else { 1 };
    }
    let split = split.min(args.len());
    let options = Options::parse(&args[..split], &["arena"])?;
    let command = match args.get(split) {
        Some(&"--") => &args[split + 1..],
        _ => &args[split..],
    };
    let Some((program, program_args)) = command.split_first() else {
        return Err(Failure::usage(
            "usysv run needs a program to run (see `usysv run --help`)",
        ));
    };
    let arena = absolute(options.arena_path()?)?;
    // Open (or create) the arena now, so that a bad one is reported here in
    // one line rather than as an errno inside the program.
    ArenaFile::open_or_create(&arena, &Limits::default(), DEFAULT_MODE)?;
    let preload = preload_library()?;
    let mut libs = OsString::from(&preload);
    if let Some(existing) = env::var_os("LD_PRELOAD").filter(|libs| !libs.is_empty()) {
        libs.push(" ");
        libs.push(existing);
    }
    let err = Command::new(program)
        .args(program_args)
        .env("LD_PRELOAD", libs)
        .env(ARENA_ENV, &arena)
        .exec();
    Err(Failure::failed(format!("cannot run {program}: {err}")))
}

/// `libusysv_preload.so` beside the running binary.
fn preload_library() -> Result<PathBuf, Failure> {
    let exe = env::current_exe()
        .map_err(|err| Failure::failed(format!("cannot find the usysv binary: {err}")))?;
    let lib = exe.with_file_name(PRELOAD_LIB);
    if lib.as_os_str().as_bytes().iter().any(|b| b" :".contains(b)) {
        // The loader splits LD_PRELOAD there: the program would silently
        // run on the kernel.
        Err(Failure::failed(format!(
            "{}: LD_PRELOAD cannot name a path holding a space or a colon",
            lib.display()
        )))
    } else if lib.is_file() {
        Ok(lib)
    } else {
        Err(Failure::failed(format!(
            "{} is missing (build it: cargo build --release -p usysv-preload)",
            lib.display()
        )))
    }
}

/// `path` made absolute, so that the program may change directory.
fn absolute(path: PathBuf) -> Result<PathBuf, Failure> {
    std::path::absolute(&path).map_err(|err| Failure::failed(format!("{}: {err}", path.display())))
}
