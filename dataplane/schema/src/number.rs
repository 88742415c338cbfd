//! Exact numeric comparisons. JSON numbers arrive as `i64`, `u64` or `f64`; comparing them by
//! converting everything to `f64` would call 9007199254740993 equal to 9007199254740992, so
//! integers are compared as integers and integer/float pairs without rounding.

use std::cmp::Ordering;
use std::io::Write as _;

/// A parsed JSON number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    I(i64),
    U(u64),
    F(f64),
}

impl Num {
    pub(crate) fn from_json(n: &serde_json::Number) -> Option<Num> {
        if let Some(i) = n.as_i64() {
            Some(Num::I(i))
        } else if let Some(u) = n.as_u64() {
            Some(Num::U(u))
        } else {
            n.as_f64().filter(|f| f.is_finite()).map(Num::F)
        }
    }

    fn as_int(self) -> Option<i128> {
        match self {
            Num::I(i) => Some(i128::from(i)),
            Num::U(u) => Some(i128::from(u)),
            Num::F(_) => None,
        }
    }

    /// Integers in the JSON Schema sense: any number with a zero fractional part (`1.0` too).
    pub(crate) fn is_integer(self) -> bool {
        match self {
            // Doubles of magnitude 2^52 and above are all integers; below, an exact round
            // trip through i64 says so. No libm call (`fract` is one on x86-64 baseline, and
            // the optimizer hoists it into every keyword loop).
            Num::F(f) => {
                f.is_finite() && (f.abs() >= 4_503_599_627_370_496.0 || (f as i64) as f64 == f)
            }
            _ => true,
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::U(u) => u as f64,
            Num::F(f) => f,
        }
    }
}

/// Total order between two finite numbers, exact across integer and float representations.
#[inline]
pub(crate) fn cmp(a: Num, b: Num) -> Ordering {
    // Common cases first: same representation, or an integer small enough to be exact in f64.
    const EXACT: u64 = 1 << 53;
    match (a, b) {
        (Num::I(x), Num::I(y)) => return x.cmp(&y),
        (Num::U(x), Num::U(y)) => return x.cmp(&y),
        // simd-json gives positive integers as `U`, schemas hold small bounds as `I`.
        (Num::U(x), Num::I(y)) => {
            return u64::try_from(y).map_or(Ordering::Greater, |y| x.cmp(&y));
        }
        (Num::I(x), Num::U(y)) => {
            return u64::try_from(x).map_or(Ordering::Less, |x| x.cmp(&y));
        }
        (Num::F(x), Num::F(y)) => return x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::F(x), Num::I(y)) if y.unsigned_abs() <= EXACT => {
            return x.partial_cmp(&(y as f64)).unwrap_or(Ordering::Equal);
        }
        (Num::I(x), Num::F(y)) if x.unsigned_abs() <= EXACT => {
            return (x as f64).partial_cmp(&y).unwrap_or(Ordering::Equal);
        }
        _ => {}
    }
    cmp_mixed(a, b)
}

/// [`cmp`] across representations where a conversion could round: out of line, so the common
/// cases above inline into the keyword checks.
#[inline(never)]
fn cmp_mixed(a: Num, b: Num) -> Ordering {
    match (a.as_int(), b.as_int()) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => cmp_int_float(x, b.as_f64()),
        (None, Some(y)) => cmp_int_float(y, a.as_f64()).reverse(),
        (None, None) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
    }
}

fn cmp_int_float(i: i128, f: f64) -> Ordering {
    // Both sides are far inside ±2^127, where f64 -> i128 truncation is exact for the integer
    // part; the fractional part then breaks ties.
    const LIMIT: f64 = 1.7e38;
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f <= -LIMIT {
        return Ordering::Greater;
    }
    let fl = f.floor();
    match i.cmp(&(fl as i128)) {
        Ordering::Equal if f > fl => Ordering::Less,
        o => o,
    }
}

pub(crate) fn equal(a: Num, b: Num) -> bool {
    cmp(a, b) == Ordering::Equal
}

/// A positive `multipleOf` divisor, kept both as an exact decimal (`mantissa * 10^exp`) and as a
/// double for the rare instance whose exact check would overflow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Divisor {
    mantissa: u128,
    exp: i32,
    float: f64,
    /// Precomputed for the common divisors, so the usual check is a few instructions: the
    /// divisor as a `u64` when it is an integer that fits, and (10^k, mantissa) when it is a
    /// decimal `mantissa * 10^-k` with k <= 22 (10^k is exact in f64) and a `u64` mantissa.
    int: Option<u64>,
    decimal: Option<(f64, u64)>,
}

impl Divisor {
    pub(crate) fn new(n: Num) -> Option<Divisor> {
        let float = n.as_f64();
        if float.partial_cmp(&0.0) != Some(Ordering::Greater) {
            return None;
        }
        let (neg, mantissa, exp) = decimal(n)?;
        let int = u32::try_from(exp)
            .ok()
            .and_then(pow10)
            .and_then(|p| p.checked_mul(mantissa))
            .and_then(|d| u64::try_from(d).ok());
        let decimal = u32::try_from(-i64::from(exp))
            .ok()
            .filter(|k| (1..=22).contains(k))
            .zip(u64::try_from(mantissa).ok())
            .map(|(k, m)| (10f64.powi(k as i32), m));
        (!neg && mantissa > 0).then_some(Divisor {
            mantissa,
            exp,
            float,
            int,
            decimal,
        })
    }

    /// True when `n` is an integer multiple of the divisor.
    #[inline]
    pub(crate) fn divides(&self, n: Num) -> bool {
        match (n, self.int, self.decimal) {
            // Every integer is a multiple of 1 (and 0.01 * 100, the usual price rule, below):
            // skip the division, which costs tens of cycles.
            (Num::I(_) | Num::U(_), Some(1), _) => return true,
            (Num::I(i), Some(d), _) => return i.unsigned_abs() % d == 0,
            (Num::U(u), Some(d), _) => return u % d == 0,
            (Num::F(x), _, Some((p, m))) => {
                // Scale by 10^k and round to the nearest integer r (without a libm call); keep
                // r only if r / 10^k is exactly the same double, i.e. the instance *is* that
                // decimal. A rounding slip only fails that check and takes the exact path.
                let t = x * p;
                if t.abs() < 9_007_199_254_740_992.0 {
                    let r = if t >= 0.0 { t + 0.5 } else { t - 0.5 } as i64;
                    if r as f64 / p == x {
                        return m == 1 || r.unsigned_abs().is_multiple_of(m);
                    }
                }
            }
            _ => {}
        }
        self.divides_exactly(n)
    }

    /// The divisor as `step * 10^-scale` with `scale <= max_scale` and a `u64` step: integers
    /// have scale 0, `0.01` is (scale 2, step 1), `0.25` (2, 25).
    pub(crate) fn scaled(&self, max_scale: u32) -> Option<(u32, u64)> {
        if let Some(d) = self.int {
            return Some((0, d));
        }
        let scale = u32::try_from(-i64::from(self.exp)).ok()?;
        (scale <= max_scale).then_some(())?;
        Some((scale, u64::try_from(self.mantissa).ok()?))
    }

    // Kept out of line: it formats the instance, and inlined its stack frame would burden every
    // call of `divides`, which almost always answers on its fast path.
    #[inline(never)]
    fn divides_exactly(&self, n: Num) -> bool {
        if let (Some(i), true) = (n.as_int(), self.exp >= 0) {
            if let Some(d) = pow10(self.exp as u32).and_then(|p| p.checked_mul(self.mantissa)) {
                return i.unsigned_abs() % d == 0;
            }
        }
        if let (Num::F(x), Some(k)) = (n, u32::try_from(-self.exp).ok().filter(|k| *k <= 22)) {
            // Fast path for decimal divisors (0.01): scale by 10^k, round, and keep the result
            // only if that integer over 10^k is exactly the same double, i.e. the instance *is*
            // that decimal. 10^k is exact in f64 for k <= 22.
            let p = 10f64.powi(k as i32);
            let r = (x * p).round();
            if r.abs() < 9_007_199_254_740_992.0 && r / p == x {
                return (r as i128).unsigned_abs().is_multiple_of(self.mantissa);
            }
        }
        if let Some((_, m, e)) = decimal(n) {
            // Bring both to the smaller exponent: m*10^(e-k) must be divisible by dm*10^(de-k).
            let k = e.min(self.exp);
            let lhs = pow10((e - k) as u32).and_then(|p| p.checked_mul(m));
            let rhs = pow10((self.exp - k) as u32).and_then(|p| p.checked_mul(self.mantissa));
            if let (Some(l), Some(r)) = (lhs, rhs) {
                return l % r == 0;
            }
        }
        let q = n.as_f64() / self.float;
        q.is_finite() && q.fract() == 0.0
    }
}

/// `n * 10^scale` when that is an integer of at most 15 digits (`None` otherwise): the bound
/// of a check on scaled decimals.
pub(crate) fn scaled(n: Num, scale: u32) -> Option<i64> {
    let (neg, mantissa, exp) = decimal(n)?;
    let shift = u32::try_from(i64::from(exp) + i64::from(scale)).ok()?;
    let v = pow10(shift)?.checked_mul(mantissa)?;
    if v >= 1_000_000_000_000_000 {
        return None;
    }
    let v = i64::try_from(v).ok()?;
    Some(if neg { -v } else { v })
}

fn pow10(e: u32) -> Option<u128> {
    10u128.checked_pow(e)
}

/// The shortest decimal that round-trips `n`: (negative, mantissa, exponent).
fn decimal(n: Num) -> Option<(bool, u128, i32)> {
    match n {
        Num::I(i) => Some((i < 0, i128::from(i).unsigned_abs(), 0)),
        Num::U(u) => Some((false, u128::from(u), 0)),
        Num::F(f) if f.is_finite() => {
            // Rust prints the shortest round-trip digits; `{:e}` gives "d.ddde-N" without any
            // allocation when written into a stack buffer.
            let mut buf = [0u8; 64];
            let mut cur = std::io::Cursor::new(&mut buf[..]);
            write!(cur, "{:e}", f.abs()).ok()?;
            let len = usize::try_from(cur.position()).ok()?;
            let text = std::str::from_utf8(&buf[..len]).ok()?;
            let (digits, exp) = text.split_once('e')?;
            let exp: i32 = exp.parse().ok()?;
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            let mut mantissa: u128 = 0;
            for c in int.bytes().chain(frac.bytes()) {
                mantissa = mantissa
                    .checked_mul(10)?
                    .checked_add(u128::from(c - b'0'))?;
            }
            Some((f < 0.0, mantissa, exp - i32::try_from(frac.len()).ok()?))
        }
        Num::F(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn integers_compare_exactly() {
        let a = Num::U(9_007_199_254_740_993);
        let b = Num::F(9_007_199_254_740_992.0);
        assert_eq!(cmp(a, b), Ordering::Greater);
        assert_eq!(cmp(Num::I(-1), Num::U(u64::MAX)), Ordering::Less);
        assert_eq!(cmp(Num::I(3), Num::F(3.5)), Ordering::Less);
        assert_eq!(cmp(Num::F(3.5), Num::I(3)), Ordering::Greater);
        assert_eq!(cmp(Num::I(-4), Num::F(-3.5)), Ordering::Less);
        assert!(equal(Num::I(1), Num::F(1.0)));
        // Unsigned instances against signed bounds, and the reverse, at the edges.
        assert_eq!(cmp(Num::U(7), Num::I(1)), Ordering::Greater);
        assert_eq!(cmp(Num::U(1), Num::I(1)), Ordering::Equal);
        assert_eq!(cmp(Num::U(0), Num::I(-1)), Ordering::Greater);
        assert_eq!(cmp(Num::U(u64::MAX), Num::I(i64::MAX)), Ordering::Greater);
        assert_eq!(cmp(Num::I(5), Num::U(5)), Ordering::Equal);
        assert_eq!(cmp(Num::I(i64::MIN), Num::U(0)), Ordering::Less);
        assert_eq!(cmp(Num::I(i64::MAX), Num::U(u64::MAX)), Ordering::Less);
    }

    #[test]
    fn integer_detection() {
        assert!(Num::F(1.0).is_integer());
        assert!(!Num::F(1.5).is_integer());
        assert!(Num::U(u64::MAX).is_integer());
        assert!(Num::F(-3.0).is_integer() && Num::F(1e300).is_integer());
        assert!(!Num::F(4_503_599_627_370_495.5).is_integer());
        assert!(!Num::F(-0.5).is_integer() && !Num::F(f64::NAN).is_integer());
    }

    #[test]
    fn decimal_multiples_are_exact() {
        let d = Divisor::new(Num::F(0.01)).unwrap();
        assert!(d.divides(Num::F(19.99)));
        assert!(!d.divides(Num::F(19.991)));
        let d = Divisor::new(Num::F(0.05)).unwrap();
        assert!(d.divides(Num::F(0.15)));
        assert!(!d.divides(Num::F(0.151)));
        assert!(d.divides(Num::F(-1234.55)));
        let d = Divisor::new(Num::F(0.0001)).unwrap();
        assert!(d.divides(Num::F(0.0075)));
        assert!(!d.divides(Num::F(0.00751)));
        // The fast path rounds without libm: halfway cases and near-misses stay exact.
        let d = Divisor::new(Num::F(0.01)).unwrap();
        assert!(d.divides(Num::F(0.5)) && d.divides(Num::F(-0.07)) && d.divides(Num::F(1e13)));
        let below_half_cent = f64::from_bits(0.005f64.to_bits() - 1);
        assert!(!d.divides(Num::F(0.005)) && !d.divides(Num::F(below_half_cent)));
        assert!(!d.divides(Num::F(1e-300)));
        let d = Divisor::new(Num::F(0.25)).unwrap();
        assert!(d.divides(Num::F(0.75)) && !d.divides(Num::F(0.3)));
        let d = Divisor::new(Num::I(3)).unwrap();
        assert!(d.divides(Num::I(-9)));
        assert!(!d.divides(Num::U(u64::MAX - 1)));
        assert!(d.divides(Num::F(6.0)));
    }

    #[test]
    fn overflowing_division_is_not_a_multiple() {
        let d = Divisor::new(Num::F(0.123456789)).unwrap();
        assert!(!d.divides(Num::F(1e308)));
    }

    #[test]
    fn non_positive_divisors_are_refused() {
        assert!(Divisor::new(Num::I(0)).is_none());
        assert!(Divisor::new(Num::F(-0.5)).is_none());
    }
}
