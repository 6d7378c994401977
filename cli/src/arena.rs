//! `usysv arena info|create|remove` and `usysv check`.

use usysv_platform::usysv_core::format::FormatError;
use usysv_platform::usysv_core::limits::DEFAULT_LIMITS;
use usysv_platform::usysv_core::{Kind, Limits, Severity};
use usysv_platform::{ArenaError, ArenaFile};
use usysv_platform::{ArenaProblem, DEFAULT_MODE};

use crate::args::Options;
use crate::ipcs::{self, Unit};
use crate::Failure;

const INFO_HELP: &str = "\
usage: usysv arena info [--arena PATH]

Shows the arena's file, size, limits (as `ipcs -l` prints them) and usage.
The arena is created with the default limits if it does not exist yet.";

const CREATE_HELP: &str = "\
usage: usysv arena create [--arena PATH] [--mode MODE] [--LIMIT VALUE]...

Creates an arena; fails if one exists at PATH. MODE is the file mode
(default 0600; 0660 or 0666 let other users of the group or machine open it,
while each object's own ipc_perm still applies).
Limits (defaults are the Linux kernel's):
  --semmni --semmsl --semmns --semopm --semvmx
  --msgmni --msgmax --msgmnb
  --shmmni --shmmax --shmall
  --procs        process slots (default 32768)
  --heap-bytes   heap for semaphore arrays, message rings, undo lists (default 64 MiB)

Example: usysv arena create --arena /tmp/small --semmni 16 --heap-bytes 65536";

const REMOVE_HELP: &str = "\
usage: usysv arena remove [--arena PATH]

Deletes the arena file. Processes that have it open keep using it; new ones
get a fresh arena.";

const CHECK_HELP: &str = "\
usage: usysv check [--arena PATH]

Verifies every invariant of the arena and prints each problem on a line.
Locks held by processes that have died are first taken over and their
unfinished changes rolled back, as the next user of each lock would do.
Exit status: 0 clean, 1 corrupt, 3 only leftovers of dead processes
(which `usysv gc` clears).";

const GC_HELP: &str = "\
usage: usysv gc [--arena PATH]

Reaps every process registered in the arena that died without leaving
(killed, or gone by _exit), as the kernel does at exit: its SEM_UNDO
adjustments are applied, its shared memory attachments end, its waiting
semop and msgrcv calls leave their queues, and its registration is freed.
usysv does this on its own when a process meets the leftovers; gc does it
for all of them at once.

Example:
  usysv gc --arena /tmp/test.arena";

const LIMIT_NAMES: [&str; 13] = [
    "semmni",
    "semmsl",
    "semmns",
    "semopm",
    "semvmx",
    "msgmni",
    "msgmax",
    "msgmnb",
    "shmmni",
    "shmmax",
    "shmall",
    "procs",
    "heap-bytes",
];

fn wants_help(args: &[&str], help: &str) -> bool {
    let asked = args.iter().any(|a| matches!(*a, "--help" | "-h"));
    if asked {
        println!("{help}");
    }
    asked
}

pub fn info(args: &[&str]) -> Result<(), Failure> {
    if wants_help(args, INFO_HELP) {
        return Ok(());
    }
    let opts = Options::parse(args, &["arena"])?;
    let path = opts.arena_path()?;
    let file = ArenaFile::open_or_create(&path, &Limits::default(), DEFAULT_MODE)?;
    let ns = file.namespace()?;
    let l = ns.limits();
    println!("arena      {}", path.display());
    println!(
        "size       {} bytes mapped (a sparse file: only touched pages use memory)",
        file.len()
    );
    println!("created    {}", utc(ns.created()));
    println!(
        "processes  {} of {} slots registered (this one included)",
        ns.processes(),
        l.procs
    );
    println!(
        "heap       {} of {} bytes in use",
        ns.heap_used(),
        l.heap_bytes
    );
    println!(
        "objects    {} semaphore sets, {} message queues, {} shared memory segments",
        ns.in_use(Kind::Sem),
        ns.in_use(Kind::Msg),
        ns.in_use(Kind::Shm)
    );
    println!();
    print!("{}", ipcs::limits_text(l, Unit::Default));
    Ok(())
}

pub fn create(args: &[&str]) -> Result<(), Failure> {
    if wants_help(args, CREATE_HELP) {
        return Ok(());
    }
    let mut valued = vec!["arena", "mode"];
    valued.extend(LIMIT_NAMES);
    let opts = Options::parse(args, &valued)?;
    let path = opts.arena_path()?;
    let mode = opts.number("mode")?.unwrap_or(DEFAULT_MODE.into());
    if mode > 0o777 {
        return Err(Failure::usage(format!(
            "--mode {mode:o}: only permission bits (0..=0777)"
        )));
    }
    let mut limits = DEFAULT_LIMITS;
    for name in LIMIT_NAMES {
        let Some(value) = opts.number(name)? else {
            continue;
        };
        let narrow = || {
            u32::try_from(value).map_err(|_| Failure::usage(format!("--{name} {value}: too large")))
        };
        match name {
            "semmni" => limits.semmni = narrow()?,
            "semmsl" => limits.semmsl = narrow()?,
            "semmns" => limits.semmns = narrow()?,
            "semopm" => limits.semopm = narrow()?,
            "semvmx" => limits.semvmx = narrow()?,
            "msgmni" => limits.msgmni = narrow()?,
            "msgmax" => limits.msgmax = narrow()?,
            "msgmnb" => limits.msgmnb = narrow()?,
            "shmmni" => limits.shmmni = narrow()?,
            "shmmax" => limits.shmmax = value,
            "shmall" => limits.shmall = value,
            "procs" => limits.procs = narrow()?,
            _ => limits.heap_bytes = narrow()?,
        }
    }
    if let Err(bad) = limits.validate() {
        return Err(Failure::usage(bad.to_string()));
    }
    let file = ArenaFile::create(&path, &limits, mode as u32)?;
    println!("created {} ({} bytes, sparse)", path.display(), file.len());
    Ok(())
}

pub fn remove(args: &[&str]) -> Result<(), Failure> {
    if wants_help(args, REMOVE_HELP) {
        return Ok(());
    }
    let opts = Options::parse(args, &["arena"])?;
    let path = opts.arena_path()?;
    // Refuse to delete a file that is not an arena; one of another format
    // version, or damaged, is removed all the same: that is the remedy.
    match ArenaFile::open(&path) {
        Ok(_)
        | Err(ArenaError {
            problem: ArenaProblem::Format(FormatError::Version { .. } | FormatError::Unfinished),
            ..
        })
        | Err(ArenaError {
            problem:
                ArenaProblem::Format(
                    FormatError::BadLimits(_)
                    | FormatError::Truncated { .. }
                    | FormatError::Inconsistent,
                ),
            ..
        }) => {}
        Err(err) => return Err(err.into()),
    }
    ArenaFile::remove(&path)?;
    println!("removed {}", path.display());
    Ok(())
}

pub fn check(args: &[&str]) -> Result<(), Failure> {
    if wants_help(args, CHECK_HELP) {
        return Ok(());
    }
    let opts = Options::parse(args, &["arena"])?;
    let path = opts.arena_path()?;
    let file = ArenaFile::open(&path)?;
    let ns = file.namespace()?;
    let summary = file.check(&ns, &mut |problem| {
        let tag = match problem.severity {
            Severity::Corrupt => "corrupt",
            Severity::Stale => "stale",
        };
        println!("{tag}: {problem}");
    });
    if summary.recovered > 0 {
        println!(
            "recovered {} locks abandoned by dead processes (their unfinished changes rolled back)",
            summary.recovered
        );
    }
    match (summary.corrupt, summary.stale) {
        (0, 0) => {
            println!("{}: clean", path.display());
            Ok(())
        }
        (0, stale) => {
            println!("{}: {stale} leftovers of dead processes", path.display());
            // Leave the arena first: exit skips the drops that would.
            drop(ns);
            drop(file);
            std::process::exit(3)
        }
        (corrupt, _) => Err(Failure::failed(format!(
            "{}: {corrupt} problems found",
            path.display()
        ))),
    }
}

pub fn gc(args: &[&str]) -> Result<(), Failure> {
    if wants_help(args, GC_HELP) {
        return Ok(());
    }
    let opts = Options::parse(args, &["arena"])?;
    let path = opts.arena_path()?;
    let file = ArenaFile::open(&path)?;
    let reaped = file.namespace()?.collect_dead();
    let plural = if reaped == 1 { "" } else { "es" };
    println!("{}: reaped {reaped} dead process{plural}", path.display());
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch.
fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_219_200), "2026-11-21 00:00:00 UTC");
    }
}
