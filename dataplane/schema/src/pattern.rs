//! `pattern` / `patternProperties` matching. Small patterns (most API patterns: SKUs, postal
//! codes, slugs) are compiled ahead of time into a dense DFA, which matches without the regex
//! engine's per-call setup; anything larger or needing look-around-like assertions the DFA
//! cannot do (Unicode word boundaries) uses the `regex` crate. Both are linear in the input and
//! parse the same syntax, so they agree.

use regex::{Regex, RegexBuilder};
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense::{Builder, Config, DFA};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;

use crate::pattern_shape::Shape;

/// Compiled regexes are capped so a hostile policy cannot make a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Patterns whose DFA would be larger than this use the regex engine instead.
const DFA_SIZE_LIMIT: usize = 64 * 1024;

pub(crate) struct Pattern {
    /// The DFA and its start state for a search from the beginning of a string.
    dfa: Option<(DFA<Vec<u32>>, StateID)>,
    /// A fixed sequence of ASCII classes, checked without the DFA (see `pattern_shape`).
    shape: Option<Shape>,
    re: Regex,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pattern")
            .field("re", &self.re.as_str())
            .field("dfa", &self.dfa.is_some())
            .finish()
    }
}

/// Walks the DFA over `hay` from `start`: whether some match exists (the first match state
/// decides), or `None` if the DFA gave up on a byte (a quit state) and the regex must decide.
/// The search loop of regex-automata without its per-call setup, which dominates on the short
/// strings API patterns see.
fn run(dfa: &DFA<Vec<u32>>, start: StateID, hay: &[u8]) -> Option<bool> {
    let mut sid = start;
    if dfa.is_match_state(sid) {
        return Some(true);
    }
    for &b in hay {
        sid = dfa.next_state(sid, b);
        if dfa.is_special_state(sid) {
            if dfa.is_match_state(sid) {
                return Some(true);
            }
            if dfa.is_dead_state(sid) {
                return Some(false);
            }
            if dfa.is_quit_state(sid) {
                return None;
            }
        }
    }
    Some(dfa.is_match_state(dfa.next_eoi_state(sid)))
}

impl Pattern {
    pub(crate) fn new(p: &str) -> Result<Pattern, regex::Error> {
        let re = RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).build()?;
        let dfa = Builder::new()
            .configure(
                Config::new()
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(4 * DFA_SIZE_LIMIT)),
            )
            .build(p)
            .ok()
            .and_then(|dfa| {
                let start = dfa.start_state(&start::Config::new()).ok()?;
                Some((dfa, start))
            });
        let shape = Shape::parse(p);
        Ok(Pattern { dfa, shape, re })
    }

    /// The pattern as a sequence of ASCII classes, when it is one.
    pub(crate) fn shape(&self) -> Option<&Shape> {
        self.shape.as_ref()
    }

    /// Unanchored search, as JSON Schema specifies (`^`/`$` anchor explicitly).
    pub(crate) fn is_match(&self, s: &str) -> bool {
        if let Some(shape) = &self.shape {
            return shape.is_match(s.as_bytes());
        }
        if let Some((dfa, start)) = &self.dfa
            && let Some(found) = run(dfa, *start, s.as_bytes())
        {
            return found;
        }
        self.re.is_match(s)
    }

    #[cfg(test)]
    fn uses_dfa(&self) -> bool {
        self.dfa.is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn dfa_and_regex_agree() {
        let pats = [
            "^[A-Z]{3}-[0-9]{6}$",
            "a+b",
            "^$",
            "",
            "^\\p{L}+$",
            "\\bfoo\\b",
            "é|ß",
            "x*",
            "b$",
            "^a",
            "[0-9]{2}",
            "(?-u:\\b)ab",
            "^[A-Z]{3}-[0-9]{6}$",
            "^[a-z][a-z0-9-]{0,31}$",
            "^a\\<b$",
        ];
        let hays = [
            "ABC-123456",
            "ABC-12345",
            "xaab",
            "",
            "foo bar",
            "Straße",
            "日本",
            "é",
            "xx",
            "ab",
            "ba",
            "a12",
            "xab",
        ];
        for p in pats {
            let pat = Pattern::new(p).unwrap();
            let re = Regex::new(p).unwrap();
            for h in hays {
                assert_eq!(pat.is_match(h), re.is_match(h), "{p:?} on {h:?}");
            }
        }
        assert!(Pattern::new("^[a-z][a-z0-9-]{0,31}$").unwrap().uses_dfa());
        assert!(Pattern::new("(?=a)").is_err());
    }
}
