//! The `shop` demo: one request traced across HTTP, gRPC, SQL, Redis and Kafka.
//!
//! ```sh
//! cargo run -p examples --bin shop             # run the scenario, print the traces and the RED table
//! cargo run -p examples --bin shop -- --serve  # keep the services running for curl or a load tool
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p examples --bin shop   # also export (e.g. to Jaeger)
//! cargo run -p examples --bin shop -- --db postgres --broker rabbitmq   # real servers instead
//! ```
//!
//! Redis is used for the users cache when reachable at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`). By default every other dependency is embedded: SQLite in memory and
//! Kafka through librdkafka's in-process mock cluster; `--db` / `SHOP_DB` and `--broker` /
//! `SHOP_BROKER` select a server instead (see `USAGE`).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use examples::shop::broker::BrokerBackend;
use examples::shop::metrics::render_red;
use examples::shop::render::{outcome, Style};
use examples::shop::store::DbBackend;
use examples::shop::{scenario, Cache, Shop, ShopOptions};

const USAGE: &str = "\
usage: shop [--serve] [--db sqlite|postgres|mysql|URL] [--broker kafka|rabbitmq|nats|URL]

  --serve          keep the services running (Ctrl-C stops them) and print their addresses
  --db DB          the database (env SHOP_DB; default sqlite, in memory):
                     postgres  DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test
                     mysql     MYSQL_URL, default mysql://root@127.0.0.1:3306/test (MySQL or MariaDB)
                     or a postgres:// or mysql:// URL
  --broker BROKER  the broker (env SHOP_BROKER; default kafka, librdkafka's in-process mock cluster):
                     rabbitmq  AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/%2f
                     nats      NATS_URL, default nats://127.0.0.1:4222
                     or an amqp:// or nats:// URL

A server database gets a schema (PostgreSQL) or database (MySQL) of its own, shop_<run>, and a real
broker a queue or subject order.created.<run>; both are removed at exit. Redis caches users when
reachable at REDIS_URL (default redis://127.0.0.1:6379).
";

#[tokio::main]
async fn main() -> ExitCode {
    let mut options = match ShopOptions::from_env() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("shop: {e}");
            return ExitCode::from(2);
        }
    };
    let mut serve = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let parsed = match flag.as_str() {
            "--serve" if inline.is_none() => {
                serve = true;
                Ok(())
            }
            "-h" | "--help" if inline.is_none() => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--db" | "--broker" => match inline.or_else(|| args.next()) {
                None => Err(format!("{flag} needs a value")),
                Some(value) if flag == "--db" => DbBackend::parse(&value).map(|db| options.db = db),
                Some(value) => BrokerBackend::parse(&value).map(|broker| options.broker = broker),
            },
            _ => Err(format!("unknown argument {arg:?}")),
        };
        if let Err(e) = parsed {
            eprint!("shop: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    match run(serve, &options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(serve: bool, options: &ShopOptions) -> Result<(), examples::shop::Error> {
    let style = Style {
        color: std::io::stdout().is_terminal(),
    };
    let shop = Shop::start(options).await?;
    println!("database: {}", shop.database());
    println!("broker: {}", shop.broker());
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

    // Whatever happens next, `shutdown` runs: it drops the run's schema / database and queue.
    let result = drive(&shop, serve, style).await;
    let stopped = shop.shutdown().await;
    result.and(stopped)
}

async fn drive(shop: &Shop, serve: bool, style: Style) -> Result<(), examples::shop::Error> {
    if serve {
        println!(
            "gateway   http://{}  (POST /users, GET /users/{{id}}, POST /orders, GET /metrics)",
            shop.gateway_addr()
        );
        println!("users     http://{}  (actix-web)", shop.users_addr());
        println!("orders    grpc://{}  (shop.v1.Orders/PlaceOrder)", shop.orders_addr());
        println!(
            "\ntry:  curl -s -XPOST http://{}/users -d '{{\"name\":\"Ada\",\"email\":\"ada@example.com\"}}'",
            shop.gateway_addr()
        );
        println!("      curl -s http://{}/metrics\nCtrl-C stops.", shop.gateway_addr());
        tokio::signal::ctrl_c().await?;
        println!();
    } else {
        let outcomes = scenario::run(shop).await?;
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
    Ok(())
}
