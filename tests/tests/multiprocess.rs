//! Several processes on one arena: racing creators, a lock holder killed with
//! SIGKILL inside its critical section, and processes killed at random points.

use std::path::Path;
use std::time::Duration;

use usysv_platform::usysv_core::perm::IPC_CREAT;
use usysv_platform::usysv_core::{Errno, Kind, Namespace};
use usysv_platform::{ArenaFile, Credentials, LinuxHost};
use usysv_tests::{Helper, Rng, TempDir, Watchdog, SMALL_LIMITS};

const HELPER: &str = env!("CARGO_BIN_EXE_usysv-test-helper");

fn helper(args: &[&str]) -> Helper {
    Helper::spawn(Path::new(HELPER), args)
}

fn counts(file: &ArenaFile, ns: &Namespace<'_, LinuxHost>) -> (u32, u32, Vec<String>) {
    let mut problems = Vec::new();
    let summary = file.check(ns, &mut |p| problems.push(p.to_string()));
    (summary.corrupt, summary.stale, problems)
}

#[test]
fn processes_racing_to_create_an_arena_end_with_one() {
    let _watchdog = Watchdog::new("racing creators", Duration::from_secs(60));
    let dir = TempDir::new("race");
    let path = dir.join("arena");
    let arena = path.to_str().unwrap();
    for round in 0..5 {
        let _ = std::fs::remove_file(&path);
        let key = (round + 1).to_string();
        let mut racers: Vec<Helper> = (0..8)
            .map(|_| helper(&["create-key", arena, &key]))
            .collect();
        let ids: Vec<String> = racers.iter_mut().map(Helper::read_line).collect();
        for racer in &mut racers {
            assert!(racer.0.wait().unwrap().success());
        }
        assert!(
            ids.iter().all(|id| id == &ids[0] && !id.is_empty()),
            "{ids:?}"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["arena"], "one arena and no temporary files");
        let file = ArenaFile::open(&path).unwrap();
        let ns = file.namespace().unwrap();
        assert_eq!(ns.in_use(Kind::Sem), 1);
        assert_eq!(counts(&file, &ns).0, 0);
    }
}

#[test]
fn a_lock_holder_killed_inside_its_critical_section_is_recovered() {
    let _watchdog = Watchdog::new("lock recovery", Duration::from_secs(60));
    let dir = TempDir::new("recovery");
    let path = dir.join("arena");
    let file = ArenaFile::create(&path, &SMALL_LIMITS, 0o600).unwrap();
    let ns = file.namespace().unwrap();
    let creds = Credentials::current();
    let id = ns
        .ipc_get(
            Kind::Sem,
            7,
            IPC_CREAT | 0o600,
            &creds.as_cred(),
            |_| Ok(()),
            |txn, object| txn.set(&object.ext()[0], 5),
        )
        .unwrap();
    let ext = ns.lock_object(Kind::Sem, id).unwrap().object.ext();

    let mut holder = helper(&["hold", path.to_str().unwrap(), "7"]);
    assert_eq!(holder.read_line(), "holding");
    assert_eq!(
        (ext[0].get(), ext[1].get()),
        (111, 222),
        "the holder is half-way through"
    );
    holder.sigkill();
    // Not reaped yet: the holder is a zombie, which must count as dead.
    let locked = ns.lock_object(Kind::Sem, id).unwrap();
    assert_eq!(
        (ext[0].get(), ext[1].get()),
        (5, 0),
        "rolled back to before the critical section"
    );
    locked.commit();
    drop(holder);

    let (corrupt, stale, problems) = counts(&file, &ns);
    assert_eq!(corrupt, 0, "{problems:?}");
    assert_eq!(
        stale, 1,
        "only the dead holder's registration: {problems:?}"
    );
}

#[test]
fn processes_killed_at_random_points_leave_a_consistent_arena() {
    let _watchdog = Watchdog::new("random kills", Duration::from_secs(120));
    let dir = TempDir::new("kills");
    let path = dir.join("arena");
    let file = ArenaFile::create(&path, &SMALL_LIMITS, 0o600).unwrap();
    let ns = file.namespace().unwrap();
    let creds = Credentials::current();
    let cred = creds.as_cred();
    let mut rng = Rng::new(1234);
    let mut recovered = 0;
    for round in 0..100 {
        let mut churners: Vec<Helper> = (0..2)
            .map(|_| helper(&["churn", path.to_str().unwrap()]))
            .collect();
        for churner in &mut churners {
            assert_eq!(churner.read_line(), "ready");
        }
        std::thread::sleep(Duration::from_micros(200 + rng.below(5000)));
        for churner in &mut churners {
            churner.sigkill();
        }
        drop(churners);
        recovered += ns.recover_abandoned_locks(&|offset, len| file.may_hold_data(offset, len));
        // Every key names a whole object or none, and the tables hold together.
        for key in 1..=50 {
            match ns.ipc_get(Kind::Sem, key, 0, &cred, |_| Ok(()), |_, _| Ok(())) {
                Ok(id) => {
                    let locked = ns.lock_object(Kind::Sem, id).unwrap();
                    assert_eq!(locked.object.ext()[0].get(), key as u32, "round {round}");
                    assert_eq!(locked.object.perm().key, key);
                }
                Err(err) => assert_eq!(err, Errno::ENOENT, "round {round} key {key}"),
            }
        }
        let (corrupt, _, problems) = counts(&file, &ns);
        assert_eq!(corrupt, 0, "round {round}: {problems:?}");
    }
    // Objects outlive the processes that made them, as with the kernel: the
    // private queues of killed churners remain until removed.
    for kind in [Kind::Sem, Kind::Msg] {
        for (id, _) in ns.objects(kind).collect::<Vec<_>>() {
            ns.ipc_remove(kind, id, &cred, |_, _| Ok(())).unwrap();
        }
    }
    assert_eq!(ns.in_use(Kind::Sem), 0);
    assert_eq!(ns.in_use(Kind::Msg), 0);
    // The killed churners' registrations are swept as others open the
    // arena (at most once per interval): those left are all dead ones.
    let (corrupt, _, problems) = counts(&file, &ns);
    assert_eq!(corrupt, 0, "{problems:?}");
    assert!(
        problems.iter().all(|p| p.contains("dead")),
        "only dead processes' leftovers: {problems:?}"
    );
    assert!(recovered > 0, "no kill landed inside a critical section");
    eprintln!("{recovered} locks recovered from processes killed inside critical sections");
}
