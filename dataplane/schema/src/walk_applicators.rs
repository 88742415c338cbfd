//! The applicator keywords of the validator walk: those that apply subschemas to the elements of
//! an array (`prefixItems`, `items`, `contains`) and the combinators that apply them to the same
//! instance (`allOf`, `anyOf`, `oneOf`, `not`, `if`). Each records what it evaluated in `ev`
//! when an `unevaluated*` keyword asks (see `evaluated`).

use crate::evaluated::{Evaluated, note};
use crate::node::{JsonNode, Kind};
use crate::tree::{Kw, KwKind};
use crate::walk::{Seg, Walker};

impl<'t, 'a> Walker<'t, 'a> {
    pub(crate) fn array<J: JsonNode<'a>>(
        &mut self,
        kw: &'t Kw,
        inst: J,
        kind: Kind<'a>,
        collect: bool,
        mut ev: Option<&mut Evaluated>,
    ) -> bool {
        let Kind::Array(_) = kind else { return true };
        let (skip, list, schema) = match &kw.kind {
            KwKind::PrefixItems(list) => (0, &list[..], None),
            KwKind::Items { skip, schema } => (*skip, &[][..], Some(*schema)),
            KwKind::Contains { schema, min, max } => {
                return self.contains(kw, inst, (*schema, *min, *max), collect, ev);
            }
            _ => return true,
        };
        let mut ok = true;
        for (i, item) in inst.items().enumerate().skip(skip) {
            let sid = match (list.get(i), schema) {
                (Some(&s), _) | (None, Some(s)) => s,
                (None, None) => break,
            };
            if schema.is_none() {
                note(&mut ev, i);
            }
            if !self.descend(Seg::Index(i), sid, item, collect) {
                ok = false;
                if !collect || self.full() || self.too_deep {
                    break;
                }
            }
        }
        if let (Some(e), Some(_)) = (ev, schema) {
            e.mark_from(skip);
        }
        ok
    }

    fn contains<J: JsonNode<'a>>(
        &mut self,
        kw: &'t Kw,
        inst: J,
        (schema, min, max): (usize, usize, Option<usize>),
        collect: bool,
        mut ev: Option<&mut Evaluated>,
    ) -> bool {
        let mut hits = 0usize;
        for (i, item) in inst.items().enumerate() {
            if self.descend(Seg::Index(i), schema, item, false) {
                hits += 1;
                note(&mut ev, i);
                // Annotations need every match; a plain check stops once the answer is known.
                if ev.is_none() && (max.is_none() && hits >= min || max.is_some_and(|m| hits > m)) {
                    break;
                }
            }
            if self.too_deep {
                return false;
            }
        }
        let ok = hits >= min && max.is_none_or(|m| hits <= m);
        self.check(ok, collect, kw)
    }

    pub(crate) fn combinator<J: JsonNode<'a>>(
        &mut self,
        kw: &'t Kw,
        inst: J,
        collect: bool,
        mut ev: Option<&mut Evaluated>,
    ) -> bool {
        match &kw.kind {
            KwKind::AllOf(list) => {
                let mut ok = true;
                for s in list {
                    if !self.validate(*s, inst, collect, ev.as_deref_mut()) {
                        ok = false;
                        if !collect || self.too_deep {
                            break;
                        }
                    }
                }
                ok
            }
            KwKind::AnyOf(list) => {
                let ok = match ev {
                    None => list.iter().any(|s| self.validate(*s, inst, false, None)),
                    // Every valid branch contributes annotations: try them all.
                    Some(e) => self.valid_branches(list, inst, e) > 0,
                };
                self.check(ok, collect, kw)
            }
            KwKind::OneOf(list) => {
                let hits = match ev {
                    None => {
                        let mut hits = 0;
                        for s in list {
                            if self.validate(*s, inst, false, None) {
                                hits += 1;
                                if hits > 1 {
                                    break;
                                }
                            }
                        }
                        hits
                    }
                    Some(e) => self.valid_branches(list, inst, e),
                };
                self.check(hits == 1, collect, kw)
            }
            KwKind::Not(s) => {
                let ok = !self.validate(*s, inst, false, None);
                self.check(ok, collect, kw)
            }
            KwKind::If { cond, then, els } => {
                let holds = match ev.as_deref_mut() {
                    None => self.validate(*cond, inst, false, None),
                    Some(e) => self.valid_branches(std::slice::from_ref(cond), inst, e) == 1,
                };
                match if holds { then } else { els } {
                    Some(b) => self.validate(*b, inst, collect, ev),
                    None => true,
                }
            }
            _ => true,
        }
    }

    /// How many of `list` `inst` satisfies, merging the annotations of those into `ev`.
    fn valid_branches<J: JsonNode<'a>>(
        &mut self,
        list: &[usize],
        inst: J,
        ev: &mut Evaluated,
    ) -> usize {
        let mut hits = 0;
        for s in list {
            let mut branch = Evaluated::default();
            if self.validate(*s, inst, false, Some(&mut branch)) {
                hits += 1;
                ev.merge(&branch);
            }
            if self.too_deep {
                break;
            }
        }
        hits
    }
}
