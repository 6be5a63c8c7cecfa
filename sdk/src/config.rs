//! The configuration a function gets: the environment variables declared in
//! its deploy settings (`--env KEY=VALUE`, or `env` in `wisp.toml`). Nothing
//! else of the host's environment is visible.

use crate::response::HttpError;

/// The value of `key`, if the function was deployed with it.
///
/// ```no_run
/// let greeting = wisp_sdk::config::get("GREETING").unwrap_or_else(|| "Hello".into());
/// ```
pub fn get(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The value of `key`, or a 500 error naming the missing setting.
pub fn require(key: &str) -> Result<String, HttpError> {
    get(key).ok_or_else(|| {
        HttpError::internal(format!(
            "the function needs the setting `{key}`: deploy it with `--env {key}=...`"
        ))
    })
}
