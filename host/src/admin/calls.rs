//! Admin endpoints for async calls: `GET /v1/calls/{id}` (one call, with
//! its response body once finished) and `GET
//! /v1/calls?function=&state=&before=&limit=` (newest first, without
//! bodies).

use super::json;
use crate::error::{DeployError, HostFailure};
use crate::events::calls::{CallFilter, is_call_id};
use crate::host::Host;
use bytes::Bytes;
use http::StatusCode;

/// `GET /v1/calls/{id}`.
pub(super) async fn get(host: &Host, id: &str) -> Result<http::Response<Bytes>, DeployError> {
    if !is_call_id(id) {
        return Err(DeployError::NoSuchCall(id.to_owned()));
    }
    match host.call(id).await {
        Ok(Some(info)) => Ok(json(StatusCode::OK, &info)),
        Ok(None) => Err(DeployError::NoSuchCall(id.to_owned())),
        Err(error) => Err(HostFailure::logged("reading the call queue failed", error).into()),
    }
}

/// `GET /v1/calls`.
pub(super) async fn list(
    host: &Host,
    query: Option<&str>,
) -> Result<http::Response<Bytes>, DeployError> {
    let filter = filter(query)?;
    host.calls(&filter)
        .await
        .map(|list| json(StatusCode::OK, &list))
        .map_err(|error| HostFailure::logged("reading the call queue failed", error).into())
}

fn filter(query: Option<&str>) -> Result<CallFilter, DeployError> {
    let mut filter = CallFilter::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "function" => filter.function = Some(value.into_owned()),
            "state" => filter.state = Some(value.parse().map_err(DeployError::BadRequest)?),
            "before" => filter.before = Some(value.into_owned()),
            "limit" => {
                filter.limit = Some(value.parse().map_err(|_| {
                    DeployError::BadRequest(format!("`limit={value}` is not a number of calls"))
                })?);
            }
            other => {
                return Err(DeployError::BadRequest(format!(
                    "unknown query parameter `{other}`: a call listing takes `function`, `state`, `before` and `limit`"
                )));
            }
        }
    }
    Ok(filter)
}
