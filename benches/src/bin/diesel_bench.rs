//! A Diesel point `SELECT` on in-memory SQLite (Diesel's synchronous `SqliteConnection`, SQLite
//! compiled in), bare, with otelrs-sql's Diesel instrumentation, and with `diesel-tracing` 0.4,
//! all three on the same Diesel 2.4. diesel-tracing's connection wrappers
//! (`InstrumentedSqliteConnection`, which open a `tracing` span per call) do not build against
//! Diesel 2.4; what does is its `TracingInstrumentation`, the same Diesel hook as ours, which
//! emits a `DEBUG` event with the formatted query (bind values included) at the start and end
//! of each query and no span or metric. It runs with a `tracing-subscriber` fmt layer enabled at
//! `DEBUG` writing to a sink (at `INFO` its events are disabled and it costs next to nothing).
//! Same OpenTelemetry SDK setup as the other benches: a batch span processor with a discarding
//! exporter (every sampled span exported) and a periodic metric reader.
//!
//! Usage:
//!
//! * `diesel_bench instructions <bare|otelrs-sql|diesel-tracing> <queries> [unsampled]`: runs
//!   the queries through one variant, for instruction counting under callgrind (instructions
//!   per query = `(Ir(N) - Ir(0)) / N`);
//! * `diesel_bench latency [rounds] [queries-per-round] [unsampled]` (defaults 41, 2000): the
//!   three variants interleaved within one process, a batch each per round in rotating order;
//!   prints each variant's median per-query time and the median of the per-round differences to
//!   the bare variant (pairing within a round cancels the machine's slow phases).

use std::time::Instant;

use benches::http_apps::Sdk;
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use otelrs_sql::diesel::DieselInstrumentation;
use otelrs_sql::SqlOptions;

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
    }
}

const URL: &str = ":memory:";
const SCHEMA: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                      INSERT INTO users (id, name) VALUES (1, 'alice');";

/// The point select every variant runs: `SELECT ... WHERE id = ? LIMIT ?`, one row.
fn point_select<C>(conn: &mut C) -> (i32, String)
where
    C: diesel::Connection<Backend = diesel::sqlite::Sqlite> + diesel::connection::LoadConnection,
{
    users::table
        .find(1)
        .select((users::id, users::name))
        .first(conn)
        .expect("select")
}

/// One variant's connection (for diesel-tracing, with the `tracing` dispatcher its events go
/// to).
enum Variant {
    Bare(SqliteConnection),
    OtelrsSql(SqliteConnection),
    DieselTracing(SqliteConnection, tracing::Dispatch),
}

impl Variant {
    fn new(name: &str, sdk: &Sdk) -> Self {
        let mut conn = SqliteConnection::establish(URL).expect("sqlite");
        conn.batch_execute(SCHEMA).expect("schema");
        match name {
            "bare" => Variant::Bare(conn),
            "otelrs-sql" => {
                let diesel = DieselInstrumentation::new(SqlOptions::new().with_instrumentation(sdk.instrumentation()));
                conn.set_instrumentation(diesel.connection(URL));
                Variant::OtelrsSql(conn)
            }
            "diesel-tracing" => {
                conn.set_instrumentation(diesel_tracing::TracingInstrumentation::new(false));
                let subscriber = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::DEBUG)
                    .with_ansi(false)
                    .with_writer(std::io::sink)
                    .finish();
                Variant::DieselTracing(conn, tracing::Dispatch::new(subscriber))
            }
            other => {
                eprintln!("unknown variant {other:?}: bare, otelrs-sql or diesel-tracing");
                std::process::exit(2);
            }
        }
    }

    /// Runs `n` point selects; returns the bytes of the names read (so nothing is optimised
    /// away).
    fn run(&mut self, n: u64) -> usize {
        let mut bytes = 0;
        match self {
            Variant::Bare(conn) | Variant::OtelrsSql(conn) => {
                for _ in 0..n {
                    bytes += point_select(conn).1.len();
                }
            }
            Variant::DieselTracing(conn, dispatch) => tracing::dispatcher::with_default(dispatch, || {
                for _ in 0..n {
                    bytes += point_select(conn).1.len();
                }
            }),
        }
        bytes
    }
}

/// Per-round mean times (ns per query) of one variant.
struct Samples {
    name: &'static str,
    means: Vec<f64>,
}

impl Samples {
    fn sorted(v: &[f64]) -> Vec<f64> {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(v: &[f64]) -> f64 {
        Self::sorted(v)[v.len() / 2]
    }

    fn quartiles(v: &[f64]) -> (f64, f64) {
        let s = Self::sorted(v);
        (s[s.len() / 4], s[3 * s.len() / 4])
    }
}

fn latency(sdk: &Sdk, rounds: usize, per_round: u64) {
    let names = ["bare", "otelrs-sql", "diesel-tracing"];
    let mut variants: Vec<Variant> = names.iter().map(|n| Variant::new(n, sdk)).collect();
    let mut samples: Vec<Samples> = names
        .iter()
        .map(|&name| Samples {
            name,
            means: Vec::new(),
        })
        .collect();
    for round in 0..=rounds {
        // Rotate the order so no variant always runs first or last in a round.
        for k in 0..variants.len() {
            let v = (round + k) % variants.len();
            let t = Instant::now();
            std::hint::black_box(variants[v].run(per_round));
            // Round 0 warms caches and lazily built state.
            if round > 0 {
                samples[v].means.push(t.elapsed().as_nanos() as f64 / per_round as f64);
            }
        }
    }
    let base = &samples[0];
    let b = Samples::median(&base.means);
    for s in &samples {
        let (q1, q3) = Samples::quartiles(&s.means);
        println!(
            "  {:<15} median {:>7.0} ns/query (quartiles {q1:.0}..{q3:.0})",
            s.name,
            Samples::median(&s.means)
        );
    }
    for s in &samples[1..] {
        let diffs: Vec<f64> = base.means.iter().zip(&s.means).map(|(b, o)| o - b).collect();
        let m = Samples::median(&diffs);
        let (q1, q3) = Samples::quartiles(&diffs);
        println!(
            "  {} - bare: median of per-round differences {m:+.0} ns = {:+.1} % (quartiles {q1:+.0}..{q3:+.0} ns)",
            s.name,
            100.0 * m / b
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    match mode.as_str() {
        "instructions" => {
            let variant = args.next().unwrap_or_default();
            let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let sampled = args.next().as_deref() != Some("unsampled");
            let sdk = Sdk::new(sampled);
            let mut v = Variant::new(&variant, &sdk);
            // One warm-up query so lazily initialised state is not counted.
            let bytes = v.run(1) + v.run(n);
            let exported = sdk.flush();
            eprintln!("spans exported: {exported}");
            println!("{variant}: {n} queries, {bytes} bytes");
        }
        "latency" => {
            let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(41);
            let per_round: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
            let sampled = args.next().as_deref() != Some("unsampled");
            let sdk = Sdk::new(sampled);
            println!(
                "Diesel SQLite point SELECT, {rounds} rounds x {per_round} queries per variant, {}",
                if sampled { "sampled" } else { "unsampled" }
            );
            latency(&sdk, rounds, per_round);
            eprintln!("spans exported: {}", sdk.flush());
        }
        _ => {
            eprintln!("usage: diesel_bench instructions <bare|otelrs-sql|diesel-tracing> <queries> [unsampled]");
            eprintln!("       diesel_bench latency [rounds] [queries-per-round] [unsampled]");
            std::process::exit(2);
        }
    }
}
