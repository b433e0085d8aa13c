//! Quickstart: otelrs-sql's `InstrumentedPool` over an in-memory SQLite database. Each query
//! (create table, insert, select) becomes a `CLIENT` span named after its operation and table,
//! with the statement as `db.query.text` (as written when it uses placeholders, literals hidden
//! otherwise), and records `db.client.operation.duration`;
//! both are printed to the console.
//!
//! ```sh
//! cargo run -p examples --example sqlx
//! ```

use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use sqlx::sqlite::SqlitePoolOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("sqlx-quickstart");
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

    // One connection that never expires: an in-memory database lives as long as its connection.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await?;
    let db = InstrumentedPool::new(
        pool,
        SqlOptions::new()
            .with_instrumentation(telemetry.instrumentation())
            .with_pool_name("quickstart"),
    );

    // `&InstrumentedPool` is an `Executor`: use it wherever sqlx takes a pool.
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&db)
        .await?;
    let id = sqlx::query_scalar::<_, i64>("INSERT INTO users (name) VALUES (?) RETURNING id")
        .bind("Ada")
        .fetch_one(&db)
        .await?;
    let name = sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(&db)
        .await?;
    println!("user {id}: {name}");

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
