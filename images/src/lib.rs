//! vigil-images
