//! vigil-perf-schema
