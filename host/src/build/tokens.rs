//! Deploy tokens: credentials that may push to one function's git remote
//! and nothing else (`wisp token create NAME`). Only a hash of each is
//! kept (`DATA_DIR/builds/deploy-tokens.json`, the host's user's only):
//! the token itself is shown once, when it is made. A function's tokens
//! go with it (`wisp rm`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use wisp_spec::api::DeployTokenInfo as TokenInfo;

/// Tokens a function may have at once.
pub const MAX_TOKENS_PER_FUNCTION: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    /// blake3 of the token, hex.
    hash: String,
    created: u64,
}

/// The deploy tokens of a host.
pub struct DeployTokens {
    path: PathBuf,
    tokens: Mutex<BTreeMap<String, Vec<Stored>>>,
}

impl DeployTokens {
    /// The tokens kept at `path` (none if it does not exist yet).
    pub(crate) fn open(path: PathBuf) -> DeployTokens {
        let tokens = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        DeployTokens {
            path,
            tokens: Mutex::new(tokens),
        }
    }

    /// Keeps `token` (made by the caller from a good random source) as a
    /// deploy token of function `name`.
    pub fn add(&self, name: &str, token: &str) -> Result<TokenInfo, String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let list = tokens.entry(name.to_owned()).or_default();
        if list.len() >= MAX_TOKENS_PER_FUNCTION {
            return Err(format!(
                "function `{name}` has {MAX_TOKENS_PER_FUNCTION} deploy tokens already; remove one first"
            ));
        }
        let stored = Stored {
            hash: hash(token),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let info = info(&stored);
        list.push(stored);
        self.save(&tokens)?;
        Ok(info)
    }

    /// Function `name`'s tokens.
    pub fn list(&self, name: &str) -> Vec<TokenInfo> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(name)
            .map_or_else(Vec::new, |list| list.iter().map(info).collect())
    }

    /// Removes function `name`'s token `id`; `Ok(false)`: it has none such.
    pub fn remove(&self, name: &str, id: &str) -> Result<bool, String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = tokens.get_mut(name) else {
            return Ok(false);
        };
        let before = list.len();
        list.retain(|stored| info(stored).id != id);
        let removed = list.len() != before;
        if list.is_empty() {
            tokens.remove(name);
        }
        if removed {
            self.save(&tokens)?;
        }
        Ok(removed)
    }

    /// Removes every token of function `name`.
    pub(crate) fn forget(&self, name: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.remove(name).is_some()
            && let Err(e) = self.save(&tokens)
        {
            tracing::warn!(function = name, error = %e, "removing the deploy tokens failed");
        }
    }

    /// The function `token` is a deploy token of, if any. Every stored
    /// hash is compared, in time that does not depend on where they
    /// differ.
    pub fn owner(&self, token: &str) -> Option<String> {
        let given = hash(token);
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let mut owner = None;
        for (name, list) in tokens.iter() {
            for stored in list {
                if same(stored.hash.as_bytes(), given.as_bytes()) {
                    owner = Some(name.clone());
                }
            }
        }
        owner
    }

    fn save(&self, tokens: &BTreeMap<String, Vec<Stored>>) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(tokens).map_err(|e| e.to_string())?;
        if let Some(dir) = self.path.parent() {
            crate::disk::private::create(dir).map_err(|e| {
                tracing::error!(error = %e, "making the builds directory failed");
                "storing the deploy tokens failed (see the host log)".to_owned()
            })?;
        }
        crate::disk::write_file_atomically(
            &self.path.with_extension("json.tmp"),
            &self.path,
            &bytes,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "storing the deploy tokens failed");
            "storing the deploy tokens failed (see the host log)".to_owned()
        })
    }
}

fn hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn info(stored: &Stored) -> TokenInfo {
    TokenInfo {
        id: stored.hash[..12].to_owned(),
        created: stored.created,
        token: None,
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_belongs_to_one_function_survives_a_restart_and_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("builds/deploy-tokens.json");
        let tokens = DeployTokens::open(path.clone());
        let made = tokens.add("hello", "wisp_dt_one").unwrap();
        tokens.add("other", "wisp_dt_two").unwrap();
        assert_eq!(tokens.owner("wisp_dt_one").as_deref(), Some("hello"));
        assert_eq!(tokens.owner("wisp_dt_two").as_deref(), Some("other"));
        assert_eq!(tokens.owner("wisp_dt_three"), None);
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("wisp_dt_one")
        );

        let reopened = DeployTokens::open(path);
        assert_eq!(reopened.list("hello"), vec![made.clone()]);
        assert!(reopened.remove("hello", &made.id).unwrap());
        assert_eq!(reopened.owner("wisp_dt_one"), None);
        reopened.forget("other");
        assert_eq!(reopened.owner("wisp_dt_two"), None);
    }
}
