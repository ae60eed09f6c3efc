//! A private CA and a server certificate it signed, for TLS tests; shared by the resolver's,
//! the gateway's and the CLI's tests (`#[path = ...] mod`).
#![allow(clippy::unwrap_used, dead_code)]

/// PEM: the CA's certificate, the server's chain (its certificate, then the CA's) and its key
pub struct Pki {
    pub ca: String,
    pub chain: String,
    pub key: String,
}

/// A new CA, and a certificate for 127.0.0.1 signed by it
pub fn private_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca: ca_cert.pem(),
        chain: format!("{}{}", leaf.pem(), ca_cert.pem()),
        key: key.serialize_pem(),
    }
}
