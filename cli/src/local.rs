//! What `ipcs` shows as the system shows it: user and group names from the
//! password and group databases (`getpwuid_r`, `getgrgid_r`), and times in
//! the local time zone as `ctime(3)` writes them.

use std::collections::HashMap;
use std::ffi::CStr;

/// User and group names, each looked up once.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Names {
    /// The name of user `uid`, or `None` when the database has none.
    pub fn user(&mut self, uid: u32) -> Option<&str> {
        self.users
            .entry(uid)
            .or_insert_with(|| user_name(uid))
            .as_deref()
    }

    /// The name of group `gid`, or `None` when the database has none.
    pub fn group(&mut self, gid: u32) -> Option<&str> {
        self.groups
            .entry(gid)
            .or_insert_with(|| group_name(gid))
            .as_deref()
    }
}

/// Room for one database entry; retried larger on `ERANGE`.
const FIRST_BUFFER: usize = 1024;
const LARGEST_BUFFER: usize = 1 << 20;

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; FIRST_BUFFER];
    loop {
        // SAFETY: an all-zero passwd is a valid value to be overwritten.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `entry`, `buf` (of the length passed) and `found` are valid
        // for writes for the call; the strings it leaves point into `buf`.
        let err =
            unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
        if err == libc::ERANGE && buf.len() < LARGEST_BUFFER {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if err != 0 || found.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success `pw_name` is a NUL-terminated string in `buf`,
        // which is still alive.
        let name = unsafe { CStr::from_ptr(entry.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; FIRST_BUFFER];
    loop {
        // SAFETY: an all-zero group is a valid value to be overwritten.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getpwuid_r above.
        let err =
            unsafe { libc::getgrgid_r(gid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
        if err == libc::ERANGE && buf.len() < LARGEST_BUFFER {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if err != 0 || found.is_null() || entry.gr_name.is_null() {
            return None;
        }
        // SAFETY: on success `gr_name` is a NUL-terminated string in `buf`.
        let name = unsafe { CStr::from_ptr(entry.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// A broken-down local time: the fields `ctime` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Day of the week, 0 = Sunday.
    pub weekday: i32,
    /// Month, 0 = January.
    pub month: i32,
    /// Day of the month, from 1.
    pub day: i32,
    /// Hours, minutes, seconds.
    pub hms: (i32, i32, i32),
    /// The year.
    pub year: i64,
}

/// `ctime(3)` without its newline, 24 characters:
/// `Sun Nov 22 04:07:31 2026`, in the local time zone.
pub fn ctime(seconds: i64) -> String {
    match local_time(seconds) {
        Some(civil) => asctime(&civil),
        None => seconds.to_string(),
    }
}

fn local_time(seconds: i64) -> Option<Civil> {
    let time = libc::time_t::try_from(seconds).ok()?;
    // SAFETY: an all-zero tm is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // thread-safe form and keeps no pointer to them.
    let done = unsafe { libc::localtime_r(&time, &mut tm) };
    if done.is_null() {
        return None;
    }
    Some(Civil {
        weekday: tm.tm_wday,
        month: tm.tm_mon,
        day: tm.tm_mday,
        hms: (tm.tm_hour, tm.tm_min, tm.tm_sec),
        year: i64::from(tm.tm_year) + 1900,
    })
}

/// The C locale's `asctime` layout, as glibc writes it (`%.3s %.3s%3d
/// %.2d:%.2d:%.2d %d`), without the newline.
pub fn asctime(civil: &Civil) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let pick = |names: &[&'static str], at: i32| {
        usize::try_from(at)
            .ok()
            .and_then(|at| names.get(at).copied())
            .unwrap_or("???")
    };
    let (h, m, s) = civil.hms;
    format!(
        "{} {}{:3} {h:02}:{m:02}:{s:02} {}",
        pick(&DAYS, civil.weekday),
        pick(&MONTHS, civil.month),
        civil.day,
        civil.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime_layout() {
        let civil = Civil {
            weekday: 0,
            month: 10,
            day: 22,
            hms: (4, 7, 31),
            year: 2026,
        };
        assert_eq!(asctime(&civil), "Sun Nov 22 04:07:31 2026");
        let early = Civil {
            weekday: 3,
            month: 0,
            day: 1,
            hms: (0, 0, 0),
            year: 2025,
        };
        assert_eq!(asctime(&early), "Wed Jan  1 00:00:00 2025");
    }

    #[test]
    fn ctime_is_24_characters() {
        assert_eq!(ctime(1_795_219_200).len(), 24);
    }

    #[test]
    fn root_has_a_name_and_an_unused_id_none() {
        let mut names = Names::default();
        assert_eq!(names.user(0), Some("root"));
        assert!(names.group(0).is_some());
        assert_eq!(names.user(3_999_999_999), None);
    }
}
