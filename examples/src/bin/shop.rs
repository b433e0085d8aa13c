//! The `shop` demo: one request traced across HTTP, gRPC, SQL, Redis and Kafka.
//!
//! ```sh
//! cargo run -p examples --bin shop             # run the scenario, print the traces and the RED table
//! cargo run -p examples --bin shop -- --serve  # keep the services running for curl or a load tool
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p examples --bin shop   # also export (e.g. to Jaeger)
//! ```
//!
//! Redis is used for the users cache when reachable at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`). Every other dependency is embedded: SQLite in memory and Kafka
//! through librdkafka's in-process mock cluster.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use examples::shop::metrics::render_red;
use examples::shop::render::{outcome, Style};
use examples::shop::{scenario, Cache, Shop, ShopOptions};

const USAGE: &str =
    "usage: shop [--serve]\n\n  --serve   keep the services running (Ctrl-C stops them) and print their addresses\n";

#[tokio::main]
async fn main() -> ExitCode {
    let mut serve = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--serve" => serve = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprint!("shop: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match run(serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(serve: bool) -> Result<(), examples::shop::Error> {
    let style = Style {
        color: std::io::stdout().is_terminal(),
    };
    let shop = Shop::start(&ShopOptions::from_env()?).await?;
    match &shop.cache {
        Cache::Redis(url) => println!("redis: users cache at {url}"),
        Cache::Unavailable { url, reason } => {
            println!("redis: not reachable at {url} ({reason}); users runs without its cache")
        }
    }
    for line in shop.telemetry.exports() {
        println!("telemetry: {line}");
    }
    if shop.telemetry.is_disabled() {
        println!("telemetry: OTEL_SDK_DISABLED is set; nothing is recorded");
    }

    if serve {
        println!(
            "gateway   http://{}  (POST /users, GET /users/{{id}}, POST /orders, GET /metrics)",
            shop.gateway_addr()
        );
        println!("users     http://{}  (actix-web)", shop.users_addr());
        println!("orders    grpc://{}  (shop.v1.Orders/PlaceOrder)", shop.orders_addr());
        println!(
            "kafka     {}  (mock cluster, topic order.created)",
            shop.kafka_bootstrap
        );
        println!(
            "\ntry:  curl -s -XPOST http://{}/users -d '{{\"name\":\"Ada\",\"email\":\"ada@example.com\"}}'",
            shop.gateway_addr()
        );
        println!("      curl -s http://{}/metrics\nCtrl-C stops.", shop.gateway_addr());
        tokio::signal::ctrl_c().await?;
        println!();
    } else {
        let outcomes = scenario::run(&shop).await?;
        println!();
        for (n, o) in outcomes.iter().enumerate() {
            println!("{}", outcome(n + 1, o, style));
        }
    }
    let rows = shop.red_rows();
    if !rows.is_empty() {
        println!(
            "RED per operation, from the duration histograms the crates recorded (p50/p99 estimated from buckets):"
        );
        print!("{}", render_red(&rows));
    }
    shop.shutdown().await
}
