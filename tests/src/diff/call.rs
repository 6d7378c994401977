//! The steps of a differential sequence, and their text form.
//!
//! A step is one System V call made by one worker process. Objects are named
//! by the step that got them (`@3`: the id step 3's `semget` returned, in
//! whichever world runs it), so a sequence means the same in the kernel and
//! in usysv, and keeps its meaning when shrinking removes steps. A case
//! prints as one step per line and reads back from that text.

use std::fmt;
use std::str::FromStr;

/// `msgctl`, `shmctl` commands the libc crate does not name (from Linux
/// `<linux/msg.h>` and `<linux/shm.h>`): the `*_STAT` commands take an
/// index, not an id, and return the id; `*_STAT_ANY` skip the read
/// permission check.
pub const MSG_STAT_ANY: i32 = 13;
/// See [`MSG_STAT_ANY`].
pub const SHM_STAT: i32 = 13;
/// See [`MSG_STAT_ANY`].
pub const SHM_STAT_ANY: i32 = 15;
/// `shmctl(SHM_INFO)`: the segments in use and their pages.
pub const SHM_INFO: i32 = 14;

/// An id argument: what an earlier step's get returned, or a number as it
/// is (hostile or stale).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The id step `label` returned (-1 if it failed or was removed).
    Got(u32),
    /// This number.
    Raw(i32),
}

/// One System V call, with every argument that reaches the system. The
/// fields are the call's arguments, named as in its man page.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `semget(key, nsems, flags)`.
    SemGet { key: i32, nsems: i32, flags: i32 },
    /// `semop`, or `semtimedop` with a timeout of (seconds, nanoseconds);
    /// each operation is `sem_num:sem_op:sem_flg`.
    SemOp {
        id: Target,
        ops: Vec<(u16, i16, i16)>,
        timeout: Option<(i64, i64)>,
    },
    /// `semctl(id, num, cmd, arg)`: `arg` is SETVAL's value, SETALL's value
    /// for every semaphore, or IPC_SET's mode.
    SemCtl {
        id: Target,
        num: i32,
        cmd: i32,
        arg: i32,
    },
    /// `msgget(key, flags)`.
    MsgGet { key: i32, flags: i32 },
    /// `msgsnd` of `size` bytes (their values follow from the type).
    MsgSnd {
        id: Target,
        mtype: i64,
        size: i64,
        flags: i32,
    },
    /// `msgrcv` into a buffer of `size` bytes.
    MsgRcv {
        id: Target,
        size: i64,
        mtype: i64,
        flags: i32,
    },
    /// `msgctl(id, cmd)`: IPC_SET sets the mode to `arg` and `msg_qbytes`
    /// to `qbytes`.
    MsgCtl {
        id: Target,
        cmd: i32,
        arg: i32,
        qbytes: u64,
    },
    /// `shmget(key, size, flags)`.
    ShmGet { key: i32, size: i64, flags: i32 },
    /// `shmat(id, addr, flags)`: `addr` is NULL when `at` is 0, else `at`
    /// bytes into a range the worker found free at its start. The
    /// attachment is named by this step.
    ShmAt { id: Target, flags: i32, at: u32 },
    /// `shmdt` of the attachment step `at` made in this worker (an address
    /// that is no attachment if it made none).
    ShmDt { at: u32 },
    /// `shmctl(id, cmd)`: IPC_SET sets the mode to `arg`.
    ShmCtl { id: Target, cmd: i32, arg: i32 },
    /// Stores `byte` at `offset` of attachment `at` (no system call).
    Poke { at: u32, offset: u32, byte: u8 },
    /// Reads `len` bytes at `offset` of attachment `at`.
    Peek { at: u32, offset: u32, len: u32 },
    /// Not a call: the driver sends the worker a signal whose handler
    /// returns, if it is blocked in a call (which then fails with `EINTR`).
    Interrupt,
}

/// A call, the worker that makes it, and the step's label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The step's name in its sequence, kept when others are removed.
    pub label: u32,
    /// Which worker process makes the call.
    pub worker: u8,
    /// The call.
    pub call: Call,
}

impl Call {
    /// Whether this call gets an object id (`semget`, `msgget`, `shmget`).
    pub fn gets(&self) -> bool {
        matches!(
            self,
            Call::SemGet { .. } | Call::MsgGet { .. } | Call::ShmGet { .. }
        )
    }

    /// The earlier step whose result this call names, if any.
    pub fn refers_to(&self) -> Option<u32> {
        match self {
            Call::SemOp { id, .. }
            | Call::SemCtl { id, .. }
            | Call::MsgSnd { id, .. }
            | Call::MsgRcv { id, .. }
            | Call::MsgCtl { id, .. }
            | Call::ShmAt { id, .. }
            | Call::ShmCtl { id, .. } => match id {
                Target::Got(label) => Some(*label),
                Target::Raw(_) => None,
            },
            Call::ShmDt { at } | Call::Poke { at, .. } | Call::Peek { at, .. } => Some(*at),
            Call::SemGet { .. } | Call::MsgGet { .. } | Call::ShmGet { .. } | Call::Interrupt => {
                None
            }
        }
    }

    /// The call with every `Target::Got` resolved by `id_of`.
    pub fn resolved(&self, id_of: impl Fn(u32) -> i32) -> Call {
        let resolve = |target: &Target| match *target {
            Target::Got(label) => Target::Raw(id_of(label)),
            raw => raw,
        };
        let mut call = self.clone();
        match &mut call {
            Call::SemOp { id, .. }
            | Call::SemCtl { id, .. }
            | Call::MsgSnd { id, .. }
            | Call::MsgRcv { id, .. }
            | Call::MsgCtl { id, .. }
            | Call::ShmAt { id, .. }
            | Call::ShmCtl { id, .. } => *id = resolve(id),
            _ => {}
        }
        call
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Got(label) => write!(f, "@{label}"),
            Target::Raw(id) => write!(f, "{id}"),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::SemGet { key, nsems, flags } => write!(f, "semget {key:#x} {nsems} {flags:#o}"),
            Call::SemOp { id, ops, timeout } => {
                write!(f, "semop {id}")?;
                for (num, op, flg) in ops {
                    write!(f, " {num}:{op}:{flg:#x}")?;
                }
                match timeout {
                    Some((sec, nsec)) => write!(f, " timeout={sec}.{nsec}"),
                    None => Ok(()),
                }
            }
            Call::SemCtl { id, num, cmd, arg } => write!(f, "semctl {id} {num} {cmd} {arg}"),
            Call::MsgGet { key, flags } => write!(f, "msgget {key:#x} {flags:#o}"),
            Call::MsgSnd {
                id,
                mtype,
                size,
                flags,
            } => write!(f, "msgsnd {id} {mtype} {size} {flags:#o}"),
            Call::MsgRcv {
                id,
                size,
                mtype,
                flags,
            } => write!(f, "msgrcv {id} {size} {mtype} {flags:#o}"),
            Call::MsgCtl {
                id,
                cmd,
                arg,
                qbytes,
            } => write!(f, "msgctl {id} {cmd} {arg:#o} {qbytes}"),
            Call::ShmGet { key, size, flags } => write!(f, "shmget {key:#x} {size} {flags:#o}"),
            Call::ShmAt { id, flags, at } => write!(f, "shmat {id} {flags:#o} {at:#x}"),
            Call::ShmDt { at } => write!(f, "shmdt @{at}"),
            Call::ShmCtl { id, cmd, arg } => write!(f, "shmctl {id} {cmd} {arg:#o}"),
            Call::Poke { at, offset, byte } => write!(f, "poke @{at} {offset} {byte}"),
            Call::Peek { at, offset, len } => write!(f, "peek @{at} {offset} {len}"),
            Call::Interrupt => write!(f, "interrupt"),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: w{} {}", self.label, self.worker, self.call)
    }
}

/// Why a line is not a step.
#[derive(Debug, PartialEq, Eq)]
pub struct BadStep(pub String);

impl fmt::Display for BadStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a step: {}", self.0)
    }
}

/// A number in the forms `Display` writes: decimal, `0x` hex, `0o` octal,
/// with an optional sign.
fn number(token: &str) -> Option<i64> {
    let (negative, digits) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(octal) = digits.strip_prefix("0o") {
        i64::from_str_radix(octal, 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// The tokens of one line, read in order.
struct Tokens<'a> {
    words: std::str::SplitWhitespace<'a>,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<&'a str> {
        self.words.next()
    }

    fn int<T: TryFrom<i64>>(&mut self) -> Option<T> {
        T::try_from(number(self.next()?)?).ok()
    }

    fn label(&mut self) -> Option<u32> {
        self.next()?.strip_prefix('@')?.parse().ok()
    }

    fn target(&mut self) -> Option<Target> {
        let token = self.next()?;
        match token.strip_prefix('@') {
            Some(label) => label.parse().ok().map(Target::Got),
            None => i32::try_from(number(token)?).ok().map(Target::Raw),
        }
    }
}

fn parse_call(tokens: &mut Tokens<'_>) -> Option<Call> {
    Some(match tokens.next()? {
        "semget" => Call::SemGet {
            key: tokens.int()?,
            nsems: tokens.int()?,
            flags: tokens.int()?,
        },
        "semop" => {
            let id = tokens.target()?;
            let mut ops = Vec::new();
            let mut timeout = None;
            while let Some(token) = tokens.next() {
                if let Some(time) = token.strip_prefix("timeout=") {
                    let (sec, nsec) = time.split_once('.')?;
                    timeout = Some((number(sec)?, number(nsec)?));
                    continue;
                }
                let mut parts = token.split(':');
                let mut part = || number(parts.next()?);
                let op = (
                    u16::try_from(part()?).ok()?,
                    i16::try_from(part()?).ok()?,
                    i16::try_from(part()?).ok()?,
                );
                ops.push(op);
            }
            Call::SemOp { id, ops, timeout }
        }
        "semctl" => Call::SemCtl {
            id: tokens.target()?,
            num: tokens.int()?,
            cmd: tokens.int()?,
            arg: tokens.int()?,
        },
        "msgget" => Call::MsgGet {
            key: tokens.int()?,
            flags: tokens.int()?,
        },
        "msgsnd" => Call::MsgSnd {
            id: tokens.target()?,
            mtype: tokens.int()?,
            size: tokens.int()?,
            flags: tokens.int()?,
        },
        "msgrcv" => Call::MsgRcv {
            id: tokens.target()?,
            size: tokens.int()?,
            mtype: tokens.int()?,
            flags: tokens.int()?,
        },
        "msgctl" => Call::MsgCtl {
            id: tokens.target()?,
            cmd: tokens.int()?,
            arg: tokens.int()?,
            qbytes: tokens.int()?,
        },
        "shmget" => Call::ShmGet {
            key: tokens.int()?,
            size: tokens.int()?,
            flags: tokens.int()?,
        },
        "shmat" => Call::ShmAt {
            id: tokens.target()?,
            flags: tokens.int()?,
            at: tokens.int()?,
        },
        "shmdt" => Call::ShmDt {
            at: tokens.label()?,
        },
        "shmctl" => Call::ShmCtl {
            id: tokens.target()?,
            cmd: tokens.int()?,
            arg: tokens.int()?,
        },
        "poke" => Call::Poke {
            at: tokens.label()?,
            offset: tokens.int()?,
            byte: tokens.int()?,
        },
        "peek" => Call::Peek {
            at: tokens.label()?,
            offset: tokens.int()?,
            len: tokens.int()?,
        },
        "interrupt" => Call::Interrupt,
        _ => return None,
    })
}

impl FromStr for Call {
    type Err = BadStep;

    fn from_str(line: &str) -> Result<Call, BadStep> {
        let mut tokens = Tokens {
            words: line.split_whitespace(),
        };
        match parse_call(&mut tokens) {
            Some(call) if tokens.next().is_none() => Ok(call),
            _ => Err(BadStep(line.to_string())),
        }
    }
}

impl FromStr for Step {
    type Err = BadStep;

    fn from_str(line: &str) -> Result<Step, BadStep> {
        let bad = || BadStep(line.to_string());
        let (label, rest) = line.trim().split_once(": ").ok_or_else(bad)?;
        let (worker, call) = rest.split_once(' ').ok_or_else(bad)?;
        Ok(Step {
            label: label.parse().map_err(|_| bad())?,
            worker: worker
                .strip_prefix('w')
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?,
            call: call.parse()?,
        })
    }
}
