//! A BPF array map created with `BPF_F_MMAPABLE`, mapped into this process: the lookup tables
//! are rebuilt with plain memory writes instead of one syscall per entry, which is what makes
//! a table of 2^24 entries (and a million rules) load in a fraction of a second.

use std::{
    os::fd::{AsFd, AsRawFd},
    path::Path,
    ptr::NonNull,
};

use aya::maps::MapData;

use crate::XdpError;

/// `count` elements of `T` shared with the kernel. The program reads them concurrently: only
/// the set it is not reading is written (see `tables.rs`), and the one word that selects the
/// set is stored atomically.
pub(crate) struct Mapped<T> {
    ptr: NonNull<T>,
    count: usize,
    bytes: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; moving it to another thread
// moves the only handle this process has on it.
unsafe impl<T: Send> Send for Mapped<T> {}
// SAFETY: shared references only read through `as_slice`; writes need `&mut self`.
unsafe impl<T: Sync> Sync for Mapped<T> {}

impl<T: Copy> Mapped<T> {
    /// Maps the array pinned at `path`, checking that its element size is `T`'s.
    pub(crate) fn open(path: &Path) -> Result<Self, XdpError> {
        let what = || format!("mapping {}", path.display());
        let data = MapData::from_pin(path).map_err(XdpError::map(what()))?;
        let info = data.info().map_err(XdpError::map(what()))?;
        let size = size_of::<T>();
        // Array maps keep elements 8-byte aligned; T's are all multiples of 8 bytes.
        if info.value_size() as usize != size || !size.is_multiple_of(8) {
            return Err(XdpError::IncompatiblePin {
                path: path.to_owned(),
                detail: format!(
                    "elements of {} bytes where this build expects {size}",
                    info.value_size()
                ),
            });
        }
        let count = info.max_entries() as usize;
        let bytes = (count * size).next_multiple_of(page_size());
        let fd = data.fd().as_fd();
        // SAFETY: a fresh shared mapping of a BPF array's fd; the kernel checks the length and
        // the map's BPF_F_MMAPABLE flag and fails with an error (handled below) otherwise.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(XdpError::io(
                "mapping a lookup table (made with BPF_F_MMAPABLE?)",
                path,
            )(std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast::<T>()).ok_or_else(|| {
            XdpError::io("mapping a lookup table", path)(std::io::Error::other("null mapping"))
        })?;
        Ok(Mapped { ptr, count, bytes })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: the mapping holds `count` initialised elements (the kernel zeroes new maps,
        // and every bit pattern is a valid T: plain integers) and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.count) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above; `&mut self` makes this the only slice of it in this process. The
        // program may read the same memory, which is why only an inactive set is written.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.count) }
    }

    /// The mapping's base, for the one atomic store that switches sets.
    pub(crate) fn base(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region `open` mapped; no slice of it outlives self.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.bytes);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096).max(4096)
}
