//! `sdk-fetch`: calls out over HTTP with `wisp_sdk::fetch` — `?url=…` is
//! fetched and its status, headers and body returned as JSON; with
//! `?call=NAME&path=P` function NAME is called on `P` with `wisp_sdk::call`
//! instead, with each `&header=NAME:VALUE` set on the call; with
//! `&times=N` it makes the call N times and answers only the statuses, as
//! `{"statuses": [200, …]}`. With `?forward` it forwards the request to
//! its own scheme, authority and path (as wasmtime's forwarding test guest
//! does) and answers with what came back, status included: a function
//! that calls itself. The host's allow-list decides what it may reach; a
//! denied call is answered 403. Built twice: as a WASI 0.2 component
//! (`sdk-fetch`) and, with wisp-sdk's 0.3 flavour, a 0.3 one (`sdk-fetch3`).

use wisp_sdk::fetch::FetchError;
use wisp_sdk::{HttpError, Json, Request, RequestExt, StatusCode};

async fn handle(request: Request) -> Result<Json<serde_json::Value>, HttpError> {
    if request.query_param("forward").is_some() {
        return forward(&request).await;
    }
    let (url, outcome) = match (request.query_param("url"), request.query_param("call")) {
        (Some(url), _) => {
            let outcome = wisp_sdk::fetch::get(&url).await;
            (url, outcome)
        }
        (None, Some(function)) => {
            let path = request.query_param("path").unwrap_or_else(|| "/".into());
            let times: usize = match request.query_param("times") {
                Some(times) => times
                    .parse()
                    .map_err(|_| HttpError::bad_request("`times` is not a number"))?,
                None => 1,
            };
            let headers = query_values(&request, "header");
            let make = || {
                let mut call = wisp_sdk::http::Request::get(path.as_str());
                for header in &headers {
                    if let Some((name, value)) = header.split_once(':') {
                        call = call.header(name, value);
                    }
                }
                call.body(Default::default())
                    .map_err(|e| HttpError::bad_request(e.to_string()))
            };
            if request.query_param("times").is_some() {
                let mut statuses = Vec::with_capacity(times);
                for _ in 0..times {
                    let status = match wisp_sdk::call(&function, make()?).await {
                        Ok(response) => response.status().as_u16(),
                        Err(_) => 0,
                    };
                    statuses.push(status);
                }
                return Ok(Json(serde_json::json!({ "statuses": statuses })));
            }
            (
                format!("call {function} {path}"),
                wisp_sdk::call(&function, make()?).await,
            )
        }
        (None, None) => {
            return Err(HttpError::bad_request(
                "give the URL to fetch as `?url=`, or a function to call as `?call=NAME&path=P`",
            ));
        }
    };
    match outcome {
        Ok(response) => {
            let headers: serde_json::Map<String, serde_json::Value> = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value.into())
                })
                .collect();
            Ok(Json(serde_json::json!({
                "url": url,
                "status": response.status().as_u16(),
                "headers": headers,
                "body": String::from_utf8_lossy(response.body()),
            })))
        }
        Err(denied @ FetchError::Denied) => {
            Err(HttpError::new(StatusCode::FORBIDDEN, denied.to_string()))
        }
        Err(other) => Err(HttpError::new(StatusCode::BAD_GATEWAY, other.to_string())),
    }
}

/// Sends the request's own URL again; a non-200 answer comes back as this
/// function's status.
async fn forward(request: &Request) -> Result<Json<serde_json::Value>, HttpError> {
    let uri = request.uri();
    let url = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path_and_query().map_or("/", |p| p.as_str()),
    );
    match wisp_sdk::fetch::get(&url).await {
        Ok(response) if response.status() == StatusCode::OK => Ok(Json(serde_json::json!({
            "forwarded": url,
            "body": String::from_utf8_lossy(response.body()),
        }))),
        Ok(response) => Err(HttpError::new(
            response.status(),
            String::from_utf8_lossy(response.body()),
        )),
        Err(denied @ FetchError::Denied) => Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!("{url}: {denied}"),
        )),
        Err(other) => Err(HttpError::new(StatusCode::BAD_GATEWAY, other.to_string())),
    }
}

/// Every value of query parameter `name`, decoded.
fn query_values(request: &Request, name: &str) -> Vec<String> {
    let query = request.uri().query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .collect()
}

// The same source serves as `sdk-fetch3`, a WASI 0.3 component.
#[cfg(not(feature = "wasi-0-3"))]
wisp_sdk::export!(async handle);
#[cfg(feature = "wasi-0-3")]
wisp_sdk::v3::export!(async handle);
