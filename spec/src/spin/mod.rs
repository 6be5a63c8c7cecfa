//! Spin compatibility: what wisp reads of Fermyon Spin's apps.
//!
//! [`route`]: a Spin trigger route (`/hello`, `/hello/...`, `/...`), the
//! `spin-route` setting, and the request headers Spin gives a component.
//! [`manifest`]: a `spin.toml` (manifest version 2) read into the same
//! [`crate::manifest::Manifest`] `wisp up` deploys from a `wisp.toml`.

#[cfg(feature = "manifest")]
pub mod manifest;
pub mod route;
