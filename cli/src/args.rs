//! A small option parser: `--name VALUE` and `--name=VALUE`.

use std::path::PathBuf;

use crate::Failure;

/// The options of one command, parsed against the names it accepts.
pub struct Options<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Options<'a> {
    /// Parses `args` against the option names a command takes.
    pub fn parse(args: &[&'a str], valued: &[&str]) -> Result<Self, Failure> {
        let mut pairs = Vec::new();
        let mut rest = args.iter();
        while let Some(&arg) = rest.next() {
            let Some(option) = arg.strip_prefix("--") else {
                return Err(Failure::usage(format!("unexpected argument `{arg}`")));
            };
            let (name, inline) = match option.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (option, None),
            };
            if valued.contains(&name) {
                let value = match inline {
                    Some(value) => value,
                    None => *rest
                        .next()
                        .ok_or_else(|| Failure::usage(format!("--{name} needs a value")))?,
                };
                pairs.push((name, value));
            } else {
                return Err(Failure::usage(format!("unknown option `--{name}`")));
            }
        }
        Ok(Options { pairs })
    }

    /// The last value given for `name`.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The last value given for `name`, as a number (decimal, 0x hex or 0 octal).
    pub fn number(&self, name: &str) -> Result<Option<u64>, Failure> {
        self.value(name)
            .map(|text| {
                parse_number(text)
                    .ok_or_else(|| Failure::usage(format!("--{name}: `{text}` is not a number")))
            })
            .transpose()
    }

    /// The arena path: `--arena`, else the default.
    pub fn arena_path(&self) -> Result<PathBuf, Failure> {
        arena_or_default(self.value("arena"))
    }
}

/// The arena path: `path` (from `--arena`), else `$USYSV_ARENA`, else the
/// user's default.
pub fn arena_or_default(path: Option<&str>) -> Result<PathBuf, Failure> {
    match path {
        Some(path) => Ok(PathBuf::from(path)),
        None => Ok(usysv_platform::default_arena_path()?),
    }
}

/// Parses `123`, `0x7b` or `0173`.
pub fn parse_number(text: &str) -> Option<u64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_three_bases() {
        assert_eq!(parse_number("640"), Some(640));
        assert_eq!(parse_number("0640"), Some(0o640));
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("ten"), None);
    }

    #[test]
    fn values_inline_or_separate_and_unknown_options_refused() {
        let opts = Options::parse(&["--arena", "/a", "--semmni=5"], &["arena", "semmni"])
            .ok()
            .unwrap();
        assert_eq!(opts.value("arena"), Some("/a"));
        assert_eq!(opts.number("semmni").ok().unwrap(), Some(5));
        assert_eq!(opts.value("mode"), None);
        assert!(Options::parse(&["--bogus"], &[]).is_err());
        assert!(Options::parse(&["--arena"], &["arena"]).is_err());
        assert!(Options::parse(&["stray"], &[]).is_err());
    }
}
