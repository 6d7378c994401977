//! A process for the SEM_UNDO tests: it operates, forks, execs and exits in
//! the ways the kernel's undo rules distinguish.
//!
//! usage: usysv-undo-helper COMMAND ARENA SEMID [FILE]
//!   exit         +1 with SEM_UNDO on semaphore 0, print the value, exit normally
//!   fork         +2 with SEM_UNDO; fork; the child adds 1 without and 5 with
//!                SEM_UNDO through the namespace it inherited, and exits; the
//!                parent prints the value after the child, then exits
//!   exec         +1 with SEM_UNDO, then exec itself as `exec-child`
//!   exec-child   (after exec) open the arena again, print the value, exit
//!   hold         -1 with SEM_UNDO, print `holding`, then wait to take
//!                another 1 (until killed)
//!   checkpoint   -1 with SEM_UNDO, export its own undo list held into FILE,
//!                print `checkpointed`, then wait to take another 1
//!   restore      import the undo list in FILE, print the value, exit
//!                normally
//!   restarted    (run by `usysv run --import-undo`) print the value and
//!                the list this process now holds, exit normally
//!
//! Every command gives up after 60 seconds (SIGALRM).

use std::os::unix::process::CommandExt;
use std::path::Path;

use usysv_platform::usysv_core::sem::{SemBuf, SEM_UNDO};
use usysv_platform::usysv_core::Limits;
use usysv_platform::{Ipc, UndoList};

fn add(ipc: &Ipc, semid: i32, delta: i16, flags: i16) {
    let op = SemBuf {
        sem_num: 0,
        sem_op: delta,
        sem_flg: flags,
    };
    ipc.semop(semid, &[op]).expect("semop");
}

fn main() {
    // SAFETY: alarm only schedules SIGALRM, whose default action ends the process.
    unsafe { libc::alarm(60) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, arena, semid, file) = match args.as_slice() {
        [command, arena, semid] => (command, arena, semid, None),
        [command, arena, semid, file] => (command, arena, semid, Some(file)),
        _ => {
            eprintln!("usage: usysv-undo-helper COMMAND ARENA SEMID [FILE]");
            std::process::exit(2);
        }
    };
    let file = || file.expect("this command needs a FILE");
    let semid: i32 = semid.parse().expect("SEMID is a number");
    let ipc = Ipc::open(Path::new(arena), &Limits::default(), 0o600).expect("open the arena");
    let value = |ipc: &Ipc| ipc.semctl_getval(semid, 0).expect("GETVAL");
    match command.as_str() {
        "exit" => {
            add(&ipc, semid, 1, SEM_UNDO);
            println!("{}", value(&ipc));
        }
        "fork" => {
            add(&ipc, semid, 2, SEM_UNDO);
            // SAFETY: single-threaded; the child uses the arena and exits
            // normally, as a forked C program would.
            let child = unsafe { libc::fork() };
            if child == 0 {
                add(&ipc, semid, 1, 0);
                add(&ipc, semid, 5, SEM_UNDO);
                drop(ipc);
                std::process::exit(0);
            }
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            println!("{}", value(&ipc));
        }
        "exec" => {
            add(&ipc, semid, 1, SEM_UNDO);
            let err = std::process::Command::new("/proc/self/exe")
                .args(["exec-child", arena, &semid.to_string()])
                .exec();
            panic!("exec: {err}");
        }
        "exec-child" => println!("{}", value(&ipc)),
        "hold" => {
            add(&ipc, semid, -1, SEM_UNDO);
            println!("holding");
            add(&ipc, semid, -1, 0);
        }
        "checkpoint" => {
            add(&ipc, semid, -1, SEM_UNDO);
            let list = ipc.undo_export(std::process::id(), true).expect("export");
            let partial = format!("{}.partial", file());
            std::fs::write(&partial, list.to_string()).expect("write the list");
            std::fs::rename(&partial, file()).expect("rename the list");
            println!("checkpointed");
            add(&ipc, semid, -1, 0);
        }
        "restore" => {
            let text = std::fs::read_to_string(file()).expect("read the list");
            let list = UndoList::parse(&text).expect("parse the list");
            match ipc.undo_import(&list) {
                Ok(()) => println!("{}", value(&ipc)),
                Err(errno) => println!("{}", errno.name()),
            }
        }
        "restarted" => {
            println!("{}", value(&ipc));
            let list = ipc.undo_export(std::process::id(), false).expect("export");
            print!("{list}");
        }
        other => {
            eprintln!("usysv-undo-helper: unknown command {other}");
            std::process::exit(2);
        }
    }
}
