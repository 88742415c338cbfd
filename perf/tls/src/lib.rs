//! vigil-perf-tls
