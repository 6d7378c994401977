//! Error numbers.
//!
//! The core reports every failure as an [`Errno`]: a transparent integer with
//! the Linux numbering, because the Linux kernel is the specification usysv
//! follows. A platform whose libc numbers errors differently (DragonFly, for
//! one) maps them at its C boundary.

use core::fmt;

/// An error number with the Linux numbering.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Errno(i32);

/// The result type of the core.
pub type Result<T> = core::result::Result<T, Errno>;

macro_rules! errnos {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($value);
            )*

            /// The symbolic name (`"EINVAL"`), or `"E?"` for a number the core never makes.
            pub const fn name(self) -> &'static str {
                match self.0 {
                    $($value => stringify!($name),)*
                    _ => "E?",
                }
            }

            /// The description libc's `strerror` gives.
            pub const fn description(self) -> &'static str {
                match self.0 {
                    $($value => $text,)*
                    _ => "Unknown error",
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    ESRCH = 3, "No such process";
    EINTR = 4, "Interrupted system call";
    E2BIG = 7, "Argument list too long";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    EINVAL = 22, "Invalid argument";
    EFBIG = 27, "File too large";
    ENOSPC = 28, "No space left on device";
    ERANGE = 34, "Numerical result out of range";
    ENOSYS = 38, "Function not implemented";
    ENOMSG = 42, "No message of desired type";
    EIDRM = 43, "Identifier removed";
    EUCLEAN = 117, "Structure needs cleaning";
}

impl Errno {
    /// The arena holds a value that breaks one of its invariants (an offset out of
    /// bounds, a broken list, an impossible count). Linux has no such error; usysv
    /// uses `EUCLEAN`, whose `strerror` text says exactly this.
    pub const CORRUPT: Errno = Errno::EUCLEAN;

    /// The number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// An error from its number.
    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "E?" => write!(f, "Errno({})", self.0),
            name => f.write_str(name),
        }
    }
}

impl core::error::Error for Errno {}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn names_and_texts_follow_linux() {
        assert_eq!(Errno::EIDRM.raw(), 43);
        assert_eq!(format!("{:?}", Errno::EINVAL), "EINVAL");
        assert_eq!(format!("{}", Errno::CORRUPT), "Structure needs cleaning");
        assert_eq!(format!("{:?}", Errno::from_raw(999)), "Errno(999)");
    }
}
