//! The commonest API patterns are a fixed sequence of ASCII character classes between `^` and
//! `$`: `^[A-Z]{3}-[0-9]{6}$` (a SKU), `^[0-9A-Z -]{3,10}$` (a postal code),
//! `^[a-z][a-z0-9-]{0,31}$` (a slug). When every class but the last repeats a fixed number of
//! times, a string matches exactly when its length fits and each byte is in the class of its
//! position: independent bit tests, instead of a DFA step that waits on the one before. Anything
//! else (alternation, groups, flags, Unicode classes, negated classes, `.`) is left to the DFA.

/// A set of ASCII bytes as a bit mask (bit `b` for byte `b`).
type Set = u128;

/// Most fixed positions a shape keeps before leaving the pattern to the DFA.
const MAX_FIXED: usize = 64;

/// Most distinct classes a shape tells apart (one bit each in [`Shape::member`]).
const MAX_CLASSES: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// For every byte, one bit per distinct class that holds it.
    member: Box<[u8; 256]>,
    /// The class bit of each fixed position, in order.
    fixed: Vec<u8>,
    /// The last, variable-length class: (class bit, least and most repetitions).
    tail: Option<(u8, usize, usize)>,
    /// When there is no tail, at most [`RANGED`] positions, and every class is one range of
    /// ASCII bytes (`[A-Z]`, `[0-9]`, `-`): the lowest and highest byte of each position, so 8
    /// positions are checked at once.
    ranges: Option<Ranged>,
}

/// The byte ranges of a fixed shape as two little-endian words of 8 positions each: the first
/// 8 positions and the last 8 (overlapping the first when there are fewer than 16). A string
/// is read as those two windows of its own bytes, with no copy: a copy into a buffer read back
/// as words stalls the load on the bytes just stored. Under 8 positions, the first word holds
/// them all and the second window is unused (every byte of it passes).
#[derive(Debug, Clone, Copy)]
struct Ranged {
    lo: [u64; 2],
    hi: [u64; 2],
}

/// Most positions [`Shape::ranges`] holds.
const RANGED: usize = 16;

const HIGHS: u64 = 0x8080_8080_8080_8080;

/// One range of ASCII bytes as (lowest, highest), if `set` is one.
fn range(set: Set) -> Option<(u8, u8)> {
    let lo = u8::try_from(set.trailing_zeros()).ok()?;
    let hi = u8::try_from(127u32.checked_sub(set.leading_zeros())?).ok()?;
    let width = u32::from(hi.checked_sub(lo)?) + 1;
    let ones: Set = if width == 128 {
        Set::MAX
    } else {
        (1 << width) - 1
    };
    (set == ones << lo && hi < 0x80).then_some((lo, hi))
}

impl Shape {
    /// The shape of `pattern`, if it has one (see the module comment).
    pub(crate) fn parse(pattern: &str) -> Option<Shape> {
        let body = pattern.strip_prefix('^')?.strip_suffix('$')?;
        if body.ends_with('\\') {
            return None;
        }
        let mut items: Vec<(Set, usize, usize)> = Vec::new();
        let mut rest = body.as_bytes();
        while let Some((&c, after)) = rest.split_first() {
            let (set, after) = match c {
                b'[' => class(after)?,
                b'\\' => {
                    let (&e, after) = after.split_first()?;
                    (escaped(e)?, after)
                }
                c if literal(c) => (1 << c, after),
                _ => return None,
            };
            let (min, max, after) = quantifier(after)?;
            items.push((set, min, max));
            rest = after;
        }
        let mut classes: Vec<Set> = Vec::new();
        let mut bit = |set: Set| -> Option<u8> {
            let i = match classes.iter().position(|c| *c == set) {
                Some(i) => i,
                None => {
                    classes.push(set);
                    classes.len() - 1
                }
            };
            (i < MAX_CLASSES).then(|| 1 << i)
        };
        let tail = match items.last() {
            Some(&(set, min, max)) if min != max => {
                items.pop();
                Some((bit(set)?, min, max))
            }
            _ => None,
        };
        let mut fixed = Vec::new();
        let mut spans: Vec<Option<(u8, u8)>> = Vec::new();
        for (set, min, max) in items {
            if min != max || fixed.len() + min > MAX_FIXED {
                return None;
            }
            fixed.extend(std::iter::repeat_n(bit(set)?, min));
            spans.extend(std::iter::repeat_n(range(set), min));
        }
        let ranges = if tail.is_none() && spans.len() <= RANGED {
            spans
                .iter()
                .copied()
                .collect::<Option<Vec<(u8, u8)>>>()
                .map(|spans| Ranged::new(&spans))
        } else {
            None
        };
        let mut member = Box::new([0u8; 256]);
        for (i, set) in classes.iter().enumerate() {
            for b in 0..128u8 {
                if (set >> b) & 1 == 1
                    && let Some(m) = member.get_mut(usize::from(b))
                {
                    *m |= 1 << i;
                }
            }
        }
        Some(Shape {
            member,
            fixed,
            tail,
            ranges,
        })
    }

    /// The length of every match, when it is fixed and no class holds a byte JSON escapes
    /// (`"`, `\`, controls): then a string's raw bytes are its text, and its closing quote is
    /// found by position instead of by a scan.
    pub(crate) fn fixed_plain_len(&self) -> Option<usize> {
        let plain = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
        let escapes_free = (0..=255u8).all(|b| plain(b) || self.member[usize::from(b)] == 0);
        (self.tail.is_none() && escapes_free).then_some(self.fixed.len())
    }

    #[inline]
    pub(crate) fn is_match(&self, s: &[u8]) -> bool {
        match &self.ranges {
            Some(r) => s.len() == self.fixed.len() && r.holds(s),
            None => self.by_table(s),
        }
    }

    /// A string against the class bits of each position.
    fn by_table(&self, s: &[u8]) -> bool {
        let n = self.fixed.len();
        let (head, rest) = match self.tail {
            None if s.len() == n => (s, &[][..]),
            Some((_, min, max)) if s.len() >= n && (min..=max).contains(&(s.len() - n)) => {
                s.split_at(n)
            }
            _ => return false,
        };
        // No early exit: the tests are independent, and a branch per byte would cost more.
        let mut ok = true;
        for (bit, &b) in self.fixed.iter().zip(head) {
            ok &= self.member[usize::from(b)] & bit != 0;
        }
        if let Some((bit, ..)) = self.tail {
            ok &= rest.iter().all(|&b| self.member[usize::from(b)] & bit != 0);
        }
        ok
    }
}

impl Ranged {
    /// The words of `spans` (each position's lowest and highest byte; at most [`RANGED`]).
    fn new(spans: &[(u8, u8)]) -> Ranged {
        // The first 8 positions and the last 8; under 8 positions the second window is unused,
        // its bytes zeros that pass (0 to 0x7F).
        let first = spans.get(..8).unwrap_or(spans);
        let last = (spans.len().checked_sub(8))
            .and_then(|at| spans.get(at..))
            .unwrap_or(&[]);
        let word = |window: &[(u8, u8)], pick: fn(&(u8, u8)) -> u8, unused: u8| {
            let mut bytes = [unused; 8];
            for (b, span) in bytes.iter_mut().zip(window) {
                *b = pick(span);
            }
            u64::from_le_bytes(bytes)
        };
        Ranged {
            lo: [word(first, |s| s.0, 0), word(last, |s| s.0, 0)],
            hi: [word(first, |s| s.1, 0x7F), word(last, |s| s.1, 0x7F)],
        }
    }

    /// Whether each byte of `s` (exactly as long as the shape) is in its position's range.
    #[inline(always)]
    fn holds(self, s: &[u8]) -> bool {
        let (w0, w1) = match (s.first_chunk::<8>(), s.last_chunk::<8>()) {
            (Some(a), Some(b)) => (u64::from_le_bytes(*a), u64::from_le_bytes(*b)),
            // Under 8 bytes: gathered in a register (no store for the load to wait on).
            _ => (
                s.iter().rev().fold(0u64, |w, b| (w << 8) | u64::from(*b)),
                0,
            ),
        };
        // Per byte b below 0x80: (b | 0x80) - lo keeps its high bit when b >= lo, and
        // (hi | 0x80) - b when b <= hi, neither borrowing from the next byte. A byte of 0x80
        // or above (any byte of a character beyond ASCII) fails on its own high bit (`!w`):
        // the subtractions alone would pass some, such as 0xC2 against `[0-9]` (0xB9 - 0xC2
        // wraps to a byte with its high bit set).
        let ok = |w: u64, lo: u64, hi: u64| {
            let t = (w | HIGHS).wrapping_sub(lo);
            let u = (hi | HIGHS).wrapping_sub(w);
            t & u & !w & HIGHS == HIGHS
        };
        ok(w0, self.lo[0], self.hi[0]) & ok(w1, self.lo[1], self.hi[1])
    }
}

/// An ASCII character that stands for itself outside a class.
fn literal(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b" -_:/@#%&=,;'\"<>!~`".contains(&c)
}

/// `\` followed by `e`: punctuation stands for itself; `\d`, `\w`, `\s` are Unicode classes in
/// the regex syntax and are not shapes.
fn escaped(e: u8) -> Option<Set> {
    // `\<` and `\>` are word boundaries.
    (e.is_ascii_punctuation() && e != b'<' && e != b'>').then(|| 1 << e)
}

/// A bracket class after its `[`: ASCII literals, escaped punctuation and ranges, no negation.
fn class(mut rest: &[u8]) -> Option<(Set, &[u8])> {
    // `--`, `&&` and `~~` are set operations, nested `[` a class or a named class.
    let end = rest
        .iter()
        .skip(1)
        .position(|&c| c == b']')
        .map_or(rest.len(), |p| p + 1);
    if rest.get(..end)?.windows(2).any(|w| w == b"--") {
        return None;
    }
    let mut set: Set = 0;
    let mut first = true;
    loop {
        let (&c, after) = rest.split_first()?;
        let (lo, after) = match c {
            b']' if !first => return Some((set, after)),
            b'^' if first => return None,
            b'[' | b']' | b'&' | b'~' => return None,
            b'\\' => {
                let (&e, after) = after.split_first()?;
                if !e.is_ascii_punctuation() || e == b'<' || e == b'>' {
                    return None;
                }
                (e, after)
            }
            c if c.is_ascii() && !c.is_ascii_control() => (c, after),
            _ => return None,
        };
        first = false;
        match after {
            [b'-', b'\\' | b'[', ..] => return None,
            [b'-', hi, tail @ ..] if *hi != b']' => {
                if !hi.is_ascii() || hi.is_ascii_control() || *hi < lo {
                    return None;
                }
                for b in lo..=*hi {
                    set |= 1 << b;
                }
                rest = tail;
            }
            _ => {
                set |= 1 << lo;
                rest = after;
            }
        }
    }
}

/// An optional greedy quantifier: (least, most, what follows).
fn quantifier(rest: &[u8]) -> Option<(usize, usize, &[u8])> {
    match rest.split_first() {
        Some((b'?', after)) => Some((0, 1, lazy(after)?)),
        Some((b'*', after)) => Some((0, usize::MAX, lazy(after)?)),
        Some((b'+', after)) => Some((1, usize::MAX, lazy(after)?)),
        Some((b'{', after)) => {
            let close = after.iter().position(|&c| c == b'}')?;
            let inside = std::str::from_utf8(after.get(..close)?).ok()?;
            let number = |t: &str| -> Option<usize> {
                (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
                    .then(|| t.parse().ok())
                    .flatten()
                    .filter(|n| *n <= 1000)
            };
            let (min, max) = match inside.split_once(',') {
                None => (number(inside)?, number(inside)?),
                Some((lo, "")) => (number(lo)?, usize::MAX),
                Some((lo, hi)) => (number(lo)?, number(hi)?),
            };
            (min <= max).then_some((min, max, lazy(after.get(close + 1..)?)?))
        }
        _ => Some((1, 1, rest)),
    }
}

/// Lazy (`?`) and possessive forms change nothing about whether a string matches, but keep
/// the parser honest: anything unexpected after a quantifier is not a shape.
fn lazy(rest: &[u8]) -> Option<&[u8]> {
    match rest.first() {
        Some(b'?' | b'+' | b'*' | b'{') => None,
        _ => Some(rest),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use regex::Regex;

    #[test]
    fn shapes_agree_with_the_regex_engine() {
        let shaped = [
            "^[A-Z]{3}-[0-9]{6}$",
            "^[0-9A-Z -]{3,10}$",
            "^[a-z][a-z0-9-]{0,31}$",
            "^$",
            "^a$",
            "^ab?$",
            "^[a-c]*$",
            "^x[0-9]+$",
            "^\\.\\-[\\]a]{2}$",
            "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            "^[-a]{1,}$",
            "^[a-]{2}$",
            "^[a-z]{16}$",
            "^[a-z]{17}$",
            "^[a-z]{8}$",
            "^[ -~]{3}$",
        ];
        let not_shaped = [
            "[A-Z]{3}",
            "^[A-Z]{3}",
            "^a|b$",
            "^(ab)$",
            "^\\d{3}$",
            "^[^a]$",
            "^.$",
            "^a*b*$",
            "^a??$",
            "^(?i)a$",
            "^[\\d]$",
            "^é$",
            "^a{2,1}$",
            "^a\\$",
            "^[a-\\]]$",
        ];
        let hays = [
            "",
            "a",
            "ab",
            "abc",
            "ABC-123456",
            "ABC-12345",
            "ABC-1234567",
            "abc-123456",
            "AB1 2CD",
            "12",
            "x",
            "x0",
            "x",
            "x01234",
            "slug-1",
            "Slug",
            "a-",
            "-a",
            ".-]a",
            ".-aa",
            "a\n",
            "ab\n",
            "é",
            "aé",
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "2eb8aa08-aa98-11ea-b4aa-73b441d16380",
            "--",
            "aa",
            "a-a",
            "[a]",
            "ABC-1234é",
            "ABC-12345\u{7f}",
            "ABC-12345:",
            "ABC-12345/",
            "@BC-123456",
            "[BC-123456",
            "aaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaa{",
            "aaaaaaaaaaaaaaa`",
            "aaaaaaaaaaaaaaaa{",
            "aaaaaaaa",
            "aaaaaaa{",
            "`aaaaaaa",
            "\u{0}\u{7f}",
            "é",
            "~ !",
        ];
        for p in shaped {
            let shape = Shape::parse(p).unwrap_or_else(|| panic!("{p} has a shape"));
            let re = Regex::new(p).unwrap();
            for h in hays {
                assert_eq!(
                    shape.is_match(h.as_bytes()),
                    re.is_match(h),
                    "{p:?} on {h:?}"
                );
            }
        }
        // Every ASCII character and a two-byte one at every position of a ranged shape.
        for (p, good) in [
            ("^[A-Z]{3}-[0-9]{6}$", "ABC-123456"),
            ("^[ -~][a-z]{14}[0-9]$", "~abcdefghijklmn7"),
            ("^[0-9]{5}$", "12345"),
            ("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "2024-01-31"),
            ("^[ -/]{16}$", "-./ !-./ !-./ !-"),
            // Two windows overlapping on all but a few positions, one window, under 8.
            ("^[a-f]{2}[0-9]{9}[G-Z]{2}$", "ab123456789GZ"),
            ("^[A-Z]{8}$", "ABCDEFGH"),
            ("^x[0-9]{6}y$", "x123456y"),
            ("^[0-9][a-z]$", "7q"),
            ("^[0-9]{7}$", "1234567"),
        ] {
            let shape = Shape::parse(p).unwrap();
            assert!(shape.ranges.is_some(), "{p}");
            let re = Regex::new(p).unwrap();
            assert!(shape.is_match(good.as_bytes()));
            for at in 0..good.len() {
                for c in (0..0x80u8).map(char::from).chain(['é']) {
                    let mut h = good.to_string();
                    h.replace_range(at..=at, c.encode_utf8(&mut [0; 4]));
                    assert_eq!(
                        shape.is_match(h.as_bytes()),
                        re.is_match(&h),
                        "{p:?} on {h:?}"
                    );
                }
                // Characters beyond ASCII in place of as many bytes, so the length still fits:
                // every byte of theirs must fail, whatever the classes' ranges.
                for c in [
                    '¹',
                    'ù',
                    '½',
                    '\u{80}',
                    '\u{7ff}',
                    '€',
                    '\u{ffff}',
                    '😀',
                    '\u{10ffff}',
                ] {
                    let len = c.len_utf8();
                    if at + len > good.len() {
                        continue;
                    }
                    let mut h = good.to_string();
                    h.replace_range(at..at + len, c.encode_utf8(&mut [0; 4]));
                    assert_eq!(h.len(), good.len());
                    assert!(!re.is_match(&h), "{p:?} on {h:?}");
                    assert!(!shape.is_match(h.as_bytes()), "{p:?} on {h:?}");
                }
            }
        }
        for p in not_shaped {
            assert!(Shape::parse(p).is_none(), "{p}");
        }
    }

    #[test]
    fn ranged_windows_agree_with_the_class_table_on_random_shapes() {
        // Random shapes of 0 to 16 one-range positions against random strings near them: the
        // two windows (and the register under 8 bytes) decide as the table of classes does.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let printable = |c: u8| c.is_ascii_alphanumeric();
        for _ in 0..3000 {
            let len = next(17) as usize;
            // A shape tells apart at most 8 classes: positions take theirs from a few.
            let pool: Vec<(u8, u8)> = (0..1 + next(6))
                .map(|_| {
                    loop {
                        let a = b'0' + next(75) as u8;
                        let b = a + next(u64::from(b'z' - a) + 1) as u8;
                        if printable(a) && printable(b) {
                            break (a, b);
                        }
                    }
                })
                .collect();
            let mut pattern = String::from("^");
            let mut spans = Vec::new();
            for _ in 0..len {
                let (lo, hi) = pool[next(pool.len() as u64) as usize];
                pattern.push_str(&format!("[{}-{}]", char::from(lo), char::from(hi)));
                spans.push((lo, hi));
            }
            pattern.push('$');
            let shape = Shape::parse(&pattern).unwrap_or_else(|| panic!("{pattern} has a shape"));
            assert!(shape.ranges.is_some(), "{pattern}");
            for _ in 0..40 {
                // Mostly in range, some bytes out of it or beyond ASCII, some lengths off by one.
                let n = match next(10) {
                    0 => len + 1,
                    1 => len.saturating_sub(1),
                    _ => len,
                };
                let text: Vec<u8> = (0..n)
                    .map(|i| match (spans.get(i), next(12)) {
                        (Some(&(lo, hi)), 0..=8) => lo + next(u64::from(hi - lo) + 1) as u8,
                        (_, 9) => 0x80 + next(0x80) as u8,
                        _ => next(0x80) as u8,
                    })
                    .collect();
                let table = shape.by_table(&text);
                let direct = text.len() == len
                    && text
                        .iter()
                        .zip(&spans)
                        .all(|(c, (lo, hi))| (lo..=hi).contains(&c));
                assert_eq!(table, direct, "{pattern} on {text:?}");
                assert_eq!(shape.is_match(&text), direct, "{pattern} on {text:?}");
            }
        }
    }
}
