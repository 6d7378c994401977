//! Options as util-linux's tools take them (GNU `getopt_long`), so that the
//! habits of `ipcs`, `ipcrm` and `ipcmk` users carry over: short options
//! clustered (`-qt`), a short option's value attached or next (`-i5`,
//! `-i 5`), long options with `=VALUE` or the next word, an unambiguous
//! prefix of a long option (`--sem`), optional values only attached
//! (`-ashm`, `--all=shm`), and `--` ending the options. Words that are not
//! options are kept, in order, for the command to judge.

use crate::Failure;

/// Whether an option takes a value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// No value.
    Nothing,
    /// A value, attached or in the next word.
    Value,
    /// A value only when attached (`-aVALUE`, `--all=VALUE`).
    Optional,
}

/// One option a command accepts.
pub struct Spec {
    /// The short letter, if it has one.
    pub short: Option<char>,
    /// The long name, which also names the option in what `parse` returns.
    pub long: &'static str,
    /// Whether it takes a value.
    pub takes: Takes,
}

impl Spec {
    /// An option without a value.
    pub const fn flag(short: Option<char>, long: &'static str) -> Spec {
        Spec {
            short,
            long,
            takes: Takes::Nothing,
        }
    }

    /// An option with a value.
    pub const fn value(short: Option<char>, long: &'static str) -> Spec {
        Spec {
            short,
            long,
            takes: Takes::Value,
        }
    }

    /// An option with an optional, attached value.
    pub const fn optional(short: Option<char>, long: &'static str) -> Spec {
        Spec {
            short,
            long,
            takes: Takes::Optional,
        }
    }
}

/// What the command line holds, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// An option (by its long name) and its value.
    Opt(&'static str, Option<&'a str>),
    /// A word that is not an option.
    Word(&'a str),
}

/// Parses `args` against `specs`; an unknown option or a missing value is a
/// usage error, worded as GNU getopt words it.
pub fn parse<'a>(args: &[&'a str], specs: &[Spec]) -> Result<Vec<Arg<'a>>, Failure> {
    let mut out = Vec::new();
    let mut rest = args.iter().copied();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            out.extend(rest.by_ref().map(Arg::Word));
        } else if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let spec = find_long(specs, name, arg)?;
            let value = match (spec.takes, inline) {
                (Takes::Nothing, Some(_)) => {
                    return Err(Failure::usage(format!(
                        "option '--{}' doesn't allow an argument",
                        spec.long
                    )))
                }
                (Takes::Value, None) => Some(rest.next().ok_or_else(|| {
                    Failure::usage(format!("option '--{}' requires an argument", spec.long))
                })?),
                (_, inline) => inline,
            };
            out.push(Arg::Opt(spec.long, value));
        } else if arg.len() > 1 && arg.starts_with('-') {
            let letters = &arg[1..];
            for (at, letter) in letters.char_indices() {
                let spec = specs
                    .iter()
                    .find(|spec| spec.short == Some(letter))
                    .ok_or_else(|| Failure::usage(format!("invalid option -- '{letter}'")))?;
                let attached = &letters[at + letter.len_utf8()..];
                match spec.takes {
                    Takes::Nothing => {
                        out.push(Arg::Opt(spec.long, None));
                        continue;
                    }
                    Takes::Optional => out.push(Arg::Opt(
                        spec.long,
                        Some(attached).filter(|v| !v.is_empty()),
                    )),
                    Takes::Value if !attached.is_empty() => {
                        out.push(Arg::Opt(spec.long, Some(attached)))
                    }
                    Takes::Value => {
                        let value = rest.next().ok_or_else(|| {
                            Failure::usage(format!("option requires an argument -- '{letter}'"))
                        })?;
                        out.push(Arg::Opt(spec.long, Some(value)));
                    }
                }
                break;
            }
        } else {
            out.push(Arg::Word(arg));
        }
    }
    Ok(out)
}

/// The long option `name` names: itself, or the one option it begins.
fn find_long<'s>(specs: &'s [Spec], name: &str, arg: &str) -> Result<&'s Spec, Failure> {
    if let Some(spec) = specs.iter().find(|spec| spec.long == name) {
        return Ok(spec);
    }
    let mut matches = specs
        .iter()
        .filter(|spec| !name.is_empty() && spec.long.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(spec), None) => Ok(spec),
        (Some(_), Some(_)) => Err(Failure::usage(format!("option '{arg}' is ambiguous"))),
        _ => Err(Failure::usage(format!("unrecognized option '{arg}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: [Spec; 5] = [
        Spec::flag(Some('q'), "queues"),
        Spec::flag(Some('t'), "time"),
        Spec::value(Some('i'), "id"),
        Spec::optional(Some('a'), "all"),
        Spec::flag(None, "human"),
    ];

    fn parsed<'a>(args: &[&'a str]) -> Vec<Arg<'a>> {
        parse(args, &SPECS).ok().unwrap()
    }

    fn refused(args: &[&str]) -> String {
        match parse(args, &SPECS) {
            Ok(got) => panic!("{args:?} accepted as {got:?}"),
            Err(failure) => failure.message,
        }
    }

    #[test]
    fn clusters_attached_and_separate_values() {
        use Arg::{Opt, Word};
        assert_eq!(
            parsed(&["-qt", "-i5", "-q", "-i", "7", "word"]),
            [
                Opt("queues", None),
                Opt("time", None),
                Opt("id", Some("5")),
                Opt("queues", None),
                Opt("id", Some("7")),
                Word("word"),
            ]
        );
        assert_eq!(
            parsed(&["-qi", "9"]),
            [Opt("queues", None), Opt("id", Some("9"))]
        );
        assert_eq!(
            parsed(&["-qi9"]),
            [Opt("queues", None), Opt("id", Some("9"))]
        );
    }

    #[test]
    fn long_options_prefixes_and_optional_values() {
        use Arg::{Opt, Word};
        assert_eq!(
            parsed(&[
                "--id=3",
                "--id",
                "4",
                "--hum",
                "--all",
                "--all=shm",
                "-a",
                "-ashm"
            ]),
            [
                Opt("id", Some("3")),
                Opt("id", Some("4")),
                Opt("human", None),
                Opt("all", None),
                Opt("all", Some("shm")),
                Opt("all", None),
                Opt("all", Some("shm")),
            ]
        );
        assert_eq!(
            parsed(&["-q", "--", "-t", "--id"]),
            [Opt("queues", None), Word("-t"), Word("--id")]
        );
        assert_eq!(parsed(&["-"]), [Word("-")]);
    }

    #[test]
    fn mistakes_worded_as_getopt_words_them() {
        assert_eq!(refused(&["-x"]), "invalid option -- 'x'");
        assert_eq!(refused(&["-qx"]), "invalid option -- 'x'");
        assert_eq!(refused(&["-i"]), "option requires an argument -- 'i'");
        assert_eq!(refused(&["--id"]), "option '--id' requires an argument");
        assert_eq!(
            refused(&["--time=1"]),
            "option '--time' doesn't allow an argument"
        );
        assert_eq!(refused(&["--bogus"]), "unrecognized option '--bogus'");
        let close = [
            Spec::flag(None, "semaphore-id"),
            Spec::flag(None, "semaphore-key"),
        ];
        match parse(&["--sem"], &close) {
            Err(failure) => assert_eq!(failure.message, "option '--sem' is ambiguous"),
            Ok(got) => panic!("--sem accepted as {got:?}"),
        }
    }
}
