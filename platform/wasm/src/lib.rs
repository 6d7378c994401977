//! usysv in WebAssembly: System V IPC between workers that share one
//! `WebAssembly.Memory`.
//!
//! Every worker (a Node.js `worker_threads` worker, a Web Worker)
//! instantiates this module over the same shared memory, imported as
//! `env.memory`. The arena lies in a region of that memory that JavaScript
//! reserves and hands to [`usysv_open`]; the core ([`usysv_core`]) does the
//! rest, as it does between Linux processes.
//!
//! Built for `wasm32-wasip1-threads`, whose target options give atomics and
//! link with an imported shared memory (at most 1 GiB), by nightly cargo with
//! `-Zbuild-std=core` (see the README): the `memory.atomic.wait32` and
//! `notify` intrinsics of `core::arch::wasm32` are still unstable
//! (rust-lang/rust#77839). Nothing but `core` is used: the module imports
//! the memory and one clock function, and no WASI. On other targets the crate
//! is empty, so that host builds of the workspace pass over it.
//!
//! - [`WasmHost`]: waits with `memory.atomic.wait32` and wakes with
//!   `memory.atomic.notify`; reads its clock from one JavaScript import,
//!   `env.usysv_now_ms`; numbers its parties as JavaScript does.
//! - The exports (`usysv_open`, `usysv_semop`, `usysv_msgrcv`, …): the System
//!   V calls over a party's namespace, returning `-errno` on failure.
//!
//! # What JavaScript sets up
//!
//! - **The memory.** One `WebAssembly.Memory({ shared: true })`, at least as
//!   large as the module asks and at most 1 GiB (its declared maximum), given
//!   to every instance as `env.memory`. The module's own data (its statics,
//!   the one-stack-per-module that the linker reserves) lies below its
//!   `__heap_base`; there is no allocator, so everything above is
//!   JavaScript's to place: grown pages (`memory.grow`) are free.
//! - **A stack per worker.** The module's statics live in the shared memory
//!   and are shared by every instance, and so would be the shadow stack: the
//!   global `__stack_pointer` is per instance but starts at the same address
//!   in each. The module exports `__stack_pointer`; every worker sets it,
//!   before its first call, to the top of a region of its own (16-byte
//!   aligned), e.g. `instance.exports.__stack_pointer.value = top`.
//! - **Parties.** Each worker that uses the arena is a party, numbered
//!   `1..=`[`MAX_PARTIES`] by JavaScript, one number per open party (free
//!   again once [`usysv_close`] closed it). The number is its "pid" (what
//!   `GETPID` and `sempid` report).
//! - **The clock.** `env.usysv_now_ms() -> f64`: milliseconds since the
//!   epoch, monotonic and shared by all workers:
//!   `performance.timeOrigin + performance.now()` (a worker's
//!   `performance.now()` alone starts at its own birth, and the arena keeps
//!   times that every party compares).
//!
//! # Panics
//!
//! None: the export layer turns every bad argument into an errno, and built
//! with the `wasm` profile (opt-level 3) the module keeps no panic path of
//! the core either, which the Node test checks in the module's function
//! names (at opt-level "s", LLVM leaves the length checks of the arena's byte
//! copies in). Should a change bring one back, the module still aborts on
//! panic: the handler traps (`unreachable`), the calling worker gets a
//! `WebAssembly.RuntimeError`, and if the call held an object's lock, the
//! object stays locked (see [`WasmHost`]'s liveness).
#![no_std]
// The wait and notify intrinsics (rust-lang/rust#77839).
#![cfg_attr(target_arch = "wasm32", feature(stdarch_wasm_atomic_wait))]
#![deny(missing_docs)]

// Host builds (the workspace's `cargo clippy` and `cargo test`) link the
// cdylib too, which needs a panic handler: std's. The crate's code is
// WebAssembly-only and uses `core` alone.
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
compile_error!(
    "usysv-wasm needs shared memory and atomics: build it for wasm32-wasip1-threads \
     (or with -C target-feature=+atomics,+bulk-memory,+mutable-globals)"
);

#[cfg(target_arch = "wasm32")]
mod exports;
#[cfg(target_arch = "wasm32")]
mod host;

#[cfg(all(target_arch = "wasm32", feature = "conformance"))]
mod conformance;

#[cfg(all(target_arch = "wasm32", feature = "conformance"))]
pub use conformance::{usysv_conformance_party, usysv_conformance_solo, usysv_conformance_verify};
#[cfg(target_arch = "wasm32")]
pub use exports::*;
#[cfg(target_arch = "wasm32")]
pub use host::WasmHost;

/// The most parties (workers) one module's memory serves, numbered
/// `1..=MAX_PARTIES`; also the number of process slots of an arena created
/// by [`usysv_open`](exports::usysv_open).
pub const MAX_PARTIES: u32 = 64;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
