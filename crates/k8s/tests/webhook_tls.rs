//! The webhook over real TLS on 127.0.0.1: a client trusting only the generated CA, and
//! checking the Service's name, gets an answer; after the certificate is swapped it
//! trusts only the new CA. And `webhook::run` against a mocked API server: it creates
//! the Secret, serves its certificate and writes its CA into the configuration.

mod support;

use ferrolb_k8s::webhook::cert::{CertBundle, generate, service_names};
use ferrolb_k8s::webhook::tls::{CertSlot, serve_tls, server_config};
use ferrolb_k8s::webhook::{Kind, WebhookOptions, WebhookState, router};
use ferrolb_model::Snapshot;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

const NS: &str = "metallb-system";

fn bundle() -> CertBundle {
    generate(
        &service_names("ferrolb-webhook-service", NS),
        SystemTime::now(),
        None,
    )
    .expect("generates")
}

async fn request(addr: SocketAddr, ca_pem: &str, body: Value) -> Result<Value, String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("ferrolb-webhook-service.metallb-system.svc")
        .map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::post(Kind::IPAddressPool.path())
        .header("host", "ferrolb-webhook-service.metallb-system.svc")
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "tls-1", "operation": "CREATE", "name": "a", "namespace": NS,
            "kind": {"group": "metallb.io", "version": "v1beta1", "kind": "IPAddressPool"},
            "object": {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": "a", "namespace": NS},
                "spec": {"addresses": ["192.0.2.0/24"]}},
        }
    })
}

#[tokio::test]
async fn an_https_client_trusting_the_generated_ca_gets_an_answer() {
    let first = bundle();
    let slot = CertSlot::new(first.certified_key().expect("servable"));
    let config = server_config(slot.clone()).expect("TLS config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let state = WebhookState {
        namespace: NS.into(),
        snapshot: Arc::new(|| Some(Snapshot::default())),
    };
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve_tls(listener, router(state), config, stopped));

    let answer = request(addr, &first.ca_pem, review())
        .await
        .expect("HTTPS answer");
    assert_eq!(answer["response"]["uid"], "tls-1");
    assert_eq!(answer["response"]["allowed"], true);

    // Another CA is not trusted; after the swap, the new one is and the old one is not.
    let second = bundle();
    assert!(request(addr, &second.ca_pem, review()).await.is_err());
    slot.set(second.certified_key().expect("servable"));
    let answer = request(addr, &second.ca_pem, review())
        .await
        .expect("HTTPS answer");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(request(addr, &first.ca_pem, review()).await.is_err());

    let _ = stop.send(true);
    server.await.expect("the server stops");
}

const VWC: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/ferrolb-validating-webhook";

fn text_of(value: &Value) -> String {
    let bytes: k8s_openapi::ByteString = serde_json::from_value(value.clone()).expect("base64");
    String::from_utf8(bytes.0).expect("PEM text")
}

#[tokio::test]
async fn run_creates_the_secret_serves_its_certificate_and_writes_the_ca_bundle() {
    use support::{FakeApi, Reply};
    let (client, fake) = FakeApi::start();
    fake.route(|r| {
        (r.method == "GET" && r.path == VWC).then(|| {
            Reply::Json(
                200,
                json!({"apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "ValidatingWebhookConfiguration",
                    "metadata": {"name": "ferrolb-validating-webhook"},
                    "webhooks": [{"name": "ipaddresspool-v1beta1.validate.ferrolb.metallb.io",
                        "clientConfig": {"service": {"name": "ferrolb-webhook-service", "namespace": NS}},
                        "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}),
            )
        })
    });
    // A free port (asked of the system, then released for the webhook to bind).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(ferrolb_k8s::webhook::run(
        client,
        WebhookOptions::new(NS, addr),
        Arc::new(|| Some(Snapshot::default())),
        stopped,
    ));
    // The caBundle is written once the server listens.
    let log = fake
        .wait_for("the caBundle patch", |log| {
            log.iter().any(|r| r.method == "PATCH" && r.path == VWC)
        })
        .await;
    let created = log
        .iter()
        .find(|r| r.method == "POST" && r.path == "/api/v1/namespaces/metallb-system/secrets")
        .expect("the Secret is created");
    let ca = text_of(&created.body["data"]["ca.crt"]);
    let patch = log
        .iter()
        .find(|r| r.method == "PATCH" && r.path == VWC)
        .expect("patched");
    assert_eq!(
        text_of(&patch.body["webhooks"][0]["clientConfig"]["caBundle"]),
        ca
    );

    let answer = request(addr, &ca, review()).await.expect("HTTPS answer");
    assert_eq!(answer["response"]["uid"], "tls-1");
    assert_eq!(answer["response"]["allowed"], true);

    let _ = stop.send(true);
    task.await.expect("joins").expect("stops cleanly");
}
