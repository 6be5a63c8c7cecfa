//! Logs and traces of `wisp serve`.
//!
//! Logs go to stderr (human or JSON lines), filtered by `RUST_LOG`. Traces
//! are OpenTelemetry, exported over OTLP/HTTP (protobuf), and configured by
//! the standard variables: they are on when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, unless
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`;
//! `OTEL_SERVICE_NAME` (default `wisp`), `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_BSP_*` are read by the SDK. With
//! traces off, the host's spans (target [`wisp_host::SPAN_TARGET`]) are
//! disabled at their call sites and cost nothing; they never show in logs.
//! With traces on, the log says so once at start, with the endpoint, and
//! warns when exports fail (at most once a minute, with a count).

use anyhow::Context as _;
use opentelemetry::global;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use wisp_host::{SPAN_TARGET, TraceContext};

/// The service name when `OTEL_SERVICE_NAME` does not say.
const SERVICE_NAME: &str = "wisp";

/// The installed logging, and the trace exporter when traces are on.
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs logging (JSON lines when `json`) and, when the environment
    /// asks for it, the OTLP trace exporter.
    pub(crate) fn install(json: bool) -> anyhow::Result<Telemetry> {
        let provider = if traces_wanted() {
            Some(provider()?)
        } else {
            None
        };
        let logs = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"))
            .add_directive(format!("{SPAN_TARGET}=off").parse()?);
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        let fmt = if json {
            fmt.json().with_filter(logs).boxed()
        } else {
            fmt.with_filter(logs).boxed()
        };
        let traces = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(SERVICE_NAME))
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(Targets::new().with_target(SPAN_TARGET, LevelFilter::INFO))
        });
        // Without traces, no layer at all rather than an absent one: an
        // absent (`None`) layer says it wants every callsite, which would
        // make the host's spans live, at a cost on every request, with
        // nothing to export them.
        let logs_only = tracing_subscriber::registry().with(fmt);
        match traces {
            Some(traces) => logs_only.with(traces).try_init(),
            None => logs_only.try_init(),
        }
        .context("installing logging")?;
        if provider.is_some() {
            tracing::info!(
                endpoint = %traces_endpoint(),
                "exporting traces over OTLP/HTTP"
            );
        }
        Ok(Telemetry { provider })
    }

    /// A guest worker's logging: JSON lines on stderr, which its front
    /// process reads and logs as its own, with the function named (the
    /// worker has no environment, so no `RUST_LOG`: `info`).
    pub(crate) fn install_for_worker() {
        let filter = EnvFilter::new("info,wasmtime=warn,cranelift=warn").add_directive(
            format!("{SPAN_TARGET}=off")
                .parse()
                .unwrap_or_else(|_| LevelFilter::INFO.into()),
        );
        let fmt = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter);
        let _ = tracing_subscriber::registry().with(fmt).try_init();
    }

    /// What the host needs to join its spans to traces, when traces are on.
    pub(crate) fn trace_context(&self) -> Option<Arc<dyn TraceContext>> {
        self.provider
            .as_ref()
            .map(|_| Arc::new(W3cTraceContext) as Arc<dyn TraceContext>)
    }

    /// Exports what is left (blocking, up to the exporter's timeout).
    pub(crate) fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: flushing traces failed: {error}");
        }
    }
}

/// True when the environment asks for traces.
fn traces_wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| {
        std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// The tracer provider: OTLP/HTTP protobuf, batched on its own thread.
fn provider() -> anyhow::Result<SdkTracerProvider> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .context("setting up the OTLP trace exporter")?;
    // The SDK reads OTEL_SERVICE_NAME (and OTEL_RESOURCE_ATTRIBUTES);
    // `wisp` stands in for its `unknown_service` default.
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let resource = if named {
        detected
    } else {
        Resource::builder().with_service_name(SERVICE_NAME).build()
    };
    let exporter = WatchedExporter {
        inner: exporter,
        endpoint: traces_endpoint(),
        warned: Mutex::new(Warned::default()),
    };
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Where traces go, as the SDK reads the environment, without any
/// credentials in the URL.
fn traces_endpoint() -> String {
    let from = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let endpoint = from("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").unwrap_or_else(|| {
        let base = from("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
        format!("{}/v1/traces", base.trim_end_matches('/'))
    });
    hide_userinfo(&endpoint)
}

/// `text` with the `user:password@` of every URL in it hidden (an
/// endpoint's, or one an exporter's error quotes).
fn hide_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == ')' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(user_end) => {
                out.push('…');
                rest = &tail[user_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Least time between two warnings about failed exports.
const EXPORT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// The OTLP exporter, with failures logged: an endpoint that answers
/// nothing is not silent.
#[derive(Debug)]
struct WatchedExporter {
    inner: SpanExporter,
    endpoint: String,
    warned: Mutex<Warned>,
}

/// When the last warning was logged, and the failures since.
#[derive(Debug, Default)]
struct Warned {
    at: Option<Instant>,
    failures_since: u64,
}

impl opentelemetry_sdk::trace::SpanExporter for WatchedExporter {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
            let due = warned
                .at
                .is_none_or(|at| at.elapsed() >= EXPORT_WARNING_INTERVAL);
            if due {
                tracing::warn!(
                    endpoint = %self.endpoint,
                    spans,
                    earlier_failures = warned.failures_since,
                    "exporting traces failed: {}",
                    hide_userinfo(&error.to_string())
                );
                *warned = Warned {
                    at: Some(Instant::now()),
                    failures_since: 0,
                };
            } else {
                warned.failures_since += 1;
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// W3C Trace Context (`traceparent`) over the OpenTelemetry layer.
#[derive(Debug)]
struct W3cTraceContext;

impl TraceContext for W3cTraceContext {
    fn continue_trace(&self, span: &Span, headers: &http::HeaderMap) {
        let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        if parent.span().span_context().is_valid() {
            // Refused only for a span the layer does not record; it then has no trace.
            let _ = span.set_parent(parent);
        }
    }

    fn inject(&self, span: &Span, headers: &mut http::HeaderMap) {
        let context = span.context();
        global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut HeaderInjector(headers))
        });
    }

    fn trace_id(&self, span: &Span) -> Option<String> {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context
            .is_valid()
            .then(|| span_context.trace_id().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_logged_without_its_credentials() {
        assert_eq!(
            hide_userinfo("https://user:secret@otel.example:4318/v1/traces"),
            "https://…@otel.example:4318/v1/traces"
        );
        assert_eq!(
            hide_userinfo("http://127.0.0.1:4318/v1/traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            hide_userinfo("error sending request for url (http://u:p@collector:4318/v1/traces)"),
            "error sending request for url (http://…@collector:4318/v1/traces)"
        );
    }
}
