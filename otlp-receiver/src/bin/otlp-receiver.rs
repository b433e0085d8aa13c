//! `otlp-receiver`: runs an OTLP receiver as a separate process (for export benchmarks) and prints its
//! counts once a second.
//!
//! ```text
//! otlp-receiver --transport grpc|http --port N --delay-ms N [--tls-dir DIR] [--mtls]
//! ```
//!
//! With `--tls-dir DIR` it serves over TLS with `DIR/server.pem` and `DIR/server.key`; when those are
//! missing it first generates a test PKI into `DIR` (see `Pki::write_to`), so clients can trust
//! `DIR/ca.pem` and authenticate with `DIR/client.pem` / `DIR/client.key`. `--mtls` additionally
//! requires client certificates signed by `DIR/ca.pem`.
//!
//! It prints `listening on ENDPOINT` once it accepts connections, then one line per second.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use otlp_receiver::{Counts, Pki, PkiFiles, Receiver, ReceiverOptions, ServerTls, Transport};

const USAGE: &str = "usage: otlp-receiver --transport grpc|http --port N --delay-ms N [--tls-dir DIR] [--mtls]";

struct Args {
    transport: Transport,
    port: u16,
    delay: Duration,
    tls_dir: Option<PathBuf>,
    mtls: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut transport = None;
    let mut port = None;
    let mut delay = Duration::ZERO;
    let mut tls_dir = None;
    let mut mtls = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--transport" => {
                transport = Some(match value("--transport")?.as_str() {
                    "grpc" => Transport::Grpc,
                    "http" => Transport::Http,
                    other => return Err(format!("unknown transport {other:?} (grpc or http)")),
                })
            }
            "--port" => {
                let v = value("--port")?;
                port = Some(v.parse::<u16>().map_err(|e| format!("--port {v}: {e}"))?);
            }
            "--delay-ms" => {
                let v = value("--delay-ms")?;
                delay = Duration::from_millis(v.parse::<u64>().map_err(|e| format!("--delay-ms {v}: {e}"))?);
            }
            "--tls-dir" => tls_dir = Some(PathBuf::from(value("--tls-dir")?)),
            "--mtls" => mtls = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if mtls && tls_dir.is_none() {
        return Err("--mtls needs --tls-dir".into());
    }
    Ok(Args {
        transport: transport.ok_or("--transport is required")?,
        port: port.ok_or("--port is required")?,
        delay,
        tls_dir,
        mtls,
    })
}

fn server_tls(dir: &std::path::Path, mtls: bool) -> std::io::Result<ServerTls> {
    let files = PkiFiles::in_dir(dir);
    if !files.server_cert.exists() || !files.server_key.exists() {
        Pki::generate().write_to(dir)?;
        eprintln!("otlp-receiver: generated a test PKI in {}", dir.display());
    }
    let mut tls = ServerTls::new(
        std::fs::read_to_string(&files.server_cert)?,
        std::fs::read_to_string(&files.server_key)?,
    );
    if mtls {
        tls = tls.with_client_ca(std::fs::read_to_string(&files.ca)?);
    }
    Ok(tls)
}

fn rate(now: u64, before: u64, elapsed: Duration) -> f64 {
    now.saturating_sub(before) as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("otlp-receiver: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut options = ReceiverOptions::new(args.transport)
        .with_delay(args.delay)
        .with_keep_requests(false);
    if let Some(dir) = &args.tls_dir {
        match server_tls(dir, args.mtls) {
            Ok(tls) => options = options.with_tls(tls),
            Err(e) => {
                eprintln!("otlp-receiver: TLS files in {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let receiver = match Receiver::bind(addr, options) {
        Ok(receiver) => receiver,
        Err(e) => {
            eprintln!("otlp-receiver: cannot serve on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "listening on {} ({:?}, delay {} ms)",
        receiver.endpoint(),
        args.transport,
        args.delay.as_millis()
    );

    let start = Instant::now();
    let mut last = (start, Counts::default());
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = Instant::now();
        let c = receiver.counts();
        let (then, p) = last;
        let dt = now - then;
        println!(
            "t={:.0}s spans={} spans/s={:.0} trace_req/s={:.1} points={} points/s={:.0} metric_req/s={:.1} \
             logs={} logs/s={:.0} log_req/s={:.1} failed={} bytes={} bytes/s={:.0} tls_failures={}",
            (now - start).as_secs_f64(),
            c.spans,
            rate(c.spans, p.spans, dt),
            rate(c.trace_requests, p.trace_requests, dt),
            c.metric_points,
            rate(c.metric_points, p.metric_points, dt),
            rate(c.metric_requests, p.metric_requests, dt),
            c.log_records,
            rate(c.log_records, p.log_records, dt),
            rate(c.log_requests, p.log_requests, dt),
            c.failed_requests,
            c.bytes,
            rate(c.bytes, p.bytes, dt),
            c.tls_handshake_failures,
        );
        last = (now, c);
    }
}
