//! Quickstart: otelrs-sql's Diesel instrumentation over Diesel's SQLite connection in memory
//! (SQLite compiled in: no service, no C library to install). Installed as the process default,
//! it records the connection's establishment as a `connect` span, then each query (create
//! table, a transaction with an insert, a select) as a `CLIENT` span named after its operation
//! and table, the SQL as `db.query.text` without the bound values, and
//! `db.client.operation.duration`; the queries run under an application span. Everything is
//! printed to the console.
//!
//! ```sh
//! cargo run -p examples --example diesel
//! ```

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use opentelemetry::Context;
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_core::Instrumentation;
use otelrs_sql::diesel::DieselInstrumentation;
use otelrs_sql::SqlOptions;

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("diesel-quickstart");
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

    // Every Diesel connection established from now on is instrumented. (For one connection:
    // `conn.set_instrumentation(diesel.connection(url))`.)
    let diesel = DieselInstrumentation::new(SqlOptions::new().with_instrumentation(telemetry.instrumentation()));
    diesel.install_default()?;

    let tracer = telemetry
        .instrumentation()
        .tracer(Instrumentation::scope("diesel-quickstart", "0"));
    let cx = Context::new().with_span(tracer.start("register user"));
    let name = {
        let _in_span = cx.clone().attach();
        let mut conn = SqliteConnection::establish(":memory:")?;
        conn.batch_execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")?;
        // BEGIN, INSERT and COMMIT spans; the name is a bound value, never exported.
        conn.transaction(|conn| {
            diesel::insert_into(users::table)
                .values((users::id.eq(1), users::name.eq("Ada")))
                .execute(conn)
        })?;
        users::table.find(1).select(users::name).first::<String>(&mut conn)?
    };
    cx.span().end();
    println!("user: {name}");

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
