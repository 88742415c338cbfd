//! vigil-perf-hw
