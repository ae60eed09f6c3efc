//! How both ends of the contract connect: plain HTTP/2 (`http://`) on a private network, or TLS
//! (`https://`) between hosts.
//!
//! The resolver serves TLS with a certificate and key in PEM files ([`server_tls`]); gateways and
//! the CLI reach an `https://` resolver trusting the CAs of a PEM file, or the system's roots
//! when none is given ([`endpoint`]). Every error names the file or URL it is about.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_platform_verifier::Verifier;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// How long a TLS handshake may take, on either end
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a resolver URL, CA, certificate or key cannot be used
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("invalid resolver URL `{0}`: expected http://HOST:PORT or https://HOST:PORT")]
    Url(String),
    #[error(
        "a CA file is given for `{0}`, a plain http:// URL: use https:// to reach the resolver over TLS"
    )]
    CaWithoutTls(String),
    #[error("`{file}`: {message}")]
    File { file: String, message: String },
    #[error("TLS: {0}")]
    Tls(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TransportError {
    TransportError::File {
        file: path.display().to_string(),
        message: message.to_string(),
    }
}

/// A PEM file holding at least one certificate: its bytes and the certificates
fn read_certificates(
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), TransportError> {
    let pem = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(
            path,
            "no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok((pem, certs))
}

/// The certificates of a PEM file (at least one); an error names the file
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    read_certificates(path).map(|(_, certs)| certs)
}

fn certificates_pem(path: &Path) -> Result<Vec<u8>, TransportError> {
    read_certificates(path).map(|(pem, _)| pem)
}

/// A TLS client configuration that verifies servers against the system's roots (the platform's
/// verifier), and the certificates of `ca_file` (PEM) besides when given; no ALPN set
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TransportError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = match ca_file {
        None => Verifier::new(Arc::clone(&provider)),
        Some(path) => Verifier::new_with_extra_roots(certificates(path)?, Arc::clone(&provider)),
    }
    .map_err(|e| TransportError::Tls(format!("cannot set up certificate verification: {e}")))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// An endpoint for the resolver at `url`: `https://` with TLS, trusting the certificates of
/// `ca_file` (PEM) or, without one, the system's roots; `http://` in the clear
pub fn endpoint(url: &str, ca_file: Option<&Path>) -> Result<Endpoint, TransportError> {
    let ep = Endpoint::from_shared(url.to_string()).map_err(|_| TransportError::Url(url.into()))?;
    match ep.uri().scheme_str() {
        Some("https") => {}
        Some("http") => {
            return match ca_file {
                Some(_) => Err(TransportError::CaWithoutTls(url.into())),
                None => Ok(ep),
            };
        }
        _ => return Err(TransportError::Url(url.into())),
    }
    if ep.uri().host().is_none() {
        return Err(TransportError::Url(url.into()));
    }
    let tls = ClientTlsConfig::new()
        .assume_http2(true)
        .timeout(HANDSHAKE_TIMEOUT);
    let tls = match ca_file {
        Some(path) => tls.ca_certificate(Certificate::from_pem(certificates_pem(path)?)),
        None => tls.with_native_roots(),
    };
    ep.tls_config(tls)
        .map_err(|e| TransportError::Tls(error_chain(&e)))
}

/// The resolver's TLS: its certificate chain and private key, each a PEM file
pub fn server_tls(cert_file: &Path, key_file: &Path) -> Result<ServerTlsConfig, TransportError> {
    let cert = certificates_pem(cert_file)?;
    let key = std::fs::read(key_file).map_err(|e| file_error(key_file, e))?;
    PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
        file_error(
            key_file,
            format!("no private key in it (expected PEM, -----BEGIN PRIVATE KEY-----): {e}"),
        )
    })?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .timeout(HANDSHAKE_TIMEOUT))
}

/// An error and its sources on one line
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn plain_urls_need_no_ca_and_refuse_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "ca.pem", "not a pem");
        assert!(endpoint("http://127.0.0.1:50051", None).is_ok());
        assert_eq!(
            endpoint("http://127.0.0.1:50051", Some(&ca)).unwrap_err(),
            TransportError::CaWithoutTls("http://127.0.0.1:50051".into())
        );
        for bad in ["127.0.0.1:50051", "ftp://h:1", "not a url", ""] {
            assert_eq!(
                endpoint(bad, None).unwrap_err(),
                TransportError::Url(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = write(dir.path(), "junk.pem", "hello\n");
        let e = endpoint("https://resolver:50051", Some(&junk))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no certificate"),
            "{e}"
        );
        let missing = dir.path().join("missing.pem");
        let e = endpoint("https://resolver:50051", Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn server_tls_names_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = write(dir.path(), "cert.pem", &cert.pem());
        let key_file = write(dir.path(), "key.pem", &key.serialize_pem());
        assert!(server_tls(&cert_file, &key_file).is_ok());
        // certificate and key swapped
        let e = server_tls(&key_file, &cert_file).unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("no certificate"), "{e}");
        let e = server_tls(&cert_file, &cert_file).unwrap_err().to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no private key"),
            "{e}"
        );
        let e = server_tls(&cert_file, &dir.path().join("nope.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.pem"), "{e}");
    }
}
