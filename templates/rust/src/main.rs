//! {{name}}: a wisp function (a standard wasi:http component, WASI 0.3).

use wisp_sdk::kv::Bucket;
use wisp_sdk::{HttpError, Json, Request, RequestExt, Response, Router};

async fn hello(request: Request) -> String {
    let name = request.query_param("name").unwrap_or_else(|| "world".to_owned());
    format!("Hello, {name}, from {{name}}!\n")
}

async fn info(request: Request) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "function": "{{name}}",
        "method": request.method().as_str(),
        "path": request.path_info(),
    }))
}

/// Counts visits in the function's own key-value bucket: every request runs
/// in a fresh instance, so what must last goes in a bucket.
async fn visits(_request: Request) -> Result<String, HttpError> {
    let count = Bucket::own()?.increment("visits", 1)?;
    Ok(format!("visits: {count}\n"))
}

async fn handle(request: Request) -> Response {
    Router::new()
        .get("/", hello)
        .get("/info", info)
        .get("/visits", visits)
        .handle(request)
        .await
}

wisp_sdk::v3::export!(async handle);
