//! OTLP export load: application threads end HTTP-server-like spans at a fixed rate (or as fast
//! as they can), exported by otelrs-core's batch pipeline or by the SDK's `BatchSpanProcessor` to
//! an in-process OTLP receiver that answers after a delay. Prints one `key=value` line: what was
//! offered, delivered and lost, the delivery rate and the application CPU time per span.
//!
//! Usage: `export_load [--pipeline otelrs-core|sdk] [--transport grpc|http] [--delay-ms N] [--gzip]
//! [--threads 1|2] [--rate N] [--seconds S] [--concurrency K] [--batch B] [--queue Q]`
//! (defaults: otelrs-core, grpc, 0 ms, no gzip, 1 thread, rate 0 = saturation, 5 s, otelrs-core's
//! concurrency, 512, 2048).
//!
//! `delivered_per_s` is the spans received over the time from the first span produced to the
//! last span received. For `--pipeline sdk` the SDK counts nothing we can read, so its
//! `dropped_queue_full` is `offered - delivered` and `failed` is `na`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use otelrs_core::sdk::{BatchConfig, Exporter, OtlpCompression, OtlpProtocol, SdkBuilder, SdkConfig, TelemetryGuard};
use otlp_receiver::{Receiver, ReceiverOptions, Transport};

const USAGE: &str = "usage: export_load [--pipeline otelrs-core|sdk] [--transport grpc|http] [--delay-ms N] [--gzip] \
                     [--threads 1|2] [--rate N (0 = saturation)] [--seconds S] [--concurrency K] [--batch B] [--queue Q]";
const SERVICE_NAME: &str = "export-load";
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE_POLL: Duration = Duration::from_millis(50);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Unchanged polls after which the receiver's count is taken as final when spans are missing.
const SETTLE_STABLE_POLLS: u32 = 4;
const ARRIVAL_POLL: Duration = Duration::from_millis(2);
const TICK: Duration = Duration::from_millis(1);
/// Spans ended between clock reads in saturation mode.
const SATURATION_CHUNK: u64 = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pipeline {
    OtelCore,
    Sdk,
}

struct Args {
    pipeline: Pipeline,
    transport: Transport,
    delay_ms: u64,
    gzip: bool,
    threads: usize,
    /// Total offered spans per second; 0 = saturation.
    rate: u64,
    seconds: f64,
    concurrency: usize,
    batch: usize,
    queue: usize,
}

fn usage_error(message: &str) -> ! {
    eprintln!("export_load: {message}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        pipeline: Pipeline::OtelCore,
        transport: Transport::Grpc,
        delay_ms: 0,
        gzip: false,
        threads: 1,
        rate: 0,
        seconds: 5.0,
        concurrency: BatchConfig::spans().max_concurrent_exports,
        batch: 512,
        queue: 2048,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--gzip" {
            args.gzip = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        const VALUE_FLAGS: [&str; 9] = [
            "--pipeline",
            "--transport",
            "--delay-ms",
            "--threads",
            "--rate",
            "--seconds",
            "--concurrency",
            "--batch",
            "--queue",
        ];
        if !VALUE_FLAGS.contains(&flag.as_str()) {
            usage_error(&format!("unknown argument {flag}"));
        }
        let value = it
            .next()
            .unwrap_or_else(|| usage_error(&format!("{flag} needs a value")));
        fn number<T: std::str::FromStr>(flag: &str, value: &str) -> T {
            value
                .parse()
                .unwrap_or_else(|_| usage_error(&format!("{flag}: not a number: {value}")))
        }
        match flag.as_str() {
            "--pipeline" => {
                args.pipeline = match value.as_str() {
                    "otelrs-core" => Pipeline::OtelCore,
                    "sdk" => Pipeline::Sdk,
                    _ => usage_error(&format!("--pipeline: {value}")),
                }
            }
            "--transport" => {
                args.transport = match value.as_str() {
                    "grpc" => Transport::Grpc,
                    "http" => Transport::Http,
                    _ => usage_error(&format!("--transport: {value}")),
                }
            }
            "--delay-ms" => args.delay_ms = number(&flag, &value),
            "--threads" => args.threads = number(&flag, &value),
            "--rate" => args.rate = number(&flag, &value),
            "--seconds" => args.seconds = number(&flag, &value),
            "--concurrency" => args.concurrency = number(&flag, &value),
            "--batch" => args.batch = number(&flag, &value),
            "--queue" => args.queue = number(&flag, &value),
            _ => unreachable!("checked against VALUE_FLAGS"),
        }
    }
    if !(1..=2).contains(&args.threads) {
        usage_error("--threads must be 1 or 2");
    }
    if args.seconds.is_nan() || args.seconds <= 0.0 {
        usage_error("--seconds must be positive");
    }
    args
}

/// The pipeline under test; both give an SDK tracer provider.
enum Exporting {
    OtelCore(TelemetryGuard),
    Sdk(SdkTracerProvider),
}

impl Exporting {
    fn build(args: &Args, endpoint: &str, runtime: &tokio::runtime::Runtime) -> Exporting {
        // tonic needs a runtime when the channel is built; HTTP does not.
        let _entered = (args.transport == Transport::Grpc).then(|| runtime.enter());
        match args.pipeline {
            Pipeline::OtelCore => {
                let protocol = match args.transport {
                    Transport::Grpc => OtlpProtocol::Grpc,
                    Transport::Http => OtlpProtocol::HttpProtobuf,
                };
                let guard = SdkBuilder::from_config(SdkConfig::default())
                    .with_service_name(SERVICE_NAME)
                    .with_traces_exporters([Exporter::Otlp])
                    .with_metrics_exporters([])
                    .with_logs_exporters([])
                    .with_otlp_protocol(protocol)
                    .with_otlp_endpoint(endpoint)
                    .with_otlp_compression(args.gzip.then_some(OtlpCompression::Gzip))
                    .with_span_batch(
                        BatchConfig::spans()
                            .with_max_concurrent_exports(args.concurrency)
                            .with_max_export_batch_size(args.batch)
                            .with_max_queue_size(args.queue),
                    )
                    .with_shutdown_timeout(SHUTDOWN_TIMEOUT)
                    .build()
                    .unwrap_or_else(|e| panic!("otelrs-core SDK setup: {e}"));
                Exporting::OtelCore(guard)
            }
            Pipeline::Sdk => {
                let compression = opentelemetry_otlp::Compression::Gzip;
                let exporter = match args.transport {
                    Transport::Grpc => {
                        let b = opentelemetry_otlp::SpanExporter::builder()
                            .with_tonic()
                            .with_endpoint(endpoint);
                        if args.gzip { b.with_compression(compression) } else { b }.build()
                    }
                    Transport::Http => {
                        let b = opentelemetry_otlp::SpanExporter::builder()
                            .with_http()
                            .with_endpoint(format!("{endpoint}/v1/traces"));
                        if args.gzip { b.with_compression(compression) } else { b }.build()
                    }
                }
                .unwrap_or_else(|e| panic!("OTLP span exporter: {e}"));
                let processor = BatchSpanProcessor::builder(exporter)
                    .with_batch_config(
                        BatchConfigBuilder::default()
                            .with_max_queue_size(args.queue)
                            .with_max_export_batch_size(args.batch)
                            .build(),
                    )
                    .build();
                Exporting::Sdk(
                    SdkTracerProvider::builder()
                        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
                        .with_span_processor(processor)
                        .build(),
                )
            }
        }
    }

    fn tracer_provider(&self) -> &SdkTracerProvider {
        match self {
            Exporting::OtelCore(guard) => guard.tracer_provider().expect("traces are exported"),
            Exporting::Sdk(provider) => provider,
        }
    }

    fn shutdown(&self) {
        let result = match self {
            Exporting::OtelCore(guard) => guard.shutdown().map_err(|e| e.to_string()),
            Exporting::Sdk(provider) => provider
                .shutdown_with_timeout(SHUTDOWN_TIMEOUT)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            eprintln!("export_load: shutdown: {e}");
        }
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What one application thread produced.
struct Production {
    spans: u64,
    cpu_ns: u64,
    first_span: Option<Instant>,
    last_span_end: Instant,
}

/// Ends `rate` spans per second in 1 ms ticks from `start` for `duration`; catches up when late.
fn produce_at_rate(tracer: &SdkTracer, rate: u64, start: Instant, duration: Duration) -> Production {
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let mut p = Production {
        spans: 0,
        cpu_ns: 0,
        first_span: None,
        last_span_end: start,
    };
    let mut next_tick = start + TICK;
    while p.spans < total {
        let now = Instant::now();
        if now < next_tick {
            std::thread::sleep(next_tick - now);
        }
        let elapsed = Instant::now().saturating_duration_since(start).min(duration);
        let due = if elapsed >= duration {
            total
        } else {
            ((rate as u128 * elapsed.as_nanos()) / 1_000_000_000) as u64
        };
        if due > p.spans {
            p.first_span.get_or_insert_with(Instant::now);
            let cpu_before = thread_cpu_ns();
            for _ in p.spans..due {
                benches::end_http_server_span(tracer);
            }
            p.cpu_ns += thread_cpu_ns() - cpu_before;
            p.spans = due;
            p.last_span_end = Instant::now();
        }
        // The next tick after now: ticks missed while emitting are not slept for.
        let ticks_passed = Instant::now().saturating_duration_since(start).as_nanos() / TICK.as_nanos();
        next_tick = start + TICK * (ticks_passed as u32 + 1);
    }
    p
}

/// Ends spans as fast as possible from `start` for `duration`.
fn produce_saturated(tracer: &SdkTracer, start: Instant, duration: Duration) -> Production {
    let now = Instant::now();
    if now < start {
        std::thread::sleep(start - now);
    }
    let end = start + duration;
    let first_span = Instant::now();
    let cpu_before = thread_cpu_ns();
    let mut spans = 0;
    while Instant::now() < end {
        for _ in 0..SATURATION_CHUNK {
            benches::end_http_server_span(tracer);
        }
        spans += SATURATION_CHUNK;
    }
    Production {
        spans,
        cpu_ns: thread_cpu_ns() - cpu_before,
        first_span: Some(first_span),
        last_span_end: Instant::now(),
    }
}

/// Polls the receiver until `stop`; returns when its span count last changed.
fn watch_arrivals(receiver: &Receiver, stop: &AtomicBool) -> Option<Instant> {
    let mut last_count = receiver.counts().spans;
    let mut last_change = None;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let count = receiver.counts().spans;
        if count != last_count {
            last_count = count;
            last_change = Some(Instant::now());
        }
        if stopping {
            return last_change;
        }
        std::thread::sleep(ARRIVAL_POLL);
    }
}

/// Waits until the receiver's span count stops changing (or reaches `expected`); returns it.
fn settled_span_count(receiver: &Receiver, expected: u64) -> u64 {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut count = receiver.counts().spans;
    let mut stable_polls = 0;
    while Instant::now() < deadline {
        std::thread::sleep(SETTLE_POLL);
        let now_count = receiver.counts().spans;
        if now_count == count {
            stable_polls += 1;
            if count >= expected || stable_polls >= SETTLE_STABLE_POLLS {
                break;
            }
        } else {
            count = now_count;
            stable_polls = 0;
        }
    }
    count
}

fn main() {
    let args = parse_args();
    let duration = Duration::from_secs_f64(args.seconds);
    let receiver = Receiver::start(
        ReceiverOptions::new(args.transport)
            .with_delay(Duration::from_millis(args.delay_ms))
            .with_keep_requests(false),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("export-load-tokio")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let exporting = Exporting::build(&args, &receiver.endpoint(), &runtime);
    let tracer = exporting.tracer_provider().tracer("export-load");

    let stop_watching = AtomicBool::new(false);
    let (productions, shutdown_time, delivered, last_arrival) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch_arrivals(&receiver, &stop_watching));
        let start = Instant::now() + Duration::from_millis(20);
        let producers: Vec<_> = (0..args.threads as u64)
            .map(|i| {
                let tracer = &tracer;
                // The rate split over the threads, the remainder to the first ones.
                let threads = args.threads as u64;
                let rate = args.rate / threads + u64::from(i < args.rate % threads);
                let saturate = args.rate == 0;
                s.spawn(move || {
                    if saturate {
                        produce_saturated(tracer, start, duration)
                    } else {
                        produce_at_rate(tracer, rate, start, duration)
                    }
                })
            })
            .collect();
        let productions: Vec<Production> = producers
            .into_iter()
            .map(|h| h.join().expect("producer thread"))
            .collect();
        let offered: u64 = productions.iter().map(|p| p.spans).sum();
        let shutdown_start = Instant::now();
        exporting.shutdown();
        let shutdown_time = shutdown_start.elapsed();
        let delivered = settled_span_count(&receiver, offered);
        stop_watching.store(true, Ordering::Release);
        let last_arrival = watcher.join().expect("watcher thread");
        (productions, shutdown_time, delivered, last_arrival)
    });

    let offered: u64 = productions.iter().map(|p| p.spans).sum();
    let cpu_ns: u64 = productions.iter().map(|p| p.cpu_ns).sum();
    let first_span = productions.iter().filter_map(|p| p.first_span).min();
    let last_span_end = productions.iter().map(|p| p.last_span_end).max();
    let produced_per_s = match (first_span, last_span_end) {
        (Some(first), Some(last)) if last > first => offered as f64 / (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let delivered_per_s = match (first_span, last_arrival) {
        (Some(first), Some(last)) if last > first => delivered as f64 / (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let lost = offered.saturating_sub(delivered);
    let lost_pct = if offered == 0 {
        0.0
    } else {
        100.0 * lost as f64 / offered as f64
    };
    let app_cpu_us_per_span = if offered == 0 {
        0.0
    } else {
        cpu_ns as f64 / 1000.0 / offered as f64
    };

    let (pipeline, dropped_queue_full, failed, dropped_shutdown) = match &exporting {
        Exporting::OtelCore(guard) => {
            let stats = guard.export_stats();
            let accounted = stats.spans_exported + stats.spans_failed + stats.spans_dropped_queue_full;
            if stats.spans_ended != offered
                || stats.spans_exported != delivered
                || accounted + stats.spans_dropped_shutdown != offered
            {
                eprintln!(
                    "export_load: export_stats disagree with the receiver (offered {offered}, delivered {delivered}): {stats}"
                );
            }
            (
                "otelrs-core",
                stats.spans_dropped_queue_full.to_string(),
                stats.spans_failed.to_string(),
                stats.spans_dropped_shutdown.to_string(),
            )
        }
        Exporting::Sdk(_) => ("sdk", lost.to_string(), "na".to_owned(), "na".to_owned()),
    };
    let transport = match args.transport {
        Transport::Grpc => "grpc",
        Transport::Http => "http",
    };
    println!(
        "pipeline={pipeline} transport={transport} gzip={gzip} delay_ms={delay} threads={threads} \
         concurrency={concurrency} batch={batch} queue={queue} offered_rate={rate} offered={offered} \
         produced_per_s={produced_per_s:.0} delivered={delivered} delivered_per_s={delivered_per_s:.0} \
         lost={lost} lost_pct={lost_pct:.2} app_cpu_us_per_span={app_cpu_us_per_span:.2} \
         dropped_queue_full={dropped_queue_full} failed={failed} dropped_shutdown={dropped_shutdown} \
         shutdown_ms={shutdown_ms}",
        gzip = if args.gzip { "yes" } else { "no" },
        delay = args.delay_ms,
        threads = args.threads,
        concurrency = if args.pipeline == Pipeline::Sdk {
            1
        } else {
            args.concurrency
        },
        batch = args.batch,
        queue = args.queue,
        rate = args.rate,
        shutdown_ms = shutdown_time.as_millis(),
    );
}
