//! `GET /mirrors.json`: the live mirror list readers' tools consume, in
//! the bypass-mirrors format, checked against its JSON Schema.

mod common;

use common::*;
use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(include_str!("../docs/mirrors.schema.json")).unwrap()
}

#[tokio::test]
async fn only_mirrors_that_serve_the_article_now_are_listed() {
    let primary = serving(Page::Primary).await;
    let faithful = TestOrigin::start(Behavior::Status(404)).await;
    faithful.set_path(ARTICLE, Behavior::Page(Page::Faithful.on(&faithful)));
    let blocked = serving(Page::Blocked).await;
    let down = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let mirrors = vec![faithful.url(), blocked.url(), format!("http://{down}")];
    let site = SiteSpec::new("news", primary.url(), mirrors, vec![ARTICLE]).extra("content_selector = \"article\"");
    let mut text = config_text(&dir.path().join("store.db"), "", &[site]);
    text = text.replace(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        "[server]\nlisten = \"127.0.0.1:0\"\nstatus_token = \"0123456789abcdef0123\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config);
    // /status needs the token; the list does not.
    eventually("a round", std::time::Duration::from_secs(20), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json_authorized(&url, "0123456789abcdef0123").await?;
            (status["round"]["completed"].as_u64()? >= 1).then_some(())
        }
    })
    .await;
    let response = get(daemon.url("/mirrors.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let list: Value = response.json().await.unwrap();
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let errors: Vec<String> = validator.iter_errors(&list).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{list}");
    assert_eq!(list["version"], "2.0");
    assert_eq!(list["sites"][0]["main_domain"], primary.authority().as_str());
    let alternatives = list["sites"][0]["available_alternatives"].as_array().unwrap();
    let urls: Vec<&str> = alternatives.iter().map(|a| a["url"].as_str().unwrap()).collect();
    assert_eq!(urls, [faithful.url().as_str()], "{list}");
    assert_eq!(alternatives[0]["proto"], "http");
    assert_eq!(alternatives[0]["type"], "mirror");

    let v1 = get_json(&daemon.url("/mirrors.json?format=v1")).await;
    assert_eq!(v1["sites"][0]["available_mirrors"], serde_json::json!([faithful.url()]));
    assert_eq!(get(daemon.url("/mirrors.json?format=v9")).await.status(), 400);
    assert_eq!(get(daemon.url("/mirrors.json?country=Iran")).await.status(), 400);
    // A country without agents gets the same list.
    let ir = get_json(&daemon.url("/mirrors.json?country=IR")).await;
    assert_eq!(
        ir["sites"][0]["available_alternatives"][0]["url"],
        faithful.url().as_str()
    );

    // A restart does not make the mirror new: created_at is kept.
    let created_at = alternatives[0]["created_at"].clone();
    daemon.signal("TERM");
    assert_eq!(daemon.exited(std::time::Duration::from_secs(30)).await, Some(0));
    let daemon = Daemon::start(&config);
    let again = eventually("the mirror listed again", std::time::Duration::from_secs(30), || {
        let url = daemon.url("/mirrors.json");
        async move {
            let list = get_json(&url).await;
            let listed = list["sites"][0]["available_alternatives"][0].clone();
            listed.is_object().then_some(listed)
        }
    })
    .await;
    assert_eq!(again["created_at"], created_at, "{again}");
}
