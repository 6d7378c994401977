//! SEM_UNDO across real processes: applied at exit, not inherited by a fork
//! child, kept across exec, and checkpointed and restarted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use usysv_platform::usysv_core::perm::IPC_PRIVATE;
use usysv_platform::usysv_core::sem::{SemBuf, SemQuery};
use usysv_platform::{ArenaFile, Ipc};
use usysv_tests::{
    eventually, install_usysv, usysv_command, Helper, TempDir, Watchdog, PATIENCE, SMALL_LIMITS,
};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-undo-helper");

/// Runs the helper to completion and returns the lines it printed.
fn helper(command: &str, arena: &Path, semid: i32) -> Vec<String> {
    helper_with(command, arena, semid, &[])
}

/// [`helper`] with more arguments.
fn helper_with(command: &str, arena: &Path, semid: i32, more: &[&Path]) -> Vec<String> {
    let out = Command::new(HELPER)
        .args([command, arena.to_str().unwrap(), &semid.to_string()])
        .args(more)
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

/// `usysv COMMAND ARGS...`: its exit code, standard output and error.
fn usysv(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(usysv_command()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_checkpointed_process_restarts_on_a_copy_of_the_arena_and_in_the_same_one() {
    let _watchdog = Watchdog::new("undo checkpoint and restart", Duration::from_secs(60));
    let dir = TempDir::new("undo-restart");
    let (path, ipc, id) = arena(&dir);
    ipc.semctl_setval(id, 0, 1).unwrap();
    let arena = path.to_str().unwrap();
    let list = dir.join("worker.undo");
    let list_arg = list.to_str().unwrap();
    let semid = id.to_string();

    // The worker takes 1 with SEM_UNDO, checkpoints its list, and waits for more.
    let mut worker = Helper::spawn(Path::new(HELPER), &["checkpoint", arena, &semid, list_arg]);
    assert_eq!(worker.read_line(), "checkpointed");
    eventually("the worker waits", || {
        ipc.semctl_query(id, 0, SemQuery::WaitingToDecrease) == Ok(1)
    });
    let pid = worker.0.id();
    let text = std::fs::read_to_string(&list).unwrap();
    assert_eq!(
        text.lines().nth(2),
        Some(format!("set {id} 0:+1").as_str()),
        "{text}"
    );
    let (code, shown, _) = usysv(&[
        "undo",
        "export",
        "--pid",
        &pid.to_string(),
        "--arena",
        arena,
    ]);
    assert_eq!(
        (code, shown.as_str()),
        (Some(0), text.as_str()),
        "read by anyone"
    );

    // Stopped, the arena holds still: copy it, then kill the worker.
    // SAFETY: signalling our own unreaped child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let copy = dir.join("copy");
    std::fs::copy(&path, &copy).unwrap();
    worker.sigkill();
    worker.0.wait().unwrap();

    // Its list is kept, not applied, and the arena is clean.
    let (code, gc, _) = usysv(&["gc", "--arena", arena]);
    assert_eq!(
        (code, gc),
        (Some(0), format!("{arena}: reaped 1 dead process\n"))
    );
    assert_eq!(ipc.semctl_getval(id, 0), Ok(0), "kept for the restart");
    assert_eq!(ipc.semctl_query(id, 0, SemQuery::WaitingToDecrease), Ok(0));
    let (code, check, _) = usysv(&["check", "--arena", arena]);
    assert_eq!(code, Some(0), "{check}");

    // Restarted on the copy by `usysv run`: the program holds the list and
    // applies it when it exits.
    let copy_arg = copy.to_str().unwrap();
    let restart = [
        "run",
        "--arena",
        copy_arg,
        "--import-undo",
        list_arg,
        "--",
        HELPER,
        "restarted",
        copy_arg,
        &semid,
    ];
    // `usysv run` needs the preload library beside it.
    let installed = install_usysv(&dir, true);
    let run = |args: &[&str]| {
        let out = Command::new(&installed).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, out, err) = run(&restart);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "the value at the checkpoint");
    assert_eq!(
        lines[3],
        format!("set {id} 0:+1"),
        "now the restarted process's: {out}"
    );
    let restored = Ipc::with_file(ArenaFile::open(&copy).unwrap()).unwrap();
    assert_eq!(
        restored.semctl_getval(id, 0),
        Ok(1),
        "applied once, at its exit"
    );
    let (code, _, err) = run(&restart);
    assert_eq!(code, Some(1));
    assert!(err.contains("kept no undo list"), "{err}");
    assert_eq!(restored.semctl_getval(id, 0), Ok(1), "never twice");

    // Restarted in the original arena through the Rust API.
    assert_eq!(helper_with("restore", &path, id, &[&list]), ["0"]);
    assert_eq!(ipc.semctl_getval(id, 0), Ok(1));
    assert_eq!(helper_with("restore", &path, id, &[&list]), ["ESRCH"]);
    let (code, check, _) = usysv(&["check", "--arena", arena]);
    assert_eq!(code, Some(0), "{check}");
}

#[test]
fn a_checkpoint_nobody_restarts_is_released() {
    let _watchdog = Watchdog::new("undo release", Duration::from_secs(60));
    let dir = TempDir::new("undo-release");
    let (path, ipc, id) = arena(&dir);
    ipc.semctl_setval(id, 0, 1).unwrap();
    let arena = path.to_str().unwrap();
    let list = dir.join("worker.undo");
    let list_arg = list.to_str().unwrap();
    let mut worker = Helper::spawn(
        Path::new(HELPER),
        &["checkpoint", arena, &id.to_string(), list_arg],
    );
    assert_eq!(worker.read_line(), "checkpointed");
    worker.sigkill();
    worker.0.wait().unwrap();
    let (code, out, err) = usysv(&["undo", "release", list_arg, "--arena", arena]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!("released the checkpoint of process {}\n", worker.0.id())
    );
    assert_eq!(ipc.semctl_getval(id, 0), Ok(1), "applied as at its exit");
    let (code, _, err) = usysv(&["undo", "release", list_arg, "--arena", arena]);
    assert_eq!(code, Some(1));
    assert!(err.contains("has no checkpoint"), "{err}");
    let (code, _, err) = usysv(&["undo", "export", "--pid", "1", "--arena", arena]);
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "usysv: no process 1 is registered in the arena\n")
    );
    let (code, _, err) = usysv(&["undo", "release", "/nonexistent/list", "--arena", arena]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("usysv: /nonexistent/list: "), "{err}");
}

#[test]
fn usysv_daemon_reaps_a_killed_process_itself() {
    let _watchdog = Watchdog::new("usysv daemon", Duration::from_secs(60));
    let dir = TempDir::new("undo-daemon");
    let (path, ipc, id) = arena(&dir);
    ipc.semctl_setval(id, 0, 1).unwrap();
    let arena = path.to_str().unwrap();
    let mut daemon = Helper::spawn(&usysv_command(), &["daemon", "--arena", arena]);
    assert_eq!(
        daemon.read_line(),
        format!("usysv daemon: watching {arena}")
    );
    let mut holder = Helper::spawn(Path::new(HELPER), &["hold", arena, &id.to_string()]);
    assert_eq!(holder.read_line(), "holding");
    let registered = ipc.namespace().processes();
    assert_eq!(registered, 3, "this test, the daemon and the holder");
    holder.sigkill();
    holder.0.wait().unwrap();
    // Nothing here reaps (counting the registry does not): the daemon must.
    assert_eq!(
        daemon.line_within(PATIENCE),
        "usysv daemon: reaped 1 dead process"
    );
    assert_eq!(ipc.namespace().processes(), registered - 1);
    assert_eq!(
        ipc.semctl_getval(id, 0),
        Ok(1),
        "its adjustment was applied"
    );
    // SAFETY: signalling our own unreaped child.
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(daemon.finish(), "usysv daemon: stopped");
    assert_eq!(ipc.namespace().processes(), 1, "the daemon left");
}
