//! The differential tester (`usysv-difftest`) in CI: fixed seeds must show no
//! divergence between the kernel and usysv, and a bug planted in usysv must
//! be found within a minute and shrunk to a few steps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use usysv_tests::Watchdog;

const DIFFTEST: &str = env!("CARGO_BIN_EXE_usysv-difftest");

fn difftest(args: &[&str], preload: Option<&Path>) -> Output {
    let mut command = Command::new(DIFFTEST);
    command.args(args);
    if let Some(preload) = preload {
        command.arg("--preload").arg(preload);
    }
    command.output().expect("usysv-difftest runs")
}

fn agree_from(seed: u64) {
    let _watchdog = Watchdog::new("fixed seeds", Duration::from_secs(600));
    let seed = seed.to_string();
    let output = difftest(&["--sequences", "1500", "--seed", &seed], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the kernel and usysv differ:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1500 sequences"), "{stdout}");
}

#[test]
fn the_kernel_and_usysv_agree_from_seed_1() {
    agree_from(1);
}

#[test]
fn the_kernel_and_usysv_agree_from_seed_100001() {
    agree_from(100_001);
}

/// The preload library built with the core's `planted-bug` feature (a
/// negative msgtyp taken as 0), in a target directory of its own so that
/// the feature reaches no other build.
fn planted_preload() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("planted");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "usysv-preload",
            "-p",
            "usysv-core",
        ])
        .args(["--features", "usysv-core/planted-bug", "--target-dir"])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the planted library failed");
    target.join("debug").join("libusysv_preload.so")
}

#[test]
fn a_planted_bug_is_found_within_a_minute_and_shrunk() {
    let _watchdog = Watchdog::new("the planted bug", Duration::from_secs(900));
    let preload = planted_preload();
    let output = difftest(&["--seconds", "60", "--seed", "1"], Some(&preload));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "not found:\n{stdout}");

    let found = stdout.lines().next().unwrap_or_default();
    let seconds: f64 = found
        .split("(after ")
        .nth(1)
        .and_then(|rest| rest.split(" s").next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("no time in: {found}"));
    assert!(seconds < 60.0, "{found}");

    let case: Vec<&str> = stdout
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains(": w"))
        .collect();
    assert!(case.len() <= 4, "not shrunk:\n{stdout}");
    let negative_receive = case.iter().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.get(2) == Some(&"msgrcv") && words.get(5).is_some_and(|t| t.starts_with('-'))
    });
    assert!(
        negative_receive,
        "the case misses the planted bug:\n{stdout}"
    );

    // The shrunk case replays, and diverges again.
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("planted-case");
    std::fs::write(&file, case.join("\n")).unwrap();
    let replay = difftest(&["--replay", file.to_str().unwrap()], Some(&preload));
    assert_eq!(
        replay.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
    // ... and not without the bug.
    let fixed = difftest(&["--replay", file.to_str().unwrap()], None);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stdout)
    );
}
