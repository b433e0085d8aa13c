//! TLS for the OTLP exporters: trust roots, a custom CA and an mTLS client identity, loaded once
//! and turned into the configuration of each transport (rustls for OTLP/HTTP, tonic's for gRPC).
//!
//! Trust roots: without a custom CA, collectors are verified against the Mozilla roots compiled
//! in (`webpki-roots`, the default, so a scratch container needs no CA bundle) or, with the
//! `tls-native-roots` feature, the platform's store. With a custom CA (`*_CERTIFICATE`), only that
//! CA is trusted, as the Go and Java SDKs do.

use std::sync::Arc;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::env::{ConfigError, PemSource, TlsFiles};

/// Checked TLS material of one signal.
#[derive(Clone)]
struct ClientIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

#[derive(Clone, Default)]
pub(crate) struct TlsMaterial {
    /// CA certificates (PEM as given, and parsed).
    ca: Option<(Vec<u8>, Vec<CertificateDer<'static>>)>,
    /// Client certificate chain and key (PEM as given).
    identity: Option<ClientIdentity>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("custom_ca", &self.ca.is_some())
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

/// Reads a PEM source; the error names the variable (or builder setting) and the path.
fn read(source: &PemSource, what: &str) -> Result<(Vec<u8>, String, String), ConfigError> {
    match source {
        PemSource::File { variable, path } => {
            let shown = path.display().to_string();
            let bytes = std::fs::read(path)
                .map_err(|e| ConfigError::new(variable, &shown, format!("cannot read the {what} file: {e}")))?;
            Ok((bytes, variable.clone(), shown))
        }
        PemSource::Pem(bytes) => Ok((bytes.clone(), format!("the {what} given in code"), "<PEM>".into())),
    }
}

fn certificates(source: &PemSource, what: &str) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), ConfigError> {
    let (pem, variable, shown) = read(source, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(&variable, &shown, format!("not a valid PEM {what}: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            &variable,
            &shown,
            format!("no PEM certificate (-----BEGIN CERTIFICATE-----) found in the {what}"),
        ));
    }
    Ok((pem, certs))
}

impl TlsMaterial {
    /// Loads and checks the files (or bytes) of one signal.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, ConfigError> {
        let ca = files
            .certificate
            .as_ref()
            .map(|s| certificates(s, "CA certificate"))
            .transpose()?;
        let identity = match (&files.client_certificate, &files.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let (cert_pem, _) = certificates(cert, "client certificate")?;
                let (key_pem, variable, shown) = read(key, "client key")?;
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    ConfigError::new(
                        &variable,
                        &shown,
                        format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1) in the client key: {e}"),
                    )
                })?;
                Some(ClientIdentity { cert_pem, key_pem })
            }
            (Some(source), None) | (None, Some(source)) => {
                let (variable, shown) = match source {
                    PemSource::File { variable, path } => (variable.clone(), path.display().to_string()),
                    PemSource::Pem(_) => ("the mTLS identity given in code".to_owned(), "<PEM>".to_owned()),
                };
                return Err(ConfigError::new(
                    &variable,
                    &shown,
                    "mTLS needs both a client certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE) and its key \
                     (OTEL_EXPORTER_OTLP_CLIENT_KEY)",
                ));
            }
        };
        Ok(Self { ca, identity })
    }

    /// The rustls client configuration for OTLP/HTTP (ring provider, the one tonic uses too).
    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some((_, certs)) => {
                for cert in certs {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("the CA certificate cannot be used: {e}"))?;
                }
            }
            None => add_default_roots(&mut roots),
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(identity) => {
                let (cert, key) = identity.der()?;
                builder
                    .with_client_auth_cert(cert, key)
                    .map_err(|e| format!("the client certificate and key cannot be used: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// tonic's TLS configuration for OTLP/gRPC.
    pub(crate) fn tonic_config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some((pem, _)) => config.ca_certificate(Certificate::from_pem(pem)),
            None => default_tonic_roots(config),
        };
        if let Some(identity) = &self.identity {
            config = config.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        }
        config
    }
}

impl ClientIdentity {
    fn der(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        // Both were checked in `TlsMaterial::load`.
        let chain = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| e.to_string())?;
        Ok((chain, key))
    }
}

#[cfg(not(feature = "tls-native-roots"))]
fn add_default_roots(roots: &mut rustls::RootCertStore) {
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
}

#[cfg(feature = "tls-native-roots")]
fn add_default_roots(roots: &mut rustls::RootCertStore) {
    // Certificates the platform store cannot parse are skipped, as browsers do.
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
}

#[cfg(not(feature = "tls-native-roots"))]
fn default_tonic_roots(config: ClientTlsConfig) -> ClientTlsConfig {
    config.with_webpki_roots()
}

#[cfg(feature = "tls-native-roots")]
fn default_tonic_roots(config: ClientTlsConfig) -> ClientTlsConfig {
    config.with_native_roots()
}
