//! `pattern` / `patternProperties` matching. Small patterns (most API patterns: SKUs, postal
//! codes, slugs) are compiled ahead of time into a dense DFA, which matches without the regex
//! engine's per-call setup; anything larger or needing look-around-like assertions the DFA
//! cannot do (Unicode word boundaries) uses the `regex` crate. Both are linear in the input and
//! parse the same syntax, so they agree.

use regex::{Regex, RegexBuilder};
use regex_automata::Input;
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense::{Builder, Config, DFA};

/// Compiled regexes are capped so a hostile policy cannot make a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Patterns whose DFA would be larger than this use the regex engine instead.
const DFA_SIZE_LIMIT: usize = 64 * 1024;

pub(crate) struct Pattern {
    dfa: Option<DFA<Vec<u32>>>,
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
            .ok();
        Ok(Pattern { dfa, re })
    }

    /// Unanchored search, as JSON Schema specifies (`^`/`$` anchor explicitly).
    pub(crate) fn is_match(&self, s: &str) -> bool {
        if let Some(dfa) = &self.dfa
            && let Ok(found) = dfa.try_search_fwd(&Input::new(s).earliest(true))
        {
            return found.is_some();
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
