//! Runs N point SELECTs on in-memory SQLite through one variant, for instruction counting under
//! callgrind (all threads, SQLite's worker thread included). Instructions per query =
//! `(Ir(N) - Ir(0)) / N`.
//!
//! Usage: `sql_instructions <raw|otelrs-sql|sqlx-otel> <queries> [unsampled]`. Same SDK setup as the HTTP
//! benches (batch span processor and periodic reader with discarding exporters).

use benches::http_apps::{runtime, Sdk};
use benches::sdk032::Sdk032;
use otelrs_sql::{InstrumentedPool, SqlOptions};

use benches::SQLITE_POINT_SELECT as POINT;

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let sampled = args.next().as_deref() != Some("unsampled");
    let sdk = Sdk::new(sampled);
    let rt = runtime();
    let pool = rt.block_on(benches::sqlite_users_pool());
    let mut names = 0usize;
    match variant.as_str() {
        "raw" => rt.block_on(async {
            // One warm-up query so lazily initialised state is not counted.
            for _ in 0..=n {
                let row: (i64, String) = sqlx::query_as(POINT).bind(1i64).fetch_one(&pool).await.expect("select");
                names += row.1.len();
            }
        }),
        "otelrs-sql" => {
            let pool = InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(sdk.instrumentation()));
            rt.block_on(async {
                for _ in 0..=n {
                    let row: (i64, String) = sqlx::query_as(POINT).bind(1i64).fetch_one(&pool).await.expect("select");
                    names += row.1.len();
                }
            })
        }
        "sqlx-otel" => {
            // sqlx-otel 0.5 is on opentelemetry 0.32 and reads its globals: the same SDK setup,
            // built from that version.
            let sdk032 = Sdk032::install(sampled);
            let pool = sqlx_otel::PoolBuilder::from(pool).build();
            rt.block_on(async {
                for _ in 0..=n {
                    let row: (i64, String) = sqlx::query_as(POINT).bind(1i64).fetch_one(&pool).await.expect("select");
                    names += row.1.len();
                }
            });
            sdk032.flush();
        }
        other => {
            eprintln!("unknown variant {other:?}: raw, otelrs-sql or sqlx-otel");
            std::process::exit(2);
        }
    }
    let exported = sdk.flush();
    eprintln!("spans exported: {exported}");
    println!("{variant}: {n} queries, {names} bytes");
}
