//! Random sequences of System V calls: mostly calls a program would make on
//! the objects the sequence made, some with hostile arguments (stale and
//! made-up ids, bad sizes, counts, types, flags and timeouts).

use libc::{
    GETALL, GETNCNT, GETPID, GETVAL, GETZCNT, IPC_CREAT, IPC_EXCL, IPC_INFO, IPC_NOWAIT, IPC_RMID,
    IPC_SET, IPC_STAT, MSG_COPY, MSG_EXCEPT, MSG_INFO, MSG_NOERROR, MSG_STAT, SEM_INFO, SEM_STAT,
    SEM_STAT_ANY, SETALL, SETVAL, SHM_RDONLY, SHM_REMAP, SHM_RND,
};

use super::call::{Call, Step, Target, MSG_STAT_ANY, SHM_INFO, SHM_STAT, SHM_STAT_ANY};
use crate::Rng;

/// `SEM_UNDO`, as `sem_flg` holds it.
const SEM_UNDO: i16 = libc::SEM_UNDO as i16;

/// Keys a sequence shares between its workers (besides `IPC_PRIVATE`).
const KEYS: [i32; 3] = [0x5d1f_0001, 0x5d1f_0002, 0x5d1f_0003];

/// Ids that name nothing, or something made for another kind.
const HOSTILE_IDS: [i32; 6] = [-1, 0, 1, 32768, 0x7fff_ffff, i32::MIN];

struct Gen<'a> {
    rng: &'a mut Rng,
    steps: Vec<Step>,
}

impl Gen<'_> {
    fn below(&mut self, bound: usize) -> usize {
        self.rng.below(bound as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len())]
    }

    fn key(&mut self) -> i32 {
        if self.chance(30) {
            0
        } else {
            self.pick(&KEYS)
        }
    }

    fn create_flags(&mut self) -> i32 {
        let mode = self.pick(&[0o600, 0o600, 0o660, 0o666, 0o640, 0o400, 0o200, 0]);
        let create = self.pick(&[IPC_CREAT, IPC_CREAT, IPC_CREAT, IPC_CREAT | IPC_EXCL, 0]);
        mode | create
    }

    /// An id: mostly one an earlier get of the same kind returned.
    fn target(&mut self, is_kind: fn(&Call) -> bool) -> Target {
        let made: Vec<u32> = self
            .steps
            .iter()
            .filter(|step| is_kind(&step.call))
            .map(|step| step.label)
            .collect();
        if made.is_empty() || self.chance(10) {
            Target::Raw(self.pick(&HOSTILE_IDS))
        } else {
            Target::Got(self.pick(&made))
        }
    }

    /// [`Gen::target`] when `by_id`; else an index for a `*_STAT` command:
    /// one of the first few slots (in use or not), or an id (the kernel
    /// takes its low bits), or a hostile number.
    fn target_or_index(&mut self, is_kind: fn(&Call) -> bool, by_id: bool) -> Target {
        if by_id || self.chance(30) {
            self.target(is_kind)
        } else {
            Target::Raw(self.pick(&[0, 1, 2, 3]))
        }
    }

    /// An attachment an earlier `shmat` made (perhaps in another worker).
    fn attachment(&mut self) -> u32 {
        let made: Vec<u32> = self
            .steps
            .iter()
            .filter(|step| matches!(step.call, Call::ShmAt { .. }))
            .map(|step| step.label)
            .collect();
        if made.is_empty() {
            u32::MAX
        } else {
            self.pick(&made)
        }
    }

    /// A choice in `0..10` for a call of the kind `is_kind` tells: a get
    /// (0 or 1) every time while no get of the kind was made.
    fn choose(&mut self, is_kind: fn(&Call) -> bool) -> usize {
        let none_yet = !self.steps.iter().any(|step| is_kind(&step.call));
        if none_yet {
            0
        } else {
            self.below(10)
        }
    }

    fn sem_call(&mut self) -> Call {
        let is_sem = |call: &Call| matches!(call, Call::SemGet { .. });
        match self.choose(is_sem) {
            0 | 1 => Call::SemGet {
                key: self.key(),
                nsems: self.pick(&[1, 1, 2, 3, 0, -1, 32001]),
                flags: self.create_flags(),
            },
            2..=5 => {
                let count = self.pick(&[1, 1, 1, 2, 3, 0]);
                let ops = (0..count)
                    .map(|_| {
                        let flags = self.pick(&[
                            0,
                            0,
                            IPC_NOWAIT as i16,
                            SEM_UNDO,
                            SEM_UNDO | IPC_NOWAIT as i16,
                        ]);
                        (
                            self.pick(&[0, 0, 1, 2, 3]),
                            self.pick(&[-1, -1, 1, 1, 0, -2, 2, 32767]),
                            flags,
                        )
                    })
                    .collect();
                let timeout = self.pick(&[
                    None,
                    None,
                    None,
                    Some((0, 0)),
                    Some((1000, 0)),
                    Some((-1, 0)),
                    Some((0, 1_000_000_000)),
                ]);
                Call::SemOp {
                    id: self.target(is_sem),
                    ops,
                    timeout,
                }
            }
            _ => {
                // 99 is no command.
                let cmd = self.pick(&[
                    GETVAL,
                    GETALL,
                    GETNCNT,
                    GETZCNT,
                    GETPID,
                    SETVAL,
                    SETVAL,
                    SETALL,
                    IPC_STAT,
                    IPC_SET,
                    IPC_RMID,
                    SEM_STAT,
                    SEM_STAT_ANY,
                    IPC_INFO,
                    SEM_INFO,
                    99,
                ]);
                Call::SemCtl {
                    id: self.target_or_index(is_sem, cmd != SEM_STAT && cmd != SEM_STAT_ANY),
                    num: self.pick(&[0, 0, 1, 2, -1]),
                    cmd,
                    arg: match cmd {
                        IPC_SET => self.pick(&[0o600, 0o666, 0o400, 0o1777]),
                        _ => self.pick(&[0, 1, 2, 5, 32767, 32768, -1]),
                    },
                }
            }
        }
    }

    fn msg_call(&mut self) -> Call {
        let is_msg = |call: &Call| matches!(call, Call::MsgGet { .. });
        match self.choose(is_msg) {
            0 | 1 => Call::MsgGet {
                key: self.key(),
                flags: self.create_flags(),
            },
            2..=4 => Call::MsgSnd {
                id: self.target(is_msg),
                mtype: self.pick(&[1, 1, 2, 3, 4, 0, -1]),
                size: self.pick(&[0, 1, 8, 64, 100, 1000, 8192, 8193, -1]),
                flags: self.pick(&[0, 0, IPC_NOWAIT]),
            },
            5..=7 => {
                let flags = self.pick(&[
                    0,
                    IPC_NOWAIT,
                    IPC_NOWAIT,
                    MSG_NOERROR,
                    MSG_EXCEPT,
                    MSG_EXCEPT | IPC_NOWAIT,
                    MSG_NOERROR | IPC_NOWAIT,
                    MSG_COPY | IPC_NOWAIT,
                    MSG_COPY,
                ]);
                Call::MsgRcv {
                    id: self.target(is_msg),
                    size: self.pick(&[0, 4, 64, 100, 8192, -1]),
                    mtype: self.pick(&[0, 0, 1, 2, 3, -1, -2, -3, 1000]),
                    flags,
                }
            }
            _ => {
                // 99 is no command.
                let cmd = self.pick(&[
                    IPC_STAT,
                    IPC_STAT,
                    IPC_SET,
                    IPC_RMID,
                    MSG_STAT,
                    MSG_STAT_ANY,
                    IPC_INFO,
                    MSG_INFO,
                    99,
                ]);
                Call::MsgCtl {
                    id: self.target_or_index(is_msg, cmd != MSG_STAT && cmd != MSG_STAT_ANY),
                    cmd,
                    arg: self.pick(&[0o600, 0o666, 0o400]),
                    qbytes: self.pick(&[16384, 100, 1, 0, 20000]),
                }
            }
        }
    }

    fn shm_call(&mut self) -> Call {
        let is_shm = |call: &Call| matches!(call, Call::ShmGet { .. });
        match self.choose(is_shm) {
            0 | 1 => Call::ShmGet {
                key: self.key(),
                size: self.pick(&[1, 100, 4096, 10000, 0, -1]),
                flags: self.create_flags(),
            },
            2 | 3 => Call::ShmAt {
                id: self.target(is_shm),
                flags: self.pick(&[
                    0,
                    0,
                    SHM_RDONLY,
                    SHM_RND,
                    SHM_REMAP,
                    SHM_RND | SHM_REMAP,
                    SHM_RDONLY | SHM_RND,
                ]),
                // The system's choice, page-aligned and unaligned addresses
                // in the worker's free range (SHMLBA is a page here).
                at: self.pick(&[0, 0, 0, 0x10000, 0x10000, 0x10001, 0x20800, 0x100_0000]),
            },
            4 => Call::ShmDt {
                at: self.attachment(),
            },
            5 | 6 => {
                // 99 is no command.
                let cmd = self.pick(&[
                    IPC_STAT,
                    IPC_STAT,
                    IPC_SET,
                    IPC_RMID,
                    SHM_STAT,
                    SHM_STAT_ANY,
                    IPC_INFO,
                    SHM_INFO,
                    99,
                ]);
                Call::ShmCtl {
                    id: self.target_or_index(is_shm, cmd != SHM_STAT && cmd != SHM_STAT_ANY),
                    cmd,
                    arg: self.pick(&[0o600, 0o666, 0o400]),
                }
            }
            7 | 8 => Call::Poke {
                at: self.attachment(),
                offset: self.pick(&[0, 1, 99, 4095, 9999]),
                byte: self.rng.below(256) as u8,
            },
            _ => Call::Peek {
                at: self.attachment(),
                offset: self.pick(&[0, 1, 99, 4095]),
                len: self.pick(&[1, 4, 16]),
            },
        }
    }
}

/// A sequence of `len` steps for `workers` workers, from `rng`.
pub fn sequence(rng: &mut Rng, len: usize, workers: u8) -> Vec<Step> {
    let mut gen = Gen {
        rng,
        steps: Vec::with_capacity(len),
    };
    // Half the sequences keep to one kind of object, to go deeper into it.
    let kinds = match gen.below(6) {
        kind @ 0..=2 => kind..kind + 1,
        _ => 0..3,
    };
    for label in 0..len as u32 {
        let call = match kinds.start + gen.below(kinds.len()) {
            // A worker blocked now and then has a signal to end its call.
            _ if gen.chance(5) => Call::Interrupt,
            0 => gen.sem_call(),
            1 => gen.msg_call(),
            _ => gen.shm_call(),
        };
        let last = gen.steps.last().map(|step| step.worker);
        let worker = match (&call, last) {
            // Most often the worker of the step before, which may have just
            // blocked.
            (Call::Interrupt, Some(last)) if gen.chance(70) => last,
            _ => gen.below(usize::from(workers)) as u8,
        };
        gen.steps.push(Step {
            label,
            worker,
            call,
        });
    }
    gen.steps
}
