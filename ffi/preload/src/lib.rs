//! The LD_PRELOAD library of usysv (`libusysv_preload.so`).
//!
//! It will export `shmget`, `semop` and the other standard names once the IPC
//! kinds exist; see the project's issue tracker. Nothing is exported yet.
