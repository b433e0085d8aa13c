//! End-to-end tests of the receiver: real clients over loopback.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_receiver::{Failure, Pki, Receiver, ReceiverOptions, Transport};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

// ---------------------------------------------------------------------------------------------------
// Fixtures

fn traces(n: usize) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: vec![i as u8 + 1; 8],
            name: format!("span-{i}"),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn point(value: i64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: 5,
        value: Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

/// Four data points: a sum with two, a gauge with one, a histogram with one.
fn metrics() -> ExportMetricsServiceRequest {
    let metrics = vec![
        Metric {
            name: "requests".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point(1), point(2)],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "queue".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(3)],
            })),
            ..Default::default()
        },
        Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 2,
                    bucket_counts: vec![1, 1],
                    explicit_bounds: vec![10.0],
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs(n: usize) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        time_unix_nano: i as u64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client (one request per connection)

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn post_on<IO>(io: IO, path: &str, content_type: &str, gzipped: bool, body: Vec<u8>) -> hyper::Result<Reply>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    let mut request = Request::post(path)
        .header("host", "localhost")
        .header("content-type", content_type);
    if gzipped {
        request = request.header("content-encoding", "gzip");
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply { status, headers, body })
}

async fn post(receiver: &Receiver, path: &str, content_type: &str, gzipped: bool, body: Vec<u8>) -> Reply {
    let tcp = TcpStream::connect(("127.0.0.1", receiver.port())).await.unwrap();
    post_on(tcp, path, content_type, gzipped, body).await.unwrap()
}

async fn post_method(receiver: &Receiver, method: &str, path: &str) -> StatusCode {
    let tcp = TcpStream::connect(("127.0.0.1", receiver.port())).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender.send_request(request).await.unwrap().status()
}

fn tls_connector(ca_pem: &str, client: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// POSTs 3 spans over TLS; `Err` when the handshake or the request failed.
async fn post_tls(receiver: &Receiver, connector: tokio_rustls::TlsConnector) -> Result<Reply, String> {
    let tcp = TcpStream::connect(("127.0.0.1", receiver.port())).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    post_on(
        tls,
        "/v1/traces",
        "application/x-protobuf",
        false,
        traces(3).encode_to_vec(),
    )
    .await
    .map_err(|e| format!("request: {e}"))
}

// ---------------------------------------------------------------------------------------------------
// OTLP/HTTP

#[tokio::test]
async fn http_protobuf_traces_are_counted_and_kept() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http));
    assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
    let body = traces(3).encode_to_vec();
    let len = body.len() as u64;
    let reply = post(&receiver, "/v1/traces", "application/x-protobuf", false, body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/x-protobuf");
    assert!(
        reply.body.is_empty(),
        "an empty ExportTraceServiceResponse encodes to nothing"
    );

    let counts = receiver.counts();
    assert_eq!(counts.trace_requests, 1);
    assert_eq!(counts.spans, 3);
    assert_eq!(counts.bytes, len);
    assert_eq!(counts.failed_requests, 0);
    let kept = receiver.traces();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0], traces(3));
}

#[tokio::test]
async fn http_gzip_json_metrics_count_points() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http));
    let body = gzip(&serde_json::to_vec(&metrics()).unwrap());
    let len = body.len() as u64;
    let reply = post(&receiver, "/v1/metrics", "application/json", true, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");

    let counts = receiver.counts();
    assert_eq!(counts.metric_requests, 1);
    assert_eq!(counts.metric_points, 4);
    assert_eq!(counts.bytes, len, "bytes are counted before gunzip");
    assert_eq!(receiver.metrics(), vec![metrics()]);
}

#[tokio::test]
async fn http_accepts_spec_shaped_json_logs() {
    // OTLP/JSON as the spec shows it: camelCase, hex ids, 64-bit integers as strings.
    let json = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
        "scopeLogs":[{"scope":{"name":"s"},"logRecords":[
          {"timeUnixNano":"1544712660300000000","severityNumber":10,"body":{"stringValue":"one"},
           "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"},
          {"timeUnixNano":"1544712660300000001","body":{"stringValue":"two"}}]}]}]}"#;
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http));
    let reply = post(
        &receiver,
        "/v1/logs",
        "application/json; charset=utf-8",
        false,
        json.into(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let counts = receiver.counts();
    assert_eq!((counts.log_requests, counts.log_records), (1, 2));
    let record = &receiver.logs()[0].resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(record.time_unix_nano, 1544712660300000000);
    assert_eq!(record.span_id, vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]);
}

#[tokio::test]
async fn http_rejects_what_is_not_otlp() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http));
    assert_eq!(post_method(&receiver, "POST", "/v1/nope").await, StatusCode::NOT_FOUND);
    assert_eq!(
        post_method(&receiver, "GET", "/v1/traces").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let reply = post(&receiver, "/v1/traces", "text/plain", false, Vec::new()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = post(&receiver, "/v1/traces", "application/x-protobuf", false, vec![0xff; 7]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let counts = receiver.counts();
    assert_eq!((counts.trace_requests, counts.failed_requests), (0, 0));
}

/// From a plain `#[test]`, with a raw HTTP/1.1 request over a std TcpStream.
#[test]
fn http_from_a_plain_test_with_a_raw_request() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http));
    let body = logs(5).encode_to_vec();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", receiver.port())).unwrap();
    write!(
        tcp,
        "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    tcp.write_all(&body).unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let (counts, ok) = receiver.wait_for(Duration::from_secs(5), |c| c.log_records == 5);
    assert!(ok, "{counts:?}");
    assert_eq!(counts.log_requests, 1);
}

#[tokio::test]
async fn http_fail_first_answers_the_configured_status_then_succeeds() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_fail_first(
        1,
        Failure::Http {
            status: 503,
            retry_after: Some(7),
        },
    ));
    let first = post(
        &receiver,
        "/v1/traces",
        "application/x-protobuf",
        false,
        traces(2).encode_to_vec(),
    )
    .await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.headers["retry-after"], "7");
    let second = post(
        &receiver,
        "/v1/traces",
        "application/x-protobuf",
        false,
        traces(2).encode_to_vec(),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK);
    let counts = receiver.counts();
    assert_eq!(counts.failed_requests, 1);
    assert_eq!((counts.trace_requests, counts.spans), (1, 2));
    assert_eq!(receiver.traces().len(), 1, "failed requests are not kept");
}

#[tokio::test]
async fn http_a_grpc_failure_is_mapped_to_its_http_status() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_fail_first(1, Failure::Grpc { code: 8 }));
    let reply = post(
        &receiver,
        "/v1/logs",
        "application/x-protobuf",
        false,
        logs(1).encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_delayed_requests_are_answered_concurrently() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_delay(Duration::from_secs(1)));
    let started = Instant::now();
    let (a, b) = tokio::join!(
        post(
            &receiver,
            "/v1/traces",
            "application/x-protobuf",
            false,
            traces(1).encode_to_vec()
        ),
        post(
            &receiver,
            "/v1/traces",
            "application/x-protobuf",
            false,
            traces(1).encode_to_vec()
        ),
    );
    let elapsed = started.elapsed();
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    assert!(
        elapsed >= Duration::from_secs(1),
        "the delay was not applied: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1800),
        "requests were serialized: {elapsed:?}"
    );
    assert_eq!(receiver.counts().trace_requests, 2);
}

// ---------------------------------------------------------------------------------------------------
// OTLP/gRPC

#[tokio::test]
async fn grpc_exports_are_counted() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Grpc));
    let mut client = TraceServiceClient::connect(receiver.endpoint()).await.unwrap();
    client.export(traces(3)).await.unwrap();
    let counts = receiver.counts();
    assert_eq!((counts.trace_requests, counts.spans), (1, 3));
    // Raw body: one 5-byte gRPC prefix plus the message.
    assert_eq!(counts.bytes, traces(3).encoded_len() as u64 + 5);
    assert_eq!(receiver.traces(), vec![traces(3)]);

    let mut gzipped = TraceServiceClient::connect(receiver.endpoint())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    gzipped.export(traces(4)).await.unwrap();
    let mut logs_client = LogsServiceClient::connect(receiver.endpoint())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    logs_client.export(logs(6)).await.unwrap();
    let counts = receiver.counts();
    assert_eq!((counts.trace_requests, counts.spans), (2, 7));
    assert_eq!((counts.log_requests, counts.log_records), (1, 6));
}

#[tokio::test]
async fn grpc_fail_first_returns_the_configured_code_then_succeeds() {
    let receiver =
        Receiver::start(ReceiverOptions::new(Transport::Grpc).with_fail_first(2, Failure::Grpc { code: 14 }));
    let mut client = TraceServiceClient::connect(receiver.endpoint()).await.unwrap();
    for _ in 0..2 {
        let status = client.export(traces(1)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), "configured failure");
    }
    client.export(traces(1)).await.unwrap();
    let counts = receiver.counts();
    assert_eq!((counts.failed_requests, counts.trace_requests), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_delayed_requests_on_one_channel_are_answered_concurrently() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Grpc).with_delay(Duration::from_secs(1)));
    let channel = Channel::from_shared(receiver.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut a = TraceServiceClient::new(channel.clone());
    let mut b = TraceServiceClient::new(channel);
    let started = Instant::now();
    let (ra, rb) = tokio::join!(a.export(traces(1)), b.export(traces(1)));
    let elapsed = started.elapsed();
    ra.unwrap();
    rb.unwrap();
    assert!(
        elapsed >= Duration::from_secs(1),
        "the delay was not applied: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1800),
        "requests were serialized: {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn https_with_mtls_accepts_the_right_client_and_counts_failed_handshakes() {
    let pki = Pki::generate();
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_tls(pki.server_mtls()));
    assert_eq!(receiver.endpoint(), format!("https://localhost:{}", receiver.port()));

    // The right client certificate.
    let good = tls_connector(&pki.ca_pem, Some((&pki.client_cert_pem, &pki.client_key_pem)));
    let reply = post_tls(&receiver, good).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(receiver.counts().spans, 3);
    assert_eq!(receiver.counts().tls_handshake_failures, 0);

    // No client certificate: with TLS 1.3 the client learns it only on its first read.
    let anonymous = tls_connector(&pki.ca_pem, None);
    assert!(post_tls(&receiver, anonymous).await.is_err());
    let (counts, ok) = receiver
        .wait_for_async(Duration::from_secs(5), |c| c.tls_handshake_failures == 1)
        .await;
    assert!(ok, "{counts:?}");

    // A client certificate from the wrong CA.
    let stranger = tls_connector(
        &pki.ca_pem,
        Some((&pki.other_client_cert_pem, &pki.other_client_key_pem)),
    );
    assert!(post_tls(&receiver, stranger).await.is_err());
    let (counts, ok) = receiver
        .wait_for_async(Duration::from_secs(5), |c| c.tls_handshake_failures == 2)
        .await;
    assert!(ok, "{counts:?}");

    // A client that does not trust our certificate.
    let distrustful = tls_connector(&pki.other_ca_pem, Some((&pki.client_cert_pem, &pki.client_key_pem)));
    assert!(post_tls(&receiver, distrustful).await.is_err());
    let (counts, ok) = receiver
        .wait_for_async(Duration::from_secs(5), |c| c.tls_handshake_failures == 3)
        .await;
    assert!(ok, "{counts:?}");
    assert_eq!((counts.trace_requests, counts.spans), (1, 3));
}

#[tokio::test]
async fn https_without_client_auth_and_bare_connects_are_no_failures() {
    let pki = Pki::generate();
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_tls(pki.server_tls()));
    // A port probe: connect and close without a byte.
    drop(TcpStream::connect(("127.0.0.1", receiver.port())).await.unwrap());
    let reply = post_tls(&receiver, tls_connector(&pki.ca_pem, None)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.counts().tls_handshake_failures, 0);
    assert_eq!(receiver.counts().spans, 3);
}

#[tokio::test]
async fn https_over_http2_via_alpn() {
    let pki = Pki::generate();
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_tls(pki.server_tls()));
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
                .unwrap();
            roots
        })
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", receiver.port())).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("https://localhost:{}/v1/traces", receiver.port()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(Full::new(Bytes::from(gzip(&traces(5).encode_to_vec()))))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(receiver.counts().spans, 5);
}

async fn grpc_tls_channel(receiver: &Receiver, pki: &Pki, client_cert: bool) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if client_cert {
        tls = tls.identity(Identity::from_pem(&pki.client_cert_pem, &pki.client_key_pem));
    }
    Channel::from_shared(receiver.endpoint())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn grpc_with_mtls() {
    let pki = Pki::generate();
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Grpc).with_tls(pki.server_mtls()));
    let channel = grpc_tls_channel(&receiver, &pki, true).await.unwrap();
    TraceServiceClient::new(channel).export(traces(2)).await.unwrap();
    assert_eq!(receiver.counts().spans, 2);

    let failed = match grpc_tls_channel(&receiver, &pki, false).await {
        Err(_) => true,
        Ok(channel) => TraceServiceClient::new(channel).export(traces(2)).await.is_err(),
    };
    assert!(failed, "an export without a client certificate went through");
    let (counts, ok) = receiver
        .wait_for_async(Duration::from_secs(5), |c| c.tls_handshake_failures >= 1)
        .await;
    assert!(ok, "{counts:?}");
    assert_eq!(counts.spans, 2);
}

// ---------------------------------------------------------------------------------------------------
// Lifecycle and PKI

#[test]
fn drop_does_not_wait_for_requests_in_flight() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_delay(Duration::from_secs(60)));
    let port = receiver.port();
    let client = std::thread::spawn(move || {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = traces(1).encode_to_vec();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).unwrap();
        tcp.write_all(&body).unwrap();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest);
    });
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    drop(receiver);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "drop took {:?}",
        started.elapsed()
    );
    client.join().unwrap();
    // The port is free again.
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn pki_files_round_trip() {
    let dir = std::env::temp_dir().join(format!("otlp-receiver-pki-{}", std::process::id()));
    let pki = Pki::generate();
    let files = pki.write_to(&dir).unwrap();
    assert_eq!(files.ca, dir.join("ca.pem"));
    assert_eq!(files.other_client_key, dir.join("other-client.key"));
    assert_eq!(
        std::fs::read_to_string(&files.server_cert).unwrap(),
        pki.server_cert_pem
    );
    let back = Pki::read_from(&dir).unwrap();
    assert_eq!(back.client_key_pem, pki.client_key_pem);
    assert_eq!(back.other_ca_pem, pki.other_ca_pem);
    assert_ne!(pki.ca_pem, pki.other_ca_pem);
    std::fs::remove_dir_all(&dir).unwrap();
}
