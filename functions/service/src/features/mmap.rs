//! A read-only memory map of a local file, for whole-table reads: the
//! parser threads read the page cache directly instead of a copy, and page
//! faults are taken by the threads in parallel.
//!
//! The usual caveat of file maps applies: a file truncated by another process
//! while mapped makes reads fault. Training inputs are not rewritten while
//! being read; callers that cannot promise that use `std::fs::read`.

use std::fs::File;

/// Maps `file` (not empty) read-only, advising sequential access.
///
/// # Errors
/// The OS error of `mmap`, or an empty file.
pub(crate) fn map(file: &File) -> std::io::Result<memmap2::Mmap> {
    if file.metadata()?.len() == 0 {
        return Err(std::io::Error::other("cannot map an empty file"));
    }
    // SAFETY: a private read-only mapping of a file this process opened; the
    // module doc states the truncation caveat the callers accept.
    let map = unsafe { memmap2::Mmap::map(file)? };
    // Advice only: a kernel that ignores it reads as fast, just with less read-ahead.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}
