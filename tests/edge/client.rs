//! `vouch-client` end to end: its typed admin API against the real origin, and its
//! `GET /verify` cache and decisions against the built worker in workerd.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use vouch_client::{AgentFilter, Client, DecisionRequest, Edge, Error, Role, Verification};
use vouch_core::{AgentId, OrgId, Status};

use crate::stack::{seed_passport, Stack, ADMIN};
use crate::PATIENCE;

/// Asks the edge until `done` holds for its answer (propagation takes a moment).
async fn verify_until(
    edge: &Edge,
    agent: &AgentId,
    done: impl Fn(&Verification) -> bool,
) -> Verification {
    let started = Instant::now();
    loop {
        match edge.verify(agent).await {
            Ok(answer) if done(&answer) => return answer,
            Ok(_) | Err(Error::Api { status: 404, .. }) if started.elapsed() < PATIENCE => {}
            other => panic!("the edge never answered as expected: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_drives_the_admin_api_and_caches_verify() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let platform = Client::new(&stack.origin, Some(ADMIN.into())).unwrap();

    // Orgs and tokens: an owner token acts for its org from then on.
    let org = platform
        .create_org("Client Corp", "client-corp")
        .await
        .unwrap();
    assert_eq!(platform.get_org(&org.org_id).await.unwrap(), org);
    let owner = platform
        .create_token(&org.org_id, Role::Owner, "client ops")
        .await
        .unwrap();
    assert_eq!(owner.role, Role::Owner);
    let owner = Client::new(&stack.origin, Some(owner.token)).unwrap();
    let duplicate = platform
        .create_org("Again", "client-corp")
        .await
        .unwrap_err();
    assert_eq!(duplicate.status(), Some(409), "{duplicate}");

    // Agents: register, read with its ETag, patch under If-Match, activate.
    let registered = owner
        .register_agent(&seed_passport(org.org_id.as_str(), "Client Bot"))
        .await
        .unwrap();
    assert!(registered.api_key.starts_with("vk_agent_"));
    let agent = registered.agent.agent_id.clone();
    let read = owner.get_agent(&agent).await.unwrap();
    assert_eq!(read.value.status, Status::Draft);
    let etag = read.etag.clone().expect("an ETag");
    let mut patch = Map::new();
    patch.insert("role".into(), json!("Tier-3 Support"));
    let patched = owner
        .update_agent(&agent, &patch, Some(etag.clone()))
        .await
        .unwrap();
    assert_eq!(patched.fields.role.as_deref(), Some("Tier-3 Support"));
    let stale = owner
        .update_agent(&agent, &patch, Some(etag))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Some("version_mismatch"), "{stale}");
    let changed = owner
        .set_status(&agent, Status::Active, None, None)
        .await
        .unwrap();
    assert_eq!(changed.new_status, Status::Active);
    let listed = owner
        .list_agents(&AgentFilter {
            status: Some(Status::Active),
            ..AgentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].agent_id, agent);
    let unknown = OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap();
    let hidden = owner.get_org(&unknown).await.unwrap_err();
    assert_eq!(hidden.status(), Some(404), "{hidden}");

    // The agent's own credentials: a token, a heartbeat.
    let token = owner
        .agent_token(&agent, &registered.api_key)
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let as_agent = Client::new(&stack.origin, Some(registered.api_key.clone())).unwrap();
    let ack = as_agent.heartbeat(&agent, None).await.unwrap();
    assert_eq!(ack.status, Status::Active);

    // The edge: the active view, then a revalidation answered 304 from the cache.
    let edge = Edge::new(&stack.edge).unwrap();
    let first = verify_until(&edge, &agent, |v| matches!(v, Verification::Active(_))).await;
    let Verification::Active(view) = &first else {
        unreachable!()
    };
    assert_eq!((view.name.as_str(), view.version), ("Client Bot", 3));
    let before = edge.revalidated();
    assert_eq!(edge.verify(&agent).await.unwrap(), first);
    assert_eq!(
        edge.revalidated(),
        before + 1,
        "an unchanged passport is a 304"
    );

    // Decisions: allowed within the limits, refused beyond them, by id and by token.
    let refund = |amount: u32| json!({ "amount": amount, "currency": "USD", "region": "US-CA" });
    let allowed = edge
        .decide(&DecisionRequest::for_agent(agent.clone(), "payments.refund").context(refund(50)))
        .await
        .unwrap();
    assert!(allowed.allow, "{allowed:?}");
    assert_eq!(allowed.agent_id.as_ref(), Some(&agent));
    let refused = edge
        .decide(&DecisionRequest::for_token(access.clone(), "payments.refund").context(refund(500)))
        .await
        .unwrap();
    assert!(!refused.allow);
    assert!(
        refused
            .reasons
            .iter()
            .any(|r| r.code == "oap.limit_exceeded"),
        "{refused:?}"
    );
    let batch = edge
        .decide_batch(&[
            DecisionRequest::for_agent(agent.clone(), "payments.refund").context(refund(1)),
            DecisionRequest::for_agent(agent.clone(), "nothing.granted"),
        ])
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(|d| d["allow"].clone()).collect::<Vec<_>>(),
        [json!(true), json!(false)]
    );
    // The edge's own OpenAPI document describes what was just used.
    let doc: Value = edge
        .client()
        .json(&vouch_client::Request::get(&["openapi.json"]).anonymous())
        .await
        .unwrap();
    for path in ["/verify", "/verify/batch", "/.well-known/jwks.json"] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    let keys = edge.jwks().await.unwrap();
    assert!(serde_json::to_value(&keys).unwrap()["keys"]
        .as_array()
        .is_some_and(|k| !k.is_empty()));

    // A suspension, seen on the live stream and at the edge (a new ETag: no stale 304).
    let mut stream = owner
        .events(&["passport.status_changed"], None)
        .await
        .unwrap();
    owner
        .set_status(&agent, Status::Suspended, Some("fraud review"), None)
        .await
        .unwrap();
    let seen = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            if event.event == "passport.status_changed" {
                return serde_json::from_str::<Value>(&event.data).unwrap();
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("passport.status_changed on the stream");
    assert!(seen.to_string().contains(agent.as_str()), "{seen}");
    let suspended = verify_until(&edge, &agent, |v| matches!(v, Verification::Refused(_))).await;
    let Verification::Refused(refusal) = suspended else {
        unreachable!()
    };
    assert_eq!(refusal.code, "agent_suspended");
    assert_eq!(refusal.reason.as_deref(), Some("fraud review"));
    let denied = edge
        .decide(&DecisionRequest::for_agent(agent.clone(), "payments.refund").context(refund(1)))
        .await
        .unwrap();
    assert!(!denied.allow);

    // The audit log: the origin's own check and the events behind it.
    let check = owner.verify_audit(None).await.unwrap();
    assert!(check.report.ok, "{check:?}");
    let events = owner.all_audit_events(None).await.unwrap();
    assert_eq!(
        i64::try_from(events.len()).unwrap(),
        check.report.events_checked
    );
    let head = owner.audit_checkpoint(None).await.unwrap();
    assert_eq!(head.chain_id, check.chain_id);
    let unknown = AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap();
    let missing = edge.verify(&unknown).await.unwrap_err();
    assert_eq!(missing.code(), Some("agent_not_found"), "{missing}");
}
