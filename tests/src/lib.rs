//! vigil-e2e
