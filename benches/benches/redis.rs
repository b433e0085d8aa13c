//! otelrs-redis: overhead per `GET` against the bare multiplexed connection in the same run
//! (loopback Redis, `REDIS_URL`, default `redis://127.0.0.1:6379/0`), sampled and unsampled, and
//! the throughput of the command masker.
//!
//! `cargo bench -p benches --bench redis`

use std::hint::black_box;

use benches::allocations_per_call;
use criterion::{criterion_group, criterion_main, Criterion};

use benches::http_apps::Sdk;
use otelrs_redis::{mask_command, RedisInstrumentation};
use redis::aio::ConnectionLike;

fn redis_get(c: &mut Criterion) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = redis::Client::open(url.as_str()).expect("REDIS_URL");
    let mut bare = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}; start it with `docker compose up -d redis`"));
    let key = "otel-redis-bench:get";
    rt.block_on(redis::cmd("SET").arg(key).arg("value").exec_async(&mut bare))
        .expect("SET");

    // The shared bench SDK: batch span processor with a discarding exporter (every span
    // exported), periodic metric reader.
    let (sampled_sdk, unsampled_sdk) = (Sdk::new(true), Sdk::new(false));
    let sampled = RedisInstrumentation::new().with_instrumentation(sampled_sdk.instrumentation());
    let unsampled = RedisInstrumentation::new().with_instrumentation(unsampled_sdk.instrumentation());
    let mut sampled_conn = sampled.connection(bare.clone(), client.get_connection_info());
    let mut unsampled_conn = unsampled.connection(bare.clone(), client.get_connection_info());
    let cmd = redis::cmd("GET").arg(key).clone();

    let mut group = c.benchmark_group("redis_get");
    group.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.req_packed_command(&cmd)).expect("GET"))
    });
    group.bench_function("otel_redis_sampled", |b| {
        b.iter(|| rt.block_on(sampled_conn.req_packed_command(&cmd)).expect("GET"))
    });
    group.bench_function("otel_redis_unsampled", |b| {
        b.iter(|| rt.block_on(unsampled_conn.req_packed_command(&cmd)).expect("GET"))
    });
    group.finish();

    let n = 2000;
    let bare_allocs = allocations_per_call(n, || rt.block_on(bare.req_packed_command(&cmd)));
    let sampled_allocs = allocations_per_call(n, || rt.block_on(sampled_conn.req_packed_command(&cmd)));
    let unsampled_allocs = allocations_per_call(n, || rt.block_on(unsampled_conn.req_packed_command(&cmd)));
    println!(
        "allocations per GET: bare {bare_allocs:.1}, otelrs-redis sampled {sampled_allocs:.1} (+{:.1}), unsampled {unsampled_allocs:.1} (+{:.1})",
        sampled_allocs - bare_allocs,
        unsampled_allocs - bare_allocs
    );
    rt.block_on(redis::cmd("DEL").arg(key).exec_async(&mut bare))
        .expect("DEL");
}

fn masking(c: &mut Criterion) {
    let set: Vec<&[u8]> = vec![b"SET", b"user:1:session", b"some session payload value", b"EX", b"3600"];
    let hset: Vec<&[u8]> = vec![
        b"HSET",
        b"user:1",
        b"name",
        b"Ada",
        b"email",
        b"ada@example.com",
        b"city",
        b"London",
        b"lang",
        b"en",
    ];
    let auth: Vec<&[u8]> = vec![b"HELLO", b"3", b"AUTH", b"default", b"hunter2", b"SETNAME", b"app"];
    let mut group = c.benchmark_group("redis_mask");
    group.bench_function("SET", |b| b.iter(|| mask_command(black_box(&set))));
    group.bench_function("HSET_4_fields", |b| b.iter(|| mask_command(black_box(&hset))));
    group.bench_function("HELLO_AUTH", |b| b.iter(|| mask_command(black_box(&auth))));
    group.finish();
    println!(
        "allocations per mask: SET {:.1}, HSET {:.1}, HELLO {:.1}",
        allocations_per_call(10_000, || mask_command(&set)),
        allocations_per_call(10_000, || mask_command(&hset)),
        allocations_per_call(10_000, || mask_command(&auth)),
    );
}

criterion_group!(benches, redis_get, masking);
criterion_main!(benches);
