//! A read-only memory map of a local file, for whole-table reads: the
//! parser threads read the page cache directly instead of a copy, and page
//! faults are taken by the threads in parallel.
//!
//! The usual caveat of file maps applies: a file truncated by another process
//! while mapped makes reads fault. Training inputs are not rewritten while
//! being read; callers that cannot promise that use `std::fs::read`.

use std::fs::File;
use std::ops::Deref;

/// A mapped file, unmapped on drop.
pub(crate) struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned; sharing `&[u8]` across threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `file` (of `len` bytes, > 0) read-only.
    ///
    /// # Errors
    /// The OS error of `mmap`.
    pub(crate) fn new(file: &File, len: usize) -> std::io::Result<Mapping> {
        use std::os::unix::io::AsRawFd;
        if len == 0 {
            return Err(std::io::Error::other("cannot map an empty file"));
        }
        // SAFETY: a fresh private read-only mapping of a valid descriptor;
        // the result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `ptr..ptr+len` is the mapping just created. Advice only.
        unsafe {
            libc::madvise(ptr, len, libc::MADV_SEQUENTIAL);
        }
        Ok(Mapping { ptr, len })
    }
}

impl Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`, once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}
