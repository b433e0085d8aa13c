//! The server's speed corner: values reused across requests instead of built per request
//! (interned span names, routes, hosts and user agents; the thread's last peer address). Each
//! piece is bounded, measured in `BENCHMARKS.md` (HTTP allocations and instructions), and called
//! from [`super::state`] in one line.

use std::net::IpAddr;

use opentelemetry::StringValue;
use otelrs_core::hotpath::intern::{interned_static, leak_str, shared_str, Interner};

use super::{default_span_name, Shared};

/// `value` as an interned string from `interner` (no allocation and no reference count once
/// seen, see [`interned_static`]), or freshly allocated when it cannot be interned. For
/// repeating, peer-supplied values (host names, user agents).
pub(super) fn interned(interner: &Interner<&'static str>, value: &str) -> StringValue {
    if let Some(v) = recent(value) {
        return StringValue::from(v);
    }
    match interned_static(interner, value) {
        Some(v) => {
            remember(v);
            StringValue::from(v)
        }
        None => StringValue::from(value.to_owned()),
    }
}

thread_local! {
    /// The last few interned values this thread handed out. A request usually repeats the host
    /// and user agent of the previous one, and comparing a few bytes here is cheaper than the
    /// interner's hash and lock. Keyed by content, so any interner's value is a correct answer.
    static RECENT: std::cell::Cell<[Option<&'static str>; 4]> = const { std::cell::Cell::new([None; 4]) };
}

thread_local! {
    /// The span name `{method} {route}` of this thread's last routed request. Consecutive
    /// requests on a thread often hit the same route; a string comparison here is cheaper than
    /// the name interner's hash and lock. Keyed by content, so an entry from any layer is a
    /// correct answer.
    static RECENT_ROUTE: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// `route` as the suffix of `name` when `name` is `{method} {route}`.
fn route_of(name: &'static str, method: &str, route: &str) -> Option<&'static str> {
    let rest = name.strip_prefix(method)?.strip_prefix(' ')?;
    (rest == route).then_some(rest)
}

/// The interned span name `{method} {route}` and the route as its suffix: one leaked string
/// gives both, so neither is allocated or reference-counted per request. `None` when the name
/// interner is full (or the leak budget spent).
pub(super) fn route_and_name(shared: &Shared, method: &str, route: &str) -> Option<(&'static str, &'static str)> {
    let cached = RECENT_ROUTE
        .try_with(std::cell::Cell::get)
        .ok()
        .flatten()
        .and_then(|name| Some((route_of(name, method, route)?, name)));
    if cached.is_some() {
        return cached;
    }
    let name = shared
        .names
        .get_or_try_insert_with(&[method, route], || leak_str(&default_span_name(method, Some(route))))?;
    let _ = RECENT_ROUTE.try_with(|r| r.set(Some(name)));
    Some((route_of(name, method, route)?, name))
}

fn recent(value: &str) -> Option<&'static str> {
    RECENT
        .try_with(|r| r.get().into_iter().flatten().find(|v| *v == value))
        .ok()
        .flatten()
}

fn remember(value: &'static str) {
    let _ = RECENT.try_with(|r| {
        let mut values = r.get();
        values.rotate_right(1);
        values[0] = Some(value);
        r.set(values);
    });
}

thread_local! {
    /// The peer IP of this thread's last request and its text: requests on a connection, and
    /// often across connections (a proxy, a load balancer), repeat the peer.
    static LAST_PEER_IP: std::cell::RefCell<Option<(IpAddr, StringValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// An IP address as a shared string, shared by `client.address` and `network.peer.address`: the
/// thread's last one when the peer repeats, else formatted once.
pub(super) fn ip_string(ip: IpAddr) -> StringValue {
    let last = LAST_PEER_IP
        .try_with(|l| match &*l.borrow() {
            Some((last, text)) if *last == ip => Some(text.clone()),
            _ => None,
        })
        .ok()
        .flatten();
    if let Some(text) = last {
        return text;
    }
    let text = format_ip(ip);
    let _ = LAST_PEER_IP.try_with(|l| *l.borrow_mut() = Some((ip, text.clone())));
    text
}

/// An IP address as a shared string (IPv4 without the general-purpose formatter).
fn format_ip(ip: IpAddr) -> StringValue {
    match ip {
        IpAddr::V4(v4) => {
            // "255.255.255.255" is 15 bytes.
            let mut buf = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + (octet / 10) % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            match std::str::from_utf8(&buf[..len]) {
                Ok(text) => shared_str(text),
                Err(_) => StringValue::from(v4.to_string()),
            }
        }
        IpAddr::V6(v6) => shared_str(&v6.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ips_are_formatted_and_reused_only_for_the_same_ip() {
        let a: std::net::IpAddr = "10.1.200.7".parse().unwrap();
        let b: std::net::IpAddr = "::1".parse().unwrap();
        assert_eq!(ip_string(a).as_str(), "10.1.200.7");
        assert_eq!(ip_string(a).as_str(), "10.1.200.7", "the cached text");
        assert_eq!(ip_string(b).as_str(), "::1");
        assert_eq!(ip_string("0.0.0.0".parse().unwrap()).as_str(), "0.0.0.0");
        assert_eq!(
            ip_string("255.255.255.255".parse().unwrap()).as_str(),
            "255.255.255.255"
        );
    }

    #[test]
    fn the_route_is_the_name_suffix_only_for_the_same_method_and_route() {
        let name = "GET /users/{id}";
        assert_eq!(route_of(name, "GET", "/users/{id}"), Some("/users/{id}"));
        assert_eq!(route_of(name, "POST", "/users/{id}"), None, "another method");
        assert_eq!(route_of(name, "GE", "T /users/{id}"), None, "split elsewhere");
        assert_eq!(route_of(name, "GET", "/users/{id}/orders"), None, "another route");
        assert_eq!(route_of(name, "GET", "/users/"), None, "a prefix of the route");
    }
}
