//! Latency added per operation by otelrs-sql and sqlx-otel (SQLite in-memory point `SELECT`) and otelrs-redis
//! (loopback `GET`), measured as wall-clock time with the variants interleaved: each round runs
//! a batch of operations through both variants (in alternating order), and the figures are the
//! median of the per-round means and the median of the per-round differences. Pairing the two
//! variants within a round makes slow phases of the machine hit both alike, which a criterion
//! run of one variant after another cannot do on a shared machine.
//!
//! Usage: `db_latency [sdk|sql|redis|all] [rounds] [ops-per-round] [unsampled]` (defaults: all, 41,
//! 2000). Same SDK setup as the other benches: a batch span processor with a discarding exporter
//! (every span exported) and a periodic metric reader.

use std::time::Instant;

use benches::http_apps::{runtime, Sdk};
use benches::sdk032::Sdk032;
use otelrs_redis::RedisInstrumentation;
use otelrs_sql::{InstrumentedPool, SqlOptions};
use redis::aio::ConnectionLike;

use benches::SQLITE_POINT_SELECT as POINT;

/// Per-round mean latencies (ns per operation) of one variant.
struct Samples {
    name: &'static str,
    means: Vec<f64>,
}

impl Samples {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            means: Vec::new(),
        }
    }

    fn median(&self) -> f64 {
        let mut v = self.means.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn quartiles(&self) -> (f64, f64) {
        let mut v = self.means.clone();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 4], v[3 * v.len() / 4])
    }
}

fn report(title: &str, base: &Samples, other: &Samples) {
    println!("{title}");
    for s in [base, other] {
        let (q1, q3) = s.quartiles();
        println!(
            "  {:<22} median {:>8.0} ns/op (quartiles {:.0}..{:.0})",
            s.name,
            s.median(),
            q1,
            q3
        );
    }
    let diffs = Samples {
        name: "difference",
        means: base.means.iter().zip(&other.means).map(|(b, o)| o - b).collect(),
    };
    let (q1, q3) = diffs.quartiles();
    let m = diffs.median();
    let b = base.median();
    println!(
        "  {} - {}: median of per-round differences {:+.0} ns = {:+.2} % (quartiles {:+.0}..{:+.0} ns = {:+.2}..{:+.2} %)",
        other.name,
        base.name,
        m,
        100.0 * m / b,
        q1,
        q3,
        100.0 * q1 / b,
        100.0 * q3 / b
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "all".to_owned());
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(41);
    let ops: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let sampled = args.next().as_deref() != Some("unsampled");
    let sdk = Sdk::new(sampled);
    // sqlx-otel reads the opentelemetry 0.32 globals: the same setup, built from that version.
    let sdk032 = Sdk032::install(sampled);
    let rt = runtime();
    println!(
        "{} rounds x {ops} operations per variant, {}",
        rounds,
        if sampled { "sampled" } else { "unsampled" }
    );

    if which == "sdk" || which == "all" {
        // The floor any instrumentation pays per operation with a sampled, exported span: the
        // SDK starting and ending an empty CLIENT span (plus its export, when the export thread
        // shares the CPU).
        use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
        let tracer = sdk.tracer_provider.tracer("floor");
        let mut floor = Samples::new("SDK span start + end");
        for round in 0..=rounds {
            let t = Instant::now();
            for _ in 0..ops {
                let mut span = tracer.span_builder("GET").with_kind(SpanKind::Client).start(&tracer);
                span.end();
            }
            if round > 0 {
                floor.means.push(t.elapsed().as_nanos() as f64 / f64::from(ops));
            }
        }
        // The same span with the attributes a database span must carry (shared strings, as an
        // instrumentation keeps them) and one bound histogram point: no instrumentation that
        // records these can cost less.
        use opentelemetry::metrics::MeterProvider as _;
        use opentelemetry::KeyValue;
        let attrs: Vec<KeyValue> = vec![
            KeyValue::new("db.system.name", "sqlite"),
            KeyValue::new("db.namespace", ":memory:"),
            KeyValue::new("db.query.text", "SELECT id, name FROM users WHERE id = ?"),
            KeyValue::new("db.query.summary", "SELECT users"),
        ];
        let histogram = sdk
            .meter_provider
            .meter("floor")
            .f64_histogram("db.client.operation.duration")
            .with_unit("s")
            .build();
        let bound = histogram.bind(&attrs[..2]);
        let mut with_attrs = Samples::new("SDK span with 5 attributes + 1 bound histogram point");
        for round in 0..=rounds {
            let t = Instant::now();
            for _ in 0..ops {
                let start = Instant::now();
                let mut span = tracer
                    .span_builder("SELECT users")
                    .with_kind(SpanKind::Client)
                    .with_attributes(attrs.iter().cloned())
                    .start(&tracer);
                span.set_attribute(KeyValue::new("db.response.returned_rows", 1_i64));
                span.end();
                bound.record(start.elapsed().as_secs_f64());
            }
            if round > 0 {
                with_attrs.means.push(t.elapsed().as_nanos() as f64 / f64::from(ops));
            }
        }
        for s in [&floor, &with_attrs] {
            let (q1, q3) = s.quartiles();
            println!(
                "{}: median {:.0} ns per operation (quartiles {q1:.0}..{q3:.0})",
                s.name,
                s.median()
            );
        }
    }

    if which == "sql" || which == "all" {
        let pool = rt.block_on(benches::sqlite_users_pool());
        let otel = InstrumentedPool::new(
            pool.clone(),
            SqlOptions::new().with_instrumentation(sdk.instrumentation()),
        );
        let sqlx_otel = sqlx_otel::PoolBuilder::from(pool.clone()).build();
        // Mean ns per point SELECT over one batch through `executor`.
        macro_rules! time_batch {
            ($executor:expr) => {{
                let t = Instant::now();
                rt.block_on(async {
                    for _ in 0..ops {
                        let row: (i64, String) = sqlx::query_as(POINT)
                            .bind(1i64)
                            .fetch_one($executor)
                            .await
                            .expect("select");
                        std::hint::black_box(row);
                    }
                });
                t.elapsed().as_nanos() as f64 / f64::from(ops)
            }};
        }
        let mut raw_s = Samples::new("sqlx (raw)");
        let mut otel_s = Samples::new("otelrs-sql");
        let mut sqlx_otel_s = Samples::new("sqlx-otel 0.5");
        for round in 0..=rounds {
            // Rotate the order so no variant always runs first or last in a round.
            let mut t = [0.0; 3];
            for k in 0..3 {
                let v = (round + k) % 3;
                t[v] = match v {
                    0 => time_batch!(&pool),
                    1 => time_batch!(&otel),
                    _ => time_batch!(&sqlx_otel),
                };
            }
            // Round 0 warms caches, connections and lazily built state.
            if round > 0 {
                raw_s.means.push(t[0]);
                otel_s.means.push(t[1]);
                sqlx_otel_s.means.push(t[2]);
            }
        }
        report("SQLite in-memory point SELECT (sqlx 0.9)", &raw_s, &otel_s);
        report("SQLite in-memory point SELECT (sqlx 0.9)", &raw_s, &sqlx_otel_s);
    }

    if which == "redis" || which == "all" {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
        let client = redis::Client::open(url.as_str()).expect("REDIS_URL");
        let mut bare = rt
            .block_on(client.get_multiplexed_async_connection())
            .unwrap_or_else(|e| panic!("Redis at {url}: {e}; start it with `docker compose up -d redis`"));
        let key = "otel-redis-latency:get";
        rt.block_on(redis::cmd("SET").arg(key).arg("value").exec_async(&mut bare))
            .expect("SET");
        let cmd = redis::cmd("GET").arg(key).clone();
        let redis = RedisInstrumentation::new().with_instrumentation(sdk.instrumentation());
        let mut otel = redis.connection(bare.clone(), client.get_connection_info());
        let mut bare_s = Samples::new("redis (bare)");
        let mut otel_s = Samples::new("otelrs-redis");
        let run = |conn: &mut dyn ConnectionLike| {
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..ops {
                    std::hint::black_box(conn.req_packed_command(&cmd).await.expect("GET"));
                }
            });
            t.elapsed().as_nanos() as f64 / f64::from(ops)
        };
        for round in 0..=rounds {
            let (b, o) = if round % 2 == 0 {
                let b = run(&mut bare);
                (b, run(&mut otel))
            } else {
                let o = run(&mut otel);
                (run(&mut bare), o)
            };
            if round > 0 {
                bare_s.means.push(b);
                otel_s.means.push(o);
            }
        }
        report("Redis loopback GET (multiplexed connection)", &bare_s, &otel_s);
    }

    sdk032.flush();
    let exported = sdk.flush();
    println!("spans exported: {exported}");
}
