//! HTTPS receivers: the client's TLS (rustls, the roots it trusts, ALPN) against a local
//! receiver with a certificate from a test authority, over HTTP/2 when the receiver offers
//! it and HTTP/1.1 when it does not; and a certificate nobody vouches for is refused.

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsAcceptor;

use super::tests::attempt;
use super::*;

/// A certificate authority, and a certificate for `localhost` it signed (with its key).
struct Certificates {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn certificates() -> Certificates {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Certificates {
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// An HTTPS receiver on localhost offering `alpn`; it answers 200 with the HTTP version it
/// was spoken to in, and keeps each request's version and body.
async fn receiver(certs: &Certificates, alpn: &[&[u8]]) -> (String, Arc<Mutex<Vec<(hyper::Version, Bytes)>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs.chain.clone(), certs.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let version = req.version();
                        let body = req.into_body().collect().await?.to_bytes();
                        log.lock().unwrap().push((version, body));
                        let answer = format!("{version:?}");
                        Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(Bytes::from(answer))))
                    }
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (url, received)
}

fn client_trusting(ca: &CertificateDer<'static>) -> DeliveryClient {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = ClientConfig {
        allow_private_targets: true,
        ..ClientConfig::default()
    };
    DeliveryClient::with_tls(config, connect::with_roots(roots).unwrap()).unwrap()
}

#[tokio::test]
async fn an_https_receiver_offering_http2_gets_the_payload_over_http2() {
    let certs = certificates();
    let (url, received) = receiver(&certs, &[b"h2", b"http/1.1"]).await;
    let client = client_trusting(&certs.ca);
    for _ in 0..2 {
        let outcome = attempt(&client, &url).await;
        assert!(outcome.success, "{outcome:?}");
        assert_eq!(outcome.response_prefix, "HTTP/2.0");
    }
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2);
    assert!(received
        .iter()
        .all(|(v, body)| *v == hyper::Version::HTTP_2 && body.starts_with(b"{")));
}

#[tokio::test]
async fn an_https_receiver_without_alpn_gets_the_payload_over_http1() {
    let certs = certificates();
    let (url, received) = receiver(&certs, &[]).await;
    let outcome = attempt(&client_trusting(&certs.ca), &url).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.response_prefix, "HTTP/1.1");
    assert_eq!(received.lock().unwrap()[0].0, hyper::Version::HTTP_11);
}

#[tokio::test]
async fn a_certificate_from_an_authority_the_client_does_not_trust_is_a_tls_error() {
    let certs = certificates();
    let (url, received) = receiver(&certs, &[b"h2", b"http/1.1"]).await;
    // The default client trusts the Mozilla roots only.
    let client = DeliveryClient::new(ClientConfig {
        allow_private_targets: true,
        ..ClientConfig::default()
    })
    .unwrap();
    let outcome = attempt(&client, &url).await;
    let error = outcome.error.clone().unwrap_or_default();
    assert!(
        error.starts_with("TLS error: ") && error.contains("UnknownIssuer"),
        "{outcome:?}"
    );
    assert!(received.lock().unwrap().is_empty());
}
