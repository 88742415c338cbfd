//! Bounded reads of files whose path an operator controls (or whoever can write that path):
//! vigild's config, TLS certificates, keys and CA files, JWKS files, TPM key blobs, sysfs
//! attributes under `hw.sysfs_root`.
//!
//! A path can name anything. A FIFO blocks a plain `open` or `read` forever, `/dev/zero` never
//! ends, a 2 GiB file exhausts a small box's memory. [`read`] refuses all of them: it opens
//! with `O_NONBLOCK | O_NOCTTY` (a FIFO cannot block the open, a terminal cannot become the
//! controlling one), checks with `fstat` that it holds a regular file no larger than the
//! limit of its [`FileKind`], and reads at most one byte more than the limit in case the file
//! grows meanwhile. The limits are documented in docs/config.md ("Files Vigil reads").

use std::fmt;
use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest vigild config file.
pub const CONFIG_LIMIT: u64 = 1 << 20;
/// Largest PEM file: a certificate chain, a private key or a CA bundle.
pub const PEM_LIMIT: u64 = 1 << 20;
/// Largest JWKS file (the same limit as a JWKS fetched over HTTPS).
pub const JWKS_LIMIT: u64 = 1 << 20;
/// Largest key directory JSON file: a TPM key blob or `key.json` (a few KiB in practice).
pub const KEY_BLOB_LIMIT: u64 = 64 << 10;
/// Largest OpenAPI description (or a sibling file it `$ref`s): real descriptions of large APIs
/// run to a few MiB.
pub const POLICY_LIMIT: u64 = 64 << 20;
/// Largest shadow-API inventory (10,000 entries of a few hundred bytes).
pub const SHADOW_LIMIT: u64 = 64 << 20;
/// Largest sysfs attribute (sysfs reports 4 KiB for every attribute; values are a few bytes).
pub const SYSFS_LIMIT: u64 = 64 << 10;

/// Largest password file (Redis ACL passwords are at most a few hundred bytes).
pub const PASSWORD_LIMIT: u64 = 4 << 10;

/// What a file holds: sets its size limit and names it in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// vigild's TOML configuration.
    Config,
    /// A PEM certificate chain (`tls.cert`, a key directory's `cert.pem`).
    Certificate,
    /// A PEM private key (`tls.key`, the file given to `vigilctl keys seal`).
    PrivateKey,
    /// PEM CA certificates (`tls.client_ca`, a JWKS CA file, the system bundle).
    CaCertificates,
    /// A JSON Web Key Set.
    Jwks,
    /// A key directory's JSON: a TPM key blob or `key.json`.
    KeyBlob,
    /// A sysfs attribute under `hw.sysfs_root` (sensor readings, NIC facts).
    SysfsAttribute,
    /// An OpenAPI description or a file it `$ref`s (`policy.file`).
    PolicyDocument,
    /// The shadow-API inventory (`policy.shadow_file`).
    ShadowInventory,
    /// A password kept out of the config (`fleet.password_file`).
    Password,
}

impl FileKind {
    /// The largest file of this kind that is read, in bytes.
    pub const fn limit(self) -> u64 {
        match self {
            FileKind::Config => CONFIG_LIMIT,
            FileKind::Certificate | FileKind::PrivateKey | FileKind::CaCertificates => PEM_LIMIT,
            FileKind::Jwks => JWKS_LIMIT,
            FileKind::KeyBlob => KEY_BLOB_LIMIT,
            FileKind::SysfsAttribute => SYSFS_LIMIT,
            FileKind::PolicyDocument => POLICY_LIMIT,
            FileKind::ShadowInventory => SHADOW_LIMIT,
            FileKind::Password => PASSWORD_LIMIT,
        }
    }

    /// How errors name a file of this kind.
    pub const fn name(self) -> &'static str {
        match self {
            FileKind::Config => "config file",
            FileKind::Certificate => "TLS certificate",
            FileKind::PrivateKey => "private key",
            FileKind::CaCertificates => "CA certificate file",
            FileKind::Jwks => "JWKS file",
            FileKind::KeyBlob => "key blob",
            FileKind::SysfsAttribute => "sysfs attribute",
            FileKind::PolicyDocument => "policy document",
            FileKind::ShadowInventory => "shadow inventory",
            FileKind::Password => "password file",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a file was not read. Every message names the file and says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Opening or reading failed (missing, no permission, I/O error).
    #[error(
        "cannot read {kind} {}: {error}; check the path and that this user may read the file",
        path.display()
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        kind: FileKind,
        /// The OS error (in the message, so not a separate `source`).
        error: std::io::Error,
    },
    /// The path names a FIFO, device, socket or directory.
    #[error(
        "{} is {file_type}, not a regular file; a {kind} must be a regular file (not a pipe, \
         device, socket or directory): fix the path",
        path.display()
    )]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        kind: FileKind,
        /// What it is instead ("a FIFO", "a character device", ...).
        file_type: &'static str,
    },
    /// The file is larger than the limit for its kind.
    #[error(
        "{} is {}, over the {} limit for a {kind}; check that the path names the right file",
        path.display(), human(*size), human(kind.limit())
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        kind: FileKind,
        /// Its size, from `fstat`.
        size: u64,
    },
    /// The file grew past the limit while it was read.
    #[error(
        "{} grew past the {} limit for a {kind} while it was read; check that the path names \
         the right file and that nothing is still writing it",
        path.display(), human(kind.limit())
    )]
    Grew {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        kind: FileKind,
    },
    /// The file is not UTF-8 text.
    #[error("{kind} {} is not UTF-8 text ({detail}); save it as UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        kind: FileKind,
        /// Where the decoding failed.
        detail: String,
    },
}

impl FileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Io { path, .. }
            | FileError::NotRegular { path, .. }
            | FileError::TooLarge { path, .. }
            | FileError::Grew { path, .. }
            | FileError::NotUtf8 { path, .. } => path,
        }
    }
}

/// Reads a whole regular file of `kind`, refusing anything else and anything over the kind's
/// limit. Never blocks on a FIFO and never reads more than the limit plus one byte.
pub fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>, FileError> {
    let io = |error| FileError::Io {
        path: path.to_path_buf(),
        kind,
        error,
    };
    let file = open(path, kind)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind,
            file_type: describe(meta.file_type()),
        });
    }
    let limit = kind.limit();
    if meta.len() > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            kind,
            size: meta.len(),
        });
    }
    // The size is at most `limit` here, so the allocation is bounded; it may be 0 for files
    // (procfs-like) that do not report one.
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(FileError::Grew {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok(buf)
}

/// [`read`], then UTF-8 decoding.
pub fn read_to_string(path: &Path, kind: FileKind) -> Result<String, FileError> {
    String::from_utf8(read(path, kind)?).map_err(|e| FileError::NotUtf8 {
        path: path.to_path_buf(),
        kind,
        detail: e.utf8_error().to_string(),
    })
}

fn open(path: &Path, kind: FileKind) -> Result<File, FileError> {
    let result = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    match result {
        Ok(f) => Ok(f),
        // open(2) on a Unix socket fails with ENXIO; name the socket rather than the errno.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => match std::fs::metadata(path) {
            Ok(m) if !m.file_type().is_file() => Err(FileError::NotRegular {
                path: path.to_path_buf(),
                kind,
                file_type: describe(m.file_type()),
            }),
            _ => Err(FileError::Io {
                path: path.to_path_buf(),
                kind,
                error: e,
            }),
        },
        Err(error) => Err(FileError::Io {
            path: path.to_path_buf(),
            kind,
            error,
        }),
    }
}

fn describe(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// `512 bytes`, `64 KiB`, `2.0 GiB`: whole units when exact, else one decimal.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut unit = 0;
    let mut div: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes / div >= 1024 {
        unit += 1;
        div *= 1024;
    }
    if bytes.is_multiple_of(div) {
        format!("{} {}", bytes / div, UNITS[unit])
    } else {
        // Display only: the precision lost above 2^53 bytes does not show in one decimal.
        #[allow(clippy::cast_precision_loss)]
        let value = bytes as f64 / div as f64;
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_good_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vigild.toml");
        std::fs::write(&p, "[control]\n").unwrap();
        assert_eq!(read(&p, FileKind::Config).unwrap(), b"[control]\n");
        assert_eq!(read_to_string(&p, FileKind::Config).unwrap(), "[control]\n");
        // Exactly at the limit is fine.
        let at = dir.path().join("blob.json");
        std::fs::write(&at, vec![b' '; KEY_BLOB_LIMIT as usize]).unwrap();
        assert_eq!(
            read(&at, FileKind::KeyBlob).unwrap().len() as u64,
            KEY_BLOB_LIMIT
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        mkfifo(&p);
        let started = Instant::now();
        let err = read(&p, FileKind::Config).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let msg = err.to_string();
        assert!(msg.contains("is a FIFO, not a regular file"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(
            msg.contains("a config file must be a regular file"),
            "{msg}"
        );
    }

    #[test]
    fn dev_zero_and_a_symlink_to_it_are_refused() {
        let err = read(Path::new("/dev/zero"), FileKind::Certificate).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/dev/zero is a character device, not a regular file"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("cert.pem");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read(&link, FileKind::Certificate).unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
        assert_eq!(err.path(), link);
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let msg = read(dir.path(), FileKind::Jwks).unwrap_err().to_string();
        assert!(msg.contains("is a directory, not a regular file"), "{msg}");
        assert!(msg.contains("a JWKS file must be"), "{msg}");
    }

    #[test]
    fn a_socket_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sock");
        let _l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let msg = read(&p, FileKind::Config).unwrap_err().to_string();
        assert!(msg.contains("is a socket, not a regular file"), "{msg}");
    }

    #[test]
    fn an_oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sealed.blob");
        std::fs::write(&p, vec![b'0'; KEY_BLOB_LIMIT as usize + 1]).unwrap();
        let err = read(&p, FileKind::KeyBlob).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { size, .. } if size == KEY_BLOB_LIMIT + 1));
        let msg = err.to_string();
        assert!(
            msg.contains("over the 64 KiB limit for a key blob"),
            "{msg}"
        );
        // A sparse 2 GiB file costs no disk and is refused from its size alone.
        let big = dir.path().join("cert.pem");
        File::create(&big).unwrap().set_len(2 << 30).unwrap();
        let msg = read(&big, FileKind::Certificate).unwrap_err().to_string();
        assert!(
            msg.contains("is 2 GiB, over the 1 MiB limit for a TLS certificate"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_file_names_path_and_kind() {
        let p = Path::new("/nonexistent/vigil/ca.pem");
        let err = read(p, FileKind::CaCertificates).unwrap_err();
        let FileError::Io { ref error, .. } = err else {
            panic!("{err}");
        };
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        assert!(
            err.to_string()
                .starts_with("cannot read CA certificate file /nonexistent/vigil/ca.pem:"),
            "{err}"
        );
    }

    #[test]
    fn text_must_be_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vigild.toml");
        std::fs::write(&p, b"a = \"\xff\"\n").unwrap();
        let msg = read_to_string(&p, FileKind::Config)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is not UTF-8 text"), "{msg}");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(1 << 20), "1 MiB");
        assert_eq!(human(64 << 10), "64 KiB");
        assert_eq!(human((2 << 30) + (100 << 20)), "2.1 GiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }
}
