//! `PUT /v1/functions/{name}`: a deploy. The body is the raw `.wasm`; the
//! route, the settings, `no-traffic`, `origin` (where the binary came from,
//! kept with the version), `reset-settings` and `move-route` are query
//! parameters. A redeploy keeps the previous version's settings where it
//! gives none (`reset-settings=true`: the defaults), and the route when it
//! gives none; another route needs `move-route=true` (see
//! [`DeployRequest`]).
//!
//! An upload over the host's limit is refused before it is read whole, and
//! the rest of it is drained (within bounds) so the client reads the error
//! instead of a reset connection.

use crate::deploy::DeployRequest;
use crate::error::DeployError;
use crate::host::Host;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::time::Duration;
use wisp_spec::headers::content_length;
use wisp_spec::settings::RawSettings;

/// How much of a rejected upload is read and discarded, and for how long.
const DRAIN_BYTES: usize = 256 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and discards (up to a bound) the rest of an upload that was
/// rejected as too large, so a client still sending it gets the error
/// response rather than a reset connection.
fn drain_in_background(mut body: Incoming) {
    tokio::spawn(async move {
        let mut left = DRAIN_BYTES;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(frame)) = body.frame().await {
                let read = frame.data_ref().map_or(0, Bytes::len);
                match left.checked_sub(read) {
                    Some(rest) => left = rest,
                    None => break,
                }
            }
        })
        .await;
    });
}

/// Deploys the request's body; answers 201 with the [`DeployReport`](wisp_spec::api::DeployReport).
pub(super) async fn deploy(
    host: &Host,
    name: &str,
    request: http::Request<Incoming>,
) -> Result<http::Response<Bytes>, DeployError> {
    let query = request.uri().query().unwrap_or("");
    let mut settings = RawSettings::default();
    let mut route = None;
    let mut take_traffic = true;
    let mut reset_settings = false;
    let mut move_route = false;
    let mut origin = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "route" if route.is_some() => {
                return Err(DeployError::BadRequest(format!(
                    "`route` is given twice (`{value}`): give it once"
                )));
            }
            "route" => route = Some(value.into_owned()),
            "origin" => origin = Some(value.into_owned()),
            "no-traffic" => take_traffic = value == "false",
            "reset-settings" => reset_settings = value != "false",
            "move-route" => move_route = value != "false",
            _ => settings.add_once(&key, value.into_owned())?,
        }
    }
    let limit = host.config().max_upload;
    let declared =
        content_length(request.headers()).map_err(|e| DeployError::BadRequest(e.to_string()))?;
    let mut upload = request.into_body();
    if declared.is_some_and(|n| n > limit) {
        drain_in_background(upload);
        return Err(DeployError::TooLarge { limit });
    }
    let collected = Limited::new(&mut upload, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await;
    let body = match collected {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            drain_in_background(upload);
            return Err(DeployError::TooLarge { limit });
        }
        Err(e) => {
            return Err(DeployError::BadRequest(format!(
                "reading the upload failed: {e}"
            )));
        }
    };
    if body.is_empty() {
        return Err(DeployError::BadRequest(
            "the upload is empty: send the `.wasm` file as the request body".into(),
        ));
    }
    let request = DeployRequest {
        name: name.to_owned(),
        route,
        wasm: body,
        settings,
        reset_settings,
        move_route,
        take_traffic,
        origin,
    };
    let report = host.deploy(request).await?;
    Ok(super::json(StatusCode::CREATED, &report))
}
