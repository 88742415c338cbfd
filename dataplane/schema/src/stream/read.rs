//! Reading JSON's tokens from the body's bytes: whitespace, separators, literals, strings
//! (escapes checked, decoded only on demand) and numbers (as the tape parser represents them).

use super::plan::lengths_fit;
use super::{Bail, Quick, R, Stream};
use crate::number::Num;

/// 10^k for the scales of [`Quick::Num`].
const POW10_INT: [i64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// A string as read: its raw bytes between the quotes, and whether they hold escapes.
#[derive(Clone, Copy)]
pub(super) struct RawStr {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) escaped: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask with the high bit set in the lowest byte of `w` that is `"`, `\` or below 0x20 (and
/// possibly in bytes above it, which the caller never looks at).
#[inline]
fn special_bytes(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

fn hex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Powers of ten exact in an f64 (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Stream<'_, '_> {
    #[inline]
    pub(super) fn ws(&mut self) {
        // Compact JSON has none: one compare decides.
        if self.b.get(self.pos).is_some_and(|c| *c > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, moving past the whitespace.
    #[inline(always)]
    pub(super) fn peek_ws(&mut self) -> Option<u8> {
        match self.b.get(self.pos) {
            // Compact JSON has none: one compare decides.
            Some(c) if *c > b' ' => Some(*c),
            _ => {
                self.ws();
                self.peek()
            }
        }
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// After an element or member: `true` past a comma (another follows), `false` past the
    /// container's `close`.
    #[inline]
    pub(super) fn more(&mut self, close: u8) -> R<bool> {
        match self.peek_ws() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Bail),
        }
    }

    /// A value at the cursor (after whitespace) that `q` accepts: moves past it and answers
    /// true. Anything else leaves the cursor where it was and answers false.
    #[inline(always)]
    pub(super) fn quick(&mut self, q: &Quick) -> bool {
        let b = self.b;
        let at = self.pos;
        let end = match q {
            Quick::Bool => match b.get(at) {
                Some(b't') if b.get(at..at + 4) == Some(b"true") => at + 4,
                Some(b'f') if b.get(at..at + 5) == Some(b"false") => at + 5,
                _ => return false,
            },
            Quick::Fixed { len, shape } => {
                let body = at + 1..at + 1 + len;
                match (b.get(at), b.get(at + 1 + len), b.get(body)) {
                    (Some(b'"'), Some(b'"'), Some(text))
                        if *len <= self.max_string && shape.is_match(text) =>
                    {
                        at + len + 2
                    }
                    _ => return false,
                }
            }
            Quick::Str { min, max, shape } => {
                if b.get(at) != Some(&b'"') {
                    return false;
                }
                // A string the scan refuses is refused again by the usual path.
                let Ok(raw) = self.string() else {
                    self.pos = at;
                    return false;
                };
                let text = b.get(raw.start..raw.end).unwrap_or_default();
                if raw.escaped
                    || !lengths_fit(text, *min, *max)
                    || !shape.as_ref().is_none_or(|s| s.is_match(text))
                {
                    self.pos = at;
                    return false;
                }
                raw.end + 1
            }
            Quick::Num {
                scale,
                frac,
                min,
                max,
                step,
            } => {
                let mut i = at;
                let neg = b.get(i) == Some(&b'-');
                i += usize::from(neg);
                let first = i;
                let mut v: i64 = 0;
                match b.get(i) {
                    Some(b'0') => i += 1,
                    Some(b'1'..=b'9') => {
                        while let Some(d) =
                            b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9)
                        {
                            v = v.wrapping_mul(10).wrapping_add(i64::from(d));
                            i += 1;
                        }
                    }
                    _ => return false,
                }
                let int_digits = i - first;
                let mut frac_digits = 0;
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
                        v = v.wrapping_mul(10).wrapping_add(i64::from(d));
                        frac_digits += 1;
                        i += 1;
                    }
                    if !*frac || frac_digits == 0 {
                        return false;
                    }
                }
                // An exponent, more fraction digits than the scale, or a scaled value of 16
                // digits or more (the wrapping above then never matters): the usual path.
                if matches!(b.get(i), Some(b'e' | b'E'))
                    || frac_digits > *scale as usize
                    || int_digits + *scale as usize > 15
                {
                    return false;
                }
                let Some(p) = POW10_INT.get(*scale as usize - frac_digits) else {
                    return false;
                };
                let v = v * p;
                let v = if neg { -v } else { v };
                // A step of 1 (no `multipleOf`, or one equal to the scale's unit) needs no
                // division, which costs tens of cycles.
                if v < *min || v > *max || (*step != 1 && v.unsigned_abs() % step != 0) {
                    return false;
                }
                i
            }
        };
        self.pos = end;
        true
    }

    /// The `:` after a member's name.
    #[inline]
    pub(super) fn colon(&mut self) -> R {
        if self.peek_ws() != Some(b':') {
            return Err(Bail);
        }
        self.pos += 1;
        Ok(())
    }

    pub(super) fn literal(&mut self, word: &[u8]) -> R {
        let end = self.pos + word.len();
        if self.b.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Reads a string from its opening quote; escapes are checked, not decoded.
    #[inline]
    pub(super) fn string(&mut self) -> R<RawStr> {
        let start = self.pos + 1;
        let b = self.b;
        let mut i = start;
        let mut escaped = false;
        loop {
            while let Some(chunk) = b.get(i..i + 8).and_then(|c| c.first_chunk::<8>()) {
                let m = special_bytes(u64::from_le_bytes(*chunk));
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u') => {
                            let cp = b
                                .get(i + 2..i + 6)
                                .ok_or(Bail)?
                                .iter()
                                .try_fold(0u32, |acc, d| hex(*d).map(|h| acc << 4 | h))
                                .ok_or(Bail)?;
                            // Surrogate pairs are left to the tape parser.
                            if (0xD800..0xE000).contains(&cp) {
                                return Err(Bail);
                            }
                            6
                        }
                        _ => return Err(Bail),
                    };
                }
                Some(c) if *c < 0x20 => return Err(Bail),
                Some(_) => i += 1,
                None => return Err(Bail),
            }
        }
        if i - start > self.max_string {
            return Err(Bail);
        }
        self.pos = i + 1;
        Ok(RawStr {
            start,
            end: i,
            escaped,
        })
    }

    /// Decodes an escaped string into `scratch` (its escapes were checked by [`Self::string`]).
    pub(super) fn unescape(&mut self, raw: RawStr) -> R {
        self.scratch.clear();
        let text = self.src.get(raw.start..raw.end).ok_or(Bail)?;
        let mut rest = text;
        while let Some(at) = rest.find('\\') {
            self.scratch.push_str(rest.get(..at).ok_or(Bail)?);
            let esc = rest.as_bytes().get(at + 1).copied().ok_or(Bail)?;
            let (c, used) = match esc {
                b'"' => ('"', 2),
                b'\\' => ('\\', 2),
                b'/' => ('/', 2),
                b'b' => ('\u{8}', 2),
                b'f' => ('\u{c}', 2),
                b'n' => ('\n', 2),
                b'r' => ('\r', 2),
                b't' => ('\t', 2),
                b'u' => {
                    let digits = rest.get(at + 2..at + 6).ok_or(Bail)?;
                    let cp = u32::from_str_radix(digits, 16).map_err(|_| Bail)?;
                    (char::from_u32(cp).ok_or(Bail)?, 6)
                }
                _ => return Err(Bail),
            };
            self.scratch.push(c);
            rest = rest.get(at + used..).ok_or(Bail)?;
        }
        self.scratch.push_str(rest);
        Ok(())
    }

    /// Reads a number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as the tape parser
    /// represents it (non-negative integers `U`, negative `I`, the rest the nearest double).
    #[inline]
    pub(super) fn number(&mut self) -> R<Num> {
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let mut mantissa: u64 = 0;
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
                    mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
                    i += 1;
                }
            }
            _ => return Err(Bail),
        }
        // Significant digits so far (a lone leading zero is none; the count, not the mantissa,
        // decides, since a long run of digits can wrap the mantissa to anything).
        let mut digits = if b.get(int_start) == Some(&b'0') {
            0
        } else {
            i - int_start
        };
        if !matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
            // An integer, the common case.
            self.pos = i;
            if digits > 19 {
                return Err(Bail);
            }
            return Ok(if neg {
                Num::I(0i64.checked_sub_unsigned(mantissa).ok_or(Bail)?)
            } else {
                Num::U(mantissa)
            });
        }
        let mut exp10: i64 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let first = i;
            while let Some(d @ b'0'..=b'9') = b.get(i).copied() {
                if mantissa != 0 || d != b'0' {
                    digits += 1;
                }
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                exp10 -= 1;
                i += 1;
            }
            if i == first {
                return Err(Bail);
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            let eneg = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let first = i;
            let mut e: i64 = 0;
            while let Some(d @ b'0'..=b'9') = b.get(i).copied() {
                e = (e * 10 + i64::from(d - b'0')).min(1 << 20);
                i += 1;
            }
            if i == first {
                return Err(Bail);
            }
            exp10 += if eneg { -e } else { e };
        }
        self.pos = i;
        // 19 significant digits always fit a u64; longer numbers are left to the tape parser.
        if digits > 19 {
            return Err(Bail);
        }
        let f = if mantissa < (1 << 53) && (-22..=22).contains(&exp10) {
            // Exact mantissa and power of ten: one correctly rounded operation.
            let m = mantissa as f64;
            let p = POW10
                .get(exp10.unsigned_abs() as usize)
                .copied()
                .ok_or(Bail)?;
            if exp10 < 0 { m / p } else { m * p }
        } else {
            let text = self.src.get(start..i).ok_or(Bail)?;
            let f: f64 = text.parse().map_err(|_| Bail)?;
            // Overflow and underflow are left to the tape parser.
            if !f.is_finite() || (f == 0.0 && mantissa != 0) {
                return Err(Bail);
            }
            f.abs()
        };
        Ok(Num::F(if neg { -f } else { f }))
    }
}
