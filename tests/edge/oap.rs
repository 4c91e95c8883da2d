//! The OAP 1.0 verifier interface in real workerd (SPEC §13): OAP's published conformance cases
//! (vendored from aporthq/aport-spec, MIT), our boundary variations, each built-in pack's checks
//! in order, commits by `Idempotency-Key`, discovery and the packs as data.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::stack::{Partner, Stack};
use crate::PATIENCE;

const VENDOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/aport-spec");

fn vendored(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{VENDOR}/{path}"))
        .unwrap_or_else(|e| panic!("vendored {path} is missing: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Imports an OAP passport into `org` (with a contact when it has none); returns the agent id.
async fn import(stack: &Stack, org: &str, mut doc: Value) -> String {
    if doc["metadata"].get("contact").is_none() {
        doc["metadata"]["contact"] = json!("ops@example.com");
    }
    let body = stack
        .admin(
            reqwest::Method::POST,
            &format!("/v1/agents/import/oap?org_id={org}"),
            Some(doc),
        )
        .await;
    body["agent"]["agent_id"].as_str().unwrap().to_owned()
}

/// `POST /api/verify/policy/{pack}` with `body`, and an `Idempotency-Key` when given.
async fn ask(
    stack: &Stack,
    pack: &str,
    body: Value,
    key: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    ask_as(stack, None, pack, body, key).await
}

/// [`ask`] as a partner (its key, and the agent token for it), when given.
async fn ask_as(
    stack: &Stack,
    caller: Option<(&Partner, &str)>,
    pack: &str,
    body: Value,
    key: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = stack
        .client
        .post(format!("{}/api/verify/policy/{pack}", stack.edge))
        .json(&body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    if let Some((partner, token)) = caller {
        req = req
            .bearer_auth(&partner.key)
            .header("vouch-agent-token", token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.json().await.unwrap_or(Value::Null), replayed)
}

/// The decision for `agent` (an `ap_…` id or a passport_id) on `context`, flat shape.
async fn decide(stack: &Stack, pack: &str, agent: &str, context: &Value) -> Value {
    let mut context = context.clone();
    context["agent_id"] = json!(agent);
    let (status, body, _) = ask(stack, pack, json!({ "context": context }), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asks until the decision is no longer `agent_not_found` (the import reached KV), or about
/// something else than `until` says.
async fn decide_until(
    stack: &Stack,
    pack: &str,
    agent: &str,
    context: &Value,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let body = decide(stack, pack, agent, context).await;
        if until(&body) {
            return body;
        }
        assert!(started.elapsed() < PATIENCE, "never: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn code(decision: &Value) -> &str {
    decision["reasons"][0]["code"].as_str().unwrap_or_default()
}

fn codes(decision: &Value) -> Vec<&str> {
    decision["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect()
}

fn known(decision: &Value) -> bool {
    code(decision) != "agent_not_found"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oap_conformance_cases() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let org = stack.org("OAP Conformance").await;
    let cases = std::fs::read_dir(format!("{VENDOR}/conformance/cases")).unwrap();
    let mut ran = 0;
    for case in cases {
        let dir = case.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let template = vendored(&format!("conformance/cases/{name}/passports/template.json"));
        let passport_id = template["passport_id"].as_str().unwrap().to_owned();
        let agent = import(&stack, &org, template.clone()).await;
        for context in std::fs::read_dir(dir.join("contexts")).unwrap() {
            let path = context.unwrap().path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let context = vendored(&format!("conformance/cases/{name}/contexts/{stem}.json"));
            let expected = vendored(&format!(
                "conformance/cases/{name}/expected/{stem}.decision.json"
            ));
            let pack = expected["policy_id"].as_str().unwrap();
            // By passport_id (as OAP clients send it), in the flat shape…
            let got = decide_until(&stack, pack, &passport_id, &context, known).await;
            assert_eq!(got["allow"], expected["allow"], "{name}/{stem}: {got}");
            assert_eq!(
                code(&got),
                expected["reasons"][0]["code"],
                "{name}/{stem}: {got}"
            );
            assert_eq!(got["policy_id"], pack);
            assert_eq!(got["agent_id"], passport_id.as_str());
            assert_eq!(got["passport_id"], passport_id.as_str());
            assert_eq!(got["registry_agent_id"], agent.as_str());
            assert_eq!(got["owner_id"], org.as_str());
            assert_eq!(got["assurance_level"], template["assurance_level"]);
            assert!(got["decision_id"].as_str().unwrap().starts_with("dec_"));
            assert!(got["expires_in"].as_u64().is_some() && got["created_at"].is_string());
            // …and by our own id, in the older nested shape.
            let nested =
                json!({ "context": { "agent_id": agent, "policy_id": pack, "context": context } });
            let (status, again, _) = ask(&stack, pack, nested, None).await;
            assert_eq!(status, StatusCode::OK, "{again}");
            assert_eq!((&again["allow"], code(&again)), (&got["allow"], code(&got)));
            assert_eq!(again["agent_id"], agent.as_str());
            ran += 1;
        }
    }
    assert_eq!(ran, 5, "OAP publishes five cases");
}

/// One passport holding every built-in pack's capability, with limits for each.
fn everything(passport_id: &str) -> Value {
    json!({
        "passport_id": passport_id,
        "spec_version": "oap/1.0",
        "assurance_level": "L3",
        "status": "active",
        "capabilities": [
            { "id": "finance.payment.refund" }, { "id": "payments.charge" }, { "id": "data.export" },
            { "id": "data.access" }, { "id": "repo.pr.create" }, { "id": "repo.merge" }
        ],
        "limits": {
            "finance.payment.refund": {
                "currency_limits": {
                    "USD": { "max_per_tx": 5000, "daily_cap": 10000 },
                    "EUR": { "max_per_tx": 4500 },
                    "JPY": { "max_per_tx": 700 },
                    "KWD": { "max_per_tx": 1500 }
                },
                "reason_codes": ["customer_request"],
                "idempotency_required": true
            },
            "payments.charge": {
                "currency_limits": { "USD": { "max_per_tx": 20000 } },
                "allowed_merchant_ids": ["merch_abc"], "allowed_countries": ["US"],
                "blocked_categories": ["weapons"], "max_items_per_tx": 1
            },
            "data.export": { "max_rows": 100, "allow_pii": false, "allowed_collections": ["users"] },
            "data.access": {
                "allowed_classifications": ["PII"],
                "permissions": { "PII": { "allowed_entity_types": ["employee"], "allowed_actions": ["read"] } },
                "allowed_jurisdictions": ["US"], "max_rows_per_export": 10
            },
            "repo.pr.create": { "allowed_repos": ["acme/app"], "max_pr_size_kb": 1 }
        },
        "regions": ["US", "CA"],
        "metadata": { "name": "Everything Bot", "contact": "ops@example.com" }
    })
}

fn refund(amount: u64, currency: &str, region: &str) -> Value {
    json!({ "order_id": "o1", "customer_id": "c1", "amount": amount, "currency": currency,
            "region": region, "reason_code": "customer_request", "idempotency_key": "refund-0001" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oap_boundaries_and_pack_order() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let org = stack.org("OAP Boundaries").await;
    let pid = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let agent = import(&stack, &org, everything(pid)).await;
    let r = "finance.payment.refund.v1";
    decide_until(&stack, r, pid, &refund(1, "USD", "US"), known).await;

    // Exactly at each currency's cap, and one minor unit over.
    for (ccy, max) in [("USD", 5000), ("EUR", 4500), ("JPY", 700), ("KWD", 1500)] {
        let at = decide(&stack, r, pid, &refund(max, ccy, "US")).await;
        assert_eq!(at["allow"], true, "{ccy}: {at}");
        let over = decide(&stack, r, &agent, &refund(max + 1, ccy, "US")).await;
        assert_eq!(codes(&over), ["oap.limit_exceeded"], "{ccy}: {over}");
    }
    assert_eq!(
        code(&decide(&stack, r, pid, &refund(1, "GBP", "US")).await),
        "oap.currency_unsupported"
    );
    // Each region rule: a listed country, its subdivision, an unlisted one, a malformed one.
    for (region, want) in [
        ("CA", "oap.allowed"),
        ("US-NY", "oap.allowed"),
        ("MX", "oap.region_blocked"),
        ("north", "oap.invalid_context"),
    ] {
        assert_eq!(
            code(&decide(&stack, r, pid, &refund(1, "USD", region)).await),
            want,
            "{region}"
        );
    }
    // Missing fields and wrong types.
    for (field, value) in [
        ("amount", json!("100")),
        ("amount", json!(1.5)),
        ("currency", json!("usd")),
        ("order_id", Value::Null),
        ("idempotency_key", json!(12345678)),
    ] {
        let mut c = refund(100, "USD", "US");
        c[field] = value.clone();
        let got = decide(&stack, r, pid, &c).await;
        assert_eq!(
            (got["allow"].as_bool(), code(&got)),
            (Some(false), "oap.invalid_context"),
            "{field}={value}"
        );
        assert_eq!(got["reasons"][0]["field"], format!("context.{field}"));
    }

    // Each built-in pack's checks, in its order.
    let c = "finance.payment.charge.v1";
    let charge = json!({ "amount": 20001, "currency": "USD", "merchant_id": "merch_evil", "region": "MX",
                         "shipping_country": "DE", "idempotency_key": "charge-0001",
                         "items": [{ "sku": "a", "qty": 1, "price": 1 }, { "sku": "g", "qty": 1, "price": 1, "category": "weapons" }] });
    assert_eq!(
        codes(&decide(&stack, c, pid, &charge).await),
        [
            "oap.limit_exceeded",
            "oap.limit_exceeded",
            "oap.merchant_forbidden",
            "oap.region_blocked",
            "oap.category_blocked",
            "oap.region_blocked"
        ]
    );
    let e = "data.export.create.v1";
    let export = json!({ "collection": "payroll", "estimated_rows": 101, "include_pii": true, "region": "MX", "format": "pdf" });
    assert_eq!(
        codes(&decide(&stack, e, pid, &export).await),
        [
            "oap.limit_exceeded",
            "oap.pii_blocked",
            "oap.limit_exceeded",
            "oap.format_unsupported",
            "oap.region_blocked"
        ]
    );
    let a = "governance.data.access.v1";
    let access = json!({ "data_classification": "PII", "accessing_entity_id": "u1", "accessing_entity_type": "client",
                         "resource_id": "r1", "action_type": "delete", "jurisdiction": "CA", "row_count": 11 });
    assert_eq!(
        codes(&decide(&stack, a, pid, &access).await),
        [
            "oap.entity_type_forbidden",
            "oap.jurisdiction_blocked",
            "oap.row_limit_exceeded",
            "oap.action_forbidden"
        ]
    );
    let m = "code.repository.merge.v1";
    let merge = json!({ "repository": "acme/other", "action": "pr.create", "branch": "b", "region": "US",
                        "lines_added": 900, "lines_removed": 101 });
    assert_eq!(
        codes(&decide(&stack, m, pid, &merge).await),
        ["oap.limit_exceeded", "oap.limit_exceeded"]
    );
    let mut ok = merge.clone();
    ok["repository"] = json!("acme/app");
    ok["lines_removed"] = json!(100);
    assert_eq!(decide(&stack, m, pid, &ok).await["allow"], true);

    // Bad requests are errors, not decisions; an unknown agent is a denial.
    for (pack, body, status, error) in [
        (
            "nope.v1",
            json!({ "context": { "agent_id": pid } }),
            404,
            "pack_not_found",
        ),
        (r, json!({ "agent_id": pid }), 400, "invalid_request"),
        (
            r,
            json!({ "context": { "agent_id": "bob" } }),
            400,
            "invalid_request",
        ),
        (
            r,
            json!({ "context": { "agent_id": pid, "policy_id": "data.export.create.v1" } }),
            400,
            "invalid_request",
        ),
        (
            r,
            json!({ "context": { "policy_id": r } }),
            400,
            "invalid_request",
        ),
    ] {
        let (got, body, _) = ask(&stack, pack, body.clone(), None).await;
        assert_eq!(
            (got.as_u16(), body["error"].as_str()),
            (status, Some(error)),
            "{body}"
        );
    }
    let nobody = decide(
        &stack,
        r,
        "00000000-0000-4000-8000-000000000000",
        &refund(1, "USD", "US"),
    )
    .await;
    assert_eq!(
        (nobody["allow"].as_bool(), code(&nobody)),
        (Some(false), "agent_not_found")
    );
    let get = stack
        .client
        .get(format!("{}/api/verify/policy/{r}", stack.edge))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Commits: the daily cap of 10000 minor units, once per Idempotency-Key, by a partner
    // with the agent's token for it (anonymous callers may ask, never commit).
    let partner = stack.partner("OAP Shop").await;
    let token = stack.agent_token_for(&agent, Some(&partner.id)).await;
    let commit = |amount: u64, key: &'static str| {
        let mut c = refund(amount, "USD", "US");
        c["agent_id"] = json!(pid);
        c.as_object_mut().unwrap().remove("idempotency_key");
        let (stack, partner, token) = (&stack, &partner, token.as_str());
        async move {
            ask_as(
                stack,
                Some((partner, token)),
                r,
                json!({ "context": c }),
                Some(key),
            )
            .await
        }
    };
    let mut anonymous = refund(5000, "USD", "US");
    anonymous["agent_id"] = json!(pid);
    anonymous.as_object_mut().unwrap().remove("idempotency_key");
    let (status, body, _) = ask(
        &stack,
        r,
        json!({ "context": anonymous }),
        Some("order-0001"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "{body}"
    );
    // The token's first use waits for the signing keys in KV (over the per-transaction limit,
    // so the warm-up spends nothing).
    let started = Instant::now();
    while codes(&commit(6000, "warm-up").await.1).contains(&"token_invalid") {
        assert!(started.elapsed() < PATIENCE, "the token is never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A commit needs the agent's token for this partner: without one it is a 400, with one for
    // nobody or for another partner a 403, with another agent's a denial recorded nowhere.
    let body = json!({ "context": anonymous });
    let other_agent = stack.active_agent("Another Refunder").await;
    let not_it = stack.agent_token_for(&other_agent, Some(&partner.id)).await;
    let no_aud = stack.agent_token(&agent).await;
    let other = stack.partner("Other OAP Shop").await;
    let refused = [
        ask_as(&stack, Some((&partner, "")), r, body.clone(), Some("o-1")).await,
        ask_as(
            &stack,
            Some((&partner, &no_aud)),
            r,
            body.clone(),
            Some("o-1"),
        )
        .await,
        ask_as(&stack, Some((&other, &token)), r, body.clone(), Some("o-1")).await,
    ];
    assert_eq!(refused[0].0, StatusCode::BAD_REQUEST, "{}", refused[0].1);
    assert_eq!(refused[0].1["field"], "Vouch-Agent-Token");
    for (status, body, _) in &refused[1..] {
        assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"], "token_audience_mismatch");
    }
    let (_, mismatched, replayed) = ask_as(
        &stack,
        Some((&partner, &not_it)),
        r,
        body.clone(),
        Some("o-1"),
    )
    .await;
    assert_eq!(codes(&mismatched)[0], "token_invalid", "{mismatched}");
    assert_eq!(replayed, None, "not recorded: {mismatched}");

    let (_, first, replayed) = commit(5000, "order-0001").await;
    assert_eq!(
        (first["allow"].as_bool(), replayed.as_deref()),
        (Some(true), Some("false")),
        "{first}"
    );
    let (_, again, replayed) = commit(5000, "order-0001").await;
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(
        again["decision_id"], first["decision_id"],
        "a replay answers the first decision"
    );
    let (_, second, _) = commit(5000, "order-0002").await;
    assert_eq!(second["allow"], true, "exactly at the daily cap: {second}");
    let (_, over, _) = commit(1, "order-0003").await;
    assert_eq!(
        codes(&over),
        ["oap.limit_exceeded"],
        "one minor unit over the cap: {over}"
    );
    let (_, conflict, _) = commit(4000, "order-0001").await;
    assert_eq!(codes(&conflict), ["oap.idempotency_conflict"], "{conflict}");
    assert_eq!(conflict["partner_id"], partner.id.as_str());
    // An ask without a key records nothing, and reads what was spent: the cap is full.
    let asked = decide(&stack, r, pid, &refund(1, "USD", "US")).await;
    assert_eq!(codes(&asked), ["oap.limit_exceeded"], "{asked}");
    assert!(
        asked.get("partner_id").is_none(),
        "an anonymous ask: {asked}"
    );

    // Suspended, then revoked: refused within the bound, by both ids (the status first; the
    // full cap is listed too, as every failed check is).
    stack.set_status(&agent, "suspended").await;
    let got = decide_until(&stack, r, pid, &refund(1, "USD", "US"), |d| {
        code(d) == "oap.passport_suspended"
    })
    .await;
    assert_eq!(
        codes(&got),
        ["oap.passport_suspended", "oap.limit_exceeded"]
    );
    stack.set_status(&agent, "revoked").await;
    let got = decide_until(&stack, r, &agent, &refund(1, "USD", "US"), |d| {
        d["reasons"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked")
    })
    .await;
    assert_eq!(
        codes(&got),
        ["oap.passport_suspended", "oap.limit_exceeded"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oap_discovery_and_packs() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let (status, etag, doc) = stack
        .send(stack.client.get(format!("{}/.well-known/oap/", stack.edge)))
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let schema = vendored("oap/well-known-schema.json");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert_eq!(errors, Vec::<String>::new(), "{doc:#}");
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/.well-known/oap/jwks.json", stack.edge)
    );
    assert_eq!(
        doc["policy_endpoint"],
        format!("{}/api/policies/{{policy_name}}", stack.edge)
    );
    assert!(doc["passport_endpoint"]
        .as_str()
        .unwrap()
        .ends_with("/v1/agents/{agent_id}/oap"));
    assert!(doc["supported_capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("finance.payment.refund")));
    let etag = etag.unwrap();
    let cached = stack
        .client
        .get(format!("{}/.well-known/oap/", stack.edge))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    for pack in vouch_core::packs::builtins() {
        let (status, _, body) = stack
            .send(
                stack
                    .client
                    .get(format!("{}/api/policies/{}", stack.edge, pack.id)),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let served: vouch_core::packs::Pack = serde_json::from_value(body).unwrap();
        assert_eq!(&served, pack);
    }
    let (status, _, body) = stack
        .send(
            stack
                .client
                .get(format!("{}/api/policies/nope.v1", stack.edge)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("pack_not_found"))
    );
}

/// APort's own OAP client library (PyPI `aporthq-sdk-python`), pointed at the local edge with a
/// partner key as its API key, gets OAP decisions — an allow and a denial with OAP's reason
/// code — and the decision it gets verifies with independent RFC 8785 and Ed25519 code against
/// the edge's published keys; a tampered copy does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oap_client_library_gets_decisions_it_can_verify() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let Some(python) = crate::stack::python() else {
        return;
    };
    let org = stack.org("OAP Client").await;
    let pid = "9b2e6679-7425-40de-944b-e07fc1f90ae7";
    import(&stack, &org, everything(pid)).await;
    let pack = "finance.payment.refund.v1";
    decide_until(&stack, pack, pid, &refund(1, "USD", "US"), known).await;
    let partner = stack.partner("OAP Client Shop").await;
    let output = tokio::process::Command::new(python)
        .arg(crate::stack::repo().join("tests/edge/oap_client.py"))
        .args([&stack.edge, &partner.key, pid, pack])
        .arg(refund(2500, "USD", "US").to_string())
        .arg(refund(5001, "USD", "US").to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run tests/edge/oap_client.py");
    assert!(output.status.success(), "tests/edge/oap_client.py failed");
    let found: Value = serde_json::from_slice(&output.stdout).expect("oap_client.py prints JSON");
    assert_eq!(found["allow"], true, "{found}");
    assert!(
        found["allow_signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("ed25519:")),
        "{found}"
    );
    assert!(
        found["allow_digest"]
            .as_str()
            .is_some_and(|s| s.starts_with("sha256:")),
        "{found}"
    );
    assert_eq!(found["deny"], false, "{found}");
    assert_eq!(
        found["deny_codes"],
        json!(["oap.limit_exceeded"]),
        "{found}"
    );
    assert_eq!(found["raw_allow"], true, "{found}");
    assert_eq!(
        found["raw_partner"],
        partner.id.as_str(),
        "the decision names the partner"
    );
    assert_eq!(found["raw_verified"], true, "{found}");
    assert_eq!(found["tampered_verified"], false, "{found}");
}
