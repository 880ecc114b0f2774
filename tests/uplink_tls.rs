//! The uplink over TLS (rustls) to the hil-sim site server behind a TLS-terminating
//! loopback proxy (tokio-rustls) using the checked-in test CA (`tests/data/tls`):
//! bearer-token authentication, client-certificate authentication, and the refusals a
//! wrong token, an untrusted server certificate or a missing client certificate must
//! cause (nothing delivered, the error reported, the cursor unconfirmed).

mod uplink_support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hil_sim::site::{SiteConfig, SiteServer};
use linectl::clock::SystemClock;
use linectl::uplink::{ClientCertFiles, Uplink, UplinkConfig};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use uplink_support::{append, journal, records, wait_for};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

/// A TLS proxy on a loopback port forwarding to `upstream`; with `client_ca` it
/// demands a client certificate issued by the test CA.
struct TlsProxy {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl TlsProxy {
    fn start(upstream: SocketAddr, require_client_cert: bool) -> TlsProxy {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(data("ca.pem")).expect("ca.pem") {
                roots.add(c.expect("ca cert")).expect("add root");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(data("server.pem"))
            .expect("server.pem")
            .collect::<Result<_, _>>()
            .expect("server cert");
        let key = PrivateKeyDer::from_pem_file(data("server.key")).expect("server.key");
        let config = builder.with_single_cert(chain, key).expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        });
        TlsProxy { addr, _rt: rt }
    }

    fn capture_url(&self) -> String {
        format!("https://localhost:{}/capture", self.addr.port())
    }
}

fn config(url: String) -> UplinkConfig {
    UplinkConfig {
        ca_file: Some(data("ca.pem")),
        backoff_initial_ms: 5,
        backoff_max_ms: 50,
        poll_initial_ms: 1,
        poll_max_ms: 20,
        idle_ms: 10,
        request_timeout_ms: 5_000,
        ..UplinkConfig::new(url)
    }
}

#[test]
fn bearer_token_over_tls_delivers_and_wrong_credentials_deliver_nothing() {
    let site = SiteServer::start(SiteConfig {
        capture_limit: 25,
        token: Some("line-7-secret".into()),
        ..SiteConfig::default()
    })
    .expect("site");
    let proxy = TlsProxy::start(site.addr(), false);

    // Wrong token: refused (401), reported, nothing confirmed.
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(dir.path());
    let ids = append(&j, &records("LOT1", "T", 120));
    let up = Uplink::start(
        UplinkConfig {
            bearer_token: Some("wrong".into()),
            ..config(proxy.capture_url())
        },
        j.clone(),
        Arc::new(SystemClock::new()),
    )
    .expect("uplink");
    wait_for("the 401 to be reported", 30, || {
        up.status()
            .last_error
            .is_some_and(|e| e.contains("HTTP 401"))
    });
    drop(up);
    assert_eq!(site.stats().events, 0);
    assert_eq!(j.cursor("uplink").expect("cursor").0, 0);

    // No CA file: the test CA is not a web PKI root, the handshake fails.
    let up = Uplink::start(
        UplinkConfig {
            ca_file: None,
            bearer_token: Some("line-7-secret".into()),
            ..config(proxy.capture_url())
        },
        j.clone(),
        Arc::new(SystemClock::new()),
    )
    .expect("uplink");
    wait_for("the TLS failure to be reported", 30, || {
        up.status().retries >= 2
    });
    let status = up.stop();
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains("cert")),
        "{status:?}"
    );
    assert_eq!(site.stats().events, 0);

    // Right token over TLS: everything delivered.
    let up = Uplink::start(
        UplinkConfig {
            bearer_token: Some("line-7-secret".into()),
            ..config(proxy.capture_url())
        },
        j.clone(),
        Arc::new(SystemClock::new()),
    )
    .expect("uplink");
    wait_for("all events over TLS", 60, || {
        j.cursor("uplink").expect("cursor") == j.end_seq()
    });
    let status = up.stop();
    assert_eq!(status.delivered, 120);
    assert_eq!(site.event_ids(), ids);
}

#[test]
fn client_certificate_authenticates_the_line() {
    let site = SiteServer::start(SiteConfig::default()).expect("site");
    let proxy = TlsProxy::start(site.addr(), true);
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(dir.path());
    let ids = append(&j, &records("LOT3", "K", 60));

    // Without a client certificate the server ends the handshake.
    let up = Uplink::start(
        config(proxy.capture_url()),
        j.clone(),
        Arc::new(SystemClock::new()),
    )
    .expect("uplink");
    wait_for("handshake failures", 30, || up.status().retries >= 2);
    drop(up);
    assert_eq!(site.stats().events, 0);

    let up = Uplink::start(
        UplinkConfig {
            client_cert: Some(ClientCertFiles {
                cert_file: data("client.pem"),
                key_file: data("client.key"),
            }),
            ..config(proxy.capture_url())
        },
        j.clone(),
        Arc::new(SystemClock::new()),
    )
    .expect("uplink");
    wait_for("all events with the client certificate", 60, || {
        j.cursor("uplink").expect("cursor") == j.end_seq()
    });
    up.stop();
    assert_eq!(site.event_ids(), ids);
}
