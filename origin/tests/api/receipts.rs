//! `GET /v1/agents/{id}/receipts` (SPEC §12) over what the collector stores: newest first,
//! cursor paging, one row per decision id, and the same isolation as every agent route.

use serde_json::json;
use vouch_core::{AgentId, OrgId, Timestamp};
use vouch_origin::store::ReceiptRow;

use crate::harness::{TestApp, ADMIN};

fn receipt(agent: &str, org: &str, n: i64) -> ReceiptRow {
    let at = Timestamp::from_unix_millis(1_790_000_000_000 + n * 1000);
    let decision = json!({
        "decision_id": format!("dec_{n:032x}"), "allow": true, "agent_id": agent, "owner_id": org,
        "created_at": at.to_string(), "kid": "oap:registry:test", "signature": "ed25519:AA==",
    });
    ReceiptRow {
        decision_id: format!("dec_{n:032x}"),
        agent_id: AgentId::parse(agent).unwrap(),
        org_id: OrgId::parse(org).unwrap(),
        partner_id: None,
        created_at: at,
        received_at: at,
        body: decision.to_string(),
    }
}

pub async fn listed_newest_first_once_each(app: &TestApp) {
    let org = app.org("receipts").await;
    let other = app.org("receipts-other").await;
    let (agent, _) = app.agent(&org, "payer").await;
    let (stranger, _) = app.agent(&other, "stranger").await;
    let rows: Vec<ReceiptRow> = (1..=3).map(|n| receipt(&agent, &org, n)).collect();
    assert_eq!(app.store.store_receipts(&rows).await.unwrap(), 3);
    // Collected again (the edge re-delivers after a lost acknowledgement): stored once.
    assert_eq!(app.store.store_receipts(&rows[1..]).await.unwrap(), 0);

    let path = format!("/v1/agents/{agent}/receipts");
    let page = app.get(&path, ADMIN).await.assert_status(200).clone();
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            &rows[2].decision_id,
            &rows[1].decision_id,
            &rows[0].decision_id
        ]
    );
    assert_eq!(
        page["data"][0]["signature"], "ed25519:AA==",
        "the body as stored"
    );

    let first = app
        .get(&format!("{path}?limit=2"), ADMIN)
        .await
        .assert_status(200)
        .clone();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("{path}?limit=2&cursor={cursor}"), ADMIN)
        .await
        .assert_status(200)
        .clone();
    assert_eq!(rest["data"][0]["decision_id"], rows[0].decision_id.as_str());
    assert!(rest["next_cursor"].is_null());

    // The org's own tokens read them, a viewer too; another org's token sees no such agent.
    let viewer = app.token(&org, "viewer").await;
    app.get(&path, &viewer).await.assert_status(200);
    let outsider = app.token(&other, "admin").await;
    let refused = app.get(&path, &outsider).await.assert_status(404).clone();
    assert_eq!(refused["error"], "agent_not_found");
    let none = app
        .get(&format!("/v1/agents/{stranger}/receipts"), ADMIN)
        .await
        .assert_status(200)
        .clone();
    assert_eq!(none["data"], json!([]));
    // Bad input.
    app.get("/v1/agents/nope/receipts", ADMIN)
        .await
        .assert_status(400);
    app.get(&format!("{path}?cursor=%%%"), ADMIN)
        .await
        .assert_status(400);
    app.get(&path, "vk_admin_wrong").await.assert_status(401);
}
