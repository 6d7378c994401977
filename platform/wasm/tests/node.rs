//! The Node.js worker test: builds the WebAssembly module, then runs
//! `node tests/workers.js MODULE` (ping-pong, blocking msgrcv, guarded
//! counter, the waiter conformance body, between `worker_threads` sharing one
//! `WebAssembly.Memory`) and checks its report.
//!
//! The module builds with nightly cargo (`core::arch::wasm32`'s wait and
//! notify are unstable) and `-Zbuild-std=core`, for `wasm32-wasip1-threads`,
//! into its own directory under the target directory. The toolchain is
//! `nightly` unless `USYSV_WASM_TOOLCHAIN` names another.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

const TARGET: &str = "wasm32-wasip1-threads";

/// The script's own watchdog fires after 60 s; this one catches a Node that
/// does not even get that far.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn tmp() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// Builds the module and returns its path.
fn build_module() -> PathBuf {
    let toolchain = std::env::var("USYSV_WASM_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    let target_dir = tmp().join("wasm");
    // `cargo` through rustup, which picks the toolchain from
    // RUSTUP_TOOLCHAIN: $CARGO is this (stable) toolchain's own cargo.
    let output = Command::new("cargo")
        .env("RUSTUP_TOOLCHAIN", &toolchain)
        .env_remove("RUSTC")
        .args(["build", "--quiet", "--locked", "-Zbuild-std=core"])
        .args([
            "--target",
            TARGET,
            "--profile",
            "wasm",
            "--features",
            "conformance",
        ])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .output()
        .expect("cargo is not on PATH");
    assert!(
        output.status.success(),
        "building the WebAssembly module with the {toolchain} toolchain failed \
         (it needs `rustup toolchain install {toolchain} --component rust-src`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join(TARGET).join("wasm").join("usysv_wasm.wasm")
}

/// The function names of a module's `name` section (run together: enough to
/// search), or `None` if it has none.
fn function_names(module: &[u8]) -> Option<&[u8]> {
    fn leb(bytes: &[u8], at: &mut usize) -> Option<usize> {
        let mut value = 0;
        for shift in (0..35).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut at = 8;
    while at < module.len() {
        let id = module[at];
        at += 1;
        let size = leb(module, &mut at)?;
        let section = module.get(at..at + size)?;
        at += size;
        let mut inner = 0;
        let name_len = leb(section, &mut inner)?;
        if id == 0 && section.get(inner..inner + name_len)? == b"name" {
            return section.get(inner + name_len..);
        }
    }
    None
}

/// Runs `command` with its output in files, killing it after `limit`.
fn run_with_limit(mut command: Command, limit: Duration) -> (ExitStatus, String, String) {
    let stdout_path = tmp().join(format!("node-{}.out", std::process::id()));
    let stderr_path = tmp().join(format!("node-{}.err", std::process::id()));
    let mut child = command
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run node ({err}): the WebAssembly test runs the module in \
                 Node.js worker threads; install Node.js 18 or newer"
            )
        });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "watchdog: node still running after {limit:?}: a hang\n{}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let _ = std::fs::remove_file(stdout_path);
    let _ = std::fs::remove_file(stderr_path);
    (status, stdout, stderr)
}

#[test]
fn workers_share_one_memory_as_the_arena() {
    let module = build_module();
    let bytes = std::fs::read(&module).unwrap();
    eprintln!("{}: {} bytes", module.display(), bytes.len());
    // Every panic path ends in core::panicking and the panic handler: the
    // module has none if no function's name says "panic".
    let names = function_names(&bytes).expect("the module keeps its function names");
    assert!(
        !names.windows(5).any(|name| name == b"panic"),
        "a panic path is left in the module (a function named panic...)"
    );

    let mut node = Command::new("node");
    node.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/workers.js"))
        .arg(&module);
    let (status, stdout, stderr) = run_with_limit(node, RUN_LIMIT);
    eprint!("{stdout}");
    assert!(
        status.success(),
        "the Node worker test failed ({status}):\n{stdout}{stderr}"
    );
    for line in [
        "ping-pong: 10000 rounds between 2 workers, strictly alternating",
        "blocking msgrcv: blocked ",
        "counter: 4 workers x 5000 guarded increments = 20000;",
        "conformance: the waiter conformance body passed across 4 workers",
        "stacks: each party used its own;",
    ] {
        assert!(
            stdout.lines().any(|seen| seen.starts_with(line)),
            "no line starting {line:?} in the report:\n{stdout}{stderr}"
        );
    }
}
