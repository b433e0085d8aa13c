//! otelrs-sql overhead: a point SELECT on in-memory SQLite, raw sqlx vs the instrumented pool
//! (sampled and unsampled) vs sqlx-otel 0.5 (sampled, on an equivalent opentelemetry 0.32 SDK
//! setup, since that is the version it is built on), plus sanitizer throughput on long
//! statements. Every variant exports its spans through a batch processor to a discarding
//! exporter. For steadier latency figures see `src/bin/db_latency.rs`.
//!
//! `cargo bench -p benches --bench sql`

use std::time::Duration;

use benches::http_apps::Sdk;
use benches::sdk032::Sdk032;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use otelrs_sql::sanitize::{analyze, Dialect, SanitizeOptions};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use sqlx::sqlite::{Sqlite, SqlitePool};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn instrumented(pool: SqlitePool, sdk: &Sdk) -> InstrumentedPool<Sqlite> {
    InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(sdk.instrumentation()))
}

use benches::SQLITE_POINT_SELECT as POINT;

fn point_select(c: &mut Criterion) {
    let rt = runtime();
    let pool = rt.block_on(benches::sqlite_users_pool());
    let (sampled_sdk, unsampled_sdk) = (Sdk::new(true), Sdk::new(false));
    let sampled = instrumented(pool.clone(), &sampled_sdk);
    let unsampled = instrumented(pool.clone(), &unsampled_sdk);
    let _sdk032 = Sdk032::install(true);
    let sqlx_otel = sqlx_otel::PoolBuilder::from(pool.clone()).build();
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
    g.bench_function("sqlx_otel_sampled", |b| {
        b.iter(|| {
            rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&sqlx_otel))
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
    let alt = benches::allocations_per_call(2000, || {
        rt.block_on(sqlx::query(POINT).bind(1i64).fetch_one(&sqlx_otel))
            .unwrap()
    });
    println!(
        "allocations per point select: raw {raw:.1}, otelrs-sql sampled {inst:.1}, unsampled {off:.1}, sqlx-otel sampled {alt:.1}"
    );
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
