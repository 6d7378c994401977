//! The `usysv` command, driven as a user would.

use std::path::Path;
use std::process::Command;

use usysv_platform::ArenaFile;
use usysv_tests::{bad_arena_files, TempDir};

const USYSV: &str = env!("CARGO_BIN_EXE_usysv");

/// Runs `usysv ARGS` and returns (exit code, stdout, stderr).
fn usysv(args: &[&str], arena_env: Option<&Path>) -> (i32, String, String) {
    let mut command = Command::new(USYSV);
    command.args(args);
    match arena_env {
        Some(path) => command.env("USYSV_ARENA", path),
        None => command.env_remove("USYSV_ARENA"),
    };
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn remove_takes_any_usysv_arena_and_refuses_other_files() {
    let dir = TempDir::new("cli-remove-bad-files");
    for (path, expected) in bad_arena_files(&dir) {
        let arena = path.to_str().unwrap();
        let (code, stdout, stderr) = usysv(&["arena", "remove", "--arena", arena], None);
        // Damaged arenas, and arenas of another version, go: that is how
        // one recovers. Anything else stays.
        if ["truncated", "version", "limits"]
            .iter()
            .any(|name| path.ends_with(name))
        {
            assert_eq!(
                (code, stdout),
                (0, format!("removed {arena}\n")),
                "{stderr}"
            );
            assert!(!path.exists());
        } else {
            assert_eq!(code, 1, "{expected}: {stderr}");
            assert!(stderr.contains(expected), "{stderr}");
        }
    }
    assert!(dir.join("random").exists() && dir.join("empty").exists());
}

#[test]
fn check_refuses_bad_files_in_one_line_and_passes_a_good_one() {
    let dir = TempDir::new("cli-bad-files");
    for (path, expected) in bad_arena_files(&dir) {
        let (code, stdout, stderr) = usysv(&["check", "--arena", path.to_str().unwrap()], None);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stdout, "");
        assert!(
            stderr.starts_with(&format!("usysv: {}: ", path.display())),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let good = dir.join("good");
    let (code, _, stderr) = usysv(
        &[
            "arena",
            "create",
            "--arena",
            good.to_str().unwrap(),
            "--semmni",
            "9",
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = usysv(&["check", "--arena", good.to_str().unwrap()], None);
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("{}: clean\n", good.display()));
}

#[test]
fn usysv_arena_names_the_arena_and_it_is_created_on_first_use() {
    let dir = TempDir::new("cli-env");
    let path = dir.join("from-env");
    let (code, stdout, stderr) = usysv(&["arena", "info"], Some(&path));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("arena      {}\n", path.display())),
        "{stdout}"
    );
    assert!(stdout.contains("max number of arrays = 32000"), "{stdout}");
    assert_eq!(
        ArenaFile::open(&path)
            .unwrap()
            .namespace()
            .unwrap()
            .limits()
            .semmni,
        32000
    );
}

#[test]
fn create_applies_limits_and_mode_and_refuses_bad_ones() {
    let dir = TempDir::new("cli-create");
    let path = dir.join("arena");
    let arena = path.to_str().unwrap();
    let (code, _, stderr) = usysv(
        &[
            "arena",
            "create",
            "--arena",
            arena,
            "--mode",
            "0660",
            "--msgmax=4096",
            "--heap-bytes",
            "0x10000",
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let (_, stdout, _) = usysv(&["arena", "info", "--arena", arena], None);
    assert!(
        stdout.contains("max size of message (bytes) = 4096"),
        "{stdout}"
    );
    assert!(
        stdout.contains("heap       0 of 65536 bytes in use"),
        "{stdout}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);

    let (code, _, stderr) = usysv(&["arena", "create", "--arena", arena], None);
    assert_eq!(
        (code, stderr),
        (1, format!("usysv: {arena}: an arena already exists here\n"))
    );
    let other = dir.join("other");
    let other = other.to_str().unwrap();
    for (args, message) in [
        (
            vec!["--semvmx", "40000"],
            "usysv: limit semvmx = 40000 is outside 1..=32767\n",
        ),
        (
            vec!["--semmni", "ten"],
            "usysv: --semmni: `ten` is not a number\n",
        ),
        (vec!["--bogus", "1"], "usysv: unknown option `--bogus`\n"),
        (
            vec!["--mode", "01777"],
            "usysv: --mode 1777: only permission bits (0..=0777)\n",
        ),
    ] {
        let mut full = vec!["arena", "create", "--arena", other];
        full.extend(args);
        let (code, _, stderr) = usysv(&full, None);
        assert_eq!((code, stderr.as_str()), (2, message));
    }
    assert!(
        !Path::new(other).exists(),
        "nothing is created on bad input"
    );

    let (code, stdout, _) = usysv(&["arena", "remove", "--arena", arena], None);
    assert_eq!((code, stdout), (0, format!("removed {arena}\n")));
    assert!(!path.exists());
    let (code, _, stderr) = usysv(&["frobnicate"], None);
    assert_eq!(
        (code, stderr.as_str()),
        (
            2,
            "usysv: unknown command `frobnicate` (see `usysv --help`)\n"
        )
    );
    let (code, stdout, _) = usysv(&["check", "--help"], None);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("usage: usysv check"));
}
