//! `usysv daemon`: watches the processes registered in an arena and reaps
//! each the moment it dies.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use usysv_platform::usysv_core::host::{Host, Liveness, ProcessId};

use crate::args::Options;
use crate::Failure;

const HELP: &str = "\
usage: usysv daemon [--arena PATH] [--rescan-ms N]

Watches every process registered in the arena through a pidfd and reaps
each one the moment it dies without leaving (killed, or gone by _exit): its
SEM_UNDO adjustments are applied, its attachments end, its waits leave their
queues, at once rather than when another process next meets its leftovers.
The registry is read again every N milliseconds (default 100) for processes
that registered since. Runs in the foreground until SIGINT or SIGTERM, and
prints a line for each process reaped.

Without the daemon nothing is lost: usysv reaps dead processes on its own
(see `usysv gc --help`); the daemon only makes it immediate.

Example:
  usysv daemon --arena /tmp/test.arena &";

/// Set by SIGINT and SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

pub fn run(args: &[&str]) -> Result<(), Failure> {
    if args.iter().any(|a| matches!(*a, "--help" | "-h")) {
        println!("{HELP}");
        return Ok(());
    }
    let opts = Options::parse(args, &["arena", "rescan-ms"])?;
    let rescan = opts.number("rescan-ms")?.unwrap_or(100);
    let rescan = libc::c_int::try_from(rescan)
        .ok()
        .filter(|&ms| ms > 0)
        .ok_or_else(|| Failure::usage(format!("--rescan-ms {rescan}: 1 to 2147483647")))?;
    let path = opts.arena_path()?;
    let ipc = crate::ipcs::open_arena(&path)?;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `stop` only stores to an atomic, which is async-signal-safe;
        // no SA_RESTART, so poll returns EINTR and the loop sees the flag.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(Failure::failed(format!(
                "cannot handle signal {signal}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    println!("usysv daemon: watching {}", path.display());
    let ns = ipc.namespace();
    let me = ns.host().current_process();
    let mut watched: HashMap<ProcessId, OwnedFd> = HashMap::new();
    while !STOP.load(Ordering::Relaxed) {
        let running: Vec<ProcessId> = ns.running().filter(|&p| p != me).collect();
        watched.retain(|process, _| running.contains(process));
        let mut died = false;
        for process in running {
            if watched.contains_key(&process) {
                continue;
            }
            match pidfd(ns.host(), process) {
                Some(fd) => {
                    watched.insert(process, fd);
                }
                None => died = true,
            }
        }
        if died || wait_for_an_exit(&watched, rescan) {
            let reaped = ns.collect_dead();
            if reaped > 0 {
                let plural = if reaped == 1 { "" } else { "es" };
                println!("usysv daemon: reaped {reaped} dead process{plural}");
            }
        }
    }
    println!("usysv daemon: stopped");
    Ok(())
}

/// A pidfd for `process`, or `None` when it is no longer running (its pid
/// gone, or reused by another process).
fn pidfd(host: &impl Host, process: ProcessId) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, process.pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a descriptor the call above just opened, owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    // Opened first, checked second: if the start time still matches now,
    // the descriptor refers to this process, not to a successor of its pid.
    (host.liveness(process) == Liveness::Alive).then_some(fd)
}

/// Waits up to `ms` milliseconds for a watched process to exit; whether
/// one did.
fn wait_for_an_exit(watched: &HashMap<ProcessId, OwnedFd>, ms: libc::c_int) -> bool {
    let mut fds: Vec<libc::pollfd> = watched
        .values()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` holds `fds.len()` initialised pollfd records, and the
    // descriptors stay open (owned by `watched`) for the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    ready > 0
}
