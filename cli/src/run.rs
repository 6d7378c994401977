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

use usysv_platform::usysv_core::{Errno, Limits};
use usysv_platform::DEFAULT_MODE;
use usysv_platform::{ArenaFile, Ipc, ARENA_ENV};

use crate::args::Options;
use crate::Failure;

const USAGE: &str = "\
usage: usysv run [--arena PATH] [--import-undo FILE] [--] PROGRAM [ARGS...]

Runs PROGRAM with its System V IPC (semget, semop, msgsnd, shmat and the
rest) served by usysv from the arena instead of the kernel, and so every
program it starts, through the preload library libusysv_preload.so found
beside this binary. The arena is created if missing.

Options:
  --arena PATH         the arena (default: $USYSV_ARENA, else /dev/shm/usysv-UID/arena)
  --import-undo FILE   restart a checkpointed process: PROGRAM takes over the
                       SEM_UNDO list that `usysv undo export --hold` wrote to
                       FILE and its process kept when it died (if PROGRAM
                       cannot be run, the list is applied as at any exit)

Examples:
  usysv run -- ipcmk -S 3
  usysv run --arena /tmp/test.arena -- ./server --workers 4
  usysv run --arena /backup/arena --import-undo 4242.undo -- ./worker";

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
        split += if matches!(arg, "--arena" | "--import-undo") {
            2
        } else {
            1
        };
    }
    let split = split.min(args.len());
    let options = Options::parse(&args[..split], &["arena", "import-undo"])?;
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
    let file = ArenaFile::open_or_create(&arena, &Limits::default(), DEFAULT_MODE)?;
    if let Some(undo) = options.value("import-undo") {
        import_undo(file, undo)?;
    }
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

/// Registers this process, soon the program, in the arena and takes over
/// the undo list `file` names. The registration is left open: after `exec`
/// the program carries on in it, keeping the list, as exec keeps SEM_UNDO
/// adjustments (closing it would apply them).
fn import_undo(arena: ArenaFile, file: &str) -> Result<(), Failure> {
    let list = crate::undo::read_list(file)?;
    let ipc = Ipc::with_file(arena)?;
    let pid = list.process.pid;
    ipc.undo_import(&list).map_err(|errno| {
        Failure::failed(match errno {
            Errno::ESRCH => format!(
                "{file}: process {pid} kept no undo list in the arena (never held, or imported or released already)"
            ),
            Errno::EBUSY => format!("{file}: process {pid} still runs"),
            Errno::EINVAL => format!(
                "{file}: the arena holds another list for process {pid} (not the arena, or not the copy, the export was read from)"
            ),
            other => format!("{file}: {}", other.description()),
        })
    })?;
    std::mem::forget(ipc);
    Ok(())
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
