//! Hardware layer of Vigil: TLS keys (file, TPM-sealed, TPM-resident), CPU and NIC facts,
//! thermal sensors and the inspection-depth governor.

pub mod keys;
pub mod thermal;
