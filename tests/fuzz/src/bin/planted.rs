//! A deliberately planted bug, to prove the fuzzing setup finds what it should:
//! `scripts/fuzz.sh --prove` passes only if AFL reports this crash within its time bound.
//! Never run by `--budget` (it would fail the run by design).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        // Six bytes to guess: hopeless for blind mutation (2^48), a few seconds with coverage
        // and comparison feedback.
        if data.len() > 5
            && data[0] == b'V'
            && data[1] == b'I'
            && data[2] == b'G'
            && data[3] == b'I'
            && data[4] == b'L'
            && data[5] == 0x7f
        {
            panic!("planted bug reached");
        }
    });
}
