//! Arena files: creation, opening, bad files, the command line's errors.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use usysv_platform::usysv_core::perm::IPC_CREAT;
use usysv_platform::usysv_core::{Errno, Kind, Limits};
use usysv_platform::{ArenaFile, Credentials};
use usysv_tests::{workspace_binary, Rng, TempDir, Watchdog, SMALL_LIMITS};

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

/// Runs `usysv check --arena PATH` and returns (exit code, stdout, stderr).
fn usysv_check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(workspace_binary("usysv"))
        .args(["check", "--arena"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn bad_files_are_refused_in_one_line_naming_the_file_and_the_problem() {
    let dir = TempDir::new("bad-files");
    let good = dir.join("good");
    drop(ArenaFile::create(&good, &SMALL_LIMITS, 0o600).unwrap());
    let bytes = std::fs::read(&good).unwrap();

    let mut cases: Vec<(std::path::PathBuf, &str)> = Vec::new();
    let random = dir.join("random");
    let mut rng = Rng::new(7);
    std::fs::write(
        &random,
        (0..65536)
            .map(|_| rng.next_u64() as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    cases.push((random, "not a usysv arena (no usysv magic number)"));
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    cases.push((empty, "not a usysv arena (0 bytes, smaller than a header)"));
    let truncated = dir.join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    cases.push((truncated, "truncated usysv arena"));
    let version = dir.join("version");
    let mut patched = bytes.clone();
    patched[8..12].copy_from_slice(&9u32.to_le_bytes());
    std::fs::write(&version, &patched).unwrap();
    cases.push((
        version,
        "usysv arena format version 9, but this usysv reads version 1",
    ));
    let limits = dir.join("limits");
    let mut patched = bytes.clone();
    patched[20..24].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&limits, &patched).unwrap();
    cases.push((limits, "corrupt usysv arena header: limit semmni = 0"));
    cases.push((dir.path().to_path_buf(), "open: Is a directory"));
    cases.push((dir.join("missing"), "open: No such file or directory"));

    for (path, expected) in &cases {
        let err = ArenaFile::open(path).err().unwrap().to_string();
        assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
        assert!(err.contains(expected), "{err} (expected {expected})");
        let (code, stdout, stderr) = usysv_check(path);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr, format!("usysv: {err}\n"));
    }
    let (code, stdout, _) = usysv_check(&good);
    assert_eq!(code, 0);
    assert!(stdout.ends_with(": clean\n"), "{stdout}");
}

#[test]
fn the_command_uses_usysv_arena_and_creates_the_arena_on_first_use() {
    let dir = TempDir::new("env");
    let path = dir.join("from-env");
    let out = Command::new(workspace_binary("usysv"))
        .args(["arena", "info"])
        .env("USYSV_ARENA", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("arena      {}\n", path.display())),
        "{text}"
    );
    assert!(text.contains("max number of arrays = 32000"), "{text}");
    let ns_file = ArenaFile::open(&path).unwrap();
    assert_eq!(ns_file.namespace().unwrap().limits().semmni, 32000);
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
