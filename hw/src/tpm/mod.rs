//! TPM access: connection, key blobs, sealing, and the resident signing key.

pub(crate) mod authorize;
pub(crate) mod blob;
pub(crate) mod conn;
pub(crate) mod locked;
pub(crate) mod resident;
pub(crate) mod seal;
