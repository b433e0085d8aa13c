//! [`ConnectionInstrumentation`]: Diesel's connection events turned into operations.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ::diesel::connection::{DebugQuery, Instrumentation, InstrumentationEvent};
use ::diesel::result::ConnectionError;
use opentelemetry::trace::Span as _;
use opentelemetry::Context;
use otelrs_core::hotpath::FxBuildHasher;

use super::error::{classify_connection_error, classify_error, failure};
use super::DieselInstrumentation;
use crate::telemetry::{Op, OpKind, Outcome, Shared};

/// A connection keeps at most this many unfinished operations; the oldest beyond it is ended as
/// cancelled.
const MAX_PENDING: usize = 64;

/// The instrumentation of one Diesel connection, made by [`DieselInstrumentation`]: it
/// implements [`diesel::connection::Instrumentation`](::diesel::connection::Instrumentation), so
/// it is what `conn.set_instrumentation(..)` takes (or what the process default hands every new
/// connection).
///
/// Each `StartQuery` … `FinishQuery` pair is one `CLIENT` span and one
/// `db.client.operation.duration` point; see the [module](super) for what is recorded and how a
/// query that never finishes is ended.
pub struct ConnectionInstrumentation {
    source: DieselInstrumentation,
    /// The connection's target; `None` until a process-default instance sees its URL.
    shared: Option<Arc<Shared>>,
    /// Operations started and not finished yet, oldest first.
    pending: VecDeque<Pending>,
    /// What the next `StartQuery` is, after a transaction event (`BEGIN`, `COMMIT`, `ROLLBACK`).
    next_transaction: Option<&'static str>,
    /// The connection establishment in progress.
    connect: Option<Connect>,
    /// Scratch buffer for a query's SQL.
    sql: String,
}

struct Pending {
    op: Op,
    /// A hash of the SQL, to match a `FinishQuery` when several operations are unfinished.
    sql_hash: u64,
    /// When a later query started while this one was unfinished: it was overlapped (pipelined,
    /// or abandoned by the caller). Ended as cancelled, as of then, at the next query after
    /// that unless its `FinishQuery` comes first.
    overlapped: Option<(Instant, SystemTime)>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Never finished: cancelled, as of when it was overlapped if it was (else now).
        self.op.finish_at(Outcome::Cancelled, self.overlapped);
    }
}

/// A connection establishment's span: ended by `FinishEstablishConnection`, or with
/// `error.type = "_OTHER"` when dropped before it (the establishment ended without reporting
/// how: diesel-async's `AsyncPgConnection` raises no `FinishEstablishConnection` when its TCP
/// connection fails, and a dropped establishment future raises none either).
struct Connect {
    span: Option<otelrs_core::Span>,
}

impl Connect {
    fn end(mut self, error: Option<&ConnectionError>) {
        if let Some(mut span) = self.span.take() {
            if let Some(error) = error {
                let (error_type, _) = classify_connection_error(error);
                // No description: driver messages can quote the URL, credentials included.
                otelrs_core::status::record_failure(&mut span, error_type, None);
            }
            span.end();
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            otelrs_core::status::record_failure(&mut span, otelrs_core::status::ERROR_TYPE_OTHER, None);
            span.end();
        }
    }
}

impl fmt::Debug for ConnectionInstrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInstrumentation")
            .field("bound", &self.shared.is_some())
            .field("pending", &self.pending.len())
            .field("pipelining", &self.source.pipelining)
            .finish_non_exhaustive()
    }
}

fn sql_hash(sql: &str) -> u64 {
    FxBuildHasher.hash_one(sql)
}

impl ConnectionInstrumentation {
    pub(super) fn new(source: DieselInstrumentation, shared: Option<Arc<Shared>>) -> Self {
        Self {
            source,
            shared,
            pending: VecDeque::new(),
            next_transaction: None,
            connect: None,
            sql: String::new(),
        }
    }

    fn start_connect(&mut self, url: &str) {
        let shared = self.source.shared_for_url(url);
        let name = format!("connect {}", shared.fallback_name());
        let span = shared.start_span(name, &Context::current(), SystemTime::now());
        // A previous establishment that never finished ends here (`_OTHER`).
        self.connect = Some(Connect { span: Some(span) });
        self.shared = Some(shared);
    }

    fn start_query(&mut self, query: &dyn DebugQuery) {
        let transaction = self.next_transaction.take();
        let Some(shared) = self.shared.clone() else {
            // A connection whose target is unknown (the default instance of a connection a
            // driver sets up before it reports the URL): nothing to attribute the query to.
            return;
        };
        if !self.source.pipelining {
            // Overlapped twice without finishing: abandoned (dropping ends it as cancelled).
            self.pending.retain(|p| p.overlapped.is_none());
            if !self.pending.is_empty() {
                let now = (Instant::now(), SystemTime::now());
                for p in &mut self.pending {
                    p.overlapped = Some(now);
                }
            }
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        query_sql(query, &mut self.sql);
        let kind = match transaction {
            Some(operation) => OpKind::Transaction(operation),
            None => OpKind::Query(shared.query_meta(&self.sql)),
        };
        let mut op = Op::new(shared, kind, false);
        op.issue();
        self.pending.push_back(Pending {
            op,
            sql_hash: sql_hash(&self.sql),
            overlapped: None,
        });
    }

    fn finish_query(&mut self, query: &dyn DebugQuery, error: Option<&::diesel::result::Error>) {
        self.next_transaction = None;
        let index = if self.pending.len() > 1 {
            // The oldest with this SQL, else the oldest not overlapped, else the oldest.
            query_sql(query, &mut self.sql);
            let hash = sql_hash(&self.sql);
            self.pending
                .iter()
                .position(|p| p.sql_hash == hash)
                .or_else(|| self.pending.iter().position(|p| p.overlapped.is_none()))
                .unwrap_or(0)
        } else {
            0
        };
        let Some(mut pending) = self.pending.remove(index) else {
            return;
        };
        let outcome = match error {
            None => Outcome::Ok(None),
            Some(e) => Outcome::Err(failure(classify_error(e))),
        };
        pending.op.finish(outcome);
    }
}

impl Instrumentation for ConnectionInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => self.start_query(query),
            InstrumentationEvent::FinishQuery { query, error, .. } => self.finish_query(query, error),
            // Always followed by the transaction statement's `StartQuery`.
            InstrumentationEvent::BeginTransaction { .. } => self.next_transaction = Some("BEGIN"),
            InstrumentationEvent::CommitTransaction { .. } => self.next_transaction = Some("COMMIT"),
            InstrumentationEvent::RollbackTransaction { .. } => self.next_transaction = Some("ROLLBACK"),
            InstrumentationEvent::StartEstablishConnection { url, .. } => self.start_connect(url),
            InstrumentationEvent::FinishEstablishConnection { error, .. } => {
                if let Some(connect) = self.connect.take() {
                    connect.end(error);
                }
            }
            // `CacheQuery` and events of later Diesel versions.
            _ => {}
        }
    }
}

/// Stops formatting at the first write: the SQL. What Diesel writes after it is
/// ` -- binds: [...]`, the bound values, which are never formatted, let alone exported.
struct FirstWrite<'a> {
    buf: &'a mut String,
    written: bool,
}

impl fmt::Write for FirstWrite<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.written {
            self.written = true;
            self.buf.push_str(s);
        }
        Err(fmt::Error)
    }
}

/// The SQL of a Diesel query without its bind values, into `buf`.
///
/// Diesel's `DebugQuery` prints `{sql} -- binds: [{values:?}]` (a raw statement prints its
/// text): the SQL is written in one piece first, and formatting is aborted right after it, so
/// the values are never even formatted. Should a later Diesel write the SQL in pieces, the text
/// is cut short, never extended to the values; a ` -- binds: ` in what was read is cut off too.
pub(crate) fn query_sql(query: &dyn DebugQuery, buf: &mut String) {
    buf.clear();
    let mut w = FirstWrite { buf, written: false };
    let _ = write!(w, "{query}");
    if let Some(i) = buf.find(" -- binds: ") {
        buf.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query printing like Diesel's `DebugQuery`.
    struct Fake(&'static str, &'static [&'static str]);

    impl fmt::Display for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let sql = String::from(self.0);
            write!(f, "{sql} -- binds: {:?}", self.1)
        }
    }
    impl fmt::Debug for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(self, f)
        }
    }
    impl DebugQuery for Fake {}

    /// Prints its values first: a Diesel that changed its format must still never leak them.
    struct ValuesFirst;

    impl fmt::Display for ValuesFirst {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("SELECT ")?;
            f.write_str("'hunter2'")
        }
    }
    impl fmt::Debug for ValuesFirst {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(self, f)
        }
    }
    impl DebugQuery for ValuesFirst {}

    #[test]
    fn the_sql_is_read_without_the_binds() {
        let mut buf = String::from("stale");
        query_sql(&Fake("SELECT id FROM users WHERE name = $1", &["hunter2"]), &mut buf);
        assert_eq!(buf, "SELECT id FROM users WHERE name = $1");
        query_sql(&Fake("", &["hunter2"]), &mut buf);
        assert_eq!(buf, "");
        query_sql(&ValuesFirst, &mut buf);
        assert_eq!(buf, "SELECT ");
    }
}
