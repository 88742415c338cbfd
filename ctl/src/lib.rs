//! vigil-ctl
