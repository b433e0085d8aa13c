//! The reqwest middleware over real loopback connections: the client conformance table.

mod common;
mod conformance;

use std::future::Future;
use std::pin::Pin;

use http::Extensions;
use otelrs_http::attributes::KnownMethods;
use otelrs_http::{HttpClientMiddleware, ResendCount, UrlTemplate};
use reqwest_middleware::{ClientBuilder, Next};

use conformance::client::{ClientCall, ClientProfile};

/// A retry middleware stand-in: sends every request twice, returning the second result.
fn send_twice<'a>(
    req: reqwest::Request,
    extensions: &'a mut Extensions,
    next: Next<'a>,
) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'a>> {
    Box::pin(async move {
        let first = req.try_clone().expect("cloneable request");
        next.clone().run(first, &mut *extensions).await?;
        next.run(req, extensions).await
    })
}

/// The client conformance table through reqwest-middleware: a retry is a middleware in front of
/// the instrumentation sending the request again (the middleware extensions carry the attempt
/// count). reqwest reports a refused connection as `connect` and moves the URL's userinfo into
/// an `Authorization` header before any middleware runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_table() {
    let profile = ClientProfile {
        connect_error_type: "connect",
        url_keeps_userinfo: false,
    };
    conformance::client::run(
        "reqwest HttpClientMiddleware",
        profile,
        |inst, call: ClientCall| async move {
            let mut builder = ClientBuilder::new(reqwest::Client::new());
            match call.attempts {
                1 => {}
                2 => builder = builder.with(send_twice),
                n => panic!("{n} attempts: only 1 or 2 are supported here"),
            }
            let client = builder
                .with(
                    HttpClientMiddleware::new()
                        .with_instrumentation(inst)
                        .with_known_methods(KnownMethods::defaults()),
                )
                .build();
            let mut req = client.request(call.method.clone(), &call.url);
            if let Some(t) = call.template {
                req = req.with_extension(UrlTemplate::new(t));
            }
            if let Some(n) = call.resend_count {
                req = req.with_extension(ResendCount(n));
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    resp.bytes().await.map_err(|e| e.to_string())?;
                    Ok(status)
                }
                Err(e) => {
                    assert!(e.is_connect(), "{e}");
                    Err(e.to_string())
                }
            }
        },
    )
    .await;
}
