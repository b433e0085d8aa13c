//! Which header and metadata names carry credentials, so that their values are redacted even
//! when an application asks for them to be captured: HTTP header capture
//! (`http.request.header.<name>`, `http.response.header.<name>`) and gRPC metadata capture
//! (`rpc.request.metadata.<key>`, `rpc.response.metadata.<key>`) use this one rule.
//!
//! A name is sensitive when, lower-cased and with `-`, `_` and `.` removed, it contains one of
//! [`SENSITIVE_NAME_PARTS`]: `authorization`, `proxy-authorization`, `www-authenticate`,
//! `cookie`, `set-cookie`, `x-api-key`, `api-key`, `x-goog-api-key`, `x-auth-token`,
//! `x-amz-security-token`, `x-csrf-token`, `x-session-id`, `x-client-secret`, `x-password`,
//! `ocp-apim-subscription-key`, `x-amz-credential`, `x-hub-signature-256`, ... Such a name is
//! still captured (the attribute exists, with one element per value, so its presence and count
//! stay visible), but each value is replaced by [`REDACTED`], unless the application lists the
//! name as safe to export (the adapters' `with_sensitive_headers_exported` /
//! `with_sensitive_metadata_exported` options).
//!
//! The rule is decided once per configured name, when an adapter is built; nothing is matched
//! per request.
//!
//! ```
//! use otelrs_core::conv::sensitive::{is_sensitive_name, redacts};
//!
//! assert!(is_sensitive_name("Authorization"));
//! assert!(is_sensitive_name("X-API-Key"));
//! assert!(is_sensitive_name("x_session_id"));
//! assert!(!is_sensitive_name("x-request-id"));
//! assert!(!is_sensitive_name("content-type"));
//! // Listed as safe: exported as sent.
//! assert!(!redacts("x-csrf-token", &["X-CSRF-Token"]));
//! assert!(redacts("cookie", &["x-csrf-token"]));
//! ```

/// The replacement for each value of a sensitive header or metadata key (and, by the semantic
/// conventions, for URL credentials and sensitive query values).
pub const REDACTED: &str = "REDACTED";

/// Parts that make a header or metadata name sensitive wherever they occur in it (compared with
/// the name lower-cased and with `-`, `_` and `.` removed): credentials (`auth` covers
/// `authorization`, `proxy-authorization`, `www-authenticate`, `x-auth-token`), tokens,
/// secrets, passwords, API and access keys, sessions and cookies, signatures, CSRF tokens.
pub const SENSITIVE_NAME_PARTS: [&str; 19] = [
    "auth",
    "token",
    "secret",
    "passw",
    "passphrase",
    "pwd",
    "apikey",
    "accesskey",
    "privatekey",
    "subscriptionkey",
    "credential",
    "session",
    "cookie",
    "signature",
    "csrf",
    "xsrf",
    "jwt",
    "bearer",
    "otp",
];

/// Whether `name` is a sensitive header or metadata name (see the [module docs](self)).
pub fn is_sensitive_name(name: &str) -> bool {
    // Header names are short; longer input is still classified, on a heap buffer.
    let normalized: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SENSITIVE_NAME_PARTS.iter().any(|part| normalized.contains(part))
}

/// Whether the values of a captured `name` are replaced by [`REDACTED`]: it is sensitive and not
/// listed (case-insensitively) in `exported`, the names the application declared safe to export.
pub fn redacts<S: AsRef<str>>(name: &str, exported: &[S]) -> bool {
    is_sensitive_name(name)
        && !exported
            .iter()
            .any(|e| e.as_ref().trim().eq_ignore_ascii_case(name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_names_are_sensitive() {
        for name in [
            "authorization",
            "Proxy-Authorization",
            "www-authenticate",
            "cookie",
            "Set-Cookie",
            "x-api-key",
            "api-key",
            "apikey",
            "X-Goog-Api-Key",
            "x-auth-token",
            "x-amz-security-token",
            "X-Amz-Credential",
            "x-csrf-token",
            "x-xsrf-token",
            "x-session-id",
            "x-client-secret",
            "x-password",
            "x-passphrase",
            "ocp-apim-subscription-key",
            "x-hub-signature-256",
            "x-access-key",
            "private_key",
            "x-jwt-assertion",
            "x-otp",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in [
            "content-type",
            "x-request-id",
            "user-agent",
            "x-tenant",
            "accept",
            "x-forwarded-for",
            "traceparent",
            "grpc-timeout",
            "x-idempotency-key",
            "",
        ] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn listed_names_are_exported() {
        assert!(redacts("authorization", &[] as &[&str]));
        assert!(!redacts("authorization", &[" Authorization "]));
        assert!(redacts("authorization", &["cookie"]));
        assert!(!redacts("x-request-id", &[] as &[String]));
    }

    /// Names built around a sensitive part, in any case and with any separators.
    fn sensitive_name() -> impl Strategy<Value = String> {
        (
            "[a-z]{0,6}",
            prop::sample::select(SENSITIVE_NAME_PARTS.to_vec()),
            "[a-z0-9]{0,6}",
            prop::sample::select(vec!["", "-", "_", "."]),
            any::<bool>(),
        )
            .prop_map(|(pre, part, post, sep, upper)| {
                // A separator may also split the part itself.
                let mut part = part.to_owned();
                if !sep.is_empty() && part.len() > 2 {
                    part.insert_str(part.len() / 2, sep);
                }
                let name = format!("{pre}{sep}{part}{sep}{post}");
                if upper {
                    name.to_ascii_uppercase()
                } else {
                    name
                }
            })
    }

    proptest! {
        #[test]
        fn every_name_with_a_sensitive_part_is_redacted(name in sensitive_name()) {
            prop_assert!(is_sensitive_name(&name));
            prop_assert!(redacts(&name, &["x-other"]));
            prop_assert!(!redacts(&name, &[name.to_ascii_lowercase()]));
        }

        #[test]
        fn never_panics(name in ".{0,40}") {
            let _ = is_sensitive_name(&name);
        }
    }
}
