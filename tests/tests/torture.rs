//! The crash torture test: workers loop over semaphores (with `SEM_UNDO`),
//! messages and shared memory while a killer sends SIGKILL to random ones at
//! random moments and starts replacements. Afterwards `usysv gc` reaps the
//! dead, and the namespace must be whole: `usysv check` clean, the semaphore
//! back at its initial value, no attachment left, and no message lost beyond
//! those a killed receiver took, or duplicated.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_NOWAIT, IPC_PRIVATE};
use usysv_platform::usysv_core::sem::SemQuery;
use usysv_platform::usysv_core::Errno;
use usysv_platform::Ipc;
use usysv_tests::{usysv_command, Rng, TempDir, Watchdog, SMALL_LIMITS};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-torture-helper");
const WORKERS: usize = 6;
const RUN: Duration = Duration::from_secs(4);

/// A message as its sender numbered it: (pid, round).
type Message = (u32, u32);

/// What a worker's log says it sent and received, whole lines only.
#[derive(Default)]
struct Log {
    sent: Vec<Message>,
    received: Vec<Message>,
}

fn read_logs(dir: &TempDir, count: usize) -> Log {
    let mut log = Log::default();
    for n in 0..count {
        let text = std::fs::read_to_string(dir.join(&format!("log.{n}"))).unwrap_or_default();
        // A worker killed in the middle of a write leaves a line without its
        // newline: not a whole step.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in whole.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [kind, pid, round] = fields.as_slice() else {
                panic!("a log line of three fields, not {line:?}");
            };
            let message = (pid.parse().unwrap(), round.parse().unwrap());
            match *kind {
                "S" => log.sent.push(message),
                "R" => log.received.push(message),
                other => panic!("a log line of kind {other:?}"),
            }
        }
    }
    log
}

fn run(command: &str, arena: &str) -> (Option<i32>, String) {
    let out = Command::new(usysv_command())
        .args([command, "--arena", arena])
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_namespace_stays_whole_while_processes_are_killed_at_random() {
    let _watchdog = Watchdog::new("the torture test", Duration::from_secs(120));
    let dir = TempDir::new("torture");
    let path = dir.join("arena");
    let arena = path.to_str().unwrap().to_owned();
    let ipc = Ipc::open(&path, &SMALL_LIMITS, 0o600).unwrap();
    let semid = ipc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600).unwrap();
    ipc.semctl_setval(semid, 0, 1).unwrap();
    let msqid = ipc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600).unwrap();
    let shmid = ipc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    let ids = [semid, msqid, shmid].map(|id| id.to_string());

    let mut logs = 0;
    let start = |logs: &mut usize| -> Child {
        let log = dir.join(&format!("log.{logs}"));
        *logs += 1;
        Command::new(HELPER)
            .args([&arena, &ids[0], &ids[1], &ids[2], log.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut workers: Vec<Child> = (0..WORKERS).map(|_| start(&mut logs)).collect();
    let mut rng = Rng::new(0x7047_7572);
    let mut kills = 0;
    let end = Instant::now() + RUN;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
        let victim = rng.below(WORKERS as u64) as usize;
        let worker = &mut workers[victim];
        let exited = worker.try_wait().unwrap();
        assert!(exited.is_none(), "a worker ended by itself: {exited:?}");
        worker.kill().unwrap();
        worker.wait().unwrap();
        kills += 1;
        workers[victim] = start(&mut logs);
    }
    for worker in &mut workers {
        let exited = worker.try_wait().unwrap();
        assert!(exited.is_none(), "a worker ended by itself: {exited:?}");
        worker.kill().unwrap();
        worker.wait().unwrap();
    }
    kills += WORKERS;

    let (status, out) = run("gc", &arena);
    assert_eq!(status, Some(0), "{out}");
    assert_eq!(ipc.namespace().processes(), 1, "only this process is left");
    assert_eq!(
        ipc.semctl_getval(semid, 0),
        Ok(1),
        "every dead process's adjustment was applied"
    );
    for query in [SemQuery::WaitingToDecrease, SemQuery::WaitingForZero] {
        assert_eq!(ipc.semctl_query(semid, 0, query), Ok(0), "{query:?}");
    }
    assert_eq!(
        ipc.shmctl_stat(shmid).unwrap().nattch,
        0,
        "every dead process's attachment ended"
    );

    let mut drained = Vec::new();
    let mut buf = [0u8; 8];
    loop {
        match ipc.msgrcv(msqid, &mut buf, 0, IPC_NOWAIT) {
            Ok((_, 8)) => drained.push((
                u32::from_ne_bytes(buf[..4].try_into().unwrap()),
                u32::from_ne_bytes(buf[4..].try_into().unwrap()),
            )),
            Ok((_, len)) => panic!("a message of {len} bytes"),
            Err(Errno::ENOMSG) => break,
            Err(err) => panic!("msgrcv: {err}"),
        }
    }
    let log = read_logs(&dir, logs);
    assert!(
        log.received.len() > 100,
        "the workers made progress: {} messages received",
        log.received.len()
    );
    let sent: HashSet<Message> = log.sent.iter().copied().collect();
    assert_eq!(sent.len(), log.sent.len(), "each message was sent once");
    // A worker killed between its msgsnd and its log line sent one more
    // message than it logged: the round after its last logged one.
    let mut last_logged: HashMap<u32, u32> = HashMap::new();
    for &(pid, round) in &log.sent {
        let last = last_logged.entry(pid).or_insert(round);
        *last = (*last).max(round);
    }
    let mut arrived = HashSet::new();
    for &message in log.received.iter().chain(&drained) {
        assert!(arrived.insert(message), "{message:?} arrived twice");
        let (pid, round) = message;
        let unlogged = last_logged.get(&pid).map_or(0, |last| last + 1);
        assert!(
            sent.contains(&message) || round == unlogged,
            "{message:?} arrived but was never sent"
        );
    }
    // A worker killed between its msgrcv and its log line took a message
    // that no log shows.
    let missing = sent.difference(&arrived).count();
    assert!(
        missing <= kills,
        "{missing} messages lost, more than the {kills} kills explain"
    );

    eprintln!(
        "torture: {kills} kills, {} sent, {} received, {} drained, {missing} missing",
        log.sent.len(),
        log.received.len(),
        drained.len()
    );
    let (status, out) = run("check", &arena);
    assert_eq!(status, Some(0), "usysv check: {out}");
}
