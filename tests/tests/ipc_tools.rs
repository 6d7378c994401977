//! `usysv ipcs`, `usysv ipcrm` and `usysv ipcmk`, driven as an administrator
//! drives them: objects made with `ipcmk` and with the Rust API, listed as
//! text and as JSON (parsed back), removed by id and by key; every error a
//! single line and a non-zero exit; and `usysv ipcs` compared column for
//! column with util-linux's `ipcs` over the same objects made in the kernel.
//!
//! Each test has its own arena, named with `--arena` (or `USYSV_ARENA`).
//! Kernel objects are made under keys no other object holds, compared only
//! with each other (the kernel's namespace holds whatever else the machine
//! runs), and removed when the test ends, whether or not it passed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use usysv_platform::usysv_core::sem::SemBuf;
use usysv_platform::usysv_core::{Errno, Limits, DEFAULT_LIMITS};
use usysv_platform::{ArenaFile, Ipc};
use usysv_tests::kernel::{checked, msgsnd, read_limit, unused_key};
use usysv_tests::{assert_same, euid_egid, my_pid, usysv_command, TempDir, Watchdog, SMALL_LIMITS};

const LIMIT: Duration = Duration::from_secs(60);

/// Tests that keep a segment attached hold this for writing, the others for
/// reading: a process forked meanwhile by another test would count as
/// attached until it execs, and be the segment's last pid, in the kernel as
/// in usysv.
static ATTACHED: RwLock<()> = RwLock::new(());

fn alone() -> RwLockWriteGuard<'static, ()> {
    ATTACHED.write().unwrap_or_else(PoisonError::into_inner)
}

fn not_alone() -> RwLockReadGuard<'static, ()> {
    ATTACHED.read().unwrap_or_else(PoisonError::into_inner)
}

/// What a run of a command did.
#[derive(Debug)]
struct Ran {
    code: i32,
    out: String,
    err: String,
}

/// `usysv WORD [--arena ARENA] ARGS...`, with `USYSV_ARENA` unset.
fn usysv_cmd(arena: Option<&Path>, args: &[&str]) -> Command {
    let mut command = Command::new(usysv_command());
    command.env_remove("USYSV_ARENA").arg(args[0]);
    if let Some(arena) = arena {
        command.arg("--arena").arg(arena);
    }
    command.args(&args[1..]);
    command
}

fn run(mut command: Command) -> Ran {
    let output = command.output().unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8(output.stdout).unwrap(),
        err: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `args` on `arena`; it must succeed silently on standard error.
fn succeeds(arena: &Path, args: &[&str]) -> String {
    let ran = run(usysv_cmd(Some(arena), args));
    assert!(ran.code == 0 && ran.err.is_empty(), "{args:?}: {ran:?}");
    ran.out
}

/// Runs `args` on `arena`; it must exit with `code`, printing nothing and
/// one line on standard error, which is returned.
fn fails(arena: &Path, args: &[&str], code: i32) -> String {
    let ran = run(usysv_cmd(Some(arena), args));
    assert_eq!(ran.code, code, "{args:?}: {ran:?}");
    assert!(ran.out.is_empty(), "{args:?}: {ran:?}");
    assert_eq!(ran.err.lines().count(), 1, "{args:?}: {ran:?}");
    ran.err.trim_end().to_string()
}

/// The number after `prefix` on `line`.
fn id_after(line: &str, prefix: &str) -> i32 {
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"))
        .parse()
        .unwrap()
}

/// An arena with small limits, for one test.
fn small_arena(dir: &TempDir, mode: u32) -> std::path::PathBuf {
    let path = dir.join("arena");
    drop(ArenaFile::create(&path, &SMALL_LIMITS, mode).unwrap());
    path
}

/// How `ipcs` names this process's user: its name (cut to 10 characters),
/// or its number.
fn my_owner() -> String {
    let id = Command::new("id").arg("-un").output().unwrap();
    let name = String::from_utf8(id.stdout).unwrap().trim().to_string();
    if id.status.success() && !name.is_empty() {
        name.chars().take(10).collect()
    } else {
        euid_egid().0.to_string()
    }
}

/// The rows of each section of an `ipcs` listing (title → rows split into
/// words), the column headings left out.
fn listing(text: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut sections = BTreeMap::new();
    let mut title = String::new();
    for line in text.lines() {
        if line.starts_with("------") {
            title = line.to_string();
            sections.insert(title.clone(), Vec::new());
        } else if line.starts_with("0x") {
            let words = line.split_whitespace().map(str::to_string).collect();
            sections.get_mut(&title).unwrap().push(words);
        }
    }
    sections
}

/// The row of `id` (second column) in the section `title`.
fn row(sections: &BTreeMap<String, Vec<Vec<String>>>, title: &str, id: i32) -> Vec<String> {
    sections[title]
        .iter()
        .find(|words| words[1] == id.to_string())
        .unwrap_or_else(|| panic!("no row for {id} under {title}: {sections:?}"))
        .clone()
}

/// A JSON value, as much of JSON as `ipcs --json` writes.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Int(i128),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let mut parser = JsonParser {
            bytes: text.as_bytes(),
            at: 0,
        };
        let value = parser.value();
        parser.space();
        assert_eq!(parser.at, text.len(), "text after the JSON value: {text}");
        value
    }

    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Object(fields) => fields
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value)
                .unwrap_or_else(|| panic!("no field {key:?} in {self:?}")),
            other => panic!("{other:?} is not an object"),
        }
    }

    fn has(&self, key: &str) -> bool {
        matches!(self, Json::Object(fields) if fields.iter().any(|(name, _)| name == key))
    }

    fn int(&self, key: &str) -> i128 {
        match self.get(key) {
            Json::Int(n) => *n,
            other => panic!("{key}: {other:?} is not a number"),
        }
    }

    fn items(&self, key: &str) -> &[Json] {
        match self.get(key) {
            Json::Array(items) => items,
            other => panic!("{key}: {other:?} is not an array"),
        }
    }

    /// The item of `items(list)` whose `id_field` is `id`.
    fn find(&self, list: &str, id_field: &str, id: i32) -> &Json {
        self.items(list)
            .iter()
            .find(|item| item.int(id_field) == i128::from(id))
            .unwrap_or_else(|| panic!("no {id_field} {id} in {list}"))
    }
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) {
        self.space();
        assert_eq!(self.bytes.get(self.at), Some(&byte), "at byte {}", self.at);
        self.at += 1;
    }

    /// Whether the next byte is `byte` (consumed if so).
    fn next_is(&mut self, byte: u8) -> bool {
        self.space();
        let is = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(is);
        is
    }

    fn value(&mut self) -> Json {
        self.space();
        match self.bytes[self.at] {
            b'{' => {
                self.at += 1;
                let mut fields = Vec::new();
                if !self.next_is(b'}') {
                    loop {
                        self.space();
                        let Json::Str(name) = self.value() else {
                            panic!("a field name that is not a string at {}", self.at)
                        };
                        self.expect(b':');
                        fields.push((name, self.value()));
                        if self.next_is(b'}') {
                            break;
                        }
                        self.expect(b',');
                    }
                }
                Json::Object(fields)
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if !self.next_is(b']') {
                    loop {
                        items.push(self.value());
                        if self.next_is(b']') {
                            break;
                        }
                        self.expect(b',');
                    }
                }
                Json::Array(items)
            }
            b'"' => {
                self.at += 1;
                let mut text = String::new();
                loop {
                    let c = self.bytes[self.at];
                    self.at += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            let escaped = self.bytes[self.at];
                            self.at += 1;
                            text.push(match escaped {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'u' => {
                                    let hex =
                                        std::str::from_utf8(&self.bytes[self.at..self.at + 4])
                                            .unwrap();
                                    self.at += 4;
                                    char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap()
                                }
                                other => char::from(other),
                            });
                        }
                        c => text.push(char::from(c)),
                    }
                }
                Json::Str(text)
            }
            _ => {
                let start = self.at;
                self.at += usize::from(self.bytes[self.at] == b'-');
                while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                let number = std::str::from_utf8(&self.bytes[start..self.at]).unwrap();
                Json::Int(
                    number
                        .parse()
                        .unwrap_or_else(|_| panic!("bad number {number:?}")),
                )
            }
        }
    }
}

#[test]
fn objects_made_by_ipcmk_and_the_api_are_listed_and_removed_by_id_and_key() {
    let _watchdog = Watchdog::new("list and remove", LIMIT);
    let _alone = alone();
    let dir = TempDir::new("ipc-tools-list");
    let arena = dir.join("arena");

    // ipcmk makes the arena, like any program's first System V call.
    let made = succeeds(
        &arena,
        &["ipcmk", "-M", "1.5K", "-Q", "-S", "3", "-p", "640"],
    );
    let lines: Vec<&str> = made.lines().collect();
    assert_eq!(lines.len(), 3, "{made}");
    let shm = id_after(lines[0], "Shared memory id: ");
    let msg = id_after(lines[1], "Message queue id: ");
    let sem = id_after(lines[2], "Semaphore id: ");

    let ipc = Ipc::with_file(ArenaFile::open(&arena).unwrap()).unwrap();
    let (sem_key, msg_key, shm_key) = (0x5eed_0001, 0x5eed_0002, 0x5eed_0003);
    let api_sem = ipc.semget(sem_key, 2, IPC_CREAT | 0o600).unwrap();
    ipc.semctl_setall(api_sem, &[4, 7]).unwrap();
    let up = SemBuf {
        sem_num: 0,
        sem_op: 1,
        sem_flg: 0,
    };
    ipc.semop(api_sem, &[up]).unwrap();
    let api_msg = ipc.msgget(msg_key, IPC_CREAT | 0o644).unwrap();
    ipc.msgsnd(api_msg, 1, b"hello", 0).unwrap();
    let api_shm = ipc.shmget(shm_key, 8192, IPC_CREAT | 0o600).unwrap();
    let attachment = ipc.shmat(api_shm, 0, 0).unwrap();

    // The listing, as text.
    let owner = my_owner();
    let sections = listing(&succeeds(&arena, &["ipcs"]));
    let queues = "------ Message Queues --------";
    let segments = "------ Shared Memory Segments --------";
    let sets = "------ Semaphore Arrays --------";
    assert_eq!(sections.len(), 3, "{sections:?}");
    let key = |key: i32| format!("0x{:08x}", key as u32);
    let expect = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let (m, am) = (msg.to_string(), api_msg.to_string());
    assert_eq!(
        row(&sections, queues, msg)[1..],
        expect(&[&m, &owner, "640", "0", "0"])
    );
    assert_eq!(
        row(&sections, queues, api_msg),
        expect(&[&key(msg_key), &am, &owner, "644", "5", "1"])
    );
    let (s, a) = (shm.to_string(), api_shm.to_string());
    assert_eq!(
        row(&sections, segments, shm)[1..],
        expect(&[&s, &owner, "640", "1536", "0"])
    );
    assert_eq!(
        row(&sections, segments, api_shm),
        expect(&[&key(shm_key), &a, &owner, "600", "8192", "1"])
    );
    let (s, a) = (sem.to_string(), api_sem.to_string());
    assert_eq!(
        row(&sections, sets, sem)[1..],
        expect(&[&s, &owner, "640", "3"])
    );
    assert_eq!(
        row(&sections, sets, api_sem),
        expect(&[&key(sem_key), &a, &owner, "600", "2"])
    );
    assert_eq!(
        sections[queues].len() + sections[segments].len() + sections[sets].len(),
        6
    );

    // The listing, as JSON.
    let (uid, gid) = euid_egid();
    let json = Json::parse(&succeeds(&arena, &["ipcs", "--json"]));
    assert_eq!(
        json.get("arena"),
        &Json::Str(arena.to_str().unwrap().to_string())
    );
    let me = i128::from(my_pid());
    let queue = json.find("queues", "msqid", api_msg);
    assert_eq!(queue.int("key"), i128::from(msg_key));
    assert_eq!(
        (queue.int("uid"), queue.int("gid")),
        (uid.into(), gid.into())
    );
    assert_eq!(
        (queue.int("cuid"), queue.int("cgid")),
        (uid.into(), gid.into())
    );
    assert_eq!(queue.int("mode") & 0o777, 0o644);
    assert_eq!((queue.int("cbytes"), queue.int("qnum")), (5, 1));
    assert_eq!(queue.int("qbytes"), i128::from(DEFAULT_LIMITS.msgmnb));
    assert_eq!((queue.int("lspid"), queue.int("lrpid")), (me, 0));
    assert!(queue.int("stime") > 0 && queue.int("rtime") == 0 && queue.int("ctime") > 0);
    let queue = json.find("queues", "msqid", msg);
    assert_eq!((queue.int("mode") & 0o777, queue.int("qnum")), (0o640, 0));
    let segment = json.find("segments", "shmid", api_shm);
    assert_eq!(segment.int("key"), i128::from(shm_key));
    assert_eq!((segment.int("segsz"), segment.int("nattch")), (8192, 1));
    assert_eq!((segment.int("cpid"), segment.int("lpid")), (me, me));
    assert!(segment.int("atime") > 0 && segment.int("dtime") == 0);
    let segment = json.find("segments", "shmid", shm);
    assert_eq!(segment.int("segsz"), 1536);
    assert_ne!(segment.int("cpid"), me, "ipcmk made it");
    let set = json.find("semaphores", "semid", api_sem);
    assert_eq!((set.int("key"), set.int("nsems")), (i128::from(sem_key), 2));
    assert!(set.int("otime") > 0);
    assert!(!set.has("sems"), "values only with -i");
    let set = json.find("semaphores", "semid", sem);
    assert_eq!((set.int("nsems"), set.int("mode") & 0o777), (3, 0o640));

    // One set, with its semaphores' values, as JSON and as text.
    let one = Json::parse(&succeeds(
        &arena,
        &["ipcs", "-s", "-i", &api_sem.to_string(), "--json"],
    ));
    let found = one.items("semaphores");
    assert_eq!(found.len(), 1);
    let values: Vec<(i128, i128, i128)> = found[0]
        .items("sems")
        .iter()
        .map(|s| (s.int("semnum"), s.int("semval"), s.int("sempid")))
        .collect();
    assert_eq!(values[0], (0, 5, me));
    assert_eq!((values[1].0, values[1].1), (1, 7), "{values:?}");
    let text = succeeds(&arena, &["ipcs", "-s", "-i", &api_sem.to_string()]);
    assert!(
        text.contains(&format!("\nSemaphore Array semid={api_sem}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\n0          5          0          0          {me:<10}\n"
        )),
        "{text}"
    );
    assert!(text.contains("\nnsems = 2\n"), "{text}");

    // Removed by id, then by key.
    let by_id = [
        "ipcrm",
        "-m",
        &shm.to_string(),
        "-q",
        &msg.to_string(),
        "-s",
        &sem.to_string(),
    ];
    assert_eq!(succeeds(&arena, &by_id), "");
    let (sem_key_hex, msg_key_dec) = (key(sem_key), msg_key.to_string());
    let by_key = [
        "ipcrm",
        "-S",
        &sem_key_hex,
        "-Q",
        &msg_key_dec,
        "-M",
        "0x5eed0003",
    ];
    assert_eq!(succeeds(&arena, &by_key), "");
    assert_eq!(ipc.semctl_stat(api_sem), Err(Errno::EINVAL));
    assert_eq!(ipc.msgctl_stat(api_msg), Err(Errno::EINVAL));
    // A segment still attached goes at its last detach, as in the kernel:
    // until then it is listed as `dest`, its key freed.
    let sections = listing(&succeeds(&arena, &["ipcs", "-m"]));
    let dest = row(&sections, segments, api_shm);
    assert_eq!(
        (dest[0].as_str(), dest.last().unwrap().as_str()),
        ("0x00000000", "dest")
    );
    drop(attachment);
    let empty = Json::parse(&succeeds(&arena, &["ipcs", "--json"]));
    for list in ["queues", "segments", "semaphores"] {
        assert_eq!(empty.items(list), &[], "{list}");
    }
}

#[test]
fn ipcrm_reports_each_failure_and_removes_the_rest() {
    let _watchdog = Watchdog::new("ipcrm failures", LIMIT);
    let _shared = not_alone();
    let dir = TempDir::new("ipc-tools-ipcrm");
    let arena = small_arena(&dir, 0o600);
    let ipc = Ipc::with_file(ArenaFile::open(&arena).unwrap()).unwrap();
    let q1 = ipc.msgget(0x0ddba11, IPC_CREAT | 0o600).unwrap();
    let q2 = ipc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600).unwrap();
    let s1 = ipc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600).unwrap();
    let s2 = ipc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600).unwrap();
    let m1 = ipc.shmget(IPC_PRIVATE, 100, IPC_CREAT | 0o600).unwrap();
    let (q1s, q2s, s1s, s2s, m1s) = (
        q1.to_string(),
        q2.to_string(),
        s1.to_string(),
        s2.to_string(),
        m1.to_string(),
    );

    // Every failure on its own line, the others still removed, exit 1.
    let ran = run(usysv_cmd(
        Some(&arena),
        &[
            "ipcrm",
            "-q",
            "99999",
            "-Q",
            "0x0ddba11",
            "-Q",
            "0x7eadbeef",
            "-S",
            "0",
            "-s",
            &s1s,
        ],
    ));
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.out, "");
    assert_eq!(
        ran.err,
        "usysv: invalid id (99999)\nusysv: invalid key (0x7eadbeef)\nusysv: illegal key (0)\n"
    );
    assert_eq!(ipc.msgctl_stat(q1), Err(Errno::EINVAL));
    assert_eq!(ipc.semctl_stat(s1), Err(Errno::EINVAL));
    assert_eq!(
        fails(&arena, &["ipcrm", "-q", &q1s], 1),
        format!("usysv: invalid id ({q1})")
    );

    // An argument that cannot be read stops everything before any removal.
    assert_eq!(
        fails(&arena, &["ipcrm", "-q", &q2s, "-q", "abc"], 2),
        "usysv: failed to parse argument: 'abc'"
    );
    assert_eq!(
        fails(&arena, &["ipcrm", "-s", &s2s, "-M", "0x1ffffffff"], 2),
        "usysv: failed to parse argument: '0x1ffffffff'"
    );
    assert!(ipc.msgctl_stat(q2).is_ok() && ipc.semctl_stat(s2).is_ok());

    // util-linux's first form, and --all.
    assert_eq!(
        succeeds(&arena, &["ipcrm", "sem", &s2s]),
        "resource(s) deleted\n"
    );
    assert_eq!(succeeds(&arena, &["ipcrm", "--all=msg"]), "");
    assert_eq!(ipc.msgctl_stat(q2), Err(Errno::EINVAL));
    assert!(ipc.shmctl_stat(m1).is_ok(), "--all=msg leaves segments");
    // `-av` would be `--all=v`: -a's value is attached, as in util-linux.
    assert_eq!(
        fails(&arena, &["ipcrm", "-av"], 2),
        "usysv: unknown argument: v"
    );
    let verbose = succeeds(&arena, &["ipcrm", "-v", "-a"]);
    assert_eq!(
        verbose,
        format!("removing shared memory segment id `{m1s}'\n")
    );
    assert_eq!(ipc.shmctl_stat(m1), Err(Errno::EINVAL));
    assert_eq!(
        fails(&arena, &["ipcrm", "--all=queues"], 2),
        "usysv: unknown argument: queues"
    );
}

#[test]
fn errors_are_one_line_and_a_nonzero_exit() {
    let _watchdog = Watchdog::new("errors", LIMIT);
    let _shared = not_alone();
    let dir = TempDir::new("ipc-tools-errors");
    let missing = dir.join("missing");
    let no_arena = format!(
        "usysv: {}: no arena here (`usysv arena create` makes one)",
        missing.display()
    );
    for args in [
        &["ipcs"][..],
        &["ipcs", "-q", "--json"],
        &["ipcs", "-s", "-i", "0"],
        &["ipcrm", "-q", "0"],
        &["ipcrm", "--all"],
    ] {
        assert_eq!(fails(&missing, args, 1), no_arena, "{args:?}");
    }
    assert!(!missing.exists(), "ipcs and ipcrm never make an arena");

    let arena = small_arena(&dir, 0o600);
    let cases: [(&[&str], i32, &str); 17] = [
        (&["ipcs", "-s", "-i", "12345"], 1, "id 12345 not found"),
        (&["ipcs", "-m", "-i", "-1", "--json"], 1, "id -1 not found"),
        (
            &["ipcs", "-i", "0"],
            2,
            "when using an ID, a single resource must be specified",
        ),
        (
            &["ipcs", "-q", "-m", "-i", "0"],
            2,
            "when using an ID, a single resource must be specified",
        ),
        (
            &["ipcs", "-q", "-i", "x"],
            2,
            "failed to parse id argument: 'x'",
        ),
        (&["ipcs", "-z"], 2, "invalid option -- 'z'"),
        (&["ipcs", "--bogus"], 2, "unrecognized option '--bogus'"),
        (&["ipcs", "stray"], 2, "unknown argument: stray"),
        (
            &["ipcmk"],
            2,
            "nothing to create: give -M SIZE, -S NSEMS or -Q (see `usysv ipcmk --help`)",
        ),
        (&["ipcmk", "-M", "abc"], 2, "failed to parse size: 'abc'"),
        (&["ipcmk", "-M", "1.5"], 2, "failed to parse size: '1.5'"),
        (&["ipcmk", "-S", "x"], 2, "failed to parse elements: 'x'"),
        (
            &["ipcmk", "-Q", "-p", "999"],
            2,
            "failed to parse mode: '999'",
        ),
        (
            &["ipcmk", "-S", "0"],
            1,
            "create semaphore failed: Invalid argument",
        ),
        (
            &["ipcmk", "-M", "0"],
            1,
            "create share memory failed: Invalid argument",
        ),
        (
            &["ipcrm"],
            2,
            "nothing to remove (see `usysv ipcrm --help`)",
        ),
        (&["ipcrm", "sem"], 2, "not enough arguments"),
    ];
    for (args, code, message) in cases {
        assert_eq!(
            fails(&arena, args, code),
            format!("usysv: {message}"),
            "{args:?}"
        );
    }
    let too_many = (SMALL_LIMITS.semmsl + 1).to_string();
    assert_eq!(
        fails(&arena, &["ipcmk", "-S", &too_many], 1),
        "usysv: create semaphore failed: Invalid argument"
    );
    assert_eq!(
        fails(&arena, &["ipcrm", "-m", "7", "stray"], 2),
        "usysv: unknown argument: stray"
    );
}

#[test]
fn every_command_has_help_with_examples() {
    let _watchdog = Watchdog::new("help", LIMIT);
    let _shared = not_alone();
    let top = run(usysv_cmd(None, &["--help"]));
    assert_eq!(top.code, 0);
    for command in ["ipcs", "ipcrm", "ipcmk"] {
        assert!(
            top.out.contains(&format!("\n  {command} ")),
            "{command} not in:\n{}",
            top.out
        );
    }
    let flags: [(&str, &[&str]); 3] = [
        (
            "ipcs",
            &[
                "-q,", "-m,", "-s,", "-a,", "-t,", "-p,", "-c,", "-l,", "-u,", "-b,", "-i,",
                "--human", "--json", "--arena",
            ],
        ),
        (
            "ipcrm",
            &[
                "-m,",
                "-M,",
                "-q,",
                "-Q,",
                "-s,",
                "-S,",
                "--all[=shm|msg|sem]",
                "--arena",
            ],
        ),
        ("ipcmk", &["-M,", "-S,", "-Q,", "-p,", "--arena"]),
    ];
    for (command, options) in flags {
        for help in ["--help", "-h"] {
            let ran = run(usysv_cmd(None, &[command, help]));
            assert!(
                ran.code == 0 && ran.err.is_empty(),
                "{command} {help}: {ran:?}"
            );
            assert!(
                ran.out.starts_with(&format!("usage: usysv {command} ")),
                "{}",
                ran.out
            );
            assert!(ran.out.contains("\nExamples:\n"), "{}", ran.out);
            for option in options {
                assert!(ran.out.contains(option), "{command} {help} lacks {option}");
            }
        }
    }
}

#[test]
fn the_arena_comes_from_usysv_arena_unless_named() {
    let _watchdog = Watchdog::new("USYSV_ARENA", LIMIT);
    let _shared = not_alone();
    let dir = TempDir::new("ipc-tools-env");
    let (env_arena, named) = (small_arena(&dir, 0o600), dir.join("named"));
    drop(ArenaFile::create(&named, &SMALL_LIMITS, 0o600).unwrap());
    let in_env = |args: &[&str]| {
        let mut command = Command::new(usysv_command());
        command.env("USYSV_ARENA", &env_arena).args(args);
        let ran = run(command);
        assert!(ran.code == 0 && ran.err.is_empty(), "{args:?}: {ran:?}");
        ran.out
    };
    let made = in_env(&["ipcmk", "-Q"]);
    let id = id_after(made.trim_end(), "Message queue id: ");
    let json = Json::parse(&in_env(&["ipcs", "-q", "--json"]));
    assert_eq!(
        json.get("arena"),
        &Json::Str(env_arena.to_str().unwrap().into())
    );
    assert_eq!(json.items("queues").len(), 1);
    json.find("queues", "msqid", id);
    assert!(!json.has("segments"), "-q shows queues only");
    let other = Json::parse(&in_env(&[
        "ipcs",
        "--arena",
        named.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(other.items("queues"), &[]);
    assert_eq!(in_env(&["ipcrm", "-q", &id.to_string()]), "");
}

#[test]
fn no_permission_is_one_line_and_a_nonzero_exit() {
    let _watchdog = Watchdog::new("permissions", LIMIT);
    let _shared = not_alone();
    let dir = TempDir::new("ipc-tools-perm");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let arena = small_arena(&dir, 0o666);
    let ipc = Ipc::with_file(ArenaFile::open(&arena).unwrap()).unwrap();
    let key = 0x00c0_ffee;
    // Mode 0: no one may read or alter it.
    let locked = ipc.semget(key, 1, IPC_CREAT).unwrap();
    let readable = ipc.msgget(IPC_PRIVATE, IPC_CREAT | 0o644).unwrap();
    let (locked_s, readable_s) = (locked.to_string(), readable.to_string());
    let root = euid_egid().0 == 0;
    // Another user when this test can become one; else this one, whom mode
    // 0 shuts out of reading too (without CAP_IPC_OWNER).
    let stranger = |args: &[&str]| {
        let mut command = usysv_cmd(Some(&arena), args);
        if root {
            command.uid(65534).gid(65534);
        }
        run(command)
    };
    let denied = stranger(&["ipcs", "-s", "-i", &locked_s]);
    assert_eq!(denied.code, 1, "{denied:?}");
    assert_eq!(
        denied.err,
        "usysv: semctl(GETVAL) failed: Permission denied\n"
    );
    // Listing shows every object, as /proc/sysvipc does.
    let list = stranger(&["ipcs", "-s"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(
        list.out.contains(&format!("0x00c0ffee {locked_s:<10}")),
        "{list:?}"
    );
    if !root {
        eprintln!("removal by another user not checked: becoming one needs root");
        return;
    }
    for (args, message) in [
        (
            &["ipcrm", "-s", &locked_s][..],
            format!("permission denied for id ({locked})"),
        ),
        (
            &["ipcrm", "-S", "0xc0ffee"],
            "permission denied for key (0xc0ffee)".into(),
        ),
        (
            &["ipcrm", "-q", &readable_s],
            format!("permission denied for id ({readable})"),
        ),
    ] {
        let ran = stranger(args);
        assert_eq!(
            (ran.code, ran.err),
            (1, format!("usysv: {message}\n")),
            "{args:?}"
        );
    }
    // --all tries what the user may read, and may not remove it.
    let all = stranger(&["ipcrm", "--all"]);
    assert_eq!(
        (all.code, all.err),
        (1, format!("usysv: permission denied for id ({readable})\n"))
    );
    assert!(ipc.semctl_stat(locked).is_ok() && ipc.msgctl_stat(readable).is_ok());
}

// ---------------------------------------------------------------------------
// The same objects in the kernel and in usysv, shown by both `ipcs`.

/// The kernel's limits, as a usysv arena's (small elsewhere, to stay quick).
fn kernel_limits() -> Limits {
    let sem = std::fs::read_to_string("/proc/sys/kernel/sem").unwrap();
    let sem: Vec<u32> = sem.split_whitespace().map(|n| n.parse().unwrap()).collect();
    Limits {
        semmsl: sem[0],
        semmns: sem[1],
        semopm: sem[2],
        semmni: sem[3],
        msgmni: read_limit("msgmni"),
        msgmax: read_limit("msgmax"),
        msgmnb: read_limit("msgmnb"),
        shmmni: read_limit("shmmni"),
        shmmax: read_limit("shmmax"),
        shmall: read_limit("shmall"),
        procs: SMALL_LIMITS.procs,
        heap_bytes: SMALL_LIMITS.heap_bytes,
        ..DEFAULT_LIMITS
    }
}

/// The kernel objects a test made: detached and removed on drop.
#[derive(Default)]
struct KernelObjects {
    shm: Vec<i32>,
    msg: Vec<i32>,
    sem: Vec<i32>,
    attached: Vec<usize>,
}

impl Drop for KernelObjects {
    fn drop(&mut self) {
        // SAFETY: each address is an attachment this test made and nothing
        // uses any more; each id an object it made. Errors (already gone)
        // do not matter.
        unsafe {
            for &at in &self.attached {
                libc::shmdt(at as *const libc::c_void);
            }
            for &id in &self.shm {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
            for &id in &self.msg {
                libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
            for &id in &self.sem {
                libc::semctl(id, 0, libc::IPC_RMID);
            }
        }
    }
}

/// The objects, in each world: segments, queues, sets, in making order.
struct Made {
    shm: Vec<i32>,
    msg: Vec<i32>,
    sem: Vec<i32>,
}

/// The keys the objects are made with, free in the kernel.
struct Keys {
    shm: [i32; 3],
    msg: [i32; 2],
    sem: [i32; 2],
}

impl Keys {
    fn unused() -> Keys {
        // SAFETY: lookups by key without flags only.
        let shm = || unused_key(|key| unsafe { libc::shmget(key, 0, 0) });
        let msg = || unused_key(|key| unsafe { libc::msgget(key, 0) });
        let sem = || unused_key(|key| unsafe { libc::semget(key, 0, 0) });
        Keys {
            shm: [shm(), shm(), shm()],
            msg: [msg(), msg()],
            sem: [sem(), sem()],
        }
    }
}

/// A uid and gid that name nobody (numbers in both `ipcs`).
const UNNAMED: u32 = 54_321;

/// Makes the objects in the kernel: a segment attached once, a locked one
/// (when this process may lock), a removed one still attached (`dest`); a
/// queue with two messages left of three and an empty one; a set of three
/// after SETALL and a semop, and one given to an unnamed owner. Returns
/// whether the segment could be locked.
fn make_in_kernel(keys: &Keys, objects: &mut KernelObjects) -> bool {
    let ok = |ret: i64, what: &str| checked(ret).unwrap_or_else(|e| panic!("{what}: errno {e}"));
    let flags = IPC_CREAT | IPC_EXCL;
    // SAFETY: plain System V calls on objects this test makes; every buffer
    // passed is valid for what the call reads or writes.
    unsafe {
        for (key, size, mode) in [
            (keys.shm[0], 1536, 0o640),
            (keys.shm[1], 1 << 20, 0o600),
            (keys.shm[2], 4096, 0o644),
        ] {
            objects
                .shm
                .push(ok(libc::shmget(key, size, flags | mode).into(), "shmget") as i32);
        }
        let mut attach = |id: i32| {
            let at = libc::shmat(id, std::ptr::null(), 0);
            assert_ne!(at as isize, -1, "shmat");
            objects.attached.push(at as usize);
        };
        attach(objects.shm[0]);
        attach(objects.shm[2]);
        let locked = libc::shmctl(objects.shm[1], libc::SHM_LOCK, std::ptr::null_mut()) == 0;
        ok(
            libc::shmctl(objects.shm[2], libc::IPC_RMID, std::ptr::null_mut()).into(),
            "IPC_RMID",
        );
        for (key, mode) in [(keys.msg[0], 0o640), (keys.msg[1], 0o600)] {
            objects
                .msg
                .push(ok(libc::msgget(key, flags | mode).into(), "msgget") as i32);
        }
        for text in [&b"abc"[..], b"0123456789", b"seven!!"] {
            msgsnd(objects.msg[0], 1, text, 0).unwrap();
        }
        let mut buf = [0u64; 8];
        ok(
            libc::msgrcv(objects.msg[0], buf.as_mut_ptr().cast(), 32, 0, 0) as i64,
            "msgrcv",
        );
        for (key, nsems, mode) in [(keys.sem[0], 3, 0o600), (keys.sem[1], 1, 0o666)] {
            objects
                .sem
                .push(ok(libc::semget(key, nsems, flags | mode).into(), "semget") as i32);
        }
        let values: [u16; 3] = [1, 2, 3];
        ok(
            libc::semctl(objects.sem[0], 0, libc::SETALL, values.as_ptr()).into(),
            "SETALL",
        );
        let mut up = libc::sembuf {
            sem_num: 0,
            sem_op: 1,
            sem_flg: 0,
        };
        ok(libc::semop(objects.sem[0], &mut up, 1).into(), "semop");
        let mut ds: libc::semid_ds = std::mem::zeroed();
        ok(
            libc::semctl(
                objects.sem[1],
                0,
                libc::IPC_STAT,
                &mut ds as *mut libc::semid_ds,
            )
            .into(),
            "IPC_STAT",
        );
        ds.sem_perm.uid = UNNAMED;
        ds.sem_perm.gid = UNNAMED;
        ok(
            libc::semctl(
                objects.sem[1],
                0,
                libc::IPC_SET,
                &mut ds as *mut libc::semid_ds,
            )
            .into(),
            "IPC_SET",
        );
        locked
    }
}

/// Makes the same objects in usysv, through the API.
fn make_in_usysv<'a>(
    ipc: &'a Ipc,
    keys: &Keys,
    lock: bool,
    attachments: &mut Vec<usysv_platform::Attachment<'a>>,
) -> Made {
    let flags = IPC_CREAT | IPC_EXCL;
    let shm: Vec<i32> = [
        (keys.shm[0], 1536, 0o640),
        (keys.shm[1], 1 << 20, 0o600),
        (keys.shm[2], 4096, 0o644),
    ]
    .into_iter()
    .map(|(key, size, mode)| ipc.shmget(key, size, flags | mode).unwrap())
    .collect();
    attachments.push(ipc.shmat(shm[0], 0, 0).unwrap());
    attachments.push(ipc.shmat(shm[2], 0, 0).unwrap());
    if lock {
        ipc.shmctl_lock(shm[1], true).unwrap();
    }
    ipc.shmctl_rmid(shm[2]).unwrap();
    let msg: Vec<i32> = [(keys.msg[0], 0o640), (keys.msg[1], 0o600)]
        .into_iter()
        .map(|(key, mode)| ipc.msgget(key, flags | mode).unwrap())
        .collect();
    for text in [&b"abc"[..], b"0123456789", b"seven!!"] {
        ipc.msgsnd(msg[0], 1, text, 0).unwrap();
    }
    ipc.msgrcv(msg[0], &mut [0; 32], 0, 0).unwrap();
    let sem: Vec<i32> = [(keys.sem[0], 3, 0o600), (keys.sem[1], 1, 0o666)]
        .into_iter()
        .map(|(key, nsems, mode)| ipc.semget(key, nsems, flags | mode).unwrap())
        .collect();
    ipc.semctl_setall(sem[0], &[1, 2, 3]).unwrap();
    let up = SemBuf {
        sem_num: 0,
        sem_op: 1,
        sem_flg: 0,
    };
    ipc.semop(sem[0], &[up]).unwrap();
    ipc.semctl_set(sem[1], UNNAMED, UNNAMED, 0o666).unwrap();
    Made { shm, msg, sem }
}

/// `text` with every clock time (`04:07:31`) shown as `hh:mm:ss`: the two
/// worlds made their objects a moment apart.
fn mask_clock(text: &str) -> String {
    let mut out = text.as_bytes().to_vec();
    for at in 0..out.len().saturating_sub(7) {
        let window = &out[at..at + 8];
        let digit = |i: usize| window[i].is_ascii_digit();
        if digit(0)
            && digit(1)
            && window[2] == b':'
            && digit(3)
            && digit(4)
            && window[5] == b':'
            && digit(6)
            && digit(7)
        {
            out[at..at + 8].copy_from_slice(b"hh:mm:ss");
        }
    }
    String::from_utf8(out).unwrap()
}

/// A listing reduced to what the two worlds must share: headings as they
/// are; of the rows, only those of the objects in `made` (by id, in the
/// section of their kind), each with its id replaced by `ID`, sorted into
/// making order after their section's headings. Also how many rows there
/// were, and how many of them were kept.
fn comparable(text: &str, made: &Made) -> (Vec<String>, usize, usize) {
    let mut out = Vec::new();
    let mut rows: BTreeMap<usize, String> = BTreeMap::new();
    let mut ids: &[i32] = &[];
    let (mut seen, mut kept) = (0, 0);
    let flush = |out: &mut Vec<String>, rows: &mut BTreeMap<usize, String>| {
        out.extend(std::mem::take(rows).into_values());
    };
    for line in mask_clock(text).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let id_at = match words.as_slice() {
            [key, id, ..] if key.starts_with("0x") && id.parse::<i32>().is_ok() => Some(1),
            [id, ..] if id.parse::<i32>().is_ok() => Some(0),
            _ => None,
        };
        let Some(id_at) = id_at else {
            flush(&mut out, &mut rows);
            if line.starts_with("------") {
                ids = if line.contains("Message") {
                    &made.msg
                } else if line.contains("Shared Memory") {
                    &made.shm
                } else {
                    &made.sem
                };
            }
            out.push(line.to_string());
            continue;
        };
        let id: i32 = words[id_at].parse().unwrap();
        seen += 1;
        let Some(index) = ids.iter().position(|&mine| mine == id) else {
            continue;
        };
        kept += 1;
        // The id and the spaces after it (the column's padding) become `ID `.
        let start = if id_at == 0 {
            0
        } else {
            line.find(' ').unwrap() + 1
        };
        let after = &line[start + words[id_at].len()..];
        let rest = after.trim_start_matches(' ');
        rows.insert(index, format!("{}ID {rest}", &line[..start]));
    }
    flush(&mut out, &mut rows);
    (out, seen, kept)
}

/// `text` with every number shown as `N`: for `-u`, whose counts cover the
/// kernel's whole namespace.
fn mask_numbers(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let mut out = String::new();
            for c in line.chars() {
                if !c.is_ascii_digit() {
                    out.push(c);
                } else if !out.ends_with('N') {
                    out.push('N');
                }
            }
            out
        })
        .collect()
}

fn kernel_ipcs(args: &[&str]) -> String {
    let output = Command::new("/usr/bin/ipcs").args(args).output().unwrap();
    assert!(output.status.success(), "ipcs {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn usysv_ipcs_matches_util_linux_ipcs_column_for_column() {
    let _watchdog = Watchdog::new("ipcs against util-linux", LIMIT);
    let _alone = alone();
    assert!(
        Path::new("/usr/bin/ipcs").exists(),
        "util-linux's ipcs (/usr/bin/ipcs) is needed to compare with"
    );
    let dir = TempDir::new("ipc-tools-kernel");
    let arena = dir.join("arena");
    drop(ArenaFile::create(&arena, &kernel_limits(), 0o600).unwrap());
    let ipc = Ipc::with_file(ArenaFile::open(&arena).unwrap()).unwrap();
    let keys = Keys::unused();
    let mut kernel_objects = KernelObjects::default();
    let locked = make_in_kernel(&keys, &mut kernel_objects);
    let kernel = Made {
        shm: kernel_objects.shm.clone(),
        msg: kernel_objects.msg.clone(),
        sem: kernel_objects.sem.clone(),
    };
    let mut attachments = Vec::new();
    let usysv = make_in_usysv(&ipc, &keys, locked, &mut attachments);

    let listings: [&[&str]; 16] = [
        &[],
        &["-a"],
        &["-q"],
        &["-m"],
        &["-s"],
        &["-t"],
        &["-p"],
        &["-c"],
        &["-b"],
        &["--human"],
        &["-q", "-t", "-s"],
        &["-m", "-p"],
        &["-s", "-c"],
        &["-m", "--human", "-q"],
        &["-qsm", "-b"],
        &["--time", "--shmems"],
    ];
    for flags in listings {
        let (ours, seen, kept) =
            comparable(&succeeds(&arena, &[&["ipcs"], flags].concat()), &usysv);
        let (theirs, _, kernel_kept) = comparable(&kernel_ipcs(flags), &kernel);
        assert!(
            kept > 0 && kept == seen,
            "ipcs {flags:?}: {kept} of {seen} rows ours"
        );
        assert_eq!(
            kept, kernel_kept,
            "ipcs {flags:?}: rows of the objects made"
        );
        assert_same(&theirs, &ours);
    }
    // The limits are the kernel's, so the whole text is the same.
    for flags in [&[][..], &["-b"], &["--human"]] {
        let args = [&["-l"], flags].concat();
        let ours = succeeds(&arena, &[&["ipcs"], &args[..]].concat());
        assert_eq!(ours, kernel_ipcs(&args), "ipcs {args:?}");
    }
    // The summary counts the kernel's whole namespace: its layout only.
    for flags in [&[][..], &["-b"], &["--human"]] {
        let args = [&["-u"], flags].concat();
        let ours = succeeds(&arena, &[&["ipcs"], &args[..]].concat());
        assert_same(&mask_numbers(&kernel_ipcs(&args)), &mask_numbers(&ours));
    }
    // One object at a time, each unit.
    let each = [
        ("-m", "shmid=", &kernel.shm, &usysv.shm),
        ("-q", "msqid=", &kernel.msg, &usysv.msg),
        ("-s", "semid=", &kernel.sem, &usysv.sem),
    ];
    for (kind, label, kernel_ids, usysv_ids) in each {
        for (&kernel_id, &usysv_id) in kernel_ids.iter().zip(usysv_ids.iter()) {
            for unit in [&[][..], &["-b"], &["--human"]] {
                let (kid, uid) = (kernel_id.to_string(), usysv_id.to_string());
                let theirs = kernel_ipcs(&[&[kind, "-i", &kid][..], unit].concat());
                let ours = succeeds(&arena, &[&["ipcs", kind, "-i", &uid][..], unit].concat());
                let plain = |text: &str, id: &str| {
                    mask_clock(text)
                        .replace(&format!("{label}{id}\n"), &format!("{label}ID\n"))
                        .lines()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                };
                assert_same(&plain(&theirs, &kid), &plain(&ours, &uid));
            }
        }
    }
    drop(attachments);
    drop(kernel_objects);
}
