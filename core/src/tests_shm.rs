//! Shared memory bookkeeping, with threads standing for processes (the
//! mapping itself is the platform's).

use std::sync::atomic::Ordering;

use crate::perm::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use crate::shm::{AttachInfo, Placement, SHM_DEST, SHM_RDONLY};
use crate::tests::{
    assert_clean, fresh_namespace, leaked_arena, small_limits, spawn_process, TestHost, USER,
};
use crate::{Cred, Errno, Limits, Namespace};

const OTHER: Cred<'static> = Cred {
    euid: 2000,
    egid: 2000,
    ..USER
};

fn make(_: i32, _: u64, _: &crate::perm::IpcPerm) -> crate::errno::Result<Placement> {
    Ok(Placement::Host(77))
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
    let (mem, host, ns) = fresh_namespace();
    let id = ns.shmget(7, 5000, IPC_CREAT | 0o640, &USER, make).unwrap();
    let host_placed = AttachInfo {
        segsz: 5000,
        arena_offset: None,
        token: 77,
    };
    assert_eq!(ns.shm_attach_check(id, 0, &USER), Ok(host_placed));
    assert_eq!(ns.shm_attach_check(id, 0, &OTHER), Err(Errno::EACCES));
    assert_eq!(ns.shm_attach_check(-1, 0, &USER), Err(Errno::EINVAL));
    ns.shm_attached(id, 0x10000, 8192).unwrap();
    ns.shm_attached(id, 0x20000, 8192).unwrap();
    let other = spawn_process(&host, 2, mem, move |ns| {
        assert_eq!(ns.shm_attach_check(id, SHM_RDONLY, &USER), Ok(host_placed));
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

    assert_eq!(ns.shm_detach(0x10001, &mut |_, _| {}), Err(Errno::EINVAL));
    let detached = ns.shm_detach(0x10000, &mut |_, _| {}).unwrap();
    assert_eq!(
        (detached.shmid, detached.len, detached.destroyed),
        (id, 8192, false)
    );
    assert_eq!(ns.shm_detach(0x10000, &mut |_, _| {}), Err(Errno::EINVAL));

    // Removed while attached: marked, key freed, still usable by id.
    assert_eq!(ns.shm_remove(id, &USER), Ok(false));
    let ds = ns.shm_stat(id, &USER).unwrap();
    assert_eq!(ds.nattch, 1);
    assert_eq!(ds.perm.mode & SHM_DEST, SHM_DEST);
    assert_eq!(ds.perm.key, IPC_PRIVATE);
    assert_eq!(ns.shmget(7, 0, 0, &USER, make), Err(Errno::ENOENT));
    ns.shm_attached(id, 0x40000, 8192).unwrap();
    assert!(!ns.shm_detach(0x40000, &mut |_, _| {}).unwrap().destroyed);
    // The last detach destroys it.
    assert!(ns.shm_detach(0x20000, &mut |_, _| {}).unwrap().destroyed);
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
    assert_eq!(
        ns.shm_set(id, &USER, 1000, 1000, 0o644),
        Ok(77),
        "the token"
    );
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

#[test]
fn a_forked_child_inherits_attachments_and_exec_or_exit_ends_them() {
    let (mem, host, parent) = fresh_namespace();
    let id = parent
        .shmget(IPC_PRIVATE, 100, IPC_CREAT | 0o600, &USER, make)
        .unwrap();
    let nattch = || parent.shm_stat(id, &USER).unwrap().nattch;
    // The namespace that forks: a second registration of process 1.
    let forking = Namespace::open(mem, host.sibling(1)).unwrap();
    assert_eq!(forking.fork_prepare(), Ok(None), "nothing to inherit");
    forking.shm_attached(id, 0x1000, 4096).unwrap();
    let reserved = forking.fork_prepare().unwrap().unwrap();
    assert_eq!(nattch(), 2, "the child's copy counts from the fork");
    assert_eq!(parent.processes(), 2);
    forking.host().fork_into(2);
    forking.fork_child(reserved).unwrap();
    // A child that already claimed its slot is not given up by the parent.
    parent.fork_failed(reserved);
    assert_eq!(nattch(), 2);
    assert_eq!(parent.processes(), 2);
    let child = forking;
    assert_eq!(child.shm_detach(0x1000, &mut |_, _| {}).unwrap().shmid, id);
    let ds = parent.shm_stat(id, &USER).unwrap();
    assert_eq!((ds.nattch, ds.lpid), (1, 2));
    assert_eq!(
        child.shm_detach(0x1000, &mut |_, _| {}),
        Err(Errno::EINVAL),
        "done once"
    );

    // A failed fork gives the copies up.
    let reserved = parent.fork_prepare().unwrap().unwrap();
    assert_eq!(nattch(), 2);
    parent.fork_failed(reserved);
    assert_eq!(nattch(), 1);
    assert_eq!(parent.processes(), 2);

    // exec: the new image adopts the slot, the old image's mappings end.
    child.shm_attached(id, 0x2000, 4096).unwrap();
    assert_eq!(nattch(), 2);
    child.host().exec();
    let execed = Namespace::open(mem, child.host().clone()).unwrap();
    assert_eq!(nattch(), 1);
    assert_ne!(
        execed.tag().unwrap(),
        child.tag().unwrap(),
        "a new generation"
    );
    drop(child);
    assert_eq!(parent.processes(), 2, "the old image left nothing to free");

    // exit: attachments end, and a removed segment goes with the last.
    assert_eq!(parent.shm_remove(id, &USER), Ok(false));
    execed.shm_attached(id, 0x3000, 4096).unwrap();
    execed.exit(true);
    assert_eq!(nattch(), 1);
    assert_eq!(parent.processes(), 1);
    parent.exit(false);
    assert_eq!(parent.shm_stat(id, &USER), Err(Errno::EINVAL), "destroyed");
    assert_eq!(parent.processes(), 1, "other threads may still run");
    assert_clean(&parent);
}

#[test]
fn segments_placed_in_the_arena_are_zeroed_shared_and_freed() {
    let (mem, host, ns) = fresh_namespace();
    let before = ns.heap_used();
    let in_arena = |_: i32, _: u64, _: &crate::perm::IpcPerm| Ok(Placement::Arena);
    let id = ns
        .shmget(5, 10_000, IPC_CREAT | 0o600, &USER, in_arena)
        .unwrap();
    let info = ns.shm_attach_check(id, 0, &USER).unwrap();
    assert_eq!(info.segsz, 10_000);
    let at = info.arena_offset.expect("placed in the arena") as usize;
    let words = &mem[at / 4..(at + 10_000) / 4];
    assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
    ns.shm_attached(id, at as u64, 10_000).unwrap();
    words[2499].store(0xfeed, Ordering::Relaxed);
    let seen = spawn_process(&host, 2, mem, move |ns| {
        let at = ns.shm_attach_check(id, SHM_RDONLY, &USER).unwrap();
        mem[at.arena_offset.unwrap() as usize / 4 + 2499].load(Ordering::Relaxed)
    })
    .join()
    .unwrap();
    assert_eq!(seen, 0xfeed);
    assert!(ns.heap_used() >= before + 10_000);
    assert_eq!(ns.shm_remove(id, &USER), Ok(false));
    assert!(ns.shm_detach(at as u64, &mut |_, _| {}).unwrap().destroyed);
    assert_eq!(ns.heap_used(), before);
    // Too big for the heap: the call fails and leaves nothing.
    assert_eq!(
        ns.shmget(IPC_PRIVATE, 4 << 20, IPC_CREAT | 0o600, &USER, in_arena),
        Err(Errno::ENOMEM)
    );
    assert_eq!(ns.shm_usage().1.used_ids, 0);
    assert_eq!(ns.heap_used(), before);
    assert_clean(&ns);
}

#[test]
fn a_mapping_over_part_of_an_attachment_leaves_pieces_ended_together() {
    let ns = Namespace::create(leaked_arena(), &small_limits(), TestHost::family()).unwrap();
    let id = ns
        .shmget(IPC_PRIVATE, 3 * 4096, IPC_CREAT | 0o600, &USER, make)
        .unwrap();
    let nattch = || ns.shm_stat(id, &USER).unwrap().nattch;
    let detach = |addr: u64| {
        let mut unmapped = Vec::new();
        let result = ns.shm_detach(addr, &mut |at, len| unmapped.push((at, len)));
        unmapped.sort();
        result.map(|_| unmapped)
    };
    // Over the end: the head stays, one piece.
    ns.shm_attached(id, 0x10000, 0x3000).unwrap();
    assert_eq!(ns.shm_unmapped(0x12000, 0x1000), Ok(1));
    assert_eq!(nattch(), 1);
    assert!(ns.shm_stat(id, &USER).unwrap().dtime > 0);
    assert_eq!(detach(0x10000), Ok(vec![(0x10000, 0x2000)]));
    // Over the middle: two pieces, both ended by the base, neither by its own start.
    ns.shm_attached(id, 0x20000, 0x3000).unwrap();
    assert_eq!(ns.shm_unmapped(0x21000, 0x1000), Ok(1));
    assert_eq!(nattch(), 2);
    assert_eq!(detach(0x22000), Err(Errno::EINVAL));
    assert_eq!(
        detach(0x20000),
        Ok(vec![(0x20000, 0x1000), (0x22000, 0x1000)])
    );
    assert_eq!(nattch(), 0);
    // Over the start: the rest counts, and is ended by the base still.
    ns.shm_attached(id, 0x30000, 0x3000).unwrap();
    assert_eq!(ns.shm_unmapped(0x2f000, 0x2000), Ok(1));
    assert_eq!(nattch(), 1);
    assert_eq!(detach(0x31000), Err(Errno::EINVAL));
    assert_eq!(detach(0x30000), Ok(vec![(0x31000, 0x2000)]));
    ns.shm_attached(id, 0x30000, 0x3000).unwrap();
    // Wholly covered: gone; a removed segment goes with it.
    assert_eq!(ns.shm_remove(id, &USER), Ok(false));
    assert_eq!(ns.shm_unmapped(0x0, 0x100000), Ok(1));
    assert_eq!(ns.shm_stat(id, &USER), Err(Errno::EINVAL));
    assert_clean(&ns);
}

#[test]
fn a_corrupt_piece_is_refused_rather_than_unmapped() {
    let (mem, _, ns) = fresh_namespace();
    let id = ns
        .shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600, &USER, make)
        .unwrap();
    ns.shm_attached(id, 0x7770_0000, 4096).unwrap();
    // The record: addr (lo, hi), len (lo, hi), base (lo, hi).
    let record = mem
        .windows(6)
        .position(|w| {
            let v: Vec<u32> = w.iter().map(|x| x.load(Ordering::Relaxed)).collect();
            v == [0x7770_0000, 0, 4096, 0, 0x7770_0000, 0]
        })
        .expect("the attachment record");
    mem[record + 2].store(0x4000_0000, Ordering::Relaxed);
    let mut unmapped = Vec::new();
    let result = ns.shm_detach(0x7770_0000, &mut |at, len| unmapped.push((at, len)));
    assert_eq!(result, Err(Errno::CORRUPT));
    assert!(
        unmapped.is_empty(),
        "nothing outside the segment is unmapped"
    );
}
