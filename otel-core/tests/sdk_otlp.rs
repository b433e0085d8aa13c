//! The SDK setup against a real OTLP/HTTP receiver on loopback, a closed port and a listener that
//! never answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use otelrs_core::sdk::{Exporter, OtlpProtocol, SdkBuilder, SdkConfig};
use otelrs_core::Instrumentation;
use prost::Message;

#[derive(Clone, Debug)]
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 OTLP receiver: records each POST and answers `200` with an empty body.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || serve(conn, store));
            }
        });
        Self { port, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

fn serve(conn: TcpStream, store: Arc<Mutex<Vec<Received>>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut content_length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = v.trim().parse().unwrap_or(0),
                    "content-type" => content_type = v.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        store.lock().unwrap().push(Received {
            path,
            content_type: content_type.clone(),
            body,
        });
        let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn resource_attr(resource: &Option<Resource>, key: &str) -> Option<String> {
    resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

fn base_config() -> SdkConfig {
    // Tests never read the developer's OTEL_* variables.
    SdkConfig::default()
}

#[test]
fn guard_flushes_traces_metrics_and_logs_to_an_otlp_http_receiver() {
    use tracing_subscriber::layer::SubscriberExt;

    let receiver = Receiver::start();
    let guard = SdkBuilder::from_config(base_config())
        .with_service_name("otlp-test")
        .with_resource_attributes([KeyValue::new("deployment.environment.name", "ci")])
        .with_otlp_protocol(OtlpProtocol::HttpProtobuf)
        .with_otlp_endpoint(receiver.endpoint())
        .build()
        .expect("sdk builds");
    let inst = guard.instrumentation();
    let scope = Instrumentation::scope("otlp-test-scope", "1.2.3");
    let tracer = inst.tracer(scope.clone());
    let meter = inst.meter(scope);
    meter
        .u64_counter("test.requests")
        .build()
        .add(7, &[KeyValue::new("route", "/x")]);

    let subscriber = tracing_subscriber::registry().with(guard.tracing_layer().expect("logs are exported"));
    let span = tracer
        .span_builder("exported-span")
        .with_attributes([KeyValue::new("http.response.status_code", 201i64)])
        .start(&tracer);
    let trace_id = span.span_context().trace_id();
    let cx = opentelemetry::Context::new().with_span(span);
    {
        let _attached = cx.clone().attach();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(order_id = 42, "payment declined");
            otelrs_core::status::emit_exception(
                otelrs_core::status::ExceptionEvent::HttpServer,
                "timeout",
                "upstream timed out",
            );
        });
    }
    cx.span().end();

    guard.shutdown().expect("shutdown flushes without error");

    // Everything delivered, nothing lost, and the exporters' own counters say so.
    let stats = guard.export_stats();
    assert_eq!(
        (stats.spans_ended, stats.spans_exported, stats.spans_failed),
        (1, 1, 0),
        "{stats}"
    );
    assert_eq!(stats.spans_pending_or_dropped(), 0);
    assert!(stats.metric_points_exported >= 1, "{stats}");
    assert_eq!(stats.log_records_exported, 2, "{stats}");
    assert_eq!(stats.failed(), 0);
    assert_eq!(guard.last_export_error(), None);

    let traces = receiver.received("/v1/traces");
    assert!(!traces.is_empty(), "no trace export received");
    assert_eq!(traces[0].content_type, "application/x-protobuf");
    let mut names = Vec::new();
    for t in &traces {
        let req = ExportTraceServiceRequest::decode(t.body.as_slice()).expect("valid OTLP protobuf");
        for rs in req.resource_spans {
            assert_eq!(
                resource_attr(&rs.resource, "service.name").as_deref(),
                Some("otlp-test")
            );
            assert_eq!(
                resource_attr(&rs.resource, "deployment.environment.name").as_deref(),
                Some("ci")
            );
            assert_eq!(
                resource_attr(&rs.resource, "telemetry.sdk.language").as_deref(),
                Some("rust")
            );
            for ss in rs.scope_spans {
                let scope = ss.scope.expect("scope");
                assert_eq!(scope.name, "otlp-test-scope");
                assert_eq!(scope.version, "1.2.3");
                assert_eq!(ss.schema_url, opentelemetry_semantic_conventions::SCHEMA_URL);
                for s in ss.spans {
                    assert_eq!(s.trace_id, trace_id.to_bytes().to_vec());
                    names.push(s.name);
                }
            }
        }
    }
    assert_eq!(names, vec!["exported-span".to_string()]);

    let metrics = receiver.received("/v1/metrics");
    assert!(!metrics.is_empty(), "no metric export received");
    let found = metrics.iter().any(|m| {
        let req = ExportMetricsServiceRequest::decode(m.body.as_slice()).expect("valid OTLP protobuf");
        req.resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .any(|m| m.name == "test.requests")
    });
    assert!(found, "test.requests was not exported");
    // The semconv SDK self-observability counter: the final collection (after the span flush)
    // reports the one exported span for the OTLP/HTTP span exporter, without error.type.
    let span_exported: Vec<_> = metrics
        .iter()
        .flat_map(|m| {
            ExportMetricsServiceRequest::decode(m.body.as_slice())
                .expect("valid OTLP protobuf")
                .resource_metrics
        })
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
        .filter(|m| m.name == "otel.sdk.exporter.span.exported")
        .collect();
    let last = span_exported
        .last()
        .expect("otel.sdk.exporter.span.exported was exported");
    assert_eq!(last.unit, "{span}");
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) = &last.data else {
        panic!("otel.sdk.exporter.span.exported is not a sum: {last:?}");
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.data_points.len(), 1, "{sum:?}");
    let point = &sum.data_points[0];
    assert_eq!(
        point.value,
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(1))
    );
    let mut attrs: Vec<(String, String)> = point
        .attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) if kv.key == "server.port" => format!("int {i}"),
                other => panic!("{} has an unexpected type: {other:?}", kv.key),
            };
            (kv.key.clone(), v)
        })
        .collect();
    attrs.sort();
    assert_eq!(
        attrs,
        vec![
            (
                "otel.component.name".to_string(),
                "otlp_http_span_exporter/0".to_string()
            ),
            ("otel.component.type".to_string(), "otlp_http_span_exporter".to_string()),
            ("server.address".to_string(), "127.0.0.1".to_string()),
            ("server.port".to_string(), format!("int {}", receiver.port)),
        ]
    );

    let logs = receiver.received("/v1/logs");
    assert!(!logs.is_empty(), "no log export received");
    let records: Vec<_> = logs
        .iter()
        .flat_map(|l| {
            ExportLogsServiceRequest::decode(l.body.as_slice())
                .expect("valid OTLP protobuf")
                .resource_logs
        })
        .flat_map(|rl| rl.scope_logs)
        .flat_map(|sl| sl.log_records)
        .collect();
    let record = records
        .iter()
        .find(|r| matches!(r.body.as_ref().and_then(|b| b.value.as_ref()), Some(AnyValue::StringValue(s)) if s == "payment declined"))
        .expect("the tracing event was exported as a log record");
    assert_eq!(record.severity_text, "WARN");
    assert_eq!(
        record.trace_id,
        trace_id.to_bytes().to_vec(),
        "log carries the active trace id"
    );

    // The semconv exception event: a log record named after the event, ERROR severity, with
    // exception.type and exception.message, correlated with the active span.
    let exception = records
        .iter()
        .find(|r| r.event_name == "http.server.request.exception")
        .expect("the exception event was exported as a log record");
    assert_eq!(exception.severity_text, "ERROR");
    assert_eq!(exception.trace_id, trace_id.to_bytes().to_vec());
    let attr =
        |key: &str| {
            exception.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                }
            })
        };
    assert_eq!(attr("exception.type").as_deref(), Some("timeout"));
    assert_eq!(attr("exception.message").as_deref(), Some("upstream timed out"));
}

#[test]
fn http_json_protocol() {
    let receiver = Receiver::start();
    let guard = SdkBuilder::from_config(base_config())
        .with_otlp_protocol(OtlpProtocol::HttpJson)
        .with_otlp_endpoint(receiver.endpoint())
        .with_metrics_exporters([])
        .with_logs_exporters([])
        .build()
        .unwrap();
    let tracer = guard.instrumentation().tracer(Instrumentation::scope("json", "0"));
    tracer.start("json-span").end();
    guard.shutdown().unwrap();
    let traces = receiver.received("/v1/traces");
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].content_type, "application/json");
    let body = String::from_utf8(traces[0].body.clone()).unwrap();
    assert!(body.contains("\"json-span\""), "{body}");
}

fn unused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn busy_app(guard: &otelrs_core::sdk::TelemetryGuard) -> Duration {
    let tracer = guard.instrumentation().tracer(Instrumentation::scope("busy", "0"));
    let start = Instant::now();
    for i in 0..5_000 {
        let mut s = tracer.start("work");
        s.set_attribute(KeyValue::new("i", i as i64));
        s.end();
    }
    start.elapsed()
}

#[test]
fn closed_port_does_not_block_the_application_or_hang_shutdown() {
    let port = unused_port();
    let guard = SdkBuilder::from_config(base_config())
        .with_otlp_endpoint(format!("http://127.0.0.1:{port}"))
        .with_otlp_timeout(Duration::from_millis(500))
        .with_shutdown_timeout(Duration::from_secs(3))
        .with_logs_exporters([])
        .build()
        .unwrap();
    // The application path never waits on the exporter: 5000 spans end without blocking.
    let spent = busy_app(&guard);
    assert!(spent < Duration::from_secs(20), "ending spans took {spent:?}");
    let start = Instant::now();
    let result = guard.shutdown();
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(6),
        "shutdown waited {waited:?}, result {result:?}"
    );
    // Nothing reached a collector, and every span is accounted for: either in a failed export
    // or dropped for a full queue (the queues are empty after shutdown).
    let stats = guard.export_stats();
    assert_eq!(stats.spans_ended, 5_000, "{stats}");
    assert_eq!(stats.spans_exported, 0, "{stats}");
    assert!(stats.spans_failed > 0, "{stats}");
    assert_eq!(stats.spans_failed + stats.spans_pending_or_dropped(), 5_000, "{stats}");
    let error = guard.last_export_error().expect("the failed export is reported");
    assert!(error.starts_with("otlp_http_"), "{error}");
}

#[test]
fn silent_listener_is_bounded_by_the_shutdown_timeout() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let guard = SdkBuilder::from_config(base_config())
        .with_otlp_endpoint(format!("http://127.0.0.1:{port}"))
        .with_otlp_timeout(Duration::from_secs(30))
        .with_shutdown_timeout(Duration::from_secs(1))
        .with_logs_exporters([])
        .build()
        .unwrap();
    busy_app(&guard);
    let start = Instant::now();
    let result = guard.shutdown();
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(4), "shutdown waited {waited:?}");
    assert!(
        result.is_err(),
        "a collector that never answers cannot have received the flush"
    );
    // Dropping the guard afterwards does not wait again.
    let start = Instant::now();
    drop(guard);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn console_exporter_is_selectable_from_env_values() {
    let config = SdkConfig::from_lookup(|k| match k {
        "OTEL_TRACES_EXPORTER" => Some("console".into()),
        "OTEL_METRICS_EXPORTER" => Some("none".into()),
        "OTEL_LOGS_EXPORTER" => Some("none".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(config.traces_exporters, vec![Exporter::Console]);
    let guard = SdkBuilder::from_config(config).build().unwrap();
    assert!(guard.tracer_provider().is_some());
    assert!(guard.meter_provider().is_none());
    assert!(guard.logger_provider().is_none());
    guard.shutdown().unwrap();
}
