//! `usysv ipcrm`: removes objects from an arena by id or by key, with
//! util-linux's options and messages. Every argument is checked before
//! anything is removed; then each removal is tried in order, a failure
//! reported on its own line and the rest still tried, and the exit status
//! is 1 if any failed.

use usysv_platform::usysv_core::Errno;
use usysv_platform::Ipc;

use crate::args::parse_number;
use crate::getopt::{self, Arg, Spec};
use crate::ipcs::{emit, open_arena};
use crate::Failure;

const HELP: &str = "\
usage: usysv ipcrm [--arena PATH] [OPTIONS]
       usysv ipcrm [--arena PATH] shm|msg|sem ID...

Removes System V IPC objects from a usysv arena, as util-linux's ipcrm
removes the kernel's. Each option may be given many times.

Options:
  -m, --shmem-id ID          remove the shared memory segment ID
  -M, --shmem-key KEY        remove the shared memory segment of KEY
  -q, --queue-id ID          remove the message queue ID
  -Q, --queue-key KEY        remove the message queue of KEY
  -s, --semaphore-id ID      remove the semaphore set ID
  -S, --semaphore-key KEY    remove the semaphore set of KEY
  -a, --all[=shm|msg|sem]    remove every object (of the kind) this user may
  -v, --verbose              say what is being removed
      --arena PATH           the arena (default: $USYSV_ARENA, else
                             /dev/shm/usysv-UID/arena)
  -h, --help                 this help
  -V, --version              the version

IDs are decimal; KEYs decimal, 0x hexadecimal or 0 octal. A failure (an
invalid id or key, no permission) is reported and the others still removed;
the exit status is then 1. A shared memory segment still attached is
removed when its last attachment ends, as in the kernel.

Examples:
  usysv ipcrm -s 32768 -q 0
  usysv ipcrm -M 0x1234abcd
  usysv ipcrm --arena /tmp/test.arena --all=sem
  usysv ipcrm shm 65536 65537";

const SPECS: [Spec; 11] = [
    Spec::value(Some('m'), "shmem-id"),
    Spec::value(Some('M'), "shmem-key"),
    Spec::value(Some('q'), "queue-id"),
    Spec::value(Some('Q'), "queue-key"),
    Spec::value(Some('s'), "semaphore-id"),
    Spec::value(Some('S'), "semaphore-key"),
    Spec::optional(Some('a'), "all"),
    Spec::flag(Some('v'), "verbose"),
    Spec::value(None, "arena"),
    Spec::flag(Some('h'), "help"),
    Spec::flag(Some('V'), "version"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shm,
    Msg,
    Sem,
}

impl Kind {
    fn named(word: &str) -> Option<Kind> {
        match word {
            "shm" => Some(Kind::Shm),
            "msg" => Some(Kind::Msg),
            "sem" => Some(Kind::Sem),
            _ => None,
        }
    }

    /// What `--verbose` calls an object of this kind.
    fn noun(self) -> &'static str {
        match self {
            Kind::Shm => "shared memory segment",
            Kind::Msg => "message queue",
            Kind::Sem => "semaphore",
        }
    }
}

/// One removal asked for.
enum Target<'a> {
    /// By id.
    Id(i32),
    /// By key, with the key as written.
    Key(i32, &'a str),
    /// An id util-linux's old form could not read, reported in its turn.
    BadId(&'a str),
}

pub fn run(args: &[&str]) -> Result<(), Failure> {
    let mut removals: Vec<(Kind, Target)> = Vec::new();
    let (mut all, mut verbose, mut arena, mut words) = (None, false, None, Vec::new());
    for arg in getopt::parse(args, &SPECS)? {
        let (kind, by_key, text) = match arg {
            Arg::Opt("shmem-id", Some(text)) => (Kind::Shm, false, text),
            Arg::Opt("shmem-key", Some(text)) => (Kind::Shm, true, text),
            Arg::Opt("queue-id", Some(text)) => (Kind::Msg, false, text),
            Arg::Opt("queue-key", Some(text)) => (Kind::Msg, true, text),
            Arg::Opt("semaphore-id", Some(text)) => (Kind::Sem, false, text),
            Arg::Opt("semaphore-key", Some(text)) => (Kind::Sem, true, text),
            Arg::Opt("all", value) => {
                all = Some(match value {
                    None => None,
                    Some(word) => Some(
                        Kind::named(word)
                            .ok_or_else(|| Failure::usage(format!("unknown argument: {word}")))?,
                    ),
                });
                continue;
            }
            Arg::Opt("verbose", _) => {
                verbose = true;
                continue;
            }
            Arg::Opt("arena", value) => {
                arena = value;
                continue;
            }
            Arg::Opt("help", _) => return emit(&format!("{HELP}\n")),
            Arg::Opt("version", _) => {
                return emit(&format!("ipcrm from usysv {}\n", env!("CARGO_PKG_VERSION")))
            }
            Arg::Opt(..) => unreachable!("every option is matched"),
            Arg::Word(word) => {
                words.push(word);
                continue;
            }
        };
        let target = if by_key {
            let key = parse_key(text)?;
            Target::Key(key, text)
        } else {
            Target::Id(parse_id(text)?)
        };
        removals.push((kind, target));
    }
    // util-linux's first form: `ipcrm shm|msg|sem ID...`.
    let old_form = match words.split_first() {
        None => None,
        Some((first, ids)) => {
            let kind = Kind::named(first)
                .ok_or_else(|| Failure::usage(format!("unknown argument: {first}")))?;
            if ids.is_empty() {
                return Err(Failure::usage("not enough arguments"));
            }
            for text in ids {
                let target = match text.parse::<u32>() {
                    Ok(id) => Target::Id(id as i32),
                    Err(_) => Target::BadId(text),
                };
                removals.push((kind, target));
            }
            Some(kind)
        }
    };
    if removals.is_empty() && all.is_none() {
        return Err(Failure::usage(
            "nothing to remove (see `usysv ipcrm --help`)",
        ));
    }
    let ipc = open_arena(&crate::args::arena_or_default(arena)?)?;
    let remover = Remover { ipc: &ipc, verbose };
    let mut failed = false;
    for (kind, target) in &removals {
        failed |= !remover.remove(*kind, target);
    }
    if let Some(kinds) = all {
        for kind in [Kind::Shm, Kind::Sem, Kind::Msg] {
            if kinds.is_none_or(|only| only == kind) {
                failed |= !remover.remove_all(kind);
            }
        }
    }
    if failed {
        return Err(Failure::reported());
    }
    if old_form.is_some() {
        emit("resource(s) deleted\n")?;
    }
    Ok(())
}

/// An id as util-linux reads one: a decimal `int`.
fn parse_id(text: &str) -> Result<i32, Failure> {
    text.trim_start()
        .parse::<i32>()
        .map_err(|_| Failure::usage(format!("failed to parse argument: '{text}'")))
}

/// A key: decimal, `0x` hexadecimal or `0` octal, as a `key_t` (negative
/// decimal, or up to 0xffffffff).
fn parse_key(text: &str) -> Result<i32, Failure> {
    let bad = || Failure::usage(format!("failed to parse argument: '{text}'"));
    let trimmed = text.trim_start();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let magnitude = parse_number(digits).ok_or_else(bad)?;
    if negative {
        let value = i64::try_from(magnitude).map_err(|_| bad())?;
        i32::try_from(-value).map_err(|_| bad())
    } else {
        u32::try_from(magnitude)
            .map(|key| key as i32)
            .map_err(|_| bad())
    }
}

struct Remover<'a> {
    ipc: &'a Ipc,
    verbose: bool,
}

impl Remover<'_> {
    /// Removes one object; false (after saying why) if it could not.
    fn remove(&self, kind: Kind, target: &Target) -> bool {
        let (id, key_text) = match *target {
            Target::Id(id) => (id, None),
            Target::Key(key, text) => match self.key_to_id(kind, key, text) {
                Some(id) => (id, Some(text)),
                None => return false,
            },
            Target::BadId(text) => {
                warn(&format!("invalid id: {text}"));
                return false;
            }
        };
        if self.verbose {
            // An output that fails must not stop the removal it announces.
            emit(&format!("removing {} id `{id}'\n", kind.noun())).ok();
        }
        let result = match kind {
            Kind::Shm => self.ipc.shmctl_rmid(id),
            Kind::Msg => self.ipc.msgctl_rmid(id),
            Kind::Sem => self.ipc.semctl_rmid(id),
        };
        let Err(errno) = result else {
            return true;
        };
        let (what, shown) = match key_text {
            Some(text) => ("key", text.to_string()),
            None => ("id", id.to_string()),
        };
        warn(&match errno {
            Errno::EACCES | Errno::EPERM => format!("permission denied for {what} ({shown})"),
            Errno::EINVAL => format!("invalid {what} ({shown})"),
            Errno::EIDRM => format!("already removed {what} ({shown})"),
            errno => format!("{what} failed ({shown}): {errno}"),
        });
        false
    }

    /// The id of the object of `key`, or `None` after saying why not.
    fn key_to_id(&self, kind: Kind, key: i32, text: &str) -> Option<i32> {
        if key == 0 {
            warn(&format!("illegal key ({text})"));
            return None;
        }
        let found = match kind {
            Kind::Shm => self.ipc.shmget(key, 0, 0),
            Kind::Msg => self.ipc.msgget(key, 0),
            Kind::Sem => self.ipc.semget(key, 0, 0),
        };
        match found {
            Ok(id) => Some(id),
            Err(errno) => {
                warn(&match errno {
                    Errno::EACCES => format!("permission denied for key ({text})"),
                    Errno::EIDRM => format!("already removed key ({text})"),
                    Errno::ENOENT => format!("invalid key ({text})"),
                    errno => format!("key failed ({text}): {errno}"),
                });
                None
            }
        }
    }

    /// `--all`: removes every object of `kind` that `*_STAT` shows this
    /// user (those it may read), as util-linux does; false if any removal
    /// failed.
    fn remove_all(&self, kind: Kind) -> bool {
        let max = match kind {
            Kind::Shm => self.ipc.shmctl_info().0,
            Kind::Msg => self.ipc.msgctl_info(false).0,
            Kind::Sem => self.ipc.semctl_info(false).0,
        };
        let mut ok = true;
        for index in 0..=max {
            let found = match kind {
                Kind::Shm => self.ipc.shmctl_stat_index(index, false).map(|(id, _)| id),
                Kind::Msg => self.ipc.msgctl_stat_index(index, false).map(|(id, _)| id),
                Kind::Sem => self.ipc.semctl_stat_index(index, false).map(|(id, _)| id),
            };
            if let Ok(id) = found {
                ok &= self.remove(kind, &Target::Id(id));
            }
        }
        ok
    }
}

/// A failure that does not stop the others: one line on standard error.
fn warn(message: &str) {
    eprintln!("usysv: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_three_bases_and_as_key_t() {
        assert_eq!(parse_key("0x1234abcd").ok(), Some(0x1234_abcd));
        assert_eq!(parse_key("4660").ok(), Some(4660));
        assert_eq!(parse_key("010").ok(), Some(8));
        assert_eq!(parse_key("0xffffffff").ok(), Some(-1));
        assert_eq!(parse_key("-1").ok(), Some(-1));
        assert_eq!(parse_key("-2147483648").ok(), Some(i32::MIN));
        for bad in ["zz", "0x1ffffffff", "-2147483649", "", "12k"] {
            assert!(parse_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_are_decimal_ints() {
        assert_eq!(parse_id("32768").ok(), Some(32768));
        assert_eq!(parse_id("-5").ok(), Some(-5));
        for bad in ["abc", "0x10", "4294967296", ""] {
            assert!(parse_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
