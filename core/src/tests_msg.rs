//! Message queues, with threads standing for processes.

use std::sync::atomic::AtomicU32;
use std::time::Duration;
use std::vec::Vec;

use crate::msg::{MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use crate::perm::{IPC_NOWAIT, IPC_PRIVATE};
use crate::tests::{
    assert_clean, fresh_namespace, leaked_arena, memory, small_limits, spawn_process, TestHost,
    USER,
};
use crate::{Cred, Errno, Namespace};

fn receive(
    ns: &Namespace<'_, TestHost>,
    id: i32,
    bufsz: i64,
    msgtyp: i64,
    flags: i32,
) -> Result<(i64, Vec<u8>), Errno> {
    let mut out = vec![0u8; 8192];
    let (mtype, n) = ns.msgrcv(id, bufsz, msgtyp, flags, &mut out, &USER)?;
    out.truncate(n);
    Ok((mtype, out))
}

#[test]
fn send_and_receive_check_their_arguments_like_the_kernel() {
    let ns = Namespace::create(leaked_arena(), &small_limits(), TestHost::family()).unwrap();
    let id = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    let ds = ns.msg_stat(id, &USER).unwrap();
    assert_eq!(
        (ds.qbytes, ds.qnum, ds.cbytes, ds.stime, ds.lspid),
        (16384, 0, 0, 0, 0)
    );
    assert_eq!(ns.msgsnd(id, 0, b"x", 0, &USER), Err(Errno::EINVAL));
    assert_eq!(ns.msgsnd(id, -1, b"x", 0, &USER), Err(Errno::EINVAL));
    assert_eq!(ns.msgsnd(id, 1, &[0; 8193], 0, &USER), Err(Errno::EINVAL));
    assert_eq!(ns.msgsnd(-1, 1, b"x", 0, &USER), Err(Errno::EINVAL));
    ns.msgsnd(id, 3, b"", 0, &USER).unwrap();
    ns.msgsnd(id, 5, b"hello", 0, &USER).unwrap();
    ns.msgsnd(id, 1, b"hi", 0, &USER).unwrap();
    let ds = ns.msg_stat(id, &USER).unwrap();
    assert_eq!((ds.qnum, ds.cbytes, ds.lspid), (3, 7, 1));
    assert!(ds.stime > 0 && ds.rtime == 0);

    assert_eq!(
        receive(&ns, id, 64, -4, IPC_NOWAIT),
        Ok((1, b"hi".to_vec())),
        "lowest type ≤ 4"
    );
    assert_eq!(receive(&ns, id, 2, 5, IPC_NOWAIT), Err(Errno::E2BIG));
    assert_eq!(
        receive(&ns, id, 2, 5, IPC_NOWAIT | MSG_NOERROR),
        Ok((5, b"he".to_vec()))
    );
    assert_eq!(receive(&ns, id, 64, 7, IPC_NOWAIT), Err(Errno::ENOMSG));
    assert_eq!(
        receive(&ns, id, 64, 3, IPC_NOWAIT | MSG_EXCEPT),
        Err(Errno::ENOMSG)
    );
    assert_eq!(
        receive(&ns, id, 64, 0, MSG_COPY),
        Err(Errno::EINVAL),
        "MSG_COPY needs IPC_NOWAIT"
    );
    assert_eq!(
        receive(&ns, id, 64, 0, IPC_NOWAIT | MSG_COPY | MSG_EXCEPT),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        receive(&ns, id, 64, 0, IPC_NOWAIT | MSG_COPY),
        Ok((3, Vec::new()))
    );
    assert_eq!(
        receive(&ns, id, 64, 1, IPC_NOWAIT | MSG_COPY),
        Err(Errno::ENOMSG),
        "by position"
    );
    assert_eq!(receive(&ns, id, -1, 0, IPC_NOWAIT), Err(Errno::EINVAL));
    assert_eq!(receive(&ns, -1, 64, 0, IPC_NOWAIT), Err(Errno::EINVAL));
    let ds = ns.msg_stat(id, &USER).unwrap();
    assert_eq!((ds.qnum, ds.cbytes, ds.lrpid), (1, 0, 1));
    assert!(ds.rtime > 0);
    assert_clean(&ns);
}

#[test]
fn a_queue_is_full_by_bytes_or_by_count() {
    let ns = Namespace::create(leaked_arena(), &small_limits(), TestHost::family()).unwrap();
    let id = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    ns.msg_set(id, &USER, 1000, 1000, 0o600, 3).unwrap();
    for _ in 0..3 {
        ns.msgsnd(id, 1, b"", IPC_NOWAIT, &USER).unwrap();
    }
    assert_eq!(
        ns.msgsnd(id, 1, b"", IPC_NOWAIT, &USER),
        Err(Errno::EAGAIN),
        "three messages"
    );
    assert_eq!(
        ns.msg_set(id, &USER, 1000, 1000, 0o600, 20000),
        Err(Errno::EPERM),
        "above MSGMNB"
    );
    let admin = Cred {
        sys_resource: true,
        ..USER
    };
    ns.msg_set(id, &admin, 1000, 1000, 0o600, 20000).unwrap();
    ns.msgsnd(id, 1, &[7; 8192], IPC_NOWAIT, &USER).unwrap();
    ns.msgsnd(id, 1, &[7; 8192], IPC_NOWAIT, &USER).unwrap();
    assert_eq!(
        ns.msgsnd(id, 1, &[7; 8192], IPC_NOWAIT, &USER),
        Err(Errno::EAGAIN),
        "bytes"
    );
    // Lowering msg_qbytes keeps every message.
    ns.msg_set(id, &USER, 1000, 1000, 0o600, 10).unwrap();
    assert_eq!(ns.msg_stat(id, &USER).unwrap().qnum, 5);
    let (_, info) = ns.msg_info(true);
    assert_eq!((info.msgpool, info.msgmap, info.msgtql), (1, 5, 16384));
    let (max, info) = ns.msg_info(false);
    assert_eq!(
        (max, info.msgmax, info.msgmnb, info.msgssz, info.msgseg),
        (id, 8192, 16384, 16, 0xffff)
    );
    assert_clean(&ns);
}

/// The Linux rules, over a plain list of (type, bytes) in arrival order.
fn model_find(queue: &[(i64, Vec<u8>)], msgtyp: i64, flags: i32) -> Option<usize> {
    if flags & MSG_COPY != 0 {
        return usize::try_from(msgtyp).ok().filter(|&n| n < queue.len());
    }
    match msgtyp {
        0 => (!queue.is_empty()).then_some(0),
        t if t < 0 => {
            let limit = t.checked_neg().unwrap_or(i64::MAX);
            let lowest = queue.iter().map(|m| m.0).filter(|&m| m <= limit).min()?;
            queue.iter().position(|m| m.0 == lowest)
        }
        t if flags & MSG_EXCEPT != 0 => queue.iter().position(|m| m.0 != t),
        t => queue.iter().position(|m| m.0 == t),
    }
}

#[test]
fn random_sends_and_receives_agree_with_a_model_of_the_kernel() {
    let limits = crate::Limits {
        heap_bytes: 4 << 20,
        ..small_limits()
    };
    let mem: &'static [AtomicU32] = Vec::leak(memory(&limits));
    let ns = Namespace::create(mem, &limits, TestHost::family()).unwrap();
    let admin = Cred {
        sys_resource: true,
        ..USER
    };
    let id = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    ns.msg_set(id, &admin, 1000, 1000, 0o600, 60000).unwrap();
    let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for step in 0..20_000 {
        if next() % 100 < 52 {
            let mtype = 1 + (next() % 6) as i64;
            let len = match next() % 4 {
                0 => 0,
                1 => (next() % 16) as usize,
                2 => (next() % 300) as usize,
                _ => (next() % 3000) as usize,
            };
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let fits = model.iter().map(|m| m.1.len()).sum::<usize>() + len <= 60000
                && model.len() < 60000;
            let sent = ns.msgsnd(id, mtype, &data, IPC_NOWAIT, &USER);
            assert_eq!(sent.is_ok(), fits, "step {step}: {sent:?}");
            if fits {
                model.push((mtype, data));
            }
        } else {
            let msgtyp = (next() % 9) as i64 - 4;
            let flags = IPC_NOWAIT
                | match next() % 4 {
                    0 => MSG_EXCEPT,
                    1 => MSG_COPY,
                    _ => 0,
                };
            let msgtyp = if flags & MSG_COPY != 0 {
                msgtyp.abs()
            } else {
                msgtyp
            };
            let flags = if flags & MSG_EXCEPT != 0 && msgtyp <= 0 {
                IPC_NOWAIT
            } else {
                flags
            };
            let got = receive(&ns, id, 8192, msgtyp, flags);
            match model_find(&model, msgtyp, flags) {
                Some(i) => {
                    let expected = if flags & MSG_COPY != 0 {
                        model[i].clone()
                    } else {
                        model.remove(i)
                    };
                    assert_eq!(
                        got,
                        Ok(expected),
                        "step {step}: type {msgtyp} flags {flags:o}"
                    );
                }
                None => assert_eq!(got, Err(Errno::ENOMSG), "step {step}"),
            }
        }
        if step % 1000 == 0 {
            let ds = ns.msg_stat(id, &USER).unwrap();
            assert_eq!(ds.qnum as usize, model.len());
            assert_eq!(
                ds.cbytes as usize,
                model.iter().map(|m| m.1.len()).sum::<usize>()
            );
        }
    }
    assert_clean(&ns);
    ns.msg_remove(id, &USER).unwrap();
    assert_eq!(ns.heap_used(), 0, "the ring is freed with the queue");
}

#[test]
fn blocked_senders_and_receivers_are_woken() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    let receiver = spawn_process(&host, 2, mem, move |ns| receive(ns, id, 64, 9, 0));
    std::thread::sleep(Duration::from_millis(20));
    ns.msgsnd(id, 4, b"not for it", 0, &USER).unwrap();
    ns.msgsnd(id, 9, b"for it", 0, &USER).unwrap();
    assert_eq!(receiver.join().unwrap(), Ok((9, b"for it".to_vec())));

    ns.msg_set(id, &USER, 1000, 1000, 0o600, 20).unwrap();
    let sender = spawn_process(&host, 3, mem, move |ns| {
        ns.msgsnd(id, 1, &[1; 15], 0, &USER)
    });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        ns.msg_stat(id, &USER).unwrap().qnum,
        1,
        "the sender waits for room"
    );
    assert_eq!(receive(&ns, id, 64, 0, 0), Ok((4, b"not for it".to_vec())));
    assert_eq!(sender.join().unwrap(), Ok(()));
    assert_eq!(ns.msg_stat(id, &USER).unwrap().qnum, 1);

    let waiting = spawn_process(&host, 4, mem, move |ns| receive(ns, id, 64, 2, 0));
    let blocked = spawn_process(&host, 5, mem, move |ns| {
        ns.msgsnd(id, 1, &[1; 15], 0, &USER)
    });
    std::thread::sleep(Duration::from_millis(20));
    ns.msg_remove(id, &USER).unwrap();
    assert_eq!(waiting.join().unwrap(), Err(Errno::EIDRM));
    assert_eq!(blocked.join().unwrap(), Err(Errno::EIDRM));
    assert_clean(&ns);
}

#[test]
fn a_producer_and_a_consumer_move_many_messages_intact() {
    let (mem, host, ns) = fresh_namespace();
    let id = ns.msgget(IPC_PRIVATE, 0o600, &USER).unwrap();
    const COUNT: u32 = 5000;
    let producer = spawn_process(&host, 2, mem, move |ns| {
        for i in 0..COUNT {
            let mtype = 1 + i64::from(i % 3);
            let len = (i % 200) as usize;
            let data: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            ns.msgsnd(id, mtype, &[&i.to_le_bytes()[..], &data].concat(), 0, &USER)
                .unwrap();
        }
    });
    let mut last = [None::<u32>; 3];
    for _ in 0..COUNT {
        let (mtype, bytes) = receive(&ns, id, 8192, 0, 0).unwrap();
        let i = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(mtype, 1 + i64::from(i % 3));
        assert!(bytes[4..]
            .iter()
            .enumerate()
            .all(|(j, b)| *b == (i as usize + j) as u8));
        let slot = &mut last[(mtype - 1) as usize];
        assert!(slot.is_none_or(|prev| prev < i), "in order within a type");
        *slot = Some(i);
    }
    producer.join().unwrap();
    assert_eq!(ns.msg_stat(id, &USER).unwrap().qnum, 0);
    assert_clean(&ns);
}
