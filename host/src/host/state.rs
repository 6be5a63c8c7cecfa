//! The operator's side of platform state: reading and writing key-value
//! buckets and setting secrets, for the admin API (`wisp kv`, `wisp secret`)
//! and embedders. Guests reach the same data through `runtime/services/`.
//!
//! A function's own bucket is addressed by the function, which must be
//! deployed; an app bucket by its name, which need not be granted to
//! anyone yet. Secret values go in and never come out: only names do.

use super::Host;
use crate::error::{DeployError, HostFailure};
use crate::state::{BucketId, KeyPage, KvError, SecretError};
use wisp_spec::name::is_bucket_name;

/// Most keys one listing call returns.
pub const MAX_KEYS_PER_LIST: usize = 1000;

impl Host {
    /// The own bucket of deployed function `function`.
    pub fn function_bucket(&self, function: &str) -> Result<BucketId, DeployError> {
        self.ensure_deployed(function)?;
        Ok(BucketId::Function(function.to_owned()))
    }

    /// `UnknownFunction` unless `function` is deployed.
    pub(crate) fn ensure_deployed(&self, function: &str) -> Result<(), DeployError> {
        match self.inner.registry.snapshot().get(function) {
            Some(_) => Ok(()),
            None => Err(DeployError::UnknownFunction(function.to_owned())),
        }
    }

    /// App bucket `name`, if it is a valid bucket name.
    pub fn app_bucket(&self, name: &str) -> Result<BucketId, DeployError> {
        if is_bucket_name(name) {
            Ok(BucketId::App(name.to_owned()))
        } else {
            Err(DeployError::BadRequest(format!(
                "`{name}` is not an app bucket name: 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter or digit (`default` is each function's own)"
            )))
        }
    }

    /// Up to `limit` (at most [`MAX_KEYS_PER_LIST`]) keys of `bucket` after
    /// `after`, in byte order.
    pub async fn kv_keys(
        &self,
        bucket: &BucketId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, DeployError> {
        let limit = limit.clamp(1, MAX_KEYS_PER_LIST);
        let page = self.inner.kv.list_keys(bucket, after, limit).await;
        page.map_err(|e| operator_error(bucket, e))
    }

    /// The value of `key` in `bucket`.
    pub async fn kv_get(&self, bucket: &BucketId, key: &str) -> Result<Vec<u8>, DeployError> {
        match self.inner.kv.get(bucket, key).await {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(DeployError::NoSuchKey {
                bucket: bucket.to_string(),
                key: key.to_owned(),
            }),
            Err(e) => Err(operator_error(bucket, e)),
        }
    }

    /// Sets `key` in `bucket` to `value`, durably.
    pub async fn kv_set(
        &self,
        bucket: &BucketId,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), DeployError> {
        let written = self.inner.kv.set(bucket, key, value).await;
        written.map_err(|e| operator_error(bucket, e))
    }

    /// Deletes `key` from `bucket` (a missing key is not an error).
    pub async fn kv_delete(&self, bucket: &BucketId, key: String) -> Result<(), DeployError> {
        let deleted = self.inner.kv.delete(bucket, key).await;
        deleted.map_err(|e| operator_error(bucket, e))
    }

    /// The names of deployed function `function`'s secrets.
    pub fn secret_names(&self, function: &str) -> Result<Vec<String>, DeployError> {
        self.ensure_deployed(function)?;
        Ok(self.inner.secrets.for_function(function).names())
    }

    /// Sets secret `name` of deployed function `function`; its guests read
    /// it from the next request on.
    pub async fn set_secret(
        &self,
        function: &str,
        name: &str,
        value: Vec<u8>,
    ) -> Result<(), DeployError> {
        self.ensure_deployed(function)?;
        let (secrets, function, name) = (
            self.inner.secrets.clone(),
            function.to_owned(),
            name.to_owned(),
        );
        tokio::task::spawn_blocking(move || secrets.set(&function, &name, &value))
            .await
            .map_err(|e| HostFailure::logged("storing a secret failed", e))?
            .map_err(secret_error)
    }

    /// Removes secret `name` of deployed function `function`; false if it
    /// had none.
    pub async fn remove_secret(&self, function: &str, name: &str) -> Result<bool, DeployError> {
        self.ensure_deployed(function)?;
        let (secrets, function, name) = (
            self.inner.secrets.clone(),
            function.to_owned(),
            name.to_owned(),
        );
        tokio::task::spawn_blocking(move || secrets.remove(&function, &name))
            .await
            .map_err(|e| HostFailure::logged("removing a secret failed", e))?
            .map_err(secret_error)
    }
}

/// A backend error as the admin API reports it.
fn operator_error(bucket: &BucketId, error: KvError) -> DeployError {
    if error.limit().is_some() {
        return DeployError::StateLimit(error.to_string());
    }
    match error {
        KvError::Backend(failure) if crate::state::is_out_of_space(&*failure) => {
            tracing::error!("the key-value store is out of space on {bucket}: {failure}");
            DeployError::InsufficientStorage(format!(
                "the host is out of storage space; nothing was written to {bucket}"
            ))
        }
        KvError::Backend(_) | KvError::Stopped => {
            HostFailure::logged(format!("the key-value store failed on {bucket}"), error).into()
        }
        other => DeployError::BadRequest(other.to_string()),
    }
}

fn secret_error(error: SecretError) -> DeployError {
    match error {
        SecretError::Io(e) => HostFailure::logged("storing secrets failed", e).into(),
        other => DeployError::BadRequest(other.to_string()),
    }
}
