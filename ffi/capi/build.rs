//! Compiles the variadic half of `semctl` (`src/semctl.c`): Rust cannot
//! define a C variadic function on stable, so a C function reads the
//! `union semun` argument and calls the fixed-arity Rust one.

fn main() {
    println!("cargo:rerun-if-changed=src/semctl.c");
    cc::Build::new()
        .file("src/semctl.c")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("usysv_semctl");
}
