//! Terminal rendering: a trace as a waterfall, one line per span, indented by parent.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, Status};

use super::metrics::fmt_seconds;
use super::scenario::Outcome;
use super::telemetry::FinishedSpan;

const BAR: usize = 24;

/// ANSI styling, off when the output is not a terminal.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Whether to emit colour codes.
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn kind(k: &SpanKind) -> &'static str {
    match k {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

/// The attributes worth a glance: route, status codes, query summary, destination, error type;
/// `tracing` for a span made through the `tracing` bridge (`#[instrument]`, `info_span!`).
fn key_attributes(s: &FinishedSpan) -> String {
    let mut parts = Vec::new();
    if s.scope == "tracing-opentelemetry" {
        parts.push("tracing".to_owned());
    }
    if let Some(route) = s.attr_string("http.route") {
        parts.push(format!("route={route}"));
    }
    if let Some(code) = s.attr_string("http.response.status_code") {
        parts.push(format!("http={code}"));
    }
    if let Some(code) = s.attr_string("rpc.response.status_code") {
        parts.push(format!("grpc={code}"));
    }
    if let Some(system) = s.attr_string("db.system.name") {
        parts.push(format!("db={system}"));
    }
    if let Some(summary) = s.attr_string("db.query.summary") {
        parts.push(format!("summary={summary:?}"));
    }
    if let Some(rows) = s.attr_string("db.response.returned_rows") {
        parts.push(format!("rows={rows}"));
    }
    if let Some(dest) = s.attr_string("messaging.destination.name") {
        parts.push(format!("dest={dest}"));
    }
    if matches!(s.kind, SpanKind::Client | SpanKind::Producer) {
        if let Some(host) = s.attr_string("server.address") {
            match s.attr_string("server.port") {
                Some(port) => parts.push(format!("→ {host}:{port}")),
                None => parts.push(format!("→ {host}")),
            }
        }
    }
    if let Some(e) = s.attr_string("error.type") {
        parts.push(format!("error.type={e}"));
    }
    if !s.links.is_empty() {
        parts.push(format!("links={}", s.links.len()));
    }
    parts.join(" ")
}

fn offset(t: SystemTime, t0: SystemTime) -> Duration {
    t.duration_since(t0).unwrap_or_default()
}

/// Draws one trace. Spans whose parent is not in `spans` (the root, or a child of the caller's
/// remote span) start at the left.
pub fn waterfall(spans: &[FinishedSpan], style: Style) -> String {
    let mut out = String::new();
    let Some(t0) = spans.iter().map(|s| s.start).min() else {
        return "  (no spans recorded)\n".to_owned();
    };
    let t1 = spans.iter().map(|s| s.end).max().unwrap_or(t0);
    let total = offset(t1, t0).max(Duration::from_micros(1)).as_secs_f64();
    let ids: HashMap<_, _> = spans.iter().enumerate().map(|(i, s)| (s.span_id(), i)).collect();
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        let parent = s.parent_span_id.and_then(|p| ids.get(&p).copied());
        children.entry(parent).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| spans[i].start);
    }
    // Depth-first: (span, tree prefix).
    let mut rows: Vec<(usize, String)> = Vec::new();
    fn walk(
        node: Option<usize>,
        prefix: &str,
        children: &HashMap<Option<usize>, Vec<usize>>,
        rows: &mut Vec<(usize, String)>,
    ) {
        let Some(list) = children.get(&node) else { return };
        for (n, &i) in list.iter().enumerate() {
            let last = n + 1 == list.len();
            let (branch, next) = match node {
                None => (String::new(), String::new()),
                Some(_) => (
                    format!("{prefix}{}", if last { "└─ " } else { "├─ " }),
                    format!("{prefix}{}", if last { "   " } else { "│  " }),
                ),
            };
            rows.push((i, branch));
            walk(Some(i), &next, children, rows);
        }
    }
    walk(None, "", &children, &mut rows);

    let name_width = rows
        .iter()
        .map(|(i, prefix)| prefix.chars().count() + spans[*i].name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(20, 60);
    for (i, prefix) in rows {
        let s = &spans[i];
        let start = offset(s.start, t0).as_secs_f64() / total;
        let len = s.duration().as_secs_f64() / total;
        let from = ((start * BAR as f64).floor() as usize).min(BAR - 1);
        let width = ((len * BAR as f64).round() as usize).clamp(1, BAR - from);
        let bar = format!(
            "{}{}{}",
            " ".repeat(from),
            "█".repeat(width),
            " ".repeat(BAR - from - width)
        );
        let label = format!("{prefix}{}", s.name);
        let pad = name_width.saturating_sub(label.chars().count());
        let status = match &s.status {
            Status::Error { .. } => style.paint("1;31", "ERROR"),
            Status::Ok => style.paint("32", "OK   "),
            Status::Unset => "     ".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<8} {label}{} │{}│ {:>8} {status} {}",
            s.service,
            kind(&s.kind),
            " ".repeat(pad),
            style.paint("36", &bar),
            fmt_seconds(s.duration().as_secs_f64()),
            key_attributes(s)
        );
    }
    out
}

/// The heading and waterfall of one scenario step.
pub fn outcome(n: usize, o: &Outcome, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.paint("1", &format!("{n}. {}: {} → {}", o.title, o.request, o.status))
    );
    match o.trace_id {
        Some(trace_id) => {
            let mut line = format!("   trace {trace_id}, {} spans", o.spans.len());
            if let Some(caller) = o.caller_trace_id {
                if caller == trace_id {
                    line.push_str(" (the caller's trace id, from its traceparent)");
                } else {
                    line.push_str(&format!(" (the caller sent trace {caller}!)"));
                }
            }
            let _ = writeln!(out, "{line}");
            out.push_str(&waterfall(&o.spans, style));
        }
        None => {
            let _ = writeln!(
                out,
                "   (no trace recorded: telemetry is disabled or the request was sampled out)"
            );
        }
    }
    out
}
