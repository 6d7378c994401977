//! Checkpoint/restart of `SEM_UNDO` lists: `usysv_undo_export`,
//! `usysv_undo_import`, `usysv_undo_release`. The list travels as the text
//! `usysv undo export` prints (see `usysv_platform::UndoList`).

use std::ffi::{c_char, c_int, CStr};

use libc::{pid_t, ssize_t};
use usysv_platform::usysv_core::Errno;
use usysv_platform::UndoList;

use crate::call;

/// `usysv_undo_export` flag: also hold the list for a restart, so that if
/// the process dies without exiting its adjustments are kept for
/// `usysv_undo_import` instead of being applied.
pub const USYSV_UNDO_HOLD: c_int = 1;

/// Writes the `SEM_UNDO` list of process `pid` (0: the caller), registered
/// in the arena, as text into `buf` (at most `len` bytes, NUL included, as
/// `snprintf` does) and returns the text's length, which may exceed
/// `len - 1`: call again with more room. `flags` is 0 or `USYSV_UNDO_HOLD`.
/// Errors: `ESRCH` (no such process registered), `EPERM` (holding another
/// user's list), `EAGAIN` (the process changed its list while it was read:
/// stop it first), `EINVAL` (unknown flags).
///
/// # Safety
///
/// `buf` is null (with any `len`, to learn the length) or points to `len`
/// writable bytes.
#[no_mangle]
pub unsafe extern "C" fn usysv_undo_export(
    pid: pid_t,
    flags: c_int,
    buf: *mut c_char,
    len: usize,
) -> ssize_t {
    call(-1, |ipc| {
        if flags & !USYSV_UNDO_HOLD != 0 || pid < 0 {
            return Err(Errno::EINVAL);
        }
        let pid = match pid {
            0 => std::process::id(),
            pid => pid as u32,
        };
        let text = ipc
            .undo_export(pid, flags & USYSV_UNDO_HOLD != 0)?
            .to_string();
        if !buf.is_null() && len > 0 {
            let copied = text.len().min(len - 1);
            // SAFETY: the caller's promise: `len` bytes at `buf`, and
            // `copied + 1 <= len`.
            unsafe {
                core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), copied);
                *buf.add(copied) = 0;
            }
        }
        Ok(text.len() as ssize_t)
    })
}

/// In a restarted process, before its first `SEM_UNDO` operation: takes
/// over the list (`text`, from `usysv_undo_export` with `USYSV_UNDO_HOLD`)
/// that its process kept when it died, if the arena holds exactly that list;
/// the caller then applies it when it exits. Errors: `EFAULT` (null
/// `text`), `EINVAL` (not an undo list, or the arena holds another list for
/// that process), `ESRCH` (that process kept no list: never held, imported
/// or released already), `EBUSY` (it still runs, or the caller already has
/// an undo list).
///
/// # Safety
///
/// `text` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn usysv_undo_import(text: *const c_char) -> c_int {
    call(-1, |ipc| {
        // SAFETY: the caller's promise.
        let list = unsafe { parse(text)? };
        ipc.undo_import(&list).map(|()| 0)
    })
}

/// Gives up the checkpoint `text` names: a list its process kept when it
/// died is applied now, as its exit would have; a running process's list is
/// no longer held. Errors as `usysv_undo_import`, and `EPERM` (another
/// user's running process).
///
/// # Safety
///
/// `text` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn usysv_undo_release(text: *const c_char) -> c_int {
    call(-1, |ipc| {
        // SAFETY: the caller's promise.
        let list = unsafe { parse(text)? };
        ipc.undo_release(list.process).map(|()| 0)
    })
}

/// The undo list in the C string `text`.
///
/// # Safety
///
/// `text` is null (`EFAULT`) or a NUL-terminated string.
unsafe fn parse(text: *const c_char) -> Result<UndoList, Errno> {
    if text.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: the caller's promise.
    let text = unsafe { CStr::from_ptr(text) };
    let text = text.to_str().map_err(|_| Errno::EINVAL)?;
    UndoList::parse(text).map_err(|_| Errno::EINVAL)
}
