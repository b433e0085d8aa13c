//! The RED table (requests, errors, duration percentiles), read from the duration histograms the
//! adapters recorded, as exposed by each service's Prometheus registry. Nothing here looks at
//! spans: percentiles are estimated from the histogram buckets, as a Prometheus
//! `histogram_quantile` would.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One sample line of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket` / `_count` / `_sum` suffix).
    pub name: String,
    /// Labels in file order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses the sample lines of a Prometheus text exposition; comments and malformed lines are skipped.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // key
            let start = chars.peek()?.0;
            let mut key_end = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    key_end = i;
                    break;
                }
                if c == '}' {
                    return None;
                }
            }
            let key = after[start..key_end].trim_start_matches(',').trim().to_owned();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.push((key, value));
            match chars.next()? {
                (_, ',') => {
                    if chars.peek().is_some_and(|(_, c)| *c == '}') {
                        let (i, _) = chars.next()?;
                        rest = &after[i + 1..];
                        break;
                    }
                }
                (i, '}') => {
                    rest = &after[i + 1..];
                    break;
                }
                _ => return None,
            }
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample { name, labels, value })
}

/// A duration histogram of the semantic conventions, how to name its rows.
struct Family {
    /// Prometheus name of the histogram (OTel name with `.` → `_` and the unit suffix).
    metric: &'static str,
    /// Column shown in the table.
    signal: &'static str,
    /// Labels that make up the row name, joined by a space; the first present alternative wins.
    key: &'static [&'static [&'static str]],
}

const FAMILIES: &[Family] = &[
    Family {
        metric: "http_server_request_duration_seconds",
        signal: "HTTP server",
        key: &[&["http_request_method"], &["http_route"]],
    },
    Family {
        metric: "http_client_request_duration_seconds",
        signal: "HTTP client",
        key: &[&["http_request_method"], &["server_address"], &["server_port"]],
    },
    Family {
        metric: "rpc_server_call_duration_seconds",
        signal: "RPC server",
        key: &[&["rpc_method"]],
    },
    Family {
        metric: "rpc_client_call_duration_seconds",
        signal: "RPC client",
        key: &[&["rpc_method"]],
    },
    Family {
        metric: "db_client_operation_duration_seconds",
        signal: "DB client",
        key: &[&["db_system_name"], &["db_query_summary", "db_operation_name"]],
    },
    Family {
        metric: "messaging_client_operation_duration_seconds",
        signal: "messaging",
        key: &[&["messaging_operation_name"], &["messaging_destination_name"]],
    },
    Family {
        metric: "messaging_process_duration_seconds",
        signal: "messaging",
        key: &[&["messaging_operation_name"], &["messaging_destination_name"]],
    },
];

/// One row of the RED table.
#[derive(Clone, Debug, PartialEq)]
pub struct RedRow {
    /// The service whose registry held the histogram.
    pub service: String,
    /// `HTTP server`, `RPC client`, `DB client`, ...
    pub signal: &'static str,
    /// Route, RPC method, DB operation or destination.
    pub operation: String,
    /// Number of recorded operations.
    pub requests: u64,
    /// Of which carried `error.type`.
    pub errors: u64,
    /// Median estimated from the buckets, in seconds.
    pub p50: Quantile,
    /// 99th percentile estimated from the buckets, in seconds.
    pub p99: Quantile,
}

/// A percentile estimated from histogram buckets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quantile {
    /// Interpolated inside a bucket, in seconds.
    Seconds(f64),
    /// Above the largest finite bucket bound (in seconds).
    Above(f64),
    /// No data.
    None,
}

#[derive(Default)]
struct Acc {
    count: f64,
    errors: f64,
    buckets: BTreeMap<u64, (f64, f64)>, // bound bits ordered by value → (bound, cumulative count)
}

/// Builds the RED rows of one service from its Prometheus text.
pub fn red_rows(service: &str, exposition: &str) -> Vec<RedRow> {
    let samples = parse_prometheus(exposition);
    let mut rows = Vec::new();
    for family in FAMILIES {
        let mut accs: BTreeMap<String, Acc> = BTreeMap::new();
        let op_of = |s: &Sample| -> String {
            let mut op = String::new();
            for alts in family.key {
                if let Some((k, v)) = alts.iter().find_map(|k| s.label(k).map(|v| (*k, v))) {
                    if !op.is_empty() {
                        op.push(if k == "server_port" { ':' } else { ' ' });
                    }
                    op.push_str(v);
                }
            }
            op
        };
        for s in &samples {
            let Some(suffix) = s.name.strip_prefix(family.metric) else {
                continue;
            };
            let acc = accs.entry(op_of(s)).or_default();
            match suffix {
                "_count" => {
                    acc.count += s.value;
                    if s.label("error_type").is_some() {
                        acc.errors += s.value;
                    }
                }
                "_bucket" => {
                    let Some(le) = s.label("le").and_then(|le| match le {
                        "+Inf" => Some(f64::INFINITY),
                        v => v.parse::<f64>().ok(),
                    }) else {
                        continue;
                    };
                    // Non-negative bounds order like their bit patterns.
                    let e = acc.buckets.entry(le.max(0.0).to_bits()).or_insert((le, 0.0));
                    e.1 += s.value;
                }
                _ => {}
            }
        }
        for (operation, acc) in accs {
            if acc.count <= 0.0 {
                continue;
            }
            let buckets: Vec<(f64, f64)> = acc.buckets.into_values().collect();
            rows.push(RedRow {
                service: service.to_owned(),
                signal: family.signal,
                operation,
                requests: acc.count.round() as u64,
                errors: acc.errors.round() as u64,
                p50: quantile(0.5, &buckets),
                p99: quantile(0.99, &buckets),
            });
        }
    }
    rows
}

/// `histogram_quantile` over cumulative `(upper bound, count)` buckets sorted by bound.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Quantile {
    let Some(&(_, total)) = buckets.last() else {
        return Quantile::None;
    };
    if total <= 0.0 {
        return Quantile::None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, cumulative) in buckets {
        if cumulative >= rank {
            if bound.is_infinite() {
                return Quantile::Above(lower);
            }
            let in_bucket = cumulative - below;
            let fraction = if in_bucket > 0.0 {
                (rank - below) / in_bucket
            } else {
                1.0
            };
            return Quantile::Seconds(lower + (bound - lower) * fraction);
        }
        (lower, below) = (bound, cumulative);
    }
    Quantile::Above(lower)
}

fn fmt_quantile(q: Quantile) -> String {
    match q {
        Quantile::Seconds(s) => fmt_seconds(s),
        Quantile::Above(s) => format!(">{}", fmt_seconds(s)),
        Quantile::None => "-".to_owned(),
    }
}

/// `1.2 ms`, `350 µs`, `2.1 s`.
pub fn fmt_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// Renders the RED table.
pub fn render_red(rows: &[RedRow]) -> String {
    let mut out = String::new();
    let op_width = rows
        .iter()
        .map(|r| r.operation.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    let _ = writeln!(
        out,
        "{:<9} {:<11} {:<op_width$} {:>8} {:>6} {:>9} {:>9}",
        "service", "signal", "operation", "requests", "errors", "p50", "p99"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<9} {:<11} {:<op_width$} {:>8} {:>6} {:>9} {:>9}",
            r.service,
            r.signal,
            r.operation,
            r.requests,
            r.errors,
            fmt_quantile(r.p50),
            fmt_quantile(r.p99)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes_and_values() {
        let s = parse_line(r#"x_bucket{a="1",b="q\"uote\\",le="+Inf",} 7"#).expect("parsed");
        assert_eq!(s.name, "x_bucket");
        assert_eq!(s.label("b"), Some("q\"uote\\"));
        assert_eq!(s.label("le"), Some("+Inf"));
        assert_eq!(s.value, 7.0);
        assert_eq!(parse_line("up 1").expect("parsed").value, 1.0);
        assert!(parse_line("broken{a=1} 2").is_none());
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let b = [(0.005, 0.0), (0.01, 10.0), (0.025, 10.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(0.5, &b), Quantile::Seconds(0.0075));
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 3.0)]), Quantile::Above(0.1));
        assert_eq!(quantile(0.5, &[]), Quantile::None);
    }

    #[test]
    fn rows_sum_series_and_count_errors() {
        let text = "\
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/a\",le=\"0.01\"} 1
http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/a\",le=\"+Inf\"} 1
http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/a\"} 1
http_server_request_duration_seconds_bucket{error_type=\"500\",http_request_method=\"GET\",http_route=\"/a\",le=\"0.01\"} 0
http_server_request_duration_seconds_bucket{error_type=\"500\",http_request_method=\"GET\",http_route=\"/a\",le=\"+Inf\"} 1
http_server_request_duration_seconds_count{error_type=\"500\",http_request_method=\"GET\",http_route=\"/a\"} 1
";
        let rows = red_rows("gw", text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operation, "GET /a");
        assert_eq!((rows[0].requests, rows[0].errors), (2, 1));
        assert_eq!(rows[0].p50, Quantile::Seconds(0.01));
        assert_eq!(rows[0].p99, Quantile::Above(0.01));
    }
}
