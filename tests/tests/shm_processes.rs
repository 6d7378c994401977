//! usysv's shared memory across real processes, each scenario run on usysv
//! and on the kernel with the same expectations: attachment counts across
//! fork, detach, exit and exec; a megabyte through a 10 KiB segment under two
//! semaphores; a list linked by offsets, extended by a process that attached
//! elsewhere; a write to a read-only attachment; and the segment files the
//! kernel itself guards. Every test carries a watchdog, and every helper
//! gives up after 60 seconds.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_PRIVATE};
use usysv_platform::Ipc;
use usysv_tests::kernel::last_errno;
use usysv_tests::{Helper, TempDir, Watchdog, SMALL_LIMITS};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-shm-helper");
const LIMIT: Duration = Duration::from_secs(60);

fn helper(args: &[&str]) -> Helper {
    Helper::spawn(Path::new(HELPER), args)
}

/// Where the segments live: a usysv arena, or the kernel (whose objects are
/// removed on drop).
enum World {
    Usysv {
        // Declared before `dir`: the arena goes before its directory.
        ipc: Box<Ipc>,
        dir: TempDir,
    },
    Kernel {
        segments: Vec<i32>,
        sets: Vec<i32>,
    },
}

fn checked(ret: libc::c_int) -> i32 {
    assert!(ret != -1, "errno {}", last_errno());
    ret
}

impl World {
    fn usysv(test: &str) -> World {
        let dir = TempDir::new(&format!("shmp-{test}"));
        let ipc = Ipc::open(&dir.join("arena"), &SMALL_LIMITS, 0o600).unwrap();
        World::Usysv {
            ipc: Box::new(ipc),
            dir,
        }
    }

    fn kernel() -> World {
        World::Kernel {
            segments: Vec::new(),
            sets: Vec::new(),
        }
    }

    /// The helpers' ARENA argument.
    fn arena(&self) -> String {
        match self {
            World::Usysv { ipc, .. } => ipc.file().path().to_str().unwrap().to_string(),
            World::Kernel { .. } => "kernel".to_string(),
        }
    }

    fn shmget(&mut self, size: usize) -> i32 {
        match self {
            World::Usysv { ipc, .. } => ipc.shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600).unwrap(),
            World::Kernel { segments, .. } => {
                // SAFETY: shmget takes no pointers.
                let id = checked(unsafe { libc::shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600) });
                segments.push(id);
                id
            }
        }
    }

    /// A set of two semaphores with values `values`.
    fn semget(&mut self, values: [i32; 2]) -> i32 {
        match self {
            World::Usysv { ipc, .. } => {
                let id = ipc.semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600).unwrap();
                for (num, value) in (0..).zip(values) {
                    ipc.semctl_setval(id, num, value).unwrap();
                }
                id
            }
            World::Kernel { sets, .. } => {
                // SAFETY: semget takes no pointers.
                let id = checked(unsafe { libc::semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600) });
                sets.push(id);
                for (num, value) in (0..).zip(values) {
                    // SAFETY: SETVAL reads `union semun` as an integer.
                    checked(unsafe {
                        libc::semctl(id, num, libc::SETVAL, libc::c_long::from(value))
                    });
                }
                id
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let World::Kernel { segments, sets } = self {
            for &id in segments.iter() {
                // SAFETY: IPC_RMID reads no buffer.
                unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            }
            for &id in sets.iter() {
                // SAFETY: IPC_RMID takes no argument.
                unsafe { libc::semctl(id, 0, libc::IPC_RMID, 0 as libc::c_long) };
            }
        }
    }
}

/// Runs `scenario` on the kernel and on usysv; returns both results.
fn both<T>(test: &str, scenario: impl Fn(&mut World) -> T) -> (T, T) {
    (
        scenario(&mut World::kernel()),
        scenario(&mut World::usysv(test)),
    )
}

#[test]
fn attachments_count_across_fork_detach_exit_and_exec() {
    let _watchdog = Watchdog::new("lifecycle", LIMIT);
    let (kernel, usysv) = both("lifecycle", |world| {
        let arena = world.arena();
        helper(&["lifecycle", &arena]).output()
    });
    assert!(kernel.contains("forked child: nattch 2"), "{kernel}");
    assert_eq!(kernel, usysv);
}

/// The file of segment `id`, made by this process, in `dir`.
fn segment_file(dir: &TempDir, id: i32) -> std::path::PathBuf {
    let (uid, _) = usysv_tests::euid_egid();
    dir.join(&format!("arena.shm.{}.{uid}", id % 32768))
}

#[test]
fn the_segment_file_is_emptied_when_the_segment_goes() {
    let _watchdog = Watchdog::new("files", LIMIT);
    let world = World::usysv("files");
    let World::Usysv { ipc, dir } = &world else {
        unreachable!()
    };
    let id = ipc.shmget(IPC_PRIVATE, 5000, IPC_CREAT | 0o640).unwrap();
    let file = segment_file(dir, id);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(meta.len(), 8192, "page-rounded");
    ipc.shmctl_set(id, meta.uid(), meta.gid(), 0o604).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o604);
    let attached = ipc.shmat(id, 0, 0).unwrap();
    ipc.shmctl_rmid(id).unwrap();
    attached.write(4999, b"x");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta.len(), meta.blocks() > 0),
        (8192, true),
        "kept while attached"
    );
    drop(attached);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta.len(), meta.blocks()),
        (0, 0),
        "emptied at the last detach, its pages freed"
    );
    assert_eq!(ipc.shmctl_usage().1.shm_rss, 0);

    // Removed through a handle that did not make it (and so keeps no
    // descriptor of it): emptied by name all the same.
    let id = ipc.shmget(IPC_PRIVATE, 5000, IPC_CREAT | 0o600).unwrap();
    ipc.shmat(id, 0, 0).unwrap().write(0, b"x");
    let other = Ipc::open(&dir.join("arena"), &SMALL_LIMITS, 0o600).unwrap();
    other.shmctl_rmid(id).unwrap();
    let meta = std::fs::metadata(segment_file(dir, id)).unwrap();
    assert_eq!(
        (meta.len(), meta.blocks()),
        (0, 0),
        "emptied by the other handle"
    );
}

#[test]
fn the_next_segment_of_a_slot_takes_the_emptied_file_and_reads_zeros() {
    let _watchdog = Watchdog::new("file reuse", LIMIT);
    let world = World::usysv("file-reuse");
    let World::Usysv { ipc, dir } = &world else {
        unreachable!()
    };
    let inode = |id: i32| std::fs::metadata(segment_file(dir, id)).unwrap().ino();
    // Indices are handed out cyclically: make segments until `slot`'s comes
    // round again (the last made, of mode `mode`, is returned), each other
    // one written all over and removed.
    let next_in_slot = |slot: i32, mode: i32| {
        for _ in 0..1000 {
            let id = ipc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | mode).unwrap();
            if id % 32768 == slot % 32768 {
                return id;
            }
            ipc.shmat(id, 0, 0).unwrap().write(0, &[0xee; 4096]);
            ipc.shmctl_rmid(id).unwrap();
        }
        panic!("the slot never came round");
    };
    let reads_zeros = |id: i32| {
        let mut bytes = [0xffu8; 4096];
        ipc.shmat(id, 0, 0).unwrap().read(0, &mut bytes);
        bytes.iter().all(|&b| b == 0)
    };

    let first = ipc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    let first_inode = inode(first);
    ipc.shmat(first, 0, 0).unwrap().write(0, &[0xee; 4096]);
    ipc.shmctl_rmid(first).unwrap();
    let id = next_in_slot(first, 0o600);
    assert_eq!(inode(id), first_inode, "the emptied file, taken again");
    assert!(reads_zeros(id), "a new segment reads as zeros");
    ipc.shmctl_rmid(id).unwrap();

    // Another mode: whoever opened the old file may not open the new
    // segment's, so the new segment gets a new file.
    let id = next_in_slot(first, 0o640);
    assert_ne!(
        inode(id),
        first_inode,
        "a file of another mode is not taken"
    );
    let widened = inode(id);
    // Nor is one whose mode IPC_SET changed, even back to the new one's.
    let (uid, gid) = usysv_tests::euid_egid();
    ipc.shmctl_set(id, uid, gid, 0o666).unwrap();
    ipc.shmctl_set(id, uid, gid, 0o640).unwrap();
    ipc.shmctl_rmid(id).unwrap();
    let id = next_in_slot(first, 0o640);
    assert_ne!(inode(id), widened, "a file IPC_SET changed is not taken");
    assert!(reads_zeros(id));

    // A file its segment's remover has not emptied (still holding bytes)
    // is not taken: the new segment gets a new file.
    let stale = ipc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
    let stale_file = segment_file(dir, stale);
    ipc.shmctl_rmid(stale).unwrap();
    std::fs::write(&stale_file, [0xee; 4096]).unwrap();
    let stale_inode = inode(stale);
    let id = next_in_slot(stale, 0o600);
    assert_ne!(inode(id), stale_inode);
    assert!(reads_zeros(id), "a new segment reads as zeros");
}

#[test]
fn the_kernel_refuses_segment_files_to_a_process_the_mode_excludes() {
    let _watchdog = Watchdog::new("file modes", LIMIT);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: becoming another user needs root");
        return;
    }
    let world = World::usysv("file-modes");
    let World::Usysv { ipc, dir } = &world else {
        unreachable!()
    };
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let probe = |mode: u32| {
        let id = ipc
            .shmget(IPC_PRIVATE, 100, IPC_CREAT | mode as i32)
            .unwrap();
        let file = segment_file(dir, id);
        helper(&["file-probe", file.to_str().unwrap()]).output()
    };
    assert_eq!(probe(0o600), "rw EACCES ro EACCES\n");
    assert_eq!(probe(0o604), "rw EACCES ro ok\n");
    assert_eq!(probe(0o606), "rw ok ro ok\n");
}

#[test]
fn a_megabyte_passes_through_a_small_segment_under_two_semaphores() {
    let _watchdog = Watchdog::new("writer and reader", LIMIT);
    const BYTES: &str = "1048576";
    let (kernel, usysv) = both("pipe", |world| {
        let shmid = world.shmget(10 * 1024).to_string();
        // Semaphore 0: the segment is empty (the writer's turn); 1: full.
        let semid = world.semget([1, 0]).to_string();
        let arena = world.arena();
        let mut reader = helper(&["reader", &arena, &shmid, &semid]);
        let mut writer = helper(&["writer", &arena, &shmid, &semid, BYTES, "7"]);
        (writer.output(), reader.output())
    });
    let (wrote, read) = &usysv;
    assert!(wrote.starts_with("wrote 1048576 "), "{wrote}");
    assert_eq!(wrote.replace("wrote", "read"), *read);
    assert_eq!(kernel, usysv);
}

#[test]
fn a_list_linked_by_offsets_is_walked_and_extended_at_another_address() {
    let _watchdog = Watchdog::new("offset list", LIMIT);
    let (kernel, usysv) = both("list", |world| {
        let shmid = world.shmget(64 * 1024).to_string();
        let arena = world.arena();
        let mut builder =
            Helper::spawn_with_input(Path::new(HELPER), &["list-build", &arena, &shmid, "5"]);
        let at = builder.read_line();
        let at = at.trim().strip_prefix("at ").unwrap().to_string();
        let extended = helper(&["list-extend", &arena, &shmid, &at, "3"]).output();
        writeln!(builder.0.stdin.as_mut().unwrap(), "go").unwrap();
        (extended, builder.output())
    });
    assert_eq!(usysv.0, "moved\nlist 1 2 3 4 5\nextended\n");
    assert_eq!(usysv.1, "list 1 2 3 4 5 6 7 8\n");
    assert_eq!(kernel, usysv);
}

#[test]
fn a_write_to_a_read_only_attachment_faults() {
    let _watchdog = Watchdog::new("read-only", LIMIT);
    let (kernel, usysv) = both("rdonly", |world| {
        let shmid = world.shmget(100).to_string();
        let mut probe = helper(&["rdonly-write", &world.arena(), &shmid]);
        let line = probe.read_line();
        let status = probe.0.wait().unwrap();
        (line, status.signal())
    });
    assert_eq!(usysv, ("read 0".to_string(), Some(libc::SIGSEGV)));
    assert_eq!(kernel, usysv);
}
