//! The object pass of the validator walk: every member is visited once, and `properties`,
//! `patternProperties`, `additionalProperties`, `propertyNames`, `required` and the dependency
//! keywords are all decided in that one pass (presence is tracked per name slot).

use crate::error::Reason;
use crate::evaluated::{Evaluated, note};
use crate::node::{JsonNode, StrNode};
use crate::tree::{ObjectKw, Schema};
use crate::walk::{Seg, Walker};

impl<'t, 'a> Walker<'t, 'a> {
    pub(crate) fn object<J: JsonNode<'a>>(
        &mut self,
        o: &'t ObjectKw,
        inst: J,
        n: usize,
        collect: bool,
        mut ev: Option<&mut Evaluated>,
    ) -> bool {
        let slots = o.props.len();
        let mut seen_small = 0u64;
        let mut seen_big = if slots > 64 {
            vec![false; slots]
        } else {
            Vec::new()
        };
        let mut mark = |s: u32| {
            if slots > 64 {
                if let Some(b) = seen_big.get_mut(s as usize) {
                    *b = true;
                }
            } else {
                seen_small |= 1u64 << s;
            }
        };
        let mut ok = true;
        let stop = |w: &Self, ok: bool| !ok && (!collect || w.full() || w.too_deep);
        for (i, (key, val)) in inst.members().take(n).enumerate() {
            if let Some((sid, _)) = &o.property_names {
                let good = self.descend(Seg::Key(key), *sid, StrNode(key), collect);
                ok &= good;
            }
            let mut matched = false;
            if let Some(slot) = o.names.get(key) {
                mark(slot);
                if let Some(Some(sid)) = o.props.get(slot as usize) {
                    matched = true;
                    ok &= self.descend(Seg::Key(key), *sid, val, collect);
                }
            }
            for (re, sid) in &o.patterns {
                if re.is_match(key) {
                    matched = true;
                    ok &= self.descend(Seg::Key(key), *sid, val, collect);
                }
            }
            if matched {
                note(&mut ev, i);
            } else if let Some((sid, loc)) = &o.additional {
                note(&mut ev, i);
                if let Some(Schema::Bool(false)) = self.tree.schemas.get(*sid) {
                    self.path.push(Seg::Key(key));
                    self.record(
                        collect,
                        Reason::SchemaViolation,
                        "additionalProperties",
                        loc,
                    );
                    self.path.pop();
                    ok = false;
                } else {
                    ok &= self.descend(Seg::Key(key), *sid, val, collect);
                }
            }
            if stop(self, ok) {
                return false;
            }
        }
        let seen = |s: u32| {
            if slots > 64 {
                seen_big.get(s as usize).copied().unwrap_or(false)
            } else {
                seen_small & (1u64 << s) != 0
            }
        };
        if o.required.iter().any(|s| !seen(*s)) {
            self.record(
                collect,
                Reason::SchemaViolation,
                "required",
                &o.required_loc,
            );
            ok = false;
        }
        for (s, deps) in &o.dep_required {
            if seen(*s) && deps.iter().any(|d| !seen(*d)) {
                self.record(
                    collect,
                    Reason::SchemaViolation,
                    o.dep_required_kw.0,
                    &o.dep_required_kw.1,
                );
                ok = false;
            }
        }
        for (s, sid) in &o.dep_schemas {
            if stop(self, ok) {
                return false;
            }
            if seen(*s) {
                ok &= self.validate(*sid, inst, collect, ev.as_deref_mut());
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::{CompileOptions, Dialect, Limits, Validator};
    use serde_json::json;

    #[test]
    fn one_pass_reports_every_member_rule() {
        let s = json!({
            "properties": {"a": {"type": "integer"}},
            "patternProperties": {"^x-": {"type": "string"}, "^x-n": {"maxLength": 1}},
            "additionalProperties": {"type": "boolean"},
            "propertyNames": {"maxLength": 5},
            "dependentRequired": {"a": ["b"]}
        });
        let v = Validator::compile(&s, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
        let mut ok = br#"{"a": 1, "b": true, "x-n": "s", "x-y": "yy"}"#.to_vec();
        assert!(v.validate_bytes(&mut ok, &Limits::default()).is_ok());
        let mut bad = br#"{"a": "1", "x-n": "long", "zz": 1, "toolong": true}"#.to_vec();
        let r = v.validate_bytes(&mut bad, &Limits::default()).unwrap_err();
        let got: Vec<(&str, &str)> = r
            .violations
            .iter()
            .map(|x| (x.instance_location.as_str(), x.keyword))
            .collect();
        // Violations come in document order, each member checked against every rule.
        assert_eq!(
            got,
            [
                ("/a", "type"),
                ("/x-n", "maxLength"),
                ("/zz", "type"),
                ("/toolong", "maxLength"),
                ("", "dependentRequired"),
            ]
        );
    }
}
