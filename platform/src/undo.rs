//! A process's exported `SEM_UNDO` list as text, for checkpoint/restart.
//!
//! ```text
//! usysv-undo 1
//! process 4242 start 987654
//! set 32769 0:+2 1:-3
//! ```
//!
//! The second line names the process (pid and start time, as the registry
//! knows it); each `set` line gives a set's id (which carries its sequence
//! number) and the semaphores with an adjustment, `SEMNUM:AMOUNT`. See
//! [`usysv_core::checkpoint`] for what exporting and importing do.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use usysv_core::checkpoint::Adjustment;
use usysv_core::host::ProcessId;

const MAGIC: &str = "usysv-undo 1";

/// A process's undo list, as exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoList {
    /// The process it was read from.
    pub process: ProcessId,
    /// Its adjustments, in the order read (by set, then semaphore).
    pub adjustments: Vec<Adjustment>,
}

/// Why a text is not an undo list: the line (from 1) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoParseError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for UndoParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undo list line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for UndoParseError {}

impl fmt::Display for UndoList {
    /// The text form ([`UndoList::parse`] reads it back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{MAGIC}")?;
        writeln!(
            f,
            "process {} start {}",
            self.process.pid, self.process.start
        )?;
        let mut sets: BTreeMap<i32, String> = BTreeMap::new();
        for a in &self.adjustments {
            let line = sets.entry(a.semid).or_default();
            write!(line, " {}:{:+}", a.semnum, a.value)?;
        }
        for (semid, line) in sets {
            writeln!(f, "set {semid}{line}")?;
        }
        Ok(())
    }
}

impl UndoList {
    /// Reads the text form; a semaphore named twice in a set is refused.
    pub fn parse(text: &str) -> Result<UndoList, UndoParseError> {
        let mut lines = text.lines().enumerate().map(|(n, line)| (n + 1, line));
        let bad = |line, reason| UndoParseError { line, reason };
        match lines.next() {
            Some((_, MAGIC)) => {}
            _ => return Err(bad(1, "not a usysv undo list (no `usysv-undo 1` line)")),
        }
        let (n, header) = lines
            .next()
            .ok_or(bad(2, "missing the `process PID start TIME` line"))?;
        let process = match header.split_ascii_whitespace().collect::<Vec<_>>()[..] {
            ["process", pid, "start", start] => ProcessId {
                pid: pid.parse().map_err(|_| bad(n, "bad pid"))?,
                start: start.parse().map_err(|_| bad(n, "bad start time"))?,
            },
            _ => return Err(bad(n, "expected `process PID start TIME`")),
        };
        let mut adjustments = Vec::new();
        for (n, line) in lines {
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                None => continue,
                Some("set") => {}
                Some(_) => return Err(bad(n, "expected `set SEMID SEMNUM:AMOUNT...`")),
            }
            let semid: i32 = words
                .next()
                .and_then(|id| id.parse().ok())
                .filter(|&id| id >= 0)
                .ok_or(bad(n, "bad set id"))?;
            if adjustments.iter().any(|a: &Adjustment| a.semid == semid) {
                return Err(bad(n, "the set is listed twice"));
            }
            let first = adjustments.len();
            for word in words {
                let (semnum, value) = word
                    .split_once(':')
                    .ok_or(bad(n, "expected SEMNUM:AMOUNT"))?;
                let semnum: u32 = semnum.parse().map_err(|_| bad(n, "bad semaphore number"))?;
                let value: i32 = value
                    .parse()
                    .ok()
                    .filter(|&v| v != 0)
                    .ok_or(bad(n, "bad amount (a nonzero integer)"))?;
                if adjustments[first..]
                    .iter()
                    .any(|a: &Adjustment| a.semnum == semnum)
                {
                    return Err(bad(n, "a semaphore is listed twice"));
                }
                adjustments.push(Adjustment {
                    semid,
                    semnum,
                    value,
                });
            }
        }
        Ok(UndoList {
            process,
            adjustments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adj(semid: i32, semnum: u32, value: i32) -> Adjustment {
        Adjustment {
            semid,
            semnum,
            value,
        }
    }

    #[test]
    fn the_text_reads_back() {
        let list = UndoList {
            process: ProcessId {
                pid: 4242,
                start: 987_654,
            },
            adjustments: vec![adj(32769, 0, 2), adj(32769, 1, -3), adj(5, 2, 1)],
        };
        let text = list.to_string();
        assert_eq!(
            text,
            "usysv-undo 1\nprocess 4242 start 987654\nset 5 2:+1\nset 32769 0:+2 1:-3\n"
        );
        let back = UndoList::parse(&text).unwrap();
        assert_eq!(back.process, list.process);
        assert_eq!(
            back.adjustments,
            [adj(5, 2, 1), adj(32769, 0, 2), adj(32769, 1, -3)]
        );
    }

    #[test]
    fn bad_text_names_its_line() {
        let head = "usysv-undo 1\nprocess 1 start 2\n";
        let cases = [
            ("", 1),
            ("usysv-undo 2\n", 1),
            ("usysv-undo 1\n", 2),
            ("usysv-undo 1\nprocess x start 2\n", 2),
            ("usysv-undo 1\nprocess 1\n", 2),
        ];
        for (text, line) in cases {
            assert_eq!(UndoList::parse(text).unwrap_err().line, line, "{text:?}");
        }
        for body in [
            "sets 1 0:1",
            "set -1 0:1",
            "set 1 0",
            "set 1 x:1",
            "set 1 0:0",
            "set 1 0:1 0:2",
        ] {
            let err = UndoList::parse(&format!("{head}{body}\n")).unwrap_err();
            assert_eq!(err.line, 3, "{body}: {err}");
        }
        let twice = UndoList::parse(&format!("{head}set 1 0:1\nset 1 1:1\n")).unwrap_err();
        assert_eq!((twice.line, twice.reason), (4, "the set is listed twice"));
        assert!(UndoList::parse(&format!("{head}\nset 1 0:-1\n")).is_ok());
    }
}
