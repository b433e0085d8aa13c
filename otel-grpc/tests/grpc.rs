//! Real tonic server and client over 127.0.0.1, instrumented with otelrs-grpc's layers.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Array, KeyValue, Value};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_grpc::{filter, GrpcClientLayer, GrpcServerLayer, PropagationInterceptor, SemconvMode};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const SERVER_DURATION: &str = "rpc.server.call.duration";
const CLIENT_DURATION: &str = "rpc.client.call.duration";

fn server_layer(t: &TestTelemetry) -> GrpcServerLayer {
    GrpcServerLayer::new()
        .with_instrumentation(t.instrumentation())
        .with_semconv_mode(SemconvMode::Current)
}

fn client_layer(t: &TestTelemetry) -> GrpcClientLayer {
    GrpcClientLayer::new()
        .with_instrumentation(t.instrumentation())
        .with_semconv_mode(SemconvMode::Current)
}

fn port(server: &TestServer) -> i64 {
    i64::from(server.addr.port())
}

/// Attributes of a server span of a recognised method (plus `network.peer.port`).
fn server_span_attrs(server: &TestServer, method: &'static str, code: &'static str) -> Vec<KeyValue> {
    vec![
        kv("rpc.system.name", "grpc"),
        kv("rpc.method", method),
        kv("rpc.response.status_code", code),
        kv("server.address", "127.0.0.1"),
        kv("server.port", port(server)),
        kv("network.peer.address", "127.0.0.1"),
    ]
}

fn client_span_attrs(server: &TestServer, method: &'static str, code: &'static str) -> Vec<KeyValue> {
    vec![
        kv("rpc.system.name", "grpc"),
        kv("rpc.method", method),
        kv("rpc.response.status_code", code),
        kv("server.address", "127.0.0.1"),
        kv("server.port", port(server)),
    ]
}

fn server_point(method: &'static str, code: &'static str, error: Option<&'static str>) -> Vec<KeyValue> {
    let mut v = vec![
        kv("rpc.system.name", "grpc"),
        kv("rpc.method", method),
        kv("rpc.response.status_code", code),
    ];
    if let Some(e) = error {
        v.push(kv("error.type", e));
    }
    v
}

fn client_point(
    server: &TestServer,
    method: &'static str,
    code: &'static str,
    error: Option<&'static str>,
) -> Vec<KeyValue> {
    let mut v = server_point(method, code, error);
    v.push(kv("server.address", "127.0.0.1"));
    v.push(kv("server.port", port(server)));
    v
}

fn with_error(mut attrs: Vec<KeyValue>, error: &'static str) -> Vec<KeyValue> {
    attrs.push(kv("error.type", error));
    attrs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_ok_records_spans_metrics_and_parentage() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    let reply = client.unary(req("ok")).await.expect("call succeeds");
    assert_eq!(reply.get_ref().message, "ok");
    assert_eq!(reply.metadata().get("x-served-by").expect("metadata kept"), "echo");

    let c = wait_span(&cli, UNARY, SpanKind::Client).await;
    let s = wait_span(&srv, UNARY, SpanKind::Server).await;
    c.assert_status(&Status::Unset)
        .assert_root()
        .assert_attrs(&client_span_attrs(&server, UNARY, "OK"));
    s.assert_status(&Status::Unset)
        .assert_parent_ids(c.span_context.trace_id(), c.span_context.span_id());
    assert_server_attrs(&s, &server_span_attrs(&server, UNARY, "OK"));
    assert_eq!(s.instrumentation_scope.name(), "otelrs-grpc");
    assert_eq!(
        s.instrumentation_scope.schema_url(),
        Some("https://opentelemetry.io/schemas/1.42.0")
    );

    let m = srv.metrics();
    m.assert_metric(
        SERVER_DURATION,
        "s",
        "Measures the duration of inbound remote procedure calls.",
    );
    let p = m.assert_histogram_point(SERVER_DURATION, &server_point(UNARY, "OK", None));
    assert_eq!(p.count, 1);
    assert_eq!(p.bounds, otelrs_core::instruments::RPC_DURATION_BUCKETS.to_vec());
    assert_eq!(m.histogram(SERVER_DURATION).len(), 1);
    assert!(m.metric("rpc.server.duration").is_none(), "old metric only in dup mode");

    let m = cli.metrics();
    m.assert_metric(
        CLIENT_DURATION,
        "s",
        "Measures the duration of outbound remote procedure calls.",
    );
    let p = m.assert_histogram_point(CLIENT_DURATION, &client_point(&server, UNARY, "OK", None));
    assert_eq!(p.count, 1);
    assert!(p.sum > 0.0 && p.sum < 10.0, "duration in seconds: {}", p.sum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_not_found_is_unset_on_server_and_error_on_client() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    let err = client.unary(req("not_found")).await.expect_err("call fails");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "no such thing", "status passes through unchanged");

    // tonic answers unary errors trailers-only: the status comes from the response headers.
    let s = wait_span(&srv, UNARY, SpanKind::Server).await;
    s.assert_status(&Status::Unset).assert_no_attr("error.type");
    assert_server_attrs(&s, &server_span_attrs(&server, UNARY, "NOT_FOUND"));
    let c = wait_span(&cli, UNARY, SpanKind::Client).await;
    c.assert_status(&Status::error(""))
        .assert_attrs(&with_error(client_span_attrs(&server, UNARY, "NOT_FOUND"), "NOT_FOUND"));

    srv.metrics()
        .assert_histogram_point(SERVER_DURATION, &server_point(UNARY, "NOT_FOUND", None));
    cli.metrics().assert_histogram_point(
        CLIENT_DURATION,
        &client_point(&server, UNARY, "NOT_FOUND", Some("NOT_FOUND")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_internal_is_an_error_on_both_sides() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    let err = client.unary(req("internal")).await.expect_err("call fails");
    assert_eq!(err.code(), Code::Internal);

    let s = wait_span(&srv, UNARY, SpanKind::Server).await;
    s.assert_status(&Status::error(""));
    assert_server_attrs(
        &s,
        &with_error(server_span_attrs(&server, UNARY, "INTERNAL"), "INTERNAL"),
    );
    wait_span(&cli, UNARY, SpanKind::Client)
        .await
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "INTERNAL");
    srv.metrics()
        .assert_histogram_point(SERVER_DURATION, &server_point(UNARY, "INTERNAL", Some("INTERNAL")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_ends_at_stream_end_and_reads_status_from_trailers() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let mut server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    // OK stream.
    let mut stream = client.server_stream(req("s")).await.expect("stream opens").into_inner();
    let tx = server.next_stream().await;
    tx.send(Ok(EchoReply { message: "a".into() })).await.expect("send");
    assert_eq!(stream.message().await.expect("item").expect("some").message, "a");
    assert!(
        srv.spans().is_empty(),
        "server span must not end before the stream ends"
    );
    assert!(
        cli.spans().is_empty(),
        "client span must not end before the stream ends"
    );
    tx.send(Ok(EchoReply { message: "b".into() })).await.expect("send");
    drop(tx);
    assert_eq!(stream.message().await.expect("item").expect("some").message, "b");
    assert!(stream.message().await.expect("clean end").is_none());

    let s = wait_span(&srv, SERVER_STREAM, SpanKind::Server).await;
    s.assert_status(&Status::Unset);
    assert_server_attrs(&s, &server_span_attrs(&server, SERVER_STREAM, "OK"));
    wait_span(&cli, SERVER_STREAM, SpanKind::Client)
        .await
        .assert_status(&Status::Unset)
        .assert_attrs(&client_span_attrs(&server, SERVER_STREAM, "OK"));
    srv.reset();
    cli.reset();

    // The status after data frames travels in the trailers.
    let mut stream = client.server_stream(req("s")).await.expect("stream opens").into_inner();
    let tx = server.next_stream().await;
    tx.send(Ok(EchoReply { message: "a".into() })).await.expect("send");
    tx.send(Err(tonic::Status::data_loss("lost"))).await.expect("send");
    drop(tx);
    assert_eq!(stream.message().await.expect("item").expect("some").message, "a");
    let err = stream.message().await.expect_err("stream fails");
    assert_eq!(err.code(), Code::DataLoss);

    let s = wait_span(&srv, SERVER_STREAM, SpanKind::Server).await;
    s.assert_status(&Status::error(""));
    assert_server_attrs(
        &s,
        &with_error(server_span_attrs(&server, SERVER_STREAM, "DATA_LOSS"), "DATA_LOSS"),
    );
    wait_span(&cli, SERVER_STREAM, SpanKind::Client)
        .await
        .assert_status(&Status::error(""))
        .assert_attrs(&with_error(
            client_span_attrs(&server, SERVER_STREAM, "DATA_LOSS"),
            "DATA_LOSS",
        ));
    let m = srv.metrics();
    assert_eq!(
        m.assert_histogram_point(SERVER_DURATION, &server_point(SERVER_STREAM, "OK", None))
            .count,
        1
    );
    assert_eq!(
        m.assert_histogram_point(
            SERVER_DURATION,
            &server_point(SERVER_STREAM, "DATA_LOSS", Some("DATA_LOSS"))
        )
        .count,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming_ends_at_stream_end() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let mut server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    let (tx, rx) = mpsc::channel(4);
    let call = tokio::spawn(async move { client.client_stream(ReceiverStream::new(rx)).await });
    tx.send(req("a")).await.expect("send");
    assert_eq!(server.next_received().await, "a");
    assert!(
        srv.spans().is_empty(),
        "server span must not end while the request streams"
    );
    assert!(
        cli.spans().is_empty(),
        "client span must not end while the request streams"
    );
    tx.send(req("b")).await.expect("send");
    assert_eq!(server.next_received().await, "b");
    drop(tx);
    let reply = call.await.expect("task").expect("call succeeds");
    assert_eq!(reply.get_ref().message, "a,b");

    let s = wait_span(&srv, CLIENT_STREAM, SpanKind::Server).await;
    s.assert_status(&Status::Unset);
    assert_server_attrs(&s, &server_span_attrs(&server, CLIENT_STREAM, "OK"));
    let c = wait_span(&cli, CLIENT_STREAM, SpanKind::Client).await;
    c.assert_attrs(&client_span_attrs(&server, CLIENT_STREAM, "OK"));
    s.assert_child_of(&c);
    cli.metrics()
        .assert_histogram_point(CLIENT_DURATION, &client_point(&server, CLIENT_STREAM, "OK", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_streaming_ends_at_stream_end() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    let (tx, rx) = mpsc::channel(4);
    let mut replies = client
        .bidi(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    tx.send(req("x")).await.expect("send");
    assert_eq!(replies.message().await.expect("item").expect("some").message, "x");
    tx.send(req("y")).await.expect("send");
    assert_eq!(replies.message().await.expect("item").expect("some").message, "y");
    assert!(
        srv.spans().is_empty(),
        "server span must not end while both streams are open"
    );
    assert!(
        cli.spans().is_empty(),
        "client span must not end while both streams are open"
    );
    drop(tx);
    assert!(replies.message().await.expect("clean end").is_none());

    let s = wait_span(&srv, BIDI, SpanKind::Server).await;
    s.assert_status(&Status::Unset);
    assert_server_attrs(&s, &server_span_attrs(&server, BIDI, "OK"));
    wait_span(&cli, BIDI, SpanKind::Client)
        .await
        .assert_attrs(&client_span_attrs(&server, BIDI, "OK"));
    srv.metrics()
        .assert_histogram_point(SERVER_DURATION, &server_point(BIDI, "OK", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_stream_ends_both_spans_as_cancelled() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let mut server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    let mut stream = client.server_stream(req("s")).await.expect("stream opens").into_inner();
    let tx = server.next_stream().await;
    tx.send(Ok(EchoReply { message: "a".into() })).await.expect("send");
    assert_eq!(stream.message().await.expect("item").expect("some").message, "a");
    drop(stream); // the client walks away mid-stream

    // Client: CANCELLED is an error for a client.
    wait_span(&cli, SERVER_STREAM, SpanKind::Client)
        .await
        .assert_status(&Status::error(""))
        .assert_attrs(&with_error(
            client_span_attrs(&server, SERVER_STREAM, "CANCELLED"),
            "CANCELLED",
        ));
    // Server: the reset drops the response body; CANCELLED is not a server error.
    let s = wait_span(&srv, SERVER_STREAM, SpanKind::Server).await;
    s.assert_status(&Status::Unset).assert_no_attr("error.type");
    assert_server_attrs(&s, &server_span_attrs(&server, SERVER_STREAM, "CANCELLED"));
    tokio::time::timeout(Duration::from_secs(10), tx.closed())
        .await
        .expect("the handler's stream is dropped");
    // The server ends its span, then records its duration, on its own task: wait for the point
    // (seen missing once under load), then assert it exactly.
    let point = server_point(SERVER_STREAM, "CANCELLED", None);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while srv.metrics().histogram_point(SERVER_DURATION, &point).is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    srv.metrics().assert_histogram_point(SERVER_DURATION, &point);
    cli.metrics().assert_histogram_point(
        CLIENT_DURATION,
        &client_point(&server, SERVER_STREAM, "CANCELLED", Some("CANCELLED")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_exceeded_from_grpc_timeout() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv), None).await;
    let mut client = client(server.addr, client_layer(&cli));

    let mut request = tonic::Request::new(req("hang"));
    request.set_timeout(Duration::from_millis(200));
    let err = client.unary(request).await.expect_err("deadline");
    // tonic 0.14's channel enforces `grpc-timeout` itself and hands the caller CANCELLED (its
    // `TimeoutExpired` maps to `Status::cancelled`); the layers record the gRPC meaning.
    assert_eq!(err.code(), Code::Cancelled);

    // The server layer sees its call dropped at the deadline and records why.
    let s = wait_span(&srv, UNARY, SpanKind::Server).await;
    s.assert_status(&Status::error(""));
    assert_server_attrs(
        &s,
        &with_error(
            server_span_attrs(&server, UNARY, "DEADLINE_EXCEEDED"),
            "DEADLINE_EXCEEDED",
        ),
    );
    wait_span(&cli, UNARY, SpanKind::Client)
        .await
        .assert_status(&Status::error(""))
        .assert_attrs(&with_error(
            client_span_attrs(&server, UNARY, "DEADLINE_EXCEEDED"),
            "DEADLINE_EXCEEDED",
        ));
    let p = srv.metrics().assert_histogram_point(
        SERVER_DURATION,
        &server_point(UNARY, "DEADLINE_EXCEEDED", Some("DEADLINE_EXCEEDED")),
    );
    assert!(p.sum >= 0.15, "the server call lasted until the deadline: {}", p.sum);
}

async fn call_unknown_method(channel: GrpcClientLayer, server: &TestServer) -> tonic::Status {
    let endpoint = endpoint(server.addr);
    let service = tower::ServiceBuilder::new()
        .layer(channel.with_endpoint(&endpoint))
        .service(endpoint.connect_lazy());
    let mut grpc = tonic::client::Grpc::new(service);
    grpc.ready().await.expect("ready");
    grpc.unary::<EchoRequest, EchoReply, _>(
        tonic::Request::new(req("x")),
        http::uri::PathAndQuery::from_static("/test.v1.Nothing/Nope"),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .expect_err("unknown method")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_other_and_unimplemented() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv), None).await;
    let err = call_unknown_method(client_layer(&cli), &server).await;
    assert_eq!(err.code(), Code::Unimplemented);

    let s = wait_span(&srv, "grpc", SpanKind::Server).await;
    s.assert_status(&Status::error(""));
    assert_server_attrs(
        &s,
        &[
            kv("rpc.system.name", "grpc"),
            kv("rpc.method", "_OTHER"),
            kv("rpc.method_original", "test.v1.Nothing/Nope"),
            kv("rpc.response.status_code", "UNIMPLEMENTED"),
            kv("error.type", "UNIMPLEMENTED"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", port(&server)),
            kv("network.peer.address", "127.0.0.1"),
        ],
    );
    // The client knows which method it called.
    wait_span(&cli, "test.v1.Nothing/Nope", SpanKind::Client)
        .await
        .assert_status(&Status::error(""))
        .assert_attr("rpc.method", "test.v1.Nothing/Nope")
        .assert_attr("error.type", "UNIMPLEMENTED");
    let m = srv.metrics();
    m.assert_histogram_point(
        SERVER_DURATION,
        &server_point("_OTHER", "UNIMPLEMENTED", Some("UNIMPLEMENTED")),
    );
    assert_eq!(m.histogram(SERVER_DURATION).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_services_decide_the_method_at_span_start() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv).with_services(["test.v1.Echo"]), None).await;
    let mut client = client(server.addr, client_layer(&cli));
    client.unary(req("ok")).await.expect("call succeeds");
    let s = wait_span(&srv, UNARY, SpanKind::Server).await;
    assert_server_attrs(&s, &server_span_attrs(&server, UNARY, "OK"));

    call_unknown_method(client_layer(&cli), &server).await;
    let s = wait_span(&srv, "grpc", SpanKind::Server).await;
    s.assert_attr("rpc.method", "_OTHER")
        .assert_attr("rpc.method_original", "test.v1.Nothing/Nope")
        .assert_attr("error.type", "UNIMPLEMENTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_continues_client_server_nested_client_server() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv), Some(client_layer(&srv))).await;
    let mut client = client(server.addr, client_layer(&cli));

    let reply = client.unary(req("nested")).await.expect("call succeeds");
    assert_eq!(reply.get_ref().message, "nested:ok");

    let c = wait_span(&cli, UNARY, SpanKind::Client).await;
    c.assert_root();
    let nested_client = wait_span(&srv, UNARY, SpanKind::Client).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let servers = loop {
        let servers: Vec<_> = srv
            .spans_named(UNARY)
            .into_iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .collect();
        if servers.len() == 2 || std::time::Instant::now() > deadline {
            break servers;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(servers.len(), 2, "outer and nested server spans");
    let outer = servers
        .iter()
        .find(|s| s.parent_span_id == c.span_context.span_id())
        .expect("a server span is the child of the client span");
    let inner = servers
        .iter()
        .find(|s| s.span_context.span_id() != outer.span_context.span_id())
        .expect("nested server span");
    outer.assert_child_of(&c);
    nested_client.assert_child_of(outer);
    inner.assert_child_of(&nested_client);
    assert_eq!(inner.span_context.trace_id(), c.span_context.trace_id());
    nested_client.assert_attrs(&client_span_attrs(&server, UNARY, "OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_only_interceptor_carries_the_current_context() {
    let srv = TestTelemetry::new();
    let server = start_server(server_layer(&srv), None).await;
    let inst = srv.instrumentation();
    let channel = endpoint(server.addr).connect_lazy();
    let mut client = EchoClient::with_interceptor(channel, PropagationInterceptor::new(inst.clone()));

    let mut carrier = http::HeaderMap::new();
    carrier.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .expect("valid"),
    );
    let remote = inst.extract_http_with_context(&opentelemetry::Context::new(), &carrier);
    client
        .unary(req("ok"))
        .with_context(remote)
        .await
        .expect("call succeeds");

    wait_span(&srv, UNARY, SpanKind::Server).await.assert_parent_ids(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
        SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_filtered_out() {
    let srv = TestTelemetry::new();
    let server = start_server(
        server_layer(&srv).with_filter(filter::skip_health_and_reflection()),
        None,
    )
    .await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(endpoint(server.addr).connect_lazy());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "test.v1.Echo".into(),
        })
        .await
        .expect("health check succeeds")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // A normal call afterwards is instrumented; the health check left nothing.
    let mut client = EchoClient::new(endpoint(server.addr).connect_lazy());
    client.unary(req("ok")).await.expect("call succeeds");
    wait_span(&srv, UNARY, SpanKind::Server).await;
    let names: Vec<String> = srv.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec![UNARY.to_owned()]);
    let points = srv.metrics().histogram(SERVER_DURATION);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].attributes, {
        let mut a = server_point(UNARY, "OK", None);
        a.sort_by(|x, y| x.key.as_str().cmp(y.key.as_str()));
        a
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_metadata_is_captured() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(
        server_layer(&srv)
            .with_request_metadata(["X-Tenant", "x-absent"])
            .with_response_metadata(["x-served-by"]),
        None,
    )
    .await;
    let mut client = client(
        server.addr,
        client_layer(&cli)
            .with_request_metadata(["x-tenant"])
            .with_response_metadata(["x-served-by"]),
    );
    let mut request = tonic::Request::new(req("ok"));
    request
        .metadata_mut()
        .append("x-tenant", "acme".parse().expect("ascii"));
    request
        .metadata_mut()
        .append("x-tenant", "beta".parse().expect("ascii"));
    request
        .metadata_mut()
        .append("x-secret", "hunter2".parse().expect("ascii"));
    client.unary(request).await.expect("call succeeds");

    let tenants = Value::Array(Array::String(vec!["acme".into(), "beta".into()]));
    let served_by = Value::Array(Array::String(vec!["echo".into()]));
    let s = wait_span(&srv, UNARY, SpanKind::Server).await;
    let mut expected = server_span_attrs(&server, UNARY, "OK");
    expected.push(kv("rpc.request.metadata.x-tenant", tenants.clone()));
    expected.push(kv("rpc.response.metadata.x-served-by", served_by.clone()));
    assert_server_attrs(&s, &expected);
    let mut expected = client_span_attrs(&server, UNARY, "OK");
    expected.push(kv("rpc.request.metadata.x-tenant", tenants));
    expected.push(kv("rpc.response.metadata.x-served-by", served_by));
    wait_span(&cli, UNARY, SpanKind::Client).await.assert_attrs(&expected);
    // Metadata never reaches the metrics.
    srv.metrics()
        .assert_histogram_point(SERVER_DURATION, &server_point(UNARY, "OK", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_emit_mode_adds_the_old_names() {
    let (srv, cli) = (TestTelemetry::new(), TestTelemetry::new());
    let server = start_server(server_layer(&srv).with_semconv_mode(SemconvMode::Duplicate), None).await;
    let mut client = client(
        server.addr,
        client_layer(&cli).with_semconv_mode(SemconvMode::Duplicate),
    );
    client.unary(req("ok")).await.expect("call succeeds");
    client.unary(req("not_found")).await.expect_err("call fails");

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while srv.spans().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let spans = srv.spans_named(UNARY);
    assert_eq!(spans.len(), 2);
    let mut expected = server_span_attrs(&server, UNARY, "OK");
    expected.extend([
        kv("rpc.system", "grpc"),
        kv("rpc.service", "test.v1.Echo"),
        kv("rpc.grpc.status_code", 0i64),
    ]);
    assert_server_attrs(&spans[0], &expected);
    let c = cli.spans_named(UNARY);
    assert_eq!(c.len(), 2);
    let mut expected = with_error(client_span_attrs(&server, UNARY, "NOT_FOUND"), "NOT_FOUND");
    expected.extend([
        kv("rpc.system", "grpc"),
        kv("rpc.service", "test.v1.Echo"),
        kv("rpc.grpc.status_code", 5i64),
    ]);
    c[1].assert_attrs(&expected);

    let m = srv.metrics();
    m.assert_metric("rpc.server.duration", "ms", "Measures the duration of inbound RPC.");
    let old = |code: i64| {
        vec![
            kv("rpc.system", "grpc"),
            kv("rpc.service", "test.v1.Echo"),
            kv("rpc.method", "Unary"),
            kv("rpc.grpc.status_code", code),
        ]
    };
    assert_eq!(m.assert_histogram_point("rpc.server.duration", &old(0)).count, 1);
    assert_eq!(m.assert_histogram_point("rpc.server.duration", &old(5)).count, 1);
    assert_eq!(
        m.assert_histogram_point(SERVER_DURATION, &server_point(UNARY, "OK", None))
            .count,
        1
    );
    let m = cli.metrics();
    m.assert_metric("rpc.client.duration", "ms", "Measures the duration of outbound RPC.");
    let mut old_client = old(5);
    old_client.extend([
        kv("error.type", "NOT_FOUND"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", port(&server)),
    ]);
    let p = m.assert_histogram_point("rpc.client.duration", &old_client);
    let new = m.assert_histogram_point(
        CLIENT_DURATION,
        &client_point(&server, UNARY, "NOT_FOUND", Some("NOT_FOUND")),
    );
    assert!(
        (p.sum - new.sum * 1000.0).abs() < 1e-6,
        "same duration, in ms: {} vs {}",
        p.sum,
        new.sum
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failure_sets_a_low_cardinality_error_type() {
    let cli = TestTelemetry::new();
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    }; // listener dropped: nothing listens on this port any more
    let endpoint = endpoint(closed);
    let channel = tower::ServiceBuilder::new()
        .layer(client_layer(&cli).with_endpoint(&endpoint))
        .service(endpoint.connect_lazy());
    let err = EchoClient::new(channel)
        .unary(req("ok"))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "the user's error is unchanged: {err:?}");

    let attrs = vec![
        kv("rpc.system.name", "grpc"),
        kv("rpc.method", UNARY),
        kv("server.address", "127.0.0.1"),
        kv("server.port", i64::from(closed.port())),
        kv("error.type", "connection_refused"),
    ];
    wait_span(&cli, UNARY, SpanKind::Client)
        .await
        .assert_status(&Status::error(""))
        .assert_no_attr("rpc.response.status_code")
        .assert_attrs(&attrs);
    cli.metrics().assert_histogram_point(CLIENT_DURATION, &attrs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_and_metric_attribute_hooks_are_applied_separately() {
    use otelrs_core::AttributesFn;
    let srv = TestTelemetry::new();
    let tenant = AttributesFn::new(|request: &http::request::Parts, out: &mut Vec<KeyValue>| {
        if let Some(t) = request.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
            out.push(KeyValue::new("app.tenant", t.to_owned()));
        }
    });
    let served_by = AttributesFn::new(|response: &http::response::Parts, out: &mut Vec<KeyValue>| {
        if let Some(s) = response.headers.get("x-served-by").and_then(|v| v.to_str().ok()) {
            out.push(KeyValue::new("app.served_by", s.to_owned()));
        }
    });
    let tier = AttributesFn::new(|request: &http::request::Parts, out: &mut Vec<KeyValue>| {
        let gold = request
            .headers
            .get("x-tenant")
            .is_some_and(|v| v.as_bytes().starts_with(b"gold-"));
        out.push(KeyValue::new("app.tier", if gold { "gold" } else { "standard" }));
    });
    let server = start_server(
        server_layer(&srv)
            .with_span_attributes(tenant)
            .with_response_span_attributes(served_by)
            .with_metric_attributes(tier),
        None,
    )
    .await;
    let mut client = client(server.addr, client_layer(&TestTelemetry::new()));
    let mut request = tonic::Request::new(req("ok"));
    request.metadata_mut().insert("x-tenant", "gold-42".parse().unwrap());
    let reply = client.unary(request).await.expect("call succeeds");
    assert_eq!(reply.get_ref().message, "ok", "the reply is unchanged");
    client.unary(req("ok")).await.expect("call succeeds");

    let spans = srv.wait_for_spans(2, Duration::from_secs(10));
    let tenants: Vec<Option<&Value>> = spans.iter().map(|s| s.attr("app.tenant")).collect();
    assert!(
        tenants.contains(&Some(&Value::from("gold-42"))) && tenants.contains(&None),
        "{tenants:?}"
    );
    for s in &spans {
        s.assert_attr("app.served_by", "echo");
        assert_eq!(s.attr("app.tier"), None, "metric attributes stay off the span");
    }
    let m = srv.metrics();
    let with_tier = |tier: &'static str| {
        let mut attrs = server_point(UNARY, "OK", None);
        attrs.push(kv("app.tier", tier));
        attrs
    };
    assert_eq!(m.assert_histogram_point(SERVER_DURATION, &with_tier("gold")).count, 1);
    assert_eq!(
        m.assert_histogram_point(SERVER_DURATION, &with_tier("standard")).count,
        1
    );
    assert_eq!(m.histogram(SERVER_DURATION).len(), 2);
}
