//! gRPC calls cancelled mid-stream, thousands of times (issue 9, item 3): a tonic server with
//! otelrs-grpc's `GrpcServerLayer` serves a server-streaming RPC that streams forever (a message
//! every 2 ms); a client with `GrpcClientLayer` makes `RELIABILITY_CANCELS` calls (default 2000,
//! 16 at a time) over one HTTP/2 channel and abandons every one of them:
//!
//! * `i % 4 == 0`: reads one message, drops the stream;
//! * `i % 4 == 2`: reads two messages, drops the stream;
//! * `i % 4 == 1`: the server holds the response head for 200 ms; the client drops the call
//!   future after 10 ms (before the head);
//! * `i % 4 == 3`: the server sends the head at once and the first message after 200 ms; the
//!   client drops the stream as soon as it has the head.
//!
//! Asserted: one ended CLIENT span per call, one ended SERVER span per call the server
//! dispatched (counted by a layer in front of the instrumentation), each server span the child
//! of one distinct client span; client spans record `CANCELLED` as an error
//! (`error.type = CANCELLED`); server spans of calls whose handler ran (the handler records its
//! span) record `CANCELLED` without error (semconv: not a server error). A call reset by the
//! client before its request message arrived never reaches the handler: tonic answers it
//! `INTERNAL` ("Missing request message."), and its server span records that answer (Error,
//! `error.type = INTERNAL`); no other outcome is accepted. The duration histograms count every
//! call once, with the spans' codes; no panic anywhere (hook); and the server still answers a
//! unary call and a full stream read afterwards. otelrs-grpc records no in-flight gauge (only the
//! two duration histograms), so there is no gauge to drift; the histograms' counts are the
//! equivalent check.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use opentelemetry::trace::{SpanId, SpanKind, Status as SpanStatus, TraceContextExt as _};
use opentelemetry_sdk::trace::SpanData;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use reliability::{env_count, rss_kib};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{http, Body, BoxFuture, StdError};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;

const STREAM: &str = "reliability.v1.Ticker/Stream";
const PING: &str = "reliability.v1.Ticker/Ping";
const CONCURRENT: usize = 16;
/// Upper bound of any single wait (generous: the machine may be loaded).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The messages, as `prost-build` would generate them.
mod pb {
    /// Request of `Stream` and `Ping`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TickRequest {
        /// Milliseconds the server waits before answering (the response head).
        #[prost(uint64, tag = "1")]
        pub head_delay_ms: u64,
        /// Milliseconds between the head and the first message.
        #[prost(uint64, tag = "2")]
        pub first_delay_ms: u64,
    }

    /// One streamed message (and the reply of `Ping`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tick {
        /// Sequence number in the stream.
        #[prost(uint64, tag = "1")]
        pub n: u64,
    }
}
use pb::{Tick, TickRequest};

type TickStream = Pin<Box<dyn Stream<Item = Result<Tick, Status>> + Send>>;

/// `reliability.v1.Ticker`: `Stream` (server streaming, endless) and `Ping` (unary); the glue is
/// what `tonic-build` generates, reduced to these two methods and written out (no `protoc`).
#[derive(Clone, Default)]
struct Ticker {
    /// The server spans of the calls that reached a handler (the handler runs in its context).
    handled: Arc<Mutex<HashSet<SpanId>>>,
}

/// A message every 2 ms, forever, the first after `first_delay`.
fn endless(first_delay: Duration) -> TickStream {
    Box::pin(futures_util::stream::unfold(0u64, move |n| async move {
        let gap = if n == 0 { first_delay } else { Duration::from_millis(2) };
        tokio::time::sleep(gap).await;
        Some((Ok(Tick { n }), n + 1))
    }))
}

struct StreamSvc(Ticker);

impl tonic::server::ServerStreamingService<TickRequest> for StreamSvc {
    type Response = Tick;
    type ResponseStream = TickStream;
    type Future = BoxFuture<Response<TickStream>, Status>;

    fn call(&mut self, request: Request<TickRequest>) -> Self::Future {
        let span = opentelemetry::Context::current().span().span_context().span_id();
        self.0.handled.lock().expect("handled").insert(span);
        let r = request.into_inner();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(r.head_delay_ms)).await;
            Ok(Response::new(endless(Duration::from_millis(r.first_delay_ms))))
        })
    }
}

struct PingSvc;

impl tonic::server::UnaryService<TickRequest> for PingSvc {
    type Response = Tick;
    type Future = BoxFuture<Response<Tick>, Status>;

    fn call(&mut self, _request: Request<TickRequest>) -> Self::Future {
        Box::pin(async { Ok(Response::new(Tick { n: 42 })) })
    }
}

impl<B> tower::Service<http::Request<B>> for Ticker
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let codec = tonic_prost::ProstCodec::default();
        match req.uri().path() {
            "/reliability.v1.Ticker/Stream" => {
                let svc = StreamSvc(self.clone());
                Box::pin(async move { Ok(tonic::server::Grpc::new(codec).server_streaming(svc, req).await) })
            }
            "/reliability.v1.Ticker/Ping" => {
                Box::pin(async move { Ok(tonic::server::Grpc::new(codec).unary(PingSvc, req).await) })
            }
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

impl tonic::server::NamedService for Ticker {
    const NAME: &'static str = "reliability.v1.Ticker";
}

type Client = tonic::client::Grpc<GrpcClientService<Channel>>;

fn client(endpoint: &Endpoint, channel: Channel, t: &TestTelemetry) -> Client {
    tonic::client::Grpc::new(
        ServiceBuilder::new()
            .layer(
                GrpcClientLayer::new()
                    .with_instrumentation(t.instrumentation())
                    .with_endpoint(endpoint),
            )
            .service(channel),
    )
}

async fn open_stream(client: &mut Client, req: TickRequest) -> Result<Response<tonic::Streaming<Tick>>, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(format!("not ready: {e}")))?;
    client
        .server_streaming(
            Request::new(req),
            http::uri::PathAndQuery::from_static("/reliability.v1.Ticker/Stream"),
            tonic_prost::ProstCodec::default(),
        )
        .await
}

async fn ping(client: &mut Client) -> Result<Tick, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(format!("not ready: {e}")))?;
    let reply = client
        .unary(
            Request::new(TickRequest::default()),
            http::uri::PathAndQuery::from_static("/reliability.v1.Ticker/Ping"),
            tonic_prost::ProstCodec::default(),
        )
        .await?;
    Ok(reply.into_inner())
}

/// How one call is abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Abandon {
    AfterOneMessage,
    AfterTwoMessages,
    BeforeHead,
    AfterHeadBeforeFirstMessage,
}

impl Abandon {
    fn of(i: usize) -> Self {
        match i % 4 {
            0 => Self::AfterOneMessage,
            1 => Self::BeforeHead,
            2 => Self::AfterTwoMessages,
            _ => Self::AfterHeadBeforeFirstMessage,
        }
    }
}

/// Makes call `i` and abandons it as `Abandon::of(i)` says; returns how it went.
async fn abandoned_call(client: &mut Client, i: usize) -> &'static str {
    match Abandon::of(i) {
        how @ (Abandon::AfterOneMessage | Abandon::AfterTwoMessages) => {
            let mut stream = tokio::time::timeout(TIMEOUT, open_stream(client, TickRequest::default()))
                .await
                .unwrap_or_else(|_| panic!("call {i}: no response head within {TIMEOUT:?}"))
                .unwrap_or_else(|s| panic!("call {i}: {s}"))
                .into_inner();
            let want = if how == Abandon::AfterOneMessage { 1 } else { 2 };
            for k in 0..want {
                let tick = tokio::time::timeout(TIMEOUT, stream.message())
                    .await
                    .unwrap_or_else(|_| panic!("call {i}: no message within {TIMEOUT:?}"))
                    .unwrap_or_else(|s| panic!("call {i}: {s}"))
                    .unwrap_or_else(|| panic!("call {i}: the endless stream ended"));
                assert_eq!(tick.n, k, "call {i}: message order");
            }
            drop(stream);
            "dropped the stream mid-stream"
        }
        Abandon::BeforeHead => {
            let req = TickRequest {
                head_delay_ms: 200,
                first_delay_ms: 0,
            };
            match tokio::time::timeout(Duration::from_millis(10), open_stream(client, req)).await {
                Err(_) => "dropped the call future before the head",
                // Under heavy load the 10 ms can outlast the server's 200 ms.
                Ok(Ok(_)) => "got the head late, dropped the stream",
                Ok(Err(s)) => panic!("call {i}: {s}"),
            }
        }
        Abandon::AfterHeadBeforeFirstMessage => {
            let req = TickRequest {
                head_delay_ms: 0,
                first_delay_ms: 200,
            };
            let response = tokio::time::timeout(TIMEOUT, open_stream(client, req))
                .await
                .unwrap_or_else(|_| panic!("call {i}: no response head within {TIMEOUT:?}"))
                .unwrap_or_else(|s| panic!("call {i}: {s}"));
            drop(response);
            "dropped the stream before the first message"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_cancelled_thousands_of_times_end_every_span() {
    // Any panic anywhere in the process (server tasks, client tasks, layers) is counted.
    let panics = Arc::new(AtomicUsize::new(0));
    {
        let panics = panics.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::Relaxed);
            previous(info);
        }));
    }

    let n = env_count("RELIABILITY_CANCELS", 2_000);
    let t = TestTelemetry::new();
    let ticker = Ticker::default();
    let dispatched = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let dispatched = dispatched.clone();
        // Outermost: counts the calls the server dispatched to the instrumented stack. A call
        // the client abandons before the server reads its request never becomes a call.
        let layers = ServiceBuilder::new()
            .map_request(move |req: http::Request<tonic::body::Body>| {
                dispatched.fetch_add(1, Ordering::Relaxed);
                req
            })
            .layer(GrpcServerLayer::new().with_instrumentation(t.instrumentation()))
            .into_inner();
        let router = Server::builder().layer(layers).add_service(ticker.clone());
        tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = shutdown_rx.await;
                })
                .await
                .expect("gRPC server");
        })
    };
    // HTTP/2 remembers only a few locally reset streams by default (h2: 10); a frame the server
    // already sent on a forgotten one counts as a peer error, and after 1024 of those the
    // client's own h2 closes the connection with GOAWAY(ENHANCE_YOUR_CALM,
    // "too_many_internal_resets"). With 16 streams abandoned at a time that happens after
    // ~3 500 calls, instrumented or not (also with bare tonic on both sides). Remembering
    // 1024 reset streams keeps the connection; the error limit itself stays on.
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .http2_max_concurrent_reset_streams(1024);
    let channel = endpoint.connect().await.expect("connect to the test server");
    let client = client(&endpoint, channel, &t);

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENT {
        let (next, mut client) = (next.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return outcomes;
                }
                *outcomes.entry(abandoned_call(&mut client, i).await).or_default() += 1;
            }
        }));
    }
    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for task in tasks {
        for (k, v) in task.await.expect("client task") {
            *outcomes.entry(k).or_default() += v;
        }
    }
    let took = started.elapsed();

    // Every dispatched call ends its server span; wait until the counts meet and stay met (the
    // server may still be processing resets of calls the client already left), or time out.
    let server_spans = |t: &TestTelemetry| -> Vec<SpanData> {
        t.spans()
            .into_iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .collect()
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let seen = dispatched.load(Ordering::Relaxed);
        if server_spans(&t).len() == seen {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if dispatched.load(Ordering::Relaxed) == seen && server_spans(&t).len() == seen {
                break;
            }
        } else if Instant::now() >= deadline {
            break;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let spans = t.spans();
    let seen = dispatched.load(Ordering::Relaxed);
    let handled_spans = ticker.handled.lock().expect("handled").clone();
    let handled = handled_spans.len();
    let client_spans: Vec<&SpanData> = spans.iter().filter(|s| s.span_kind == SpanKind::Client).collect();
    let server_spans: Vec<&SpanData> = spans.iter().filter(|s| s.span_kind == SpanKind::Server).collect();
    let mut server_codes: BTreeMap<String, usize> = BTreeMap::new();
    for s in &server_spans {
        let code = s
            .attr("rpc.response.status_code")
            .map(|v| v.to_string())
            .unwrap_or_default();
        *server_codes.entry(code).or_default() += 1;
    }
    eprintln!(
        "gRPC cancellation: {n} calls abandoned in {took:.2?} ({:.0} calls/s, {CONCURRENT} concurrent): {outcomes:?}; \
         server dispatched {seen}, handlers ran {handled}; spans: {} client, {} server {server_codes:?}; \
         panics {}; RSS {} KiB",
        n as f64 / took.as_secs_f64(),
        client_spans.len(),
        server_spans.len(),
        panics.load(Ordering::Relaxed),
        rss_kib()
    );

    assert_eq!(client_spans.len(), n, "exactly one ended client span per call");
    assert_eq!(
        server_spans.len(),
        seen,
        "exactly one ended server span per dispatched call (handlers ran {handled})"
    );
    assert!(
        handled <= seen,
        "handlers ran {handled} times for {seen} dispatched calls"
    );
    // Calls abandoned after the head or a message were all read by the server.
    let read_by_server = (0..n).filter(|i| Abandon::of(*i) != Abandon::BeforeHead).count();
    assert!(
        handled >= read_by_server,
        "{handled} handlers ran, but {read_by_server} calls got a response"
    );
    for s in &client_spans {
        assert_eq!(s.name, STREAM);
        s.assert_status(&SpanStatus::error(""))
            .assert_attr("rpc.response.status_code", "CANCELLED")
            .assert_attr("error.type", "CANCELLED");
    }
    // Each server span is the child of a distinct client span (context propagated, no
    // duplicates).
    let client_ids: HashMap<SpanId, &SpanData> = client_spans.iter().map(|s| (s.span_context.span_id(), *s)).collect();
    let mut parents = std::collections::HashSet::new();
    for s in &server_spans {
        assert_eq!(s.name, STREAM);
        let parent = client_ids
            .get(&s.parent_span_id)
            .unwrap_or_else(|| panic!("server span {:?} has no client parent", s.span_context.span_id()));
        s.assert_child_of(parent);
        assert!(parents.insert(s.parent_span_id), "two server spans for one call");
        let code = s.attr("rpc.response.status_code").map(|v| v.to_string());
        if handled_spans.contains(&s.span_context.span_id()) || code.as_deref() == Some("CANCELLED") {
            // The call went away while the handler ran or the stream was being sent: CANCELLED,
            // which is not a server error (semconv): recorded, status left unset.
            s.assert_status(&SpanStatus::Unset)
                .assert_attr("rpc.response.status_code", "CANCELLED")
                .assert_no_attr("error.type");
        } else {
            // The client reset the call before its request message arrived: tonic itself answers
            // INTERNAL "Missing request message." (the handler never runs), and the layer
            // records that answer as it does any other.
            s.assert_status(&SpanStatus::error(""))
                .assert_attr("rpc.response.status_code", "INTERNAL")
                .assert_attr("error.type", "INTERNAL");
        }
    }
    assert!(
        server_spans
            .iter()
            .filter(|s| handled_spans.contains(&s.span_context.span_id()))
            .count()
            == handled,
        "every handler ran under its own server span"
    );

    // The duration histograms count every call once (otelrs-grpc's only per-call instruments; it
    // records no in-flight gauge).
    let m = t.metrics();
    let base = [kv("rpc.method", STREAM), kv("rpc.system.name", "grpc")];
    let client_point = m
        .histogram("rpc.client.call.duration")
        .into_iter()
        .map(|p| {
            assert!(
                p.attributes.contains(&kv("rpc.response.status_code", "CANCELLED"))
                    && p.attributes.contains(&kv("error.type", "CANCELLED"))
                    && base.iter().all(|b| p.attributes.contains(b)),
                "client duration point {:?}",
                p.attributes
            );
            p.count
        })
        .sum::<u64>();
    assert_eq!(client_point, n as u64, "one client duration per call");
    let mut server_points: BTreeMap<String, u64> = BTreeMap::new();
    for p in m.histogram("rpc.server.call.duration") {
        let code = p
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "rpc.response.status_code")
            .map(|kv| kv.value.to_string())
            .unwrap_or_default();
        let mut expected = vec![
            kv("rpc.method", STREAM),
            kv("rpc.response.status_code", code.clone()),
            kv("rpc.system.name", "grpc"),
        ];
        if code == "INTERNAL" {
            expected.insert(0, kv("error.type", "INTERNAL"));
        }
        assert_eq!(p.attributes, expected, "server duration point");
        *server_points.entry(code).or_default() += p.count;
    }
    assert_eq!(
        server_points,
        server_codes.iter().map(|(k, v)| (k.clone(), *v as u64)).collect(),
        "server durations match the spans"
    );
    let server_count: u64 = server_points.values().sum();
    assert_eq!(server_count, seen as u64, "one server duration per dispatched call");

    // The server still answers: a unary call and a stream read to its third message.
    let mut c = client.clone();
    let reply = tokio::time::timeout(TIMEOUT, ping(&mut c))
        .await
        .expect("ping in time")
        .expect("ping after the storm");
    assert_eq!(reply.n, 42);
    let mut stream = open_stream(&mut c, TickRequest::default())
        .await
        .expect("stream after the storm")
        .into_inner();
    for k in 0..3 {
        let tick = stream.message().await.expect("message").expect("endless stream");
        assert_eq!(tick.n, k);
    }
    drop(stream);
    let ping_spans = t.spans_named(PING);
    assert_eq!(ping_spans.len(), 2, "client and server span of the ping");
    for s in &ping_spans {
        s.assert_status(&SpanStatus::Unset)
            .assert_attr("rpc.response.status_code", "OK");
    }

    drop((c, client));
    let _ = shutdown_tx.send(());
    tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("server shut down in time")
        .expect("server task");
    assert_eq!(panics.load(Ordering::Relaxed), 0, "no panic anywhere");
}
