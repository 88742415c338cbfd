//! CPU features that decide how fast TLS and JSON inspection can go.

/// Instruction-set extensions detected at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CpuFeatures {
    /// AES-NI: hardware AES for TLS record encryption.
    pub aes_ni: bool,
    /// PCLMULQDQ: carry-less multiply, the GHASH half of AES-GCM.
    pub pclmulqdq: bool,
    /// AVX2: SIMD JSON parsing and ChaCha20.
    pub avx2: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// SHA extensions (SHA-1/SHA-256 rounds).
    pub sha: bool,
}

impl CpuFeatures {
    /// Detects the features of the CPU this process runs on.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    pub fn detect() -> Self {
        Self {
            aes_ni: std::arch::is_x86_feature_detected!("aes"),
            pclmulqdq: std::arch::is_x86_feature_detected!("pclmulqdq"),
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            avx512f: std::arch::is_x86_feature_detected!("avx512f"),
            sha: std::arch::is_x86_feature_detected!("sha"),
        }
    }

    /// Detects the features of the CPU this process runs on (none of these exist off x86).
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    pub fn detect() -> Self {
        Self::default()
    }

    /// Operator-facing warnings about missing features that cost throughput.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.aes_ni {
            out.push(
                "CPU lacks AES-NI: AES-GCM runs in software at a fraction of the speed; prefer \
                 CHACHA20-POLY1305 or hardware with AES-NI (in a VM, pass the host CPU flags \
                 through)"
                    .to_owned(),
            );
        } else if !self.pclmulqdq {
            out.push(
                "CPU lacks PCLMULQDQ: AES-GCM authentication runs in software and TLS \
                 throughput drops"
                    .to_owned(),
            );
        }
        if !self.avx2 {
            out.push(
                "CPU lacks AVX2: JSON bodies are parsed with the slower fallback path".to_owned(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_aes_ni_is_warned_about() {
        let none = CpuFeatures::default();
        let w = none.warnings();
        assert!(w.iter().any(|m| m.contains("AES-NI")), "{w:?}");
        assert!(w.iter().any(|m| m.contains("AVX2")), "{w:?}");
        let all = CpuFeatures {
            aes_ni: true,
            pclmulqdq: true,
            avx2: true,
            avx512f: false,
            sha: false,
        };
        assert!(all.warnings().is_empty());
        let no_clmul = CpuFeatures {
            pclmulqdq: false,
            ..all
        };
        assert_eq!(no_clmul.warnings().len(), 1);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn detection_agrees_with_proc_cpuinfo() {
        // /proc/cpuinfo is the kernel's view of the same CPUID bits.
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let Some(flags) = info.lines().find(|l| l.starts_with("flags")) else {
            return;
        };
        let has = |f: &str| flags.split_whitespace().any(|w| w == f);
        let d = CpuFeatures::detect();
        assert_eq!(d.aes_ni, has("aes"));
        assert_eq!(d.pclmulqdq, has("pclmulqdq"));
        assert_eq!(d.avx2, has("avx2"));
        assert_eq!(d.avx512f, has("avx512f"));
        assert_eq!(d.sha, has("sha_ni"));
    }
}
