//! What POSIX alone says of processes: the clocks, the credentials System V
//! IPC checks, and whether a pid still names a process (signal 0). Each
//! system adds its own view of identity and privilege (`os::process`).

use usysv_core::host::{Deadline, Liveness};
use usysv_core::Cred;

use crate::os;

/// The monotonic clock (`CLOCK_MONOTONIC`).
pub(crate) fn monotonic_now() -> Deadline {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Deadline(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
}

/// Seconds since the epoch (a vDSO call on Linux, no system call).
pub(crate) fn wall_clock() -> i64 {
    // SAFETY: time(NULL) only returns the time.
    unsafe { libc::time(core::ptr::null_mut()) as i64 }
}

/// Whether `pid` is gone, by `kill(pid, 0)`: for when the system's own view
/// of the process cannot be read. A process that exists but may not be
/// signalled (`EPERM`) lives; so does a zombie, which this cannot tell.
pub(crate) fn liveness_by_signal(pid: u32) -> Liveness {
    // SAFETY: signal 0 only checks that the process exists.
    let ret = unsafe { libc::kill(pid as libc::pid_t, 0) };
    let gone = ret != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    if gone {
        Liveness::Dead
    } else {
        Liveness::Alive
    }
}

/// The privileges System V IPC checks beyond the ids: Linux capabilities,
/// or the superuser on systems that have none.
pub(crate) struct Privileges {
    /// `CAP_IPC_OWNER`: bypasses the mode bits.
    pub(crate) ipc_owner: bool,
    /// `CAP_SYS_ADMIN`: may change or remove objects it does not own.
    pub(crate) sys_admin: bool,
    /// `CAP_SYS_RESOURCE`: may raise a queue's `msg_qbytes` above MSGMNB.
    pub(crate) sys_resource: bool,
}

/// The calling process's credentials as System V IPC sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Holds `CAP_IPC_OWNER` in its effective set (on DragonFly, which has
    /// no capabilities, the superuser holds all three).
    pub ipc_owner: bool,
    /// Holds `CAP_SYS_ADMIN` in its effective set.
    pub sys_admin: bool,
    /// Holds `CAP_SYS_RESOURCE` in its effective set.
    pub sys_resource: bool,
}

impl Credentials {
    /// Reads them: `geteuid`, `getegid`, `getgroups`, and the system's
    /// privileges (on Linux, the effective capabilities from
    /// `/proc/self/status`; on DragonFly, the superuser's).
    pub fn current() -> Credentials {
        // SAFETY: these calls have no preconditions and cannot fail.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        // SAFETY: a null buffer with size 0 asks only for the count.
        let count = unsafe { libc::getgroups(0, core::ptr::null_mut()) }.max(0);
        let mut groups = vec![0; count as usize];
        // SAFETY: `groups` has room for `count` gids.
        let got = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
        groups.truncate(got.max(0) as usize);
        let privileges = os::process::privileges(euid);
        Credentials {
            euid,
            egid,
            groups,
            ipc_owner: privileges.ipc_owner,
            sys_admin: privileges.sys_admin,
            sys_resource: privileges.sys_resource,
        }
    }

    /// The view the core's permission checks take.
    pub fn as_cred(&self) -> Cred<'_> {
        Cred {
            euid: self.euid,
            egid: self.egid,
            groups: &self.groups,
            ipc_owner: self.ipc_owner,
            sys_admin: self.sys_admin,
            sys_resource: self.sys_resource,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_match_the_process() {
        let creds = Credentials::current();
        // SAFETY: no preconditions.
        assert_eq!(creds.euid, unsafe { libc::geteuid() });
        assert_eq!(creds.as_cred().egid, creds.egid);
    }

    #[test]
    fn this_process_answers_signal_zero() {
        assert_eq!(liveness_by_signal(std::process::id()), Liveness::Alive);
    }
}
