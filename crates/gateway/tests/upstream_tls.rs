//! TLS on both of the gateway's links.
//!
//! An upstream over TLS: used when its certificate chains to a trusted root (here a private CA
//! given as `upstream_ca_file`), refused as unreachable when it does not, over HTTP/1.1 and over
//! HTTP/2 (negotiated by ALPN). A CA file that is not PEM stops the gateway at start, naming it.
//!
//! A resolver over TLS (`https://`, `resolver_ca_file`): decisions flow when its certificate is
//! trusted; when it is not, every request is refused (503, fail closed) and nothing goes upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":3,"output_tokens":1}}"#;

/// A private CA (PEM) and a server configuration for 127.0.0.1 signed by it
fn private_ca() -> (String, rustls::ServerConfig) {
    let pki = common::private_pki();
    let chain = CertificateDer::pem_slice_iter(pki.chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.key.as_bytes()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (pki.ca, server)
}

/// What the TLS upstream saw of each request: HTTP version, path, the key header
type Seen = Arc<Mutex<Vec<(hyper::Version, String, Option<String>)>>>;

/// An upstream that records what it saw of each request: over TLS with `server`, else plain
async fn recording_upstream(server: Option<rustls::ServerConfig>) -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let acceptor = server.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let s = Arc::clone(&s);
                    async move {
                        s.lock().unwrap().push((
                            req.version(),
                            req.uri().path().to_string(),
                            req.headers()
                                .get("x-api-key")
                                .map(|v| v.to_str().unwrap().to_string()),
                        ));
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                                .unwrap(),
                        )
                    }
                });
                let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = match &acceptor {
                    // a client that does not trust the certificate aborts the handshake
                    Some(a) => match a.accept(tcp).await {
                        Ok(tls) => conn.serve_connection(TokioIo::new(tls), svc).await,
                        Err(_) => return,
                    },
                    None => conn.serve_connection(TokioIo::new(tcp), svc).await,
                };
            });
        }
    });
    (addr, seen)
}

async fn ask(gateway: &str, token: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{gateway}/v1/messages"))
        .header("x-api-key", token)
        .header("content-type", "application/json")
        .body(r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_upstream_is_used_only_when_its_certificate_is_trusted() {
    let (ca_pem, server) = private_ca();
    let (up, seen) = recording_upstream(Some(server)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = common::write(dir.path(), "ca.pem", &ca_pem);

    // trusted through upstream_ca_file: the answer comes back, the central key went along,
    // over HTTP/2 since both sides offer it
    let s = common::stack_tls(up, &format!("upstream_ca_file = \"{ca_file}\"")).await;
    for _ in 0..2 {
        let r = ask(&s.gateway, &s.alice).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), ANSWER);
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for (version, path, key) in seen.iter() {
            assert_eq!(*version, hyper::Version::HTTP_2);
            assert_eq!(path, "/v1/messages");
            assert_eq!(key.as_deref(), Some(common::CENTRAL_ANTHROPIC));
        }
    }

    // the system's roots alone do not know the private CA: refused before any byte is sent
    let s = common::stack_tls(up, "").await;
    let r = ask(&s.gateway, &s.alice).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-strata-error-source"], "upstream");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable", "{v}");
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "nothing reached the upstream"
    );
}

#[test]
fn a_ca_file_that_is_not_pem_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [("empty.pem", ""), ("junk.pem", "not a certificate\n")] {
        let path = common::write(dir.path(), name, content);
        let e = match strata_gateway::upstream::Upstream::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
            Some(std::path::Path::new(&path)),
        ) {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => e,
        };
        assert!(e.contains(&path) && e.contains("no certificate"), "{e}");
    }
    let missing = dir.path().join("missing.pem");
    let e = match strata_gateway::upstream::Upstream::new(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(1),
        Some(&missing),
    ) {
        Ok(_) => panic!("a missing file was accepted"),
        Err(e) => e,
    };
    assert!(e.contains("missing.pem"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_resolver_decides_when_trusted_and_fails_closed_when_not() {
    let (up, seen) = recording_upstream(None).await;

    let s = common::stack_linked(up, common::ResolverLink::Tls { trusted: true }).await;
    // allowed: the decision came over TLS
    let r = ask(&s.gateway, &s.alice).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-strata-revision"));
    // a denial names its rule, so the snapshot behind it is the published one
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/v1/chat/completions", s.gateway))
        .bearer_auth(&s.alice)
        .header("content-type", "application/json")
        .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("gpt-4o"),
        "{v}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // the gateway trusts another CA: the resolver cannot be reached, so nothing is allowed
    let s = common::stack_linked(up, common::ResolverLink::Tls { trusted: false }).await;
    let r = ask(&s.gateway, &s.alice).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-strata-error-source"], "gateway");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "nothing more reached the upstream"
    );
}
