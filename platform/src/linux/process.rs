//! Process identity, liveness, threads and capabilities on Linux, from
//! `/proc`.
//!
//! A process is named by its pid and its start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot), so that a pid reused by a new
//! process is not taken for the old one. A zombie counts as dead: it can run
//! no more code, and its mappings are gone.

use std::io::ErrorKind;

use usysv_core::host::{Image, Liveness, ProcessId};

use crate::unix::process::{liveness_by_signal, Privileges};

/// Reads the start time from the text of a `/proc/PID/stat` file, and whether
/// the process has ended (zombie `Z` or dead `X`).
fn parse_stat(stat: &str) -> Option<(bool, u64)> {
    // The command name is in parentheses and may hold anything, ')' included.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    let state = fields.next()?;
    // Field 3 is the state; the start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((matches!(state, "Z" | "X"), start))
}

/// The program image: four of the sixteen random bytes the kernel gives each
/// `execve` (`AT_RANDOM`).
pub(crate) fn image() -> Image {
    // SAFETY: getauxval has no preconditions.
    let random = unsafe { libc::getauxval(libc::AT_RANDOM) } as *const u8;
    if random.is_null() {
        return Image(0);
    }
    let mut bytes = [0u8; 4];
    // SAFETY: AT_RANDOM points to 16 bytes that live as long as the process.
    unsafe { core::ptr::copy_nonoverlapping(random, bytes.as_mut_ptr(), 4) };
    Image(u32::from_ne_bytes(bytes))
}

/// The calling process.
pub(crate) fn current() -> ProcessId {
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    let start = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .map_or(0, |(_, start)| start);
    ProcessId { pid, start }
}

/// Whether `process` still runs.
pub(crate) fn liveness(process: ProcessId) -> Liveness {
    match std::fs::read_to_string(format!("/proc/{}/stat", process.pid)) {
        Ok(stat) => match parse_stat(&stat) {
            Some((ended, start)) if ended || start != process.start => Liveness::Dead,
            _ => Liveness::Alive,
        },
        Err(err) if err.kind() == ErrorKind::NotFound => Liveness::Dead,
        // /proc hidden (hidepid) or unreadable: fall back on kill(pid, 0).
        Err(_) => liveness_by_signal(process.pid),
    }
}

/// Whether the calling process may control `process` as `ptrace` would
/// let it: the same process (pid and start time) still running, whose real,
/// effective and saved user and group ids are all the caller's real ones.
/// (`CAP_SYS_ADMIN` callers are let through by the core.)
pub(crate) fn may_control(process: ProcessId) -> bool {
    let same_process = std::fs::read_to_string(format!("/proc/{}/stat", process.pid))
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .is_some_and(|(ended, start)| !ended && start == process.start);
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", process.pid)) else {
        return false;
    };
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    same_process && ids_all_are(&status, "Uid:", uid) && ids_all_are(&status, "Gid:", gid)
}

/// Whether the first three ids (real, effective, saved) on the `/proc/PID/status`
/// line that starts with `label` are all `id`.
fn ids_all_are(status: &str, label: &str, id: u32) -> bool {
    let Some(line) = status.lines().find_map(|line| line.strip_prefix(label)) else {
        return false;
    };
    let ids: Vec<Option<u32>> = line
        .split_ascii_whitespace()
        .take(3)
        .map(|field| field.parse().ok())
        .collect();
    ids.len() == 3 && ids.iter().all(|&field| field == Some(id))
}

/// The number of threads in this process, from `/proc/self/stat`.
pub(crate) fn threads() -> Option<u32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 20, counted from the state (field 3).
    after_name
        .split_ascii_whitespace()
        .nth(20 - 3)?
        .parse()
        .ok()
}

const CAP_IPC_OWNER: u32 = 15;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;

/// The privileges of a process whose effective uid is `euid`: its effective
/// capabilities, from `/proc/self/status` (all of them for root if that
/// cannot be read).
pub(crate) fn privileges(euid: u32) -> Privileges {
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
        })
        .unwrap_or(if euid == 0 { u64::MAX } else { 0 });
    Privileges {
        ipc_owner: effective & (1 << CAP_IPC_OWNER) != 0,
        sys_admin: effective & (1 << CAP_SYS_ADMIN) != 0,
        sys_resource: effective & (1 << CAP_SYS_RESOURCE) != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line =
            "4242 (a) b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_stat(line), Some((false, 987654)));
        let zombie = "7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert_eq!(parse_stat(zombie), Some((true, 55)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_lives_and_a_wrong_start_time_is_another_process() {
        let me = current();
        assert_ne!(me.start, 0);
        assert_eq!(liveness(me), Liveness::Alive);
        let impostor = ProcessId {
            start: me.start + 1,
            ..me
        };
        assert_eq!(liveness(impostor), Liveness::Dead);
    }

    #[test]
    fn a_process_controls_itself_and_not_an_impostor_or_init() {
        let me = current();
        assert!(may_control(me));
        assert!(!may_control(ProcessId {
            start: me.start + 1,
            ..me
        }));
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            let init = std::fs::read_to_string("/proc/1/stat").unwrap();
            let start = parse_stat(&init).unwrap().1;
            assert!(!may_control(ProcessId { pid: 1, start }), "root's init");
        }
        let status = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t5\t100\n";
        assert!(ids_all_are(status, "Uid:", 1000));
        assert!(!ids_all_are(status, "Gid:", 100), "a saved gid differs");
        assert!(!ids_all_are("Uid:\t1000\n", "Uid:", 1000), "a short line");
    }

    #[test]
    fn an_exited_child_is_dead_even_as_a_zombie() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let stat = loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if parse_stat(&stat).unwrap().0 {
                break stat;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let start = parse_stat(&stat).unwrap().1;
        assert_eq!(liveness(ProcessId { pid, start }), Liveness::Dead, "zombie");
        child.wait().unwrap();
        assert_eq!(liveness(ProcessId { pid, start }), Liveness::Dead, "reaped");
    }

    #[test]
    fn this_process_has_threads() {
        assert!(threads().is_some_and(|threads| threads >= 1));
    }
}
