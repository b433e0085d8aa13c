//! What a Diesel database URL tells about its target: `db.system.name`, the sanitizer's dialect,
//! `server.address` / `server.port` and `db.namespace`. Credentials and other parameters are
//! skipped, never kept.

use otelrs_core::conv::address::parse_port;
use otelrs_core::conv::split_authority;

use crate::database::{server, ServerInfo};
use crate::sanitize::Dialect;

/// The database a connection URL points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// `db.system.name`.
    pub(crate) system: &'static str,
    pub(crate) dialect: Dialect,
    /// Address, non-default port and namespace.
    pub(crate) server: ServerInfo,
    /// The TCP port as configured (default or not), for the default pool name.
    pub(crate) configured_port: Option<u16>,
}

/// Reads a URL as Diesel's connections take it:
///
/// * `postgres://` / `postgresql://[user[:password]@]host[:port][,...][/dbname][?host=..&port=..&dbname=..&user=..]`
///   and libpq's `key=value` strings (`host=db dbname=app user=me`): PostgreSQL; the namespace is
///   the database, else the user (PostgreSQL connects to the database named after the user);
/// * `mysql://` and `mariadb://[user[:password]@]host[:port][/database][?socket=..|unix_socket=..]`:
///   MySQL or MariaDB;
/// * anything else is a SQLite database: a file path, `file:` URI (`sqlite://` too) or
///   `:memory:`; the namespace is the path without its `file:` prefix and `?` parameters.
pub(crate) fn parse(url: &str) -> Target {
    let url = url.trim();
    let lower_scheme = url
        .find("://")
        .map(|i| url[..i].to_ascii_lowercase())
        .unwrap_or_default();
    match lower_scheme.as_str() {
        "postgres" | "postgresql" => postgres_url(&url[lower_scheme.len() + 3..]),
        "mysql" => mysql_url("mysql", &url[lower_scheme.len() + 3..]),
        "mariadb" => mysql_url("mariadb", &url[lower_scheme.len() + 3..]),
        _ if is_libpq_keywords(url) => postgres_keywords(url),
        _ => sqlite(url),
    }
}

/// The authority, path and query of `rest` (what follows `scheme://`).
fn split_url(rest: &str) -> (&str, &str, &str) {
    let rest = rest.split('#').next().unwrap_or("");
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i + 1..]),
        None => (before_query, ""),
    };
    (authority, path, query)
}

/// The query parameters, percent-decoded.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// The user name of an authority's userinfo (the password is skipped).
fn user(authority: &str) -> Option<String> {
    let (userinfo, _) = authority.rsplit_once('@')?;
    let user = userinfo.split(':').next().unwrap_or("");
    Some(percent_decode(user)).filter(|u| !u.is_empty())
}

fn postgres_url(rest: &str) -> Target {
    let (authority, path, query) = split_url(rest);
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // Several hosts (`h1:5432,h2:5433`): the first is the one tried first.
    let first = hosts.split(',').next().unwrap_or("");
    let (mut host, mut port) = match split_authority(first) {
        Some((h, p)) => (percent_decode(h), p),
        None => (String::new(), None),
    };
    let mut user = user(authority);
    let mut dbname = Some(percent_decode(path)).filter(|d| !d.is_empty());
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "host" => host = v.split(',').next().unwrap_or("").to_owned(),
            "port" => port = v.split(',').next().and_then(parse_port),
            "dbname" => dbname = Some(v).filter(|d| !d.is_empty()),
            "user" => user = Some(v).filter(|u| !u.is_empty()),
            _ => {}
        }
    }
    postgres_target(host, port, dbname.or(user))
}

/// Whether `s` is a libpq keyword/value connection string (`host=localhost dbname=app`).
fn is_libpq_keywords(s: &str) -> bool {
    !s.contains("://")
        && s.split_ascii_whitespace().any(|token| {
            ["host=", "hostaddr=", "port=", "dbname=", "user="]
                .iter()
                .any(|k| token.starts_with(k))
        })
}

fn postgres_keywords(s: &str) -> Target {
    let (mut host, mut port, mut dbname, mut user) = (String::new(), None, None, None);
    for token in s.split_ascii_whitespace() {
        let Some((k, v)) = token.split_once('=') else { continue };
        let v = v.trim_matches('\'');
        match k {
            "host" | "hostaddr" if host.is_empty() || k == "host" => {
                host = v.split(',').next().unwrap_or("").to_owned();
            }
            "port" => port = v.split(',').next().and_then(parse_port),
            "dbname" => dbname = Some(v.to_owned()).filter(|d| !d.is_empty()),
            "user" => user = Some(v.to_owned()).filter(|u| !u.is_empty()),
            _ => {}
        }
    }
    postgres_target(host, port, dbname.or(user))
}

fn postgres_target(host: String, port: Option<u16>, namespace: Option<String>) -> Target {
    // A host starting with `/` is the directory of a Unix socket: no port.
    let socket = host.starts_with('/');
    let configured_port = (!socket && !host.is_empty()).then(|| port.unwrap_or(5432));
    Target {
        system: "postgresql",
        dialect: Dialect::PostgreSql,
        server: ServerInfo {
            server: server(&host, if socket { None } else { port.filter(|p| *p != 5432) }),
            namespace,
        },
        configured_port,
    }
}

fn mysql_url(system: &'static str, rest: &str) -> Target {
    let (authority, path, query) = split_url(rest);
    let host_part = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (mut host, mut port) = match split_authority(host_part) {
        Some((h, p)) => (percent_decode(h), p),
        None => (String::new(), None),
    };
    let database = Some(percent_decode(path)).filter(|d| !d.is_empty());
    for (k, v) in query_pairs(query) {
        if (k == "socket" || k == "unix_socket") && !v.is_empty() {
            host = v;
            port = None;
        }
    }
    let socket = host.starts_with('/');
    let configured_port = (!socket && !host.is_empty()).then(|| port.unwrap_or(3306));
    Target {
        system,
        dialect: Dialect::MySql,
        server: ServerInfo {
            server: server(&host, if socket { None } else { port.filter(|p| *p != 3306) }),
            namespace: database,
        },
        configured_port,
    }
}

fn sqlite(url: &str) -> Target {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match path.strip_prefix("file:") {
        // Only a `file:` URI has parameters; a plain path may contain `?`.
        Some(uri) => uri.split_once('?').unwrap_or((uri, "")),
        None => (path, ""),
    };
    let memory = path == ":memory:" || query_pairs(query).any(|(k, v)| k == "mode" && v == "memory");
    let namespace = if memory && (path.is_empty() || path == ":memory:") {
        ":memory:".to_owned()
    } else {
        path.to_owned()
    };
    Target {
        system: "sqlite",
        dialect: Dialect::Sqlite,
        server: ServerInfo {
            server: None,
            namespace: Some(namespace).filter(|n| !n.is_empty()),
        },
        configured_port: None,
    }
}

/// `%XX` sequences decoded (invalid ones kept as written; invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(url: &str) -> (&'static str, Option<String>, Option<u16>, Option<String>, Option<u16>) {
        let t = parse(url);
        (
            t.system,
            t.server.server.as_ref().map(|a| a.address.as_str().to_owned()),
            t.server.server.as_ref().and_then(|a| a.port),
            t.server.namespace,
            t.configured_port,
        )
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn postgres_urls() {
        assert_eq!(
            summary("postgres://postgres@127.0.0.1:5432/test"),
            ("postgresql", s("127.0.0.1"), None, s("test"), Some(5432))
        );
        assert_eq!(
            summary("postgresql://app:s3cr%40t@db.internal:6432/orders?sslmode=require"),
            ("postgresql", s("db.internal"), Some(6432), s("orders"), Some(6432))
        );
        // No database: the user's name.
        assert_eq!(
            summary("postgres://alice:pw@[::1]"),
            ("postgresql", s("::1"), None, s("alice"), Some(5432))
        );
        // Several hosts: the first; parameters override the authority.
        assert_eq!(
            summary("postgres://u@h1:5433,h2:5434/db"),
            ("postgresql", s("h1"), Some(5433), s("db"), Some(5433))
        );
        assert_eq!(
            summary("postgres:///app?host=/var/run/postgresql&user=me"),
            ("postgresql", s("/var/run/postgresql"), None, s("app"), None)
        );
        assert_eq!(
            summary("postgres://%2Frun%2Fpg/app"),
            ("postgresql", s("/run/pg"), None, s("app"), None)
        );
        assert_eq!(
            summary("host=db.local port=5433 dbname=app user=me password=hunter2"),
            ("postgresql", s("db.local"), Some(5433), s("app"), Some(5433))
        );
        assert_eq!(parse("postgres://h/db").dialect, Dialect::PostgreSql);
    }

    #[test]
    fn mysql_urls() {
        assert_eq!(
            summary("mysql://root@127.0.0.1:3306/test"),
            ("mysql", s("127.0.0.1"), None, s("test"), Some(3306))
        );
        assert_eq!(
            summary("mariadb://app:pw@maria:3307/shop?ssl_mode=required"),
            ("mariadb", s("maria"), Some(3307), s("shop"), Some(3307))
        );
        assert_eq!(
            summary("mysql://root@localhost/db?unix_socket=/run/mysqld/mysqld.sock"),
            ("mysql", s("/run/mysqld/mysqld.sock"), None, s("db"), None)
        );
        assert_eq!(summary("mysql://h"), ("mysql", s("h"), None, None, Some(3306)));
        assert_eq!(parse("MYSQL://h/d").dialect, Dialect::MySql);
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(summary(":memory:"), ("sqlite", None, None, s(":memory:"), None));
        assert_eq!(
            summary("file::memory:?cache=shared"),
            ("sqlite", None, None, s(":memory:"), None)
        );
        assert_eq!(
            summary("file:memdb1?mode=memory&cache=shared"),
            ("sqlite", None, None, s("memdb1"), None)
        );
        assert_eq!(summary("data/app.db"), ("sqlite", None, None, s("data/app.db"), None));
        assert_eq!(
            summary("sqlite://data/app.db"),
            ("sqlite", None, None, s("data/app.db"), None)
        );
        assert_eq!(
            summary("file:/tmp/x.db?mode=ro"),
            ("sqlite", None, None, s("/tmp/x.db"), None)
        );
        assert_eq!(summary(""), ("sqlite", None, None, None, None));
        assert_eq!(parse("a.db").dialect, Dialect::Sqlite);
    }

    #[test]
    fn credentials_are_never_kept() {
        for url in [
            "postgres://app:hunter2@db/app",
            "mysql://root:hunter2@db/app",
            "host=db password=hunter2 dbname=app",
        ] {
            let t = parse(url);
            assert!(!format!("{t:?}").contains("hunter2"), "{url}: {t:?}");
        }
    }
}
