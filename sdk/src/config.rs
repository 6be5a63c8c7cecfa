//! The settings a function gets. [`get`] reads the standard
//! `wasi:config/store@0.2.0-rc.1` first — on wisp, the values deployed with
//! `--config KEY=VALUE` (`config` in `wisp.toml`) and the secrets set with
//! `wisp secret set` — and then the environment variable of the same name
//! (`--env KEY=VALUE`, `env` in `wisp.toml`). Nothing else of the host's
//! configuration or environment is visible.
//!
//! A component imports `wasi:config` only when it calls [`get`] or
//! [`require`]; such a function needs a host that serves it (wisp does;
//! `wasmtime serve` does with `-S config`).

use crate::response::HttpError;

/// Bindings for the standard WIT in `wit/config-0.2.0-rc.1/`.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit/config-0.2.0-rc.1",
        world: "imports",
        // A function may generate bindings for this same world itself.
        type_section_suffix: "wisp-sdk",
    });
}

use bindings::wasi::config::store;

/// The value of `key`: from `wasi:config` if the host has it there, else
/// from the environment variable `key`; `None` if neither is set.
///
/// ```no_run
/// let greeting = wisp_sdk::config::get("GREETING").unwrap_or_else(|| "Hello".into());
/// ```
pub fn get(key: &str) -> Option<String> {
    first_set(key, store::get(key), || std::env::var(key).ok())
}

/// The value of `key`, or a 500 error naming the missing setting.
pub fn require(key: &str) -> Result<String, HttpError> {
    get(key).ok_or_else(|| HttpError::internal(missing(key)))
}

/// The config store's answer if it has one, else the environment's. A
/// store that fails is logged and passed over: the environment may still
/// hold the value.
fn first_set(
    key: &str,
    from_config: Result<Option<String>, store::Error>,
    from_env: impl FnOnce() -> Option<String>,
) -> Option<String> {
    match from_config {
        Ok(Some(value)) => return Some(value),
        Ok(None) => {}
        Err(store::Error::Upstream(why) | store::Error::Io(why)) => {
            crate::log::warn(format_args!(
                "reading setting `{key}` from wasi:config failed: {why}"
            ));
        }
    }
    from_env()
}

fn missing(key: &str) -> String {
    format!(
        "the function needs the setting `{key}`: deploy it with `--config {key}=...` \
         (or `--env {key}=...`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_store_wins_over_the_environment() {
        let env = || Some("from env".to_owned());
        assert_eq!(
            first_set("k", Ok(Some("from config".into())), env).as_deref(),
            Some("from config")
        );
        assert_eq!(first_set("k", Ok(None), env).as_deref(), Some("from env"));
        assert_eq!(first_set("k", Ok(None), || None), None);
    }

    #[test]
    fn a_failing_config_store_falls_back_to_the_environment() {
        let failed = Err(store::Error::Io("unreachable".into()));
        assert_eq!(
            first_set("k", failed, || Some("from env".to_owned())).as_deref(),
            Some("from env")
        );
    }

    #[test]
    fn a_missing_setting_names_both_ways_to_set_it() {
        assert_eq!(
            missing("API_URL"),
            "the function needs the setting `API_URL`: deploy it with `--config API_URL=...` \
             (or `--env API_URL=...`)"
        );
    }
}
