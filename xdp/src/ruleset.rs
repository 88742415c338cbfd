//! The working copy a change starts from: the rules of the active table set, read from its
//! slots in table order. A single change finds its rule with a scan (a million rules scan in
//! a few milliseconds, far less than hashing them all); a bulk change builds an index first.

use ipnet::IpNet;

use crate::tables::{FastMap, TableRule};

pub(crate) struct RuleSet {
    rules: Vec<TableRule>,
    /// (allow, network) to position, when built.
    index: Option<FastMap<(bool, IpNet), usize>>,
}

impl RuleSet {
    pub(crate) fn new(rules: Vec<TableRule>) -> Self {
        RuleSet { rules, index: None }
    }

    /// The same set, with an index for many lookups.
    pub(crate) fn indexed(mut self) -> Self {
        self.index = Some(
            self.rules
                .iter()
                .enumerate()
                .map(|(i, r)| ((r.allow, r.net), i))
                .collect(),
        );
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    pub(crate) fn as_slice(&self) -> &[TableRule] {
        &self.rules
    }

    fn position(&self, allow: bool, net: IpNet) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(&(allow, net)).copied(),
            None => self
                .rules
                .iter()
                .position(|r| r.allow == allow && r.net == net),
        }
    }

    pub(crate) fn contains(&self, allow: bool, net: IpNet) -> bool {
        self.position(allow, net).is_some()
    }

    /// Adds `r`, or replaces the rule of its list for the same network; returns that rule.
    pub(crate) fn upsert(&mut self, r: TableRule) -> Option<TableRule> {
        if let Some(i) = self.position(r.allow, r.net) {
            return Some(std::mem::replace(&mut self.rules[i], r));
        }
        if let Some(ix) = &mut self.index {
            ix.insert((r.allow, r.net), self.rules.len());
        }
        self.rules.push(r);
        None
    }

    /// Removes the rule of a list for exactly `net`.
    pub(crate) fn remove(&mut self, allow: bool, net: IpNet) -> Option<TableRule> {
        let i = self.position(allow, net)?;
        let gone = self.rules.swap_remove(i);
        if let Some(ix) = &mut self.index {
            ix.remove(&(allow, net));
            if let Some(moved) = self.rules.get(i) {
                ix.insert((moved.allow, moved.net), i);
            }
        }
        Some(gone)
    }

    /// Removes every rule `doomed` picks; returns them.
    pub(crate) fn remove_where(&mut self, doomed: impl Fn(&TableRule) -> bool) -> Vec<TableRule> {
        let (gone, kept) = std::mem::take(&mut self.rules)
            .into_iter()
            .partition(|r| doomed(r));
        self.rules = kept;
        self.index = None;
        gone
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule(net: &str, allow: bool, origin: u8) -> TableRule {
        TableRule {
            net: net.parse().unwrap(),
            allow,
            expires_ns: 0,
            origin,
        }
    }

    #[test]
    fn upsert_replace_and_remove_with_and_without_index() {
        for indexed in [false, true] {
            let mut s = RuleSet::new(vec![
                rule("198.18.0.0/24", false, 0),
                rule("198.18.0.0/24", true, 0),
                rule("2001:db8::/48", false, 0),
            ]);
            if indexed {
                s = s.indexed();
            }
            let n = |t: &str| t.parse::<IpNet>().unwrap();
            assert!(s.contains(true, n("198.18.0.0/24")));
            assert!(!s.contains(true, n("2001:db8::/48")));
            let old = s.upsert(rule("198.18.0.0/24", false, 2)).unwrap();
            assert_eq!(old.origin, 0);
            assert!(s.upsert(rule("198.18.1.0/24", false, 0)).is_none());
            assert_eq!(s.len(), 4);
            // Removing the first moves the last into its place; both stay findable.
            assert!(s.remove(false, n("198.18.0.0/24")).is_some());
            assert!(s.contains(false, n("198.18.1.0/24")));
            assert!(s.contains(false, n("2001:db8::/48")));
            assert!(s.remove(false, n("198.18.0.0/24")).is_none());
            let gone = s.remove_where(|r| !r.allow);
            assert_eq!(gone.len(), 2);
            assert_eq!(s.as_slice(), &[rule("198.18.0.0/24", true, 0)]);
        }
    }
}
