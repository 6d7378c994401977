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
//! The semaphore commands take ARENA = `kernel` for the kernel's own System V
//! semaphores (through libc) instead of usysv's:
//!
//!   semop ARENA ID [sigusr1] [park] [timeout=MS] OP... [then OP...]...
//!                          print "ready", then make one semop (semtimedop with
//!                          a timeout) of the OPs (`NUM:OP`, `NUM:OP:nowait` or
//!                          `NUM:OP:undo`), and one more for each `then`, and
//!                          print each one's result: "ok" or "err ENAME", then
//!                          " handled=N" with `sigusr1` (a SIGUSR1 handler,
//!                          installed with SA_RESTART, counts its calls) and
//!                          " ms=N" (the call's duration) with a timeout; stop
//!                          at the first error; with `park`, then wait to be
//!                          killed instead of exiting
//!   counter ARENA ID FILE N
//!                          print "ready", wait for a unit of semaphore 1 of
//!                          set ID (the starting gate), then N times: take
//!                          semaphore 0, add 1 to the counter in the first 8
//!                          bytes of FILE (pread, pwrite), give semaphore 0
//!                          back; then print "done"
//!   perm-probe ARENA KEY ID
//!                          drop CAP_IPC_OWNER and CAP_SYS_ADMIN from the
//!                          effective set, then try every call on set ID (key
//!                          KEY, two semaphores, made with mode 0) under a
//!                          series of modes set with IPC_SET, one line per call
//!                          ("what = result"), and "end"
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
    if sem::command(command, arena, rest) {
        return;
    }
    if arena == "kernel" {
        eprintln!("usysv-test-helper: {command} needs an arena file, not `kernel`");
        std::process::exit(2);
    }
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

/// The semaphore commands, on usysv or on the kernel.
mod sem {
    use std::os::unix::fs::FileExt;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use usysv_platform::usysv_core::perm::IPC_NOWAIT;
    use usysv_platform::usysv_core::sem::{SemBuf, SEM_UNDO};
    use usysv_platform::usysv_core::Errno;
    use usysv_platform::Ipc;
    use usysv_tests::SMALL_LIMITS;

    /// Where the semaphores live.
    enum World {
        Kernel,
        Usysv(Box<Ipc>),
    }

    use usysv_tests::kernel::last_errno;

    fn checked(ret: libc::c_long) -> Result<i32, i32> {
        if ret == -1 {
            Err(last_errno())
        } else {
            Ok(ret as i32)
        }
    }

    fn raw<T>(result: Result<T, Errno>) -> Result<T, i32> {
        result.map_err(Errno::raw)
    }

    impl World {
        fn open(arena: &str) -> World {
            if arena == "kernel" {
                return World::Kernel;
            }
            let ipc = Ipc::open(Path::new(arena), &SMALL_LIMITS, 0o600)
                .unwrap_or_else(|err| panic!("{err}"));
            World::Usysv(Box::new(ipc))
        }

        fn semget(&self, key: i32, nsems: i32, flags: i32) -> Result<i32, i32> {
            match self {
                // SAFETY: semget has no memory arguments.
                World::Kernel => checked(unsafe { libc::semget(key, nsems, flags) }.into()),
                World::Usysv(ipc) => raw(ipc.semget(key, nsems, flags)),
            }
        }

        fn semop(&self, id: i32, ops: &[SemBuf], timeout: Option<Duration>) -> Result<(), i32> {
            match (self, timeout) {
                (World::Kernel, None) => {
                    // SAFETY: `SemBuf` has the layout of `struct sembuf`; the
                    // kernel reads `ops.len()` of them.
                    let ret =
                        unsafe { libc::semop(id, ops.as_ptr() as *mut libc::sembuf, ops.len()) };
                    checked(ret.into()).map(drop)
                }
                (World::Kernel, Some(timeout)) => {
                    let ts = libc::timespec {
                        tv_sec: timeout.as_secs() as libc::time_t,
                        tv_nsec: timeout.subsec_nanos() as libc::c_long,
                    };
                    // SAFETY: as for semop; `ts` lives on this frame.
                    let ret = unsafe {
                        libc::syscall(
                            libc::SYS_semtimedop,
                            id,
                            ops.as_ptr(),
                            ops.len(),
                            &ts as *const libc::timespec,
                        )
                    };
                    checked(ret).map(drop)
                }
                (World::Usysv(ipc), None) => raw(ipc.semop(id, ops)),
                (World::Usysv(ipc), Some(timeout)) => raw(ipc.semtimedop(id, ops, timeout)),
            }
        }

        /// `semctl` with an integer argument (GETVAL, SETVAL, …) or none.
        fn ctl(&self, id: i32, num: i32, cmd: i32, arg: i32) -> Result<i32, i32> {
            match self {
                World::Kernel => {
                    // SAFETY: these commands read `union semun` as an integer.
                    let ret = unsafe { libc::semctl(id, num, cmd, libc::c_long::from(arg)) };
                    checked(ret.into())
                }
                World::Usysv(ipc) => match cmd {
                    libc::GETVAL => raw(ipc.semctl_getval(id, num)),
                    libc::SETVAL => raw(ipc.semctl_setval(id, num, arg)).map(|()| 0),
                    _ => panic!("semctl command {cmd}"),
                },
            }
        }

        fn getall(&self, id: i32) -> Result<Vec<u16>, i32> {
            match self {
                World::Kernel => {
                    let mut values = vec![0u16; 2];
                    // SAFETY: the probe's set has two semaphores.
                    let ret = unsafe { libc::semctl(id, 0, libc::GETALL, values.as_mut_ptr()) };
                    checked(ret.into()).map(|_| values)
                }
                World::Usysv(ipc) => raw(ipc.semctl_getall(id)),
            }
        }

        fn setall(&self, id: i32, values: &[u16; 2]) -> Result<(), i32> {
            match self {
                World::Kernel => {
                    // SAFETY: the probe's set has two semaphores; the kernel reads two.
                    let ret = unsafe { libc::semctl(id, 0, libc::SETALL, values.as_ptr()) };
                    checked(ret.into()).map(drop)
                }
                World::Usysv(ipc) => raw(ipc.semctl_setall(id, values)),
            }
        }

        /// `IPC_STAT`: the mode.
        fn stat_mode(&self, id: i32) -> Result<u32, i32> {
            match self {
                World::Kernel => {
                    // SAFETY: an all-zero semid_ds is a valid value.
                    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
                    // SAFETY: the kernel fills `ds` in.
                    let ret = unsafe {
                        libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds)
                    };
                    checked(ret.into()).map(|_| u32::from(ds.sem_perm.mode))
                }
                World::Usysv(ipc) => raw(ipc.semctl_stat(id)).map(|ds| ds.perm.mode),
            }
        }

        fn set_mode(&self, id: i32, mode: u32) -> Result<(), i32> {
            // SAFETY: no preconditions.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            match self {
                World::Kernel => {
                    // SAFETY: as in `stat_mode`.
                    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
                    ds.sem_perm.uid = uid;
                    ds.sem_perm.gid = gid;
                    ds.sem_perm.mode = mode as u16;
                    // SAFETY: the kernel reads `ds`.
                    let ret = unsafe {
                        libc::semctl(id, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds)
                    };
                    checked(ret.into()).map(drop)
                }
                World::Usysv(ipc) => raw(ipc.semctl_set(id, uid, gid, mode)),
            }
        }
    }

    fn errno_text(errno: i32) -> String {
        match Errno::from_raw(errno).name() {
            "E?" => format!("errno {errno}"),
            name => name.to_string(),
        }
    }

    fn outcome<T>(result: &Result<T, i32>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(errno) => format!("err {}", errno_text(*errno)),
        }
    }

    fn parse_op(text: &str) -> SemBuf {
        let mut parts = text.split(':');
        let num = parts.next().and_then(|p| p.parse().ok());
        let op = parts.next().and_then(|p| p.parse().ok());
        let (Some(sem_num), Some(sem_op)) = (num, op) else {
            panic!("bad operation {text:?}: NUM:OP[:nowait]");
        };
        let sem_flg = match parts.next() {
            None => 0,
            Some("nowait") => IPC_NOWAIT as i16,
            Some("undo") => SEM_UNDO,
            Some(other) => panic!("bad flag {other:?}"),
        };
        SemBuf {
            sem_num,
            sem_op,
            sem_flg,
        }
    }

    use usysv_tests::{install_sigusr1_handler, sigusr1_handled};

    use usysv_tests::kernel::{drop_effective_capabilities, CAP_IPC_OWNER, CAP_SYS_ADMIN};

    /// Runs a semaphore command; false if `command` is none of them.
    pub fn command(command: &str, arena: &str, rest: &[String]) -> bool {
        match command {
            "semop" => semop(arena, rest),
            "counter" => counter(arena, rest),
            "perm-probe" => perm_probe(arena, rest),
            _ => return false,
        }
        true
    }

    fn number<T: std::str::FromStr>(text: &str) -> T {
        text.parse()
            .unwrap_or_else(|_| panic!("{text:?} is not a number"))
    }

    fn semop(arena: &str, rest: &[String]) {
        let world = World::open(arena);
        let id = number(&rest[0]);
        let mut handler = false;
        let mut park = false;
        let mut timeout = None;
        let mut calls = vec![Vec::new()];
        for arg in &rest[1..] {
            if arg == "sigusr1" {
                handler = true;
            } else if arg == "park" {
                park = true;
            } else if arg == "then" {
                calls.push(Vec::new());
            } else if let Some(ms) = arg.strip_prefix("timeout=") {
                timeout = Some(Duration::from_millis(number(ms)));
            } else {
                calls.last_mut().unwrap().push(parse_op(arg));
            }
        }
        if handler {
            install_sigusr1_handler();
        }
        println!("ready");
        for ops in &calls {
            let start = Instant::now();
            let result = world.semop(id, ops, timeout);
            let elapsed = start.elapsed();
            let mut line = outcome(&result);
            if handler {
                line.push_str(&format!(" handled={}", sigusr1_handled()));
            }
            if timeout.is_some() {
                line.push_str(&format!(" ms={}", elapsed.as_millis()));
            }
            println!("{line}");
            if result.is_err() {
                break;
            }
        }
        if park {
            loop {
                std::thread::park();
            }
        }
    }

    fn counter(arena: &str, rest: &[String]) {
        let world = World::open(arena);
        let id = number(&rest[0]);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&rest[1])
            .unwrap();
        let rounds: u32 = number(&rest[2]);
        let check = |result: Result<(), i32>| {
            if let Err(errno) = result {
                println!("err {}", errno_text(errno));
                std::process::exit(1);
            }
        };
        let sem = |num, op, flg| SemBuf {
            sem_num: num,
            sem_op: op,
            sem_flg: flg,
        };
        println!("ready");
        check(world.semop(id, &[sem(1, -1, 0)], None));
        for _ in 0..rounds {
            // SEM_UNDO, as a mutex that a dying holder must release.
            check(world.semop(id, &[sem(0, -1, SEM_UNDO)], None));
            let mut bytes = [0u8; 8];
            file.read_exact_at(&mut bytes, 0).unwrap();
            let value = u64::from_le_bytes(bytes) + 1;
            // Give the others every chance to interleave, were they allowed to.
            std::thread::yield_now();
            file.write_all_at(&value.to_le_bytes(), 0).unwrap();
            check(world.semop(id, &[sem(0, 1, SEM_UNDO)], None));
        }
        println!("done");
    }

    fn perm_probe(arena: &str, rest: &[String]) {
        drop_effective_capabilities(&[CAP_IPC_OWNER, CAP_SYS_ADMIN]);
        // Opened after the drop: usysv reads the capabilities when it opens.
        let world = World::open(arena);
        let key: i32 = number(&rest[0]);
        let id: i32 = number(&rest[1]);
        let nowait = |num, op| SemBuf {
            sem_num: num,
            sem_op: op,
            sem_flg: IPC_NOWAIT as i16,
        };
        for mode in [None, Some(0o400), Some(0o200), Some(0o040), Some(0o004)]
            .into_iter()
            .chain([Some(0o070), Some(0o007), Some(0o077), Some(0o600)])
        {
            if let Some(mode) = mode {
                let set = world.set_mode(id, mode);
                println!("IPC_SET mode {mode:#o} = {}", outcome(&set));
            }
            for flags in [0, 0o400, 0o200, 0o600, 0o004, 0o040] {
                let got = world.semget(key, 0, flags);
                let same = match got {
                    Ok(got) if got == id => "the set".to_string(),
                    Ok(_) => "another set".to_string(),
                    Err(errno) => format!("err {}", errno_text(errno)),
                };
                println!("semget(KEY, 0, {flags:#o}) = {same}");
            }
            for ops in [
                &[nowait(0, 0)][..],
                &[nowait(0, 1)],
                &[nowait(0, -1)],
                &[nowait(0, 0), nowait(1, 1)],
                &[nowait(1, 0), nowait(5, 0)],
            ] {
                let result = world.semop(id, ops, None);
                println!("semop {ops:?} = {}", outcome(&result));
            }
            println!("GETVAL = {}", outcome(&world.ctl(id, 0, libc::GETVAL, 0)));
            println!("GETVAL 9 = {}", outcome(&world.ctl(id, 9, libc::GETVAL, 0)));
            println!("GETALL = {}", outcome(&world.getall(id)));
            println!("IPC_STAT = {:?}", world.stat_mode(id));
            println!("SETVAL 0 = {}", outcome(&world.ctl(id, 1, libc::SETVAL, 0)));
            println!("SETVAL 9 = {}", outcome(&world.ctl(id, 9, libc::SETVAL, 0)));
            println!(
                "SETVAL -1 = {}",
                outcome(&world.ctl(id, 1, libc::SETVAL, -1))
            );
            println!("SETALL = {}", outcome(&world.setall(id, &[0, 0])));
            println!("SETALL 40000 = {}", outcome(&world.setall(id, &[0, 40000])));
        }
        println!("end");
    }
}
