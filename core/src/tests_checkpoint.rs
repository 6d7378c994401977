//! Checkpoint and restart of undo lists: held, kept at death, handed over
//! once, refused when they differ, and safe when the importer dies.

use std::sync::atomic::AtomicU32;
use std::vec::Vec;

use crate::checkpoint::Adjustment;
use crate::host::ProcessId;
use crate::lock::Txn;
use crate::perm::IPC_PRIVATE;
use crate::sem::{SemBuf, SemQuery, SEM_UNDO};
use crate::tests::{
    assert_clean, die_inside, fresh_namespace, park_dead, spawn_process, TestHost, USER,
};
use crate::*;

const UNDO: i16 = SEM_UNDO;

fn op(sem_num: u16, sem_op: i16) -> SemBuf {
    SemBuf {
        sem_num,
        sem_op,
        sem_flg: UNDO,
    }
}

fn values(ns: &Namespace<'_, TestHost>, id: i32) -> Vec<i32> {
    (0..3)
        .map(|num| ns.sem_query(id, num, SemQuery::Value, &USER).unwrap())
        .collect()
}

fn export(
    ns: &Namespace<'_, TestHost>,
    pid: u32,
    hold: bool,
) -> Result<(ProcessId, Vec<Adjustment>)> {
    let mut list = Vec::new();
    let process = ns.undo_export(pid, hold, &USER, &mut |adjustment| list.push(adjustment))?;
    Ok((process, list))
}

/// A set of three semaphores at 5, and process `pid` dead after taking 2 from
/// semaphore 0 and giving 3 to semaphore 1 with `SEM_UNDO`, its list held
/// when it exported it: the export and the set.
fn checkpointed_death(
    pid: u32,
    host: &TestHost,
    mem: &'static [AtomicU32],
    ns: &Namespace<'_, TestHost>,
) -> (i32, ProcessId, Vec<Adjustment>) {
    let id = ns.semget(IPC_PRIVATE, 3, 0o600, &USER).unwrap();
    ns.sem_setall(id, &USER, &|_| 5).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    die_inside(host, pid, mem, move |ns, host| {
        ns.semop(id, &[op(0, -2), op(1, 3)], &USER).unwrap();
        tx.send(export(ns, pid, true).unwrap()).unwrap();
        park_dead(host)
    });
    let (process, list) = rx.recv().unwrap();
    (id, process, list)
}

#[test]
fn a_held_list_is_kept_at_death_and_handed_over_once() {
    let (mem, host, ns) = fresh_namespace();
    let (id, process, list) = checkpointed_death(2, &host, mem, &ns);
    assert_eq!(process.pid, 2);
    assert_eq!(
        list,
        [
            Adjustment {
                semid: id,
                semnum: 0,
                value: 2
            },
            Adjustment {
                semid: id,
                semnum: 1,
                value: -3
            }
        ]
    );
    ns.collect_dead();
    assert_eq!(values(&ns, id), [3, 8, 5], "kept, not applied");
    assert_eq!(ns.processes(), 2, "the slot keeps the list");
    assert_eq!(export(&ns, 2, false).unwrap().1, list, "still readable");
    let mut stale = 0;
    ns.check(&|_, _| true, &mut |_| stale += 1);
    assert_eq!(stale, 0, "a kept list is no leftover");

    let imported = list.clone();
    spawn_process(&host, 3, mem, move |ns| {
        ns.undo_import(process, &imported).unwrap();
        assert_eq!(export(ns, 3, false).unwrap().1, imported, "now process 3's");
    })
    .join()
    .unwrap();
    assert_eq!(
        values(&ns, id),
        [5, 5, 5],
        "applied once, at the importer's exit"
    );
    let again = list.clone();
    let second = spawn_process(&host, 4, mem, move |ns| ns.undo_import(process, &again));
    assert_eq!(second.join().unwrap(), Err(Errno::ESRCH));
    assert_eq!(values(&ns, id), [5, 5, 5]);
    assert_eq!(ns.processes(), 1);
    assert_clean(&ns);
}

#[test]
fn an_import_that_does_not_match_changes_nothing() {
    let (mem, host, ns) = fresh_namespace();
    let (id, process, list) = checkpointed_death(2, &host, mem, &ns);
    let mut wrong = list.clone();
    wrong[1].value = -2;
    let mut short = list.clone();
    short.pop();
    let mut past_the_end = list.clone();
    past_the_end.push(Adjustment {
        semid: id,
        semnum: 7,
        value: 1,
    });
    let other = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let mut extra = list.clone();
    extra.push(Adjustment {
        semid: other,
        semnum: 0,
        value: 1,
    });
    let right = list.clone();
    spawn_process(&host, 3, mem, move |ns| {
        for bad in [&wrong, &short, &past_the_end, &extra] {
            assert_eq!(ns.undo_import(process, bad), Err(Errno::EINVAL), "{bad:?}");
        }
        // A process with an undo list of its own cannot take one over.
        ns.semop(other, &[op(0, 1)], &USER).unwrap();
        assert_eq!(ns.undo_import(process, &right), Err(Errno::EBUSY));
    })
    .join()
    .unwrap();
    assert_eq!(values(&ns, id), [3, 8, 5], "still kept");
    spawn_process(&host, 4, mem, move |ns| {
        assert_eq!(
            ns.undo_import(ProcessId { pid: 2, start: 1 }, &list),
            Err(Errno::ESRCH)
        );
        ns.undo_import(process, &list).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(values(&ns, id), [5, 5, 5]);
    assert_clean(&ns);
}

#[test]
fn only_a_held_dead_process_is_kept_and_a_running_one_cannot_be_imported() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 3, 0o600, &USER).unwrap();
    ns.sem_setall(id, &USER, &|_| 5).unwrap();
    // Not held: applied at death as ever.
    die_inside(&host, 2, mem, move |ns, host| {
        ns.semop(id, &[op(0, -1)], &USER).unwrap();
        park_dead(host)
    });
    // Held and running: readable by anyone, held only by itself.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let running = spawn_process(&host, 3, mem, move |ns| {
        ns.semop(id, &[op(2, -1)], &USER).unwrap();
        tx.send(export(ns, 3, true).unwrap()).unwrap();
        done_rx.recv().unwrap();
    });
    let (process, list) = rx.recv().unwrap();
    assert_eq!(
        export(&ns, 3, true).err(),
        Some(Errno::EPERM),
        "not ours to hold"
    );
    assert_eq!(export(&ns, 3, false).unwrap().1, list);
    assert_eq!(
        ns.undo_import(process, &list),
        Err(Errno::EBUSY),
        "it still runs"
    );
    assert_eq!(
        ns.undo_import(
            ProcessId {
                pid: 2,
                start: 2000
            },
            &[]
        ),
        Err(Errno::ESRCH)
    );
    assert_eq!(
        values(&ns, id)[0],
        5,
        "the unheld process's undo was applied"
    );
    done_tx.send(()).unwrap();
    running.join().unwrap();
    assert_eq!(
        values(&ns, id),
        [5, 5, 5],
        "a held process that exits applies its own"
    );
    assert_eq!(ns.processes(), 1);
    assert_clean(&ns);
}

#[test]
fn a_removed_set_drops_out_and_a_new_set_in_its_slot_is_untouched() {
    let (mem, host, ns) = fresh_namespace();
    let (id, process, list) = checkpointed_death(2, &host, mem, &ns);
    ns.sem_remove(id, &USER).unwrap();
    let reused = ns.semget(IPC_PRIVATE, 3, 0o600, &USER).unwrap();
    assert_ne!(reused, id, "a new sequence number makes a new id");
    ns.sem_setall(reused, &USER, &|_| 5).unwrap();
    spawn_process(&host, 3, mem, move |ns| {
        ns.undo_import(process, &list).unwrap();
        assert_eq!(export(ns, 3, false).unwrap().1, []);
    })
    .join()
    .unwrap();
    assert_eq!(values(&ns, reused), [5, 5, 5]);
    assert_eq!(ns.processes(), 1);
    assert_clean(&ns);
}

#[test]
fn a_release_applies_a_kept_list() {
    let (mem, host, ns) = fresh_namespace();
    let (id, process, _) = checkpointed_death(2, &host, mem, &ns);
    ns.collect_dead();
    assert_eq!(values(&ns, id), [3, 8, 5]);
    ns.undo_release(process, &USER).unwrap();
    assert_eq!(values(&ns, id), [5, 5, 5]);
    assert_eq!(ns.undo_release(process, &USER), Err(Errno::ESRCH));
    assert_eq!(ns.processes(), 1);
    assert_clean(&ns);
}

#[test]
fn an_importer_that_dies_inside_the_hand_over_leaves_the_list_kept() {
    // Slots are searched from pid % procs: the importer's slot after the
    // dead process's, then before it, so the sweep meets them in both orders.
    for (dead, importer) in [(2, 3), (10, 5)] {
        let (mem, host, ns) = fresh_namespace();
        let (id, process, list) = checkpointed_death(dead, &host, mem, &ns);
        ns.collect_dead();
        // The importer claims the kept slot and moves the list, then dies
        // before it commits.
        die_inside(&host, importer, mem, move |ns, host| {
            let (me, _) = ns.identity().unwrap();
            let mine = ns.registry.slot_of(me).unwrap();
            let kept = ns.registry.find(process).unwrap();
            assert!(ns.registry.claim_kept(kept, me));
            let mut txn = Txn::begin(ns, &mine.lock).unwrap();
            txn.set(&mine.undo_head, kept.undo_head.get()).unwrap();
            txn.set(&kept.undo_head, 0).unwrap();
            core::mem::forget(txn);
            park_dead(host)
        });
        ns.collect_dead();
        assert_eq!(values(&ns, id), [3, 8, 5], "neither applied nor lost");
        spawn_process(&host, 20, mem, move |ns| {
            ns.undo_import(process, &list).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(values(&ns, id), [5, 5, 5]);
        assert_eq!(ns.processes(), 1);
        assert_clean(&ns);
    }
}
