//! Differential testing against the Linux kernel: random sequences of System
//! V calls made by several processes, run once in the kernel and once in
//! usysv, comparing every answer and the whole observable state of every
//! object after each step. A sequence that diverges is shrunk to a minimal
//! one and printed as a case that `usysv-difftest --replay` runs again.
//!
//! - [`call`]: steps and their text form;
//! - [`gen`]: the generator;
//! - [`world`]: the worker processes of one world, and the observer.

pub mod call;
pub mod gen;
pub mod worker;
pub mod world;

use std::path::{Path, PathBuf};

use call::Step;
use world::{Flavor, World};

/// Where the worlds run.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The program whose `--worker` mode serves as a worker.
    pub exe: PathBuf,
    /// `libusysv_preload.so`, for usysv's world.
    pub preload: PathBuf,
    /// A scratch directory for usysv's arenas.
    pub scratch: PathBuf,
    /// Worker processes per world.
    pub workers: u8,
    /// Print what the kernel's world shows at every step.
    pub trace: bool,
}

/// Where a sequence's worlds first differed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The index of the step in the sequence.
    pub at: usize,
    /// What the kernel showed at that step.
    pub kernel: Vec<String>,
    /// What usysv showed.
    pub usysv: Vec<String>,
}

impl Setup {
    fn usysv(&self) -> Flavor {
        Flavor::Usysv {
            preload: self.preload.clone(),
            dir: self.scratch.join("usysv"),
        }
    }

    /// Runs `steps` in both worlds, in step, until they differ.
    pub fn run(&self, steps: &[Step]) -> Result<Option<Divergence>, String> {
        let mut kernel = World::start(&self.exe, &Flavor::Kernel, self.workers)?;
        let mut usysv = World::start(&self.exe, &self.usysv(), self.workers)?;
        for (at, step) in steps.iter().enumerate() {
            let (k, u) = (kernel.step(step), usysv.step(step));
            if self.trace {
                for line in &k {
                    println!("  {line}");
                }
            }
            if k != u {
                return Ok(Some(Divergence {
                    at,
                    kernel: k,
                    usysv: u,
                }));
            }
        }
        Ok(None)
    }

    /// Shrinks a diverging sequence: removes runs of steps, halving the run
    /// length, as long as what is left still diverges. Returns the shortest
    /// sequence found and its divergence.
    pub fn shrink(
        &self,
        steps: &[Step],
        divergence: Divergence,
    ) -> Result<(Vec<Step>, Divergence), String> {
        let mut best = (steps[..=divergence.at].to_vec(), divergence);
        let mut chunk = best.0.len().div_ceil(2);
        loop {
            let mut start = 0;
            let mut removed = false;
            while start < best.0.len() {
                let end = (start + chunk).min(best.0.len());
                let mut candidate = best.0[..start].to_vec();
                candidate.extend_from_slice(&best.0[end..]);
                match self.run(&candidate)? {
                    Some(found) => {
                        candidate.truncate(found.at + 1);
                        best = (candidate, found);
                        removed = true;
                    }
                    None => start = end,
                }
            }
            if chunk == 1 && !removed {
                return Ok(best);
            }
            if !removed {
                chunk = chunk.div_ceil(2);
            }
        }
    }
}

/// Reads a case as printed: one step per line; blank lines and `#` comments
/// are skipped.
pub fn read_case(path: &Path) -> Result<Vec<Step>, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.parse()
                .map_err(|err| format!("{}: {err}", path.display()))
        })
        .collect()
}
