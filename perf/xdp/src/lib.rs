//! vigil-perf-xdp
