//! The module's exports: the System V calls over a party's namespace.
//!
//! # Convention
//!
//! Every call names the calling party first (`1..=`[`MAX_PARTIES`], see the
//! crate docs) and returns an `i32`: on success what the System V call
//! returns (an id, a value, a byte count, or 0), on failure the negated
//! Linux errno (`-22` for `EINVAL`). Pointers are byte addresses in the
//! shared memory, laid out as C on wasm32 lays them out (`long` is 32 bits);
//! a null pointer, one misaligned for what it points to, or one whose bytes
//! run past the end of the memory, is `-EFAULT`. Flags and commands have their Linux values (`IPC_CREAT`
//! 0o1000, `IPC_EXCL` 0o2000, `IPC_NOWAIT` 0o4000, `SEM_UNDO` 0x1000,
//! `IPC_RMID` 0, `GETVAL` 12, `SETVAL` 16, …).
//!
//! # The party table
//!
//! The module's statics live in the shared memory, so one table serves
//! every instance: entry `party - 1` holds that party's [`Namespace`] and
//! credentials, from [`usysv_open`] to [`usysv_close`]. Its state word says
//! whether it is free, being opened or closed, or open with so many calls in
//! flight; a call counts itself in for its duration, so a close (which drops
//! the namespace) can never pull it from under a call, even one made with
//! another worker's party number by mistake.

use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ffi::{c_long, c_void};
use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr;
use core::slice;
use core::sync::atomic::{AtomicU32, Ordering};

use usysv_core::format::FormatError;
use usysv_core::sem::{SemBuf, SemQuery, Timeout};
use usysv_core::{Cred, Errno, Layout, Limits, Namespace, OpenError, Result, DEFAULT_LIMITS};

use crate::host::WasmHost;
use crate::MAX_PARTIES;

/// `semctl` and `msgctl` commands (Linux numbers).
const IPC_RMID: i32 = 0;
const GETPID: i32 = 11;
const GETVAL: i32 = 12;
const GETNCNT: i32 = 14;
const GETZCNT: i32 = 15;
const SETVAL: i32 = 16;

/// Sets, queues and segments an arena made by [`usysv_open`] holds at most,
/// of each kind.
pub const OBJECTS: u32 = 256;

/// The limits of an arena made by [`usysv_open`]: Linux's defaults, with
/// [`OBJECTS`] objects of each kind, a process slot per party, and (set by
/// [`limits_for`]) a heap filling the rest of the region.
const LIMITS: Limits = Limits {
    semmni: OBJECTS,
    msgmni: OBJECTS,
    shmmni: OBJECTS,
    procs: MAX_PARTIES,
    heap_bytes: 4096,
    ..DEFAULT_LIMITS
};

const WASM_PAGE: u64 = 65536;

/// `struct timespec` on wasm32 (wasi-libc: a 64-bit `time_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds.
    pub tv_nsec: c_long,
}

struct Opened {
    namespace: Namespace<'static, WasmHost>,
    uid: u32,
    gid: u32,
}

impl Opened {
    fn cred(&self) -> Cred<'static> {
        Cred {
            euid: self.uid,
            egid: self.gid,
            groups: &[],
            ipc_owner: false,
            sys_admin: false,
            sys_resource: false,
        }
    }
}

/// One entry of the party table.
struct Party {
    /// `FREE`, `CHANGING` (its worker is opening or closing it), or
    /// `OPEN + n`: open, with `n` calls in flight.
    state: AtomicU32,
    /// Initialised while the state is `OPEN` or above.
    opened: UnsafeCell<MaybeUninit<Opened>>,
}

const FREE: u32 = 0;
const CHANGING: u32 = 1;
const OPEN: u32 = 2;

// SAFETY: `opened` is written only by the caller that moved the state from
// FREE to CHANGING (it alone may, until it publishes OPEN with Release),
// read only by calls counted in (state above OPEN, taken with Acquire), and
// dropped only by the caller that moved it from OPEN (no call counted in)
// to CHANGING. What the readers share is a `Namespace`, which is `Sync`
// (checked below), and two plain numbers.
unsafe impl Sync for Party {}

const _: () = {
    const fn sync<T: Sync>() {}
    sync::<Namespace<'static, WasmHost>>();
};

impl Party {
    const fn new() -> Party {
        Party {
            state: AtomicU32::new(FREE),
            opened: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Counts a call in: `EINVAL` if the party is not open.
    fn enter(&'static self) -> Result<InUse> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state < OPEN {
                return Err(Errno::EINVAL);
            }
            let more = state.checked_add(1).ok_or(Errno::EAGAIN)?;
            match self.state.compare_exchange_weak(
                state,
                more,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(InUse(self)),
                Err(now) => state = now,
            }
        }
    }
}

/// A call counted in on an open party; counts itself out when dropped.
struct InUse(&'static Party);

impl InUse {
    fn opened(&self) -> &Opened {
        // SAFETY: counted in, so the entry is open and initialised, and no
        // close can drop it until this guard is gone.
        unsafe { (*self.0.opened.get()).assume_init_ref() }
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.state.fetch_sub(1, Ordering::Release);
    }
}

static PARTIES: [Party; MAX_PARTIES as usize] = [const { Party::new() }; MAX_PARTIES as usize];

fn party(number: u32) -> Result<&'static Party> {
    number
        .checked_sub(1)
        .and_then(|index| PARTIES.get(index as usize))
        .ok_or(Errno::EINVAL)
}

fn status(result: Result<i32>) -> i32 {
    result.unwrap_or_else(|errno| -errno.raw())
}

/// Runs `body` on party `number`'s namespace, with its credentials.
fn call(
    number: u32,
    body: impl FnOnce(&Namespace<'static, WasmHost>, &Cred<'_>) -> Result<i32>,
) -> i32 {
    status(party(number).and_then(Party::enter).and_then(|in_use| {
        let opened = in_use.opened();
        body(&opened.namespace, &opened.cred())
    }))
}

/// Checks that `count` values of `T` at `at` lie in the linear memory and
/// are aligned for `T`: `EFAULT` if not.
fn check_buffer<T>(at: *const T, count: usize) -> Result<()> {
    let start = at as usize as u64;
    let bytes = (count as u64)
        .checked_mul(size_of::<T>() as u64)
        .ok_or(Errno::EFAULT)?;
    let memory = wasm32::memory_size(0) as u64 * WASM_PAGE;
    if start == 0 || start % align_of::<T>() as u64 != 0 || start + bytes > memory {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Where the module's own memory ends (its stack, data and statics lie
/// below): everything above is JavaScript's to place.
fn heap_base() -> usize {
    extern "C" {
        /// Defined by the linker at the end of the module's data.
        static __heap_base: u8;
    }
    ptr::addr_of!(__heap_base) as usize
}

/// The limits of an arena filling `len` bytes: [`LIMITS`] with the largest
/// heap that fits (`ENOMEM` if not even the smallest does).
fn limits_for(len: usize) -> Result<Limits> {
    let fixed = Layout::compute(&LIMITS).map_err(|_| Errno::EINVAL)?;
    let usable = (len as u64 & !4095).min(3 << 30);
    let heap = usable
        .checked_sub(u64::from(fixed.heap_start))
        .map(|heap| heap & !63)
        .filter(|&heap| heap >= u64::from(LIMITS.heap_bytes))
        .ok_or(Errno::ENOMEM)?;
    Ok(Limits {
        heap_bytes: heap as u32,
        ..LIMITS
    })
}

fn open_error(err: OpenError) -> Errno {
    match err {
        OpenError::NoProcessSlot => Errno::ENOSPC,
        OpenError::Format(FormatError::TooSmall { .. } | FormatError::Truncated { .. }) => {
            Errno::ENOMEM
        }
        // Something else is there, or an arena of another format.
        OpenError::Format(_) => Errno::EINVAL,
    }
}

/// Opens the arena in the `len` bytes at `arena` for party `party`, acting
/// as user `uid` and group `gid` (no capabilities). The first party to open
/// zeroed memory formats it, with [`OBJECTS`] objects of each kind,
/// [`MAX_PARTIES`] process slots and the rest as heap; the others wait until
/// it is ready and use it as it is. Returns 0; `-EBUSY` if the party is
/// open already, `-EINVAL` for a party number out of range or memory that
/// holds something else than an arena of this format, `-EFAULT` for a
/// region that is null, not 4-byte aligned, beyond the memory or below
/// `__heap_base`, `-ENOMEM` if the region is too small, `-ENOSPC` if every
/// process slot is taken.
///
/// # Safety
///
/// The region is zero-filled or an arena, and from now on touched by
/// nothing but usysv's calls: not by JavaScript, nor a stack, nor a buffer
/// handed to a call.
#[no_mangle]
pub unsafe extern "C" fn usysv_open(
    party_number: u32,
    arena: *mut u32,
    len: usize,
    uid: u32,
    gid: u32,
) -> i32 {
    let slot = match party(party_number) {
        Ok(slot) => slot,
        Err(errno) => return -errno.raw(),
    };
    if slot
        .state
        .compare_exchange(FREE, CHANGING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return -Errno::EBUSY.raw();
    }
    let opened = check_buffer(arena, len / 4)
        .and_then(|()| {
            if (arena as usize) < heap_base() {
                return Err(Errno::EFAULT);
            }
            // SAFETY: the words lie in the linear memory (checked), which
            // never shrinks, so they live as long as the module; they are
            // aligned (checked); the caller promises that nothing but
            // usysv's calls touches them, and those only through atomics.
            let memory = unsafe { slice::from_raw_parts(arena.cast::<AtomicU32>(), len / 4) };
            let limits = limits_for(len)?;
            Namespace::create_or_open(memory, &limits, WasmHost::new(party_number))
                .map_err(open_error)
        })
        .map(|namespace| Opened {
            namespace,
            uid,
            gid,
        });
    match opened {
        Ok(opened) => {
            // SAFETY: the state is CHANGING and this call made it so: no
            // one else touches the entry.
            unsafe { (*slot.opened.get()).write(opened) };
            slot.state.store(OPEN, Ordering::Release);
            0
        }
        Err(errno) => {
            slot.state.store(FREE, Ordering::Release);
            -errno.raw()
        }
    }
}

/// Closes party `party`'s namespace: applies its `SEM_UNDO` adjustments and
/// frees its process slot, as a process's exit does. Any instance may close
/// any party: JavaScript closes the party of a worker that ended without
/// closing it. Returns 0; `-EINVAL` if it is not open, `-EBUSY` while a call
/// on it is in flight (for good, if the worker ended inside that call).
#[no_mangle]
pub extern "C" fn usysv_close(party_number: u32) -> i32 {
    status(party(party_number).and_then(|slot| {
        match slot
            .state
            .compare_exchange(OPEN, CHANGING, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {}
            Err(state) if state > OPEN => return Err(Errno::EBUSY),
            Err(_) => return Err(Errno::EINVAL),
        }
        // SAFETY: the state went from OPEN, with no call in flight, to
        // CHANGING, by this call: the entry is initialised and no one else
        // can reach it.
        unsafe { (*slot.opened.get()).assume_init_drop() };
        slot.state.store(FREE, Ordering::Release);
        Ok(0)
    }))
}

/// `semget(2)`: the id of the semaphore set of `key` (`IPC_PRIVATE`, 0,
/// for a new one), creating it with `nsems` semaphores under `IPC_CREAT`.
#[no_mangle]
pub extern "C" fn usysv_semget(party_number: u32, key: i32, nsems: i32, semflg: i32) -> i32 {
    call(party_number, |ns, cred| ns.semget(key, nsems, semflg, cred))
}

/// `semop(2)`: applies the `nsops` operations at `sops` (`struct sembuf`:
/// `u16` number, `i16` operation, `i16` flags) to set `semid`, all or none,
/// waiting until they can be applied unless `IPC_NOWAIT`. Returns 0.
///
/// # Safety
///
/// Nothing else writes the operations during the call.
#[no_mangle]
pub unsafe extern "C" fn usysv_semop(
    party_number: u32,
    semid: i32,
    sops: *const SemBuf,
    nsops: usize,
) -> i32 {
    // SAFETY: the caller's promise, passed on; no timeout.
    unsafe { usysv_semtimedop(party_number, semid, sops, nsops, ptr::null()) }
}

/// `semtimedop(2)`: [`usysv_semop`] waiting at most `timeout` (a
/// [`Timespec`]; none when null); `-EAGAIN` when it passes.
///
/// # Safety
///
/// Nothing else writes the operations or the timeout during the call.
#[no_mangle]
pub unsafe extern "C" fn usysv_semtimedop(
    party_number: u32,
    semid: i32,
    sops: *const SemBuf,
    nsops: usize,
    timeout: *const Timespec,
) -> i32 {
    call(party_number, |ns, cred| {
        // The kernel checks the count and the id's sign before it reads
        // anything.
        if nsops == 0 || semid < 0 {
            return Err(Errno::EINVAL);
        }
        if nsops > ns.limits().semopm as usize {
            return Err(Errno::E2BIG);
        }
        check_buffer(sops, nsops)?;
        // SAFETY: `nsops` operations at `sops` lie in the memory, aligned
        // (checked), and the caller promises no one writes them meanwhile.
        let ops = unsafe { slice::from_raw_parts(sops, nsops) };
        let timeout = if timeout.is_null() {
            None
        } else {
            check_buffer(timeout, 1)?;
            // SAFETY: a `Timespec` in the memory, aligned (checked); every
            // bit pattern is one; the caller promises no one writes it.
            let t = unsafe { ptr::read(timeout) };
            Some(Timeout {
                sec: t.tv_sec,
                nsec: i64::from(t.tv_nsec),
            })
        };
        ns.semtimedop(semid, ops, timeout, cred).map(|()| 0)
    })
}

/// `semctl(2)` for the commands that need no buffer: `IPC_RMID` (0),
/// `GETPID` (11), `GETVAL` (12), `GETNCNT` (14), `GETZCNT` (15), and
/// `SETVAL` (16, to `val`); `-EINVAL` for any other.
#[no_mangle]
pub extern "C" fn usysv_semctl(
    party_number: u32,
    semid: i32,
    semnum: i32,
    cmd: i32,
    val: i32,
) -> i32 {
    call(party_number, |ns, cred| {
        // Linux refuses a negative id for every command, first.
        if semid < 0 {
            return Err(Errno::EINVAL);
        }
        let query = |query| ns.sem_query(semid, semnum, query, cred);
        match cmd {
            IPC_RMID => ns.sem_remove(semid, cred).map(|()| 0),
            GETPID => query(SemQuery::Pid),
            GETVAL => query(SemQuery::Value),
            GETNCNT => query(SemQuery::WaitingToDecrease),
            GETZCNT => query(SemQuery::WaitingForZero),
            SETVAL => ns.sem_setval(semid, semnum, val, cred).map(|()| 0),
            _ => Err(Errno::EINVAL),
        }
    })
}

/// `msgget(2)`: the id of the message queue of `key` (`IPC_PRIVATE` for a
/// new one), creating it under `IPC_CREAT`.
#[no_mangle]
pub extern "C" fn usysv_msgget(party_number: u32, key: i32, msgflg: i32) -> i32 {
    call(party_number, |ns, cred| ns.msgget(key, msgflg, cred))
}

/// `msgsnd(2)`: queues the message at `msgp` (`struct msgbuf`: a 32-bit
/// `long` type above 0, then `msgsz` bytes), waiting for room unless
/// `IPC_NOWAIT`. Returns 0.
///
/// # Safety
///
/// Nothing else writes the message during the call.
#[no_mangle]
pub unsafe extern "C" fn usysv_msgsnd(
    party_number: u32,
    msqid: i32,
    msgp: *const c_void,
    msgsz: usize,
    msgflg: i32,
) -> i32 {
    call(party_number, |ns, cred| {
        // Linux reads the type before it checks anything else.
        let mtype_at = msgp.cast::<c_long>();
        check_buffer(mtype_at, 1)?;
        // SAFETY: a `long` in the memory, aligned (checked); the caller
        // promises no one writes it.
        let mtype = unsafe { ptr::read(mtype_at) };
        if msgsz > ns.limits().msgmax as usize {
            return Err(Errno::EINVAL);
        }
        // In the memory (checked) by the `long`'s check, so no overflow.
        let text = msgp.cast::<u8>().wrapping_add(size_of::<c_long>());
        check_buffer(text, msgsz)?;
        // SAFETY: `msgsz` bytes in the memory (checked), which the caller
        // promises no one writes meanwhile.
        let data = unsafe { slice::from_raw_parts(text, msgsz) };
        ns.msgsnd(msqid, i64::from(mtype), data, msgflg, cred)
            .map(|()| 0)
    })
}

/// `msgrcv(2)`: takes a message into `msgp` (its type, then up to `msgsz`
/// bytes): the first (`msgtyp` 0), the first of type `msgtyp` (above 0, or
/// of any other type with `MSG_EXCEPT`), or the first of the lowest type up
/// to `-msgtyp` (below 0), waiting for one unless `IPC_NOWAIT`. Returns the
/// bytes received.
///
/// # Safety
///
/// Nothing else reads or writes the buffer during the call.
#[no_mangle]
pub unsafe extern "C" fn usysv_msgrcv(
    party_number: u32,
    msqid: i32,
    msgp: *mut c_void,
    msgsz: usize,
    msgtyp: c_long,
    msgflg: i32,
) -> i32 {
    call(party_number, |ns, cred| {
        let bufsz = i32::try_from(msgsz).map_err(|_| Errno::EINVAL)?;
        if msqid < 0 {
            return Err(Errno::EINVAL);
        }
        // No message is longer than MSGMAX: no more of the buffer is written.
        let room = msgsz.min(ns.limits().msgmax as usize);
        let mtype_at = msgp.cast::<c_long>();
        check_buffer(mtype_at, 1)?;
        let text = msgp.cast::<u8>().wrapping_add(size_of::<c_long>());
        check_buffer(text, room)?;
        // SAFETY: `room` bytes in the memory (checked), which the caller
        // promises no one else touches meanwhile.
        let out = unsafe { slice::from_raw_parts_mut(text, room) };
        let (mtype, len) = ns.msgrcv(msqid, bufsz.into(), msgtyp.into(), msgflg, out, cred)?;
        // Every type in a queue came from a sender's `long`.
        // SAFETY: a `long` in the memory, aligned (checked), the caller's.
        unsafe { ptr::write(mtype_at, mtype as c_long) };
        // At most `room` bytes, itself at most `bufsz`.
        Ok(len as i32)
    })
}

/// `msgctl(2)` for `IPC_RMID` (0), the one command that needs no buffer;
/// `-EINVAL` for any other.
#[no_mangle]
pub extern "C" fn usysv_msgctl(party_number: u32, msqid: i32, cmd: i32) -> i32 {
    call(party_number, |ns, cred| {
        if msqid < 0 || cmd != IPC_RMID {
            return Err(Errno::EINVAL);
        }
        ns.msg_remove(msqid, cred).map(|()| 0)
    })
}
