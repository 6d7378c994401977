//! Credentials and the permission rules of Linux `ipcperms()`.

use crate::arena::{Record, Word};

/// `IPC_PRIVATE`: the key that always makes a new object.
pub const IPC_PRIVATE: i32 = 0;
/// `IPC_CREAT`: create the object if the key has none.
pub const IPC_CREAT: i32 = 0o1000;
/// `IPC_EXCL`: with `IPC_CREAT`, fail with `EEXIST` if the key has one.
pub const IPC_EXCL: i32 = 0o2000;
/// `IPC_NOWAIT`: fail instead of blocking.
pub const IPC_NOWAIT: i32 = 0o4000;

/// The permission bits of a mode (`S_IRWXUGO`).
pub const MODE_BITS: u32 = 0o777;

/// Who is asking: the effective ids, the supplementary groups and the two
/// capabilities System V IPC consults.
#[derive(Clone, Copy, Debug)]
pub struct Cred<'a> {
    /// Effective user id.
    pub euid: u32,
    /// Effective group id (Linux checks the filesystem gid, which follows it).
    pub egid: u32,
    /// Supplementary groups.
    pub groups: &'a [u32],
    /// `CAP_IPC_OWNER`: bypasses the mode bits.
    pub ipc_owner: bool,
    /// `CAP_SYS_ADMIN`: may change or remove objects it does not own.
    pub sys_admin: bool,
    /// `CAP_SYS_RESOURCE`: may raise a queue's `msg_qbytes` above MSGMNB.
    pub sys_resource: bool,
}

impl Cred<'_> {
    /// Linux `in_group_p()`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.egid == gid || self.groups.contains(&gid)
    }
}

/// The permission part of an object, in the arena.
#[repr(C)]
pub struct PermRecord {
    pub(crate) uid: Word,
    pub(crate) gid: Word,
    pub(crate) cuid: Word,
    pub(crate) cgid: Word,
    pub(crate) mode: Word,
}

// SAFETY: `repr(C)`, five words, no padding.
unsafe impl Record for PermRecord {}

impl PermRecord {
    /// [`IpcPerm::allows`], reading only the words it needs.
    #[inline]
    pub(crate) fn allows(&self, cred: &Cred<'_>, flag: u32) -> bool {
        ipcperms(
            self.mode.get(),
            [self.uid.get(), self.cuid.get()],
            [self.gid.get(), self.cgid.get()],
            cred,
            flag,
        )
    }
}

/// Linux `ipcperms()`: the owner class if `cred` is the owner or creator,
/// else the group class if it is in the group or the creator's group, else
/// the other class; `CAP_IPC_OWNER` bypasses.
#[inline]
fn ipcperms(mode: u32, users: [u32; 2], groups: [u32; 2], cred: &Cred<'_>, flag: u32) -> bool {
    let requested = (flag >> 6) | (flag >> 3) | flag;
    let granted = if users.contains(&cred.euid) {
        mode >> 6
    } else if cred.in_group(groups[1]) || cred.in_group(groups[0]) {
        mode >> 3
    } else {
        mode
    };
    requested & !granted & 0o7 == 0 || cred.ipc_owner
}

/// An object's `ipc_perm`, copied out of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcPerm {
    /// The key (`IPC_PRIVATE` for private objects).
    pub key: i32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Mode: permission bits, and kind-specific flags above them.
    pub mode: u32,
    /// Sequence number (the id divided by `IPCMNI`).
    pub seq: u32,
}

impl IpcPerm {
    /// Linux `ipcperms()`: whether `cred` may access the object for the
    /// permission bits in `flag` (e.g. `0o400` to read, `0o200` to alter).
    pub fn allows(&self, cred: &Cred<'_>, flag: u32) -> bool {
        ipcperms(
            self.mode,
            [self.uid, self.cuid],
            [self.gid, self.cgid],
            cred,
            flag,
        )
    }

    /// Whether `cred` may change or remove the object (`IPC_SET`, `IPC_RMID`):
    /// it owns or created it, or has `CAP_SYS_ADMIN`.
    pub fn owned_by(&self, cred: &Cred<'_>) -> bool {
        cred.euid == self.cuid || cred.euid == self.uid || cred.sys_admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(mode: u32) -> IpcPerm {
        IpcPerm {
            key: 1,
            uid: 100,
            gid: 200,
            cuid: 101,
            cgid: 201,
            mode,
            seq: 0,
        }
    }

    fn cred(euid: u32, egid: u32, groups: &[u32]) -> Cred<'_> {
        Cred {
            euid,
            egid,
            groups,
            ipc_owner: false,
            sys_admin: false,
            sys_resource: false,
        }
    }

    #[test]
    fn owner_then_group_then_other_bits_apply() {
        let p = perm(0o640);
        assert!(p.allows(&cred(100, 0, &[]), 0o600));
        assert!(
            p.allows(&cred(101, 0, &[]), 0o600),
            "creator counts as owner"
        );
        assert!(p.allows(&cred(5, 200, &[]), 0o400));
        assert!(!p.allows(&cred(5, 200, &[]), 0o600));
        assert!(
            p.allows(&cred(5, 9, &[201]), 0o400),
            "creator group via supplementary groups"
        );
        assert!(!p.allows(&cred(5, 9, &[]), 0o400));
        assert!(
            p.allows(&cred(5, 9, &[]), 0),
            "asking for nothing is allowed"
        );
    }

    #[test]
    fn owner_class_does_not_fall_through_to_group_or_other() {
        let p = perm(0o077);
        assert!(!p.allows(&cred(100, 200, &[]), 0o400));
        assert!(p.allows(&cred(5, 200, &[]), 0o600));
        assert!(p.allows(&cred(5, 9, &[]), 0o600));
    }

    #[test]
    fn any_class_of_requested_bits_counts() {
        let p = perm(0o400);
        assert!(
            p.allows(&cred(100, 0, &[]), 0o004),
            "other bits of the flag ask for read too"
        );
        assert!(!p.allows(&cred(100, 0, &[]), 0o020));
    }

    #[test]
    fn capabilities_bypass() {
        let p = perm(0);
        let mut root = cred(0, 0, &[]);
        assert!(!p.allows(&root, 0o400));
        assert!(!p.owned_by(&root));
        root.ipc_owner = true;
        root.sys_admin = true;
        assert!(p.allows(&root, 0o600));
        assert!(p.owned_by(&root));
        assert!(p.owned_by(&cred(101, 0, &[])));
        assert!(!p.owned_by(&cred(102, 200, &[])));
    }
}
