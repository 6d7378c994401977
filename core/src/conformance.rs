//! One conformance test body for every [`Waiter`], whatever runs it.
//!
//! The same checks run against the Linux futex, the spin waiter over threads,
//! and the WebAssembly waiter between Node.js workers: only the driver that
//! starts the parties differs. A driver
//!
//! 1. calls [`solo`] on one party;
//! 2. starts `parties` parties at once (threads, workers, tasks), each calling
//!    [`party`] with its own number `0..parties` over one [`Shared`] in memory
//!    they all see;
//! 3. when all have returned, calls [`verify`].
//!
//! Every wait has a deadline ten seconds ahead, and a wait that times out while
//! its word is still unchanged is reported as a lost wake-up, so a broken
//! waiter fails instead of hanging. Available with the `conformance` feature.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::host::{Deadline, Host, Wake};

/// Rounds of the ping-pong between parties 0 and 1.
pub const ROUNDS: u32 = 2_000;

/// Increments each party makes under the lock.
pub const INCREMENTS: u32 = 1_000;

/// How long any one wait may take before a wake-up counts as lost.
const PATIENCE_NANOS: u64 = 10_000_000_000;

/// A conformance check that failed: what was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure(pub &'static str);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The words the parties share. All zero is the starting state, so zeroed
/// shared memory is a valid `Shared`.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Shared {
    /// The ping-pong's sequence number: party 0 moves on even, party 1 on odd.
    turn: AtomicU32,
    /// A three-state lock: 0 free, 1 held, 2 held with sleepers.
    lock: AtomicU32,
    /// Incremented under `lock` with a plain load and store.
    counter: AtomicU32,
    /// Parties that reached the gate.
    arrived: AtomicU32,
    /// Opened (1) by party 0 once every party arrived.
    gate: AtomicU32,
}

impl Shared {
    /// A fresh set of words.
    pub const fn new() -> Shared {
        Shared {
            turn: AtomicU32::new(0),
            lock: AtomicU32::new(0),
            counter: AtomicU32::new(0),
            arrived: AtomicU32::new(0),
            gate: AtomicU32::new(0),
        }
    }
}

/// Checks one party can make alone: a wait on a word that holds another value
/// returns at once; a wait that nobody ends times out, not before its
/// deadline; a deadline already past returns; a wake with no sleeper is
/// harmless.
pub fn solo<H: Host>(host: &H) -> Result<(), Failure> {
    let word = AtomicU32::new(1);
    if host.wait(&word, 0, Some(Deadline::after(host.now(), PATIENCE_NANOS))) != Wake::Woken {
        return Err(Failure("a wait on a changed word did not return Woken"));
    }
    host.wake(&word, 1);
    host.wake(&word, u32::MAX);

    let deadline = Deadline::after(host.now(), 20_000_000);
    let mut timed_out = false;
    for _ in 0..10_000 {
        match host.wait(&word, 1, Some(deadline)) {
            Wake::TimedOut => {
                timed_out = true;
                break;
            }
            // Spurious returns are allowed: wait again.
            Wake::Woken | Wake::Interrupted => {}
        }
    }
    if !timed_out {
        return Err(Failure("a wait nobody ends never timed out"));
    }
    if host.now() < deadline {
        return Err(Failure("a wait timed out before its deadline"));
    }

    let past = host.now();
    if host.wait(&word, 1, Some(past)) == Wake::Interrupted {
        return Err(Failure("a wait with a past deadline was interrupted"));
    }
    Ok(())
}

/// What party `me` of `parties` does: parties 0 and 1 play [`ROUNDS`] rounds of
/// ping-pong, every party makes [`INCREMENTS`] increments under a lock built
/// on the waiter, and then all meet at a gate that party 0 opens with one
/// wake for all.
pub fn party<H: Host>(host: &H, shared: &Shared, me: u32, parties: u32) -> Result<(), Failure> {
    if parties < 2 || me >= parties {
        return Err(Failure(
            "a conformance run needs two parties or more, numbered from 0",
        ));
    }
    if me < 2 {
        ping_pong(host, &shared.turn, me)?;
    }
    for _ in 0..INCREMENTS {
        lock(host, &shared.lock)?;
        let value = shared.counter.load(Ordering::Relaxed);
        shared.counter.store(value + 1, Ordering::Relaxed);
        unlock(host, &shared.lock);
    }
    meet(host, shared, me, parties)
}

/// Checks what every party left behind: no round, increment or arrival lost.
pub fn verify(shared: &Shared, parties: u32) -> Result<(), Failure> {
    if shared.turn.load(Ordering::Acquire) != 2 * ROUNDS {
        return Err(Failure("the ping-pong lost or repeated a round"));
    }
    if shared.counter.load(Ordering::Acquire) != parties * INCREMENTS {
        return Err(Failure(
            "an increment under the lock was lost: the lock admitted two parties",
        ));
    }
    if shared.arrived.load(Ordering::Acquire) != parties || shared.gate.load(Ordering::Acquire) != 1
    {
        return Err(Failure("not every party passed the gate"));
    }
    Ok(())
}

/// Waits while `word` holds `seen`, reporting a lost wake-up if the patience
/// runs out with the word unchanged.
fn wait_while<H: Host>(host: &H, word: &AtomicU32, seen: u32) -> Result<(), Failure> {
    let deadline = Deadline::after(host.now(), PATIENCE_NANOS);
    match host.wait(word, seen, Some(deadline)) {
        Wake::TimedOut if word.load(Ordering::Acquire) == seen => Err(Failure(
            "a wake-up was lost: a sleeper waited out its patience",
        )),
        _ => Ok(()),
    }
}

fn ping_pong<H: Host>(host: &H, turn: &AtomicU32, me: u32) -> Result<(), Failure> {
    for round in 0..ROUNDS {
        let mine = 2 * round + me;
        loop {
            let now = turn.load(Ordering::Acquire);
            if now == mine {
                break;
            }
            if now > mine {
                return Err(Failure("the ping-pong moved on without this party"));
            }
            wait_while(host, turn, now)?;
        }
        turn.store(mine + 1, Ordering::Release);
        host.wake(turn, 1);
    }
    Ok(())
}

fn lock<H: Host>(host: &H, word: &AtomicU32) -> Result<(), Failure> {
    let mut state = match word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => return Ok(()),
        Err(state) => state,
    };
    if state != 2 {
        state = word.swap(2, Ordering::Acquire);
    }
    while state != 0 {
        wait_while(host, word, 2)?;
        state = word.swap(2, Ordering::Acquire);
    }
    Ok(())
}

fn unlock<H: Host>(host: &H, word: &AtomicU32) {
    if word.fetch_sub(1, Ordering::Release) != 1 {
        word.store(0, Ordering::Release);
        host.wake(word, 1);
    }
}

fn meet<H: Host>(host: &H, shared: &Shared, me: u32, parties: u32) -> Result<(), Failure> {
    shared.arrived.fetch_add(1, Ordering::AcqRel);
    if me == 0 {
        loop {
            let arrived = shared.arrived.load(Ordering::Acquire);
            if arrived == parties {
                break;
            }
            wait_while(host, &shared.arrived, arrived)?;
        }
        shared.gate.store(1, Ordering::Release);
        host.wake(&shared.gate, u32::MAX);
        return Ok(());
    }
    host.wake(&shared.arrived, 1);
    while shared.gate.load(Ordering::Acquire) == 0 {
        wait_while(host, &shared.gate, 0)?;
    }
    Ok(())
}

/// Runs the whole body over `parties` std threads, party `me` with the host
/// `host_of(me)`: [`solo`], then [`party`] on every thread, then [`verify`].
#[cfg(feature = "conformance-threads")]
pub fn run_on_threads<H: Host + Send>(
    host_of: impl Fn(u32) -> H,
    parties: u32,
) -> Result<(), Failure> {
    solo(&host_of(0))?;
    let shared = Shared::new();
    std::thread::scope(|scope| {
        let runs: std::vec::Vec<_> = (0..parties)
            .map(|me| {
                let host = host_of(me);
                let shared = &shared;
                scope.spawn(move || party(&host, shared, me, parties))
            })
            .collect();
        runs.into_iter()
            .try_for_each(|run| run.join().unwrap_or(Err(Failure("a party panicked"))))
    })?;
    verify(&shared, parties)
}
