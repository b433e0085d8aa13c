//! sqlcommenter on the real PostgreSQL: the comment PostgreSQL receives names the statement's
//! own span, `db.query.text` stays as written, marked mode comments only marked statements, and
//! connections and transactions comment like the pool.
#![cfg(feature = "postgres")]

mod common;

use common::{postgres_url, unreachable_service};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt, Tracer as _};
use opentelemetry::Context;
use otelrs_core::opentelemetry_sdk::trace::SpanData;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::{InstrumentedPool, QueryInfo, QueryInfoExt, SqlCommenter, SqlOptions};
use sqlx::postgres::{PgPoolOptions, Postgres};

async fn pool(t: &TestTelemetry, mode: SqlCommenter) -> InstrumentedPool<Postgres> {
    let url = postgres_url();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    InstrumentedPool::new(
        pool,
        SqlOptions::new()
            .with_instrumentation(t.instrumentation())
            .with_sqlcommenter(mode),
    )
}

/// The comment PostgreSQL must have received for the statement of `span`.
fn comment_of(span: &SpanData) -> String {
    format!(
        " /*traceparent='00-{}-{}-01'*/",
        span.span_context.trace_id(),
        span.span_context.span_id()
    )
}

const QUERY: &str = "SELECT current_query()";

#[tokio::test]
async fn every_statement_carries_its_own_span_context() {
    let t = TestTelemetry::new();
    let pool = pool(&t, SqlCommenter::All).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("GET /report"));

    // Through the pool, with binds (a prepared statement).
    let seen: String = sqlx::query_scalar("SELECT current_query() WHERE $1 = 1")
        .bind(1i32)
        .fetch_one(&pool)
        .with_context(cx.clone())
        .await
        .unwrap();
    // Through an acquired connection and a transaction.
    let mut conn = pool.acquire().await.unwrap();
    let seen_conn: String = sqlx::query_scalar(QUERY)
        .fetch_one(&mut conn)
        .with_context(cx.clone())
        .await
        .unwrap();
    drop(conn);
    let mut tx = pool.begin().await.unwrap();
    let seen_tx: Vec<String> = sqlx::query_scalar(QUERY)
        .fetch_all(&mut tx)
        .with_context(cx.clone())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    cx.span().end();

    let parent = t.span("GET /report");
    let spans: Vec<SpanData> = t.spans_named("SELECT");
    assert_eq!(
        spans.len(),
        3,
        "{:?}",
        t.spans().iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert_eq!(
        seen,
        format!("SELECT current_query() WHERE $1 = 1{}", comment_of(&spans[0]))
    );
    assert_eq!(seen_conn, format!("{QUERY}{}", comment_of(&spans[1])));
    assert_eq!(seen_tx, [format!("{QUERY}{}", comment_of(&spans[2]))]);
    for s in &spans {
        s.assert_child_of(&parent);
    }
    // The recorded text is the statement as written.
    spans[0].assert_attr("db.query.text", "SELECT current_query() WHERE $1 = 1");
    spans[1].assert_attr("db.query.text", QUERY);
    // BEGIN and COMMIT (named `BEGIN {db.namespace}`, ...) are transaction control, not
    // commented queries.
    let control: Vec<String> = t
        .spans()
        .into_iter()
        .map(|s| s.name.into_owned())
        .filter(|n| n.starts_with("BEGIN") || n.starts_with("COMMIT"))
        .collect();
    assert_eq!(control.len(), 2, "{control:?}");
}

#[tokio::test]
async fn marked_mode_comments_only_marked_statements_and_keeps_existing_comments() {
    let t = TestTelemetry::new();
    let pool = pool(&t, SqlCommenter::Marked).await;
    let plain: String = sqlx::query_scalar(QUERY).fetch_one(&pool).await.unwrap();
    assert_eq!(plain, QUERY);
    let marked: String = sqlx::query_scalar(QUERY)
        .fetch_one(&pool)
        .with_query_info(QueryInfo::new().sql_comment(true))
        .await
        .unwrap();
    let own: String = sqlx::query_scalar("SELECT current_query() /* app */")
        .fetch_one(&pool)
        .with_query_info(QueryInfo::new().sql_comment(true))
        .await
        .unwrap();
    assert_eq!(
        own, "SELECT current_query() /* app */",
        "an existing comment is never touched"
    );
    let spans = t.spans_named("SELECT");
    assert_eq!(spans.len(), 3);
    assert_eq!(marked, format!("{QUERY}{}", comment_of(&spans[1])));
    spans[1].assert_attrs(&[
        kv("db.system.name", "postgresql"),
        kv("db.namespace", spans[1].attr("db.namespace").cloned().unwrap()),
        kv("server.address", spans[1].attr("server.address").cloned().unwrap()),
        kv("db.query.summary", "SELECT"),
        kv("db.query.text", QUERY),
        kv("db.response.returned_rows", 1i64),
    ]);
}

#[tokio::test]
async fn off_by_default() {
    let t = TestTelemetry::new();
    let url = postgres_url();
    let raw = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    let pool = InstrumentedPool::new(raw, SqlOptions::new().with_instrumentation(t.instrumentation()));
    let seen: String = sqlx::query_scalar(QUERY).fetch_one(&pool).await.unwrap();
    assert_eq!(seen, QUERY);
    assert_eq!(t.spans_named("SELECT").len(), 1);
}
