//! vigild's config file (`vigil_dataplane::Config::parse`): TOML, every section, the gateway's
//! sections and their validation. An operator writes it, but a reload reads whatever is on
//! disk, and a parser that panics on a typo takes the box down.

use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some(text) = vigil_fuzz::text(data) {
            let _ = vigil_dataplane::Config::parse(text, Path::new("/etc/vigil/vigild.toml"));
        }
    });
}
