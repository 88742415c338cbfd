//! Turning parameter strings into JSON values as OpenAPI defines: the schema's `type` decides
//! whether `5` is the integer 5 or the string "5". Schemas without a plain `type` (`oneOf`,
//! no type at all) get every reading tried, and the value passes if one of them validates.

use serde_json::{Map, Number, Value};

/// The primitive types a schema admits, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types(u8);

impl Types {
    pub const INTEGER: Types = Types(1);
    pub const NUMBER: Types = Types(2);
    pub const BOOLEAN: Types = Types(4);
    pub const STRING: Types = Types(8);
    pub const NULL: Types = Types(16);
    /// No usable `type`: try every reading.
    pub const ANY: Types = Types(31);

    fn has(self, t: Types) -> bool {
        self.0 & t.0 != 0
    }

    /// The types named by a schema's `type` (a string, or an array in 3.1).
    pub(crate) fn of(schema: &Value) -> Types {
        let names: Vec<&str> = match schema.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Types::ANY,
        };
        let mut t = Types(0);
        for n in names {
            t.0 |= match n {
                "integer" => Types::INTEGER.0,
                "number" => Types::NUMBER.0,
                "boolean" => Types::BOOLEAN.0,
                "string" => Types::STRING.0,
                "null" => Types::NULL.0,
                _ => 0,
            };
        }
        if schema.get("nullable") == Some(&Value::Bool(true)) {
            t.0 |= Types::NULL.0;
        }
        if t.0 == 0 { Types::ANY } else { t }
    }
}

/// How a parameter's value is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One primitive.
    Scalar(Types),
    /// An array of primitives.
    Array(Types),
    /// An object with these properties (name and type); others read as strings.
    Object(Vec<(String, Types)>),
}

/// The readings of `s` for `types`, most specific first.
pub(crate) fn readings(s: &str, types: Types) -> Vec<Value> {
    let mut out = Vec::with_capacity(2);
    if types.has(Types::INTEGER) || types.has(Types::NUMBER) {
        if let Some(n) = parse_number(s, types.has(Types::NUMBER)) {
            out.push(Value::Number(n));
        }
    }
    if types.has(Types::BOOLEAN) && (s == "true" || s == "false") {
        out.push(Value::Bool(s == "true"));
    }
    if types.has(Types::NULL) && (s == "null" || s.is_empty()) {
        out.push(Value::Null);
    }
    if types.has(Types::STRING) {
        out.push(Value::String(s.to_string()));
    }
    out
}

/// A decimal number as JSON writes it (no `+`, no leading zeros, no hex, no `inf`/`nan`).
fn parse_number(s: &str, float_ok: bool) -> Option<Number> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let first = digits.bytes().next()?;
    if !first.is_ascii_digit()
        || (first == b'0' && digits.len() > 1 && digits.as_bytes()[1].is_ascii_digit())
    {
        return None;
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Number::from(i));
        }
        if let Ok(u) = s.parse::<u64>() {
            return Some(Number::from(u));
        }
    }
    if !digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    // `1.0` is an integer in JSON Schema; `1.5` is not, and vigil-schema decides that.
    if !float_ok && f.fract() != 0.0 {
        return None;
    }
    Number::from_f64(f)
}

/// The readings of an array parameter: each element read with `types`; the element readings
/// are combined by taking each element's first reading, then (if that fails) all as strings.
pub(crate) fn array_readings(items: &[&str], types: Types) -> Vec<Value> {
    let mut first = Vec::with_capacity(items.len());
    for item in items {
        match readings(item, types).into_iter().next() {
            Some(v) => first.push(v),
            None => return Vec::new(),
        }
    }
    let mut out = vec![Value::Array(first)];
    if types.has(Types::STRING) {
        let strings: Vec<Value> = items.iter().map(|s| Value::String((*s).into())).collect();
        if out[0].as_array() != Some(&strings) {
            out.push(Value::Array(strings));
        }
    }
    out
}

/// An object from name/value pairs, each value read with its property's type.
pub(crate) fn object_reading(pairs: &[(&str, &str)], props: &[(String, Types)]) -> Option<Value> {
    let mut map = Map::new();
    for (k, v) in pairs {
        let types = props
            .iter()
            .find(|(name, _)| name == k)
            .map_or(Types::ANY, |(_, t)| *t);
        // An unknown member is read as a string unless that is impossible.
        let types = if types == Types::ANY {
            Types::STRING
        } else {
            types
        };
        map.insert((*k).to_string(), readings(v, types).into_iter().next()?);
    }
    Some(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_from_schemas() {
        assert_eq!(Types::of(&json!({"type": "integer"})), Types::INTEGER);
        assert_eq!(
            Types::of(&json!({"type": ["integer", "null"]})),
            Types(Types::INTEGER.0 | Types::NULL.0)
        );
        assert_eq!(
            Types::of(&json!({"type": "string", "nullable": true})),
            Types(Types::STRING.0 | Types::NULL.0)
        );
        assert_eq!(Types::of(&json!({"oneOf": []})), Types::ANY);
    }

    #[test]
    fn strings_read_as_their_type() {
        assert_eq!(readings("5", Types::INTEGER), vec![json!(5)]);
        assert_eq!(readings("5.5", Types::INTEGER), Vec::<Value>::new());
        assert_eq!(readings("5.5", Types::NUMBER), vec![json!(5.5)]);
        assert_eq!(readings("1e3", Types::NUMBER), vec![json!(1000.0)]);
        assert_eq!(readings("05", Types::INTEGER), Vec::<Value>::new());
        assert_eq!(readings("0x1", Types::INTEGER), Vec::<Value>::new());
        assert_eq!(readings("inf", Types::NUMBER), Vec::<Value>::new());
        assert_eq!(readings("-0", Types::INTEGER), vec![json!(0)]);
        assert_eq!(
            readings("18446744073709551615", Types::INTEGER),
            vec![json!(u64::MAX)]
        );
        assert_eq!(readings("true", Types::BOOLEAN), vec![json!(true)]);
        assert_eq!(readings("yes", Types::BOOLEAN), Vec::<Value>::new());
        assert_eq!(readings("5", Types::STRING), vec![json!("5")]);
        assert_eq!(readings("5", Types::ANY), vec![json!(5), json!("5")]);
    }

    #[test]
    fn arrays_and_objects() {
        assert_eq!(
            array_readings(&["1", "2"], Types::INTEGER),
            vec![json!([1, 2])]
        );
        assert!(array_readings(&["1", "x"], Types::INTEGER).is_empty());
        let props = vec![("r".to_string(), Types::INTEGER)];
        assert_eq!(
            object_reading(&[("r", "100"), ("name", "x")], &props),
            Some(json!({"r": 100, "name": "x"}))
        );
        assert_eq!(object_reading(&[("r", "x")], &props), None);
    }
}
