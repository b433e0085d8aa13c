//! Runs N `GET`s on loopback Redis (`REDIS_URL`, default `redis://127.0.0.1:6379/0`) through one
//! variant, for instruction counting under callgrind. Instructions per `GET` =
//! `(Ir(N) - Ir(0)) / N` (this process only: the server's work is not counted).
//!
//! Usage: `redis_instructions <bare|otelrs-redis> <gets> [unsampled]`. Same SDK setup as the HTTP
//! benches (batch span processor and periodic reader with discarding exporters).

use benches::http_apps::{runtime, Sdk};
use otelrs_redis::RedisInstrumentation;
use redis::aio::ConnectionLike;

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let sampled = args.next().as_deref() != Some("unsampled");
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let sdk = Sdk::new(sampled);
    let rt = runtime();
    let client = redis::Client::open(url.as_str()).expect("REDIS_URL");
    let mut bare = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}; start it with `docker compose up -d redis`"));
    let key = "otel-redis-instructions:get";
    rt.block_on(redis::cmd("SET").arg(key).arg("value").exec_async(&mut bare))
        .expect("SET");
    let cmd = redis::cmd("GET").arg(key).clone();
    let mut bytes = 0usize;
    let mut run = |conn: &mut dyn ConnectionLike| {
        rt.block_on(async {
            // One warm-up GET so lazily initialised state is not counted.
            for _ in 0..=n {
                match conn.req_packed_command(&cmd).await.expect("GET") {
                    redis::Value::BulkString(b) => bytes += b.len(),
                    other => panic!("unexpected reply {other:?}"),
                }
            }
        })
    };
    match variant.as_str() {
        "bare" => run(&mut bare),
        "otelrs-redis" => {
            let redis = RedisInstrumentation::new().with_instrumentation(sdk.instrumentation());
            let mut conn = redis.connection(bare.clone(), client.get_connection_info());
            run(&mut conn)
        }
        other => {
            eprintln!("unknown variant {other:?}: bare or otelrs-redis");
            std::process::exit(2);
        }
    }
    let exported = sdk.flush();
    eprintln!("spans exported: {exported}");
    println!("{variant}: {n} GETs, {bytes} bytes");
}
