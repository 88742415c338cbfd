//! vigil-hw
