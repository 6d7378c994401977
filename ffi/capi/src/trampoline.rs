//! `usysv_semctl`, the variadic `semctl(2)`.
//!
//! Stable Rust cannot define a C variadic function, and a C function linked
//! into a Rust shared library is not exported from it. So the exported
//! symbol is a Rust naked function that jumps, every register and the stack
//! untouched, to the C function in `semctl.c`, which reads the `union
//! semun` for the commands that take one and calls
//! [`usysv_semctl_args`](crate::usysv_semctl_args). The preload library
//! exports `semctl` the same way ([`semctl_trampoline!`]).

extern "C" {
    /// `semctl.c`: `int usysv_semctl_variadic(int semid, int semnum, int
    /// cmd, ...)`. Only ever jumped to, with the caller's own arguments.
    pub fn usysv_semctl_variadic();
}

/// Defines `pub unsafe extern "C" fn $name()`, exported unmangled, as a
/// jump to `usysv_semctl_variadic`: a variadic `semctl` under that name.
#[macro_export]
macro_rules! semctl_trampoline {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        ///
        /// # Safety
        ///
        /// Call it from C as `semctl(2)` is called.
        // The jump leaves every register and the stack as the caller set
        // them, so the C function receives the call itself: its named
        // arguments, its variadic one, and (x86_64) the vector count in %al.
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            ::core::arch::naked_asm!("jmp {}", sym $crate::usysv_semctl_variadic);
            #[cfg(target_arch = "aarch64")]
            ::core::arch::naked_asm!("b {}", sym $crate::usysv_semctl_variadic);
            #[cfg(target_arch = "riscv64")]
            ::core::arch::naked_asm!("tail {}", sym $crate::usysv_semctl_variadic);
        }
        #[cfg(not(any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "riscv64"
        )))]
        compile_error!("semctl_trampoline: no jump instruction written for this architecture");
    };
}

semctl_trampoline!(
    /// `semctl(2)`: declared in `usysv.h` as
    /// `int usysv_semctl(int semid, int semnum, int cmd, ...)`.
    usysv_semctl
);
