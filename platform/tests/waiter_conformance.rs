//! The waiter conformance body (`usysv_core::conformance`) over this
//! system's waiter (the Linux shared futex; `umtx` on DragonFly, where this
//! compiles but has not run), four threads standing for four processes.

use usysv_platform::SystemHost;

#[test]
fn the_system_waiter_conforms() {
    if let Err(failure) = usysv_core::conformance::run_on_threads(|_| SystemHost::default(), 4) {
        panic!("the system's waiter: {failure}");
    }
}
