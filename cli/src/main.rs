//! `usysv`: the command-line face of usysv.
//!
//! Errors are one line on standard error and a non-zero exit: 1 when the
//! command failed, 2 when it was called wrongly.

mod arena;
mod args;
mod bench;
mod daemon;
mod getopt;
mod ipcmk;
mod ipcrm;
mod ipcs;
mod json;
mod local;
mod run;
mod undo;

use std::process::ExitCode;

const USAGE: &str = "\
usage: usysv COMMAND [OPTIONS]

Commands:
  arena info      show an arena's file, limits and usage (creating the arena if missing)
  arena create    create an arena with chosen limits
  arena remove    delete an arena file
  check           verify every invariant of an arena; exit 0 only when clean
  gc              reap the processes that died without leaving the arena
  daemon          reap each registered process the moment it dies (pidfd)
  ipcs            show the arena's objects, limits or usage, as util-linux's ipcs (or --json)
  ipcrm           remove objects by id or key, as util-linux's ipcrm
  ipcmk           create a segment, queue or semaphore set, as util-linux's ipcmk
  run             run a program (and its children) with System V IPC served by usysv
  undo export     print a process's SEM_UNDO adjustments; --hold checkpoints them
  undo release    give up a checkpoint (apply the adjustments a dead process kept)
  bench           measure usysv beside the kernel's System V IPC

Every command takes --arena PATH; the default is $USYSV_ARENA, else
/dev/shm/usysv-UID/arena. Run `usysv COMMAND --help` for a command's options.

Examples:
  usysv ipcmk -S 3
  usysv ipcs -s
  usysv ipcrm -s 0
  usysv run -- ipcmk -S 3
  usysv arena info
  usysv arena create --arena /tmp/test.arena --semmni 64 --heap-bytes 1048576
  usysv check --arena /tmp/test.arena
  usysv gc --arena /tmp/test.arena";

/// A failure to report: the message, and whether it was a usage error.
pub struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    /// The command failed.
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            usage: false,
        }
    }

    /// The command was called wrongly.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            usage: true,
        }
    }

    /// The command failed, and has already said why.
    pub fn reported() -> Failure {
        Failure::failed(String::new())
    }
}

impl From<usysv_platform::ArenaError> for Failure {
    fn from(err: usysv_platform::ArenaError) -> Self {
        Failure::failed(err.to_string())
    }
}

fn run(args: Vec<String>) -> Result<(), Failure> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["--help" | "-h" | "help", ..] => {
            println!("{USAGE}");
            Ok(())
        }
        ["--version" | "-V", ..] => {
            println!("usysv {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        ["arena", "info", rest @ ..] => arena::info(rest),
        ["arena", "create", rest @ ..] => arena::create(rest),
        ["arena", "remove", rest @ ..] => arena::remove(rest),
        ["arena", ..] => Err(Failure::usage("`usysv arena` takes info, create or remove")),
        ["check", rest @ ..] => arena::check(rest),
        ["gc", rest @ ..] => arena::gc(rest),
        ["daemon", rest @ ..] => daemon::run(rest),
        ["ipcs", rest @ ..] => ipcs::run(rest),
        ["ipcrm", rest @ ..] => ipcrm::run(rest),
        ["ipcmk", rest @ ..] => ipcmk::run(rest),
        ["run", rest @ ..] => run::run(rest),
        ["undo", "export", rest @ ..] => undo::export(rest),
        ["undo", "release", rest @ ..] => undo::release(rest),
        ["undo", ..] => Err(Failure::usage("`usysv undo` takes export or release")),
        ["bench", rest @ ..] => bench::run(rest),
        [other, ..] => Err(Failure::usage(format!(
            "unknown command `{other}` (see `usysv --help`)"
        ))),
    }
}

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| Failure::usage(format!("{arg:?} is not valid UTF-8")))
        })
        .collect();
    match args.and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("usysv: {}", failure.message);
            }
            ExitCode::from(if failure.usage { 2 } else { 1 })
        }
    }
}
