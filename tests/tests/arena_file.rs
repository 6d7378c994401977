//! Arena files: creation, opening, bad files, the command line's errors.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use usysv_platform::usysv_core::perm::IPC_CREAT;
use usysv_platform::usysv_core::{Errno, Kind, Limits};
use usysv_platform::{ArenaFile, Credentials};
use usysv_tests::{bad_arena_files, Rng, TempDir, Watchdog, SMALL_LIMITS};

#[test]
fn create_then_open_round_trip() {
    let dir = TempDir::new("round-trip");
    let path = dir.join("arena");
    let limits = Limits {
        semmni: 77,
        msgmax: 4000,
        ..SMALL_LIMITS
    };
    let created = ArenaFile::create(&path, &limits, 0o640).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    let creds = Credentials::current();
    let id = {
        let ns = created.namespace().unwrap();
        ns.ipc_get(
            Kind::Shm,
            99,
            IPC_CREAT | 0o600,
            &creds.as_cred(),
            |_| Ok(()),
            |_, _| Ok(()),
        )
        .unwrap()
    };
    let opened = ArenaFile::open(&path).unwrap();
    let ns = opened.namespace().unwrap();
    assert_eq!(*ns.limits(), limits);
    assert_eq!(
        ns.ipc_get(
            Kind::Shm,
            99,
            0,
            &creds.as_cred(),
            |_| Ok(()),
            |_, _| Ok(())
        ),
        Ok(id)
    );
    let again = ArenaFile::create(&path, &SMALL_LIMITS, 0o600)
        .err()
        .unwrap();
    assert!(again.to_string().contains("already exists"), "{again}");
    let reopened = ArenaFile::open_or_create(&path, &SMALL_LIMITS, 0o600).unwrap();
    assert_eq!(
        *reopened.namespace().unwrap().limits(),
        limits,
        "the existing arena is kept"
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "no temporary file is left behind");
}

#[test]
fn a_new_arena_file_is_sparse() {
    let dir = TempDir::new("sparse");
    let path = dir.join("arena");
    let file = ArenaFile::create(&path, &Limits::default(), 0o600).unwrap();
    let ns = file.namespace().unwrap();
    file.check(&ns, &mut |p| panic!("{p}"));
    let blocks = std::fs::metadata(&path)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m))
        .unwrap();
    assert!(file.len() > 80 << 20);
    assert!(
        blocks * 512 < 1 << 20,
        "{} bytes backed after create and check",
        blocks * 512
    );
}

#[test]
fn bad_files_are_refused_in_one_line_naming_the_file_and_the_problem() {
    let dir = TempDir::new("bad-files");
    for (path, expected) in bad_arena_files(&dir) {
        let err = ArenaFile::open(&path).err().unwrap().to_string();
        assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
        assert!(err.contains(expected), "{err} (expected {expected})");
        assert!(!err.contains('\n'));
    }
}

#[test]
fn random_bytes_written_over_a_live_arena_file_give_errors_never_crashes() {
    let _watchdog = Watchdog::new("random bytes over an arena file", Duration::from_secs(120));
    let dir = TempDir::new("scribble");
    let path = dir.join("arena");
    let file = ArenaFile::create(&path, &SMALL_LIMITS, 0o600).unwrap();
    let ns = file.namespace().unwrap();
    let creds = Credentials::current();
    let cred = creds.as_cred();
    let layout = *ns.layout();
    let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut rng = Rng::new(42);
    let mut errors = 0;
    for round in 0..300 {
        for key in 1..=20 {
            let _ = ns.ipc_get(
                Kind::Sem,
                key,
                IPC_CREAT | 0o600,
                &cred,
                |_| Ok(()),
                |_, _| Ok(()),
            );
        }
        // Scribble through the file, not the mapping: as another process would.
        for _ in 0..1 + rng.below(50) {
            let region = if round % 3 == 0 {
                layout.size
            } else {
                layout.heap_start
            };
            let at = rng.below(u64::from(region) / 4) * 4;
            let value = match rng.below(3) {
                0 => rng.next_u64() as u32,
                1 => rng.below(100) as u32,
                _ => u32::MAX,
            };
            std::os::unix::fs::FileExt::write_at(&writer, &value.to_le_bytes(), at).unwrap();
        }
        for key in 1..=40 {
            match ns.ipc_get(Kind::Sem, key, 0, &cred, |_| Ok(()), |_, _| Ok(())) {
                Ok(id) => {
                    if let Ok(mut locked) = ns.lock_object(Kind::Sem, id) {
                        let _ = locked.txn.set(&locked.object.ext()[0], key as u32);
                        locked.commit();
                    }
                    let _ = ns.ipc_remove(Kind::Sem, id, &cred, |_, _| Ok(()));
                }
                Err(Errno::ENOENT) => {}
                Err(_) => errors += 1,
            }
        }
        let _ = ns.objects(Kind::Sem).count();
        let _ = file.check(&ns, &mut |_| {});
    }
    assert!(errors > 0, "the scribbles never reached a lookup");
}
