//! The audit log's checkpoints end to end: the origin seals and signs, its KV publisher writes
//! the checkpoint, the built worker serves it at `GET /audit/{chain_id}/checkpoint`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use vouch_core::audit::{checkpoint, tree};

use crate::stack::Stack;

/// Far beyond what sealing and publishing take locally (a checkpoint per chain per second).
const PATIENCE: Duration = Duration::from_secs(15);

/// `(status, headers, body text)` of the edge's checkpoint of `chain`.
async fn edge_checkpoint(
    stack: &Stack,
    chain: &str,
    if_none_match: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = stack
        .client
        .get(format!("{}/audit/{chain}/checkpoint", stack.edge));
    if let Some(etag) = if_none_match {
        req = req.header("if-none-match", etag);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

/// The origin's newest checkpoint of `chain`: `(note, verifier key, tree size)`.
async fn origin_checkpoint(stack: &Stack, chain: &str) -> (String, String, u64) {
    let view = stack
        .admin(
            reqwest::Method::GET,
            &format!("/v1/audit/checkpoint?org_id={chain}"),
            None,
        )
        .await;
    (
        view["checkpoint"].as_str().unwrap().to_owned(),
        view["verifier_key"].as_str().unwrap().to_owned(),
        view["tree_size"].as_u64().unwrap(),
    )
}

/// Waits until the edge serves the checkpoint the origin signed last (of at least `size`).
async fn served(stack: &Stack, chain: &str, size: u64) -> (String, reqwest::header::HeaderMap) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (note, _, newest) = origin_checkpoint(stack, chain).await;
        let (status, headers, body) = edge_checkpoint(stack, chain, None).await;
        if status == StatusCode::OK && body == note && newest >= size {
            return (body, headers);
        }
        assert!(
            Instant::now() < deadline,
            "the edge did not serve the origin's checkpoint of {chain} (size {size}): {status} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_serves_the_published_checkpoint() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.seed_agent("Audited Bot").await;
    let passport = stack
        .admin(reqwest::Method::GET, &format!("/v1/agents/{agent}"), None)
        .await;
    let org = passport["org_id"].as_str().unwrap().to_owned();

    // org.created and passport.created, sealed in the background, signed, published, served.
    let (note, headers) = served(&stack, &org, 2).await;
    let (_, key, _) = origin_checkpoint(&stack, &org).await;
    let head = checkpoint::open(&note, &key, &org).expect("a checkpoint signed by the log key");
    assert_eq!(head.size, 2);
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(header("cache-control"), "public, max-age=1");
    let etag = header("etag");
    let (status, again, body) = edge_checkpoint(&stack, &org, Some(&etag)).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(again.get("etag").unwrap().to_str().unwrap(), etag);

    // A change: a bigger checkpoint, another ETag, consistent with the first.
    stack.set_status(&agent, "active").await;
    let (newer, headers) = served(&stack, &org, 3).await;
    let grown = checkpoint::open(&newer, &key, &org).unwrap();
    assert_eq!(grown.size, 3);
    assert_ne!(headers.get("etag").unwrap().to_str().unwrap(), etag);
    let (status, _, body) = edge_checkpoint(&stack, &org, Some(&etag)).await;
    assert_eq!(status, StatusCode::OK, "an old ETag gets the new note");
    assert_eq!(body, newer);
    let proof = stack
        .admin(
            reqwest::Method::GET,
            &format!("/v1/audit/consistency?org_id={org}&from=2&to=3"),
            None,
        )
        .await;
    let hashes: Vec<tree::Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| tree::parse_hash(h.as_str().unwrap()).unwrap())
        .collect();
    assert!(tree::verify_consistency(
        &hashes, 3, grown.root, 2, head.root
    ));

    // The platform's chain is published too; unknown and malformed chains are JSON errors.
    let platform = edge_checkpoint(&stack, "platform", None).await;
    assert_eq!(platform.0, StatusCode::OK, "{}", platform.2);
    let (status, _, body) =
        edge_checkpoint(&stack, "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("checkpoint_not_found"), "{body}");
    let (status, _, body) = edge_checkpoint(&stack, "not-a-chain", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid_request"), "{body}");
}
