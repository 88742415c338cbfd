//! A route: one operation of the description, with its compiled checks and its `x-vigil`
//! settings. Its id (`GET /users/{id}`) is stable across reloads for audit and metrics.

use crate::Method;
use crate::body::Body;
use crate::options::{Mode, OnDegrade, RouteSettings};
use crate::ownership::Ownership;
use crate::params::Param;
use crate::security::Requirement;

/// One described operation.
#[derive(Debug)]
pub struct Route {
    pub(crate) id: String,
    pub(crate) method: Method,
    pub(crate) template: String,
    pub(crate) operation_id: Option<String>,
    pub(crate) settings: RouteSettings,
    pub(crate) params: Vec<Param>,
    pub(crate) body: Option<Body>,
    /// Effective `security` (the operation's, else the document's); `None` when neither says.
    pub(crate) security: Option<Vec<Requirement>>,
    pub(crate) ownership: Option<Ownership>,
    /// The documented responses; `None` when the operation has no `responses` object.
    pub(crate) responses: Option<crate::responses::Responses>,
}

impl Route {
    /// `GET /users/{id}`: the method and the path template as described (without base path).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The operation's method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The path template (`/users/{id}`).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The `operationId`, if the description gives one.
    pub fn operation_id(&self) -> Option<&str> {
        self.operation_id.as_deref()
    }

    /// Effective `x-vigil` settings (operation over path item over document).
    pub fn settings(&self) -> RouteSettings {
        self.settings
    }

    /// Whether denials on this route are only logged (`x-vigil: {mode: log-only}`).
    pub fn log_only(&self) -> bool {
        self.settings.mode == Mode::LogOnly
    }

    /// What to do with this route under thermal pressure (default: shed).
    pub fn on_degrade(&self) -> OnDegrade {
        self.settings.on_degrade
    }

    /// Number of parameters checked on this route.
    pub fn parameter_count(&self) -> usize {
        self.params.len()
    }

    /// The security requirements: alternatives, any one of which must be met. `None` or an
    /// empty list: no identity required.
    pub fn security(&self) -> Option<&[Requirement]> {
        self.security.as_deref()
    }

    /// Object-ownership rules (`x-vigil-ownership`).
    pub fn ownership(&self) -> Option<&Ownership> {
        self.ownership.as_ref()
    }

    /// Whether the operation describes a request body.
    pub fn has_body(&self) -> bool {
        self.body.is_some()
    }

    /// Whether the operation may be upgraded to a WebSocket (`x-vigil: {websocket: true}`).
    /// Only what precedes the 101 is checked; the tunnel's messages are not inspected.
    pub fn websocket(&self) -> bool {
        self.settings.websocket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_report_settings() {
        let r = Route {
            id: "GET /a".into(),
            method: Method::Get,
            template: "/a".into(),
            operation_id: Some("getA".into()),
            settings: RouteSettings {
                mode: Mode::LogOnly,
                on_degrade: OnDegrade::Degrade,
                websocket: true,
                detection: None,
                response_data: None,
                responses: crate::ResponseCheck::Log,
                max_response_bytes: None,
            },
            params: Vec::new(),
            body: None,
            security: None,
            ownership: None,
            responses: None,
        };
        assert_eq!(
            (r.id(), r.template(), r.operation_id()),
            ("GET /a", "/a", Some("getA"))
        );
        assert!(r.log_only());
        assert_eq!(r.on_degrade(), OnDegrade::Degrade);
        assert_eq!((r.parameter_count(), r.has_body()), (0, false));
        assert!(r.websocket());
    }
}
