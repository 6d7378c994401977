//! fork and exit, for every arena the process has open.
//!
//! The kernel counts a forked child's inherited shared memory attachments
//! from the instant of the fork, and ends a process's attachments and applies
//! its `SEM_UNDO` adjustments when it exits. Here `pthread_atfork` and
//! `atexit` handlers do the same for every namespace an [`crate::Ipc`] holds:
//!
//! - prepare (in the parent, before the fork): with the process's attachments
//!   held still, each namespace reserves a slot for the child holding copies
//!   of its attachment records ([`Namespace::fork_prepare`]);
//! - child: bumps the fork generation, then claims those slots;
//! - parent: if the fork failed, gives them up. glibc, musl and DragonFly's
//!   libthread_xu leave a failed fork's errno in place for the parent
//!   handlers; the prepare handler cleared it, so a non-zero errno means
//!   failure.
//! - exit: each namespace settles the process's state ([`Namespace::exit`]),
//!   freeing its slot when no other thread is left to use it.
//!
//! One process-wide mutex guards the list of namespaces and is held across
//! every attach and detach, and from the prepare handler to the parent or
//! child handler, so that the copies match the mappings the child inherits.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use usysv_core::{ForkSlot, Namespace};

use super::SystemHost;
use crate::os;

type Ns = Namespace<'static, SystemHost>;

/// The process's open namespaces and the forks in progress, under `lock`.
struct Process {
    lock: UnsafeCell<libc::pthread_mutex_t>,
    state: UnsafeCell<State>,
}

struct State {
    open: Vec<*const Ns>,
    pending: Vec<(*const Ns, ForkSlot)>,
    /// The application's errno when the fork began, given back after.
    saved_errno: i32,
}

// SAFETY: `state` is touched only with `lock` held (see `Held`), and the
// namespaces it points to are `Sync` and stay alive while listed (an `Ipc`
// unlists its namespace before dropping it).
unsafe impl Sync for Process {}

static PROCESS: Process = Process {
    lock: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
    state: UnsafeCell::new(State {
        open: Vec::new(),
        pending: Vec::new(),
        saved_errno: 0,
    }),
};

/// Bumped in the child of every `fork`.
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);
static HANDLERS: Once = Once::new();

/// The fork generation: one relaxed load.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Installs the fork and exit handlers (once).
pub(crate) fn install() {
    HANDLERS.call_once(|| {
        // SAFETY: registers handlers that stay valid for the life of the
        // process (they are functions of this library, which is never
        // unloaded while an arena is open).
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
            libc::atexit(at_exit);
        }
    });
}

/// The process lock, held. Holding it keeps every attach and detach of the
/// process still (`shmat` and `shmdt` hold it across the record and the
/// mapping).
pub(crate) struct Held;

impl Held {
    fn take() -> Held {
        // SAFETY: the mutex is statically initialised and never moved.
        unsafe { libc::pthread_mutex_lock(PROCESS.lock.get()) };
        Held
    }

    // A `&mut` from `&self` is sound here: the process-wide mutex `self`
    // holds is what makes the state exclusive, not the borrow.
    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: the lock is held for the life of `self`, and `State` is
        // reached only through a `Held`, one at a time.
        unsafe { &mut *PROCESS.state.get() }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex in `Held::take`.
        unsafe { libc::pthread_mutex_unlock(PROCESS.lock.get()) };
    }
}

/// Takes the process lock, for an attach or a detach.
pub(crate) fn hold_attachments() -> Held {
    Held::take()
}

/// Lists a namespace for the handlers; it must stay alive until [`forget`].
pub(crate) fn track(ns: &Ns) {
    install();
    Held::take().state().open.push(ns);
}

/// Unlists a namespace (before it drops).
pub(crate) fn forget(ns: &Ns) {
    let held = Held::take();
    let state = held.state();
    state.open.retain(|&open| !std::ptr::eq(open, ns));
    state.pending.retain(|&(open, _)| !std::ptr::eq(open, ns));
}

/// This thread's errno (`__errno_location`, which DragonFly's libc also
/// exports, for language bindings, since 2019).
fn errno() -> *mut i32 {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() }
}

extern "C" fn prepare() {
    let held = Held::take();
    let state = held.state();
    for &ns in &state.open {
        // SAFETY: listed namespaces are alive (see `Process`).
        if let Ok(Some(reserved)) = unsafe { &*ns }.fork_prepare() {
            state.pending.push((ns, reserved));
        }
    }
    // SAFETY: errno is this thread's.
    unsafe {
        state.saved_errno = *errno();
        *errno() = 0;
    }
    // Held until the parent or child handler.
    std::mem::forget(held);
}

extern "C" fn parent() {
    // SAFETY: errno is this thread's.
    let failed = unsafe { *errno() } != 0;
    // SAFETY: the prepare handler of this fork locked the mutex on this thread.
    let state = unsafe { &mut *PROCESS.state.get() };
    for (ns, reserved) in state.pending.drain(..) {
        if failed {
            // SAFETY: listed namespaces are alive (see `Process`).
            unsafe { &*ns }.fork_failed(reserved);
        }
    }
    if !failed {
        // SAFETY: errno is this thread's.
        unsafe { *errno() = state.saved_errno };
    }
    // Unlocks what the prepare handler locked.
    drop(Held);
}

extern "C" fn child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the child's only thread is the one that forked, which holds
    // the mutex since the prepare handler; it is re-initialised here rather
    // than unlocked, as the thread's id changed.
    let state = unsafe {
        PROCESS.lock.get().write(libc::PTHREAD_MUTEX_INITIALIZER);
        &mut *PROCESS.state.get()
    };
    for (ns, reserved) in state.pending.drain(..) {
        // SAFETY: listed namespaces are alive (see `Process`); the child has
        // the same memory. A failure leaves the child registering afresh.
        let _ = unsafe { &*ns }.fork_child(reserved);
    }
    // SAFETY: errno is this thread's.
    unsafe { *errno() = state.saved_errno };
}

extern "C" fn at_exit() {
    let only_thread = os::process::threads() == Some(1);
    let held = Held::take();
    for &ns in &held.state().open {
        // SAFETY: listed namespaces are alive (see `Process`).
        unsafe { &*ns }.exit(only_thread);
    }
}
