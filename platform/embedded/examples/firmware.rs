//! A bare-metal program for a Cortex-M4F (`thumbv7em-none-eabihf`): two tasks
//! in the style of a main loop and an interrupt-driven worker, sharing a
//! static arena through a semaphore set, a message queue and a segment placed
//! in the arena. It is built, not run, to show that the core links with no
//! allocator and no panic path (see the panic handler), and to measure its
//! code size (`.ci/run` prints it).
//!
//! Build: `cargo build --release -p usysv-embedded --example firmware
//! --features firmware --target thumbv7em-none-eabihf`.
#![no_std]
#![no_main]

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};

use usysv_core::host::Deadline;
use usysv_core::perm::{Cred, IPC_CREAT, IPC_PRIVATE};
use usysv_core::sem::SemBuf;
use usysv_core::shm::Placement;
use usysv_core::{Limits, Namespace, DEFAULT_LIMITS};
use usysv_embedded::{Spin, TaskHost};

/// Room for a handful of objects and a 16 KiB heap.
const LIMITS: Limits = Limits {
    semmni: 8,
    msgmni: 4,
    shmmni: 4,
    procs: 4,
    heap_bytes: 16 << 10,
    ..DEFAULT_LIMITS
};

/// 64 KiB of RAM, zero at reset.
const WORDS: usize = 16 << 10;
static ARENA: [AtomicU32; WORDS] = [const { AtomicU32::new(0) }; WORDS];

/// The board's tick, which a SysTick interrupt would advance every millisecond.
static TICKS: AtomicU32 = AtomicU32::new(0);

const ROOT: Cred<'static> = Cred {
    euid: 0,
    egid: 0,
    groups: &[],
    ipc_owner: true,
    sys_admin: true,
    sys_resource: true,
};

fn now() -> Deadline {
    Deadline(u64::from(TICKS.load(Ordering::Relaxed)) * 1_000_000)
}

fn no_wall_clock() -> i64 {
    0
}

fn host(task: u32) -> TaskHost {
    TaskHost {
        task,
        spin: Spin {
            now,
            relax: core::hint::spin_loop,
        },
        wall_clock: no_wall_clock,
    }
}

/// One round of each kind of object: what a task would do with them.
fn exercise(task: u32) -> Result<u32, usysv_core::Errno> {
    let ns = Namespace::create_or_open(&ARENA, &LIMITS, host(task))
        .map_err(|_| usysv_core::Errno::ENOSPC)?;
    let sem = ns.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600, &ROOT)?;
    let post = SemBuf {
        sem_num: 0,
        sem_op: 1,
        sem_flg: 0,
    };
    let take = SemBuf {
        sem_num: 0,
        sem_op: -1,
        sem_flg: 0,
    };
    ns.semop(sem, &[post], &ROOT)?;
    ns.semop(sem, &[take], &ROOT)?;

    let queue = ns.msgget(IPC_PRIVATE, IPC_CREAT | 0o600, &ROOT)?;
    ns.msgsnd(queue, 7, b"sensor reading", 0, &ROOT)?;
    let mut reading = [0u8; 32];
    let (mtype, len) = ns.msgrcv(queue, reading.len() as i64, 0, 0, &mut reading, &ROOT)?;

    let in_arena = |_: i32, _: u64, _: &usysv_core::IpcPerm| Ok(Placement::Arena);
    let shm = ns.shmget(IPC_PRIVATE, 256, IPC_CREAT | 0o600, &ROOT, in_arena)?;
    let at = ns.shm_attach_check(shm, 0, &ROOT)?;
    let offset = at.arena_offset.unwrap_or(0);
    ns.shm_attached(shm, u64::from(offset), at.segsz)?;
    ns.shm_remove(shm, &ROOT)?;
    ns.shm_detach(u64::from(offset), &mut |_, _| {})?;
    ns.msg_remove(queue, &ROOT)?;
    ns.sem_remove(sem, &ROOT)?;
    Ok(mtype as u32 + len as u32)
}

/// The entry point (the linker's default; a board's vector table would name
/// it as the reset handler).
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let outcome = exercise(1);
    TICKS.store(matches!(outcome, Ok(21)) as u32, Ordering::Relaxed);
    loop {
        core::hint::spin_loop();
    }
}

// No panic path may survive optimisation, in the core or here. The panic
// handler calls a function that is defined nowhere: if nothing can panic,
// nothing reaches the handler and the linker drops it with the unused
// sections; if any panic path is left, the link fails naming this symbol
// (the trick of the `no-panic` crate). To find the culprit, link anyway with
// `RUSTFLAGS="-C link-arg=--noinhibit-exec"` and look in `llvm-objdump -d -C`
// for the callers of `core::panicking` and `core::slice::index`.
extern "C" {
    fn usysv_firmware_panic_path_linked() -> !;
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    // SAFETY: never executed: a program that can reach this call does not link.
    unsafe { usysv_firmware_panic_path_linked() }
}
