//! `check` over queues: a ring worked through typed receives, wrap-around and
//! growth is clean, and each kind of damage to a queue is reported.

use std::vec::Vec;

use crate::perm::{IPC_NOWAIT, IPC_PRIVATE};
use crate::tests::{assert_clean, fresh_namespace, TestHost, USER};
use crate::{Kind, Namespace};

/// What `check` says about the queues.
fn queue_problems(ns: &Namespace<'_, TestHost>) -> Vec<&'static str> {
    let mut problems = Vec::new();
    ns.check(&|_, _| true, &mut |p| {
        if p.area == crate::Area::Table(Kind::Msg) {
            problems.push(p.what);
        }
    });
    problems
}

#[test]
fn check_follows_a_queue_through_its_ring_and_reports_damage() {
    let (_, _, ns) = fresh_namespace();
    let id = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    let mut out = [0u8; 4096];
    // Laps around a small ring, typed receives from the middle, then a
    // message larger than the ring's free run (growth).
    for round in 0..40u8 {
        for mtype in 1..=3 {
            ns.msgsnd(id, mtype, &[round; 40], 0, &USER).unwrap();
        }
        ns.msgrcv(id, 4096, 2, IPC_NOWAIT, &mut out, &USER).unwrap();
        ns.msgrcv(id, 4096, 0, IPC_NOWAIT, &mut out, &USER).unwrap();
    }
    ns.msgsnd(id, 7, &[1; 3000], 0, &USER).unwrap();
    ns.msgrcv(id, 4096, 3, IPC_NOWAIT, &mut out, &USER).unwrap();
    assert_clean(&ns);
    assert_eq!(queue_problems(&ns), Vec::<&str>::new());

    let object = ns.peek_object(Kind::Msg, id).unwrap();
    let queue = ns.queue_view(&object).queue;
    let damage: [(&crate::arena::Word, &str); 3] = [
        (
            &queue.sent_count,
            "the message or byte count disagrees with the records in the ring",
        ),
        (
            &queue.send_ring,
            "the send side's copy of the ring differs from the ring",
        ),
        (
            &queue.head,
            "the ring's records from head to tail are broken",
        ),
    ];
    for (word, report) in damage {
        let good = word.get();
        word.set(good.wrapping_add(8));
        assert_eq!(queue_problems(&ns), [report]);
        word.set(good);
        assert_eq!(queue_problems(&ns), Vec::<&str>::new());
    }
    let ring = queue.ring.get();
    queue.ring.set(ring + 16);
    queue.send_ring.set(ring + 16);
    assert_eq!(
        queue_problems(&ns),
        ["the ring is not a heap block of this queue's as large as its capacity"]
    );
    queue.ring.set(ring);
    queue.send_ring.set(ring);
    queue.receivers_tail.set(64);
    assert_eq!(
        queue_problems(&ns),
        ["the waiting receivers' list does not end at its tail"]
    );
    queue.receivers_tail.set(0);
    assert_clean(&ns);
}
