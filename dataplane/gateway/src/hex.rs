//! Lower-case hex digits written straight into a string: request ids and JA4 fingerprints are
//! made per request and per handshake, and a formatter call per value costs more than the
//! digits.

pub(crate) const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends the low `digits` hex digits of `v` (at most 16), most significant first.
pub(crate) fn push(out: &mut String, v: u64, digits: u32) {
    for i in (0..digits.min(16)).rev() {
        out.push(char::from(DIGITS[((v >> (4 * i)) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_match_the_formatter() {
        for (v, digits) in [
            (0u64, 4),
            (0xab, 2),
            (0x1f2e, 4),
            (u64::MAX, 16),
            (0x1234_5678, 12),
        ] {
            let mut s = String::new();
            super::push(&mut s, v, digits);
            let w = digits as usize;
            let want = format!("{v:0w$x}");
            assert_eq!(s, want[want.len() - w..], "{v:#x} in {digits} digits");
        }
    }
}
