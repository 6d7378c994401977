//! Shared memory bookkeeping, with threads standing for processes (the
//! mapping itself is the platform's).

use crate::perm::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use crate::shm::{SHM_DEST, SHM_RDONLY};
use crate::tests::{assert_clean, leaked_arena, small_limits, spawn_process, TestHost, USER};
use crate::{Cred, Errno, Limits, Namespace};

const OTHER: Cred<'static> = Cred {
    euid: 2000,
    egid: 2000,
    ..USER
};

fn make(_: i32, _: u64, _: &crate::perm::IpcPerm) -> crate::errno::Result<()> {
    Ok(())
}

#[test]
fn shmget_checks_sizes_and_limits_like_the_kernel() {
    let limits = Limits {
        shmmax: 1 << 20,
        shmall: 300,
        ..small_limits()
    };
    let ns = Namespace::create(leaked_arena(), &limits, TestHost::family()).unwrap();
    let create = IPC_CREAT | 0o600;
    assert_eq!(
        ns.shmget(IPC_PRIVATE, 0, create, &USER, make),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ns.shmget(IPC_PRIVATE, (1 << 20) + 1, create, &USER, make),
        Err(Errno::EINVAL)
    );
    let id = ns.shmget(42, 1 << 20, create, &USER, make).unwrap();
    let ds = ns.shm_stat(id, &USER).unwrap();
    assert_eq!((ds.segsz, ds.nattch, ds.cpid, ds.lpid), (1 << 20, 0, 1, 0));
    assert_eq!((ds.atime, ds.dtime), (0, 0));
    // A failure to make the bytes fails the call and leaves nothing.
    assert_eq!(
        ns.shmget(IPC_PRIVATE, 10, create, &USER, |_, _, _| Err(Errno::ENOMEM)),
        Err(Errno::ENOMEM)
    );
    // 256 pages used of 300: 45 more pages do not fit, 44 do.
    assert_eq!(
        ns.shmget(IPC_PRIVATE, 45 * 4096, create, &USER, make),
        Err(Errno::ENOSPC)
    );
    let small = ns
        .shmget(IPC_PRIVATE, 44 * 4096 - 1, create, &USER, make)
        .unwrap();
    assert_eq!(ns.shm_usage().1.shm_tot, 300);
    // Opening: a smaller or zero size is fine, a larger one is not.
    assert_eq!(ns.shmget(42, 0, 0, &USER, make), Ok(id));
    assert_eq!(
        ns.shmget(42, (1 << 20) + 1, 0, &USER, make),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ns.shmget(42, 10, create | IPC_EXCL, &USER, make),
        Err(Errno::EEXIST)
    );
    assert_eq!(ns.shmget(43, 10, 0, &USER, make), Err(Errno::ENOENT));
    // The size is checked before permission, as in Linux (`more_checks`).
    assert_eq!(
        ns.shmget(42, (1 << 20) + 1, 0, &OTHER, make),
        Err(Errno::EINVAL)
    );
    assert_eq!(ns.shmget(42, 0, 0o400, &OTHER, make), Err(Errno::EACCES));
    assert_eq!(ns.shm_usage().1.used_ids, 2);
    assert_eq!(ns.shm_remove(small, &USER), Ok(true));
    assert_eq!(ns.shm_remove(id, &OTHER), Err(Errno::EPERM));
    assert_eq!(ns.shm_remove(id, &USER), Ok(true));
    assert_eq!(ns.shm_usage().1.shm_tot, 0);
    assert_clean(&ns);
}

#[test]
fn attachments_count_across_processes_and_removal_waits_for_the_last() {
    let mem = leaked_arena();
    let host = TestHost::family();
    let ns = Namespace::create(mem, &small_limits(), host.clone()).unwrap();
    let id = ns.shmget(7, 5000, IPC_CREAT | 0o640, &USER, make).unwrap();
    assert_eq!(ns.shm_attach_check(id, 0, &USER), Ok(5000));
    assert_eq!(ns.shm_attach_check(id, 0, &OTHER), Err(Errno::EACCES));
    assert_eq!(ns.shm_attach_check(-1, 0, &USER), Err(Errno::EINVAL));
    ns.shm_attached(id, 0x10000, 8192).unwrap();
    ns.shm_attached(id, 0x20000, 8192).unwrap();
    let other = spawn_process(&host, 2, mem, move |ns| {
        assert_eq!(ns.shm_attach_check(id, SHM_RDONLY, &USER), Ok(5000));
        ns.shm_attached(id, 0x30000, 8192).unwrap();
        let ds = ns.shm_stat(id, &USER).unwrap();
        (ds.nattch, ds.lpid)
    })
    .join()
    .unwrap();
    // The other process left (its namespace dropped): its attachment ended.
    assert_eq!(other, (3, 2));
    let ds = ns.shm_stat(id, &USER).unwrap();
    assert_eq!((ds.nattch, ds.lpid), (2, 2));
    assert!(ds.atime > 0 && ds.dtime > 0);

    assert_eq!(ns.shm_detach(0x10001), Err(Errno::EINVAL));
    let detached = ns.shm_detach(0x10000).unwrap();
    assert_eq!(
        (detached.shmid, detached.len, detached.destroyed),
        (id, 8192, false)
    );
    assert_eq!(ns.shm_detach(0x10000), Err(Errno::EINVAL));

    // Removed while attached: marked, key freed, still usable by id.
    assert_eq!(ns.shm_remove(id, &USER), Ok(false));
    let ds = ns.shm_stat(id, &USER).unwrap();
    assert_eq!(ds.nattch, 1);
    assert_eq!(ds.perm.mode & SHM_DEST, SHM_DEST);
    assert_eq!(ds.perm.key, IPC_PRIVATE);
    assert_eq!(ns.shmget(7, 0, 0, &USER, make), Err(Errno::ENOENT));
    ns.shm_attached(id, 0x40000, 8192).unwrap();
    assert!(!ns.shm_detach(0x40000).unwrap().destroyed);
    // The last detach destroys it.
    assert!(ns.shm_detach(0x20000).unwrap().destroyed);
    assert_eq!(ns.shm_stat(id, &USER), Err(Errno::EINVAL));
    assert_eq!(ns.shm_attached(id, 0x50000, 8192), Err(Errno::EIDRM));
    assert_eq!(ns.shm_usage().1, Default::default());
    assert_clean(&ns);
}

#[test]
fn shmctl_set_lock_and_info() {
    let ns = Namespace::create(leaked_arena(), &small_limits(), TestHost::family()).unwrap();
    let id = ns
        .shmget(IPC_PRIVATE, 100, IPC_CREAT | 0o600, &USER, make)
        .unwrap();
    assert_eq!(ns.shm_set(id, &OTHER, 1, 1, 0o644), Err(Errno::EPERM));
    ns.shm_set(id, &USER, 1000, 1000, 0o644).unwrap();
    assert_eq!(ns.shm_stat(id, &OTHER).unwrap().perm.mode, 0o644);
    assert_eq!(ns.shm_lock(id, &OTHER, true), Err(Errno::EPERM));
    ns.shm_lock(id, &USER, true).unwrap();
    assert_eq!(ns.shm_stat(id, &USER).unwrap().perm.mode, 0o2644);
    ns.shm_lock(id, &USER, false).unwrap();
    assert_eq!(ns.shm_stat(id, &USER).unwrap().perm.mode, 0o644);
    let (index, info) = ns.shm_info();
    assert_eq!(index, id % 32768);
    assert_eq!((info.shmmin, info.shmmni), (1, 128));
    let (at, ds) = ns.shm_stat_index(id % 32768, false, &USER).unwrap();
    assert_eq!((at, ds.segsz), (id, 100));
    assert_eq!(ns.shm_remove(id, &USER), Ok(true));
}
