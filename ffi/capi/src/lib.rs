//! The C API library of usysv (`libusysv`).
//!
//! It will export `usysv_shmget` … `usysv_msgctl` with the platform libc's
//! signatures and struct layouts once the IPC kinds exist; see the project's
//! issue tracker. Nothing is exported yet.
