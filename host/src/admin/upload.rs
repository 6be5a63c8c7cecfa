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

/// What a deploy's query gives: everything of a [`DeployRequest`] but the
/// name and the binary.
pub(super) struct DeployQuery {
    pub settings: RawSettings,
    pub route: Option<String>,
    pub take_traffic: bool,
    pub reset_settings: bool,
    pub move_route: bool,
    pub origin: Option<String>,
}

impl DeployQuery {
    /// Parses `route`, `origin`, `no-traffic`, `reset-settings`,
    /// `move-route` and every setting.
    pub(super) fn parse(query: &str) -> Result<DeployQuery, DeployError> {
        let mut parsed = DeployQuery {
            settings: RawSettings::default(),
            route: None,
            take_traffic: true,
            reset_settings: false,
            move_route: false,
            origin: None,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "route" if parsed.route.is_some() => {
                    return Err(DeployError::BadRequest(format!(
                        "`route` is given twice (`{value}`): give it once"
                    )));
                }
                "route" => parsed.route = Some(value.into_owned()),
                "origin" => parsed.origin = Some(value.into_owned()),
                "no-traffic" => parsed.take_traffic = value == "false",
                "reset-settings" => parsed.reset_settings = value != "false",
                "move-route" => parsed.move_route = value != "false",
                _ => parsed.settings.add_once(&key, value.into_owned())?,
            }
        }
        Ok(parsed)
    }

    /// The deploy of `wasm` as `name` this query asks for.
    pub(super) fn request(self, name: &str, wasm: Bytes) -> DeployRequest {
        DeployRequest {
            name: name.to_owned(),
            route: self.route,
            wasm,
            settings: self.settings,
            reset_settings: self.reset_settings,
            move_route: self.move_route,
            take_traffic: self.take_traffic,
            origin: self.origin,
        }
    }
}

/// The whole body of an upload, within the host's upload limit (an upload
/// over it is refused before it is read whole); `what` names it in the
/// error for an empty one.
pub(super) async fn read_upload(
    host: &Host,
    request: http::Request<Incoming>,
    what: &str,
) -> Result<Bytes, DeployError> {
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
        return Err(DeployError::BadRequest(format!(
            "the upload is empty: send {what} as the request body"
        )));
    }
    Ok(body)
}

/// Deploys the request's body; answers 201 with the [`DeployReport`](wisp_spec::api::DeployReport).
pub(super) async fn deploy(
    host: &Host,
    name: &str,
    request: http::Request<Incoming>,
) -> Result<http::Response<Bytes>, DeployError> {
    let query = DeployQuery::parse(request.uri().query().unwrap_or(""))?;
    let body = read_upload(host, request, "the `.wasm` file").await?;
    let report = host.deploy(query.request(name, body)).await?;
    Ok(super::json(StatusCode::CREATED, &report))
}
