//! The waker's side of a completion, cut short where a crash can cut it:
//! tests that need the waiter records' insides, so they live under `sem`.

use crate::perm::IPC_PRIVATE;
use crate::sem::{SemBuf, SemQuery};
use crate::tests::{
    assert_clean, die_inside, eventually, fresh_namespace, park_dead, spawn_process, USER,
};

#[test]
fn a_completion_committed_by_a_waker_that_died_before_publishing_it_is_found() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.semget(IPC_PRIVATE, 1, 0o600, &USER).unwrap();
    let take = SemBuf {
        sem_num: 0,
        sem_op: -1,
        sem_flg: 0,
    };
    let waiter = spawn_process(&host, 2, mem, move |ns| ns.semop(id, &[take], &USER));
    eventually("queued", || {
        ns.sem_query(id, 0, SemQuery::WaitingToDecrease, &USER) == Ok(1)
    });
    // Gives 1 and completes the waiter's -1 with it, as `update_queue` does,
    // up to its checkpoint; then dies, holding the lock, before publishing
    // the result or waking anyone.
    die_inside(&host, 9, mem, move |ns, host| {
        let mut st = ns.lock_set(id).unwrap();
        let at = st.view.set.head.get();
        let record = ns.waiter(at, id).unwrap();
        ns.unlink(&mut st.locked.txn, &st.view, record, id).unwrap();
        st.locked.txn.set(&record.result, 0).unwrap();
        st.locked.txn.checkpoint();
        park_dead(host);
    });
    assert_eq!(
        waiter.join().unwrap(),
        Ok(()),
        "the sleeper found its committed result under the lock"
    );
    assert_eq!(ns.sem_query(id, 0, SemQuery::Value, &USER), Ok(0));
    assert_eq!(
        ns.sem_query(id, 0, SemQuery::WaitingToDecrease, &USER),
        Ok(0)
    );
    assert_clean(&ns);
}
