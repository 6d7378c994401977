//! SEM_UNDO across real processes: applied at exit, not inherited by a fork
//! child, kept across exec.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use usysv_platform::usysv_core::perm::IPC_PRIVATE;
use usysv_platform::usysv_core::sem::{SemBuf, SemQuery};
use usysv_platform::Ipc;
use usysv_tests::{eventually, usysv_command, Helper, TempDir, Watchdog, SMALL_LIMITS};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-undo-helper");

/// Runs the helper to completion and returns the lines it printed.
fn helper(command: &str, arena: &Path, semid: i32) -> Vec<String> {
    let out = Command::new(HELPER)
        .args([command, arena.to_str().unwrap(), &semid.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn arena(dir: &TempDir) -> (PathBuf, Ipc, i32) {
    let path = dir.join("arena");
    let ipc = Ipc::open(&path, &SMALL_LIMITS, 0o600).unwrap();
    let id = ipc.semget(IPC_PRIVATE, 1, 0o600).unwrap();
    (path, ipc, id)
}

#[test]
fn adjustments_are_applied_when_the_process_exits() {
    let _watchdog = Watchdog::new("undo at exit", Duration::from_secs(60));
    let dir = TempDir::new("undo-exit");
    let (path, ipc, id) = arena(&dir);
    assert_eq!(helper("exit", &path, id), ["1"]);
    assert_eq!(ipc.semctl_getval(id, 0), Ok(0));
    ipc.semctl_setval(id, 0, 10).unwrap();
    assert_eq!(helper("exit", &path, id), ["11"]);
    assert_eq!(ipc.semctl_getval(id, 0), Ok(10));
}

#[test]
fn a_fork_child_does_not_inherit_adjustments_and_has_its_own() {
    let _watchdog = Watchdog::new("undo and fork", Duration::from_secs(60));
    let dir = TempDir::new("undo-fork");
    let (path, ipc, id) = arena(&dir);
    // Parent +2 (undo), child +1 and +5 (undo); the child's +5 is undone when
    // it exits, and its exit does not undo the parent's +2.
    assert_eq!(helper("fork", &path, id), ["3"]);
    // The parent's +2 is undone when it exits.
    assert_eq!(ipc.semctl_getval(id, 0), Ok(1));
}

#[test]
fn adjustments_survive_exec_and_are_applied_when_the_new_image_exits() {
    let _watchdog = Watchdog::new("undo and exec", Duration::from_secs(60));
    let dir = TempDir::new("undo-exec");
    let (path, ipc, id) = arena(&dir);
    assert_eq!(helper("exec", &path, id), ["1"], "not undone at exec");
    assert_eq!(
        ipc.semctl_getval(id, 0),
        Ok(0),
        "undone when the new image exits"
    );
}

#[test]
fn usysv_gc_reaps_a_process_killed_while_it_waited() {
    let _watchdog = Watchdog::new("gc after SIGKILL", Duration::from_secs(60));
    let dir = TempDir::new("undo-gc");
    let (path, ipc, id) = arena(&dir);
    ipc.semctl_setval(id, 0, 1).unwrap();
    let arena = path.to_str().unwrap();
    let mut holder = Helper::spawn(Path::new(HELPER), &["hold", arena, &id.to_string()]);
    assert_eq!(holder.read_line(), "holding");
    eventually("the holder waits for more", || {
        ipc.semctl_query(id, 0, SemQuery::WaitingToDecrease) == Ok(1)
    });
    let registered = ipc.namespace().processes();
    holder.sigkill();
    holder.0.wait().unwrap();

    let gc = Command::new(usysv_command())
        .args(["gc", "--arena", arena])
        .output()
        .unwrap();
    assert!(gc.status.success());
    assert_eq!(
        String::from_utf8_lossy(&gc.stdout),
        format!("{arena}: reaped 1 dead process\n")
    );
    assert_eq!(ipc.namespace().processes(), registered - 1);
    assert_eq!(
        ipc.semctl_getval(id, 0),
        Ok(1),
        "its adjustment was applied"
    );
    assert_eq!(
        ipc.semctl_query(id, 0, SemQuery::WaitingToDecrease),
        Ok(0),
        "its wait left the queue"
    );
    let sop = SemBuf {
        sem_num: 0,
        sem_op: -1,
        sem_flg: 0,
    };
    ipc.semop(id, &[sop]).unwrap();
    assert_eq!(
        ipc.semctl_getval(id, 0),
        Ok(0),
        "this process took it, not the dead one"
    );
    let check = Command::new(usysv_command())
        .args(["check", "--arena", arena])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
