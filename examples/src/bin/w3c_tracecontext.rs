//! W3C Trace Context conformance service, built from otelrs-http's server and client layers.
//!
//! ```sh
//! cargo run -p examples --bin w3c_tracecontext -- --port 7799
//! # in a checkout of github.com/w3c/trace-context, folder test/:
//! STRICT_LEVEL=2 SPEC_LEVEL=2 python test.py http://127.0.0.1:7799/test
//! ```
//!
//! The harness sends `POST /test` with a JSON list of `{"url": ..., "arguments": [...]}` and the
//! trace context under test in the headers. For each element, in order, this service POSTs
//! `arguments` as JSON to `url` through the instrumented client: the server layer extracted the
//! incoming context, and each call gets its own client span whose context is injected.

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otelrs_core::propagation::W3cPropagator;
use otelrs_core::Instrumentation;
use otelrs_http::client::HttpClientService;
use otelrs_http::{HttpClientLayer, HttpServerLayer};
use tower::{ServiceBuilder, ServiceExt};

type TracedClient = HttpClientService<Client<HttpConnector, Full<Bytes>>>;

const USAGE: &str = "usage: w3c_tracecontext [--port PORT]   (default 7799; listens on 127.0.0.1)";

fn parse_port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut port = 7799;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" | "-p" => {
                let v = args.next().ok_or_else(|| format!("--port needs a value\n{USAGE}"))?;
                port = v.parse().map_err(|_| format!("invalid port {v:?}\n{USAGE}"))?;
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(port)
}

/// POSTs each element's `arguments` to its `url`, in order, and answers once all are done.
async fn test_endpoint(State(client): State<TracedClient>, body: Bytes) -> StatusCode {
    let Ok(serde_json::Value::Array(cases)) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    for case in cases {
        let Some(url) = case.get("url").and_then(|u| u.as_str()) else {
            continue;
        };
        let arguments = case
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
        let payload = match serde_json::to_vec(&arguments) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cannot encode arguments for {url}: {e}");
                continue;
            }
        };
        let request = match Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("invalid callback url {url:?}: {e}");
                continue;
            }
        };
        match client.clone().oneshot(request).await {
            // Read the answer so the connection can be reused.
            Ok(response) => {
                let _ = response.into_body().collect().await;
            }
            Err(e) => eprintln!("callback {url} failed: {e}"),
        }
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let port = match parse_port() {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };

    // Spans are sampled (parent-based, always-on for roots) but not exported: the suite only
    // checks what is propagated.
    let provider = SdkTracerProvider::builder().build();
    let instrumentation = Instrumentation::new()
        .with_tracer_provider(provider.clone())
        .with_propagator(W3cPropagator::default());

    let client: TracedClient = ServiceBuilder::new()
        .layer(HttpClientLayer::new().with_instrumentation(instrumentation.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http());
    let app = Router::new()
        .route("/test", post(test_endpoint))
        .with_state(client)
        .layer(HttpServerLayer::new().with_instrumentation(instrumentation));

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("w3c trace-context service listening on http://{addr}/test");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server error: {e}");
    }
    let _ = provider.shutdown();
}
