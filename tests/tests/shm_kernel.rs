//! Differential tests: usysv's shared memory against the Linux kernel's.
//!
//! Every scenario is written once, generic over [`SysV`], and run twice: on
//! the kernel (its real `shmget`, `shmat`, `shmdt` and `shmctl`, through
//! `libc`) and on a fresh usysv arena with the kernel's shared memory limits.
//! Each run writes a transcript of every call and its result, and of what the
//! memory holds; the two transcripts must be equal.
//!
//! Ids, keys, pids and addresses differ between the two worlds, so a
//! transcript never holds one: segments are named by tokens in order of
//! appearance (`s0`, `s1`, …), keys likewise (`k0`, …), a pid by what it is
//! (`0`, `me`, `other`) and a time by whether it is `0` or `now` (and, across
//! a second boundary, by whether it moved). An address the system chose is
//! named `at0`, `at1`, … in order of appearance; an address a scenario
//! chooses lies in a free stretch of address space of its own (`free0`, …),
//! far from anything the system maps, and is shown as an offset into it
//! (`free0+2p+1`: two pages and a byte in). Other numbers (uids, modes,
//! sizes, errnos) appear as they are; the bytes of a segment appear as
//! themselves when short and printable, else as their length and hash.
//!
//! The kernel's namespace is shared with everything else on the machine:
//! only what a scenario made is compared, and the counts of `SHM_INFO` as
//! differences. Scenarios that count the namespace, look at free indices or
//! fork run alone (no other scenario of this file runs meanwhile).
//!
//! Permission checks that bite even for root run this test binary again as
//! a helper that becomes another user (see [`probe_child`]).
//!
//! Every kernel segment a scenario makes is removed, and every attachment
//! ended, when its world is dropped, whether or not the scenario got that
//! far. `USYSV_SHOW_TRANSCRIPTS=1` (with `--nocapture`) prints the kernel's
//! transcript of every scenario, and `USYSV_TRACE=1` every line of both as it
//! happens.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use usysv_platform::usysv_core::shm::{PAGE_SIZE, SHM_EXEC, SHM_RDONLY, SHM_REMAP, SHM_RND};
use usysv_platform::usysv_core::{Errno, Limits, DEFAULT_LIMITS};
use usysv_platform::Ipc;
use usysv_tests::kernel::{checked, last_errno, read_limit};
use usysv_tests::{
    bytes_text, errno_name, euid_egid, ok_or_errno, pid_name, seeded_bytes, trace,
    wait_for_the_next_second, Names, TempDir, Watchdog,
};

/// A call's result: the value, or the errno.
type R<T> = Result<T, i32>;

/// The page size, as an address offset.
const PAGE: usize = PAGE_SIZE as usize;

/// `shmctl` commands the `libc` crate does not name.
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;

/// `shmget` flag: no swap space reserved (the same bit as `SHM_RDONLY`).
const SHM_NORESERVE: i32 = 0o10000;

/// `shmget` flag: back the segment with huge pages.
const SHM_HUGETLB: i32 = 0o4000;

/// The multiplier of the index in an id, in both worlds (Linux `IPCMNI`).
const IPCMNI: i32 = 32768;

/// The environment variable that makes [`probe_child`] a permission probe.
const PROBE: &str = "USYSV_SHM_PROBE";

/// What `IPC_STAT` says, in the fields both worlds have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    segsz: u64,
    atime: i64,
    dtime: i64,
    ctime: i64,
    cpid: i32,
    lpid: i32,
    nattch: u64,
}

/// What `IPC_INFO` says (`struct shminfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Info {
    shmmax: u64,
    shmmin: u64,
    shmmni: u64,
    shmseg: u64,
    shmall: u64,
}

/// What `SHM_INFO` says (`struct shm_info`), in the fields both worlds have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Usage {
    used_ids: i32,
    shm_tot: u64,
    shm_rss: u64,
    shm_swp: u64,
}

/// The shared memory calls of System V IPC, as one world offers them.
trait SysV: Sync {
    /// "kernel" or "usysv".
    fn name(&self) -> &'static str;
    /// A key that names no segment yet.
    fn new_key(&self) -> i32;
    /// `shmget`.
    fn shmget(&self, key: i32, size: usize, flags: i32) -> R<i32>;
    /// `shmat`: the address attached at. With `SHM_REMAP`, the address must
    /// lie in a stretch the world [claimed](SysV::claim).
    fn shmat(&self, id: i32, addr: usize, flags: i32) -> R<usize>;
    /// `shmdt`. Nothing may use the attachment's memory afterwards.
    fn shmdt(&self, addr: usize) -> R<()>;
    /// `shmctl(IPC_STAT)`.
    fn stat(&self, id: i32) -> R<Stat>;
    /// `shmctl(SHM_STAT)`, or with `any` `shmctl(SHM_STAT_ANY)`: the id and
    /// the segment.
    fn stat_index(&self, index: i32, any: bool) -> R<(i32, Stat)>;
    /// `shmctl(IPC_SET)`.
    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32) -> R<()>;
    /// `shmctl(IPC_RMID)`.
    fn rmid(&self, id: i32) -> R<()>;
    /// `shmctl(SHM_LOCK)`, or `shmctl(SHM_UNLOCK)`.
    fn lock(&self, id: i32, lock: bool) -> R<()>;
    /// `shmctl(IPC_INFO)`: the value returned (the highest index in use) and
    /// the limits.
    fn info(&self) -> R<(i32, Info)>;
    /// `shmctl(SHM_INFO)`: the value returned and the counts.
    fn usage(&self) -> R<(i32, Usage)>;
    /// Takes the stretch `start..start + len` of address space for this
    /// world: it is unmapped when the world goes.
    fn claim(&self, start: usize, len: usize);
    /// Ends every attachment this world made, unmaps what it claimed and
    /// removes every segment it made.
    fn purge(&self);
}

/// The kernel's SHMMAX.
fn shmmax() -> u64 {
    read_limit("shmmax")
}

/// The usysv limits that match the kernel's shared memory limits.
fn usysv_limits() -> Limits {
    Limits {
        shmmni: read_limit::<u64>("shmmni") as u32,
        shmmax: shmmax(),
        shmall: read_limit("shmall"),
        ..DEFAULT_LIMITS
    }
}

/// The index in the table of segment `id` (both worlds make ids as
/// `seq * IPCMNI + index`).
fn index_of(id: i32) -> i32 {
    id % IPCMNI
}

/// What a world made, to undo when it goes.
#[derive(Default)]
struct Made {
    ids: Vec<i32>,
    attached: Vec<usize>,
    claimed: Vec<(usize, usize)>,
}

/// [`Made`], shared by a world's calls.
#[derive(Default)]
struct Own(Mutex<Made>);

impl Own {
    fn with<T>(&self, f: impl FnOnce(&mut Made) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn made(&self, id: i32) {
        self.with(|m| m.ids.push(id));
    }

    fn attached(&self, addr: usize) {
        self.with(|m| m.attached.push(addr));
    }

    fn detached(&self, addr: usize) {
        self.with(|m| {
            if let Some(at) = m.attached.iter().rposition(|&a| a == addr) {
                m.attached.remove(at);
            }
        });
    }

    fn claim(&self, start: usize, len: usize) {
        self.with(|m| m.claimed.push((start, len)));
    }

    /// Undoes everything, leaving nothing: ends the attachments, newest
    /// first, with `detach`, unmaps the stretches claimed, and removes the
    /// segments with `remove` (one removed already is fine).
    fn undo(&self, detach: impl Fn(usize), remove: impl Fn(i32)) {
        let made = self.with(std::mem::take);
        for &addr in made.attached.iter().rev() {
            detach(addr);
        }
        for &(start, len) in &made.claimed {
            // SAFETY: the stretch was claimed by a world of this process for
            // its scenario's own mappings, which nothing uses any more.
            unsafe { libc::munmap(start as *mut libc::c_void, len) };
        }
        for &id in &made.ids {
            remove(id);
        }
    }
}

// ---------------------------------------------------------------------------
// The kernel.

/// The kernel's System V shared memory; ends its attachments and removes
/// every segment it made when dropped.
#[derive(Default)]
struct Kernel {
    own: Own,
}

/// `shmctl` with a buffer at `buf` (or none).
fn shmctl(id: i32, cmd: i32, buf: *mut libc::shmid_ds) -> R<i32> {
    // SAFETY: `buf` is null (commands that read nothing) or points to a
    // buffer at least as large as a shmid_ds, which the kernel reads or fills.
    checked(unsafe { libc::shmctl(id, cmd, buf) }.into()).map(|v| v as i32)
}

fn kernel_stat(ds: &libc::shmid_ds) -> Stat {
    Stat {
        key: ds.shm_perm.__key,
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
        cuid: ds.shm_perm.cuid,
        cgid: ds.shm_perm.cgid,
        mode: u32::from(ds.shm_perm.mode),
        segsz: ds.shm_segsz as u64,
        atime: ds.shm_atime,
        dtime: ds.shm_dtime,
        ctime: ds.shm_ctime,
        cpid: ds.shm_cpid,
        lpid: ds.shm_lpid,
        nattch: ds.shm_nattch,
    }
}

/// `struct shminfo`, as the kernel writes it for `IPC_INFO`.
#[repr(C)]
#[derive(Clone, Copy)]
struct KernelShmInfo {
    shmmax: libc::c_ulong,
    shmmin: libc::c_ulong,
    shmmni: libc::c_ulong,
    shmseg: libc::c_ulong,
    shmall: libc::c_ulong,
    unused: [libc::c_ulong; 4],
}

/// `struct shm_info`, as the kernel writes it for `SHM_INFO`.
#[repr(C)]
#[derive(Clone, Copy)]
struct KernelShmUsage {
    used_ids: libc::c_int,
    shm_tot: libc::c_ulong,
    shm_rss: libc::c_ulong,
    shm_swp: libc::c_ulong,
    swap_attempts: libc::c_ulong,
    swap_successes: libc::c_ulong,
}

/// Room for any of the structures `shmctl` writes, aligned for all.
#[repr(C)]
union ShmctlBuf {
    ds: libc::shmid_ds,
    info: KernelShmInfo,
    usage: KernelShmUsage,
}

impl ShmctlBuf {
    fn zeroed() -> ShmctlBuf {
        // SAFETY: every field is made of integers: all-zero is valid.
        unsafe { std::mem::zeroed() }
    }
}

impl SysV for Kernel {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn new_key(&self) -> i32 {
        // SAFETY: shmget has no memory arguments.
        usysv_tests::kernel::unused_key(|key| unsafe { libc::shmget(key, 0, 0) })
    }

    fn shmget(&self, key: i32, size: usize, flags: i32) -> R<i32> {
        // SAFETY: shmget has no memory arguments.
        let id = checked(unsafe { libc::shmget(key, size, flags) }.into())? as i32;
        self.own.made(id);
        Ok(id)
    }

    fn shmat(&self, id: i32, addr: usize, flags: i32) -> R<usize> {
        // SAFETY: without SHM_REMAP nothing mapped is replaced; with it, the
        // address lies in a stretch this world claimed, whose mappings are
        // the scenario's own and used only through checked reads and writes.
        let at = unsafe { libc::shmat(id, addr as *const libc::c_void, flags) };
        if at as isize == -1 {
            return Err(last_errno());
        }
        self.own.attached(at as usize);
        Ok(at as usize)
    }

    fn shmdt(&self, addr: usize) -> R<()> {
        // SAFETY: shmdt unmaps only an attachment, and the scenarios use an
        // attachment's memory only through reads and writes that check it
        // is mapped.
        checked(unsafe { libc::shmdt(addr as *const libc::c_void) }.into())?;
        self.own.detached(addr);
        Ok(())
    }

    fn stat(&self, id: i32) -> R<Stat> {
        let mut buf = ShmctlBuf::zeroed();
        // SAFETY: the union is initialised (all zero) and holds a shmid_ds.
        let ds = unsafe { &mut buf.ds };
        shmctl(id, libc::IPC_STAT, ds)?;
        Ok(kernel_stat(ds))
    }

    fn stat_index(&self, index: i32, any: bool) -> R<(i32, Stat)> {
        let mut buf = ShmctlBuf::zeroed();
        // SAFETY: as in `stat`.
        let ds = unsafe { &mut buf.ds };
        let cmd = if any { SHM_STAT_ANY } else { SHM_STAT };
        let id = shmctl(index, cmd, ds)?;
        Ok((id, kernel_stat(ds)))
    }

    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32) -> R<()> {
        let mut buf = ShmctlBuf::zeroed();
        // SAFETY: as in `stat`.
        let ds = unsafe { &mut buf.ds };
        ds.shm_perm.uid = uid;
        ds.shm_perm.gid = gid;
        ds.shm_perm.mode = mode as u16;
        shmctl(id, libc::IPC_SET, ds).map(drop)
    }

    fn rmid(&self, id: i32) -> R<()> {
        shmctl(id, libc::IPC_RMID, std::ptr::null_mut()).map(drop)
    }

    fn lock(&self, id: i32, lock: bool) -> R<()> {
        let cmd = if lock {
            libc::SHM_LOCK
        } else {
            libc::SHM_UNLOCK
        };
        shmctl(id, cmd, std::ptr::null_mut()).map(drop)
    }

    fn info(&self) -> R<(i32, Info)> {
        let mut buf = ShmctlBuf::zeroed();
        // SAFETY: the buffer is as large as a shmid_ds, larger than the
        // shminfo the kernel writes at its start.
        let max_index = shmctl(0, libc::IPC_INFO, unsafe { &mut buf.ds })?;
        // SAFETY: the kernel filled a shminfo in (and the rest is zero).
        let info = unsafe { buf.info };
        Ok((
            max_index,
            Info {
                shmmax: info.shmmax,
                shmmin: info.shmmin,
                shmmni: info.shmmni,
                shmseg: info.shmseg,
                shmall: info.shmall,
            },
        ))
    }

    fn usage(&self) -> R<(i32, Usage)> {
        let mut buf = ShmctlBuf::zeroed();
        // SAFETY: as in `info`, for a shm_info.
        let max_index = shmctl(0, SHM_INFO, unsafe { &mut buf.ds })?;
        // SAFETY: the kernel filled a shm_info in.
        let usage = unsafe { buf.usage };
        Ok((
            max_index,
            Usage {
                used_ids: usage.used_ids,
                shm_tot: usage.shm_tot,
                shm_rss: usage.shm_rss,
                shm_swp: usage.shm_swp,
            },
        ))
    }

    fn claim(&self, start: usize, len: usize) {
        self.own.claim(start, len);
    }

    fn purge(&self) {
        self.own.undo(
            |addr| {
                // SAFETY: as in `shmdt`; the scenario is over (or hung).
                unsafe { libc::shmdt(addr as *const libc::c_void) };
            },
            |id| {
                // Already removed is fine: EINVAL.
                let _ = self.rmid(id);
            },
        );
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.purge();
    }
}

// ---------------------------------------------------------------------------
// usysv.

/// usysv on an arena file: a fresh one of its own, or one another process
/// made.
struct Usysv {
    // Declared before `_dir`: the arena goes before its directory.
    ipc: Ipc,
    next_key: AtomicI32,
    own: Own,
    _dir: Option<TempDir>,
}

impl Usysv {
    /// A fresh arena of file mode 0666 (other users' processes may open it).
    fn new(test: &str) -> Usysv {
        let dir = TempDir::new(&format!("shmk-{test}"));
        let mut world = Usysv::join(&dir.join("arena"));
        world._dir = Some(dir);
        world
    }

    /// The arena at `path`, made if there is none.
    fn join(path: &Path) -> Usysv {
        Usysv {
            ipc: Ipc::open(path, &usysv_limits(), 0o666).unwrap(),
            next_key: AtomicI32::new(1000),
            own: Own::default(),
            _dir: None,
        }
    }
}

fn raw<T>(result: Result<T, Errno>) -> R<T> {
    result.map_err(Errno::raw)
}

fn usysv_stat(ds: &usysv_platform::usysv_core::shm::ShmidDs) -> Stat {
    Stat {
        key: ds.perm.key,
        uid: ds.perm.uid,
        gid: ds.perm.gid,
        cuid: ds.perm.cuid,
        cgid: ds.perm.cgid,
        mode: ds.perm.mode,
        segsz: ds.segsz,
        atime: ds.atime,
        dtime: ds.dtime,
        ctime: ds.ctime,
        cpid: ds.cpid,
        lpid: ds.lpid,
        nattch: ds.nattch,
    }
}

impl SysV for Usysv {
    fn name(&self) -> &'static str {
        "usysv"
    }

    fn new_key(&self) -> i32 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    fn shmget(&self, key: i32, size: usize, flags: i32) -> R<i32> {
        let id = raw(self.ipc.shmget(key, size, flags))?;
        self.own.made(id);
        Ok(id)
    }

    fn shmat(&self, id: i32, addr: usize, flags: i32) -> R<usize> {
        // SAFETY: as for the kernel's shmat.
        let at = raw(unsafe { self.ipc.shmat_raw(id, addr, flags) })? as usize;
        self.own.attached(at);
        Ok(at)
    }

    fn shmdt(&self, addr: usize) -> R<()> {
        // SAFETY: as for the kernel's shmdt.
        raw(unsafe { self.ipc.shmdt_raw(addr as *const u8) })?;
        self.own.detached(addr);
        Ok(())
    }

    fn stat(&self, id: i32) -> R<Stat> {
        Ok(usysv_stat(&raw(self.ipc.shmctl_stat(id))?))
    }

    fn stat_index(&self, index: i32, any: bool) -> R<(i32, Stat)> {
        let (id, ds) = raw(self.ipc.shmctl_stat_index(index, any))?;
        Ok((id, usysv_stat(&ds)))
    }

    fn set(&self, id: i32, uid: u32, gid: u32, mode: u32) -> R<()> {
        raw(self.ipc.shmctl_set(id, uid, gid, mode))
    }

    fn rmid(&self, id: i32) -> R<()> {
        raw(self.ipc.shmctl_rmid(id))
    }

    fn lock(&self, id: i32, lock: bool) -> R<()> {
        raw(self.ipc.shmctl_lock(id, lock))
    }

    fn info(&self) -> R<(i32, Info)> {
        let (max_index, info) = self.ipc.shmctl_info();
        Ok((
            max_index,
            Info {
                shmmax: info.shmmax,
                shmmin: info.shmmin,
                shmmni: info.shmmni,
                shmseg: info.shmseg,
                shmall: info.shmall,
            },
        ))
    }

    fn usage(&self) -> R<(i32, Usage)> {
        let (max_index, usage) = self.ipc.shmctl_usage();
        Ok((
            max_index,
            Usage {
                used_ids: usage.used_ids,
                shm_tot: usage.shm_tot,
                shm_rss: usage.shm_rss,
                shm_swp: usage.shm_swp,
            },
        ))
    }

    fn claim(&self, start: usize, len: usize) {
        self.own.claim(start, len);
    }

    fn purge(&self) {
        self.own.undo(
            |addr| {
                // SAFETY: as in `shmdt`; the scenario is over (or hung).
                let _ = unsafe { self.ipc.shmdt_raw(addr as *const u8) };
            },
            |id| {
                let _ = self.ipc.shmctl_rmid(id);
            },
        );
    }
}

impl Drop for Usysv {
    fn drop(&mut self) {
        self.purge();
    }
}

// ---------------------------------------------------------------------------
// Address space.

/// The stretch of address space a scenario gets for the addresses it
/// chooses: 256 pages.
const STRETCH: usize = 256 * PAGE;

/// Where the stretches start: 32 TiB, far below where the system maps
/// anything (top down from below the stack, or just above the program).
const STRETCHES_BASE: usize = 0x2000_0000_0000;

/// A stretch of [`STRETCH`] bytes that nothing maps, followed by as many
/// that nothing maps either; never the same twice in this process.
fn fresh_stretch() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let start = STRETCHES_BASE + n * 2 * STRETCH;
        // SAFETY: MAP_FIXED_NOREPLACE maps only if nothing is there, and the
        // probe is unmapped at once.
        let probe = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                2 * STRETCH,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if probe == libc::MAP_FAILED {
            continue;
        }
        // SAFETY: the probe mapping just made, used by nothing.
        unsafe { libc::munmap(probe, 2 * STRETCH) };
        if probe as usize == start {
            return start;
        }
    }
}

/// Whether every page of `start..start + len` is mapped.
fn is_mapped(start: usize, len: usize) -> bool {
    let first = start - start % PAGE;
    let end = (start + len).div_ceil(PAGE) * PAGE;
    // SAFETY: msync with MS_ASYNC writes nothing back; it fails with ENOMEM
    // if part of the range is unmapped.
    unsafe { libc::msync(first as *mut libc::c_void, end - first, libc::MS_ASYNC) == 0 }
}

// ---------------------------------------------------------------------------
// Transcripts.

/// Bytes as a transcript shows them ([`bytes_text`]), but all-zero ones as
/// their count.
fn text(data: &[u8]) -> String {
    if !data.is_empty() && data.iter().all(|&b| b == 0) {
        format!("{} zero bytes", data.len())
    } else {
        bytes_text(data)
    }
}

/// `shmat` flags by name.
fn at_flags(flags: i32) -> String {
    usysv_tests::flags_text(
        flags,
        &[
            (SHM_RDONLY, "RDONLY"),
            (SHM_RND, "RND"),
            (SHM_REMAP, "REMAP"),
            (SHM_EXEC, "EXEC"),
        ],
    )
}

/// An offset in pages and bytes: `2p+1`.
fn offset(off: usize) -> String {
    match (off / PAGE, off % PAGE) {
        (0, bytes) => bytes.to_string(),
        (pages, 0) => format!("{pages}p"),
        (pages, bytes) => format!("{pages}p+{bytes}"),
    }
}

/// A child process made with `fork`, waiting for its pipe to close.
struct Forked {
    pid: libc::pid_t,
    release: libc::c_int,
}

/// One world's run of a scenario: the world, and the transcript so far.
struct Run<'w, W: SysV> {
    w: &'w W,
    lines: Vec<String>,
    names: Names,
    /// Named addresses, newest last: stretches (`free0`, …) and attachments
    /// at addresses the system chose (`at0`, …).
    places: Vec<(usize, String)>,
    stretches: usize,
    chosen: usize,
}

impl<'w, W: SysV> Run<'w, W> {
    fn new(w: &'w W) -> Self {
        Run {
            w,
            lines: Vec::new(),
            names: Names::new("s"),
            places: Vec::new(),
            stretches: 0,
            chosen: 0,
        }
    }

    fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        trace(self.w.name(), &line);
        self.lines.push(line);
    }

    /// An address: a named one, or an offset from the nearest named one.
    fn addr(&self, addr: usize) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        if addr < 1 << 20 {
            return addr.to_string();
        }
        if let Some((_, name)) = self.places.iter().rev().find(|(at, _)| *at == addr) {
            return name.clone();
        }
        let above = self
            .places
            .iter()
            .rev()
            .filter(|(at, _)| *at < addr && addr - *at < STRETCH)
            .min_by_key(|(at, _)| addr - *at);
        if let Some((at, name)) = above {
            return format!("{name}+{}", offset(addr - at));
        }
        let below = self
            .places
            .iter()
            .rev()
            .filter(|(at, _)| *at > addr && *at - addr < STRETCH)
            .min_by_key(|(at, _)| *at - addr);
        match below {
            Some((at, name)) => format!("{name}-{}", offset(at - addr)),
            None => format!("{addr:#x} (unknown)"),
        }
    }

    fn stat_text(&self, s: &Stat) -> String {
        format!(
            "key={} uid={} gid={} cuid={} cgid={} mode={:#o} segsz={} nattch={} cpid={} \
             lpid={} atime={} dtime={} ctime={}",
            self.names.key(s.key),
            s.uid,
            s.gid,
            s.cuid,
            s.cgid,
            s.mode,
            s.segsz,
            s.nattch,
            pid_name(s.cpid),
            pid_name(s.lpid),
            self.names.time(s.atime),
            self.names.time(s.dtime),
            self.names.time(s.ctime),
        )
    }

    fn new_key(&mut self) -> i32 {
        let key = self.w.new_key();
        self.names.learn_key(key);
        key
    }

    /// A fresh stretch of address space, named `free0`, `free1`, …
    fn free(&mut self) -> usize {
        let start = fresh_stretch();
        self.w.claim(start, STRETCH);
        self.places.push((start, format!("free{}", self.stretches)));
        self.stretches += 1;
        start
    }

    /// `shmget`; the id, or -1.
    fn shmget(&mut self, key: i32, size: usize, flags: i32) -> i32 {
        let result = self.w.shmget(key, size, flags);
        let shown = self.names.returned_id(result);
        let key = self.names.key(key);
        self.note(format!("shmget({key}, {size}, {flags:#o}) = {shown}"));
        result.unwrap_or(-1)
    }

    /// A new private segment of `size` bytes, mode 0600.
    fn segment(&mut self, size: usize) -> i32 {
        self.shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600)
    }

    /// `shmat`; the address, or 0.
    fn shmat(&mut self, id: i32, addr: usize, flags: i32) -> usize {
        let asked = self.addr(addr);
        let result = self.w.shmat(id, addr, flags);
        let shown = match result {
            Ok(at) if addr == 0 => {
                let name = format!("at{}", self.chosen);
                self.chosen += 1;
                self.places.push((at, name.clone()));
                if at % PAGE == 0 {
                    name
                } else {
                    format!("{name} (not page-aligned: {at:#x})")
                }
            }
            Ok(at) => self.addr(at),
            Err(errno) => errno_name(errno),
        };
        let line = format!(
            "shmat({}, {asked}, {}) = {shown}",
            self.names.id(id),
            at_flags(flags)
        );
        self.note(line);
        result.unwrap_or(0)
    }

    /// `shmdt`; whether it succeeded.
    fn shmdt(&mut self, addr: usize) -> bool {
        let result = self.w.shmdt(addr);
        let line = format!("shmdt({}) = {}", self.addr(addr), ok_or_errno(&result));
        self.note(line);
        result.is_ok()
    }

    fn stat(&mut self, id: i32) -> Option<Stat> {
        let result = self.w.stat(id);
        let shown = match &result {
            Ok(s) => self.stat_text(s),
            Err(errno) => errno_name(*errno),
        };
        let line = format!("IPC_STAT({}) = {shown}", self.names.id(id));
        self.note(line);
        result.ok()
    }

    /// `SHM_STAT` (or `SHM_STAT_ANY`) of `index`, described as `what`.
    fn stat_index(&mut self, what: &str, index: i32, any: bool) {
        let result = self.w.stat_index(index, any);
        let shown = match &result {
            Ok((id, s)) => format!("{}: {}", self.names.id(*id), self.stat_text(s)),
            Err(errno) => errno_name(*errno),
        };
        let cmd = if any { "SHM_STAT_ANY" } else { "SHM_STAT" };
        self.note(format!("{cmd}({what}) = {shown}"));
    }

    fn set_ids(&mut self, id: i32, uid: u32, gid: u32, mode: u32) {
        let result = self.w.set(id, uid, gid, mode);
        let line = format!(
            "IPC_SET({}, uid {uid}, gid {gid}, mode {mode:#o}) = {}",
            self.names.id(id),
            ok_or_errno(&result)
        );
        self.note(line);
    }

    /// `IPC_SET` keeping this process as owner.
    fn set(&mut self, id: i32, mode: u32) {
        let (uid, gid) = euid_egid();
        self.set_ids(id, uid, gid, mode);
    }

    fn rmid(&mut self, id: i32) {
        let result = self.w.rmid(id);
        let line = format!("IPC_RMID({}) = {}", self.names.id(id), ok_or_errno(&result));
        self.note(line);
    }

    fn lock(&mut self, id: i32, lock: bool) {
        let result = self.w.lock(id, lock);
        let cmd = if lock { "SHM_LOCK" } else { "SHM_UNLOCK" };
        let line = format!("{cmd}({}) = {}", self.names.id(id), ok_or_errno(&result));
        self.note(line);
    }

    /// `IPC_INFO`, and whether the value it returns is at least `index`.
    fn info(&mut self, index: i32) {
        let shown = match self.w.info() {
            Ok((max_index, i)) => format!(
                "shmmax={} shmmin={} shmmni={} shmseg={} shmall={}, returns at least the \
                 index of the last segment made: {}",
                i.shmmax,
                i.shmmin,
                i.shmmni,
                i.shmseg,
                i.shmall,
                max_index >= index
            ),
            Err(errno) => errno_name(errno),
        };
        self.note(format!("IPC_INFO = {shown}"));
    }

    /// `SHM_INFO`, noted as its difference from `before`; the counts.
    fn usage(&mut self, what: &str, before: Option<Usage>) -> Option<Usage> {
        let result = self.w.usage();
        let shown = match (&result, before) {
            (Ok((_, u)), Some(b)) => format!(
                "used_ids {:+}, shm_tot {:+} pages, shm_swp {:+}",
                u.used_ids - b.used_ids,
                u.shm_tot as i64 - b.shm_tot as i64,
                u.shm_swp as i64 - b.shm_swp as i64,
            ),
            (Ok(_), None) => "ok".into(),
            (Err(errno), _) => errno_name(*errno),
        };
        self.note(format!("SHM_INFO {what} = {shown}"));
        result.ok().map(|(_, u)| u)
    }

    /// The resident pages `SHM_INFO` counts, noted as their difference from
    /// `before`.
    fn rss(&mut self, what: &str, before: Option<Usage>) -> Option<Usage> {
        let result = self.w.usage();
        let shown = match (&result, before) {
            (Ok((_, u)), Some(b)) => {
                format!("shm_rss {:+} pages", u.shm_rss as i64 - b.shm_rss as i64)
            }
            (Ok(_), None) => "ok".into(),
            (Err(errno), _) => errno_name(*errno),
        };
        self.note(format!("SHM_INFO {what} = {shown}"));
        result.ok().map(|(_, u)| u)
    }

    /// Writes `data` at `at + offset`, if that is mapped.
    fn write(&mut self, at: usize, offset: usize, data: &[u8]) {
        let place = self.addr(at + offset);
        if at == 0 || !is_mapped(at + offset, data.len()) {
            self.note(format!("write({place}, {}): not mapped", text(data)));
            return;
        }
        for (i, &byte) in data.iter().enumerate() {
            // SAFETY: the byte is mapped, in an attachment the scenario made
            // writable (the scenarios never write to a read-only one).
            unsafe { std::ptr::write_volatile((at + offset + i) as *mut u8, byte) };
        }
        self.note(format!("write({place}, {})", text(data)));
    }

    /// Reads `len` bytes at `at + offset`, if that is mapped.
    fn read(&mut self, at: usize, offset: usize, len: usize) -> Vec<u8> {
        let place = self.addr(at + offset);
        if at == 0 || !is_mapped(at + offset, len) {
            self.note(format!("read({place}, {len}): not mapped"));
            return Vec::new();
        }
        let data: Vec<u8> = (0..len)
            // SAFETY: the bytes are mapped, in an attachment of the scenario.
            .map(|i| unsafe { std::ptr::read_volatile((at + offset + i) as *const u8) })
            .collect();
        self.note(format!("read({place}, {len}) = {}", text(&data)));
        data
    }

    /// Whether `start..start + len` is mapped.
    fn mapped(&mut self, start: usize, len: usize) -> bool {
        let mapped = is_mapped(start, len);
        let line = format!("mapped({}, {}) = {mapped}", self.addr(start), offset(len));
        self.note(line);
        mapped
    }

    /// Maps anonymous memory at `start`, which must lie in a stretch.
    fn map_anon(&mut self, start: usize, len: usize) {
        // SAFETY: MAP_FIXED_NOREPLACE maps only where nothing is; the
        // stretch is this world's.
        let got = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        let shown = if got == libc::MAP_FAILED {
            errno_name(last_errno())
        } else {
            self.addr(got as usize)
        };
        let line = format!(
            "mmap(anonymous, {}, {}) = {shown}",
            self.addr(start),
            offset(len)
        );
        self.note(line);
    }

    /// Unmaps `start..start + len`, which must lie in a stretch, behind the
    /// world's back.
    fn munmap(&mut self, start: usize, len: usize) {
        // SAFETY: the stretch is this world's; what was mapped there is used
        // only through reads and writes that check it is mapped.
        let result = unsafe { libc::munmap(start as *mut libc::c_void, len) };
        let shown = if result == 0 {
            "ok".into()
        } else {
            errno_name(last_errno())
        };
        let line = format!("munmap({}, {}) = {shown}", self.addr(start), offset(len));
        self.note(line);
    }

    /// Forks a child that writes `data` at `at` (an attachment it inherits,
    /// if mapped), then waits for [`Run::release`] and exits at once, with
    /// `_exit`: it holds copies of every attachment meanwhile.
    fn fork(&mut self, at: usize, data: &[u8]) -> Option<Forked> {
        let writable = at != 0 && is_mapped(at, data.len());
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the child only stores bytes, closes, reads and exits: all
        // async-signal-safe, as a child of a threaded process must be.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above; `at` is an attachment inherited from the
            // parent, mapped when it forked.
            unsafe {
                if writable {
                    for (i, &byte) in data.iter().enumerate() {
                        std::ptr::write_volatile((at + i) as *mut u8, byte);
                    }
                }
                libc::close(fds[1]);
                let mut byte = 0u8;
                libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        // SAFETY: closing the parent's copy of the read end.
        unsafe { libc::close(fds[0]) };
        let shown = if pid < 0 {
            errno_name(last_errno())
        } else {
            "a child".into()
        };
        self.note(format!("fork() = {shown}"));
        (pid > 0).then_some(Forked {
            pid,
            release: fds[1],
        })
    }

    /// Lets a forked child exit, and reaps it.
    fn release(&mut self, child: Option<Forked>) {
        let Some(child) = child else {
            return;
        };
        let mut status = 0;
        // SAFETY: closing our write end lets the child's read return; the
        // child is ours and not yet reaped.
        let reaped = unsafe {
            libc::close(child.release);
            libc::waitpid(child.pid, &mut status, 0)
        };
        let exited = reaped == child.pid && libc::WIFEXITED(status);
        self.note(format!("the child exited: {exited}"));
    }

    /// Waits for the wall clock's second to change, so that a time stamped
    /// from now on differs from every earlier one.
    fn tick(&mut self) {
        wait_for_the_next_second();
        self.note("(a second passes)");
    }

    /// Notes which times moved between two IPC_STATs.
    fn moved(&mut self, what: &str, before: Option<Stat>, after: Option<Stat>) {
        if let (Some(b), Some(a)) = (before, after) {
            self.note(format!(
                "{what}: atime moved {}, dtime moved {}, ctime moved {}",
                a.atime != b.atime,
                a.dtime != b.dtime,
                a.ctime != b.ctime
            ));
        }
    }
}

/// Scenarios that count the namespace, look at free indices or fork hold
/// this exclusively; every other holds it shared.
static NAMESPACE: RwLock<()> = RwLock::new(());

/// Runs a scenario on the kernel and then on usysv, and compares the
/// transcripts.
fn compare(
    test: &'static str,
    exclusive: bool,
    on_kernel: fn(&mut Run<'_, Kernel>),
    on_usysv: fn(&mut Run<'_, Usysv>),
) {
    let _watchdog = Watchdog::new(test, Duration::from_secs(60));
    let _shared;
    let _exclusive;
    if exclusive {
        _exclusive = NAMESPACE.write().unwrap_or_else(|e| e.into_inner());
    } else {
        _shared = NAMESPACE.read().unwrap_or_else(|e| e.into_inner());
    }
    // One world at a time: a fork copies every attachment of the process.
    let kernel = transcript(&Kernel::default(), on_kernel);
    let usysv = transcript(&Usysv::new(test), on_usysv);
    usysv_tests::show_transcript(test, &kernel);
    usysv_tests::assert_same(&kernel, &usysv);
}

/// Runs `scenario` on the kernel and on usysv and compares the transcripts;
/// `exclusive` ones run alone.
macro_rules! differential {
    (known $why:literal, $test:ident => $scenario:ident) => {
        #[test]
        #[ignore = $why]
        fn $test() {
            compare(
                stringify!($test),
                false,
                $scenario::<Kernel>,
                $scenario::<Usysv>,
            );
        }
    };
    ($test:ident => $scenario:ident) => {
        #[test]
        fn $test() {
            compare(
                stringify!($test),
                false,
                $scenario::<Kernel>,
                $scenario::<Usysv>,
            );
        }
    };
    (exclusive $test:ident => $scenario:ident) => {
        #[test]
        fn $test() {
            compare(
                stringify!($test),
                true,
                $scenario::<Kernel>,
                $scenario::<Usysv>,
            );
        }
    };
}

/// Runs `scenario` on `world` and returns its transcript (see
/// [`usysv_tests::transcript`]).
fn transcript<W: SysV>(world: &W, scenario: fn(&mut Run<'_, W>)) -> Vec<String> {
    usysv_tests::transcript(
        || {
            let mut run = Run::new(world);
            scenario(&mut run);
            run.lines
        },
        || world.purge(),
    )
}

// ---------------------------------------------------------------------------
// Scenarios: shmget.

fn shmget_flags_and_errors<W: SysV>(r: &mut Run<W>) {
    // IPC_PRIVATE needs no IPC_CREAT, and IPC_EXCL changes nothing.
    let private = r.shmget(IPC_PRIVATE, 100, 0o640);
    r.stat(private);
    let another = r.shmget(IPC_PRIVATE, 100, IPC_CREAT | IPC_EXCL | 0o600);
    r.note(format!(
        "two private segments differ: {}",
        private != another
    ));
    // Only the permission bits of the flags are kept.
    let wide = r.shmget(IPC_PRIVATE, 100, IPC_CREAT | SHM_NORESERVE | 0o777);
    r.stat(wide);
    r.rmid(private);
    r.rmid(another);
    r.rmid(wide);
    // A key.
    let key = r.new_key();
    r.shmget(key, 100, 0);
    r.shmget(key, 100, IPC_EXCL | 0o600);
    r.shmget(key, 0, 0o600);
    let seg = r.shmget(key, 100, IPC_CREAT | IPC_EXCL | 0o640);
    r.stat(seg);
    r.shmget(key, 100, IPC_CREAT | IPC_EXCL | 0o640);
    r.shmget(key, 0, IPC_CREAT | IPC_EXCL);
    r.shmget(key, 200, IPC_CREAT | IPC_EXCL);
    r.shmget(key, 100, IPC_CREAT | 0o600);
    r.shmget(key, 100, 0);
    r.shmget(key, 0, 0);
    r.shmget(key, 1, 0);
    r.shmget(key, 99, IPC_EXCL);
    // Larger than the segment: EINVAL, page rounding or not, created or not.
    r.shmget(key, 101, 0);
    r.shmget(key, 101, IPC_CREAT | 0o600);
    r.shmget(key, PAGE, 0);
    r.shmget(key, usize::MAX, 0);
    r.shmget(key, 0, 0o777);
    // Existing segments keep their mode whatever shmget asks.
    r.shmget(key, 0, IPC_CREAT | 0o666);
    r.stat(seg);
    // A second key names a second segment.
    let key2 = r.new_key();
    let other = r.shmget(key2, PAGE + 1, IPC_CREAT | 0o600);
    r.note(format!(
        "the second key's segment differs: {}",
        other != seg
    ));
    r.shmget(key2, PAGE + 1, 0);
    r.shmget(key2, PAGE + 2, 0);
    r.stat(other);
    // Gone with IPC_RMID: the key names nothing, and a new segment under it
    // is another.
    r.rmid(seg);
    r.shmget(key, 0, 0);
    r.shmget(key, 100, IPC_EXCL);
    let again = r.shmget(key, 50, IPC_CREAT | IPC_EXCL | 0o600);
    r.note(format!("the new segment has a new id: {}", again != seg));
    r.stat(again);
    r.shmget(key, 51, 0);
    r.rmid(again);
    r.rmid(other);
    r.shmget(key2, 0, 0);
}

/// Sizes: SHMMIN is 1, and `shm_segsz` is the size asked for.
fn shmget_sizes<W: SysV>(r: &mut Run<W>) {
    r.shmget(IPC_PRIVATE, 0, IPC_CREAT | 0o600);
    let key = r.new_key();
    r.shmget(key, 0, IPC_CREAT | 0o600);
    r.shmget(key, 0, IPC_CREAT | IPC_EXCL | 0o600);
    for size in [1, 7, PAGE - 1, PAGE, PAGE + 1, 3 * PAGE + 5] {
        let s = r.segment(size);
        r.stat(s);
        r.rmid(s);
    }
    let max = shmmax();
    if let Ok(above) = usize::try_from(max + 1) {
        r.shmget(IPC_PRIVATE, above, IPC_CREAT | 0o600);
    }
    r.shmget(IPC_PRIVATE, usize::MAX, IPC_CREAT | 0o600);
    r.shmget(key, usize::MAX, IPC_CREAT | 0o600);
    r.shmget(key, 0, 0);
}

/// Sizes the machine cannot back: the kernel accounts a segment's memory at
/// shmget (unless SHM_NORESERVE) and refuses what its tmpfs cannot hold.
fn shmget_sizes_beyond_memory<W: SysV>(r: &mut Run<W>) {
    let max = shmmax() as usize;
    for size in [max, max - PAGE, 1 << 62, 1 << 50, 1 << 40] {
        let s = r.shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600);
        if s >= 0 {
            r.stat(s);
            r.rmid(s);
        }
    }
    let s = r.shmget(IPC_PRIVATE, 1 << 40, IPC_CREAT | SHM_NORESERVE | 0o600);
    if s >= 0 {
        r.stat(s);
        r.rmid(s);
    }
}

/// `SHM_HUGETLB` on a machine with no huge pages: the kernel cannot back
/// the segment.
fn shm_hugetlb_without_huge_pages<W: SysV>(r: &mut Run<W>) {
    let pool = ["nr_hugepages", "nr_overcommit_hugepages"].map(|name| {
        std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
            .map_or(0, |text| text.trim().parse::<u64>().unwrap_or(0))
    });
    if pool != [0, 0] {
        r.note("huge pages are configured here: nothing to compare");
        return;
    }
    let s = r.shmget(IPC_PRIVATE, 2 << 20, IPC_CREAT | SHM_HUGETLB | 0o600);
    if s >= 0 {
        r.stat(s);
        r.rmid(s);
    }
}

// ---------------------------------------------------------------------------
// Scenarios: the memory.

fn segments_start_zeroed_and_share_their_bytes<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(10_000);
    let a = r.shmat(s, 0, 0);
    // Zero, up to the end of the last page.
    r.read(a, 0, 3 * PAGE);
    r.write(a, 0, b"hello");
    r.write(a, 9999, b"z");
    r.write(a, 10_000, b"past segsz");
    let b = r.shmat(s, 0, 0);
    r.note(format!("two attachments differ: {}", a != b));
    r.read(b, 0, 5);
    r.read(b, 9999, 1);
    r.read(b, 10_000, 10);
    r.read(b, 3 * PAGE - 4, 4);
    let ro = r.shmat(s, 0, SHM_RDONLY);
    r.read(ro, 0, 5);
    r.write(b, 100, &seeded_bytes(1, 3000));
    r.read(a, 100, 3000);
    r.read(ro, 100, 3000);
    r.stat(s);
    r.shmdt(a);
    r.shmdt(b);
    r.shmdt(ro);
    r.stat(s);
    // The bytes outlive the attachments.
    let c = r.shmat(s, 0, SHM_RDONLY);
    r.read(c, 0, 5);
    r.read(c, 10_000, 10);
    r.shmdt(c);
    r.rmid(s);
    // A new segment starts zeroed again.
    let t = r.segment(10_000);
    let d = r.shmat(t, 0, 0);
    r.read(d, 0, 3 * PAGE);
    r.shmdt(d);
    r.rmid(t);
}

// ---------------------------------------------------------------------------
// Scenarios: shmat.

fn shmat_addresses_and_flags<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(2 * PAGE);
    // The system's choice: page-aligned.
    let chosen = r.shmat(s, 0, 0);
    r.mapped(chosen, 2 * PAGE);
    r.shmdt(chosen);
    // A free address.
    let free = r.free();
    let at = free + 8 * PAGE;
    let a = r.shmat(s, at, 0);
    r.mapped(at, 2 * PAGE);
    r.mapped(at - PAGE, PAGE);
    r.mapped(at + 2 * PAGE, PAGE);
    r.write(a, 0, b"at free0");
    // Occupied, wholly or in part: EINVAL, with or without other flags.
    r.shmat(s, at, 0);
    r.shmat(s, at, SHM_RDONLY);
    r.shmat(s, at + PAGE, 0);
    r.shmat(s, at - PAGE, 0);
    r.shmat(s, at + PAGE + 1, SHM_RND);
    r.mapped(at - PAGE, PAGE);
    r.mapped(at + 2 * PAGE, PAGE);
    // Right after it: free.
    let next = r.shmat(s, at + 2 * PAGE, 0);
    r.read(next, 0, 8);
    // Misaligned: EINVAL; with SHM_RND, rounded down.
    r.shmat(s, free + 16 * PAGE + 1, 0);
    r.shmat(s, free + 16 * PAGE + PAGE / 2, SHM_RDONLY);
    let rounded = r.shmat(s, free + 16 * PAGE + 1, SHM_RND);
    r.read(rounded, 0, 8);
    r.shmat(s, free + 16 * PAGE + PAGE - 1, SHM_RND);
    let ro = r.shmat(s, free + 24 * PAGE + 100, SHM_RND | SHM_RDONLY);
    r.read(ro, 0, 8);
    // SHM_RND means nothing without an address.
    let chosen_rnd = r.shmat(s, 0, SHM_RND);
    r.read(chosen_rnd, 0, 8);
    // SHM_REMAP needs an address.
    r.shmat(s, 0, SHM_REMAP);
    r.shmat(s, 0, SHM_REMAP | SHM_RND);
    r.shmat(s, 1, SHM_RND | SHM_REMAP);
    r.shmat(s, PAGE - 1, SHM_RND | SHM_REMAP);
    r.shmat(s, 1, 0);
    // SHM_REMAP at a free address is just an attach.
    let remapped = r.shmat(s, free + 32 * PAGE, SHM_REMAP);
    r.read(remapped, 0, 8);
    // SHM_EXEC.
    let exec = r.shmat(s, 0, SHM_EXEC);
    r.read(exec, 0, 8);
    let exec_ro = r.shmat(s, free + 40 * PAGE, SHM_EXEC | SHM_RDONLY);
    r.read(exec_ro, 0, 8);
    r.stat(s);
    // Bad ids: EINVAL, and nothing mapped.
    let stale = r.segment(PAGE);
    r.rmid(stale);
    r.shmat(stale, 0, 0);
    r.shmat(stale, free + 48 * PAGE, 0);
    r.mapped(free + 48 * PAGE, PAGE);
    r.shmat(stale, free + 48 * PAGE + 1, 0);
    r.shmat(-1, 0, 0);
    r.shmat(-1, 1, 0);
    r.shmat(i32::MIN, 0, SHM_RDONLY);
    r.shmat(i32::MAX, 0, 0);
    r.shmat(stale, 0, SHM_REMAP);
    r.stat(s);
    for at in [a, next, rounded, ro, chosen_rnd, remapped, exec, exec_ro] {
        r.shmdt(at);
    }
    r.stat(s);
    r.rmid(s);
}

/// SHM_RND with an address below SHMLBA rounds it down to 0: a fixed
/// mapping at address 0, which only a process with CAP_SYS_RAWIO may make.
fn shm_rnd_below_shmlba<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(PAGE);
    r.shmat(s, 1, SHM_RND);
    r.stat(s);
    r.shmdt(0);
    r.shmat(s, PAGE - 1, SHM_RND | SHM_RDONLY);
    r.stat(s);
    r.shmdt(0);
    r.stat(s);
    r.rmid(s);
}

fn shm_remap_replaces_an_attachment<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(2 * PAGE);
    let t = r.segment(2 * PAGE);
    let free = r.free();
    let a = r.shmat(s, free, 0);
    r.write(a, 0, b"s's bytes");
    r.stat(s);
    // Replaced wholly: the old attachment is gone.
    r.shmat(t, free, SHM_REMAP);
    r.read(free, 0, 9);
    r.write(free, 0, b"t's bytes");
    r.stat(s);
    r.stat(t);
    r.shmdt(free);
    r.shmdt(free);
    r.mapped(free, 2 * PAGE);
    r.stat(s);
    r.stat(t);
    // By a segment of itself.
    r.shmat(s, free, 0);
    r.shmat(s, free, SHM_REMAP | SHM_RDONLY);
    r.read(free, 0, 9);
    r.stat(s);
    r.shmdt(free);
    r.shmdt(free);
    r.stat(s);
    // Over anonymous memory.
    let anon = free + 16 * PAGE;
    r.map_anon(anon, 4 * PAGE);
    r.write(anon, 0, b"anonymous");
    r.shmat(s, anon, 0);
    r.shmat(s, anon + 2 * PAGE, 0);
    r.shmat(s, anon, SHM_REMAP);
    r.read(anon, 0, 9);
    r.read(anon, 2 * PAGE, 9);
    r.stat(s);
    r.shmdt(anon);
    r.mapped(anon, 2 * PAGE);
    r.mapped(anon + 2 * PAGE, 2 * PAGE);
    r.read(anon, 2 * PAGE, 4);
    // Two whole attachments under one larger.
    let big = r.segment(4 * PAGE);
    let two = free + 32 * PAGE;
    r.shmat(t, two, 0);
    r.shmat(s, two + 2 * PAGE, 0);
    r.stat(s);
    r.stat(t);
    r.shmat(big, two, SHM_REMAP);
    r.stat(s);
    r.stat(t);
    r.stat(big);
    r.shmdt(two + 2 * PAGE);
    r.shmdt(two);
    r.stat(big);
    r.rmid(s);
    r.rmid(t);
    r.rmid(big);
}

/// SHM_REMAP over part of an attachment: the kernel splits the old mapping,
/// and each piece left counts in `shm_nattch` until `shmdt` of the old
/// address ends them all (and only them).
fn shm_remap_over_part_of_an_attachment<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(3 * PAGE);
    let t = r.segment(PAGE);
    let free = r.free();
    // Over the end.
    r.shmat(s, free, 0);
    r.shmat(t, free + 2 * PAGE, SHM_REMAP);
    r.stat(s);
    r.stat(t);
    r.shmdt(free);
    r.stat(s);
    r.mapped(free, 2 * PAGE);
    r.mapped(free + 2 * PAGE, PAGE);
    r.write(free + 2 * PAGE, 0, b"t lives");
    r.shmdt(free + 2 * PAGE);
    r.stat(t);
    // Over the start.
    let start = free + 16 * PAGE;
    r.shmat(s, start, 0);
    r.write(start, 2 * PAGE, b"third page");
    r.shmat(t, start, SHM_REMAP);
    r.stat(s);
    r.stat(t);
    r.shmdt(start);
    r.stat(s);
    r.stat(t);
    r.mapped(start, PAGE);
    r.read(start, 2 * PAGE, 10);
    r.shmdt(start);
    r.stat(s);
    r.mapped(start, 3 * PAGE);
    r.shmdt(start);
    // Over the middle: two pieces left.
    let middle = free + 32 * PAGE;
    r.shmat(s, middle, 0);
    r.shmat(t, middle + PAGE, SHM_REMAP);
    r.stat(s);
    r.stat(t);
    r.read(middle, 2 * PAGE, 10);
    r.shmdt(middle);
    r.stat(s);
    r.stat(t);
    r.mapped(middle, PAGE);
    r.mapped(middle + PAGE, PAGE);
    r.mapped(middle + 2 * PAGE, PAGE);
    r.write(middle + PAGE, 0, b"t lives");
    r.shmdt(middle + PAGE);
    r.stat(t);
    r.rmid(s);
    r.rmid(t);
}

/// Unmapping an attachment without shmdt: the kernel's count follows its
/// mappings.
fn munmap_of_an_attachment<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(2 * PAGE);
    let free = r.free();
    // Its first page: the rest is still the attachment, and shmdt of its
    // start still ends it.
    r.shmat(s, free, 0);
    r.munmap(free, PAGE);
    r.stat(s);
    r.shmdt(free);
    r.stat(s);
    r.mapped(free + PAGE, PAGE);
    // All of it.
    r.shmat(s, free, 0);
    r.munmap(free, 2 * PAGE);
    r.stat(s);
    r.shmdt(free);
    // All of it, removed: the segment goes with its last mapping.
    r.shmat(s, free, 0);
    r.rmid(s);
    r.munmap(free, 2 * PAGE);
    r.stat(s);
    r.shmdt(free);
    r.stat(s);
}

fn attaching_stamps_and_counts<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(100);
    r.stat(s);
    let a = r.shmat(s, 0, 0);
    r.stat(s);
    let b = r.shmat(s, 0, SHM_RDONLY);
    r.stat(s);
    // Failed attaches count nothing.
    r.shmat(s, 1, 0);
    r.shmat(s, a, 0);
    r.stat(s);
    r.shmdt(a);
    r.stat(s);
    r.shmdt(b);
    r.stat(s);
    r.rmid(s);
}

// ---------------------------------------------------------------------------
// Scenarios: shmdt.

fn shmdt_rules<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(2 * PAGE);
    let a = r.shmat(s, 0, 0);
    // Only the start of an attachment.
    r.shmdt(a + 1);
    r.shmdt(a + PAGE);
    r.shmdt(a + PAGE + 7);
    r.shmdt(0);
    r.shmdt(1);
    r.stat(s);
    r.shmdt(a);
    r.stat(s);
    // At a fixed address (an address the system chose may be reused at
    // once): twice, and the mapping goes.
    let free = r.free();
    r.shmdt(free);
    r.shmdt(free + 3);
    r.shmat(s, free, 0);
    r.shmdt(free + PAGE);
    r.shmdt(free);
    r.mapped(free, 2 * PAGE);
    r.shmdt(free);
    r.stat(s);
    r.rmid(s);
}

/// After IPC_RMID a segment lives while attached, can still be attached by
/// id, and goes with its last detach.
fn removed_segments_go_with_their_last_detach<W: SysV>(r: &mut Run<W>) {
    let key = r.new_key();
    let s = r.shmget(key, PAGE, IPC_CREAT | IPC_EXCL | 0o600);
    let a = r.shmat(s, 0, 0);
    let b = r.shmat(s, 0, 0);
    r.write(a, 0, b"still here");
    r.rmid(s);
    r.stat(s);
    r.shmdt(a);
    r.stat(s);
    r.read(b, 0, 10);
    // Attached again by id.
    let c = r.shmat(s, 0, SHM_RDONLY);
    r.read(c, 0, 10);
    r.stat(s);
    r.shmget(key, 0, 0);
    r.shmdt(b);
    r.stat(s);
    r.shmdt(c);
    r.stat(s);
    r.shmat(s, 0, 0);
    r.rmid(s);
    r.lock(s, true);
    r.set(s, 0o600);
    // Removed while unattached: at once.
    let t = r.segment(PAGE);
    r.rmid(t);
    r.stat(t);
    r.shmat(t, 0, 0);
}

// ---------------------------------------------------------------------------
// Scenarios: shmctl.

fn ipc_stat_and_times_of_attach_and_detach<W: SysV>(r: &mut Run<W>) {
    let key = r.new_key();
    let s = r.shmget(key, 5000, IPC_CREAT | IPC_EXCL | 0o640);
    let created = r.stat(s);
    r.tick();
    let a = r.shmat(s, 0, 0);
    let attached = r.stat(s);
    r.moved("after an attach", created, attached);
    r.tick();
    r.shmdt(a);
    let detached = r.stat(s);
    r.moved("after a detach", attached, detached);
    r.rmid(s);
}

fn ipc_set_stamps_ctime_and_nothing_else_does<W: SysV>(r: &mut Run<W>) {
    let (_, gid) = euid_egid();
    let s = r.segment(PAGE);
    let a = r.shmat(s, 0, 0);
    r.shmdt(a);
    let before = r.stat(s);
    r.tick();
    // Calls that fail, or that only look, stamp nothing; nor does SHM_LOCK.
    r.shmat(s, 1, 0);
    r.shmat(s, 0, SHM_REMAP);
    let free = r.free();
    r.shmdt(free);
    r.set_ids(s, u32::MAX, gid, 0o600);
    r.shmget(IPC_PRIVATE, 0, IPC_CREAT | 0o600);
    r.stat_index("index of s0", index_of(s), false);
    r.info(index_of(s));
    r.usage("(looking)", None);
    r.lock(s, true);
    r.lock(s, false);
    let after = r.stat(s);
    r.moved("after failed calls and SHM_LOCK", before, after);
    r.set(s, 0o644);
    let after_set = r.stat(s);
    r.moved("after IPC_SET", after, after_set);
    let b = r.shmat(s, 0, 0);
    let attached = r.stat(s);
    r.tick();
    // IPC_RMID of an attached segment stamps nothing; IPC_SET to the same
    // values stamps ctime.
    r.rmid(s);
    let removed = r.stat(s);
    r.moved("after IPC_RMID", attached, removed);
    r.set(s, 0o644);
    let same = r.stat(s);
    r.moved("after an IPC_SET that changes nothing", removed, same);
    r.shmdt(b);
}

fn ipc_set_changes_mode_and_owner<W: SysV>(r: &mut Run<W>) {
    let (uid, gid) = euid_egid();
    let s = r.segment(PAGE);
    // The permission bits only.
    r.set(s, 0o640);
    r.stat(s);
    r.set(s, 0o7777);
    r.stat(s);
    r.set(s, 0o177_777);
    r.stat(s);
    r.set(s, 0);
    r.stat(s);
    // Root may still attach a segment of mode 0 (CAP_IPC_OWNER).
    let a = r.shmat(s, 0, 0);
    r.read(a, 0, 4);
    r.shmdt(a);
    // Owner and group; the creator stays.
    r.set_ids(s, 4242, 4343, 0o660);
    r.stat(s);
    r.set_ids(s, uid, gid, 0o600);
    r.stat(s);
    // Bad ids.
    r.set_ids(s, u32::MAX, gid, 0o640);
    r.set_ids(s, uid, u32::MAX, 0o640);
    r.stat(s);
    // IPC_SET keeps SHM_LOCKED and SHM_DEST.
    r.lock(s, true);
    r.set(s, 0o604);
    r.stat(s);
    let b = r.shmat(s, 0, 0);
    r.rmid(s);
    r.set(s, 0o640);
    r.stat(s);
    r.shmdt(b);
    // Bad segments.
    let stale = r.segment(PAGE);
    r.rmid(stale);
    r.set(stale, 0o600);
    r.set(-1, 0o600);
    r.set(i32::MAX, 0o600);
    r.stat(stale);
    r.stat(-1);
    r.stat(i32::MIN);
    r.stat(s);
    r.rmid(-1);
    r.rmid(i32::MAX);
    r.rmid(stale);
}

fn ipc_rmid_marks_and_frees_the_key<W: SysV>(r: &mut Run<W>) {
    let key = r.new_key();
    let s = r.shmget(key, 100, IPC_CREAT | IPC_EXCL | 0o600);
    let a = r.shmat(s, 0, 0);
    r.rmid(s);
    r.stat(s);
    // Twice, while attached.
    r.rmid(s);
    r.stat(s);
    // The key is free.
    r.shmget(key, 0, 0);
    r.shmget(key, 100, IPC_EXCL | 0o600);
    let t = r.shmget(key, 100, IPC_CREAT | 0o600);
    r.note(format!("the new segment has a new id: {}", t != s));
    r.stat(t);
    r.shmget(key, 0, 0);
    r.stat(s);
    r.shmdt(a);
    r.stat(s);
    r.rmid(s);
    r.stat(t);
    r.rmid(t);
    r.rmid(t);
    r.stat(t);
    r.shmget(key, 0, 0);
}

fn shm_lock_and_unlock<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(PAGE);
    r.lock(s, true);
    r.stat(s);
    r.lock(s, true);
    r.stat(s);
    r.lock(s, false);
    r.stat(s);
    r.lock(s, false);
    r.stat(s);
    // Locked and attached, then removed.
    r.lock(s, true);
    let a = r.shmat(s, 0, 0);
    r.write(a, 0, b"locked");
    r.rmid(s);
    r.stat(s);
    r.lock(s, false);
    r.stat(s);
    r.lock(s, true);
    r.shmdt(a);
    r.stat(s);
    r.lock(s, true);
    r.lock(s, false);
    r.lock(-1, true);
    r.lock(-1, false);
    r.lock(i32::MAX, true);
}

fn ipc_info_and_shm_info<W: SysV>(r: &mut Run<W>) {
    let before = r.usage("before", None);
    let s0 = r.segment(1);
    let s1 = r.segment(PAGE + 1);
    let s2 = r.segment(3 * PAGE);
    r.info(index_of(s2));
    r.usage("after making three segments", before);
    let a = r.shmat(s2, 0, 0);
    r.write(a, 0, b"x");
    r.rmid(s0);
    r.usage("after removing one", before);
    r.rmid(s2);
    r.usage("after removing an attached one", before);
    r.shmdt(a);
    r.usage("after its last detach", before);
    r.rmid(s1);
    r.usage("after removing the last", before);
}

/// `shm_rss`: the kernel counts the pages a segment has touched.
fn shm_info_counts_resident_pages<W: SysV>(r: &mut Run<W>) {
    let before = r.rss("before", None);
    let s = r.segment(4 * PAGE);
    r.rss("after making a segment of four pages", before);
    let a = r.shmat(s, 0, 0);
    r.write(a, 0, b"one");
    r.write(a, 2 * PAGE, b"two");
    r.rss("after writing to two of its pages", before);
    r.shmdt(a);
    r.rmid(s);
    r.rss("after removing it", before);
}

fn shm_stat_by_index<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(100);
    let index = index_of(s);
    r.stat_index("index of s0", index, false);
    r.stat_index("index of s0", index, true);
    // An index is not an id.
    r.stat_index("index of s0 + IPCMNI", index + IPCMNI, false);
    r.stat_index("index of s0 + IPCMNI", index + IPCMNI, true);
    r.stat_index("-1", -1, false);
    r.stat_index("-1", -1, true);
    r.stat_index("i32::MIN", i32::MIN, false);
    // A removed segment's index.
    let t = r.segment(100);
    let gone = index_of(t);
    r.rmid(t);
    r.stat_index("index of removed s1", gone, false);
    r.stat_index("index of removed s1", gone, true);
    // Removed but attached: still there.
    let a = r.shmat(s, 0, 0);
    r.rmid(s);
    r.stat_index("index of s0", index, false);
    r.stat_index("index of s0", index, true);
    r.shmdt(a);
    r.stat_index("index of s0", index, false);
    r.stat_index("index of s0", index, true);
}

/// A forked child holds copies of its parent's attachments until it exits.
fn a_forked_child_holds_the_attachments<W: SysV>(r: &mut Run<W>) {
    let s = r.segment(PAGE);
    let a = r.shmat(s, 0, 0);
    r.write(a, 0, b"parent");
    r.stat(s);
    let child = r.fork(a, b"child!");
    r.stat(s);
    r.release(child);
    r.stat(s);
    r.read(a, 0, 6);
    // A removed segment goes with the last attachment, the child's.
    let child = r.fork(a, b"second");
    r.rmid(s);
    r.shmdt(a);
    r.stat(s);
    r.release(child);
    r.stat(s);
}

differential!(shmget_checks_keys_flags_and_sizes_as_the_kernel_does => shmget_flags_and_errors);
differential!(shmget_takes_sizes_as_the_kernel_does => shmget_sizes);
differential!(
    shmget_refuses_sizes_beyond_memory_as_the_kernel_does => shmget_sizes_beyond_memory
);
differential!(
    shm_hugetlb_without_huge_pages_fails_as_in_the_kernel => shm_hugetlb_without_huge_pages
);
differential!(
    segments_start_zeroed_and_share_their_bytes_as_in_the_kernel
        => segments_start_zeroed_and_share_their_bytes
);
differential!(shmat_takes_addresses_and_flags_as_the_kernel_does => shmat_addresses_and_flags);
differential!(shm_rnd_below_shmlba_rounds_to_zero_as_in_the_kernel => shm_rnd_below_shmlba);
differential!(shm_remap_replaces_attachments_as_in_the_kernel => shm_remap_replaces_an_attachment);
differential!(
    shm_remap_over_part_of_an_attachment_leaves_pieces_as_in_the_kernel
        => shm_remap_over_part_of_an_attachment
);
differential!(
    known "usysv does not see munmap (README: Differences from the kernel)",
    munmap_of_an_attachment_ends_it_as_in_the_kernel => munmap_of_an_attachment
);
differential!(attaching_stamps_and_counts_as_in_the_kernel => attaching_stamps_and_counts);
differential!(shmdt_takes_only_attachment_starts_as_the_kernel_does => shmdt_rules);
differential!(
    removed_segments_go_with_their_last_detach_as_in_the_kernel
        => removed_segments_go_with_their_last_detach
);
differential!(
    ipc_stat_and_attach_and_detach_times_are_the_kernels
        => ipc_stat_and_times_of_attach_and_detach
);
differential!(
    ipc_set_stamps_ctime_and_nothing_else_does_as_in_the_kernel
        => ipc_set_stamps_ctime_and_nothing_else_does
);
differential!(ipc_set_changes_mode_and_owner_as_in_the_kernel => ipc_set_changes_mode_and_owner);
differential!(ipc_rmid_marks_and_frees_the_key_as_in_the_kernel => ipc_rmid_marks_and_frees_the_key);
differential!(shm_lock_and_unlock_mark_the_mode_as_in_the_kernel => shm_lock_and_unlock);
differential!(exclusive ipc_info_and_shm_info_count_as_in_the_kernel => ipc_info_and_shm_info);
differential!(
    exclusive shm_info_counts_resident_pages_as_the_kernel_does => shm_info_counts_resident_pages
);
differential!(exclusive shm_stat_finds_segments_by_index_as_in_the_kernel => shm_stat_by_index);
differential!(
    exclusive a_forked_child_holds_the_attachments_as_in_the_kernel
        => a_forked_child_holds_the_attachments
);

// ---------------------------------------------------------------------------
// Permission checks that bite even for root: this test binary, run again as
// a helper (`probe_child`), becomes another user, in the segment's group or
// not, or its owner after IPC_SET; it probes the segment under a series of
// modes, in each world, and exits with an attachment still held.

/// The helper's identities (uid:gid) against a segment root owns.
const PROBERS: [&str; 2] = ["4242:0", "4242:4343"];

/// The modes probed.
const MODES: [u32; 11] = [
    0, 0o400, 0o600, 0o700, 0o040, 0o060, 0o070, 0o004, 0o006, 0o005, 0o007,
];

/// The modes probed with the helper as the segment's owner (not creator).
const OWNER_MODES: [u32; 3] = [0o600, 0, 0o060];

/// Makes a segment with a fresh key and runs the helper's probe on it as
/// each prober under each mode; after each, notes what the segment says.
fn permission_probe<W: SysV>(w: &W, world: &str) -> Vec<String> {
    let key = w.new_key();
    let (uid, gid) = euid_egid();
    let mut cases: Vec<(u32, u32, u32, &str)> = Vec::new();
    for mode in MODES {
        for prober in PROBERS {
            cases.push((uid, gid, mode, prober));
        }
    }
    for mode in OWNER_MODES {
        cases.push((4242, 4343, mode, "4242:4343"));
    }
    let mut lines = Vec::new();
    for (owner, group, mode, prober) in cases {
        let case = format!("owner {owner}:{group} mode {mode:#o}, as {prober}");
        let id = w.shmget(key, 100, IPC_CREAT | IPC_EXCL | 0o600).unwrap();
        let set = w.set(id, owner, group, mode);
        lines.push(format!("{case}: IPC_SET = {}", ok_or_errno(&set)));
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "probe_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROBE, format!("{world} {key} {id} {prober}"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        // The first line follows the test harness's "test probe_child ... ".
        for line in stdout.lines().filter_map(|l| l.split_once("probe: ")) {
            let line = line.1;
            lines.push(format!("{case}: {line}"));
        }
        lines.push(format!(
            "{case}: the helper succeeded: {}",
            output.status.success()
        ));
        // It exited holding an attachment (if it could make one).
        let after = match w.stat(id) {
            Ok(s) => format!(
                "nattch={} lpid={} atime set {} dtime set {} mode={:#o}",
                s.nattch,
                pid_name(s.lpid),
                s.atime != 0,
                s.dtime != 0,
                s.mode
            ),
            Err(errno) => errno_name(errno),
        };
        lines.push(format!("{case}: then IPC_STAT = {after}"));
        // Gone at once, unless something still holds it.
        let _ = w.rmid(id);
    }
    lines
}

#[test]
fn mode_bits_and_owners_are_checked_as_the_kernel_checks_them() {
    let _watchdog = Watchdog::new("permission probe", Duration::from_secs(120));
    let _shared = NAMESPACE.read().unwrap_or_else(|e| e.into_inner());
    let kernel = permission_probe(&Kernel::default(), "kernel");
    let usysv_world = Usysv::new("perm");
    let arena = usysv_world.ipc.file().path().to_str().unwrap().to_string();
    let usysv = permission_probe(&usysv_world, &arena);
    usysv_tests::show_transcript("permission probe", &kernel);
    assert!(
        kernel.iter().any(|line| line.ends_with("EACCES")),
        "the probe never saw EACCES: did it keep CAP_IPC_OWNER? {kernel:?}"
    );
    usysv_tests::assert_same(&kernel, &usysv);
}

/// Becomes `uid:gid` with no supplementary groups (every thread: glibc
/// applies these to all), and so loses every capability.
fn become_user(uid: u32, gid: u32) {
    // SAFETY: plain system calls on this process's credentials.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setresgid(gid, gid, gid), 0, "setresgid");
        assert_eq!(libc::setresuid(uid, uid, uid), 0, "setresuid");
    }
}

/// The helper: with `USYSV_SHM_PROBE` set to `WORLD KEY ID UID:GID` (WORLD
/// `kernel` or an arena's path), becomes UID:GID and tries every call on
/// segment ID (key KEY), printing one line per call ("probe: what = result"),
/// then exits holding an attachment if it could make one. Ignored in a
/// normal run: the probe test runs it, and it refuses to run without the
/// variable.
#[test]
#[ignore = "the helper of mode_bits_and_owners_are_checked_as_the_kernel_checks_them"]
fn probe_child() {
    let args =
        std::env::var(PROBE).expect("run by the permission probe test, with USYSV_SHM_PROBE");
    // SAFETY: alarm only schedules SIGALRM, whose default action ends the process.
    unsafe { libc::alarm(60) };
    let args: Vec<&str> = args.split_whitespace().collect();
    let [world, key, id, who] = args[..] else {
        panic!("{PROBE}: WORLD KEY ID UID:GID, not {args:?}");
    };
    let (uid, gid) = who.split_once(':').unwrap();
    become_user(uid.parse().unwrap(), gid.parse().unwrap());
    let (key, id) = (key.parse().unwrap(), id.parse().unwrap());
    // Opened afterwards: usysv reads the credentials when it opens.
    if world == "kernel" {
        probe(Kernel::default(), key, id);
    } else {
        probe(Usysv::join(Path::new(world)), key, id);
    }
}

/// The helper's calls on segment `id` (key `key`).
fn probe<W: SysV>(w: W, key: i32, id: i32) {
    let say = |what: &str, shown: String| println!("probe: {what} = {shown}");
    let outcome = |result: R<()>| ok_or_errno(&result);
    for flags in [0, 0o400, 0o200, 0o600, 0o040, 0o004, 0o006, 0o100] {
        let shown = match w.shmget(key, 0, flags) {
            Ok(got) if got == id => "the segment".to_string(),
            Ok(_) => "another segment".to_string(),
            Err(errno) => errno_name(errno),
        };
        say(&format!("shmget(key, 0, {flags:#o})"), shown);
    }
    // The size and IPC_EXCL come before the permission check.
    say(
        "shmget(key, 1 MiB, 0)",
        outcome(w.shmget(key, 1 << 20, 0).map(drop)),
    );
    say(
        "shmget(key, 0, IPC_CREAT|IPC_EXCL|0600)",
        outcome(w.shmget(key, 0, IPC_CREAT | IPC_EXCL | 0o600).map(drop)),
    );
    for flags in [0, SHM_RDONLY, SHM_EXEC, SHM_RDONLY | SHM_EXEC] {
        let result = w.shmat(id, 0, flags);
        if let Ok(at) = result {
            w.shmdt(at).unwrap();
        }
        say(
            &format!("shmat({})", at_flags(flags)),
            outcome(result.map(drop)),
        );
    }
    // The address comes before the permission check.
    say("shmat(misaligned)", outcome(w.shmat(id, 1, 0).map(drop)));
    let stat = w.stat(id);
    say(
        "IPC_STAT",
        match &stat {
            Ok(s) => format!("mode {:#o}", s.mode),
            Err(errno) => errno_name(*errno),
        },
    );
    for any in [false, true] {
        let shown = match w.stat_index(index_of(id), any) {
            Ok((got, _)) if got == id => "the segment".to_string(),
            Ok(_) => "another segment".to_string(),
            Err(errno) => errno_name(errno),
        };
        say(if any { "SHM_STAT_ANY" } else { "SHM_STAT" }, shown);
    }
    say("SHM_LOCK", outcome(w.lock(id, true)));
    say("SHM_UNLOCK", outcome(w.lock(id, false)));
    // IPC_SET to what the segment has: allowed or not, it changes nothing.
    let (mode, uid, gid) = match stat {
        Ok(s) => (s.mode & 0o777, s.uid, s.gid),
        Err(_) => (0, 4242, 4343),
    };
    say("IPC_SET", outcome(w.set(id, uid, gid, mode)));
    // Exit holding an attachment, if one can be made.
    let held = w
        .shmat(id, 0, SHM_RDONLY)
        .or_else(|_| w.shmat(id, 0, 0))
        .is_ok();
    say("held an attachment", held.to_string());
    say("IPC_RMID", outcome(w.rmid(id)));
    // Nothing of this world is undone: the exit ends the attachment.
    std::mem::forget(w);
}
