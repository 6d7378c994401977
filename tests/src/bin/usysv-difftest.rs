//! `usysv-difftest`: random sequences of System V calls, run in the kernel
//! and in usysv and compared step by step (see `usysv_tests::diff`).
//!
//! ```text
//! usysv-difftest [--seconds N | --sequences N] [--seed S] [--steps N]
//!                [--workers N] [--preload LIB] [--scratch DIR] [--trace]
//! usysv-difftest --replay CASE [--preload LIB] [--trace]
//! ```
//!
//! Sequence `i` runs from seed `S + i`. On a divergence it prints the seed,
//! shrinks the sequence, prints the shrunk case (which `--replay` reads) and
//! what each world showed at the step where they differ, and exits 1.
//! `--trace` prints what the kernel's world shows at every step. usysv's
//! arena goes in a directory under `--scratch` (`/dev/shm` by default).
//! Run as root: the kernel's world needs an IPC namespace of its own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use usysv_tests::diff::call::Step;
use usysv_tests::diff::worker::Worker;
use usysv_tests::diff::{gen, read_case, Divergence, Setup};
use usysv_tests::Rng;

struct Options {
    seconds: Option<u64>,
    sequences: Option<u64>,
    seed: u64,
    steps: usize,
    replay: Option<PathBuf>,
    setup: Setup,
}

fn value<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = String>,
    name: &str,
) -> Result<T, String> {
    let text = args.next().ok_or(format!("{name} needs a value"))?;
    text.parse()
        .map_err(|_| format!("{name}: not a number: {text}"))
}

fn options() -> Result<Options, String> {
    let exe = std::env::current_exe().map_err(|err| err.to_string())?;
    let beside = |name: &str| exe.with_file_name(name);
    let mut preload = beside("libusysv_preload.so");
    if !preload.exists() {
        preload = beside("deps").join("libusysv_preload.so");
    }
    let mut options = Options {
        seconds: None,
        sequences: None,
        seed: 1,
        steps: 24,
        replay: None,
        setup: Setup {
            exe: exe.clone(),
            preload,
            scratch: scratch_root().join(format!("usysv-difftest-{}", std::process::id())),
            workers: 3,
            trace: false,
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => options.seconds = Some(value(&mut args, &arg)?),
            "--sequences" => options.sequences = Some(value(&mut args, &arg)?),
            "--seed" => options.seed = value(&mut args, &arg)?,
            "--steps" => options.steps = value(&mut args, &arg)?,
            "--workers" => options.setup.workers = value(&mut args, &arg)?,
            "--preload" => options.setup.preload = value(&mut args, &arg)?,
            "--scratch" => options.setup.scratch = value(&mut args, &arg)?,
            "--replay" => options.replay = Some(value(&mut args, &arg)?),
            "--trace" => options.setup.trace = true,
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if !(1..=8).contains(&options.setup.workers) {
        return Err("--workers: from 1 to 8".to_string());
    }
    if !options.setup.preload.exists() {
        return Err(format!(
            "no preload library at {}",
            options.setup.preload.display()
        ));
    }
    Ok(options)
}

fn report(steps: &[Step], divergence: &Divergence) {
    println!(
        "# shrunk case ({} steps): usysv-difftest --replay FILE",
        steps.len()
    );
    for step in steps {
        println!("{step}");
    }
    println!(
        "# at step {}, the kernel showed:",
        steps[divergence.at].label
    );
    for line in &divergence.kernel {
        println!("#   {line}");
    }
    println!("# and usysv showed:");
    for line in &divergence.usysv {
        println!("#   {line}");
    }
}

fn run(options: &Options) -> Result<bool, String> {
    let setup = &options.setup;
    if let Some(case) = &options.replay {
        let steps = read_case(case)?;
        return Ok(match setup.run(&steps)? {
            Some(divergence) => {
                report(&steps[..=divergence.at], &divergence);
                false
            }
            None => {
                println!("{}: {} steps, no divergence", case.display(), steps.len());
                true
            }
        });
    }
    let start = Instant::now();
    let limit = options.seconds.map(Duration::from_secs);
    let (mut sequences, mut steps_run) = (0u64, 0usize);
    loop {
        if options.sequences.is_some_and(|n| sequences >= n)
            || limit.is_some_and(|limit| start.elapsed() >= limit)
            || (options.sequences.is_none() && limit.is_none() && sequences >= 1000)
        {
            break;
        }
        let seed = options.seed + sequences;
        let steps = gen::sequence(&mut Rng::new(seed), options.steps, setup.workers);
        if let Some(divergence) = setup.run(&steps)? {
            println!(
                "seed {seed}: the kernel and usysv differ at step {} (after {:.1} s, {sequences} sequences)",
                divergence.at,
                start.elapsed().as_secs_f64()
            );
            let (shrunk, divergence) = setup.shrink(&steps, divergence)?;
            report(&shrunk, &divergence);
            return Ok(false);
        }
        sequences += 1;
        steps_run += steps.len();
    }
    println!(
        "{sequences} sequences, {steps_run} steps from seed {}: no divergence ({:.1} s)",
        options.seed,
        start.elapsed().as_secs_f64()
    );
    Ok(true)
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        Worker::serve();
        return ExitCode::SUCCESS;
    }
    let outcome = options().and_then(|options| {
        let outcome = run(&options);
        let _ = std::fs::remove_dir_all(&options.setup.scratch);
        outcome
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("usysv-difftest: {err}");
            ExitCode::from(2)
        }
    }
}

/// Where usysv's world keeps its arena and segment files: `/dev/shm`, as
/// usysv's default arena does, so that segment files are on tmpfs and
/// `shm_rss` counts every page touched, as the kernel's does; the
/// temporary directory where there is no `/dev/shm`.
fn scratch_root() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
