//! otel-sql overhead: a point SELECT on in-memory SQLite, raw sqlx vs the instrumented pool
//! (sampled and unsampled), plus sanitizer throughput on long statements.
//!
//! `cargo bench -p benches --bench sql`
//!
//! sqlx-otel is not compared yet (whether it builds with sqlx 0.9 / opentelemetry 0.33 was not
//! checked).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use otel_core::Instrumentation;
use otel_sql::sanitize::{analyze, Dialect, SanitizeOptions};
use otel_sql::{InstrumentedPool, SqlOptions};
use sqlx::sqlite::{Sqlite, SqlitePool, SqlitePoolOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn raw_pool() -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'alice')")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

fn instrumented(pool: SqlitePool, sampler: Sampler) -> InstrumentedPool<Sqlite> {
    // Real SDK spans and metrics; no exporter, so the figures are the instrumentation's own
    // cost (sampled spans are still recorded in full).
    let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let inst = Instrumentation::new()
        .with_tracer_provider(provider)
        .with_meter_provider(meter_provider);
    InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(inst))
}

const POINT: &str = "SELECT id, name FROM users WHERE id = ?";

fn point_select(c: &mut Criterion) {
    let rt = runtime();
    let pool = rt.block_on(raw_pool());
    let sampled = instrumented(pool.clone(), Sampler::AlwaysOn);
    let unsampled = instrumented(pool.clone(), Sampler::AlwaysOff);
    let mut g = c.benchmark_group("sqlite_point_select");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("raw_sqlx", |b| {
        b.iter(|| rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&pool)).unwrap())
    });
    g.bench_function("otel_sql_sampled", |b| {
        b.iter(|| rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&sampled)).unwrap())
    });
    g.bench_function("otel_sql_unsampled", |b| {
        b.iter(|| {
            rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&unsampled))
                .unwrap()
        })
    });
    g.finish();
    let raw = benches::allocations_per_call(2000, || {
        rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&pool)).unwrap()
    });
    let inst = benches::allocations_per_call(2000, || {
        rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&sampled)).unwrap()
    });
    let off = benches::allocations_per_call(2000, || {
        rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&unsampled))
            .unwrap()
    });
    println!("allocations per point select: raw {raw:.1}, otel-sql sampled {inst:.1}, unsampled {off:.1}");
}

fn sanitizer(c: &mut Criterion) {
    let mut sql = String::from("SELECT u.id, u.name, o.total FROM users u JOIN orders o ON o.uid = u.id WHERE ");
    for i in 0..400 {
        sql.push_str(&format!(
            "(u.name = 'user {i} it''s' AND o.total > {i}.5 AND o.code IN ({i}, {}, {}) /* c {i} */) OR ",
            i + 1,
            i + 2
        ));
    }
    sql.push_str("u.id = $1");
    let opts = SanitizeOptions::new(Dialect::PostgreSql).with_max_len(usize::MAX);
    let mut g = c.benchmark_group("sanitizer");
    g.throughput(Throughput::Bytes(sql.len() as u64));
    g.bench_function(format!("analyze_{}_bytes", sql.len()), |b| {
        b.iter(|| analyze(std::hint::black_box(&sql), &opts))
    });
    g.finish();
}

criterion_group!(benches, point_select, sanitizer);
criterion_main!(benches);
