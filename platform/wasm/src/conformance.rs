//! The waiter conformance body ([`usysv_core::conformance`]) between
//! workers: JavaScript is the driver. It calls [`usysv_conformance_solo`] in
//! one worker, then [`usysv_conformance_party`] in `n` workers at once, then
//! [`usysv_conformance_verify`]. The parties' [`Shared`] words are a static,
//! which every instance of the module sees (statics live in the shared
//! memory): one run per memory. The body uses only the waiter and the
//! clock, so the hosts' party numbers play no part.
//!
//! Each export returns 0 on success, or the failure's text as
//! `address << 32 | length` (UTF-8 bytes in the memory).

use usysv_core::conformance::{self, Failure, Shared};

use crate::host::WasmHost;

static SHARED: Shared = Shared::new();

fn outcome(result: Result<(), Failure>) -> u64 {
    match result {
        Ok(()) => 0,
        Err(Failure(text)) => (text.as_ptr() as u64) << 32 | text.len() as u64,
    }
}

/// The checks one party makes alone ([`conformance::solo`]).
#[no_mangle]
pub extern "C" fn usysv_conformance_solo() -> u64 {
    outcome(conformance::solo(&WasmHost::new(1)))
}

/// Party `me` of `parties` ([`conformance::party`]).
#[no_mangle]
pub extern "C" fn usysv_conformance_party(me: u32, parties: u32) -> u64 {
    outcome(conformance::party(
        &WasmHost::new(me.saturating_add(1)),
        &SHARED,
        me,
        parties,
    ))
}

/// What the parties left behind ([`conformance::verify`]).
#[no_mangle]
pub extern "C" fn usysv_conformance_verify(parties: u32) -> u64 {
    outcome(conformance::verify(&SHARED, parties))
}
