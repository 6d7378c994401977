//! A process for multi-process tests to start, kill and race.
//!
//! usage: usysv-test-helper COMMAND ARENA [ARGS]
//!   create-key ARENA KEY   open (or create, with the tests' small limits) and
//!                          print the id of semaphore set KEY (IPC_CREAT)
//!   hold ARENA KEY         lock set KEY, change two of its words inside the
//!                          critical section, print "holding", and wait to be killed
//!   churn ARENA            create and remove sets with keys 1..=50 forever,
//!                          printing "ready" once started
//!
//! Every command gives up after 60 seconds (SIGALRM), so a helper that a broken
//! test forgets can never outlive it for long.

use std::io::Write;
use std::path::Path;

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_PRIVATE};
use usysv_platform::usysv_core::{Errno, Kind};
use usysv_platform::{ArenaFile, Credentials};
use usysv_tests::{Rng, SMALL_LIMITS};

fn main() {
    // SAFETY: alarm only schedules SIGALRM, whose default action ends the process.
    unsafe { libc::alarm(60) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, arena, rest @ ..] = args.as_slice() else {
        eprintln!("usage: usysv-test-helper COMMAND ARENA [ARGS]");
        std::process::exit(2);
    };
    let file = ArenaFile::open_or_create(Path::new(arena), &SMALL_LIMITS, 0o600)
        .unwrap_or_else(|err| panic!("{err}"));
    let ns = file.namespace().unwrap_or_else(|err| panic!("{err}"));
    let creds = Credentials::current();
    let cred = creds.as_cred();
    let key = |i: usize| -> i32 { rest[i].parse().expect("KEY is a number") };
    let mut out = std::io::stdout();
    match command.as_str() {
        "create-key" => {
            let id = ns
                .ipc_get(
                    Kind::Sem,
                    key(0),
                    IPC_CREAT | 0o600,
                    &cred,
                    |_| Ok(()),
                    |_, _| Ok(()),
                )
                .unwrap();
            println!("{id}");
        }
        "hold" => {
            let id = ns
                .ipc_get(Kind::Sem, key(0), 0, &cred, |_| Ok(()), |_, _| Ok(()))
                .unwrap();
            let mut locked = ns.lock_object(Kind::Sem, id).unwrap();
            let ext = locked.object.ext();
            locked.txn.set(&ext[0], 111).unwrap();
            locked.txn.set(&ext[1], 222).unwrap();
            writeln!(out, "holding").unwrap();
            out.flush().unwrap();
            loop {
                std::thread::park();
            }
        }
        "churn" => {
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            let mut rng = Rng::new(u64::from(std::process::id()));
            loop {
                let key = 1 + rng.below(50) as i32;
                match ns.ipc_get(Kind::Sem, key, 0, &cred, |_| Ok(()), |_, _| Ok(())) {
                    // Another churner may remove it first: then the id is stale.
                    Ok(id) => match ns.ipc_remove(Kind::Sem, id, &cred, |_, _| Ok(())) {
                        Ok(()) | Err(Errno::EINVAL) => {}
                        Err(err) => panic!("removal of key {key}: {err:?}"),
                    },
                    Err(Errno::ENOENT) => {
                        ns.ipc_get(
                            Kind::Sem,
                            key,
                            IPC_CREAT | 0o600,
                            &cred,
                            |_| Ok(()),
                            |txn, object| txn.set(&object.ext()[0], key as u32),
                        )
                        .unwrap();
                        // Private objects too, removed at once.
                        let private = ns.ipc_get(
                            Kind::Msg,
                            IPC_PRIVATE,
                            0o600,
                            &cred,
                            |_| Ok(()),
                            |_, _| Ok(()),
                        );
                        if let Ok(private) = private {
                            ns.ipc_remove(Kind::Msg, private, &cred, |_, _| Ok(()))
                                .unwrap();
                        }
                    }
                    Err(err) => panic!("lookup of key {key}: {err:?}"),
                }
            }
        }
        other => {
            eprintln!("usysv-test-helper: unknown command {other}");
            std::process::exit(2);
        }
    }
}
