#!/usr/bin/env bash
# OTLP export load matrix: builds export_load (release) once, runs it per configuration and prints
# a markdown table on stdout. Progress and the runs' stderr (otelrs-core's loss warnings) go to stderr.
# Usage: benches/export_load.sh [seconds per run, default 5]
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/otel-rs-target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
SECONDS_PER_RUN="${1:-5}"

cargo build --release -p benches --bin export_load >&2
BIN="$CARGO_TARGET_DIR/release/export_load"

RUNS=()
for transport in grpc http; do
    # A collector 20 ms away.
    RUNS+=("--transport $transport --delay-ms 20 --rate 50000")
    RUNS+=("--transport $transport --delay-ms 20 --rate 30000 --gzip")
    for concurrency in 4 8; do
        for threads in 1 2; do
            RUNS+=("--transport $transport --delay-ms 20 --rate 0 --concurrency $concurrency --threads $threads")
        done
    done
    # Loopback.
    RUNS+=("--transport $transport --delay-ms 0 --rate 100000")
    RUNS+=("--transport $transport --delay-ms 0 --rate 100000 --gzip")
    RUNS+=("--transport $transport --delay-ms 0 --rate 0")
    # The SDK's BatchSpanProcessor (one export at a time) for comparison.
    RUNS+=("--pipeline sdk --transport $transport --delay-ms 20 --rate 50000")
    RUNS+=("--pipeline sdk --transport $transport --delay-ms 0 --rate 0")
done

COLUMNS=(pipeline transport gzip delay_ms threads concurrency batch offered_rate offered produced_per_s delivered
    delivered_per_s lost lost_pct app_cpu_us_per_span dropped_queue_full failed shutdown_ms)
HEADERS=(pipeline transport gzip "delay ms" threads concurrency batch "offered/s (0 = saturation)" offered "produced/s"
    delivered "delivered/s" lost "lost %" "app CPU µs/span" "dropped (queue full)" failed "shutdown ms")

# One `key=value ...` result line to a table row in COLUMNS order.
to_row() {
    awk -v cols="${COLUMNS[*]}" '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        n = split(cols, c, " ")
        row = "|"
        for (i = 1; i <= n; i++) row = row " " (c[i] in v ? v[c[i]] : "?") " |"
        print row
    }'
}

ROWS=()
for i in "${!RUNS[@]}"; do
    echo "[$((i + 1))/${#RUNS[@]}] export_load ${RUNS[$i]} --seconds $SECONDS_PER_RUN" >&2
    # shellcheck disable=SC2086 # the run's arguments are meant to be split
    line="$("$BIN" ${RUNS[$i]} --seconds "$SECONDS_PER_RUN")"
    echo "$line" >&2
    ROWS+=("$(echo "$line" | to_row)")
done

header="|"
rule="|"
for h in "${HEADERS[@]}"; do
    header="$header $h |"
    rule="$rule --- |"
done
echo "$header"
echo "$rule"
printf '%s\n' "${ROWS[@]}"
