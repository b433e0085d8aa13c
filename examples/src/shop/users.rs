//! `users`: actix-web behind otelrs-http's `HttpServerMiddleware`; reads and writes users through
//! otelrs-sql (SQLite, PostgreSQL or MySQL/MariaDB) with a read-through Redis cache through
//! otelrs-redis when Redis is reachable.

use std::net::{SocketAddr, TcpListener};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use otelrs_core::Instrumentation;
use otelrs_http::HttpServerMiddleware;
use serde_json::{json, Value};

use super::store::Store;

/// How long a cached user stays in Redis.
const CACHE_TTL_SECONDS: u64 = 60;

struct State {
    db: Store,
    cache: Option<otelrs_redis::InstrumentedPool>,
    /// Prefix of this run's cache keys (`shop:{run}:`), so runs sharing a Redis never share entries.
    cache_prefix: String,
}

/// Connects to Redis at `url` and checks it answers; the error text says why not otherwise.
pub async fn connect_cache(
    url: &str,
    instrumentation: Instrumentation,
) -> Result<otelrs_redis::InstrumentedPool, String> {
    let telemetry = otelrs_redis::RedisInstrumentation::new()
        .with_instrumentation(instrumentation)
        // The reachability probe is not part of any request.
        .with_filter(otelrs_redis::Filter::new(|operation: &str| operation != "PING"));
    let mut config = deadpool_redis::Config::from_url(url);
    config.pool = Some(deadpool_redis::PoolConfig {
        timeouts: deadpool_redis::Timeouts {
            wait: Some(std::time::Duration::from_secs(2)),
            create: Some(std::time::Duration::from_secs(2)),
            recycle: Some(std::time::Duration::from_secs(2)),
        },
        ..deadpool_redis::PoolConfig::default()
    });
    let pool = otelrs_redis::InstrumentedPool::builder(&config)
        .with_runtime(deadpool_redis::Runtime::Tokio1)
        .build(&telemetry)
        .map_err(|e| e.to_string())?;
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(pool)
}

/// A running `users` service.
pub struct UsersService {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UsersService {
    /// Starts the service on its own actix system thread, on an ephemeral port of 127.0.0.1.
    pub fn start(
        instrumentation: Instrumentation,
        db: Store,
        cache: Option<otelrs_redis::InstrumentedPool>,
        cache_prefix: String,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = web::Data::new(State {
            db,
            cache,
            cache_prefix,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        // actix-web's server is not `Send`: it is built and run on its own system thread.
        let thread = std::thread::Builder::new().name("users".into()).spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .wrap(HttpServerMiddleware::new().with_instrumentation(instrumentation.clone()))
                        .route("/users", web::post().to(create_user))
                        .route("/users/{id}", web::get().to(get_user))
                })
                .workers(1)
                .disable_signals()
                .listen(listener);
                let server = match server {
                    Ok(server) => server.run(),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(server.handle()));
                if let Err(e) = server.await {
                    eprintln!("users: server stopped: {e}");
                }
            });
        })?;
        let handle = rx
            .recv()
            .map_err(|_| std::io::Error::other("users service thread exited at start"))??;
        Ok(Self {
            addr,
            handle,
            thread: Some(thread),
        })
    }

    /// Stops the server gracefully and joins its thread.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    json_response(status, &json!({ "error": message }))
}

async fn create_user(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body must be JSON");
    };
    let (Some(name), Some(email)) = (input["name"].as_str(), input["email"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "name and email are required");
    };
    match state.db.insert_user(name, email).await {
        Ok(id) => json_response(StatusCode::CREATED, &json!({ "id": id, "name": name, "email": email })),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "database error"),
    }
}

async fn get_user(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "the user id must be an integer");
    };
    let key = format!("{}user:{id}", state.cache_prefix);
    // Read-through cache: a Redis failure is a miss, never a failed request.
    let mut cache = match &state.cache {
        Some(pool) => pool.get().await.ok(),
        None => None,
    };
    if let Some(conn) = cache.as_mut() {
        if let Ok(Some(cached)) = redis::cmd("GET").arg(&key).query_async::<Option<String>>(conn).await {
            return HttpResponse::Ok()
                .content_type("application/json")
                .insert_header(("x-cache", "hit"))
                .body(cached);
        }
    }
    match state.db.find_user(id).await {
        Ok(Some((id, name, email))) => {
            let body = json!({ "id": id, "name": name, "email": email }).to_string();
            if let Some(conn) = cache.as_mut() {
                let _ = redis::cmd("SET")
                    .arg(&key)
                    .arg(&body)
                    .arg("EX")
                    .arg(CACHE_TTL_SECONDS)
                    .query_async::<()>(conn)
                    .await;
            }
            HttpResponse::Ok()
                .content_type("application/json")
                .insert_header(("x-cache", if cache.is_some() { "miss" } else { "off" }))
                .body(body)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "user not found"),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "database error"),
    }
}
