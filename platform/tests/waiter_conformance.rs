//! The waiter conformance body (`usysv_core::conformance`) over the Linux
//! shared futex, four threads standing for four processes.

use usysv_platform::LinuxHost;

#[test]
fn the_futex_waiter_conforms() {
    if let Err(failure) = usysv_core::conformance::run_on_threads(|_| LinuxHost::default(), 4) {
        panic!("the futex waiter: {failure}");
    }
}
