//! OpenAPI policy for the gateway.
//!
//! An OpenAPI 3.0 or 3.1 description (JSON or YAML, with `$ref`s to sibling files) is compiled
//! once into a [`Policy`]: a route table (server base paths, path templates with the most
//! specific one winning) and validators for parameters and request bodies (bodies through
//! vigil-schema). The gateway then asks, per request, [`Policy::match_route`] and on the
//! returned [`RouteMatch`] `check_params` and `check_body`; each refusal is a [`Deny`] with a
//! status and a stable reason code, never the request's data. Requests outside the description
//! feed the [`ShadowInventory`]. [`check`] reports on a description for `vigilctl policy check`.
//! See `docs/policy.md`.

mod body;
mod check;
mod compile;
mod convert;
mod deny;
mod depth;
mod error;
mod form;
mod load;
mod method;
mod operations;
mod options;
mod ownership;
mod params;
mod path;
mod policy;
mod responses;
mod route;
mod router;
mod security;
mod shadow;
mod shapes;
mod style;
#[cfg(test)]
mod testutil;

pub use check::{CheckReport, RouteSummary, check, check_value};
pub use deny::{Deny, reason};
pub use error::{PolicyError, Problem};
pub use load::MAX_DOCUMENT_BYTES;
pub use method::Method;
pub use options::{
    DetectionMode, Mode, OnDegrade, PolicyOptions, ResponseCheck, ResponseDataMode, RouteSettings,
};
pub use ownership::{OwnerIn, OwnerRule, Ownership};
pub use params::query_value;
pub use path::normalise_path;
pub use policy::{Headers, Matched, Policy, RequestParts, RouteMatch};
pub use responses::{INVALID_BODY, ResponseViolation, UNDOCUMENTED_STATUS};
pub use route::Route;
pub use security::{
    JWT_ALGORITHMS, JwtSettings, MtlsSettings, MtlsSubject, Requirement, SchemeKind, SecurityScheme,
};
pub use shadow::{ShadowEntry, ShadowError, ShadowInventory};
pub use style::ParamIn;
pub use vigil_schema::{Limits, UnsupportedKeyword};
