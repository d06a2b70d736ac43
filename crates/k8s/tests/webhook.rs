//! The admission webhook: the pure decision against what `ferrolb check` says about the
//! same objects, the HTTP routes with hand-made reviews, conversion, and random input.

use axum::body::Body;
use ferrolb_k8s::webhook::convert::{V1BETA1, V1BETA2, convert_object};
use ferrolb_k8s::webhook::http::NOT_READY;
use ferrolb_k8s::webhook::review::read_review;
use ferrolb_k8s::webhook::{Kind, Operation, Request, Verdict, WebhookState, decide, router};
use ferrolb_model::Snapshot;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const NS: &str = "metallb-system";

fn pool(name: &str, addresses: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": addresses},
    })
}

fn bfd(name: &str) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"receiveInterval": 300},
    })
}

fn peer(name: &str, bfd_profile: &str) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1", "bfdProfile": bfd_profile},
    })
}

/// What `ferrolb check` reads from these objects, each a file (JSON is YAML).
fn loaded(objects: &[Value]) -> ferrolb_source::Loaded {
    let texts: Vec<(String, String)> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (format!("{i:02}.yaml"), o.to_string()))
        .collect();
    let loaded =
        ferrolb_source::load_documents(texts.iter().map(|(n, t)| (n.as_str(), t.as_bytes())));
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded
}

fn snapshot(objects: &[Value]) -> Snapshot {
    loaded(objects).snapshot
}

/// The lines `ferrolb check` prints for these objects.
fn check_lines(objects: &[Value]) -> Vec<String> {
    match ferrolb_model::validate(&loaded(objects).snapshot) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

fn create(kind: Kind, object: Value) -> Request {
    Request {
        operation: Operation::Create,
        kind,
        namespace: object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .into(),
        name: object["metadata"]["name"].as_str().unwrap_or("").into(),
        object: Some(object),
        old_object: None,
    }
}

fn denial(verdict: Verdict) -> String {
    match verdict {
        Verdict::Deny { message } => message,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn allowed_warnings(verdict: Verdict) -> Vec<String> {
    match verdict {
        Verdict::Allow { warnings } => warnings,
        other => panic!("expected it allowed, got {other:?}"),
    }
}

#[test]
fn a_valid_pool_is_allowed() {
    let current = snapshot(&[pool("a", &["192.0.2.0/28"])]);
    let verdict = decide(
        NS,
        &current,
        &create(Kind::IPAddressPool, pool("b", &["192.0.2.16/28"])),
    );
    assert_eq!(allowed_warnings(verdict), Vec::<String>::new());
}

#[test]
fn an_overlapping_pool_is_denied_with_the_lines_check_prints() {
    let a = pool("a", &["192.0.2.0/24"]);
    let b = pool("b", &["192.0.2.128/25"]);
    let expected = check_lines(&[a.clone(), b.clone()]);
    assert!(!expected.is_empty(), "check must reject the two pools");
    assert!(
        expected.iter().all(|l| l.starts_with("IPAddressPool/b: ")),
        "{expected:?}"
    );
    let message = denial(decide(NS, &snapshot(&[a]), &create(Kind::IPAddressPool, b)));
    assert_eq!(message, expected.join("\n"));
}

#[test]
fn deleting_a_bfd_profile_a_peer_uses_is_denied_and_an_unused_one_is_not() {
    let current = snapshot(&[bfd("fast"), bfd("spare"), peer("router", "fast")]);
    let delete = |name: &str| Request {
        operation: Operation::Delete,
        kind: Kind::BFDProfile,
        namespace: NS.into(),
        name: name.into(),
        object: None,
        old_object: Some(bfd(name)),
    };
    let message = denial(decide(NS, &current, &delete("fast")));
    // What check says once the profile is gone.
    let expected = check_lines(&[bfd("spare"), peer("router", "fast")]);
    assert_eq!(message, expected.join("\n"));
    assert!(
        message.starts_with("BGPPeer/router: spec.bfdProfile: "),
        "{message}"
    );
    allowed_warnings(decide(NS, &current, &delete("spare")));
}

#[test]
fn an_object_in_another_namespace_is_denied() {
    let mut other = pool("a", &["192.0.2.0/28"]);
    other["metadata"]["namespace"] = json!("default");
    let message = denial(decide(
        NS,
        &Snapshot::default(),
        &create(Kind::IPAddressPool, other),
    ));
    assert!(
        message.starts_with("IPAddressPool/a: metadata.namespace: "),
        "{message}"
    );
    assert!(message.contains("metallb-system"), "{message}");
}

#[test]
fn an_update_is_not_blamed_for_an_unrelated_problem_that_already_existed() {
    // a and b overlap already (the configuration in force is invalid); c is changed.
    let objects = [
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["192.0.2.0/25"]),
        pool("c", &["198.51.100.0/28"]),
    ];
    let current = snapshot(&objects);
    assert!(!check_lines(&objects).is_empty());
    let update = |c: Value| Request {
        operation: Operation::Update,
        old_object: Some(objects[2].clone()),
        ..create(Kind::IPAddressPool, c)
    };
    allowed_warnings(decide(
        NS,
        &current,
        &update(pool("c", &["198.51.100.0/27"])),
    ));
    // A change that adds a problem is denied with only the new one.
    let bad = pool("c", &["192.0.2.200/29"]);
    let message = denial(decide(NS, &current, &update(bad.clone())));
    let before = check_lines(&objects);
    let after = check_lines(&[objects[0].clone(), objects[1].clone(), bad]);
    let new: Vec<String> = after.into_iter().filter(|l| !before.contains(l)).collect();
    assert!(!new.is_empty());
    assert_eq!(message, new.join("\n"));
    assert!(!message.contains("IPAddressPool/b"), "{message}");
}

#[test]
fn a_reference_to_a_missing_bfd_profile_only_warns_on_create() {
    let object = peer("router", "later");
    let expected = check_lines(std::slice::from_ref(&object));
    let warnings = allowed_warnings(decide(
        NS,
        &Snapshot::default(),
        &create(Kind::BGPPeer, object),
    ));
    assert_eq!(warnings, expected);
}

#[test]
fn an_object_that_does_not_fit_its_kind_is_denied_saying_why() {
    let mut broken = pool("a", &[]);
    broken["spec"]["addresses"] = json!("192.0.2.0/24");
    let message = denial(decide(
        NS,
        &Snapshot::default(),
        &create(Kind::IPAddressPool, broken),
    ));
    assert!(
        message.starts_with("IPAddressPool/a: does not fit the schema: "),
        "{message}"
    );
}

#[test]
fn a_v1beta1_peer_is_validated_as_its_v1beta2_conversion() {
    let v1 = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
        "metadata": {"name": "old", "namespace": NS},
        "spec": {"myASN": 64500, "peerASN": 64500, "peerAddress": "192.0.2.1", "ebgpMultiHop": true},
    });
    let message = denial(decide(
        NS,
        &Snapshot::default(),
        &create(Kind::BGPPeer, v1.clone()),
    ));
    let converted = convert_object(&v1, V1BETA2).expect("converts");
    assert_eq!(message, check_lines(&[converted]).join("\n"));
}

#[test]
fn conversion_keeps_metadata_and_round_trips_the_v1beta1_fields() {
    let v1 = json!({
        "apiVersion": V1BETA1, "kind": "BGPPeer",
        "metadata": {"name": "r", "namespace": NS, "resourceVersion": "7", "uid": "u-1"},
        "spec": {
            "myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1", "peerPort": 1179,
            "holdTime": "9s", "bfdProfile": "fast", "ebgpMultiHop": true,
            "nodeSelectors": [{"matchLabels": {"rack": "a"},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}],
        },
    });
    let v2 = convert_object(&v1, V1BETA2).expect("to v1beta2");
    assert_eq!(v2["apiVersion"], V1BETA2);
    assert_eq!(v2["metadata"], v1["metadata"]);
    assert_eq!(
        v2["spec"]["nodeSelectors"][0]["matchExpressions"][0]["values"],
        json!(["x"])
    );
    let back = convert_object(&v2, V1BETA1).expect("back to v1beta1");
    assert_eq!(back, v1);
    // Fields v1beta1 does not have are left out.
    let mut rich = v2.clone();
    rich["spec"]["vrf"] = json!("red");
    let down = convert_object(&rich, V1BETA1).expect("to v1beta1");
    assert!(down["spec"].get("vrf").is_none());
}

// ---- HTTP ----

fn state(snapshot: Option<Snapshot>) -> WebhookState {
    WebhookState {
        namespace: NS.into(),
        snapshot: Arc::new(move || snapshot.clone()),
    }
}

fn review(kind: &str, version: &str, operation: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "metallb.io", "version": version, "kind": kind},
            "resource": {"group": "metallb.io", "version": version, "resource": "x"},
            "name": object["metadata"]["name"], "namespace": NS,
            "operation": operation, "object": object, "oldObject": null,
            "userInfo": {"username": "admin"}, "dryRun": false,
        }
    })
}

async fn post(state: WebhookState, path: &str, body: String) -> (u16, String) {
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = router(state).oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

#[tokio::test]
async fn the_route_answers_an_admission_review_with_its_uid() {
    let current = snapshot(&[pool("a", &["192.0.2.0/24"])]);
    let body = review(
        "IPAddressPool",
        "v1beta1",
        "CREATE",
        pool("b", &["192.0.2.0/26"]),
    );
    let (status, text) = post(
        state(Some(current)),
        "/validate-metallb-io-v1beta1-ipaddresspool",
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let answer = parse(&text);
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], body["request"]["uid"]);
    assert_eq!(answer["response"]["allowed"], false);
    let expected = check_lines(&[pool("a", &["192.0.2.0/24"]), pool("b", &["192.0.2.0/26"])]);
    assert_eq!(answer["response"]["status"]["message"], expected.join("\n"));
    assert_eq!(answer["response"]["status"]["code"], 403);

    let ok = review(
        "IPAddressPool",
        "v1beta1",
        "CREATE",
        pool("c", &["198.51.100.0/24"]),
    );
    let (status, text) = post(
        state(Some(Snapshot::default())),
        "/validate-metallb-io-v1beta1-ipaddresspool",
        ok.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(parse(&text)["response"]["allowed"], true);
}

#[tokio::test]
async fn every_kind_has_its_path_and_bgppeer_takes_both_versions() {
    for kind in Kind::ALL {
        let object = json!({"apiVersion": "metallb.io/v1beta1", "kind": kind.name(),
            "metadata": {"name": "x", "namespace": NS}});
        let body = review(kind.name(), "v1beta1", "DELETE", object);
        let (status, text) = post(
            state(Some(Snapshot::default())),
            &kind.path(),
            body.to_string(),
        )
        .await;
        assert_eq!(status, 200, "{}", kind.path());
        assert_eq!(parse(&text)["response"]["allowed"], true, "{text}");
    }
    assert_eq!(Kind::BGPPeer.path(), "/validate-metallb-io-v1beta2-bgppeer");
    assert_eq!(
        Kind::BFDProfile.path(),
        "/validate-metallb-io-v1beta1-bfdprofile"
    );
    let v1 = json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"}});
    for path in [
        "/validate-metallb-io-v1beta2-bgppeer",
        "/validate-metallb-io-v1beta1-bgppeer",
    ] {
        let (_, text) = post(
            state(Some(Snapshot::default())),
            path,
            review("BGPPeer", "v1beta1", "CREATE", v1.clone()).to_string(),
        )
        .await;
        assert_eq!(parse(&text)["response"]["allowed"], true, "{text}");
    }
}

#[tokio::test]
async fn a_review_larger_than_axums_default_limit_is_read() {
    let mut big = pool("a", &["192.0.2.0/24"]);
    big["metadata"]["annotations"] = json!({"note": "x".repeat(3 << 20)});
    let body = review("IPAddressPool", "v1beta1", "CREATE", big);
    let (status, text) = post(
        state(Some(Snapshot::default())),
        &Kind::IPAddressPool.path(),
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(parse(&text)["response"]["allowed"], true);
}

#[tokio::test]
async fn a_kind_sent_to_another_kinds_path_is_denied() {
    let body = review(
        "IPAddressPool",
        "v1beta1",
        "CREATE",
        pool("a", &["192.0.2.0/24"]),
    );
    let (status, text) = post(
        state(Some(Snapshot::default())),
        "/validate-metallb-io-v1beta1-community",
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let answer = parse(&text);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Community")
    );
}

#[tokio::test]
async fn before_the_configuration_is_read_requests_are_denied_saying_so() {
    let body = review(
        "IPAddressPool",
        "v1beta1",
        "CREATE",
        pool("a", &["192.0.2.0/24"]),
    );
    let (_, text) = post(state(None), &Kind::IPAddressPool.path(), body.to_string()).await;
    let answer = parse(&text);
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["message"], NOT_READY);
}

#[tokio::test]
async fn a_body_that_is_not_a_review_is_a_bad_request() {
    for body in ["", "not json", "{}", r#"{"request": {"uid": 5}}"#] {
        let (status, _) = post(state(None), &Kind::Community.path(), body.into()).await;
        assert_eq!(status, 400, "{body:?}");
    }
}

#[tokio::test]
async fn the_convert_route_converts_a_conversion_review() {
    let body = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c-1", "desiredAPIVersion": V1BETA2, "objects": [{
            "apiVersion": V1BETA1, "kind": "BGPPeer",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1", "holdTime": "0s"}}]}
    });
    let (status, text) = post(state(None), "/convert", body.to_string()).await;
    assert_eq!(status, 200);
    let answer = parse(&text);
    assert_eq!(answer["kind"], "ConversionReview");
    assert_eq!(answer["response"]["uid"], "c-1");
    assert_eq!(answer["response"]["result"]["status"], "Success");
    let converted = &answer["response"]["convertedObjects"][0];
    assert_eq!(converted["apiVersion"], V1BETA2);
    // v1beta1's zero hold time means unset.
    assert!(converted["spec"].get("holdTime").is_none(), "{converted}");
    let bad = json!({"request": {"uid": "c-2", "desiredAPIVersion": "metallb.io/v9",
        "objects": [{"apiVersion": V1BETA1, "kind": "BGPPeer", "metadata": {"name": "p"}, "spec": {"myASN": 1}}]}});
    let (_, text) = post(state(None), "/convert", bad.to_string()).await;
    assert_eq!(parse(&text)["response"]["result"]["status"], "Failure");
}

// ---- random input ----

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9./:-]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("CREATE"),
            Just("UPDATE"),
            Just("DELETE"),
            Just("metallb.io"),
            Just("IPAddressPool"),
            Just("BGPPeer"),
            Just(NS),
            Just("metallb.io/v1beta1"),
            Just("192.0.2.0/24"),
            Just("spec"),
            Just("metadata"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("request".to_string()),
                    Just("uid".to_string()),
                    Just("kind".to_string()),
                    Just("object".to_string()),
                    Just("oldObject".to_string()),
                    Just("operation".to_string()),
                    Just("spec".to_string()),
                    Just("metadata".to_string()),
                    Just("name".to_string()),
                    Just("namespace".to_string()),
                    Just("group".to_string()),
                    Just("addresses".to_string()),
                    Just("apiVersion".to_string()),
                    Just("objects".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn random_json_never_panics(value in any_json(), wrap in any::<bool>()) {
        // Either as it is, or as the request of a review with a uid.
        let body = if wrap {
            json!({"request": {"uid": "u", "kind": {"group": "metallb.io", "kind": "IPAddressPool"},
                "operation": "CREATE", "namespace": NS, "object": value}})
        } else {
            value
        };
        let text = body.to_string();
        let current = snapshot(&[pool("a", &["192.0.2.0/24"]), bfd("fast"), peer("r", "fast")]);
        for kind in Kind::ALL {
            if let Ok(review) = read_review(text.as_bytes(), kind)
                && let Ok(request) = &review.request
            {
                let _ = decide(NS, &current, request);
            }
        }
        let _ = ferrolb_k8s::webhook::convert::convert_review(text.as_bytes());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_review(&bytes, Kind::BGPPeer);
        let _ = ferrolb_k8s::webhook::convert::convert_review(&bytes);
    }
}
