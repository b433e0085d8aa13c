//! Quickstart: otelrs-redis over a redis-rs multiplexed connection and over a deadpool-redis pool.
//! Each command becomes a `CLIENT` span named by the command, with values masked in
//! `db.query.text` (`SET greeting ?`), and records `db.client.operation.duration`; the pool also
//! records the `db.client.connection.*` metrics (count, max, pending, wait/create/use time,
//! timeouts). Everything is printed to the console.
//!
//! Needs a Redis server at `REDIS_URL` (default `redis://127.0.0.1:6379`), e.g.
//! `docker run --rm -p 6379:6379 redis`; without one it says so and exits with status 1.
//!
//! ```sh
//! cargo run -p examples --example redis
//! ```

use std::time::Duration;

use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_redis::RedisInstrumentation;
use redis::AsyncCommands;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("redis-quickstart");
    if std::env::var_os("OTEL_TRACES_EXPORTER").is_none() {
        builder = builder.with_traces_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_METRICS_EXPORTER").is_none() {
        builder = builder.with_metrics_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_LOGS_EXPORTER").is_none() {
        builder = builder.with_logs_exporters([]);
    }
    let telemetry = builder.install()?;

    let client = redis::Client::open(url.as_str())?;
    let connected = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection()).await;
    let conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            eprintln!("cannot connect to Redis at {url}: {e} (set REDIS_URL or start a server)");
            if let Err(e) = telemetry.shutdown() {
                eprintln!("warning: telemetry was not fully delivered: {e}");
            }
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("cannot connect to Redis at {url}: timed out (set REDIS_URL or start a server)");
            if let Err(e) = telemetry.shutdown() {
                eprintln!("warning: telemetry was not fully delivered: {e}");
            }
            std::process::exit(1);
        }
    };

    // Build once; wrap each connection. The wrapper is a `ConnectionLike`, so the usual API works.
    let redis_telemetry = RedisInstrumentation::new().with_instrumentation(telemetry.instrumentation());
    let mut conn = redis_telemetry.connection(conn, client.get_connection_info());
    let () = conn.set("greeting", "hello").await?; // span "SET", db.query.text "SET greeting ?"
    let greeting: String = conn.get("greeting").await?; // span "GET"
    println!("greeting = {greeting}");

    // The same through a deadpool-redis pool: `get()` hands out instrumented connections.
    let pool = otelrs_redis::InstrumentedPool::builder(&deadpool_redis::Config::from_url(url.as_str()))
        .with_runtime(deadpool_redis::Runtime::Tokio1)
        .build(&redis_telemetry)?;
    let mut pooled = pool.get().await?; // records db.client.connection.wait_time
    let n: i64 = pooled.incr("visits", 1).await?; // span "INCRBY"
    println!("visits = {n}");
    drop(pooled); // back to the pool: records db.client.connection.use_time

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
