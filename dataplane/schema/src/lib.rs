//! vigil-schema
