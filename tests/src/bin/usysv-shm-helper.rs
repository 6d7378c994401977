//! A process for the shared memory tests (`shm_processes.rs`) to start.
//!
//! usage: usysv-shm-helper COMMAND ARENA [ARGS]
//!
//! ARENA is a usysv arena file, or `kernel` for the kernel's own System V
//! shared memory and semaphores (through libc). Every command prints its
//! results one line at a time.
//!
//!   lifecycle ARENA        make a 10,000-byte segment and attach it, then
//!                          fork children that report `shm_nattch` as they
//!                          inherit it, detach it, exit, exec this helper
//!                          (`nattch`), and see it removed; one line per
//!                          step
//!   nattch ARENA ID        print "nattch N" for segment ID
//!   writer ARENA SHMID SEMID BYTES SEED
//!                          move BYTES pseudo-random bytes (from SEED) through
//!                          segment SHMID in chunks of up to its size less 8,
//!                          taking semaphore 0 of set SEMID ("empty") before
//!                          each chunk and giving semaphore 1 ("full") after;
//!                          a chunk of length 0 ends; print "wrote N SUM"
//!   reader ARENA SHMID SEMID
//!                          the other side: print "read N SUM"
//!   list-build ARENA SHMID N
//!                          attach where the system chooses, build a list of
//!                          N nodes (values 1..=N) linked by offsets from the
//!                          segment's start, print "at ADDR", wait for a line
//!                          on stdin, then print "list V V …"
//!   list-extend ARENA SHMID ADDR M
//!                          attach elsewhere than ADDR (print "moved" if so),
//!                          print "list V V …", append M nodes (values
//!                          following the last) and print "extended"
//!   rdonly-write ARENA SHMID
//!                          attach read-only, print "read B" (the first
//!                          byte), then write to it: the write faults
//!   file-probe PATH        become uid/gid 65534 and open PATH read-write and
//!                          read-only; print "rw RESULT ro RESULT" (ok or
//!                          ENAME)
//!
//! Every command gives up after 60 seconds (SIGALRM), so a helper that a broken
//! test forgets can never outlive it for long.

use std::io::BufRead;
use std::path::Path;
use std::ptr::NonNull;

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_PRIVATE};
use usysv_platform::usysv_core::sem::SemBuf;
use usysv_platform::usysv_core::shm::{SHM_DEST, SHM_RDONLY};
use usysv_platform::usysv_core::Errno;
use usysv_platform::Ipc;
use usysv_tests::kernel::last_errno;
use usysv_tests::{errno_name, Rng, SMALL_LIMITS};

/// Where the segments live.
enum World {
    Kernel,
    Usysv(Box<Ipc>),
}

fn raw<T>(result: Result<T, Errno>) -> Result<T, i32> {
    result.map_err(Errno::raw)
}

fn checked(ret: libc::c_int) -> Result<i32, i32> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

impl World {
    fn open(arena: &str) -> World {
        if arena == "kernel" {
            return World::Kernel;
        }
        let ipc =
            Ipc::open(Path::new(arena), &SMALL_LIMITS, 0o600).unwrap_or_else(|err| panic!("{err}"));
        World::Usysv(Box::new(ipc))
    }

    fn shmget(&self, size: usize) -> Result<i32, i32> {
        match self {
            // SAFETY: shmget takes no pointers.
            World::Kernel => checked(unsafe { libc::shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600) }),
            World::Usysv(ipc) => raw(ipc.shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600)),
        }
    }

    /// Attaches where the system chooses: the start of the mapping.
    fn attach(&self, shmid: i32, flags: i32) -> Result<NonNull<u8>, i32> {
        let at = match self {
            World::Kernel => {
                // SAFETY: a null address lets the kernel choose; nothing is replaced.
                let at = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
                if at as isize == -1 {
                    return Err(last_errno());
                }
                at.cast::<u8>()
            }
            // SAFETY: without SHM_REMAP nothing mapped is replaced.
            World::Usysv(ipc) => raw(unsafe { ipc.shmat_raw(shmid, 0, flags) })?,
        };
        NonNull::new(at).ok_or(libc::EINVAL)
    }

    fn detach(&self, at: NonNull<u8>) -> Result<(), i32> {
        match self {
            // SAFETY: the caller no longer uses the attachment.
            World::Kernel => checked(unsafe { libc::shmdt(at.as_ptr().cast()) }).map(drop),
            // SAFETY: as above.
            World::Usysv(ipc) => raw(unsafe { ipc.shmdt_raw(at.as_ptr()) }),
        }
    }

    /// `shm_nattch` and `shm_perm.mode`.
    fn stat(&self, shmid: i32) -> Result<(u64, u32), i32> {
        match self {
            World::Kernel => {
                // SAFETY: shmid_ds is plain data; IPC_STAT fills it.
                let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
                // SAFETY: `ds` is a valid shmid_ds to write.
                checked(unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) })?;
                Ok((ds.shm_nattch, u32::from(ds.shm_perm.mode)))
            }
            World::Usysv(ipc) => {
                let ds = raw(ipc.shmctl_stat(shmid))?;
                Ok((ds.nattch, ds.perm.mode))
            }
        }
    }

    fn rmid(&self, shmid: i32) -> Result<(), i32> {
        match self {
            // SAFETY: IPC_RMID reads no buffer.
            World::Kernel => {
                checked(unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) })
                    .map(drop)
            }
            World::Usysv(ipc) => raw(ipc.shmctl_rmid(shmid)),
        }
    }

    fn semop(&self, semid: i32, num: u16, op: i16) {
        let buf = SemBuf {
            sem_num: num,
            sem_op: op,
            sem_flg: 0,
        };
        let result = match self {
            World::Kernel => {
                let mut sop = libc::sembuf {
                    sem_num: num,
                    sem_op: op,
                    sem_flg: 0,
                };
                // SAFETY: one valid sembuf.
                checked(unsafe { libc::semop(semid, &mut sop, 1) }).map(drop)
            }
            World::Usysv(ipc) => raw(ipc.semop(semid, &[buf])),
        };
        result.unwrap_or_else(|errno| fail(&format!("semop: {}", errno_name(errno))));
    }
}

fn fail(what: &str) -> ! {
    println!("err {what}");
    std::process::exit(1);
}

fn show<T>(result: Result<T, i32>, ok: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(value) => ok(value),
        Err(errno) => format!("err {}", errno_name(errno)),
    }
}

fn nattch_line(world: &World, shmid: i32) -> String {
    show(world.stat(shmid), |(nattch, _)| format!("nattch {nattch}"))
}

/// Forks; the child runs `child` and exits with `exit` (so exit handlers
/// run). The parent waits for it and returns its exit status.
fn in_child(child: impl FnOnce()) -> i32 {
    // SAFETY: the helper is single-threaded, so the child may run anything.
    match unsafe { libc::fork() } {
        -1 => fail("fork"),
        0 => {
            child();
            std::process::exit(0);
        }
        pid => {
            let mut status = 0;
            // SAFETY: waits for the child just made.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            status
        }
    }
}

fn lifecycle(world: &World, arena: &str) {
    let shmid = world
        .shmget(10_000)
        .unwrap_or_else(|e| fail(&errno_name(e)));
    let at = world
        .attach(shmid, 0)
        .unwrap_or_else(|e| fail(&errno_name(e)));
    println!("attached: {}", nattch_line(world, shmid));
    in_child(|| println!("forked child: {}", nattch_line(world, shmid)));
    println!("after the child exited: {}", nattch_line(world, shmid));
    in_child(|| {
        let detached = show(world.detach(at), |()| "ok".into());
        println!("child detached {detached}: {}", nattch_line(world, shmid));
        let again = show(world.detach(at), |()| "ok".into());
        println!("child detached again: {again}");
    });
    println!("after the child detached: {}", nattch_line(world, shmid));
    in_child(|| {
        let helper = std::ffi::CString::new(
            std::env::current_exe()
                .unwrap()
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let args = [
            helper.clone(),
            c"nattch".into(),
            std::ffi::CString::new(arena).unwrap(),
            std::ffi::CString::new(shmid.to_string()).unwrap(),
        ];
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        print!("exec'd child: ");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        // SAFETY: `argv` is a null-terminated array of C strings that
        // outlive the call; execv only returns on failure.
        unsafe { libc::execv(helper.as_ptr(), argv.as_ptr()) };
        fail("execv");
    });
    println!(
        "after the exec'd child exited: {}",
        nattch_line(world, shmid)
    );
    println!("removed: {}", show(world.rmid(shmid), |()| "ok".into()));
    in_child(|| {
        let line = show(world.stat(shmid), |(nattch, mode)| {
            format!("nattch {nattch} dest {}", mode & SHM_DEST != 0)
        });
        println!("child of a removed segment: {line}");
    });
    println!("last detach: {}", show(world.detach(at), |()| "ok".into()));
    println!("then: {}", nattch_line(world, shmid));
}

/// The bytes the writer sends: a pseudo-random stream from `seed`.
fn stream_byte(rng: &mut Rng) -> u8 {
    rng.next_u64() as u8
}

fn checksum(sum: u64, byte: u8) -> u64 {
    sum.wrapping_mul(31).wrapping_add(u64::from(byte))
}

/// Segment layout for the writer and reader: the chunk's length in the
/// first 8 bytes, then the chunk.
const HEADER: usize = 8;

fn segment_size(world: &World, shmid: i32) -> usize {
    match world {
        World::Kernel => {
            // SAFETY: shmid_ds is plain data; IPC_STAT fills it.
            let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: `ds` is a valid shmid_ds to write.
            checked(unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) })
                .unwrap_or_else(|e| fail(&errno_name(e)));
            ds.shm_segsz
        }
        World::Usysv(ipc) => ipc.shmctl_stat(shmid).unwrap().segsz as usize,
    }
}

fn writer(world: &World, shmid: i32, semid: i32, total: usize, seed: u64) {
    let room = segment_size(world, shmid) - HEADER;
    let at = world
        .attach(shmid, 0)
        .unwrap_or_else(|e| fail(&errno_name(e)));
    let mut rng = Rng::new(seed);
    let (mut sent, mut sum) = (0, 0u64);
    loop {
        let len = room.min(total - sent);
        world.semop(semid, 0, -1);
        // SAFETY: the attachment holds HEADER + room bytes, and the
        // semaphores give this process sole use of them until the V below.
        unsafe {
            let data = std::slice::from_raw_parts_mut(at.as_ptr().add(HEADER), len);
            for byte in data.iter_mut() {
                *byte = stream_byte(&mut rng);
                sum = checksum(sum, *byte);
            }
            at.as_ptr().cast::<u64>().write(len as u64);
        }
        world.semop(semid, 1, 1);
        sent += len;
        if len == 0 {
            break;
        }
    }
    println!("wrote {sent} {sum:x}");
}

fn reader(world: &World, shmid: i32, semid: i32) {
    let at = world
        .attach(shmid, SHM_RDONLY)
        .unwrap_or_else(|e| fail(&errno_name(e)));
    let (mut received, mut sum) = (0, 0u64);
    loop {
        world.semop(semid, 1, -1);
        // SAFETY: as in `writer`: the semaphores hand the bytes over.
        let len = unsafe { at.as_ptr().cast::<u64>().read() } as usize;
        // SAFETY: as above; `len` is at most the room the writer used.
        let data = unsafe { std::slice::from_raw_parts(at.as_ptr().add(HEADER), len) };
        sum = data.iter().fold(sum, |sum, &byte| checksum(sum, byte));
        received += len;
        world.semop(semid, 0, 1);
        if len == 0 {
            break;
        }
    }
    println!("read {received} {sum:x}");
}

/// The list's header at the segment's start: the offset of the first node,
/// the offset of the last, and the next free offset; nodes follow, each
/// `[next offset, value]` (offset 0: none).
mod list {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    const HEAD: usize = 0;
    const TAIL: usize = 1;
    const FREE: usize = 2;
    const FIRST_NODE: u32 = 16;

    pub fn append(words: &[AtomicU32], value: u32) {
        let free = match words[FREE].load(Relaxed) {
            0 => FIRST_NODE,
            free => free,
        };
        let node = free as usize / 4;
        words[node].store(0, Relaxed);
        words[node + 1].store(value, Relaxed);
        match words[TAIL].load(Relaxed) {
            0 => words[HEAD].store(free, Relaxed),
            tail => words[tail as usize / 4].store(free, Relaxed),
        }
        words[TAIL].store(free, Relaxed);
        words[FREE].store(free + 8, Relaxed);
    }

    pub fn values(words: &[AtomicU32]) -> Vec<u32> {
        let mut values = Vec::new();
        let mut at = words[HEAD].load(Relaxed);
        while at != 0 && values.len() < words.len() {
            values.push(words[at as usize / 4 + 1].load(Relaxed));
            at = words[at as usize / 4].load(Relaxed);
        }
        values
    }

    pub fn show(values: &[u32]) -> String {
        let shown: Vec<String> = values.iter().map(u32::to_string).collect();
        format!("list {}", shown.join(" "))
    }
}

fn words(at: NonNull<u8>, bytes: usize) -> &'static [std::sync::atomic::AtomicU32] {
    // SAFETY: the attachment is page-aligned, holds `bytes` bytes and stays
    // until the process exits; atomics allow the other process's accesses.
    unsafe { std::slice::from_raw_parts(at.as_ptr().cast(), bytes / 4) }
}

fn main() {
    // SAFETY: alarm only schedules SIGALRM, whose default action ends the process.
    unsafe { libc::alarm(60) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, arena, rest @ ..] = args.as_slice() else {
        eprintln!("usage: usysv-shm-helper COMMAND ARENA [ARGS]");
        std::process::exit(2);
    };
    let number = |i: usize| -> i64 { rest[i].parse().expect("a number") };
    if command == "file-probe" {
        file_probe(arena);
        return;
    }
    let world = World::open(arena);
    match command.as_str() {
        "lifecycle" => lifecycle(&world, arena),
        "nattch" => println!("{}", nattch_line(&world, number(0) as i32)),
        "writer" => writer(
            &world,
            number(0) as i32,
            number(1) as i32,
            number(2) as usize,
            number(3) as u64,
        ),
        "reader" => reader(&world, number(0) as i32, number(1) as i32),
        "list-build" => {
            let shmid = number(0) as i32;
            let at = world
                .attach(shmid, 0)
                .unwrap_or_else(|e| fail(&errno_name(e)));
            let words = words(at, segment_size(&world, shmid));
            for value in 1..=number(1) as u32 {
                list::append(words, value);
            }
            println!("at {}", at.as_ptr() as usize);
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).unwrap();
            println!("{}", list::show(&list::values(words)));
        }
        "list-extend" => {
            let shmid = number(0) as i32;
            let size = segment_size(&world, shmid);
            // Occupy the region the system chose for the builder, if free
            // here, so that this attachment lands elsewhere.
            let builder = number(1) as usize;
            // SAFETY: an anonymous reservation at a hint address; nothing is
            // replaced (no MAP_FIXED).
            unsafe {
                libc::mmap(
                    builder as *mut libc::c_void,
                    size,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            let at = world
                .attach(shmid, 0)
                .unwrap_or_else(|e| fail(&errno_name(e)));
            if at.as_ptr() as usize != builder {
                println!("moved");
            }
            let words = words(at, size);
            let values = list::values(words);
            println!("{}", list::show(&values));
            let last = values.last().copied().unwrap_or(0);
            for value in last + 1..=last + number(2) as u32 {
                list::append(words, value);
            }
            println!("extended");
        }
        "rdonly-write" => {
            let at = world
                .attach(number(0) as i32, SHM_RDONLY)
                .unwrap_or_else(|e| fail(&errno_name(e)));
            // SAFETY: the attachment holds at least one byte.
            println!("read {}", unsafe { at.as_ptr().read_volatile() });
            // SAFETY: a write to a read-only mapping faults: the point of the
            // command. No Rust reference to the byte exists.
            unsafe { at.as_ptr().write_volatile(1) };
            println!("wrote");
        }
        other => {
            eprintln!("usysv-shm-helper: unknown command {other}");
            std::process::exit(2);
        }
    }
}

fn file_probe(path: &str) {
    let path = std::ffi::CString::new(path).unwrap();
    // SAFETY: dropping privileges takes no pointers.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(65534) == 0
            && libc::setuid(65534) == 0
    };
    if !dropped {
        fail("could not become 65534");
    }
    let probe = |flags| {
        // SAFETY: `path` is a NUL-terminated string.
        let fd = unsafe { libc::open(path.as_ptr(), flags) };
        if fd < 0 {
            return errno_name(last_errno());
        }
        // SAFETY: `fd` was just opened.
        unsafe { libc::close(fd) };
        "ok".to_string()
    };
    println!("rw {} ro {}", probe(libc::O_RDWR), probe(libc::O_RDONLY));
}
