//! `usysv ipcs`: the objects of an arena, as util-linux's `ipcs` (2.38)
//! shows the kernel's — the same options, headings, columns and widths, so
//! that scripts reading `ipcs` read this too — and as JSON (`--json`).
//!
//! Objects are found as util-linux finds them when `/proc/sysvipc` is
//! absent: by walking the table indexes up to the highest in use (which
//! `IPC_INFO` returns) with the `*_STAT_ANY` calls, which, like
//! `/proc/sysvipc`, list every object whatever its permissions. Where
//! util-linux shows user and group names, they are looked up as it looks
//! them up; times are `ctime(3)`'s, in the local time zone.

use std::io::Write as _;
use std::path::Path;

use usysv_platform::usysv_core::msg::MsqidDs;
use usysv_platform::usysv_core::perm::IpcPerm;
use usysv_platform::usysv_core::sem::{SemQuery, SemidDs};
use usysv_platform::usysv_core::shm::{ShmidDs, PAGE_SIZE, SHM_DEST, SHM_LOCKED};
use usysv_platform::usysv_core::{Errno, Limits};
use usysv_platform::ArenaProblem;
use usysv_platform::{ArenaFile, Ipc};

use crate::getopt::{self, Arg, Spec};
use crate::json::{self, Object};
use crate::local::{ctime, Names};
use crate::Failure;

const HELP: &str = "\
usage: usysv ipcs [--arena PATH] [RESOURCE...] [OUTPUT] [--json]
       usysv ipcs [--arena PATH] -m|-q|-s -i ID [--json]

Shows the System V IPC objects of a usysv arena, as util-linux's ipcs shows
the kernel's: the same options, headings and columns.

Options:
  -i, --id ID       details of one object: its fields, and for a semaphore
                    set each semaphore's value, waiters and last pid
      --arena PATH  the arena (default: $USYSV_ARENA, else /dev/shm/usysv-UID/arena)
      --json        the same information as JSON (every field, for scripts)
  -h, --help        this help
  -V, --version     the version

Resources:
  -q, --queues      message queues
  -m, --shmems      shared memory segments
  -s, --semaphores  semaphore sets
  -a, --all         all three (the default)

Output:
  -t, --time        send, receive, attach, detach, operation and change times
  -p, --pid         creator and last operator pids
  -c, --creator     creator and owner
  -l, --limits      the arena's limits
  -u, --summary     usage summary
      --human       sizes in human-readable form
  -b, --bytes       sizes in bytes

JSON (--json): {\"arena\": PATH, \"queues\": [...], \"segments\": [...],
\"semaphores\": [...]}, one object per queue, segment or set holding every
field of msqid_ds, shmid_ds or semid_ds (ids, key as key_t, mode with its
flag bits, sizes in bytes, times in seconds since the epoch, 0 if never);
with -i, a set also has \"sems\": [{\"semnum\", \"semval\", \"semncnt\",
\"semzcnt\", \"sempid\"}]; with -l, {\"limits\": {...}}; with -u,
{\"summary\": {...}}.

Examples:
  usysv ipcs
  usysv ipcs -s -t
  usysv ipcs -s -i 32768
  usysv ipcs --arena /tmp/test.arena -q --json
  USYSV_ARENA=/tmp/test.arena usysv ipcs -l";

const SPECS: [Spec; 17] = [
    Spec::value(Some('i'), "id"),
    Spec::flag(Some('q'), "queues"),
    Spec::flag(Some('m'), "shmems"),
    Spec::flag(Some('s'), "semaphores"),
    Spec::flag(Some('a'), "all"),
    Spec::flag(Some('t'), "time"),
    Spec::flag(Some('p'), "pid"),
    Spec::flag(Some('c'), "creator"),
    Spec::flag(Some('l'), "limits"),
    Spec::flag(Some('u'), "summary"),
    Spec::flag(None, "human"),
    Spec::flag(Some('b'), "bytes"),
    Spec::flag(None, "json"),
    Spec::value(None, "arena"),
    Spec::flag(Some('h'), "help"),
    Spec::flag(Some('V'), "version"),
    // util-linux's long name for -m, kept for scripts spelling it out.
    Spec::flag(None, "shmem"),
];

/// What the listing shows of each object (util-linux's output formats).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Normal,
    Limits,
    Summary,
    Creator,
    Time,
    Pid,
}

/// How sizes are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Each value in its customary unit.
    Default,
    /// Bytes (`-b`).
    Bytes,
    /// Kilobytes (the customary unit of the shared memory limits).
    Kilobytes,
    /// `1.5K`, `16M` (`--human`).
    Human,
}

/// Which kinds of object to show.
#[derive(Clone, Copy)]
struct Kinds {
    msg: bool,
    shm: bool,
    sem: bool,
}

impl Kinds {
    const ALL: Kinds = Kinds {
        msg: true,
        shm: true,
        sem: true,
    };
}

pub fn run(args: &[&str]) -> Result<(), Failure> {
    let mut kinds = Kinds {
        msg: false,
        shm: false,
        sem: false,
    };
    let (mut format, mut unit, mut id, mut json, mut arena) =
        (Format::Normal, Unit::Default, None, false, None);
    for arg in getopt::parse(args, &SPECS)? {
        match arg {
            Arg::Opt("id", Some(value)) => {
                id = Some(value.trim_start().parse::<i32>().map_err(|_| {
                    Failure::usage(format!("failed to parse id argument: '{value}'"))
                })?)
            }
            Arg::Opt("queues", _) => kinds.msg = true,
            Arg::Opt("shmems" | "shmem", _) => kinds.shm = true,
            Arg::Opt("semaphores", _) => kinds.sem = true,
            Arg::Opt("all", _) => kinds = Kinds::ALL,
            Arg::Opt("time", _) => format = Format::Time,
            Arg::Opt("pid", _) => format = Format::Pid,
            Arg::Opt("creator", _) => format = Format::Creator,
            Arg::Opt("limits", _) => format = Format::Limits,
            Arg::Opt("summary", _) => format = Format::Summary,
            Arg::Opt("human", _) => unit = Unit::Human,
            Arg::Opt("bytes", _) => unit = Unit::Bytes,
            Arg::Opt("json", _) => json = true,
            Arg::Opt("arena", value) => arena = value,
            Arg::Opt("help", _) => return emit(&format!("{HELP}\n")),
            Arg::Opt("version", _) => {
                return emit(&format!("ipcs from usysv {}\n", env!("CARGO_PKG_VERSION")))
            }
            Arg::Opt(..) => unreachable!("every option is matched"),
            Arg::Word(word) => return Err(Failure::usage(format!("unknown argument: {word}"))),
        }
    }
    let chosen = [kinds.msg, kinds.shm, kinds.sem];
    if id.is_some() && chosen.iter().filter(|&&k| k).count() != 1 {
        return Err(Failure::usage(
            "when using an ID, a single resource must be specified",
        ));
    }
    if !chosen.contains(&true) {
        kinds = Kinds::ALL;
    }
    let path = crate::args::arena_or_default(arena)?;
    let ipc = open_arena(&path)?;
    let mut shown = Listing {
        ipc: &ipc,
        names: Names::default(),
        unit,
    };
    let text = match (id, json) {
        (Some(id), false) => shown.one_text(kinds, id)?,
        (Some(id), true) => shown.one_json(&path, kinds, id)?,
        (None, false) => shown.all_text(kinds, format)?,
        (None, true) => shown.all_json(&path, kinds, format)?,
    };
    emit(&text)
}

/// Opens an existing arena for the admin tools: a missing one is an error
/// (they never create one), said plainly.
pub fn open_arena(path: &Path) -> Result<Ipc, Failure> {
    let file = ArenaFile::open(path).map_err(|err| match &err.problem {
        ArenaProblem::Io("open", io) if io.raw_os_error() == Some(libc::ENOENT) => {
            Failure::failed(format!(
                "{}: no arena here (`usysv arena create` makes one)",
                path.display()
            ))
        }
        _ => Failure::from(err),
    })?;
    Ok(Ipc::with_file(file)?)
}

/// Writes `text` to standard output; a reader that went away (`| head`)
/// is not an error.
pub fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::failed(format!("standard output: {err}")))
        }
        _ => Ok(()),
    }
}

/// One semaphore of a set shown with `-i`.
struct SemState {
    value: i32,
    ncount: i32,
    zcount: i32,
    pid: i32,
}

struct Listing<'a> {
    ipc: &'a Ipc,
    names: Names,
    unit: Unit,
}

/// The objects in table slots `0..=max`, by `stat` (a `*_STAT_ANY` call);
/// an empty slot (`EINVAL`) is skipped, any other error (a corrupt arena)
/// reported.
fn walk<T>(
    max: i32,
    call: &str,
    stat: impl Fn(i32) -> Result<(i32, T), Errno>,
) -> Result<Vec<(i32, T)>, Failure> {
    let mut found = Vec::new();
    for index in 0..=max {
        match stat(index) {
            Ok(object) => found.push(object),
            Err(Errno::EINVAL) => {}
            Err(errno) => return Err(Failure::failed(format!("{call} failed: {errno}"))),
        }
    }
    Ok(found)
}

impl Listing<'_> {
    fn queues(&self) -> Result<Vec<(i32, MsqidDs)>, Failure> {
        let (max, _) = self.ipc.msgctl_info(false);
        walk(max, "msgctl(MSG_STAT_ANY)", |index| {
            self.ipc.msgctl_stat_index(index, true)
        })
    }

    fn segments(&self) -> Result<Vec<(i32, ShmidDs)>, Failure> {
        let (max, _) = self.ipc.shmctl_info();
        walk(max, "shmctl(SHM_STAT_ANY)", |index| {
            self.ipc.shmctl_stat_index(index, true)
        })
    }

    fn sets(&self) -> Result<Vec<(i32, SemidDs)>, Failure> {
        let (max, _) = self.ipc.semctl_info(false);
        walk(max, "semctl(SEM_STAT_ANY)", |index| {
            self.ipc.semctl_stat_index(index, true)
        })
    }

    fn sem_states(&self, semid: i32, nsems: u32) -> Result<Vec<SemState>, Failure> {
        let query = |num: u32, query: SemQuery, name: &str| {
            self.ipc
                .semctl_query(semid, num as i32, query)
                .map_err(|errno| Failure::failed(format!("semctl({name}) failed: {errno}")))
        };
        (0..nsems)
            .map(|num| {
                Ok(SemState {
                    value: query(num, SemQuery::Value, "GETVAL")?,
                    ncount: query(num, SemQuery::WaitingToDecrease, "GETNCNT")?,
                    zcount: query(num, SemQuery::WaitingForZero, "GETZCNT")?,
                    pid: query(num, SemQuery::Pid, "GETPID")?,
                })
            })
            .collect()
    }

    /// `%-10.10s` of the owner's name, or `%-10u` of the uid.
    fn owner(&mut self, uid: u32) -> String {
        match self.names.user(uid) {
            Some(name) => format!("{name:<10.10}"),
            None => format!("{uid:<10}"),
        }
    }

    /// A user's name, or the number when it has none.
    fn user_text(&mut self, uid: u32) -> String {
        self.names
            .user(uid)
            .map_or_else(|| uid.to_string(), str::to_string)
    }

    /// A group's name, or the number when it has none.
    fn group_text(&mut self, gid: u32) -> String {
        self.names
            .group(gid)
            .map_or_else(|| gid.to_string(), str::to_string)
    }

    /// util-linux's creator/owner row: id, perms, cuid, cgid, uid, gid.
    fn perms_row(&mut self, id: i32, perm: &IpcPerm) -> String {
        let cuid = self.user_text(perm.cuid);
        let cgid = self.group_text(perm.cgid);
        let uid = self.user_text(perm.uid);
        let gid = self.group_text(perm.gid);
        format!(
            "{id:<10} {:<10o} {cuid:<10} {cgid:<10} {uid:<10} {gid:<10}\n",
            perm.mode & 0o777
        )
    }

    fn all_text(&mut self, kinds: Kinds, format: Format) -> Result<String, Failure> {
        let mut out = String::from("\n");
        if kinds.msg {
            out += &self.msg_text(format)?;
            out.push('\n');
        }
        if kinds.shm {
            out += &self.shm_text(format)?;
            out.push('\n');
        }
        if kinds.sem {
            out += &self.sem_text(format)?;
            out.push('\n');
        }
        Ok(out)
    }

    fn msg_text(&mut self, format: Format) -> Result<String, Failure> {
        let unit = self.unit;
        let mut out = String::new();
        match format {
            Format::Limits => return Ok(msg_limits(self.ipc.namespace().limits(), unit)),
            Format::Summary => {
                let (_, info) = self.ipc.msgctl_info(true);
                out.push_str("------ Messages Status --------\n");
                out += &format!("allocated queues = {}\n", info.msgpool);
                out += &format!("used headers = {}\n", info.msgmap);
                let end = if unit == Unit::Default {
                    " bytes\n"
                } else {
                    "\n"
                };
                out += &labelled_size(unit, "used space", info.msgtql as u64, end);
                return Ok(out);
            }
            Format::Creator => {
                out.push_str("------ Message Queues Creators/Owners --------\n");
                out += &columns(&["msqid", "perms", "cuid", "cgid", "uid", "gid"]);
            }
            Format::Time => {
                out.push_str("------ Message Queues Send/Recv/Change Times --------\n");
                out += &format!(
                    "{:<8} {:<10} {:<20} {:<20} {:<20}\n",
                    "msqid", "owner", "send", "recv", "change"
                );
            }
            Format::Pid => {
                out.push_str("------ Message Queues PIDs --------\n");
                out += &columns(&["msqid", "owner", "lspid", "lrpid"]);
            }
            Format::Normal => {
                out.push_str("------ Message Queues --------\n");
                let size = if unit == Unit::Human {
                    "size"
                } else {
                    "used-bytes"
                };
                out += &format!(
                    "{:<10} {:<10} {:<10} {:<10} {:<12} {:<12}\n",
                    "key", "msqid", "owner", "perms", size, "messages"
                );
            }
        }
        for (id, ds) in self.queues()? {
            let owner = self.owner(ds.perm.uid);
            match format {
                Format::Creator => out += &self.perms_row(id, &ds.perm),
                Format::Time => {
                    out += &format!(
                        "{id:<8} {owner} {:<20.16} {:<20.16} {:<20.16}\n",
                        short_time(ds.stime),
                        short_time(ds.rtime),
                        short_time(ds.ctime)
                    )
                }
                Format::Pid => {
                    out += &format!("{id:<8} {owner}  {:5}     {:5}\n", ds.lspid, ds.lrpid)
                }
                _ => {
                    out += &key_columns(id, &owner, &ds.perm);
                    out += &match unit {
                        Unit::Human => format!("{:>6}      ", human_size(ds.cbytes)),
                        _ => format!("{:<12}", ds.cbytes),
                    };
                    out += &format!(" {:<12}\n", ds.qnum);
                }
            }
        }
        Ok(out)
    }

    fn shm_text(&mut self, format: Format) -> Result<String, Failure> {
        let unit = self.unit;
        let mut out = String::new();
        match format {
            Format::Limits => return Ok(shm_limits(self.ipc.namespace().limits(), unit)),
            Format::Summary => {
                let (_, usage) = self.ipc.shmctl_usage();
                out.push_str("------ Shared Memory Status --------\n");
                out += &format!("segments allocated {}\n", usage.used_ids);
                out += &format!("pages allocated {}\n", usage.shm_tot);
                out += &format!("pages resident  {}\n", usage.shm_rss);
                out += &format!("pages swapped   {}\n", usage.shm_swp);
                out.push_str("Swap performance: 0 attempts\t 0 successes\n");
                return Ok(out);
            }
            Format::Creator => {
                out.push_str("------ Shared Memory Segment Creators/Owners --------\n");
                out += &columns(&["shmid", "perms", "cuid", "cgid", "uid", "gid"]);
            }
            Format::Time => {
                out.push_str("------ Shared Memory Attach/Detach/Change Times --------\n");
                out += &format!(
                    "{:<10} {:<10} {:<20} {:<20} {:<20}\n",
                    "shmid", "owner", "attached", "detached", "changed"
                );
            }
            Format::Pid => {
                out.push_str("------ Shared Memory Creator/Last-op PIDs --------\n");
                out += &columns(&["shmid", "owner", "cpid", "lpid"]);
            }
            Format::Normal => {
                out.push_str("------ Shared Memory Segments --------\n");
                let size = if unit == Unit::Human { "size" } else { "bytes" };
                out += &format!(
                    "{:<10} {:<10} {:<10} {:<10} {:<10} {:<10} {:<12}\n",
                    "key", "shmid", "owner", "perms", size, "nattch", "status"
                );
            }
        }
        for (id, ds) in self.segments()? {
            let owner = self.owner(ds.perm.uid);
            match format {
                Format::Creator => out += &self.perms_row(id, &ds.perm),
                Format::Time => {
                    out += &format!(
                        "{id:<10} {owner} {:<20.16} {:<20.16} {:<20.16}\n",
                        short_time(ds.atime),
                        short_time(ds.dtime),
                        short_time(ds.ctime)
                    )
                }
                Format::Pid => {
                    out += &format!("{id:<10} {owner} {:<10} {:<10}\n", ds.cpid, ds.lpid)
                }
                _ => {
                    out += &key_columns(id, &owner, &ds.perm);
                    out += &match unit {
                        Unit::Human => format!("{:>6}    ", human_size(ds.segsz)),
                        _ => format!("{:<10}", ds.segsz),
                    };
                    let flag = |bit: u32, word: &'static str| {
                        if ds.perm.mode & bit != 0 {
                            word
                        } else {
                            " "
                        }
                    };
                    out += &format!(
                        " {:<10} {:<6} {:<6}\n",
                        ds.nattch,
                        flag(SHM_DEST, "dest"),
                        flag(SHM_LOCKED, "locked")
                    );
                }
            }
        }
        Ok(out)
    }

    fn sem_text(&mut self, format: Format) -> Result<String, Failure> {
        let mut out = String::new();
        match format {
            Format::Limits => return Ok(sem_limits(self.ipc.namespace().limits())),
            Format::Summary => {
                let (_, info) = self.ipc.semctl_info(true);
                out.push_str("------ Semaphore Status --------\n");
                out += &format!("used arrays = {}\n", info.semusz);
                out += &format!("allocated semaphores = {}\n", info.semaem);
                return Ok(out);
            }
            // util-linux shows no pids for semaphore sets: the set has none.
            Format::Pid => return Ok(out),
            Format::Creator => {
                out.push_str("------ Semaphore Arrays Creators/Owners --------\n");
                out += &columns(&["semid", "perms", "cuid", "cgid", "uid", "gid"]);
            }
            Format::Time => {
                out.push_str("------ Semaphore Operation/Change Times --------\n");
                out += &format!(
                    "{:<8} {:<10} {:<26} {:<26}\n",
                    "semid", "owner", "last-op", "last-changed"
                );
            }
            Format::Normal => {
                out.push_str("------ Semaphore Arrays --------\n");
                out += &columns(&["key", "semid", "owner", "perms", "nsems"]);
            }
        }
        for (id, ds) in self.sets()? {
            let owner = self.owner(ds.perm.uid);
            match format {
                Format::Creator => out += &self.perms_row(id, &ds.perm),
                Format::Time => {
                    out += &format!(
                        "{id:<8} {owner}  {:<26.24} {:<26.24}\n",
                        long_time(ds.otime),
                        long_time(ds.ctime)
                    )
                }
                _ => {
                    out += &key_columns(id, &owner, &ds.perm);
                    out += &format!("{:<10}\n", ds.nsems);
                }
            }
        }
        Ok(out)
    }

    /// `-i ID` as text.
    fn one_text(&mut self, kinds: Kinds, id: i32) -> Result<String, Failure> {
        let unit = self.unit;
        let mut out = String::new();
        if kinds.msg {
            let ds = find(self.queues()?, id)?;
            let p = &ds.perm;
            out += &format!("\nMessage Queue msqid={id}\n");
            out += &format!(
                "uid={}\tgid={}\tcuid={}\tcgid={}\tmode={}\n",
                p.uid,
                p.gid,
                p.cuid,
                p.cgid,
                alt_octal(p.mode)
            );
            let human = unit == Unit::Human;
            out += &labelled_size(
                unit,
                if human { "csize=" } else { "cbytes=" },
                ds.cbytes,
                "\t",
            );
            out += &labelled_size(
                unit,
                if human { "qsize=" } else { "qbytes=" },
                ds.qbytes,
                "\t",
            );
            out += &format!("qnum={}\tlspid={}\tlrpid={}\n", ds.qnum, ds.lspid, ds.lrpid);
            out += &format!("send_time={:<26.24}\n", long_time(ds.stime));
            out += &format!("rcv_time={:<26.24}\n", long_time(ds.rtime));
            out += &format!("change_time={:<26.24}\n", long_time(ds.ctime));
        } else if kinds.shm {
            let ds = find(self.segments()?, id)?;
            let p = &ds.perm;
            out += &format!("\nShared memory Segment shmid={id}\n");
            out += &format!(
                "uid={}\tgid={}\tcuid={}\tcgid={}\n",
                p.uid, p.gid, p.cuid, p.cgid
            );
            out += &format!(
                "mode={}\taccess_perms={}\n",
                alt_octal(p.mode),
                alt_octal(p.mode & 0o777)
            );
            let label = if unit == Unit::Human {
                "size="
            } else {
                "bytes="
            };
            out += &labelled_size(unit, label, ds.segsz, "\t");
            out += &format!("lpid={}\tcpid={}\tnattch={}\n", ds.lpid, ds.cpid, ds.nattch);
            out += &format!("att_time={:<26.24}\n", long_time(ds.atime));
            out += &format!("det_time={:<26.24}\n", long_time(ds.dtime));
            out += &format!("change_time={:<26.24}\n", ctime(ds.ctime));
        } else {
            let ds = find(self.sets()?, id)?;
            let sems = self.sem_states(id, ds.nsems)?;
            let p = &ds.perm;
            out += &format!("\nSemaphore Array semid={id}\n");
            out += &format!(
                "uid={}\t gid={}\t cuid={}\t cgid={}\n",
                p.uid, p.gid, p.cuid, p.cgid
            );
            out += &format!(
                "mode={}, access_perms={}\n",
                alt_octal(p.mode),
                alt_octal(p.mode & 0o777)
            );
            out += &format!("nsems = {}\n", ds.nsems);
            out += &format!("otime = {:<26.24}\n", long_time(ds.otime));
            out += &format!("ctime = {:<26.24}\n", ctime(ds.ctime));
            out += &columns(&["semnum", "value", "ncount", "zcount", "pid"]);
            for (num, sem) in sems.iter().enumerate() {
                out += &format!(
                    "{num:<10} {:<10} {:<10} {:<10} {:<10}\n",
                    sem.value, sem.ncount, sem.zcount, sem.pid
                );
            }
        }
        out.push('\n');
        Ok(out)
    }

    /// `-i ID --json`.
    fn one_json(&mut self, path: &Path, kinds: Kinds, id: i32) -> Result<String, Failure> {
        let (name, object) = if kinds.msg {
            ("queues", queue_json(id, &find(self.queues()?, id)?))
        } else if kinds.shm {
            ("segments", segment_json(id, &find(self.segments()?, id)?))
        } else {
            let ds = find(self.sets()?, id)?;
            let sems: Vec<String> = self
                .sem_states(id, ds.nsems)?
                .iter()
                .enumerate()
                .map(|(num, sem)| {
                    Object::default()
                        .number("semnum", num)
                        .number("semval", sem.value)
                        .number("semncnt", sem.ncount)
                        .number("semzcnt", sem.zcount)
                        .number("sempid", sem.pid)
                        .finish()
                })
                .collect();
            (
                "semaphores",
                set_json(id, &ds, Some(&json::array(&sems, 4))),
            )
        };
        Ok(document(path, &[(name, json::array(&[object], 2))]))
    }

    /// The listing, or `-l` or `-u`, as JSON.
    fn all_json(&mut self, path: &Path, kinds: Kinds, format: Format) -> Result<String, Failure> {
        match format {
            Format::Limits => {
                let l = self.ipc.namespace().limits();
                let mut limits = Object::default();
                if kinds.msg {
                    limits = limits
                        .number("msgmni", l.msgmni)
                        .number("msgmax", l.msgmax)
                        .number("msgmnb", l.msgmnb);
                }
                if kinds.shm {
                    limits = limits
                        .number("shmmni", l.shmmni)
                        .number("shmmax", l.shmmax)
                        .number("shmall", l.shmall)
                        .number("shmmin", 1);
                }
                if kinds.sem {
                    limits = limits
                        .number("semmni", l.semmni)
                        .number("semmsl", l.semmsl)
                        .number("semmns", l.semmns)
                        .number("semopm", l.semopm)
                        .number("semvmx", l.semvmx);
                }
                Ok(document(path, &[("limits", limits.finish())]))
            }
            Format::Summary => {
                let mut summary = Object::default();
                if kinds.msg {
                    let (_, info) = self.ipc.msgctl_info(true);
                    summary = summary
                        .number("queues", info.msgpool)
                        .number("messages", info.msgmap)
                        .number("message_bytes", info.msgtql);
                }
                if kinds.shm {
                    let (_, usage) = self.ipc.shmctl_usage();
                    summary = summary
                        .number("segments", usage.used_ids)
                        .number("shm_pages", usage.shm_tot)
                        .number("shm_pages_resident", usage.shm_rss)
                        .number("shm_pages_swapped", usage.shm_swp);
                }
                if kinds.sem {
                    let (_, info) = self.ipc.semctl_info(true);
                    summary = summary
                        .number("semaphore_sets", info.semusz)
                        .number("semaphores", info.semaem);
                }
                Ok(document(path, &[("summary", summary.finish())]))
            }
            _ => {
                let mut fields = Vec::new();
                if kinds.msg {
                    let items: Vec<String> = self
                        .queues()?
                        .iter()
                        .map(|(id, ds)| queue_json(*id, ds))
                        .collect();
                    fields.push(("queues", json::array(&items, 2)));
                }
                if kinds.shm {
                    let items: Vec<String> = self
                        .segments()?
                        .iter()
                        .map(|(id, ds)| segment_json(*id, ds))
                        .collect();
                    fields.push(("segments", json::array(&items, 2)));
                }
                if kinds.sem {
                    let items: Vec<String> = self
                        .sets()?
                        .iter()
                        .map(|(id, ds)| set_json(*id, ds, None))
                        .collect();
                    fields.push(("semaphores", json::array(&items, 2)));
                }
                Ok(document(path, &fields))
            }
        }
    }
}

/// The object with id `id`, or util-linux's message.
fn find<T>(objects: Vec<(i32, T)>, id: i32) -> Result<T, Failure> {
    objects
        .into_iter()
        .find(|(found, _)| *found == id)
        .map(|(_, ds)| ds)
        .ok_or_else(|| Failure::failed(format!("id {id} not found")))
}

/// The JSON document: the arena's path, then `fields`, one per line.
fn document(path: &Path, fields: &[(&str, String)]) -> String {
    let mut out = format!("{{\n  \"arena\": {}", json::string(&path.to_string_lossy()));
    for (name, value) in fields {
        out += &format!(",\n  {}: {value}", json::string(name));
    }
    out.push_str("\n}\n");
    out
}

fn perm_json(object: Object, perm: &IpcPerm) -> Object {
    object
        .number("key", perm.key)
        .number("uid", perm.uid)
        .number("gid", perm.gid)
        .number("cuid", perm.cuid)
        .number("cgid", perm.cgid)
        .number("mode", perm.mode)
        .number("seq", perm.seq)
}

fn queue_json(id: i32, ds: &MsqidDs) -> String {
    perm_json(Object::default().number("msqid", id), &ds.perm)
        .number("cbytes", ds.cbytes)
        .number("qnum", ds.qnum)
        .number("qbytes", ds.qbytes)
        .number("lspid", ds.lspid)
        .number("lrpid", ds.lrpid)
        .number("stime", ds.stime)
        .number("rtime", ds.rtime)
        .number("ctime", ds.ctime)
        .finish()
}

fn segment_json(id: i32, ds: &ShmidDs) -> String {
    perm_json(Object::default().number("shmid", id), &ds.perm)
        .number("segsz", ds.segsz)
        .number("nattch", ds.nattch)
        .number("cpid", ds.cpid)
        .number("lpid", ds.lpid)
        .number("atime", ds.atime)
        .number("dtime", ds.dtime)
        .number("ctime", ds.ctime)
        .finish()
}

fn set_json(id: i32, ds: &SemidDs, sems: Option<&str>) -> String {
    let object = perm_json(Object::default().number("semid", id), &ds.perm)
        .number("nsems", ds.nsems)
        .number("otime", ds.otime)
        .number("ctime", ds.ctime);
    match sems {
        Some(sems) => object.raw("sems", sems).finish(),
        None => object.finish(),
    }
}

/// Headings, each `%-10s`, the last followed by a newline.
fn columns(names: &[&str]) -> String {
    let padded: Vec<String> = names.iter().map(|name| format!("{name:<10}")).collect();
    padded.join(" ") + "\n"
}

/// The first four columns of the default listing, each kind's: key, id,
/// owner (already padded) and permissions, and the space after them.
fn key_columns(id: i32, owner: &str, perm: &IpcPerm) -> String {
    format!(
        "0x{:08x} {id:<10} {owner} {:<10o} ",
        perm.key as u32,
        perm.mode & 0o777
    )
}

/// `ctime` from the month on (util-linux prints the first 16 characters
/// of it), or `Not set` for 0.
fn short_time(seconds: i64) -> String {
    match seconds {
        0 => "Not set".into(),
        _ => ctime(seconds)[4..].to_string(),
    }
}

/// `ctime`, or `Not set` for 0.
fn long_time(seconds: i64) -> String {
    match seconds {
        0 => "Not set".into(),
        _ => ctime(seconds),
    }
}

/// C's `%#o`: octal with a leading 0, and `0` for zero.
fn alt_octal(value: u32) -> String {
    match value {
        0 => "0".into(),
        _ => format!("0{value:o}"),
    }
}

/// A size with its label, as util-linux's `ipc_print_size` writes one:
/// `label (bytes) = N`, `label (kbytes) = N`, `label = 16K`; a label ending
/// in `=` is written as it is.
pub fn labelled_size(unit: Unit, label: &str, size: u64, end: &str) -> String {
    let label = if label.ends_with('=') {
        label.to_string()
    } else {
        match unit {
            Unit::Bytes => format!("{label} (bytes) = "),
            Unit::Kilobytes => format!("{label} (kbytes) = "),
            Unit::Default | Unit::Human => format!("{label} = "),
        }
    };
    let value = match unit {
        Unit::Default | Unit::Bytes => size.to_string(),
        Unit::Kilobytes => (size / 1024).to_string(),
        Unit::Human => human_size(size),
    };
    format!("{label}{value}{end}")
}

/// A size as util-linux writes it for humans (`size_to_human_string` with
/// one-letter suffixes): the largest binary unit not above it, one decimal
/// rounded half up and dropped when zero: `0B`, `1.5K`, `16M`, `16E`.
pub fn human_size(bytes: u64) -> String {
    let exp = (10..=60)
        .step_by(10)
        .find(|&shift| bytes < 1u64 << shift)
        .map_or(60, |shift| shift - 10);
    let letter = ["B", "K", "M", "G", "T", "P", "E"][exp / 10];
    let mut whole = bytes >> exp;
    let rest = bytes & ((1u64 << exp) - 1);
    // Thousandths, then tenths rounded half up (as util-linux: in steps of 10).
    let mut tenths = if rest == 0 {
        0
    } else {
        let thousandths = if rest >= u64::MAX / 1000 {
            (rest / 1024 * 1000) >> (exp - 10)
        } else {
            (rest * 1000) >> exp
        };
        (thousandths + 50) / 100
    };
    if tenths == 10 {
        whole += 1;
        tenths = 0;
    }
    match tenths {
        0 => format!("{whole}{letter}"),
        tenths => format!("{whole}.{tenths}{letter}"),
    }
}

/// `ipcs -l` for message queues.
pub fn msg_limits(l: &Limits, unit: Unit) -> String {
    let unit = if unit == Unit::Default {
        Unit::Bytes
    } else {
        unit
    };
    let mut out = String::from("------ Messages Limits --------\n");
    out += &format!("max queues system wide = {}\n", l.msgmni);
    out += &labelled_size(unit, "max size of message", l.msgmax.into(), "\n");
    out += &labelled_size(unit, "default max size of queue", l.msgmnb.into(), "\n");
    out
}

/// `ipcs -l` for shared memory: sizes in kilobytes unless asked otherwise,
/// the total (SHMALL pages) pinned below 2^64 as util-linux pins it.
pub fn shm_limits(l: &Limits, unit: Unit) -> String {
    let mut out = String::from("------ Shared Memory Limits --------\n");
    out += &format!("max number of segments = {}\n", l.shmmni);
    let seg_unit = if unit == Unit::Default {
        Unit::Kilobytes
    } else {
        unit
    };
    out += &labelled_size(seg_unit, "max seg size", l.shmmax, "\n");
    if matches!(unit, Unit::Default | Unit::Kilobytes) {
        let per_page = PAGE_SIZE / 1024;
        let total = l
            .shmall
            .checked_mul(per_page)
            .unwrap_or(u64::MAX - u64::MAX % per_page);
        out += &format!("max total shared memory (kbytes) = {total}\n");
    } else {
        let total = l
            .shmall
            .checked_mul(PAGE_SIZE)
            .unwrap_or(u64::MAX - u64::MAX % PAGE_SIZE);
        out += &labelled_size(unit, "max total shared memory", total, "\n");
    }
    let min_unit = if unit == Unit::Default {
        Unit::Bytes
    } else {
        unit
    };
    out += &labelled_size(min_unit, "min seg size", 1, "\n");
    out
}

/// `ipcs -l` for semaphores.
pub fn sem_limits(l: &Limits) -> String {
    let mut out = String::from("------ Semaphore Limits --------\n");
    out += &format!("max number of arrays = {}\n", l.semmni);
    out += &format!("max semaphores per array = {}\n", l.semmsl);
    out += &format!("max semaphores system wide = {}\n", l.semmns);
    out += &format!("max ops per semop call = {}\n", l.semopm);
    out += &format!("semaphore max value = {}\n", l.semvmx);
    out
}

/// `ipcs -l` for all three kinds, each section followed by a blank line.
pub fn limits_text(l: &Limits, unit: Unit) -> String {
    format!(
        "{}\n{}\n{}\n",
        msg_limits(l, unit),
        shm_limits(l, unit),
        sem_limits(l)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use usysv_platform::usysv_core::DEFAULT_LIMITS;

    #[test]
    fn human_sizes_as_util_linux_writes_them() {
        let cases = [
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1K"),
            (1536, "1.5K"),
            (1100, "1.1K"),
            (2047, "2K"),
            (16384, "16K"),
            (1 << 20, "1M"),
            (5 << 30, "5G"),
            (u64::MAX - (1 << 24), "16E"),
        ];
        for (bytes, text) in cases {
            assert_eq!(human_size(bytes), text, "{bytes} bytes");
        }
    }

    #[test]
    fn sizes_with_labels() {
        assert_eq!(
            labelled_size(Unit::Bytes, "x", 2048, "\n"),
            "x (bytes) = 2048\n"
        );
        assert_eq!(
            labelled_size(Unit::Kilobytes, "x", 2048, "\n"),
            "x (kbytes) = 2\n"
        );
        assert_eq!(labelled_size(Unit::Human, "x", 2048, "\n"), "x = 2K\n");
        assert_eq!(labelled_size(Unit::Default, "bytes=", 5, "\t"), "bytes=5\t");
        assert_eq!(labelled_size(Unit::Human, "size=", 5, "\t"), "size=5B\t");
    }

    #[test]
    fn the_kernels_default_limits_read_as_the_kernels_ipcs_l() {
        let text = shm_limits(&DEFAULT_LIMITS, Unit::Default);
        assert!(
            text.contains("max seg size (kbytes) = 18014398509465599\n"),
            "{text}"
        );
        assert!(
            text.contains("max total shared memory (kbytes) = 18446744073709551612\n"),
            "{text}"
        );
        let bytes = shm_limits(&DEFAULT_LIMITS, Unit::Bytes);
        assert!(
            bytes.contains("max total shared memory (bytes) = 18446744073709547520\n"),
            "{bytes}"
        );
        assert!(shm_limits(&DEFAULT_LIMITS, Unit::Human).contains("max seg size = 16E\n"));
        assert!(msg_limits(&DEFAULT_LIMITS, Unit::Default)
            .contains("max size of message (bytes) = 8192\n"));
    }

    #[test]
    fn octal_as_c_alternate_form() {
        assert_eq!(alt_octal(0), "0");
        assert_eq!(alt_octal(0o640), "0640");
        assert_eq!(alt_octal(0o1600), "01600");
    }

    #[test]
    fn times_not_set_and_cut_as_util_linux_cuts_them() {
        assert_eq!(short_time(0), "Not set");
        assert_eq!(long_time(0), "Not set");
        let short = format!("{:<20.16}", short_time(1_795_219_200));
        assert_eq!(short.len(), 20);
        assert_eq!(&short[15..], "     ", "{short:?}");
    }
}
