//! `sdk-api`: a small JSON API written with `wisp-sdk` — routing, path
//! parameters, JSON in and out, query strings, error responses, config.
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /items` | the catalogue; `?max_price=N` filters it |
//! | `GET /items/:id` | one item, or 404 |
//! | `POST /items` | validates a JSON item, answers 201 with its new id, or 400 |
//! | `GET /hello/:name` | a greeting, from the `GREETING` setting |

use serde::{Deserialize, Serialize};
use wisp_sdk::{
    HttpError, Json, Request, RequestBodyExt, RequestExt, Response, Router, StatusCode,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    id: u32,
    name: String,
    price_cents: u32,
}

#[derive(Debug, Deserialize)]
struct NewItem {
    name: String,
    price_cents: u32,
}

#[derive(Debug, Deserialize)]
struct Filter {
    max_price: Option<u32>,
}

/// Fresh for every request: each request runs in a new instance.
fn catalogue() -> Vec<Item> {
    [("kettle", 2_500), ("teapot", 1_800), ("mug", 600)]
        .into_iter()
        .enumerate()
        .map(|(i, (name, price_cents))| Item {
            id: i as u32 + 1,
            name: name.to_owned(),
            price_cents,
        })
        .collect()
}

async fn list(request: Request) -> Result<Json<Vec<Item>>, HttpError> {
    let filter: Filter = request.query()?;
    let items = catalogue()
        .into_iter()
        .filter(|item| filter.max_price.is_none_or(|max| item.price_cents <= max))
        .collect();
    Ok(Json(items))
}

async fn get(request: Request) -> Result<Json<Item>, HttpError> {
    let id: u32 = request
        .param("id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| HttpError::bad_request("the item id must be a number"))?;
    catalogue()
        .into_iter()
        .find(|item| item.id == id)
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no item {id}")))
}

async fn create(mut request: Request) -> Result<(StatusCode, Json<Item>), HttpError> {
    let new: NewItem = request.json().await?;
    if new.name.trim().is_empty() {
        return Err(HttpError::bad_request("`name` must not be empty"));
    }
    wisp_sdk::log::info(format_args!("creating item `{}`", new.name));
    let item = Item {
        id: catalogue().len() as u32 + 1,
        name: new.name,
        price_cents: new.price_cents,
    };
    Ok((StatusCode::CREATED, Json(item)))
}

async fn hello(request: Request) -> String {
    let greeting = wisp_sdk::config::get("GREETING").unwrap_or_else(|| "Hello".to_owned());
    format!(
        "{greeting}, {}!\n",
        request.param("name").unwrap_or("stranger")
    )
}

async fn handle(request: Request) -> Response {
    Router::new()
        .get("/items", list)
        .get("/items/:id", get)
        .post("/items", create)
        .get("/hello/:name", hello)
        .handle(request)
        .await
}

wisp_sdk::export!(async handle);
