//! Hardware layer of Vigil: TLS keys (file, TPM-sealed, TPM-resident), CPU and NIC facts,
//! thermal sensors and the inspection-depth governor.

pub mod cpu;
pub mod facts;
pub mod keys;
pub mod nic;
pub mod thermal;
mod tpm;

#[cfg(test)]
mod test_support;

pub use cpu::CpuFeatures;
pub use facts::HostFacts;
pub use nic::NicFacts;
