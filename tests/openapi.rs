//! docs/openapi.json is true: real answers of the real daemon, for every
//! JSON endpoint, validate against the schemas it names.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The schema of `component` with the document's components beside it,
/// so `$ref`s into `#/components/schemas` resolve.
fn validate(doc: &Value, component: &str, instance: &Value) {
    let schema = json!({
        "$ref": format!("#/components/schemas/{component}"),
        "components": doc["components"].clone(),
    });
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{component}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{component}: {errors:?}\n{instance}");
}

#[tokio::test]
async fn every_json_answer_matches_the_openapi_document() {
    let primary = serving_article(Page::Primary).await;
    let stale = serving_article(Page::Faithful).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let site =
        SiteSpec::new("news", primary.url(), vec![stale.url()], vec![ARTICLE]).extra("content_selector = \"article\"");
    write_config(
        &config,
        &dir.path().join("store.db"),
        "interval = \"1s\"\ntimeout = \"2s\"\nper_host_rate = 100",
        &[site],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    primary.set_path(ARTICLE, Behavior::Page(Page::PrimaryV2.on(&primary)));
    eventually("a stale mirror", Duration::from_secs(20), || {
        let (url, stale) = (daemon.url("/status/news"), stale.url());
        async move { (bases_of(&get_json(&url).await, ARTICLE)[&stale]["verdict"] == "stale").then_some(()) }
    })
    .await;
    let doc = get_json(&daemon.url("/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/r/{site}/{path}",
        "/go",
        "/healthz",
        "/status",
        "/status/{site}",
        "/status/{site}/evidence",
        "/mirrors.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    validate(&doc, "Overview", &get_json(&daemon.url("/status")).await);
    validate(&doc, "SiteDetail", &get_json(&daemon.url("/status/news")).await);
    validate(&doc, "Health", &get_json(&daemon.url("/healthz")).await);
    validate(&doc, "MirrorList", &get_json(&daemon.url("/mirrors.json")).await);
    validate(
        &doc,
        "MirrorList",
        &get_json(&daemon.url("/mirrors.json?format=v1")).await,
    );
    validate(&doc, "Error", &get_json(&daemon.url("/status/nope")).await);
    validate(&doc, "Error", &get_json(&daemon.url("/mirrors.json?country=xyz")).await);
    let encoded: String = url::form_urlencoded::byte_serialize(stale.url().as_bytes()).collect();
    let evidence = get_json(&daemon.url(&format!("/status/news/evidence?path={ARTICLE}&base={encoded}"))).await;
    validate(&doc, "Evidence", &evidence);
    primary.set_path(ARTICLE, Behavior::Status(503));
    stale.set_path(ARTICLE, Behavior::Status(503));
    let unavailable = eventually("no base", Duration::from_secs(20), || {
        let url = daemon.url(&format!("/r/news{ARTICLE}"));
        async move {
            let response = get(&url).await;
            if response.status() != 503 {
                return None;
            }
            response.json::<Value>().await.ok()
        }
    })
    .await;
    validate(&doc, "Unavailable", &unavailable);
    validate(&doc, "Error", &get_json(&daemon.url("/go")).await);
}
