//! Quickstart: otelrs-sql's SeaORM instrumentation over SeaORM's in-memory SQLite database (no
//! service to start). The `DatabaseConnection` is wrapped in an `InstrumentedDatabaseConnection`,
//! which SeaORM's entity API takes as it takes the connection: each statement (an insert, a
//! transaction with an update, a find) becomes a `CLIENT` span named after its operation and
//! table, with the SQL as `db.query.text` without the bound values, and records
//! `db.client.operation.duration`; the statements run under an application span. Everything is
//! printed to the console.
//!
//! ```sh
//! cargo run -p examples --example sea_orm
//! ```

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use opentelemetry::Context;
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_core::Instrumentation;
use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
use otelrs_sql::SqlOptions;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, TransactionTrait};

mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("sea-orm-quickstart");
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

    // SeaORM's connection, wrapped: pass `&db` wherever SeaORM takes a connection.
    let db = Database::connect("sqlite::memory:").await?;
    let db =
        InstrumentedDatabaseConnection::new(db, SqlOptions::new().with_instrumentation(telemetry.instrumentation()));
    db.execute_unprepared("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .await?;

    let tracer = telemetry
        .instrumentation()
        .tracer(Instrumentation::scope("sea-orm-quickstart", "0"));
    let cx = Context::new().with_span(tracer.start("register user"));
    let found = async {
        // The name is a bound value: `db.query.text` is `INSERT INTO "users" ("name") VALUES (?)`.
        let ada = user::ActiveModel {
            name: Set("Ada".to_owned()),
            ..Default::default()
        }
        .insert(&db)
        .await?;
        // BEGIN, UPDATE (and the row read back) and COMMIT spans.
        let tx = db.begin().await?;
        let mut renamed: user::ActiveModel = ada.clone().into();
        renamed.name = Set("Ada Lovelace".to_owned());
        renamed.update(&tx).await?;
        tx.commit().await?;
        user::Entity::find_by_id(ada.id).one(&db).await
    }
    .with_context(cx.clone())
    .await?;
    cx.span().end();
    println!("user: {found:?}");

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
