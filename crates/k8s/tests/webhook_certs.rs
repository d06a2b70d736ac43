//! The webhook's Secret and CA bundles against a mocked API server: created when
//! missing, the other replica's read after 409, renewed near its end, and the caBundle
//! patches (path, content type, body).

mod support;

use ferrolb_k8s::webhook::cert::{CertBundle, RENEW_BEFORE, VALIDITY, generate, service_names};
use ferrolb_k8s::webhook::certs::{CertStore, Injected, PEER_CRD_NAME};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use support::{FakeApi, Recorded, Reply, status};

const NS: &str = "metallb-system";
const SECRET: &str = "/api/v1/namespaces/metallb-system/secrets/ferrolb-webhook-cert";
const SECRETS: &str = "/api/v1/namespaces/metallb-system/secrets";
const VWC: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/ferrolb-validating-webhook";
const CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/bgppeers.metallb.io";

fn names() -> Vec<String> {
    service_names("ferrolb-webhook-service", NS)
}

fn store(client: kube::Client) -> CertStore {
    CertStore::new(
        client,
        NS,
        "ferrolb-webhook-cert",
        "ferrolb-validating-webhook",
        Some(PEER_CRD_NAME),
        names(),
    )
}

fn b64(text: &str) -> String {
    serde_json::to_value(k8s_openapi::ByteString(text.as_bytes().to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn secret_json(bundle: &CertBundle, rv: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ferrolb-webhook-cert", "namespace": NS, "resourceVersion": rv},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&bundle.cert_pem), "tls.key": b64(&bundle.key_pem), "ca.crt": b64(&bundle.ca_pem)},
    })
}

fn bundle_in(body: &Value) -> CertBundle {
    let text = |key: &str| {
        let bytes: k8s_openapi::ByteString =
            serde_json::from_value(body["data"][key].clone()).expect("base64");
        String::from_utf8(bytes.0).expect("PEM text")
    };
    CertBundle {
        cert_pem: text("tls.crt"),
        key_pem: text("tls.key"),
        ca_pem: text("ca.crt"),
    }
}

fn writes(log: &[Recorded]) -> Vec<&Recorded> {
    log.iter().filter(|r| r.method != "GET").collect()
}

#[tokio::test]
async fn a_missing_secret_is_created_with_a_tls_bundle() {
    let (client, fake) = FakeApi::start();
    let now = SystemTime::now();
    let bundle = store(client).ensure(now).await.expect("a certificate");
    let log = fake.log();
    let created: Vec<_> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path == SECRETS)
        .collect();
    assert_eq!(created.len(), 1, "{log:?}");
    let body = &created[0].body;
    assert_eq!(body["type"], "kubernetes.io/tls");
    assert_eq!(body["metadata"]["name"], "ferrolb-webhook-cert");
    assert_eq!(bundle_in(body), bundle);
    bundle.certified_key().expect("servable");
    assert!(!bundle.needs_renewal(now));
}

#[tokio::test]
async fn after_409_the_other_replicas_secret_is_read_and_used() {
    let (client, fake) = FakeApi::start();
    let theirs = generate(&names(), SystemTime::now(), None).expect("generates");
    let gets = Arc::new(AtomicUsize::new(0));
    let (g, t) = (gets.clone(), theirs.clone());
    fake.route(move |r| match (r.method.as_str(), r.path.as_str()) {
        // Missing when first read, created by the other replica meanwhile.
        ("GET", SECRET) if g.fetch_add(1, Ordering::SeqCst) == 0 => Some(Reply::Json(
            404,
            status(
                404,
                "NotFound",
                "secrets \"ferrolb-webhook-cert\" not found",
            ),
        )),
        ("GET", SECRET) => Some(Reply::Json(200, secret_json(&t, "2"))),
        ("POST", SECRETS) => Some(Reply::Json(
            409,
            status(
                409,
                "AlreadyExists",
                "secrets \"ferrolb-webhook-cert\" already exists",
            ),
        )),
        _ => None,
    });
    let bundle = store(client)
        .ensure(SystemTime::now())
        .await
        .expect("a certificate");
    assert_eq!(bundle, theirs);
    assert_eq!(gets.load(Ordering::SeqCst), 2);
    let log = fake.log();
    assert_eq!(writes(&log).len(), 1, "only the failed create: {log:?}");
}

#[tokio::test]
async fn a_valid_secret_is_used_as_it_is() {
    let (client, fake) = FakeApi::start();
    let held = generate(&names(), SystemTime::now(), None).expect("generates");
    let h = held.clone();
    fake.route(move |r| {
        (r.method == "GET" && r.path == SECRET).then(|| Reply::Json(200, secret_json(&h, "5")))
    });
    let bundle = store(client)
        .ensure(SystemTime::now())
        .await
        .expect("a certificate");
    assert_eq!(bundle, held);
    assert!(writes(&fake.log()).is_empty());
}

#[tokio::test]
async fn a_secret_near_its_end_is_renewed_by_one_replica_only() {
    let now = SystemTime::now();
    // Made so long ago that less than RENEW_BEFORE is left.
    let old = generate(
        &names(),
        now - VALIDITY + RENEW_BEFORE - Duration::from_secs(3600),
        None,
    )
    .expect("generates");
    assert!(old.needs_renewal(now));

    // Alone: replaced with the resourceVersion read, the old CA still trusted.
    let (client, fake) = FakeApi::start();
    let o = old.clone();
    fake.route(move |r| {
        (r.method == "GET" && r.path == SECRET).then(|| Reply::Json(200, secret_json(&o, "7")))
    });
    let renewed = store(client).ensure(now).await.expect("a certificate");
    let log = fake.log();
    let put: Vec<_> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path == SECRET)
        .collect();
    assert_eq!(put.len(), 1, "{log:?}");
    assert_eq!(put[0].body["metadata"]["resourceVersion"], "7");
    assert_eq!(bundle_in(&put[0].body), renewed);
    assert!(!renewed.needs_renewal(now));
    assert!(
        renewed.ca_pem.ends_with(&old.ca_pem),
        "the old CA stays in the bundle"
    );

    // Racing: the update fails with 409 and the other replica's renewal is read.
    let (client, fake) = FakeApi::start();
    let theirs = generate(&names(), now, Some(&old.ca_pem)).expect("generates");
    let renewed_by_them = Arc::new(AtomicUsize::new(0));
    let (seen, o, t) = (renewed_by_them.clone(), old.clone(), theirs.clone());
    fake.route(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", SECRET) if seen.load(Ordering::SeqCst) == 0 => {
            Some(Reply::Json(200, secret_json(&o, "7")))
        }
        ("GET", SECRET) => Some(Reply::Json(200, secret_json(&t, "8"))),
        ("PUT", SECRET) => {
            seen.store(1, Ordering::SeqCst);
            Some(Reply::Json(
                409,
                status(409, "Conflict", "the object has been modified"),
            ))
        }
        _ => None,
    });
    let bundle = store(client).ensure(now).await.expect("a certificate");
    assert_eq!(bundle, theirs);
}

fn configuration(bundles: &[(&str, Option<&str>)]) -> Value {
    let webhooks: Vec<Value> = bundles
        .iter()
        .map(|(name, ca)| {
            let mut config = json!({"service": {"name": "ferrolb-webhook-service", "namespace": NS, "path": "/x"}});
            if let Some(ca) = ca {
                config["caBundle"] = json!(b64(ca));
            }
            json!({"name": name, "clientConfig": config, "sideEffects": "None", "admissionReviewVersions": ["v1"]})
        })
        .collect();
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "ferrolb-validating-webhook", "resourceVersion": "3"}, "webhooks": webhooks})
}

fn crd(strategy: &str, ca: Option<&str>) -> Value {
    let mut conversion = json!({"strategy": strategy});
    if strategy == "Webhook" {
        let mut client_config = json!({"service": {"name": "ferrolb-webhook-service", "namespace": NS, "path": "/convert"}});
        if let Some(ca) = ca {
            client_config["caBundle"] = json!(b64(ca));
        }
        conversion["webhook"] =
            json!({"clientConfig": client_config, "conversionReviewVersions": ["v1"]});
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "bgppeers.metallb.io"},
        "spec": {"group": "metallb.io", "scope": "Namespaced",
            "names": {"kind": "BGPPeer", "plural": "bgppeers"},
            "versions": [], "conversion": conversion}})
}

#[tokio::test]
async fn the_ca_goes_into_every_webhook_that_lacks_it_and_into_a_webhook_conversion() {
    let bundle = generate(&names(), SystemTime::now(), None).expect("generates");
    let (client, fake) = FakeApi::start();
    let ca = bundle.ca_pem.clone();
    let vwc = configuration(&[
        ("a.ferrolb", None),
        ("b.ferrolb", Some(&ca)),
        ("c.ferrolb", Some("stale")),
    ]);
    let definition = crd("Webhook", Some("stale"));
    fake.route(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", VWC) => Some(Reply::Json(200, vwc.clone())),
        ("GET", CRD) => Some(Reply::Json(200, definition.clone())),
        _ => None,
    });
    let injected = store(client).inject(&bundle).await.expect("written");
    assert_eq!(
        injected,
        Injected {
            webhooks: vec!["a.ferrolb".into(), "c.ferrolb".into()],
            crd: true
        }
    );
    let log = fake.log();
    let patches: Vec<_> = log.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 2, "{log:?}");
    assert_eq!(patches[0].path, VWC);
    assert_eq!(
        patches[0].content_type,
        "application/strategic-merge-patch+json"
    );
    assert_eq!(
        patches[0].body,
        json!({"webhooks": [
            {"name": "a.ferrolb", "clientConfig": {"caBundle": b64(&ca)}},
            {"name": "c.ferrolb", "clientConfig": {"caBundle": b64(&ca)}},
        ]})
    );
    assert_eq!(patches[1].path, CRD);
    assert_eq!(patches[1].content_type, "application/merge-patch+json");
    assert_eq!(
        patches[1].body,
        json!({"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": b64(&ca)}}}}})
    );
}

#[tokio::test]
async fn nothing_is_written_when_every_bundle_is_current_or_the_crd_does_not_convert() {
    let bundle = generate(&names(), SystemTime::now(), None).expect("generates");
    let (client, fake) = FakeApi::start();
    let vwc = configuration(&[("a.ferrolb", Some(&bundle.ca_pem))]);
    let definition = crd("None", None);
    fake.route(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", VWC) => Some(Reply::Json(200, vwc.clone())),
        ("GET", CRD) => Some(Reply::Json(200, definition.clone())),
        _ => None,
    });
    let injected = store(client)
        .inject(&bundle)
        .await
        .expect("nothing to write");
    assert_eq!(injected, Injected::default());
    assert!(writes(&fake.log()).is_empty());

    // A CRD that cannot be read (403 without the permission) is skipped.
    let (client, fake) = FakeApi::start();
    let vwc = configuration(&[("a.ferrolb", Some(&bundle.ca_pem))]);
    fake.route(move |r| match r.path.as_str() {
        VWC => Some(Reply::Json(200, vwc.clone())),
        CRD => Some(Reply::Json(403, status(403, "Forbidden", "forbidden"))),
        _ => None,
    });
    let skipping = store(client);
    for _ in 0..2 {
        assert_eq!(
            skipping.inject(&bundle).await.expect("skipped"),
            Injected::default()
        );
    }
    let log = fake.log();
    assert!(writes(&log).is_empty());
    let crd_reads = log.iter().filter(|r| r.path == CRD).count();
    assert_eq!(crd_reads, 1, "a CRD it may not read is not asked for again");

    // A missing configuration is an error the caller retries.
    let (client, _fake) = FakeApi::start();
    assert!(store(client).inject(&bundle).await.is_err());
}
