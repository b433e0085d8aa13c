//! [`TraceIdFormat`]: console lines that carry the trace and span ids of the active
//! OpenTelemetry context, so a line found in a terminal or a log file leads to its trace.

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// A `tracing-subscriber` event format: the default (`Full`) line followed by
/// ` trace_id=<32 hex> span_id=<16 hex>` when an OpenTelemetry span is active.
///
/// ```text
/// 2026-01-01T12:00:00.000000Z  INFO checkout{order=42}: shop::payment: card charged amount=12 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7
/// ```
///
/// The ids are those of [`opentelemetry::Context::current`] when the event is emitted: a span of
/// an adapter or of the OpenTelemetry API made current, or, with the `tracing` bridge
/// (`TracingBridge`, feature `tracing-bridge`, whose context activation makes an entered
/// `tracing` span's context current), the innermost entered `tracing` span. Outside any span the
/// line has no ids. `TracingBridge`'s console output uses this format; use it in a subscriber of
/// your own with [`fmt::Layer::event_format`](tracing_subscriber::fmt::Layer::event_format):
///
/// ```
/// use otelrs_core::sdk::TraceIdFormat;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer().event_format(TraceIdFormat::default()));
/// tracing::subscriber::with_default(subscriber, || tracing::info!("ready"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceIdFormat {
    _private: (),
}

impl<S, N> FormatEvent<S, N> for TraceIdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let ansi = writer.has_ansi_escapes();
        if SystemTime.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        let meta = event.metadata();
        let level = *meta.level();
        if ansi {
            write!(writer, " \x1b[{}m{level:>5}\x1b[0m ", level_colour(level))?;
        } else {
            write!(writer, " {level:>5} ")?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if ansi {
                    write!(writer, "\x1b[1m{}\x1b[0m", span.name())?;
                } else {
                    writer.write_str(span.name())?;
                }
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    if !fields.fields.is_empty() {
                        write!(writer, "{{{}}}", fields.fields)?;
                    }
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        if ansi {
            write!(writer, "\x1b[2m{}:\x1b[0m ", meta.target())?;
        } else {
            write!(writer, "{}: ", meta.target())?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        let span_context = opentelemetry::Context::map_current(|cx| cx.span().span_context().clone());
        if span_context.is_valid() {
            write!(
                writer,
                " trace_id={} span_id={}",
                span_context.trace_id(),
                span_context.span_id()
            )?;
        }
        writeln!(writer)
    }
}

/// The ANSI colour the default format gives each level.
fn level_colour(level: Level) -> u8 {
    match level {
        Level::TRACE => 35,
        Level::DEBUG => 34,
        Level::INFO => 32,
        Level::WARN => 33,
        Level::ERROR => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_the_ids_of_the_current_context_and_the_span_scope() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(TraceIdFormat::default())
                .with_ansi(false)
                .with_writer(move || out.clone()),
        );
        let span_context = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(n = 1, "outside");
            let _cx = opentelemetry::Context::new()
                .with_remote_span_context(span_context)
                .attach();
            tracing::info_span!("outer", order = 42).in_scope(|| {
                tracing::warn!(target: "shop", amount = 12, "charged");
            });
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with("  INFO otelrs_core::sdk::trace_id_format::tests: outside n=1"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(
                "  WARN outer{order=42}: shop: charged amount=12 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 \
                 span_id=00f067aa0ba902b7"
            ),
            "{}",
            lines[1]
        );
    }
}
