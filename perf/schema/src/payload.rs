//! The benchmark's schema and payloads: an order-intake API object, generated in code with a
//! fixed-seed generator so every run measures the same bytes.

use serde_json::{Value, json};

/// The request-body schema of a realistic `POST /orders` (JSON Schema 2020-12).
pub fn order_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["id", "customer", "items", "created", "status"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "created": {"type": "string", "format": "date-time"},
            "status": {"enum": ["new", "paid", "shipped", "cancelled"]},
            "customer": {
                "type": "object",
                "required": ["id", "email", "name"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "email": {"type": "string", "format": "email", "maxLength": 254},
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "vip": {"type": "boolean"}
                }
            },
            "shipping": {"$ref": "#/$defs/address"},
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100000,
                "items": {"$ref": "#/$defs/item"}
            },
            "tags": {
                "type": "array",
                "uniqueItems": true,
                "items": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,31}$"}
            },
            "note": {"type": ["string", "null"], "maxLength": 2000}
        },
        "$defs": {
            "address": {
                "type": "object",
                "required": ["street", "city", "postal", "country"],
                "properties": {
                    "street": {"type": "string", "maxLength": 200},
                    "city": {"type": "string", "maxLength": 100},
                    "postal": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"},
                    "country": {"enum": ["DE", "FR", "GB", "NL", "US", "JP"]}
                }
            },
            "item": {
                "type": "object",
                "required": ["sku", "qty", "price"],
                "additionalProperties": false,
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{6}$"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "price": {"type": "number", "minimum": 0, "multipleOf": 0.01},
                    "gift": {"type": "boolean"},
                    "options": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "maxLength": 64}
                    }
                }
            }
        }
    })
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn item(r: &mut Lcg) -> Value {
    let mut it = json!({
        "sku": format!("ABC-{:06}", r.next() % 1_000_000),
        "qty": 1 + r.next() % 20,
        "price": f64::from(u32::try_from(r.next() % 100_000).unwrap_or(0)) / 100.0,
    });
    if r.next().is_multiple_of(3) {
        it["gift"] = json!(true);
        it["options"] = json!({"wrap": "blue paper", "card": "Happy birthday, from all of us"});
    }
    it
}

/// An order whose serialized size is close to `target` bytes. `valid: false` sets one item's
/// quantity to 0 near the end, so a validator has to read almost everything to find it.
pub fn order(target: usize, valid: bool) -> Vec<u8> {
    let mut r = Lcg(42);
    let mut doc = json!({
        "id": "2eb8aa08-aa98-11ea-b4aa-73b441d16380",
        "created": "2026-11-23T14:39:00.123Z",
        "status": "paid",
        "customer": {"id": 1234, "email": "jane.doe@example.com", "name": "Jane Doe", "vip": false},
        "shipping": {"street": "1 Main Street", "city": "Springfield", "postal": "AB1 2CD", "country": "GB"},
        "tags": ["express", "gift-wrap", "b2c"],
        "note": "Leave the parcel at the back door, please.",
        "items": []
    });
    let base = serde_json::to_vec(&doc).map_or(0, |v| v.len());
    // Add items until the body reaches the target size (each item costs its bytes plus a comma).
    let mut size = base;
    let mut items: Vec<Value> = Vec::new();
    while size < target || items.is_empty() {
        let it = item(&mut r);
        size += serde_json::to_vec(&it).map_or(1, |v| v.len()) + 1;
        items.push(it);
    }
    if !valid {
        let last = items.len().saturating_sub(1);
        if let Some(it) = items.get_mut(last.saturating_sub(last / 20)) {
            it["qty"] = json!(0);
        }
    }
    doc["items"] = Value::Array(items);
    serde_json::to_vec(&doc).unwrap_or_default()
}
