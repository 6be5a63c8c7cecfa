//! {{name}}: a wisp function (a standard wasi:http component).

use wisp_sdk::{Json, Request, RequestExt, Response, Router};

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

async fn handle(request: Request) -> Response {
    Router::new()
        .get("/", hello)
        .get("/info", info)
        .handle(request)
        .await
}

wisp_sdk::export!(async handle);
