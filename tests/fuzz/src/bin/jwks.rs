//! A JWKS document through `vigil_identity::KeySet::from_jwks`: what the gateway parses after
//! fetching an identity provider's key set over HTTPS (or reading it from a file). Keys it
//! cannot use are skipped, the rest must never panic.

use vigil_identity::KeySet;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(keys) = KeySet::from_jwks(data) {
            let _ = (keys.len(), keys.kids(), keys.skipped());
        }
    });
}
