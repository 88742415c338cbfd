//! Identity for the gateway: JWT verification and the keys it needs.
