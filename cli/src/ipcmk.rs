//! `usysv ipcmk`: creates a shared memory segment, a message queue or a
//! semaphore set in an arena under a random key, with util-linux's options
//! and output, and prints its id.
//!
//! Like any program's first System V call, it creates the arena (with the
//! default limits) if there is none. Unlike util-linux 2.38, which may
//! hand back an existing object whose key the random one happens to
//! match, it creates with `IPC_EXCL` and draws again on a clash.

use std::io::Read;

use usysv_platform::usysv_core::perm::{IPC_CREAT, IPC_EXCL, IPC_PRIVATE};
use usysv_platform::usysv_core::{Errno, Limits};
use usysv_platform::Ipc;
use usysv_platform::DEFAULT_MODE;

use crate::getopt::{self, Arg, Spec};
use crate::ipcs::emit;
use crate::Failure;

const HELP: &str = "\
usage: usysv ipcmk [--arena PATH] [OPTIONS]

Creates System V IPC objects in a usysv arena, as util-linux's ipcmk
creates them in the kernel, each under a random key, and prints their ids.
The arena is created, with the default limits, if it does not exist.

Options:
  -M, --shmem SIZE         create a shared memory segment of SIZE bytes
  -S, --semaphore NSEMS    create a semaphore set of NSEMS semaphores
  -Q, --queue              create a message queue
  -p, --mode MODE          permission bits, octal (default 0644)
      --arena PATH         the arena (default: $USYSV_ARENA, else
                           /dev/shm/usysv-UID/arena)
  -h, --help               this help
  -V, --version            the version

SIZE may end in K, M, G, T, P or E (KiB, MiB, ... : powers of 1024) or KB,
MB, ... (powers of 1000), and may have a decimal point: 1.5M, 4KiB, 10MB.

Examples:
  usysv ipcmk -Q
  usysv ipcmk -S 3 -p 600
  usysv ipcmk --arena /tmp/test.arena -M 1M -p 0640";

const SPECS: [Spec; 8] = [
    Spec::value(Some('M'), "shmem"),
    Spec::value(Some('S'), "semaphore"),
    Spec::flag(Some('Q'), "queue"),
    Spec::value(Some('p'), "mode"),
    Spec::value(None, "arena"),
    Spec::flag(Some('h'), "help"),
    Spec::flag(Some('V'), "version"),
    // util-linux 2.38 documents --semaphore's value as <number>.
    Spec::value(None, "semaphores"),
];

/// Random keys drawn before giving up on finding a free one.
const KEY_TRIES: usize = 64;

pub fn run(args: &[&str]) -> Result<(), Failure> {
    let (mut size, mut nsems, mut queue, mut mode, mut arena) = (None, None, false, 0o644, None);
    for arg in getopt::parse(args, &SPECS)? {
        match arg {
            Arg::Opt("shmem", Some(text)) => {
                size = Some(
                    parse_size(text)
                        .ok_or_else(|| Failure::usage(format!("failed to parse size: '{text}'")))?,
                )
            }
            Arg::Opt("semaphore" | "semaphores", Some(text)) => {
                nsems =
                    Some(text.trim_start().parse::<i32>().map_err(|_| {
                        Failure::usage(format!("failed to parse elements: '{text}'"))
                    })?)
            }
            Arg::Opt("queue", _) => queue = true,
            Arg::Opt("mode", Some(text)) => {
                mode = u32::from_str_radix(text, 8)
                    .ok()
                    .filter(|&mode| mode <= 0o777)
                    .ok_or_else(|| Failure::usage(format!("failed to parse mode: '{text}'")))?
            }
            Arg::Opt("arena", value) => arena = value,
            Arg::Opt("help", _) => return emit(&format!("{HELP}\n")),
            Arg::Opt("version", _) => {
                return emit(&format!("ipcmk from usysv {}\n", env!("CARGO_PKG_VERSION")))
            }
            Arg::Opt(..) => unreachable!("every option is matched"),
            Arg::Word(word) => return Err(Failure::usage(format!("unknown argument: {word}"))),
        }
    }
    if size.is_none() && nsems.is_none() && !queue {
        return Err(Failure::usage(
            "nothing to create: give -M SIZE, -S NSEMS or -Q (see `usysv ipcmk --help`)",
        ));
    }
    let path = crate::args::arena_or_default(arena)?;
    let ipc = Ipc::open(&path, &Limits::default(), DEFAULT_MODE)?;
    let flags = IPC_CREAT | IPC_EXCL | mode as i32;
    if let Some(size) = size {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let id = with_new_key(&random_keys()?, |key| ipc.shmget(key, size, flags))
            .map_err(|errno| Failure::failed(format!("create share memory failed: {errno}")))?;
        emit(&format!("Shared memory id: {id}\n"))?;
    }
    if queue {
        let id = with_new_key(&random_keys()?, |key| ipc.msgget(key, flags))
            .map_err(|errno| Failure::failed(format!("create message queue failed: {errno}")))?;
        emit(&format!("Message queue id: {id}\n"))?;
    }
    if let Some(nsems) = nsems {
        let id = with_new_key(&random_keys()?, |key| ipc.semget(key, nsems, flags))
            .map_err(|errno| Failure::failed(format!("create semaphore failed: {errno}")))?;
        emit(&format!("Semaphore id: {id}\n"))?;
    }
    Ok(())
}

/// Calls `create` with each key in turn until one is not taken (`EEXIST`).
fn with_new_key(keys: &[i32], create: impl Fn(i32) -> Result<i32, Errno>) -> Result<i32, Errno> {
    let mut result = Err(Errno::EEXIST);
    for &key in keys {
        result = create(key);
        if result != Err(Errno::EEXIST) {
            break;
        }
    }
    result
}

/// Random keys to try, none of them `IPC_PRIVATE`.
fn random_keys() -> Result<Vec<i32>, Failure> {
    let mut bytes = [0u8; 4 * KEY_TRIES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .map_err(|err| Failure::failed(format!("/dev/urandom: {err}")))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|word| i32::from_ne_bytes([word[0], word[1], word[2], word[3]]))
        .filter(|&key| key != IPC_PRIVATE)
        .collect())
}

/// A size as util-linux reads one (`strtosize`): a number (decimal, `0x`
/// hexadecimal or `0` octal), optionally a decimal fraction, and a suffix
/// `K M G T P E Z Y` (or lower case) meaning a power of 1024, also spelled
/// `KiB`, or of 1000 when spelled `KB`. A fraction needs a suffix. The
/// fraction is exact where util-linux 2.38 rounds each digit on its own
/// (`1.25K` is 1280 here, 1279 there).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim_start();
    let text = text.strip_prefix('+').unwrap_or(text);
    let (whole, rest) = leading_number(text)?;
    if rest.is_empty() {
        return Some(whole);
    }
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(after.bytes().take_while(u8::is_ascii_digit).count()),
        None => ("", rest),
    };
    let mut chars = rest.chars();
    let letter = chars.next()?;
    let power = "KMGTPEZY"
        .find(letter)
        .or_else(|| "kmgtpezy".find(letter))?;
    let base: u64 = match chars.as_str() {
        "" | "iB" | "ib" => 1024,
        "B" | "b" => 1000,
        _ => return None,
    };
    let scale = base.checked_pow(power as u32 + 1)?;
    let mut value = whole.checked_mul(scale)?;
    if !fraction.is_empty() {
        // Digits past the 19th cannot move the result by a byte.
        let digits = &fraction[..fraction.len().min(19)];
        let numerator: u128 = digits.parse().ok()?;
        let part = numerator * u128::from(scale) / 10u128.pow(digits.len() as u32);
        value = value.checked_add(u64::try_from(part).ok()?)?;
    }
    Some(value)
}

/// The number `text` starts with, as `strtoumax` with base 0 reads it, and
/// what follows it.
fn leading_number(text: &str) -> Option<(u64, &str)> {
    let (radix, digits) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if hex.starts_with(|c: char| c.is_ascii_hexdigit()) => (16, hex),
        _ if text.starts_with('0') => (8, text),
        _ => (10, text),
    };
    let len = digits.chars().take_while(|c| c.is_digit(radix)).count();
    if len == 0 {
        return None;
    }
    let number = u64::from_str_radix(&digits[..len], radix).ok()?;
    Some((number, &digits[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_util_linux_reads_them() {
        let cases = [
            ("4096", 4096),
            (" 12", 12),
            ("0x10", 16),
            ("010", 8),
            ("1K", 1024),
            ("1k", 1024),
            ("1KiB", 1024),
            ("1kib", 1024),
            ("1KB", 1000),
            ("1Kb", 1000),
            ("2M", 2 << 20),
            ("1G", 1 << 30),
            ("1.5K", 1536),
            ("0.5K", 512),
            ("1.K", 1024),
            ("1.05K", 1075),
            ("1.25K", 1280),
            ("0.5MB", 500_000),
            ("0x10K", 16 << 10),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Some(bytes), "{text:?}");
        }
        for bad in [
            "", "abc", "-1", "1.5", "1B", "10iB", "1Q", "1K ", "1KiBB", "1Z", "08",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn a_taken_key_is_drawn_again() {
        let taken = [11, 12];
        let create = |key| match taken.contains(&key) {
            true => Err(Errno::EEXIST),
            false => Ok(key * 10),
        };
        assert_eq!(with_new_key(&[11, 12, 13, 14], create), Ok(130));
        assert_eq!(with_new_key(&[11, 12], create), Err(Errno::EEXIST));
        assert_eq!(
            with_new_key(&[1], |_| Err(Errno::EINVAL)),
            Err(Errno::EINVAL)
        );
        let keys = random_keys().ok().unwrap();
        assert!(keys.len() > KEY_TRIES / 2 && !keys.contains(&IPC_PRIVATE));
    }
}
