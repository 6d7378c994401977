//! A worker for the SIGKILL torture test (`tests/torture.rs`): it loops over
//! semaphores, messages and shared memory until it is killed, logging what
//! it completed.
//!
//! usage: usysv-torture-helper ARENA SEMID MSQID SHMID LOG
//!
//! Each round: take semaphore 0 with `SEM_UNDO` and give it back (so the
//! semaphore is 1 again once every process's adjustments are applied); send
//! a message of type 1 carrying this process's pid and the round number,
//! then append `S PID ROUND` to LOG; receive a message (blocking) and append
//! `R PID ROUND` of what it carried; attach the segment, write a byte and
//! detach. Every line is one `write` of a whole line, so a process killed
//! at any moment leaves whole lines and at most one line short of its last
//! step. It gives up after 60 seconds (SIGALRM).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use usysv_platform::usysv_core::sem::{SemBuf, SEM_UNDO};
use usysv_platform::usysv_core::Limits;
use usysv_platform::Ipc;

fn op(delta: i16) -> SemBuf {
    SemBuf {
        sem_num: 0,
        sem_op: delta,
        sem_flg: SEM_UNDO,
    }
}

fn main() {
    // SAFETY: alarm only schedules SIGALRM, whose default action ends the process.
    unsafe { libc::alarm(60) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arena, semid, msqid, shmid, log] = args.as_slice() else {
        eprintln!("usage: usysv-torture-helper ARENA SEMID MSQID SHMID LOG");
        std::process::exit(2);
    };
    let number = |text: &str| -> i32 { text.parse().expect("an id is a number") };
    let (semid, msqid, shmid) = (number(semid), number(msqid), number(shmid));
    let ipc = Ipc::open(Path::new(arena), &Limits::default(), 0o600).expect("open the arena");
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .expect("open the log");
    let pid = std::process::id();
    for round in 0u32.. {
        ipc.semop(semid, &[op(-1)]).expect("take the semaphore");
        ipc.semop(semid, &[op(1)]).expect("give the semaphore back");

        let mut message = [0u8; 8];
        message[..4].copy_from_slice(&pid.to_ne_bytes());
        message[4..].copy_from_slice(&round.to_ne_bytes());
        ipc.msgsnd(msqid, 1, &message, 0).expect("msgsnd");
        log.write_all(format!("S {pid} {round}\n").as_bytes())
            .expect("log");
        let mut received = [0u8; 8];
        let (_, len) = ipc.msgrcv(msqid, &mut received, 0, 0).expect("msgrcv");
        assert_eq!(len, 8, "every message carries 8 bytes");
        let sender = u32::from_ne_bytes(received[..4].try_into().unwrap());
        let sent_round = u32::from_ne_bytes(received[4..].try_into().unwrap());
        log.write_all(format!("R {sender} {sent_round}\n").as_bytes())
            .expect("log");

        let attachment = ipc.shmat(shmid, 0, 0).expect("shmat");
        attachment.bytes()[0].store(round as u8, Ordering::Relaxed);
        drop(attachment);
    }
}
