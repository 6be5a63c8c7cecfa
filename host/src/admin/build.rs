//! `POST /v1/functions/{name}/build`: a source tree (a tar archive,
//! gzipped or not) built on the host and deployed as a new version — the
//! same query as a deploy (`route`, settings, `no-traffic`, …; they win
//! over the tree's own `wisp.toml`). The answer is `200` with a stream of
//! [`BuildEvent`]s, one JSON object per line: the build's output as it
//! comes (a note at least every 15 s, so no proxy or idle timeout ends a
//! quiet build), then `deployed` with the deploy report, or `failed` with
//! why — a failed build deploys nothing and the serving version keeps
//! serving. A build whose client left before it ended (an interrupted
//! push) runs to its end but is not deployed. What is wrong before the build starts (no such builder, an
//! archive over the upload limit) is an ordinary JSON error.
//!
//! `GET /v1/functions/{name}/build`: the last build's output, as text.

use super::upload::{DeployQuery, read_upload};
use crate::error::DeployError;
use crate::host::Host;
use crate::runtime::body::{BoxError, ResponseBody, full};
use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use wisp_spec::api::BuildEvent;

/// Lines of build output held for a slow reader before the build waits.
const PENDING_LINES: usize = 256;

/// Builds and deploys the request's tree, streaming the build.
pub(super) async fn build(
    host: &Host,
    name: &str,
    request: http::Request<Incoming>,
) -> Result<http::Response<ResponseBody>, DeployError> {
    wisp_spec::name::validate_name(name).map_err(DeployError::InvalidName)?;
    let Some(builds) = host.builds().cloned() else {
        return Err(DeployError::BadRequest(
            "this host does not build source trees (`wisp serve --builds true`)".into(),
        ));
    };
    let query = DeployQuery::parse(request.uri().query().unwrap_or(""))?;
    // A deploy token's push may change the function's code only: its
    // route and settings stay the admin's.
    let code_only =
        request.extensions().get::<super::git::Pusher>() == Some(&super::git::Pusher::DeployToken);
    let archive = read_upload(host, request, "a tar archive of the source tree").await?;
    if let Some((version, route)) = already_serving(host, name, query.origin.as_deref()) {
        let origin = query.origin.unwrap_or_default();
        let events = [
            BuildEvent::Log(format!(
                "wisp: {origin} already serves as v{version} (built once, by the host that got it first): nothing to build"
            )),
            BuildEvent::Unchanged { version, route },
        ];
        let mut text = Vec::new();
        for event in &events {
            text.extend(serde_json::to_vec(event).unwrap_or_default());
            text.push(b'\n');
        }
        let mut response = http::Response::new(full(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-ndjson"),
        );
        return Ok(response);
    }
    let (log, mut lines) = tokio::sync::mpsc::channel::<String>(PENDING_LINES);
    let (events, received) = tokio::sync::mpsc::channel::<BuildEvent>(PENDING_LINES);
    let (host, name) = (host.clone(), name.to_owned());
    tokio::spawn(async move {
        let forward = {
            let events = events.clone();
            async move {
                while let Some(line) = lines.recv().await {
                    let _ = events.send(BuildEvent::Log(line)).await;
                }
            }
        };
        let building = name.clone();
        let work = async move {
            let built = builds.build(&building, archive, &log).await;
            drop(log);
            built
        };
        let (built, ()) = tokio::join!(work, forward);
        if events.is_closed() && built.is_ok() {
            // The client left (a `git push` interrupted, a `wisp deploy
            // --source` stopped): what it no longer waits for is not
            // deployed — for a push, the branch did not move either.
            tracing::info!(function = %name, "a build's client left before it ended: not deployed");
            return;
        }
        let end = match built {
            Ok(mut built) => {
                if code_only && (built.route.is_some() || !built.settings.is_empty()) {
                    let _ = events
                        .send(BuildEvent::Log(
                            "wisp: a deploy token's push changes the code only: wisp.toml's route and settings are left out (the admin sets them)".into(),
                        ))
                        .await;
                    built.route = None;
                    built.settings = Default::default();
                }
                deploy(&host, &name, query, built).await
            }
            Err(e) => Err(e),
        };
        let event = match end {
            Ok(report) => BuildEvent::Deployed(Box::new(report)),
            Err(e) => BuildEvent::Failed {
                kind: e.kind().to_owned(),
                message: e.to_string(),
            },
        };
        let _ = events.send(event).await;
    });
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        let event = received.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((
            Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(line))),
            received,
        ))
    });
    let mut response = http::Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// The version and route of function `name` when its newest version came
/// from `origin` (a push's `git COMMIT`) and takes all its traffic: a push
/// of a commit that another host of the cluster already built and
/// deployed is not built twice.
fn already_serving(host: &Host, name: &str, origin: Option<&str>) -> Option<(u32, String)> {
    let origin = origin.filter(|o| o.starts_with("git "))?;
    let info = host.function(name)?;
    let newest = info.versions.last()?;
    let serves_all = matches!(info.traffic.as_slice(), [share] if share.version == newest.number && share.weight == 100);
    let from = newest.origin.as_deref()?;
    (serves_all && from.starts_with(&format!("{origin}, "))).then_some((newest.number, info.route))
}

/// Deploys what a build made: the query's route and settings over the
/// tree's own.
async fn deploy(
    host: &Host,
    name: &str,
    mut query: DeployQuery,
    built: crate::build::Built,
) -> Result<wisp_spec::api::DeployReport, DeployError> {
    query.settings.inherit(&built.settings);
    query.route = query.route.or(built.route);
    if query.route.is_none() && host.function(name).is_none() {
        // A new function, and neither the push nor its tree names a route.
        query.route = Some(format!("/{name}"));
    }
    let how = format!(
        "built on the host ({}, {})",
        built.language.map_or("its own command", |l| l.name()),
        crate::build::seconds(built.took)
    );
    query.origin = Some(match query.origin.take() {
        Some(from) => format!("{from}, {how}"),
        None => how,
    });
    host.deploy(query.request(name, built.wasm)).await
}

/// `/v1/functions/{name}/tokens[/{id}]`: make (`POST`, the token shown
/// once), list (`GET`) or remove (`DELETE …/{id}`) a function's deploy
/// tokens. The function need not exist yet: a token may create it by
/// pushing.
pub(super) fn tokens(
    host: &Host,
    method: &http::Method,
    name: &str,
    rest: &[&str],
) -> Result<http::Response<Bytes>, DeployError> {
    wisp_spec::name::validate_name(name).map_err(DeployError::InvalidName)?;
    let Some(builds) = host.builds() else {
        return Err(DeployError::BadRequest(
            "this host does not build functions from source (`wisp serve --builds true`)".into(),
        ));
    };
    let tokens = builds.tokens();
    match (method, rest) {
        (&http::Method::POST, []) => {
            let token = format!(
                "wisp_dt_{}",
                super::random_hex().map_err(|e| {
                    DeployError::Storage(crate::error::HostFailure::logged(
                        "making a deploy token failed",
                        e,
                    ))
                })?
            );
            let mut info = tokens.add(name, &token).map_err(DeployError::BadRequest)?;
            info.token = Some(token);
            Ok(super::json(StatusCode::CREATED, &info))
        }
        (&http::Method::GET, []) => Ok(super::json(StatusCode::OK, &tokens.list(name))),
        (&http::Method::DELETE, [id]) => match tokens.remove(name, id) {
            Ok(true) => Ok(super::json(
                StatusCode::OK,
                &serde_json::json!({ "removed": id }),
            )),
            Ok(false) => Err(DeployError::BadRequest(format!(
                "function `{name}` has no deploy token `{id}` (`wisp token ls {name}`)"
            ))),
            Err(e) => Err(DeployError::BadRequest(e)),
        },
        _ => Err(DeployError::BadRequest(format!(
            "`{method}` is not supported on a function's tokens: POST makes one, GET lists them, DELETE …/tokens/ID removes one"
        ))),
    }
}

/// The last build's output of function `name`.
pub(super) fn last_log(host: &Host, name: &str) -> http::Response<ResponseBody> {
    let log = host.builds().and_then(|builds| builds.last_log(name));
    match log {
        Some(text) => {
            let mut response = http::Response::new(full(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
        None => crate::error::json_error(
            StatusCode::NOT_FOUND,
            "no-build",
            &format!("function `{name}` has no build on this host"),
            None,
        )
        .map(full),
    }
}
