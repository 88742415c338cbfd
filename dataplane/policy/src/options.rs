//! Policy options (from the gateway's configuration) and the `x-vigil` extension (from the
//! OpenAPI document itself).

use serde::{Deserialize, Serialize};
use vigil_schema::{CompileOptions, Limits};

/// How a policy is compiled and enforced. Deserialized from the gateway's configuration, so
/// unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyOptions {
    /// Query parameters the operation does not describe are refused (`param_unknown`).
    pub strict_query: bool,
    /// Object schemas in request bodies reject undeclared properties unless they say
    /// `additionalProperties` themselves (passed to vigil-schema).
    pub strict_objects: bool,
    /// `readOnly` properties in request bodies are refused (`read_only_property`).
    pub reject_read_only: bool,
    /// `format` is asserted; unknown formats fail the load.
    pub assert_formats: bool,
    /// Bounds on request bodies.
    pub limits: Limits,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        Self {
            strict_query: false,
            strict_objects: false,
            reject_read_only: true,
            assert_formats: true,
            limits: Limits::default(),
        }
    }
}

impl PolicyOptions {
    pub(crate) fn compile_options(&self) -> CompileOptions {
        CompileOptions {
            strict_objects: self.strict_objects,
            reject_read_only: self.reject_read_only,
            assert_formats: self.assert_formats,
        }
    }
}

/// Whether a route's decisions are enforced or only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Refuse requests that violate the description.
    #[default]
    Enforce,
    /// Let them through, but audit the decision (for rolling out a new description).
    LogOnly,
}

/// What the gateway does with a route when the thermal governor lowers inspection depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnDegrade {
    /// Refuse the route's requests (503) rather than inspect them less: fail closed.
    #[default]
    Shed,
    /// Keep serving with reduced inspection (e.g. no body validation).
    Degrade,
}

/// What the injection-detection stage does with a finding (`[detection] mode`, or a route's
/// `x-vigil: {detection: ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DetectionMode {
    /// Not inspected.
    #[default]
    Off,
    /// Inspected; findings are counted and named in the audit line, the request goes on.
    Log,
    /// Inspected; a finding refuses the request (403 `injection_detected`).
    Block,
}

/// What the gateway does with sensitive data in a route's responses (`[response_data] mode`,
/// or a route's `x-vigil: {response_data: ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseDataMode {
    /// Not inspected.
    #[default]
    Off,
    /// Found values are counted and named in the audit line.
    Log,
    /// Found values are replaced in the streamed body.
    Mask,
    /// A response carrying one is replaced by 502 `response_blocked`.
    Block,
}

/// What the gateway does with an upstream response that contradicts the description
/// (`x-vigil: {responses: ...}`): an undocumented status, a JSON body off its schema, a body
/// over `max_response_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseCheck {
    /// Not checked.
    Off,
    /// Counted and named in the audit line; the response goes to the client.
    #[default]
    Log,
    /// Replaced by 502 (`response_undocumented_status`, `response_invalid_body`,
    /// `response_too_large`).
    Block,
}

/// The `x-vigil` extension, at document, path item or operation level. Keys not given inherit
/// from the enclosing level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(crate) struct XVigil {
    pub mode: Option<Mode>,
    pub on_degrade: Option<OnDegrade>,
    pub websocket: Option<bool>,
    pub detection: Option<DetectionMode>,
    pub response_data: Option<ResponseDataMode>,
    pub responses: Option<ResponseCheck>,
    pub max_response_bytes: Option<u64>,
}

/// The effective `x-vigil` settings of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RouteSettings {
    /// Enforce or log only.
    pub mode: Mode,
    /// Degrade or shed under thermal pressure.
    pub on_degrade: OnDegrade,
    /// Whether the operation may be upgraded to a WebSocket (`Upgrade: websocket`). The tunnel
    /// is opaque after the 101: its messages are not inspected.
    pub websocket: bool,
    /// Injection detection for the route; `None`: the gateway's `[detection] mode`.
    pub detection: Option<DetectionMode>,
    /// Sensitive data in the route's responses; `None`: the gateway's `[response_data] mode`.
    pub response_data: Option<ResponseDataMode>,
    /// Responses held against the description (default: logged).
    pub responses: ResponseCheck,
    /// The largest response body the route may send; `None`: no limit.
    pub max_response_bytes: Option<u64>,
}

impl RouteSettings {
    /// These settings with `x` applied on top.
    pub(crate) fn apply(self, x: XVigil) -> Self {
        Self {
            mode: x.mode.unwrap_or(self.mode),
            on_degrade: x.on_degrade.unwrap_or(self.on_degrade),
            websocket: x.websocket.unwrap_or(self.websocket),
            detection: x.detection.or(self.detection),
            response_data: x.response_data.or(self.response_data),
            responses: x.responses.unwrap_or(self.responses),
            max_response_bytes: x.max_response_bytes.or(self.max_response_bytes),
        }
    }
}

/// Reads the `x-vigil` member of `obj` (at `pointer`), if any.
pub(crate) fn x_vigil(obj: &serde_json::Value, pointer: &str) -> Result<XVigil, String> {
    match obj.get("x-vigil") {
        None => Ok(XVigil::default()),
        Some(v) => XVigil::deserialize(v).map_err(|e| {
            format!(
                "{pointer}/x-vigil: {e} (keys: mode = enforce | log-only, \
                 on_degrade = degrade | shed, websocket = true | false, \
                 detection = off | log | block, response_data = off | log | mask | block, \
                 responses = off | log | block, max_response_bytes = a number of bytes)"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn options_default_and_reject_typos() {
        let o: PolicyOptions = serde_json::from_str(r#"{"strict_query": true}"#).unwrap();
        assert!(o.strict_query && !o.strict_objects && o.reject_read_only);
        let e = serde_json::from_str::<PolicyOptions>(r#"{"strict_querry": true}"#).unwrap_err();
        assert!(e.to_string().contains("strict_querry"));
    }

    #[test]
    fn x_vigil_inherits_and_rejects_unknown_keys() {
        let doc = json!({"x-vigil": {"mode": "log-only"}});
        let base = RouteSettings::default().apply(x_vigil(&doc, "").unwrap());
        assert_eq!(base.mode, Mode::LogOnly);
        assert_eq!(base.on_degrade, OnDegrade::Shed);
        let op = json!({"x-vigil": {"on_degrade": "degrade"}});
        let s = base.apply(x_vigil(&op, "/paths/~1a/get").unwrap());
        assert_eq!((s.mode, s.on_degrade), (Mode::LogOnly, OnDegrade::Degrade));
        let bad = json!({"x-vigil": {"mode": "enforced"}});
        let e = x_vigil(&bad, "/paths/~1a/get").unwrap_err();
        assert!(e.starts_with("/paths/~1a/get/x-vigil:"), "{e}");
        assert!(x_vigil(&json!({"x-vigil": {"shed": true}}), "").is_err());
    }

    #[test]
    fn detection_follows_the_gateway_unless_a_level_says() {
        assert_eq!(RouteSettings::default().detection, None);
        let doc = RouteSettings::default()
            .apply(x_vigil(&json!({"x-vigil": {"detection": "block"}}), "").unwrap());
        let op = doc.apply(x_vigil(&json!({"x-vigil": {"detection": "off"}}), "").unwrap());
        let item = doc.apply(x_vigil(&json!({}), "").unwrap());
        assert_eq!(
            (doc.detection, op.detection, item.detection),
            (
                Some(DetectionMode::Block),
                Some(DetectionMode::Off),
                Some(DetectionMode::Block)
            )
        );
        let e = x_vigil(&json!({"x-vigil": {"detection": "deny"}}), "/paths/~1a/get").unwrap_err();
        assert!(e.contains("detection = off | log | block"), "{e}");
    }

    #[test]
    fn websocket_is_off_unless_a_level_turns_it_on() {
        assert!(!RouteSettings::default().websocket);
        let doc = RouteSettings::default().apply(x_vigil(&json!({}), "").unwrap());
        let item = doc.apply(x_vigil(&json!({"x-vigil": {"websocket": true}}), "").unwrap());
        let op = item.apply(x_vigil(&json!({"x-vigil": {"mode": "log-only"}}), "").unwrap());
        assert!(item.websocket && op.websocket, "inherited");
        let off = op.apply(x_vigil(&json!({"x-vigil": {"websocket": false}}), "").unwrap());
        assert!(!off.websocket);
        let e = x_vigil(&json!({"x-vigil": {"websocket": "yes"}}), "/paths/~1ws/get").unwrap_err();
        assert!(e.contains("websocket = true | false"), "{e}");
    }
}
