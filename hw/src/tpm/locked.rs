//! Memory for unsealed secrets: locked in RAM (never swapped) and zeroed on drop.

use zeroize::Zeroize;

use crate::keys::KeyError;

/// A fixed-capacity byte buffer that is `mlock`ed for its whole life and zeroed before it is
/// freed. It never reallocates, so no unlocked copy of its contents is left behind.
pub(crate) struct LockedBuffer {
    buf: Vec<u8>,
}

impl std::fmt::Debug for LockedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockedBuffer({} bytes)", self.buf.len())
    }
}

impl LockedBuffer {
    /// A locked buffer holding a copy of `data`.
    pub(crate) fn copy_of(data: &[u8]) -> Result<Self, KeyError> {
        // At least one byte so the pointer is a real allocation that mlock can pin.
        let buf: Vec<u8> = Vec::with_capacity(data.len().max(1));
        // SAFETY: the pointer and capacity describe exactly the allocation `buf` owns; mlock
        // only changes its paging, not its contents or ownership.
        let rc = unsafe { libc::mlock(buf.as_ptr().cast(), buf.capacity()) };
        if rc != 0 {
            return Err(KeyError::MemoryLock {
                source: std::io::Error::last_os_error(),
            });
        }
        let mut locked = Self { buf };
        // Within capacity: no reallocation.
        locked.buf.extend_from_slice(data);
        Ok(locked)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Shortens the contents (e.g. drops an AEAD tag after in-place decryption).
    pub(crate) fn truncate(&mut self, len: usize) {
        // Zero the tail first so truncated bytes do not linger in spare capacity.
        if let Some(tail) = self.buf.get_mut(len..) {
            tail.zeroize();
        }
        self.buf.truncate(len);
    }
}

impl Drop for LockedBuffer {
    fn drop(&mut self) {
        // Zeroes the whole capacity, not only the initialised part.
        self.buf.zeroize();
        // SAFETY: same allocation and length that were locked in `copy_of`; it is still owned
        // by `self.buf` (zeroize keeps the allocation).
        unsafe {
            libc::munlock(self.buf.as_ptr().cast(), self.buf.capacity());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn holds_and_truncates_without_reallocating() {
        let mut b = LockedBuffer::copy_of(b"secret-key-bytes").unwrap();
        let ptr = b.as_slice().as_ptr();
        b.as_mut_slice()[0] = b'S';
        b.truncate(6);
        assert_eq!(b.as_slice(), b"Secret");
        assert_eq!(b.as_slice().as_ptr(), ptr);
        assert!(format!("{b:?}").contains("6 bytes"));
        let empty = LockedBuffer::copy_of(&[]).unwrap();
        assert!(empty.as_slice().is_empty());
    }
}
