//! A throw-away test PKI generated at run time with rcgen.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// Test PKI made at run time with rcgen: a CA, a server and a client certificate signed by it, and an
/// unrelated CA with its own client certificate for negative tests.
///
/// All keys are ECDSA P-256, written as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). The certificates
/// are valid from 1975 to 4096 (rcgen's defaults), so clock skew never matters.
#[derive(Clone, Debug)]
pub struct Pki {
    /// CA certificate that signed the server and the client certificates.
    pub ca_pem: String,
    /// Server leaf certificate for DNS `localhost` and IP `127.0.0.1` (both as SANs), signed by the CA.
    pub server_cert_pem: String,
    /// Private key of the server certificate.
    pub server_key_pem: String,
    /// Client-auth leaf certificate signed by the same CA.
    pub client_cert_pem: String,
    /// Private key of the client certificate.
    pub client_key_pem: String,
    /// An unrelated CA (a "wrong CA" for negative tests).
    pub other_ca_pem: String,
    /// Client-auth leaf certificate signed by the unrelated CA.
    pub other_client_cert_pem: String,
    /// Private key of the client certificate signed by the unrelated CA.
    pub other_client_key_pem: String,
}

/// Paths of the PEM files written by [`Pki::write_to`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiFiles {
    /// `ca.pem`: the CA certificate.
    pub ca: PathBuf,
    /// `server.pem`: the server certificate.
    pub server_cert: PathBuf,
    /// `server.key`: the server private key.
    pub server_key: PathBuf,
    /// `client.pem`: the client certificate.
    pub client_cert: PathBuf,
    /// `client.key`: the client private key.
    pub client_key: PathBuf,
    /// `other-ca.pem`: the unrelated CA certificate.
    pub other_ca: PathBuf,
    /// `other-client.pem`: the client certificate signed by the unrelated CA.
    pub other_client_cert: PathBuf,
    /// `other-client.key`: the private key of that client certificate.
    pub other_client_key: PathBuf,
}

impl PkiFiles {
    /// The file names [`Pki::write_to`] uses, under `dir`.
    pub fn in_dir(dir: &Path) -> PkiFiles {
        PkiFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
            other_client_cert: dir.join("other-client.pem"),
            other_client_key: dir.join("other-client.key"),
        }
    }
}

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_key() -> KeyPair {
    KeyPair::generate().expect("otlp-receiver: cannot generate an ECDSA P-256 key pair")
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::new()).expect("a CA without SANs is valid");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "otlp-receiver test PKI");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = new_key();
    let cert = params
        .self_signed(&key)
        .expect("otlp-receiver: cannot self-sign the test CA");
    Ca {
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

fn new_leaf(ca: &Ca, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("the test SANs are valid");
    params.is_ca = IsCa::ExplicitNoCa;
    params.distinguished_name.push(DnType::CommonName, name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = new_key();
    let cert = params
        .signed_by(&key, &ca.issuer)
        .expect("otlp-receiver: cannot sign a test leaf certificate");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// Generates a fresh PKI (a few milliseconds: five ECDSA P-256 keys).
    pub fn generate() -> Pki {
        let ca = new_ca("otlp-receiver test CA");
        let (server_cert_pem, server_key_pem) = new_leaf(
            &ca,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert_pem, client_key_pem) = new_leaf(
            &ca,
            "otlp-receiver test client",
            &["client.localhost"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let other = new_ca("otlp-receiver unrelated CA");
        let (other_client_cert_pem, other_client_key_pem) = new_leaf(
            &other,
            "otlp-receiver unrelated client",
            &["client.localhost"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Pki {
            ca_pem: ca.cert_pem,
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            other_ca_pem: other.cert_pem,
            other_client_cert_pem,
            other_client_key_pem,
        }
    }

    /// Writes the PEM files into `dir` (created if missing): `ca.pem`, `server.pem`, `server.key`,
    /// `client.pem`, `client.key`, `other-ca.pem`, `other-client.pem`, `other-client.key`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PkiFiles> {
        std::fs::create_dir_all(dir)?;
        let files = PkiFiles::in_dir(dir);
        for (path, pem) in [
            (&files.ca, &self.ca_pem),
            (&files.server_cert, &self.server_cert_pem),
            (&files.server_key, &self.server_key_pem),
            (&files.client_cert, &self.client_cert_pem),
            (&files.client_key, &self.client_key_pem),
            (&files.other_ca, &self.other_ca_pem),
            (&files.other_client_cert, &self.other_client_cert_pem),
            (&files.other_client_key, &self.other_client_key_pem),
        ] {
            std::fs::write(path, pem)?;
        }
        Ok(files)
    }

    /// Reads back the files written by [`Pki::write_to`] from `dir`.
    pub fn read_from(dir: &Path) -> std::io::Result<Pki> {
        let files = PkiFiles::in_dir(dir);
        let read = std::fs::read_to_string;
        Ok(Pki {
            ca_pem: read(&files.ca)?,
            server_cert_pem: read(&files.server_cert)?,
            server_key_pem: read(&files.server_key)?,
            client_cert_pem: read(&files.client_cert)?,
            client_key_pem: read(&files.client_key)?,
            other_ca_pem: read(&files.other_ca)?,
            other_client_cert_pem: read(&files.other_client_cert)?,
            other_client_key_pem: read(&files.other_client_key)?,
        })
    }
}
