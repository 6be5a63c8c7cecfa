//! Functions in OCI registries, as CNCF wasm OCI artifacts (`oci-wasm`):
//! one `application/wasm` layer, an `application/vnd.wasm.config.v0+json`
//! config, an OCI image manifest.
//!
//! `wisp push` publishes a deployed version's binary; `wisp deploy NAME
//! oci://REGISTRY/REPO:TAG` (or `@sha256:…`) pulls one and deploys it,
//! recording the manifest digest as the version's origin. Registries are
//! spoken to over HTTPS; plain HTTP only with `--insecure-registry`.
//! Credentials come from `WISP_REGISTRY_USERNAME` and
//! `WISP_REGISTRY_PASSWORD` (anonymous without them).

use anyhow::{Context, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_wasm::{WasmClient, WasmConfig};
use wisp_spec::inspect;

/// The scheme a deploy's source uses to name an OCI artifact.
pub(crate) const SCHEME: &str = "oci://";

/// A registry reference: `REGISTRY/REPO:TAG` or `REGISTRY/REPO@sha256:…`,
/// with or without `oci://` in front.
pub(crate) fn reference(text: &str) -> anyhow::Result<Reference> {
    let bare = text.strip_prefix(SCHEME).unwrap_or(text);
    bare.parse::<Reference>().with_context(|| {
        format!("`{text}` is not an OCI reference: expected e.g. `oci://registry.example.com/fns/hello:v1`")
    })
}

fn client(insecure: bool) -> Client {
    Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..ClientConfig::default()
    })
}

fn auth() -> RegistryAuth {
    match (
        std::env::var("WISP_REGISTRY_USERNAME"),
        std::env::var("WISP_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

/// What a registry error says, with a hint when it looks like a plain
/// HTTP registry spoken to over HTTPS.
fn registry_error(
    action: &str,
    reference: &Reference,
    insecure: bool,
    error: &anyhow::Error,
) -> anyhow::Error {
    let chain = format!("{error:#}");
    let hint = if !insecure
        && (chain.contains("http") || chain.contains("tls") || chain.contains("SSL"))
    {
        " (if this registry speaks plain HTTP, and you trust the network, add `--insecure-registry`)"
    } else {
        ""
    };
    anyhow::anyhow!("{action} `{reference}` failed: {chain}{hint}")
}

/// Publishes `wasm` at `reference`; returns the manifest's digest.
pub(crate) async fn push(
    reference: &Reference,
    wasm: Vec<u8>,
    insecure: bool,
) -> anyhow::Result<String> {
    let (config, layer) = if inspect::inspect(&wasm)?.is_component() {
        WasmConfig::from_raw_component(wasm, None)?
    } else {
        WasmConfig::from_raw_module(wasm, None)?
    };
    let oci = client(insecure);
    let auth = auth();
    let wasm_client = WasmClient::new(oci.clone());
    wasm_client
        .push(reference, &auth, layer, config, None)
        .await
        .map_err(|e| registry_error("pushing to", reference, insecure, &e))?;
    oci.fetch_manifest_digest(reference, &auth)
        .await
        .map_err(|e| registry_error("reading the digest of", reference, insecure, &e.into()))
}

/// Pulls the wasm at `reference`; returns it and the manifest's digest.
pub(crate) async fn pull(
    reference: &Reference,
    insecure: bool,
) -> anyhow::Result<(Vec<u8>, String)> {
    let image = WasmClient::new(client(insecure))
        .pull(reference, &auth())
        .await
        .map_err(|e| registry_error("pulling", reference, insecure, &e))?;
    let Some(digest) = image.digest else {
        bail!("the registry gave no digest for `{reference}`");
    };
    let Some(layer) = image.layers.into_iter().next() else {
        bail!("`{reference}` has no wasm layer");
    };
    Ok((layer.data.to_vec(), digest))
}

/// Where a deploy pulled from `reference` came from: the repository at the
/// manifest's digest, so the version names exactly what it runs.
pub(crate) fn origin(reference: &Reference, digest: &str) -> String {
    format!(
        "{SCHEME}{}/{}@{digest}",
        reference.resolve_registry(),
        reference.repository()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_or_without_the_scheme_and_name_their_digest() {
        let tagged = reference("oci://127.0.0.1:5000/fns/hello:v1").unwrap();
        assert_eq!(tagged.registry(), "127.0.0.1:5000");
        assert_eq!(tagged.repository(), "fns/hello");
        assert_eq!(tagged.tag(), Some("v1"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = reference(&format!("127.0.0.1:5000/fns/hello@{digest}")).unwrap();
        assert_eq!(pinned.digest(), Some(digest.as_str()));
        assert_eq!(
            origin(&tagged, &digest),
            format!("oci://127.0.0.1:5000/fns/hello@{digest}")
        );
        assert!(reference("oci://").is_err());
    }
}
