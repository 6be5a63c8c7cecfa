//! Admin endpoints for platform state: key-value buckets and secrets.
//!
//! * `GET /v1/functions/{name}/kv?after=&limit=` lists a function's own
//!   bucket, `GET|PUT|DELETE /v1/functions/{name}/kv/{key}` reads (raw
//!   bytes), writes (the raw body) or deletes one key;
//! * the same under `/v1/buckets/{bucket}/kv` for an app bucket;
//! * `GET /v1/functions/{name}/secrets` lists secret names, `PUT|DELETE
//!   /v1/functions/{name}/secrets/{secret}` sets (the raw body) or removes
//!   one. No endpoint returns a secret's value.
//!
//! Keys are percent-encoded path segments, so any key can be addressed.

use super::{json, read_limited};
use crate::error::{DeployError, json_error};
use crate::host::Host;
use crate::state::{BucketId, MAX_SECRET_VALUE_BYTES};
use bytes::Bytes;
use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use wisp_spec::api::{KeyList, SecretNames};
use wisp_spec::units::format_size;

/// Keys listed per page when the request does not say.
const DEFAULT_LIST_LIMIT: usize = 100;

/// Serves `rest` (what follows `.../kv`) of `bucket`.
pub(super) async fn kv(
    host: &Host,
    bucket: Result<BucketId, DeployError>,
    rest: &[&str],
    request: http::Request<Incoming>,
) -> Result<http::Response<Bytes>, DeployError> {
    let bucket = bucket?;
    let method = request.method().clone();
    match (&method, rest) {
        (&Method::GET, []) => {
            let (after, limit) = list_query(request.uri().query())?;
            let page = host.kv_keys(&bucket, after.as_deref(), limit).await?;
            Ok(json(
                StatusCode::OK,
                &KeyList {
                    bucket: bucket.to_string(),
                    keys: page.keys,
                    next: page.next,
                },
            ))
        }
        (&Method::GET, [key]) => {
            let value = host.kv_get(&bucket, &decode(key)?).await?;
            let mut response = http::Response::new(Bytes::from(value));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            Ok(response)
        }
        (&Method::PUT, [key]) => {
            let key = decode(key)?;
            let limit = usize::try_from(host.config().max_kv_value).unwrap_or(usize::MAX);
            let value = read_body(request, limit, "the value").await?;
            host.kv_set(&bucket, key.clone(), value.to_vec()).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "set": key, "bytes": value.len() }),
            ))
        }
        (&Method::DELETE, [key]) => {
            let key = decode(key)?;
            host.kv_delete(&bucket, key.clone()).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": key })))
        }
        _ => Ok(not_allowed(&method, request.uri().path())),
    }
}

/// Serves `rest` (what follows `.../secrets`) of function `function`.
pub(super) async fn secrets(
    host: &Host,
    function: &str,
    rest: &[&str],
    request: http::Request<Incoming>,
) -> Result<http::Response<Bytes>, DeployError> {
    let method = request.method().clone();
    match (&method, rest) {
        (&Method::GET, []) => Ok(json(
            StatusCode::OK,
            &SecretNames {
                function: function.to_owned(),
                secrets: host.secret_names(function)?,
            },
        )),
        (&Method::PUT, [name]) => {
            let name = decode(name)?;
            // Refused before its body is read.
            host.ensure_deployed(function)?;
            let value = read_body(request, MAX_SECRET_VALUE_BYTES, "a secret").await?;
            host.set_secret(function, &name, value.to_vec()).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "function": function, "set": name }),
            ))
        }
        (&Method::DELETE, [name]) => {
            let name = decode(name)?;
            let removed = host.remove_secret(function, &name).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "function": function, "removed": name, "existed": removed }),
            ))
        }
        _ => Ok(not_allowed(&method, request.uri().path())),
    }
}

fn not_allowed(method: &Method, path: &str) -> http::Response<Bytes> {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        &format!("`{method}` is not supported on `{path}`"),
        None,
    )
}

/// A percent-encoded path segment as the key or name it encodes.
fn decode(segment: &str) -> Result<String, DeployError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| {
            DeployError::BadRequest(format!("`{segment}` is not a percent-encoded UTF-8 key"))
        })
}

/// `after` and `limit` of a listing.
fn list_query(query: Option<&str>) -> Result<(Option<String>, usize), DeployError> {
    let mut after = None;
    let mut limit = DEFAULT_LIST_LIMIT;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "after" => after = Some(value.into_owned()),
            "limit" => {
                limit = value.parse().map_err(|_| {
                    DeployError::BadRequest(format!("`limit={value}` is not a number of keys"))
                })?;
            }
            other => {
                return Err(DeployError::BadRequest(format!(
                    "unknown query parameter `{other}`: a listing takes `after` and `limit`"
                )));
            }
        }
    }
    Ok((after, limit))
}

/// The whole body, refused as over a state limit past `limit` bytes.
async fn read_body(
    request: http::Request<Incoming>,
    limit: usize,
    what: &str,
) -> Result<Bytes, DeployError> {
    read_limited(request, limit, || {
        DeployError::StateLimit(format!(
            "{what} is over the {} limit",
            format_size(limit as u64)
        ))
    })
    .await
}
