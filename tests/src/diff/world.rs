//! A world of a differential run: worker processes making System V calls in
//! the kernel (in an IPC namespace of their own) or in usysv (the same
//! workers with the preload library and a fresh arena), and an observer that
//! reports the state of every object after each step, and the bytes each
//! worker sees in the segments it has attached.
//!
//! A call that blocks is detected without timing: the worker has not
//! answered and sleeps inside a system call other than its `read` of the
//! next command (`/proc/PID/stat` and `/proc/PID/syscall`). A waker's call
//! returns only after the woken process is runnable, so after each step a
//! blocked worker either answers or is found asleep again. Steps for a
//! worker that is blocked are skipped, in both worlds alike.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use usysv_platform::usysv_core::DEFAULT_LIMITS;

use super::call::{Call, Step};

/// Signals an `interrupt` step sends before it calls a call uninterruptible.
const INTERRUPTS: u32 = 20;

/// How long a worker may run a call without answering or sleeping.
const STUCK: Duration = Duration::from_secs(10);

/// Which System V the workers reach.
#[derive(Clone, Debug)]
pub enum Flavor {
    /// The kernel's, in a new IPC namespace.
    Kernel,
    /// usysv's, through this preload library, in a fresh arena in `dir`.
    Usysv {
        /// `libusysv_preload.so`.
        preload: PathBuf,
        /// A directory for the arena and its segment files (emptied first).
        dir: PathBuf,
    },
}

/// How a call ended, as far as the driver can see.
enum Answer {
    Done(String),
    Blocked,
    Died,
    Stuck,
}

/// One worker process.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pid: u32,
    /// The label of the call it is blocked in.
    blocked: Option<u32>,
    dead: bool,
}

impl Proc {
    fn spawn(exe: &Path, flavor: &Flavor, uid: Option<u32>) -> std::io::Result<Proc> {
        let mut command = Command::new(exe);
        command
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env_remove("LD_PRELOAD")
            .env_remove("USYSV_ARENA");
        if let Flavor::Usysv { preload, dir } = flavor {
            command
                .env("LD_PRELOAD", preload)
                .env("USYSV_ARENA", dir.join("arena"));
        }
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        let mut child = command.spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            pid: child.id(),
            child,
            stdin,
            lines,
            blocked: None,
            dead: false,
        })
    }

    fn send(&mut self, line: &str) -> bool {
        writeln!(self.stdin, "{line}").is_ok() && self.stdin.flush().is_ok()
    }

    /// Whether the worker sleeps inside a system call other than `read`.
    fn asleep_in_call(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next());
        if state != Some("S") {
            return false;
        }
        let syscall =
            std::fs::read_to_string(format!("/proc/{}/syscall", self.pid)).unwrap_or_default();
        matches!(
            syscall.split_whitespace().next().map(str::parse::<i64>),
            Some(Ok(number)) if number != libc::SYS_read
        )
    }

    /// Sends the worker, blocked in the call step `label` made, the
    /// interrupting signal until the call ends. One is enough for the
    /// kernel; usysv does not see a signal that arrives while a waiter
    /// spins before it sleeps again (see the README's differences), so
    /// it is sent again, up to [`INTERRUPTS`] times, while the worker stays
    /// blocked.
    fn interrupt(&mut self, label: u32) -> String {
        for _ in 0..INTERRUPTS {
            // SAFETY: kill takes a pid and a signal number.
            unsafe { libc::kill(self.pid as i32, super::worker::INTERRUPT) };
            match self.answer() {
                Answer::Blocked => std::thread::sleep(Duration::from_millis(1)),
                Answer::Done(line) => {
                    self.blocked = None;
                    return format!("@{label} <- {line}");
                }
                Answer::Died | Answer::Stuck => {
                    self.dead = true;
                    return format!("@{label} <- the worker died or hung");
                }
            }
        }
        format!("@{label} still blocked after {INTERRUPTS} signals")
    }

    /// Waits until the worker answers or is found blocked.
    fn answer(&mut self) -> Answer {
        let start = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_micros(200)) {
                Ok(line) => return Answer::Done(line),
                Err(RecvTimeoutError::Disconnected) => return Answer::Died,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.asleep_in_call() {
                // Asleep now, so any answer was written before: look once more.
                return match self.lines.try_recv() {
                    Ok(line) => Answer::Done(line),
                    Err(TryRecvError::Disconnected) => Answer::Died,
                    Err(TryRecvError::Empty) => Answer::Blocked,
                };
            }
            if start.elapsed() > STUCK {
                return Answer::Stuck;
            }
        }
    }
}

/// One world: its workers, its observer, and the ids its gets returned.
pub struct World {
    procs: Vec<Proc>,
    /// What each get step returned (-1 for a failure).
    got: HashMap<u32, i32>,
    /// Objects to observe: kind and id, in order of first appearance.
    objects: Vec<(&'static str, i32)>,
}

impl World {
    /// Starts `workers` workers and an observer in a fresh namespace.
    /// Workers run as uids 1000, 1000, 1001, 1001, … when the driver is
    /// root (so that permissions matter), the observer as the driver.
    pub fn start(exe: &Path, flavor: &Flavor, workers: u8) -> Result<World, String> {
        match flavor {
            Flavor::Kernel => {
                // SAFETY: unshare takes a flag word; it moves this thread
                // (whose children the workers will be) to a new IPC namespace.
                if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
                    return Err(format!(
                        "a new IPC namespace for the kernel's world: {} (run as root)",
                        std::io::Error::last_os_error()
                    ));
                }
            }
            Flavor::Usysv { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
                std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
                    .map_err(|err| format!("{}: {err}", dir.display()))?;
                usysv_platform::ArenaFile::create(&dir.join("arena"), &DEFAULT_LIMITS, 0o666)
                    .map_err(|err| err.to_string())?;
            }
        }
        // SAFETY: geteuid cannot fail and touches no memory.
        let root = unsafe { libc::geteuid() } == 0;
        let mut procs = Vec::new();
        for worker in 0..=workers {
            let uid = (root && worker < workers).then(|| 1000 + u32::from(worker) / 2);
            let proc = Proc::spawn(exe, flavor, uid).map_err(|err| format!("a worker: {err}"))?;
            procs.push(proc);
        }
        let pids: Vec<String> = procs.iter().map(|proc| proc.pid.to_string()).collect();
        let line = format!("pids {}", pids.join(" "));
        for proc in &mut procs {
            let ready = proc.send(&line) && matches!(proc.answer(), Answer::Done(_));
            if !ready {
                return Err("a worker did not start".to_string());
            }
        }
        Ok(World {
            procs,
            got: HashMap::new(),
            objects: Vec::new(),
        })
    }

    /// Makes one step and returns what it showed: the call's answer, the
    /// answers of blocked calls it ended, and the state of every object.
    pub fn step(&mut self, step: &Step) -> Vec<String> {
        let mut shown = Vec::new();
        let worker = usize::from(step.worker);
        let worker_count = self.procs.len() - 1;
        let head = format!("{step} ->");
        let answer = match self.procs.get_mut(worker) {
            None => format!("{head} no such worker"),
            Some(proc) if worker == worker_count => format!("{head} no such worker ({})", proc.pid),
            Some(proc) if proc.dead => format!("{head} skipped: the worker died"),
            Some(proc) if step.call == Call::Interrupt => match proc.blocked {
                Some(label) => format!("{head} {}", proc.interrupt(label)),
                None => format!("{head} not blocked"),
            },
            Some(proc) if proc.blocked.is_some() => {
                format!("{head} skipped: the worker is blocked")
            }
            Some(proc) => {
                let got = &self.got;
                let call = step
                    .call
                    .resolved(|label| got.get(&label).copied().unwrap_or(-1));
                if !proc.send(&format!("step {} {call}", step.label)) {
                    proc.dead = true;
                }
                match proc.answer() {
                    Answer::Done(line) => {
                        self.record(step, &line);
                        format!("{head} {line}")
                    }
                    Answer::Blocked => {
                        proc.blocked = Some(step.label);
                        format!("{head} blocked")
                    }
                    Answer::Died => {
                        proc.dead = true;
                        format!("{head} the worker died")
                    }
                    Answer::Stuck => format!("{head} stuck"),
                }
            }
        };
        shown.push(answer);
        for index in 0..worker_count {
            let Some(label) = self.procs[index].blocked else {
                continue;
            };
            match self.procs[index].answer() {
                Answer::Blocked => {}
                Answer::Done(line) => {
                    self.procs[index].blocked = None;
                    shown.push(format!("w{index} @{label} <- {line}"));
                }
                Answer::Died | Answer::Stuck => {
                    self.procs[index].dead = true;
                    shown.push(format!("w{index} @{label} <- the worker died or hung"));
                }
            }
        }
        shown.extend(self.observe());
        shown.extend(self.segment_bytes());
        shown
    }

    /// What each worker that can answer (not blocked, not dead) sees in the
    /// segments it has attached.
    fn segment_bytes(&mut self) -> Vec<String> {
        let workers = self.procs.len() - 1;
        let mut shown = Vec::new();
        for (index, proc) in self.procs.iter_mut().take(workers).enumerate() {
            if proc.dead || proc.blocked.is_some() {
                continue;
            }
            let seen = if proc.send("bytes") {
                match proc.answer() {
                    Answer::Done(line) => line,
                    _ => "no answer".to_string(),
                }
            } else {
                "the worker died".to_string()
            };
            shown.push(format!("w{index} {seen}"));
        }
        shown
    }

    /// Notes the id a get returned, and the object to observe from now on.
    fn record(&mut self, step: &Step, answer: &str) {
        if !step.call.gets() {
            return;
        }
        let id = answer
            .strip_prefix("ok ")
            .and_then(|id| id.parse().ok())
            .unwrap_or(-1);
        self.got.insert(step.label, id);
        let kind = match step.call {
            Call::SemGet { .. } => "sem",
            Call::MsgGet { .. } => "msg",
            _ => "shm",
        };
        if id >= 0 && !self.objects.contains(&(kind, id)) {
            self.objects.push((kind, id));
        }
    }

    fn observe(&mut self) -> Vec<String> {
        let objects = self.objects.clone();
        let observer = self.procs.last_mut().expect("an observer");
        objects
            .into_iter()
            .map(|(kind, id)| {
                let state = if observer.send(&format!("observe {kind} {id}")) {
                    match observer.answer() {
                        Answer::Done(line) => line,
                        _ => "the observer failed".to_string(),
                    }
                } else {
                    "the observer died".to_string()
                };
                format!("{kind} {id}: {state}")
            })
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}
