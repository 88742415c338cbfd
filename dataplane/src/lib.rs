//! vigil-dataplane
