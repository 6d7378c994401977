//! A send cut short where a crash can cut it: tests that need the send
//! path's insides, so they live under `msg`.

use std::vec::Vec;

use crate::perm::{IPC_NOWAIT, IPC_PRIVATE};
use crate::tests::{
    assert_clean, die_inside, eventually, fresh_namespace, park_dead, spawn_process, USER,
};
use crate::Errno;

#[test]
fn a_message_committed_by_a_sender_that_died_before_publishing_it_is_received() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    // Queues a message up to its checkpoint, then dies holding the send lock,
    // before storing the tail for receivers.
    die_inside(&host, 9, mem, move |ns, host| {
        let (mut locked, q) = ns.lock_send(id).unwrap();
        ns.append(&mut locked, &q, 5, b"committed", 9).unwrap();
        locked.txn.checkpoint();
        park_dead(host);
    });
    // `IPC_STAT` recovers the send lock, and counts the message.
    assert_eq!(ns.msg_stat(id, &USER).map(|ds| ds.qnum), Ok(1));
    let receiver = spawn_process(&host, 3, mem, move |ns| {
        let mut out = [0u8; 64];
        ns.msgrcv(id, 64, 0, 0, &mut out, &USER)
            .map(|(mtype, n)| (mtype, out[..n].to_vec()))
    });
    eventually("the blocked receiver returned", || receiver.is_finished());
    assert_eq!(
        receiver.join().unwrap(),
        Ok((5, b"committed".to_vec())),
        "a receiver that finds nothing published takes the send lock, which publishes the tail"
    );
    let mut out = Vec::from([0u8; 64]);
    assert_eq!(
        ns.msgrcv(id, 64, 0, IPC_NOWAIT, &mut out, &USER),
        Err(Errno::ENOMSG)
    );
    ns.msgsnd(id, 6, b"after", 0, &USER).unwrap();
    assert_eq!(
        ns.msgrcv(id, 64, 0, IPC_NOWAIT, &mut out, &USER),
        Ok((6, 5))
    );
    assert_eq!(ns.msg_stat(id, &USER).map(|ds| ds.qnum), Ok(0));
    assert_clean(&ns);
}
