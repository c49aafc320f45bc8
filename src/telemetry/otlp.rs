//! The OTLP/HTTP (protobuf) trace exporter (CONTRACT §7.6): spans are queued in memory and
//! sent in batches by the SDK's own thread, so a slow or unreachable collector costs the
//! requests and deliveries nothing: when the queue (2048 spans unless
//! `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise) is full, new spans are dropped, never waited for.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// How long one export may take before it is given up (the batch is dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The layer the exported spans go through.
pub type OtelLayer =
    tracing_opentelemetry::OpenTelemetryLayer<tracing_subscriber::Registry, opentelemetry_sdk::trace::Tracer>;

/// Where traces go and how many are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSettings {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans are POSTed to `/v1/traces`.
    pub endpoint: url::Url,
    /// The share of new traces recorded, 0.0 to 1.0; a trace given by the caller's
    /// `traceparent` follows the caller's sampled flag.
    pub sample: f64,
}

impl TraceSettings {
    /// From the settings' text; None when no endpoint is set.
    pub fn parse(endpoint: Option<&str>, sample: Option<f64>) -> anyhow::Result<Option<Self>> {
        let sample = sample.unwrap_or(1.0);
        anyhow::ensure!(
            (0.0..=1.0).contains(&sample),
            "trace_sample must be from 0.0 to 1.0, not {sample}"
        );
        let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        let endpoint = url::Url::parse(endpoint).context("otlp_endpoint must be an http:// or https:// URL")?;
        anyhow::ensure!(
            matches!(endpoint.scheme(), "http" | "https") && endpoint.host().is_some(),
            "otlp_endpoint must be an http:// or https:// URL with a host"
        );
        anyhow::ensure!(
            endpoint.query().is_none() && endpoint.username().is_empty() && endpoint.password().is_none(),
            "otlp_endpoint must not carry a query or credentials"
        );
        Ok(Some(Self { endpoint, sample }))
    }

    /// The URL spans are sent to: the endpoint's path with `/v1/traces` added, unless it
    /// already ends so.
    pub fn traces_url(&self) -> String {
        let base = self.endpoint.as_str().trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        }
    }
}

/// Flushes and stops the exporter when dropped (at the end of `main`).
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("hookd: flushing the last traces failed: {e}");
        }
    }
}

/// Builds the exporter, its batch processor and the layer feeding it.
pub fn start(settings: &TraceSettings) -> anyhow::Result<(OtelLayer, Guard)> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.traces_url())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("building the OTLP exporter")?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample)));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(
            Resource::builder()
                .with_service_name("hookd")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("hookd");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((layer, Guard(provider)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert_eq!(TraceSettings::parse(None, None).unwrap(), None);
        assert_eq!(TraceSettings::parse(Some(" "), Some(0.5)).unwrap(), None);
        let s = TraceSettings::parse(Some("http://127.0.0.1:4318"), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.traces_url().as_str(), s.sample),
            ("http://127.0.0.1:4318/v1/traces", 1.0)
        );
        let s = TraceSettings::parse(Some("https://c.example/otlp/v1/traces/"), Some(0.0))
            .unwrap()
            .unwrap();
        assert_eq!(s.traces_url(), "https://c.example/otlp/v1/traces");
        for (endpoint, sample) in [
            ("http://127.0.0.1:4318", 1.5),
            ("http://127.0.0.1:4318", -0.1),
            ("http://127.0.0.1:4318", f64::NAN),
            ("ftp://collector", 1.0),
            ("not a url", 1.0),
            ("http://u:p@collector:4318", 1.0),
            ("http://collector:4318/?token=x", 1.0),
        ] {
            assert!(
                TraceSettings::parse(Some(endpoint), Some(sample)).is_err(),
                "{endpoint} {sample}"
            );
        }
    }
}
