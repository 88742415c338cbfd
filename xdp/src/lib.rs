//! vigil-xdp
