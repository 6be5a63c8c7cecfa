//! `sdk-fetch`: calls out over HTTP with `wisp_sdk::fetch` — `?url=…` is
//! fetched and its status, headers and body returned as JSON. The host's allow-list
//! decides what it may reach; a denied call is answered 403.

use wisp_sdk::fetch::FetchError;
use wisp_sdk::{HttpError, Json, Request, RequestExt, StatusCode};

async fn handle(request: Request) -> Result<Json<serde_json::Value>, HttpError> {
    let url = request
        .query_param("url")
        .ok_or_else(|| HttpError::bad_request("give the URL to fetch as `?url=`"))?;
    match wisp_sdk::fetch::get(&url).await {
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

wisp_sdk::export!(async handle);
