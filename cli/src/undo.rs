//! `usysv undo export|release`: a process's `SEM_UNDO` list, for
//! checkpoint/restart (the import is `usysv run --import-undo`).

use usysv_platform::usysv_core::Errno;
use usysv_platform::{Ipc, UndoList};

use crate::args::Options;
use crate::Failure;

const EXPORT_HELP: &str = "\
usage: usysv undo export --pid PID [--hold] [--arena PATH]

Prints the SEM_UNDO adjustments of the process PID registered in the arena:
what its exit will add to each semaphore, per set id (the id carries the
set's sequence number, so a set removed since and its slot reused is never
mistaken for it). With --hold the list is also checkpointed: if the process
then dies without exiting (killed by a checkpointer), its adjustments are
kept for a restarted process to import instead of being applied. Holding
needs the same user as the process (as ptrace does) or CAP_SYS_ADMIN.

Example (checkpoint a process, then restart it on a copy of the arena):
  kill -STOP 4242
  usysv undo export --pid 4242 --hold > 4242.undo
  cp /dev/shm/usysv-1000/arena /backup/arena
  kill -KILL 4242
  usysv run --arena /backup/arena --import-undo 4242.undo -- ./worker";

const RELEASE_HELP: &str = "\
usage: usysv undo release FILE [--arena PATH]

Gives up the checkpoint FILE (from `usysv undo export --hold`) names: if the
process died with its list kept, the adjustments are applied now, as its
exit would have applied them; if it still runs, its list is no longer held.

Example:
  usysv undo release 4242.undo";

pub fn export(args: &[&str]) -> Result<(), Failure> {
    if args.iter().any(|a| matches!(*a, "--help" | "-h")) {
        println!("{EXPORT_HELP}");
        return Ok(());
    }
    let hold = args.contains(&"--hold");
    let rest: Vec<&str> = args.iter().copied().filter(|a| *a != "--hold").collect();
    let opts = Options::parse(&rest, &["arena", "pid"])?;
    let pid = opts
        .number("pid")?
        .ok_or_else(|| Failure::usage("usysv undo export needs --pid PID"))?;
    let pid = u32::try_from(pid).map_err(|_| Failure::usage(format!("--pid {pid}: too large")))?;
    let ipc = open(&opts)?;
    let list = ipc.undo_export(pid, hold).map_err(|errno| match errno {
        Errno::ESRCH => Failure::failed(format!("no process {pid} is registered in the arena")),
        Errno::EPERM => Failure::failed(format!(
            "not permitted to hold process {pid}'s list (another user's; needs CAP_SYS_ADMIN)"
        )),
        Errno::EAGAIN => Failure::failed(format!(
            "process {pid} changed its list while it was read (stop it first: kill -STOP {pid})"
        )),
        other => Failure::failed(format!("process {pid}: {}", other.description())),
    })?;
    print!("{list}");
    Ok(())
}

pub fn release(args: &[&str]) -> Result<(), Failure> {
    if args.iter().any(|a| matches!(*a, "--help" | "-h")) {
        println!("{RELEASE_HELP}");
        return Ok(());
    }
    let (file, rest) = match args.split_first() {
        Some((file, rest)) if !file.starts_with("--") => (*file, rest),
        _ => return Err(Failure::usage("usysv undo release needs a FILE")),
    };
    let opts = Options::parse(rest, &["arena"])?;
    let list = read_list(file)?;
    let ipc = open(&opts)?;
    let pid = list.process.pid;
    ipc.undo_release(list.process)
        .map_err(|errno| match errno {
            Errno::ESRCH => Failure::failed(format!(
                "process {pid} has no checkpoint in the arena (released or imported already)"
            )),
            other => Failure::failed(format!("process {pid}: {}", other.description())),
        })?;
    println!("released the checkpoint of process {pid}");
    Ok(())
}

/// Reads and parses an undo list file, each failure in one line.
pub fn read_list(file: &str) -> Result<UndoList, Failure> {
    let text =
        std::fs::read_to_string(file).map_err(|err| Failure::failed(format!("{file}: {err}")))?;
    UndoList::parse(&text).map_err(|err| Failure::failed(format!("{file}: {err}")))
}

fn open(opts: &Options<'_>) -> Result<Ipc, Failure> {
    crate::ipcs::open_arena(&opts.arena_path()?)
}
