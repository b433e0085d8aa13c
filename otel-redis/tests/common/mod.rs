//! Shared helpers of the integration tests: a real Redis on loopback (`REDIS_URL`, default
//! `redis://127.0.0.1:6379/0`), unique key prefixes and the expected target attributes.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use otelrs_core::testing::kv;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr};

pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Generous timeouts: the default 500 ms response timeout is too tight for a loaded CI machine.
pub fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)))
}

pub fn client() -> Client {
    let url = redis_url();
    Client::open(url.as_str()).unwrap_or_else(|e| panic!("invalid REDIS_URL {url:?}: {e}"))
}

/// Opens a plain multiplexed connection, failing with instructions when Redis is not reachable.
pub async fn connect(client: &Client) -> MultiplexedConnection {
    match client
        .get_multiplexed_async_connection_with_config(&connection_config())
        .await
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot connect to Redis at {} ({e}); start it with `docker compose up -d redis` \
             (or set REDIS_URL to a reachable server)",
            redis_url()
        ),
    }
}

/// A key prefix unique to this test run and call.
pub fn prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "otel-redis-test:{test}:{}:{nanos}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key under `prefix` (tests use few keys; `KEYS` is fine here).
pub async fn cleanup(conn: &mut MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query_async(conn).await;
    }
}

/// The attributes every span and duration point of a connection to `client` carries, written
/// independently of the crate: `db.system.name`, `db.namespace`, `server.address`,
/// `server.port` (not 6379) and `network.peer.*` (IP literal hosts).
pub fn base_attrs(client: &Client) -> Vec<KeyValue> {
    let info = client.get_connection_info();
    let mut v = vec![
        kv("db.system.name", "redis"),
        kv("db.namespace", info.redis_settings().db().to_string()),
    ];
    if let ConnectionAddr::Tcp(host, port) = info.addr() {
        v.push(kv("server.address", host.clone()));
        if *port != 6379 {
            v.push(kv("server.port", i64::from(*port)));
        }
        if host.parse::<std::net::IpAddr>().is_ok() {
            v.push(kv("network.peer.address", host.clone()));
            v.push(kv("network.peer.port", i64::from(*port)));
        }
    }
    v
}

/// `base_attrs` plus `extra`.
pub fn with(client: &Client, extra: &[KeyValue]) -> Vec<KeyValue> {
    let mut v = base_attrs(client);
    v.extend_from_slice(extra);
    v
}
